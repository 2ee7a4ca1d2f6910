"""The training window's settings form: presets and every setting of a run, with help texts.

Kohya's option names underneath (:class:`~desktop.training.config.TrainingConfig`); the form only
shows them in words. Advanced settings sit in a collapsible section.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from PySide6.QtCore import QEvent, QLocale, Qt, Signal
from PySide6.QtGui import QDoubleValidator
from PySide6.QtWidgets import (
    QAbstractSpinBox,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from desktop.training.config import (
    LR_SCHEDULERS,
    MIXED_PRECISION,
    PRESETS,
    ConfigError,
    TrainingConfig,
    apply_preset,
)



DEFAULT_PRESET = "sd15_character"


# --- the settings ----------------------------------------------------------------------------------


class _RateEdit(QLineEdit):
    """A learning rate, typed as people write them (1e-4, 0.0001); blank means "as the main rate" when allowed."""

    def __init__(self, optional: bool = False) -> None:
        super().__init__()
        self.optional = optional
        validator = QDoubleValidator(0.0, 10.0, 12, self)
        validator.setNotation(QDoubleValidator.Notation.ScientificNotation)
        validator.setLocale(QLocale.c())  # 1e-4 and 0.0001 in every language (a TOML number, not a localised one)
        self.setValidator(validator)
        self.setMaximumWidth(140)

    def value(self) -> float | None:
        text = self.text().strip()
        if not text:
            return None if self.optional else math.nan
        try:
            return float(text)
        except ValueError:
            return math.nan

    def set_value(self, value: float | None) -> None:
        self.setText("" if value is None else repr(float(value)))  # the shortest text that reads back exactly


class TrainingForm(QWidget):
    """Every setting of a run, starting from a preset; ``config()`` reads the form back as a TrainingConfig.

    Keys the form has no field for (a VAE, optimizer arguments from an opened kohya file…) are kept
    from the last config given to :meth:`set_config`, so opening a file and starting loses nothing.
    """

    changed = Signal()

    def __init__(self, default_output_dir: Path, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.default_output_dir = Path(default_output_dir)
        self._base = TrainingConfig(output_dir=str(self.default_output_dir))
        self._fields: dict[str, tuple[QWidget, Callable[[], Any], Callable[[Any], None]]] = {}
        self._labels: dict[str, QLabel] = {}
        self._updating = False

        self.preset = QComboBox()
        self.preset.setObjectName("preset")
        self.preset.addItem("", "")
        for key in PRESETS:
            self.preset.addItem(key, key)
        self.checkpoint = QComboBox()
        self.checkpoint.setObjectName("checkpoint")
        self.checkpoint.setMinimumContentsLength(18)
        self.checkpoint.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.checkpoint_button = QPushButton()
        self.output_dir = QLineEdit()
        self.output_button = QPushButton()
        self.width_spin, self.height_spin = _spin(64, 4096, 64), _spin(64, 4096, 64)
        self.sample_prompts = QPlainTextEdit()
        self.sample_prompts.setObjectName("sample_prompts")
        self.sample_prompts.setMaximumHeight(70)
        self.sample_prompts.setTabChangesFocus(True)
        self.train_text_encoder = QCheckBox()
        self.conv_dim, self.conv_alpha = _spin(0, 256), _float_spin(0, 256, 1, 1)
        self.reg_dir = QLineEdit()
        self.advanced_button = QToolButton()
        self.advanced_button.setCheckable(True)
        self.advanced_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.advanced_button.setArrowType(Qt.ArrowType.RightArrow)
        self.advanced_button.setAutoRaise(True)

        basic = QFormLayout()
        advanced = QFormLayout()
        for form in (basic, advanced):
            form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.ExpandingFieldsGrow)
        self._row(basic, "preset", self.preset)
        self._row(basic, "checkpoint", _hbox(self.checkpoint, self.checkpoint_button, stretch_first=True))
        self._row(basic, "trigger_word", self._text("trigger_word"))
        self._row(basic, "output_name", self._text("output_name"))
        self._row(basic, "output_dir", _hbox(self.output_dir, self.output_button, stretch_first=True))
        self._row(basic, "resolution", _hbox(self.width_spin, QLabel("×"), self.height_spin))
        self._row(basic, "train_batch_size", self._int("train_batch_size", 1, 64))
        self._row(basic, "max_train_epochs", self._int("max_train_epochs", 0, 10_000))
        self._row(basic, "max_train_steps", self._int("max_train_steps", 0, 10_000_000, 100))
        self._row(basic, "network_dim", self._int("network_dim", 1, 1024))
        self._row(basic, "network_alpha", self._float("network_alpha", 0.01, 1024, 2, 1))
        self._row(basic, "unet_lr", self._rate("unet_lr"))
        self._row(basic, "text_encoder_lr", self._rate("text_encoder_lr", optional=True))
        self._row(basic, "lr_scheduler", self._choice("lr_scheduler", LR_SCHEDULERS))
        self._row(basic, "lr_warmup_steps", self._int("lr_warmup_steps", 0, 100_000, 10))
        self._row(basic, "save_every_n_epochs", self._int("save_every_n_epochs", 0, 1000))
        self._row(basic, "sample_prompts", self.sample_prompts)
        self._row(basic, "sample_every_n_epochs", self._int("sample_every_n_epochs", 0, 1000))

        self._row(advanced, "train_text_encoder", self.train_text_encoder)
        self._row(advanced, "conv", _hbox(self.conv_dim, self.conv_alpha))
        self._row(advanced, "min_snr_gamma", self._float("min_snr_gamma", 0, 100, 1, 1))
        self._row(advanced, "noise_offset", self._float("noise_offset", 0, 1, 3, 0.01))
        self._row(advanced, "flip_aug", self._bool("flip_aug"))
        self._row(advanced, "shuffle_caption", self._bool("shuffle_caption"))
        self._row(advanced, "keep_tokens", self._int("keep_tokens", 0, 75))
        self._row(advanced, "caption_dropout_rate", self._float("caption_dropout_rate", 0, 1, 2, 0.05))
        self._row(advanced, "caption_extension", self._choice("caption_extension", (".txt", ".caption")))
        self._row(advanced, "gradient_checkpointing", self._bool("gradient_checkpointing"))
        self._row(advanced, "gradient_accumulation_steps", self._int("gradient_accumulation_steps", 1, 256))
        self._row(advanced, "mixed_precision", self._choice("mixed_precision", MIXED_PRECISION))
        self._row(advanced, "seed", self._int("seed", 0, 2**31 - 1))
        self._row(advanced, "clip_skip", self._int("clip_skip", 1, 12))
        self._row(advanced, "min_bucket_reso", self._int("min_bucket_reso", 64, 4096, 64))
        self._row(advanced, "max_bucket_reso", self._int("max_bucket_reso", 64, 4096, 64))
        self._row(advanced, "reg_data_dir", self.reg_dir)
        self._row(advanced, "save_state_every_n_steps", self._int("save_state_every_n_steps", 0, 100_000, 10))
        self._row(advanced, "device", self._choice("device", ("auto", "mps", "cuda", "cpu")))

        self.advanced = QWidget()
        self.advanced.setObjectName("advanced_settings")
        self.advanced.setLayout(advanced)
        self.advanced.hide()
        layout = QVBoxLayout(self)
        layout.addLayout(basic)
        layout.addWidget(self.advanced_button)
        layout.addWidget(self.advanced)
        layout.addStretch(1)

        self.preset.activated.connect(self._on_preset_change)
        self.checkpoint.currentIndexChanged.connect(self._on_change)
        self.checkpoint_button.clicked.connect(self._choose_checkpoint)
        self.output_button.clicked.connect(self._choose_output)
        self.advanced_button.toggled.connect(self._on_advanced_toggle)
        for widget in (self.output_dir, self.reg_dir):
            widget.textChanged.connect(self._on_change)
        for spin in (self.width_spin, self.height_spin, self.conv_dim, self.conv_alpha):
            spin.valueChanged.connect(self._on_change)
        self.sample_prompts.textChanged.connect(self._on_change)
        self.train_text_encoder.toggled.connect(self._on_change)
        self.retranslate()
        self.set_config(apply_preset(self._base, DEFAULT_PRESET))
        self.preset.setCurrentIndex(self.preset.findData(DEFAULT_PRESET))

    # --- the form as a config ---

    def config(self) -> TrainingConfig:
        """The settings on screen (not validated: the window validates on Start)."""
        values: dict[str, Any] = {key: getter() for key, (_widget, getter, _setter) in self._fields.items()}
        values["learning_rate"] = values["unet_lr"]
        values["pretrained_model_name_or_path"] = str(self.checkpoint.currentData() or "")
        values["output_dir"] = self.output_dir.text().strip() or str(self.default_output_dir)
        values["reg_data_dir"] = self.reg_dir.text().strip()
        values["resolution"] = (self.width_spin.value(), self.height_spin.value())
        values["sample_prompts"] = tuple(line.strip() for line in self.sample_prompts.toPlainText().splitlines() if line.strip())
        values["network_train_unet_only"] = not self.train_text_encoder.isChecked()
        args = [arg for arg in self._base.network_args if arg.partition("=")[0].strip() not in ("conv_dim", "conv_alpha")]
        if self.conv_dim.value() > 0:
            args += [f"conv_dim={self.conv_dim.value()}", f"conv_alpha={self.conv_alpha.value():g}"]
        values["network_args"] = tuple(args)
        return replace(self._base, **values)

    def set_config(self, config: TrainingConfig) -> None:
        """Show ``config``; keys without a field are kept for :meth:`config`."""
        self._updating = True
        try:
            self._base = config
            for key, (_widget, _getter, setter) in self._fields.items():
                value = getattr(config, key)
                if key == "unet_lr":
                    value = config.unet_learning_rate
                setter(value)
            self._select_checkpoint(config.pretrained_model_name_or_path)
            self.output_dir.setText(config.output_dir or str(self.default_output_dir))
            self.reg_dir.setText(config.reg_data_dir)
            self.width_spin.setValue(config.resolution[0])
            self.height_spin.setValue(config.resolution[1])
            self.sample_prompts.setPlainText("\n".join(config.sample_prompts))
            self.train_text_encoder.setChecked(not config.network_train_unet_only)
            try:
                args = config.network_arguments()
            except ConfigError:
                args = {}
            self.conv_dim.setValue(_int_or(args.get("conv_dim"), 0))
            self.conv_alpha.setValue(_float_or(args.get("conv_alpha"), 1.0))
        finally:
            self._updating = False
        self.changed.emit()

    def problems(self) -> list[tuple[str, str]]:
        """Fields whose text is not a value at all (the config's own checks come on Start)."""
        found = []
        for key in ("unet_lr", "text_encoder_lr"):
            widget = self._fields[key][0]
            value = widget.value()
            if value is not None and not (math.isfinite(value) and value >= 0):
                found.append((key, widget.text()))
        return found

    def focus_field(self, key: str) -> None:
        """Bring the field of a config key into view (after a ConfigError naming it)."""
        aliases = {"learning_rate": "unet_lr", "pretrained_model_name_or_path": "checkpoint", "network_train_unet_only": "train_text_encoder"}
        key = aliases.get(key, key)
        widget = self._fields[key][0] if key in self._fields else {"checkpoint": self.checkpoint, "resolution": self.width_spin,
                                                                    "train_text_encoder": self.train_text_encoder}.get(key)  # fmt: skip
        if widget is None:
            return
        if self.advanced.isAncestorOf(widget):
            self.advanced_button.setChecked(True)
        widget.setFocus(Qt.FocusReason.OtherFocusReason)

    # --- checkpoints ---

    def set_checkpoints(self, checkpoints: Sequence[tuple]) -> None:
        """(name, path[, family]) rows; the chosen one stays chosen (or stays listed when it vanished)."""
        current = str(self.checkpoint.currentData() or self._base.pretrained_model_name_or_path)
        self._updating = True
        try:
            self.checkpoint.clear()
            for row in checkpoints:
                name, path = row[0], Path(row[1])
                self.checkpoint.addItem(str(name), str(path))
                self.checkpoint.setItemData(self.checkpoint.count() - 1, row[2] if len(row) > 2 else "", _FAMILY_ROLE)
                self.checkpoint.setItemData(self.checkpoint.count() - 1, str(path), Qt.ItemDataRole.ToolTipRole)
            self._select_checkpoint(current)
        finally:
            self._updating = False
        self.changed.emit()

    def family(self) -> str:
        """The chosen checkpoint's family ("sd1", "sd2", "sdxl"), or "" when the app did not say."""
        family = self.checkpoint.currentData(_FAMILY_ROLE)
        return str(family or "")

    def _select_checkpoint(self, path: str) -> None:
        if not path:
            self.checkpoint.setCurrentIndex(-1 if self.checkpoint.count() == 0 else 0)
            return
        index = self.checkpoint.findData(str(path))
        if index < 0:
            self.checkpoint.addItem(Path(path).stem, str(path))
            index = self.checkpoint.count() - 1
        self.checkpoint.setCurrentIndex(index)

    # --- texts ---

    def retranslate(self) -> None:
        names = {
            "": self.tr("Custom"),
            "sd15_character": self.tr("SD1.5 character"),
            "sd15_style": self.tr("SD1.5 style"),
            "sdxl": self.tr("SDXL"),
        }
        for index in range(self.preset.count()):
            self.preset.setItemText(index, names.get(self.preset.itemData(index), self.preset.itemText(index)))
        _name_items(self.field("mixed_precision"), {"no": self.tr("fp32 (no mixed precision)"), "fp16": "fp16", "bf16": "bf16"})
        _name_items(self.field("device"), {"auto": self.tr("Automatic"), "mps": "Apple GPU (MPS)", "cuda": "NVIDIA GPU (CUDA)", "cpu": "CPU"})
        self.checkpoint_button.setText(self.tr("Other…"))
        self.output_button.setText(self.tr("Choose…"))
        self.advanced_button.setText(self.tr("Advanced settings"))
        self.train_text_encoder.setText(self.tr("Train the text encoder too"))
        self.text_encoder_field().setPlaceholderText(self.tr("same as UNet"))
        self.sample_prompts.setPlaceholderText(self.tr("One prompt per line, e.g. a photo of sks person, smiling"))
        self.conv_dim.setSpecialValueText(self.tr("off"))
        self.conv_dim.setPrefix(self.tr("dim "))
        self.conv_alpha.setPrefix(self.tr("alpha "))
        self._fields["max_train_steps"][0].setSpecialValueText(self.tr("from epochs"))
        self._fields["seed"][0].setSpecialValueText(self.tr("random"))
        self._fields["save_every_n_epochs"][0].setSpecialValueText(self.tr("only at the end"))
        self._fields["sample_every_n_epochs"][0].setSpecialValueText(self.tr("never"))
        self._fields["save_state_every_n_steps"][0].setSpecialValueText(self.tr("never"))
        labels = {
            "preset": self.tr("Preset"),
            "checkpoint": self.tr("Base model"),
            "trigger_word": self.tr("Trigger word"),
            "output_name": self.tr("LoRA name"),
            "output_dir": self.tr("Save to"),
            "resolution": self.tr("Resolution"),
            "train_batch_size": self.tr("Batch size"),
            "max_train_epochs": self.tr("Epochs"),
            "max_train_steps": self.tr("Max steps"),
            "network_dim": self.tr("Network dim (rank)"),
            "network_alpha": self.tr("Network alpha"),
            "unet_lr": self.tr("UNet learning rate"),
            "text_encoder_lr": self.tr("Text encoder learning rate"),
            "lr_scheduler": self.tr("Scheduler"),
            "lr_warmup_steps": self.tr("Warm-up steps"),
            "save_every_n_epochs": self.tr("Save every N epochs"),
            "sample_prompts": self.tr("Sample prompts"),
            "sample_every_n_epochs": self.tr("Sample every N epochs"),
            "train_text_encoder": self.tr("Text encoder"),
            "conv": self.tr("LoCon (3×3 convolutions)"),
            "min_snr_gamma": self.tr("Min-SNR gamma"),
            "noise_offset": self.tr("Noise offset"),
            "flip_aug": self.tr("Flip images"),
            "shuffle_caption": self.tr("Shuffle caption tags"),
            "keep_tokens": self.tr("Keep first tags"),
            "caption_dropout_rate": self.tr("Caption dropout"),
            "caption_extension": self.tr("Caption files"),
            "gradient_checkpointing": self.tr("Gradient checkpointing"),
            "gradient_accumulation_steps": self.tr("Gradient accumulation"),
            "mixed_precision": self.tr("Base model precision"),
            "seed": self.tr("Seed"),
            "clip_skip": self.tr("Clip skip"),
            "min_bucket_reso": self.tr("Smallest bucket side"),
            "max_bucket_reso": self.tr("Largest bucket side"),
            "reg_data_dir": self.tr("Regularisation folder"),
            "save_state_every_n_steps": self.tr("Resume point every N steps"),
            "device": self.tr("Train on"),
        }
        tips = {
            "preset": self.tr("Starting values for a kind of LoRA. The model, dataset and output stay as they are."),
            "checkpoint": self.tr("The checkpoint the LoRA is trained on. It works best with this model and its relatives."),
            "trigger_word": self.tr("A rare word put at the start of every caption, e.g. sks or ohwx: write it in a prompt to call up what was learned."),
            "output_name": self.tr("The file name of the LoRA (.safetensors) and of its settings (.toml)."),
            "output_dir": self.tr("Where the LoRA is saved; the models/Lora folder makes it appear in the model browser."),
            "resolution": self.tr("Training size in pixels. 512 for SD1.5, 768 for SD2, 1024 for SDXL; images are bucketed by aspect ratio."),
            "train_batch_size": self.tr("Images per step. Larger batches need more memory; lower the learning rate less than proportionally."),
            "max_train_epochs": self.tr("How many times every image (times its repeats) is seen."),
            "max_train_steps": self.tr("Stop after this many steps instead of counting epochs."),
            "network_dim": self.tr("The LoRA's capacity. 8–32 for a character, 32–128 for a style; larger files, slower learning."),
            "network_alpha": self.tr("Scales the learned weights by alpha / dim. Half the dim is common; lower alpha means smaller updates."),
            "unet_lr": self.tr("How fast the image model learns. 1e-4 is a good start; lower it if the loss becomes NaN or samples burn."),
            "text_encoder_lr": self.tr("How fast the text encoder learns; usually a half or less of the UNet rate. Blank: the UNet rate."),
            "lr_scheduler": self.tr("How the learning rate changes over the run. Cosine lowers it towards the end."),
            "lr_warmup_steps": self.tr("Steps at the start during which the learning rate rises from zero."),
            "save_every_n_epochs": self.tr("Also save a LoRA every N epochs, to compare them later."),
            "sample_prompts": self.tr("Images are generated from these prompts during training, to see what the LoRA learns."),
            "sample_every_n_epochs": self.tr("Generate the sample images every N epochs."),
            "train_text_encoder": self.tr("Training the text encoder helps a trigger word; SDXL usually trains the UNet only."),
            "conv": self.tr("LoCon also trains the ResNet convolutions: more detail and texture, larger file. Off for a plain LoRA."),
            "min_snr_gamma": self.tr("Weights the loss by timestep so training converges faster. 5 is recommended; 0 turns it off."),
            "noise_offset": self.tr("Helps learn very dark or very bright images. 0.05–0.1; 0 turns it off."),
            "flip_aug": self.tr("Also trains on mirror images. Good for styles, bad for asymmetric characters and text."),
            "shuffle_caption": self.tr("Shuffles comma-separated tags each step so no tag order is learned."),
            "keep_tokens": self.tr("How many tags at the start stay in place when shuffling (1 keeps the trigger word first)."),
            "caption_dropout_rate": self.tr("Share of steps trained without a caption; helps the LoRA work without its trigger word."),
            "caption_extension": self.tr("The extension of the caption file next to each image."),
            "gradient_checkpointing": self.tr("Recomputes activations instead of storing them: much less memory, about 30% slower."),
            "gradient_accumulation_steps": self.tr("Adds up this many batches before each update: a larger batch without more memory."),
            "mixed_precision": self.tr("Keeps the frozen base model in fp16 or bf16 to halve its memory. Choose fp32 if the loss becomes NaN."),
            "seed": self.tr("The same seed and settings give the same LoRA. 0 picks one and records it."),
            "clip_skip": self.tr("Use the text encoder's output this many layers from the end; 2 for most anime models."),
            "min_bucket_reso": self.tr("Images are grouped into buckets of similar aspect ratio, from this side length…"),
            "max_bucket_reso": self.tr("…to this one."),
            "reg_data_dir": self.tr("Optional images of the general class (e.g. other people) that keep the model from forgetting it."),
            "save_state_every_n_steps": self.tr("Writes what a cancelled or crashed run needs to resume. 0: only at the end."),
            "device": self.tr("Automatic picks the Apple GPU or NVIDIA GPU when there is one."),
        }
        for key, label in self._labels.items():
            label.setText(labels.get(key, key))
            tip = tips.get(key, "")
            label.setToolTip(tip)
            widget = self._fields[key][0] if key in self._fields else label.buddy()
            if widget is not None:
                widget.setToolTip(tip)
        self.checkpoint.setToolTip(tips["checkpoint"])
        self.output_dir.setToolTip(tips["output_dir"])
        self.sample_prompts.setToolTip(tips["sample_prompts"])

    def changeEvent(self, event: QEvent) -> None:  # noqa: N802
        if event.type() == QEvent.Type.LanguageChange:
            self.retranslate()
        super().changeEvent(event)

    def text_encoder_field(self) -> _RateEdit:
        return self._fields["text_encoder_lr"][0]

    def field(self, key: str) -> QWidget:
        """The editor of a config key (tests, focus)."""
        return self._fields[key][0]

    # --- building ---

    def _row(self, form: QFormLayout, key: str, field: QWidget | QHBoxLayout) -> None:
        label = QLabel()
        label.setObjectName(f"label_{key}")
        self._labels[key] = label
        if isinstance(field, QWidget):
            label.setBuddy(field)
        form.addRow(label, field)

    def _register(self, key: str, widget: QWidget, getter: Callable[[], Any], setter: Callable[[Any], None]) -> QWidget:
        widget.setObjectName(key)
        self._fields[key] = (widget, getter, setter)
        return widget

    def _int(self, key: str, low: int, high: int, step: int = 1) -> QSpinBox:
        spin = _spin(low, high, step)
        spin.valueChanged.connect(self._on_change)
        return self._register(key, spin, spin.value, lambda value: spin.setValue(int(value)))

    def _float(self, key: str, low: float, high: float, decimals: int, step: float) -> QDoubleSpinBox:
        spin = _float_spin(low, high, decimals, step)
        spin.valueChanged.connect(self._on_change)
        return self._register(key, spin, spin.value, lambda value: spin.setValue(float(value)))

    def _bool(self, key: str) -> QCheckBox:
        box = QCheckBox()
        box.toggled.connect(self._on_change)
        return self._register(key, box, box.isChecked, lambda value: box.setChecked(bool(value)))

    def _choice(self, key: str, values: Sequence[str]) -> QComboBox:
        combo = QComboBox()
        for value in values:
            combo.addItem(value, value)

        def set_value(value: Any) -> None:
            index = combo.findData(str(value))
            if index < 0:
                combo.addItem(str(value), str(value))  # a value from an opened file: shown, validated on Start
                index = combo.count() - 1
            combo.setCurrentIndex(index)

        combo.currentIndexChanged.connect(self._on_change)
        return self._register(key, combo, lambda: str(combo.currentData()), set_value)

    def _text(self, key: str) -> QLineEdit:
        edit = QLineEdit()
        edit.textChanged.connect(self._on_change)
        return self._register(key, edit, lambda: edit.text().strip(), lambda value: edit.setText(str(value)))

    def _rate(self, key: str, optional: bool = False) -> _RateEdit:
        edit = _RateEdit(optional)
        edit.textChanged.connect(self._on_change)
        return self._register(key, edit, edit.value, edit.set_value)

    # --- reactions ---

    def _on_change(self, *_args: object) -> None:
        if not self._updating:
            self.changed.emit()

    def _on_preset_change(self, index: int) -> None:
        key = self.preset.itemData(index)
        if key:
            self.set_config(apply_preset(self.config(), key))  # resets what other presets set

    def _on_advanced_toggle(self, shown: bool) -> None:
        self.advanced.setVisible(shown)
        self.advanced_button.setArrowType(Qt.ArrowType.DownArrow if shown else Qt.ArrowType.RightArrow)

    def _choose_checkpoint(self) -> None:
        path, _filter = QFileDialog.getOpenFileName(self, self.tr("Choose the base model"), "", self.tr("Checkpoints (*.safetensors)"))
        if path:
            self._select_checkpoint(path)

    def _choose_output(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, self.tr("Choose where to save the LoRA"), self.output_dir.text())
        if folder:
            self.output_dir.setText(folder)


_FAMILY_ROLE = Qt.ItemDataRole.UserRole + 1



def _spin(low: int, high: int, step: int = 1) -> QSpinBox:
    spin = QSpinBox()
    spin.setRange(low, high)
    spin.setSingleStep(step)
    spin.setAccelerated(True)
    spin.setStepType(QAbstractSpinBox.StepType.DefaultStepType)
    return spin


def _float_spin(low: float, high: float, decimals: int, step: float) -> QDoubleSpinBox:
    spin = QDoubleSpinBox()
    spin.setRange(low, high)
    spin.setDecimals(decimals)
    spin.setSingleStep(step)
    return spin


def _hbox(*widgets: QWidget, stretch_first: bool = False) -> QWidget:
    holder = QWidget()
    layout = QHBoxLayout(holder)
    layout.setContentsMargins(0, 0, 0, 0)
    for index, widget in enumerate(widgets):
        layout.addWidget(widget, 1 if stretch_first and index == 0 else 0)
    if not stretch_first:
        layout.addStretch(1)
    return holder


def _name_items(combo: QComboBox, labels: dict[str, str]) -> None:
    """Give each item (found by its value) its text in the current language."""
    for index in range(combo.count()):
        combo.setItemText(index, labels.get(combo.itemData(index), combo.itemText(index)))


def _int_or(value: str | None, default: int) -> int:
    try:
        return int(float(value)) if value is not None else default
    except ValueError:
        return default


def _float_or(value: str | None, default: float) -> float:
    try:
        return float(value) if value is not None else default
    except ValueError:
        return default
