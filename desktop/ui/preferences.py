"""Preferences (Cmd+,): model folders, output folder, device and precision, attention slicing,
preview, language. Built from the settings declared in ``desktop.core.settings``.

Choosing a language switches the whole app at once, this dialog included, so the user sees the
choice before keeping it; Cancel switches back.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QCoreApplication, QEvent
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from desktop.core import settings as keys
from desktop.ui.i18n import apply_language, translations_dir
from desktop.ui.settings_store import SettingsStore

# Language names are written in their own language, so whoever has to find theirs can read it.
LANGUAGE_NAMES = {"en": "English", "zh_CN": "简体中文", "bilingual": "中文 + English"}


class PreferencesDialog(QDialog):
    def __init__(
        self, store: SettingsStore, default_output: str, parent: QWidget | None = None, *, qm_dir: Path | None = None
    ) -> None:
        super().__init__(parent)
        self.store = store
        self._qm_dir = qm_dir if qm_dir is not None else translations_dir()
        self._language_at_open = store.get(keys.LANGUAGE)
        self.setMinimumWidth(600)

        self.model_folders = QListWidget()
        self.model_folders.addItems(list(store.get(keys.MODEL_FOLDERS)))
        self.add_folder_button = QPushButton()
        self.remove_folder_button = QPushButton()
        self.add_folder_button.clicked.connect(self._add_model_folder)
        self.remove_folder_button.clicked.connect(self._remove_model_folders)

        self.install_mode = _choices(store.get(keys.INSTALL_MODE), ("copy", "move", "link"))

        self.output_folder = QLineEdit(store.get(keys.OUTPUT_FOLDER))
        self.output_folder.setPlaceholderText(default_output)
        self.choose_output_button = QPushButton()
        self.choose_output_button.clicked.connect(self._choose_output)

        # Items are added with their values; their texts come from retranslate().
        self.device = _choices(store.get(keys.DEVICE), ("auto", "mps", "cuda", "cpu"))
        self.precision = _choices(store.get(keys.PRECISION), ("auto", "fp16", "bf16", "fp32"))
        self.attention_slicing = QCheckBox()
        self.attention_slicing.setChecked(store.get(keys.ATTENTION_SLICING))
        self.preview = _choices(store.get(keys.PREVIEW), ("approx", "off"))
        self.language = _choices(self._language_at_open, ("system", "en", "zh_CN", "bilingual"))
        self.language_warning = QLabel()
        self.language_warning.setObjectName("language_warning")
        self.language_warning.setWordWrap(True)
        self.language_warning.hide()

        folders = QWidget()
        folder_layout = QVBoxLayout(folders)
        folder_layout.setContentsMargins(0, 0, 0, 0)
        folder_layout.addWidget(self.model_folders)
        folder_layout.addLayout(_hbox(self.add_folder_button, self.remove_folder_button))
        output = QWidget()
        output_layout = QHBoxLayout(output)
        output_layout.setContentsMargins(0, 0, 0, 0)
        output_layout.addWidget(self.output_folder, 1)
        output_layout.addWidget(self.choose_output_button)
        language = QWidget()
        language_layout = QVBoxLayout(language)
        language_layout.setContentsMargins(0, 0, 0, 0)
        language_layout.addWidget(self.language)
        language_layout.addWidget(self.language_warning)

        form = QFormLayout()
        self._labels: dict[str, QLabel] = {}
        for key, field in (
            ("model_folders", folders),
            ("install_mode", self.install_mode),
            ("output_folder", output),
            ("device", self.device),
            ("precision", self.precision),
            ("attention_slicing", self.attention_slicing),
            ("preview", self.preview),
            ("language", language),
        ):
            label = QLabel()
            label.setWordWrap(True)  # a bilingual label breaks between the languages instead of widening the dialog
            self._labels[key] = label
            form.addRow(label, field)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.buttons)

        self.retranslate()
        self.language.currentIndexChanged.connect(self._on_language_change)

    def retranslate(self) -> None:
        self.setWindowTitle(self.tr("Preferences"))
        labels = {
            "model_folders": self.tr("Model folders"),
            "install_mode": self.tr("Dropped models"),
            "output_folder": self.tr("Output folder"),
            "device": self.tr("Device"),
            "precision": self.tr("Precision"),
            "attention_slicing": "",
            "preview": self.tr("Live preview"),
            "language": self.tr("Language"),
        }
        for key, text in labels.items():
            self._labels[key].setText(text)
        self.model_folders.setToolTip(
            self.tr("Extra model folders, for example an existing A1111 or ComfyUI “models” folder")
        )
        _name_items(self.install_mode, {
            "copy": self.tr("Copy into the models folder"),
            "move": self.tr("Move into the models folder"),
            "link": self.tr("Link (the file stays where it is)"),
        })
        self.install_mode.setToolTip(self.tr("What happens to a model file dropped on the window"))
        self.add_folder_button.setText(self.tr("Add…"))
        self.remove_folder_button.setText(self.tr("Remove"))
        self.choose_output_button.setText(self.tr("Choose…"))
        _name_items(self.device, {
            "auto": self.tr("Automatic (Apple GPU when available)"),
            "mps": "Apple GPU (MPS)",
            "cuda": "NVIDIA GPU (CUDA)",
            "cpu": "CPU",
        })
        _name_items(self.precision, {
            "auto": self.tr("Automatic (fp16 on GPU, fp32 VAE)"),
            "fp16": "fp16",
            "bf16": "bf16",
            "fp32": self.tr("fp32 (slow, most compatible)"),
        })
        self.attention_slicing.setText(self.tr("Attention slicing (less memory, a little slower)"))
        _name_items(self.preview, {
            "approx": self.tr("Every step (TAESD when installed in VAE-approx)"),
            "off": self.tr("Off"),
        })
        _name_items(self.language, {"system": self.tr("System"), **LANGUAGE_NAMES})
        self.language.setToolTip(self.tr("Takes effect at once, in every window"))

    def changeEvent(self, event: QEvent) -> None:  # noqa: N802 - Qt's name
        if event.type() == QEvent.Type.LanguageChange:
            self.retranslate()
        super().changeEvent(event)

    def accept(self) -> None:
        store = self.store
        store.set(keys.MODEL_FOLDERS, tuple(self.model_folders.item(i).text() for i in range(self.model_folders.count())))
        store.set(keys.INSTALL_MODE, self.install_mode.currentData())
        store.set(keys.OUTPUT_FOLDER, self.output_folder.text().strip())
        store.set(keys.DEVICE, self.device.currentData())
        store.set(keys.PRECISION, self.precision.currentData())
        store.set(keys.ATTENTION_SLICING, self.attention_slicing.isChecked())
        store.set(keys.PREVIEW, self.preview.currentData())
        store.set(keys.LANGUAGE, self.language.currentData())
        store.sync()
        super().accept()

    def reject(self) -> None:
        if self.language.currentData() != self._language_at_open:
            self._switch_language(self._language_at_open)  # the choice was only being tried
        super().reject()

    def _on_language_change(self, _index: int) -> None:
        self._switch_language(self.language.currentData())

    def _switch_language(self, choice: str) -> None:
        app = QCoreApplication.instance()
        if app is None:
            return
        warnings = apply_language(app, choice, self._qm_dir)
        self.language_warning.setText("\n".join(warnings))
        self.language_warning.setVisible(bool(warnings))

    def _add_model_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, self.tr("Choose a models folder"))
        if folder:
            self.model_folders.addItem(folder)

    def _remove_model_folders(self) -> None:
        for item in self.model_folders.selectedItems():
            self.model_folders.takeItem(self.model_folders.row(item))

    def _choose_output(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, self.tr("Choose the output folder"), self.output_folder.text())
        if folder:
            self.output_folder.setText(folder)


def _choices(current: str, values: tuple[str, ...]) -> QComboBox:
    combo = QComboBox()
    for value in values:
        combo.addItem(value, value)
    combo.setCurrentIndex(max(combo.findData(current), 0))
    return combo


def _name_items(combo: QComboBox, labels: dict[str, str]) -> None:
    """Give each item (found by its value) its text in the current language."""
    for index in range(combo.count()):
        combo.setItemText(index, labels.get(combo.itemData(index), combo.itemText(index)))


def _hbox(*widgets: QWidget) -> QHBoxLayout:
    layout = QHBoxLayout()
    for widget in widgets:
        layout.addWidget(widget)
    layout.addStretch(1)
    return layout
