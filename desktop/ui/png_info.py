"""PNG Info: how any image was made (A1111, ComfyUI, InvokeAI, NovelAI, Draw Things), read from its file.

Everything here comes from a file somebody else wrote, so it is shown as plain text only (never
rich text, which would load ``<img src=...>`` or show live links) and long texts are cut for
display (BAD_INPUTS 9, 10); "Show Raw" gives the text as found, within the reader's own limit.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from PySide6.QtCore import QCoreApplication, QLocale, Qt, Signal
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMessageBox,
    QPlainTextEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from desktop.core.errors import DesktopError
from desktop.library.image_metadata import SOURCE_NAMES, ImageMetadata, read_image_metadata

# A prompt longer than this is not something to read; the cut keeps layout and painting fast.
TEXT_LIMIT = 20_000
VALUE_LIMIT = 2_000  # one parameter value (a ComfyUI workflow squeezed into a key must not flood the table)
ROW_LIMIT = 300  # parameter rows shown


def shown_text(text: str, limit: int = TEXT_LIMIT) -> str:
    """``text`` cut to ``limit`` characters, saying how much was left out."""
    if len(text) <= limit:
        return text
    more = QCoreApplication.translate("PngInfoDialog", "… ({count} more characters not shown)")
    return text[:limit] + "\n" + more.replace("{count}", QLocale().toString(len(text) - limit))


def source_name(source: str) -> str:
    """The tool that wrote the metadata, as its users know it; an unknown code is shown as it is."""
    return SOURCE_NAMES.get(source, source)


def plain_label(text: str = "") -> QLabel:
    """A label that never interprets its text as HTML (Qt guesses rich text by default)."""
    label = QLabel()
    label.setTextFormat(Qt.TextFormat.PlainText)
    label.setText(text)
    return label


def plain_warning(parent: QWidget | None, title: str, text: str) -> None:
    """A warning whose text (holding a file name) is never taken for HTML, as QMessageBox.warning would guess."""
    box = QMessageBox(QMessageBox.Icon.Warning, title, "", QMessageBox.StandardButton.Ok, parent)
    box.setTextFormat(Qt.TextFormat.PlainText)
    box.setText(text)
    box.exec()


def copy_to_clipboard(text: str) -> None:
    if text:
        QGuiApplication.clipboard().setText(text)


class MetadataView(QWidget):
    """Prompt, negative prompt and parameters of one image, read-only and selectable, as plain text."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.prompt_label, self.negative_label, self.params_label = plain_label(), plain_label(), plain_label()
        self.prompt_text = self._text_box(3, 8)
        self.negative_text = self._text_box(2, 5)
        self.params_table = QTableWidget(0, 2)
        self.params_table.setObjectName("params_table")
        self.params_table.horizontalHeader().setVisible(False)
        self.params_table.verticalHeader().setVisible(False)
        self.params_table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        self.params_table.horizontalHeader().setStretchLastSection(True)
        self.params_table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.params_table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.params_table.setWordWrap(False)
        self.params_table.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 8)
        self.params_table.setMinimumHeight(self.fontMetrics().height() * 6)
        self.params_table.setTextElideMode(Qt.TextElideMode.ElideRight)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        for label, box in ((self.prompt_label, self.prompt_text), (self.negative_label, self.negative_text)):
            layout.addWidget(label)
            layout.addWidget(box)
        layout.addWidget(self.params_label)
        layout.addWidget(self.params_table, 1)
        self.retranslate()

    def retranslate(self) -> None:
        self.prompt_label.setText(self.tr("Prompt"))
        self.negative_label.setText(self.tr("Negative prompt"))
        self.params_label.setText(self.tr("Parameters"))
        self.negative_text.setPlaceholderText(self.tr("(none)"))

    def set_metadata(self, prompt: str, negative_prompt: str, params: Iterable[tuple[str, str]]) -> None:
        self.prompt_text.setPlainText(shown_text(prompt))
        self.negative_text.setPlainText(shown_text(negative_prompt))
        rows = list(params)
        shown = rows[:ROW_LIMIT]
        self.params_table.setRowCount(len(shown))
        for row, (key, value) in enumerate(shown):
            self.params_table.setItem(row, 0, QTableWidgetItem(shown_text(key, 200)))  # items never render HTML
            item = QTableWidgetItem(shown_text(value, VALUE_LIMIT))
            item.setToolTip("")  # a tooltip would guess rich text; the full value is in the cell and Show Raw
            self.params_table.setItem(row, 1, item)
        self.params_table.resizeColumnToContents(0)

    def _text_box(self, min_lines: int, max_lines: int) -> QPlainTextEdit:
        """A read-only box between ``min_lines`` and ``max_lines`` high: the parameter table gets the rest."""
        box = QPlainTextEdit()
        box.setReadOnly(True)
        line = self.fontMetrics().lineSpacing()
        box.setMinimumHeight(line * min_lines + 12)
        box.setMaximumHeight(line * max_lines + 12)
        return box


class PngInfoDialog(QDialog):
    """The generation parameters found in one image file, with Reuse Parameters and Copy Infotext."""

    reuse_requested = Signal(object)  # the ImageMetadata: .prompt, .negative_prompt, .params

    def __init__(self, metadata: ImageMetadata, path: Path | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("png_info")
        self.metadata, self.path = metadata, path
        self.summary = plain_label()
        self.summary.setObjectName("png_info_summary")
        self.summary.setWordWrap(True)
        self.details = MetadataView()
        self.details.set_metadata(metadata.prompt, metadata.negative_prompt, metadata.params)
        self.details.setVisible(metadata.found)
        self.raw_text = QPlainTextEdit()
        self.raw_text.setObjectName("png_info_raw")
        self.raw_text.setReadOnly(True)
        self.raw_text.setLineWrapMode(QPlainTextEdit.LineWrapMode.WidgetWidth)
        self.raw_text.setVisible(False)  # filled on first use: the raw text can be 200,000 characters

        self.raw_button = QPushButton()
        self.raw_button.setCheckable(True)
        self.raw_button.setEnabled(bool(metadata.raw))
        self.reuse_button = QPushButton()
        self.reuse_button.setObjectName("png_info_reuse")
        self.copy_button = QPushButton()
        for button in (self.reuse_button, self.copy_button):
            button.setEnabled(metadata.found)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.buttons.addButton(self.reuse_button, QDialogButtonBox.ButtonRole.ActionRole)
        self.buttons.addButton(self.copy_button, QDialogButtonBox.ButtonRole.ActionRole)
        self.buttons.rejected.connect(self.reject)

        bottom = QHBoxLayout()
        bottom.addWidget(self.raw_button)
        bottom.addStretch(1)
        bottom.addWidget(self.buttons)
        layout = QVBoxLayout(self)
        layout.addWidget(self.summary)
        layout.addWidget(self.details, 1)
        layout.addWidget(self.raw_text, 1)
        layout.addLayout(bottom)

        self.raw_button.toggled.connect(self._show_raw)
        self.reuse_button.clicked.connect(self._reuse)
        self.copy_button.clicked.connect(lambda: copy_to_clipboard(self.metadata.infotext()))
        self.resize(640, 560)
        self.retranslate()

    def retranslate(self) -> None:
        name = self.path.name if self.path is not None else ""
        self.setWindowTitle(self.tr("PNG Info") + (f" — {name}" if name else ""))
        if self.metadata.found:
            summary = self.tr("Written by {tool}").replace("{tool}", source_name(self.metadata.source))
        else:
            summary = self.tr("No generation parameters found")
        if self.metadata.width and self.metadata.height:
            summary += f" · {self.metadata.width} × {self.metadata.height}"
        self.summary.setText(summary)
        self.raw_button.setText(self.tr("Show Raw"))
        self.reuse_button.setText(self.tr("Reuse Parameters"))
        self.copy_button.setText(self.tr("Copy Infotext"))
        self.details.retranslate()

    def changeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        from PySide6.QtCore import QEvent

        if event.type() == QEvent.Type.LanguageChange:
            self.retranslate()
        super().changeEvent(event)

    def _show_raw(self, shown: bool) -> None:
        if shown and not self.raw_text.toPlainText():
            self.raw_text.setPlainText(self.metadata.raw)  # the reader already cut it to 200,000 characters
        self.raw_text.setVisible(shown)
        self.details.setVisible(self.metadata.found and not shown)

    def _reuse(self) -> None:
        self.reuse_requested.emit(self.metadata)
        self.accept()


def show_png_info(parent: QWidget | None, path: str | Path) -> PngInfoDialog | None:
    """Read ``path`` (no pixels decoded) and show its PNG Info, or say why it cannot be read; non-modal."""
    path = Path(path)
    try:
        metadata = read_image_metadata(path)
    except (DesktopError, OSError) as error:
        plain_warning(
            parent,
            QCoreApplication.translate("PngInfoDialog", "Cannot Read Image"),
            QCoreApplication.translate("PngInfoDialog", "{name} cannot be read: {error}")
            .replace("{name}", path.name)
            .replace("{error}", str(error)),
        )
        return None
    dialog = PngInfoDialog(metadata, path, parent)
    dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    dialog.show()
    return dialog
