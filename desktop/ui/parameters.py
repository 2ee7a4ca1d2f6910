"""The parameters panel: checkpoint, VAE, sampler, schedule, steps, CFG, size, seed, batch, clip skip.

It turns its fields into a frozen :class:`GenerationRequest` and back, and remembers them between
runs through the settings store.

The VAE's "Automatic" entry is A1111's: the checkpoint's preferred VAE (``"vae"`` in its
``name.json``, set from the model browser) when it is installed, else the VAE baked into the
checkpoint. The entry says which, and the request names the preferred file (so the image's
metadata records it, as for a VAE chosen by hand); an explicit choice always wins.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QRegularExpression, Qt, Signal
from PySide6.QtGui import QRegularExpressionValidator
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QSpinBox,
    QToolButton,
    QWidget,
)

from desktop.core import settings as keys
from desktop.core.errors import InvalidRequest
from desktop.core.requests import MAX_BATCH_COUNT, MAX_BATCH_SIZE, MAX_CLIP_SKIP, MAX_SEED, MAX_SIDE, MAX_STEPS, GenerationRequest
from desktop.core.sampling_names import SAMPLER_NAMES, SCHEDULE_NAMES
from desktop.library.model_folders import ModelEntry
from desktop.library.sidecars import PreferredVae, preferred_vae
from desktop.ui.settings_store import SettingsStore

# Sizes each family was trained at (A1111 users' usual choices).
SIZE_PRESETS: dict[str, tuple[tuple[int, int], ...]] = {
    "sd1": ((512, 512), (512, 768), (768, 512), (640, 640), (512, 912)),
    "sd2": ((768, 768), (512, 512), (768, 1024), (1024, 768)),
    "sdxl": ((1024, 1024), (832, 1216), (1216, 832), (896, 1152), (1152, 896), (768, 1344), (1344, 768)),
}


class ParametersPanel(QWidget):
    changed = Signal()
    checkpoint_changed = Signal(str)  # path, "" when none

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._last_seed: int | None = None
        self._families: dict[str, str] = {}  # checkpoint path -> family value, probed once
        self._automatic_vae = PreferredVae()  # what "Automatic" means for the selected checkpoint

        self.checkpoint = QComboBox()
        self.checkpoint.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.checkpoint.setMinimumContentsLength(18)
        self.vae = QComboBox()
        self.vae.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.vae.setMinimumContentsLength(18)
        self.sampler = QComboBox()
        self.sampler.addItems(list(SAMPLER_NAMES))
        self.schedule = QComboBox()
        self.schedule.addItems(list(SCHEDULE_NAMES))
        self.steps = _spin(1, MAX_STEPS, 20)
        self.cfg_scale = QDoubleSpinBox()
        self.cfg_scale.setRange(1.0, 30.0)
        self.cfg_scale.setSingleStep(0.5)
        self.cfg_scale.setDecimals(1)
        self.cfg_scale.setValue(7.0)
        self.width_box = _spin(64, MAX_SIDE, 512, step=64)
        self.height_box = _spin(64, MAX_SIDE, 512, step=64)
        self.swap_button = QToolButton()
        self.swap_button.setText("⇄")
        self.size_presets = QComboBox()
        self.seed = QLineEdit("-1")
        self.seed.setValidator(QRegularExpressionValidator(QRegularExpression(r"-1|\d{1,10}")))
        self.random_seed_button = QToolButton()
        self.random_seed_button.setText("⚄")  # a die face: in every system font, unlike the emoji
        self.reuse_seed_button = QToolButton()
        self.reuse_seed_button.setText("↻")
        self.reuse_seed_button.setEnabled(False)
        self.batch_count = _spin(1, MAX_BATCH_COUNT, 1)
        self.batch_size = _spin(1, MAX_BATCH_SIZE, 1)
        self.clip_skip = _spin(1, MAX_CLIP_SKIP, 1)

        form = QFormLayout(self)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        form.setLabelAlignment(Qt.AlignmentFlag.AlignRight)
        self._labels: dict[str, QLabel] = {}
        self._add_row(form, "checkpoint", self.checkpoint)
        self._add_row(form, "vae", self.vae)
        self._add_row(form, "sampler", self.sampler)
        self._add_row(form, "schedule", self.schedule)
        self._add_row(form, "steps", self.steps)
        self._add_row(form, "cfg", self.cfg_scale)
        self._add_row(form, "size", _row(self.width_box, self.swap_button, self.height_box))
        self._add_row(form, "presets", self.size_presets)
        self._add_row(form, "seed", _row(self.seed, self.random_seed_button, self.reuse_seed_button))
        self._add_row(form, "batch", _row(self.batch_count, self.batch_size))
        self._add_row(form, "clip_skip", self.clip_skip)

        self.swap_button.clicked.connect(self.swap_size)
        self.random_seed_button.clicked.connect(lambda: self.seed.setText("-1"))
        self.reuse_seed_button.clicked.connect(self.reuse_last_seed)
        self.size_presets.activated.connect(self._on_preset_activated)
        self.checkpoint.currentIndexChanged.connect(self._on_checkpoint_change)
        for widget in (self.vae, self.sampler, self.schedule):
            widget.currentIndexChanged.connect(self.changed)
        for spin in (self.steps, self.cfg_scale, self.width_box, self.height_box, self.batch_count, self.batch_size, self.clip_skip):
            spin.valueChanged.connect(self.changed)
        self.seed.textChanged.connect(self.changed)
        self.retranslate()

    def _add_row(self, form: QFormLayout, key: str, field: QWidget) -> None:
        label = QLabel(key)
        # Bilingual labels ("提示词引导系数 CFG scale") are long: past about 20 characters a
        # wrapping QLabel takes a second line instead of squeezing the fields, and the bilingual
        # text's no-break spaces make that line break fall between the two languages.
        label.setWordWrap(True)
        label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        form.addRow(label, field)
        self._labels[key] = label

    def retranslate(self) -> None:
        labels = {
            "checkpoint": self.tr("Checkpoint"),
            "vae": self.tr("VAE"),
            "sampler": self.tr("Sampler"),
            "schedule": self.tr("Schedule type"),
            "steps": self.tr("Sampling steps"),
            "cfg": self.tr("CFG scale"),
            "size": self.tr("Width × height"),
            "presets": self.tr("Size presets"),
            "seed": self.tr("Seed"),
            "batch": self.tr("Batch count × size"),
            "clip_skip": self.tr("Clip skip"),
        }
        for key, text in labels.items():
            self._labels[key].setText(text)
        self.swap_button.setToolTip(self.tr("Swap width and height", "tooltip"))
        self.random_seed_button.setToolTip(self.tr("Random seed (-1)", "tooltip"))
        self.reuse_seed_button.setToolTip(self._reuse_seed_tooltip())
        self.seed.setToolTip(self.tr("-1 picks a random seed and records it in the image"))
        self.batch_count.setToolTip(self.tr("How many batches to generate one after another"))
        self.batch_size.setToolTip(self.tr("How many images per batch (uses more memory)"))
        self.cfg_scale.setToolTip(self.tr("How strongly the image follows the prompt"))
        self.clip_skip.setToolTip(self.tr("Use an earlier CLIP layer (2 for many anime models)"))
        self._show_automatic_vae()
        self._fill_presets()

    def _automatic_vae_text(self) -> str:
        preferred = self._automatic_vae
        if preferred.path is not None:
            return self.tr("Automatic ({name})").replace("{name}", preferred.path.stem)
        if preferred.missing:
            return self.tr("Automatic (baked in; {name} not found)").replace("{name}", preferred.name)
        return self.tr("Automatic (baked in)")

    def _show_automatic_vae(self) -> None:
        if not self.vae.count():
            return
        self.vae.setItemText(0, self._automatic_vae_text())
        tip = self.tr(
            "The VAE preferred for this checkpoint (Models pane: right-click the checkpoint, Preferred VAE), "
            "else the one baked into the checkpoint"
        )
        self.vae.setItemData(0, tip, Qt.ItemDataRole.ToolTipRole)

    def _reuse_seed_tooltip(self) -> str:
        if self._last_seed is None:
            return self.tr("Reuse the seed of the last image")
        return self.tr("Reuse the seed of the last image ({seed})").replace("{seed}", str(self._last_seed))

    # --- model lists -----------------------------------------------------------------------------

    def set_checkpoints(self, entries: list[ModelEntry]) -> None:
        current = self.checkpoint.currentData()
        self.checkpoint.blockSignals(True)
        self.checkpoint.clear()
        for entry in entries:
            self.checkpoint.addItem(entry.name, str(entry.path))
            self.checkpoint.setItemData(self.checkpoint.count() - 1, str(entry.path), Qt.ItemDataRole.ToolTipRole)
        self.checkpoint.blockSignals(False)
        self.select_checkpoint(current or "")
        if self.checkpoint.currentIndex() < 0 and entries:
            self.checkpoint.setCurrentIndex(0)
        self._on_checkpoint_change()

    def set_vaes(self, entries: list[ModelEntry]) -> None:
        current = self.vae.currentData()
        self.vae.blockSignals(True)
        self.vae.clear()
        self.vae.addItem(self._automatic_vae_text(), "")
        for entry in entries:
            self.vae.addItem(entry.name, str(entry.path))
        index = self.vae.findData(current or "")
        self.vae.setCurrentIndex(max(index, 0))
        self.vae.blockSignals(False)
        self.refresh_preferred_vae()

    def refresh_preferred_vae(self) -> None:
        """Read the selected checkpoint's preferred VAE again (its ``name.json`` is a few hundred bytes)."""
        checkpoint = self.checkpoint_path()
        vaes = [Path(self.vae.itemData(index)) for index in range(1, self.vae.count()) if self.vae.itemData(index)]
        self._automatic_vae = preferred_vae(checkpoint, vaes) if checkpoint is not None else PreferredVae()
        self._show_automatic_vae()

    def automatic_vae(self) -> PreferredVae:
        """What the VAE's "Automatic" entry stands for with the selected checkpoint."""
        return self._automatic_vae

    def vae_warning(self) -> str:
        """A sentence when "Automatic" is chosen and the checkpoint's preferred VAE is not installed, else ""."""
        checkpoint = self.checkpoint_path()
        if self.vae.currentData() or checkpoint is None or not self._automatic_vae.missing:
            return ""
        return (
            self.tr("The preferred VAE of {checkpoint}, {vae}, is not installed; the checkpoint's own VAE is used.")
            .replace("{checkpoint}", self.checkpoint.currentText())
            .replace("{vae}", self._automatic_vae.name)
        )

    def select_checkpoint(self, path: str) -> None:
        index = self.checkpoint.findData(path)
        if index >= 0:
            self.checkpoint.setCurrentIndex(index)

    def checkpoint_path(self) -> Path | None:
        data = self.checkpoint.currentData()
        return Path(data) if data else None

    # --- request <-> fields ----------------------------------------------------------------------

    def request(self, prompt: str, negative_prompt: str, *, resolve_automatic_vae: bool = True) -> GenerationRequest:
        """The frozen request for the current fields. Raises InvalidRequest naming a bad field.

        With VAE "Automatic" the request names the checkpoint's preferred VAE when it has one
        installed (``resolve_automatic_vae=False``: no VAE, as the field says; for reusing fields).
        """
        seed_text = self.seed.text().strip() or "-1"
        seed = int(seed_text)
        if seed > MAX_SEED:
            raise InvalidRequest(self.tr("The seed must be at most {max}.").replace("{max}", str(MAX_SEED)), field="seed")
        vae = self.vae.currentData() or (self._automatic_vae.path if resolve_automatic_vae else None)
        request = GenerationRequest(
            prompt=prompt,
            negative_prompt=negative_prompt,
            steps=self.steps.value(),
            cfg_scale=round(self.cfg_scale.value(), 2),
            sampler=self.sampler.currentText(),
            schedule=self.schedule.currentText(),
            seed=seed,
            width=self.width_box.value(),
            height=self.height_box.value(),
            batch_size=self.batch_size.value(),
            batch_count=self.batch_count.value(),
            clip_skip=self.clip_skip.value(),
            vae_path=Path(vae) if vae else None,
            model_path=self.checkpoint_path(),
        )
        request.validate()
        return request

    def apply(self, request: GenerationRequest) -> None:
        """Show a request's values (used to restore settings and, later, to reuse an image's)."""
        if request.model_path is not None:
            self.select_checkpoint(str(request.model_path))
        self.vae.setCurrentIndex(max(self.vae.findData(str(request.vae_path) if request.vae_path else ""), 0))
        _select_text(self.sampler, request.sampler)
        _select_text(self.schedule, request.schedule)
        self.steps.setValue(request.steps)
        self.cfg_scale.setValue(request.cfg_scale)
        self.width_box.setValue(request.width)
        self.height_box.setValue(request.height)
        self.seed.setText(str(request.seed))
        self.batch_count.setValue(request.batch_count)
        self.batch_size.setValue(request.batch_size)
        self.clip_skip.setValue(request.clip_skip)

    def note_last_seed(self, seed: int) -> None:
        self._last_seed = seed
        self.reuse_seed_button.setEnabled(True)
        self.reuse_seed_button.setToolTip(self._reuse_seed_tooltip())

    def reuse_last_seed(self) -> None:
        if self._last_seed is not None:
            self.seed.setText(str(self._last_seed))

    def swap_size(self) -> None:
        width, height = self.width_box.value(), self.height_box.value()
        self.width_box.setValue(height)
        self.height_box.setValue(width)

    # --- persistence -----------------------------------------------------------------------------

    def save(self, store: SettingsStore) -> None:
        store.set(keys.CHECKPOINT, self.checkpoint.currentData() or "")
        store.set(keys.VAE, self.vae.currentData() or "")
        store.set(keys.SAMPLER, self.sampler.currentText())
        store.set(keys.SCHEDULE, self.schedule.currentText())
        store.set(keys.STEPS, self.steps.value())
        store.set(keys.CFG_SCALE, self.cfg_scale.value())
        store.set(keys.WIDTH, self.width_box.value())
        store.set(keys.HEIGHT, self.height_box.value())
        store.set(keys.SEED, int(self.seed.text() or -1))
        store.set(keys.BATCH_COUNT, self.batch_count.value())
        store.set(keys.BATCH_SIZE, self.batch_size.value())
        store.set(keys.CLIP_SKIP, self.clip_skip.value())

    def restore(self, store: SettingsStore) -> None:
        checkpoint, vae = store.get(keys.CHECKPOINT), store.get(keys.VAE)
        request = GenerationRequest(
            prompt="",
            sampler=store.get(keys.SAMPLER),
            schedule=store.get(keys.SCHEDULE),
            steps=store.get(keys.STEPS),
            cfg_scale=store.get(keys.CFG_SCALE),
            width=store.get(keys.WIDTH),
            height=store.get(keys.HEIGHT),
            seed=store.get(keys.SEED),
            batch_count=store.get(keys.BATCH_COUNT),
            batch_size=store.get(keys.BATCH_SIZE),
            clip_skip=store.get(keys.CLIP_SKIP),
            model_path=Path(checkpoint) if checkpoint else None,
            vae_path=Path(vae) if vae else None,
        )
        self.apply(request)

    # --- handlers --------------------------------------------------------------------------------

    def _on_checkpoint_change(self, *_args: object) -> None:
        self.refresh_preferred_vae()
        self._fill_presets()
        self.checkpoint_changed.emit(self.checkpoint.currentData() or "")
        self.changed.emit()

    def family(self) -> str:
        """The selected checkpoint's family ("sd1", "sd2", "sdxl"), read from its header once."""
        path = self.checkpoint.currentData()
        if not path:
            return "sd1"
        if path not in self._families:
            from desktop.library.probe import probe_model

            try:
                self._families[path] = probe_model(Path(path)).family.value
            except Exception:  # noqa: BLE001 - an unreadable file is reported when it is used
                self._families[path] = "sd1"
        return self._families[path]

    def _fill_presets(self) -> None:
        family = self.family()
        self.size_presets.clear()
        self.size_presets.addItem(self.tr("Choose a size…"), None)
        for width, height in SIZE_PRESETS.get(family, SIZE_PRESETS["sd1"]):
            self.size_presets.addItem(f"{width} × {height}", (width, height))

    def _on_preset_activated(self, index: int) -> None:
        size = self.size_presets.itemData(index)
        if size:
            self.width_box.setValue(size[0])
            self.height_box.setValue(size[1])
        self.size_presets.setCurrentIndex(0)


def _spin(low: int, high: int, value: int, *, step: int = 1) -> QSpinBox:
    box = QSpinBox()
    box.setRange(low, high)
    box.setSingleStep(step)
    box.setValue(value)
    return box


def _row(*widgets: QWidget) -> QWidget:
    holder = QWidget()
    layout = QHBoxLayout(holder)
    layout.setContentsMargins(0, 0, 0, 0)
    for widget in widgets:
        layout.addWidget(widget, 0 if isinstance(widget, QToolButton) else 1)
    return holder


def _select_text(combo: QComboBox, text: str) -> None:
    index = combo.findText(text, Qt.MatchFlag.MatchFixedString)
    if index >= 0:
        combo.setCurrentIndex(index)
