"""Preferences (Cmd+,): model folders, output folder, device and precision, attention slicing,
preview, language. Built from the settings declared in ``desktop.core.settings``."""

from __future__ import annotations

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QListWidget,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from desktop.core import settings as keys
from desktop.ui.settings_store import SettingsStore


class PreferencesDialog(QDialog):
    def __init__(self, store: SettingsStore, default_output: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.store = store
        self.setWindowTitle(self.tr("Preferences"))
        self.setMinimumWidth(520)

        self.model_folders = QListWidget()
        self.model_folders.addItems(list(store.get(keys.MODEL_FOLDERS)))
        self.model_folders.setToolTip(
            self.tr("Extra model folders, for example an existing A1111 or ComfyUI “models” folder")
        )
        add_folder = QPushButton(self.tr("Add…"))
        remove_folder = QPushButton(self.tr("Remove"))
        add_folder.clicked.connect(self._add_model_folder)
        remove_folder.clicked.connect(lambda: [self.model_folders.takeItem(self.model_folders.row(i)) for i in self.model_folders.selectedItems()])

        self.output_folder = QLineEdit(store.get(keys.OUTPUT_FOLDER))
        self.output_folder.setPlaceholderText(default_output)
        choose_output = QPushButton(self.tr("Choose…"))
        choose_output.clicked.connect(self._choose_output)

        self.device = _choices(
            store.get(keys.DEVICE),
            {"auto": self.tr("Automatic (Apple GPU when available)"), "mps": "Apple GPU (MPS)", "cuda": "NVIDIA GPU (CUDA)", "cpu": "CPU"},
        )
        self.precision = _choices(
            store.get(keys.PRECISION),
            {"auto": self.tr("Automatic (fp16 on GPU, fp32 VAE)"), "fp16": "fp16", "bf16": "bf16", "fp32": self.tr("fp32 (slow, most compatible)")},
        )
        self.attention_slicing = QCheckBox(self.tr("Attention slicing (less memory, a little slower)"))
        self.attention_slicing.setChecked(store.get(keys.ATTENTION_SLICING))
        self.preview = _choices(store.get(keys.PREVIEW), {"approx": self.tr("Every step (TAESD when installed in VAE-approx)"), "off": self.tr("Off")})
        self.language = _choices(
            store.get(keys.LANGUAGE),
            {"system": self.tr("System"), "en": "English", "zh_CN": "简体中文", "bilingual": "中文 + English"},
        )

        folders = QWidget()
        folder_layout = QVBoxLayout(folders)
        folder_layout.setContentsMargins(0, 0, 0, 0)
        folder_layout.addWidget(self.model_folders)
        folder_layout.addLayout(_hbox(add_folder, remove_folder))
        output = QWidget()
        output_layout = QHBoxLayout(output)
        output_layout.setContentsMargins(0, 0, 0, 0)
        output_layout.addWidget(self.output_folder, 1)
        output_layout.addWidget(choose_output)

        form = QFormLayout()
        form.addRow(self.tr("Model folders"), folders)
        form.addRow(self.tr("Output folder"), output)
        form.addRow(self.tr("Device"), self.device)
        form.addRow(self.tr("Precision"), self.precision)
        form.addRow("", self.attention_slicing)
        form.addRow(self.tr("Live preview"), self.preview)
        form.addRow(self.tr("Language"), self.language)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(buttons)

    def accept(self) -> None:
        store = self.store
        store.set(keys.MODEL_FOLDERS, tuple(self.model_folders.item(i).text() for i in range(self.model_folders.count())))
        store.set(keys.OUTPUT_FOLDER, self.output_folder.text().strip())
        store.set(keys.DEVICE, self.device.currentData())
        store.set(keys.PRECISION, self.precision.currentData())
        store.set(keys.ATTENTION_SLICING, self.attention_slicing.isChecked())
        store.set(keys.PREVIEW, self.preview.currentData())
        store.set(keys.LANGUAGE, self.language.currentData())
        store.sync()
        super().accept()

    def _add_model_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, self.tr("Choose a models folder"))
        if folder:
            self.model_folders.addItem(folder)

    def _choose_output(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, self.tr("Choose the output folder"), self.output_folder.text())
        if folder:
            self.output_folder.setText(folder)


def _choices(current: str, labels: dict[str, str]) -> QComboBox:
    combo = QComboBox()
    for value, label in labels.items():
        combo.addItem(label, value)
    combo.setCurrentIndex(max(combo.findData(current), 0))
    return combo


def _hbox(*widgets: QWidget) -> QHBoxLayout:
    layout = QHBoxLayout()
    for widget in widgets:
        layout.addWidget(widget)
    layout.addStretch(1)
    return layout
