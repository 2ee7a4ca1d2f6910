"""The dataset side of the training window: the image folder, its thumbnails, and caption editing.

Captions are what a LoRA learns to associate with the images, and fixing one is the most common
thing a user does before a run, so the editor sits under the grid: select an image, edit, and the
text goes to the caption file next to the image (atomically: a crash never leaves half a caption).
Images without a caption are marked, because kohya then trains them on the folder name or the
trigger word alone, which is rarely what the user meant.

Scanning the folder (sizes, captions, repeat folders) is the injected ``scan_dataset`` from the
training package; it runs on a pool thread so that a folder of thousands of images never stalls
the window. Thumbnails come from the shared :class:`ThumbnailLoader`, only for rows on screen.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from PySide6.QtCore import (
    QAbstractListModel,
    QEvent,
    QItemSelection,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QRect,
    QRunnable,
    QSize,
    Qt,
    QThreadPool,
    Signal,
    Slot,
)
from PySide6.QtGui import QColor, QIcon, QImage, QPainter, QPixmap
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListView,
    QPlainTextEdit,
    QPushButton,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QVBoxLayout,
    QWidget,
)

from desktop.library.atomic_write import write_text_atomically
from desktop.training.config import TrainingConfig
from desktop.training.estimate import DatasetImage, DatasetSummary
from desktop.ui.thumbnails import ThumbnailLoader

ScanDataset = Callable[[TrainingConfig], DatasetSummary]

THUMBNAIL = 96  # grid cell image side, points
THUMBNAIL_PIXELS = 192  # decoded side: sharp on Retina
CAPTION_EXTENSIONS = (".txt", ".caption")


def caption_path_for(image: Path, extension: str = ".txt") -> Path:
    """The caption file of ``image``: the one with the run's extension, else an existing .txt/.caption, else a new one."""
    preferred = image.with_suffix(extension or ".txt")
    if preferred.exists():
        return preferred
    for suffix in CAPTION_EXTENSIONS:
        other = image.with_suffix(suffix)
        if other.exists():
            return other
    return preferred


# --- scanning off the GUI thread -------------------------------------------------------------------


class _ScanRelay(QObject):
    """Parentless, shared with the tasks: outlives a closed window while a scan still runs."""

    done = Signal(int, object, str)  # generation, summary or None, error message


class _ScanTask(QRunnable):
    def __init__(self, generation: int, scan: ScanDataset, config: TrainingConfig, relay: _ScanRelay) -> None:
        super().__init__()
        self.generation, self.scan, self.config, self.relay = generation, scan, config, relay

    def run(self) -> None:
        try:
            summary, error = self.scan(self.config), ""
        except Exception as failure:  # noqa: BLE001 - any scan failure is shown to the user, never kills the pool thread
            summary, error = None, str(failure) or type(failure).__name__
        try:
            self.relay.done.emit(self.generation, summary, error)
        except RuntimeError:  # the window is gone
            pass


class DatasetScanner(QObject):
    """Runs ``scan(config)`` on its own thread; only the newest request's result is reported."""

    scanned = Signal(object)  # DatasetSummary
    failed = Signal(str)

    def __init__(self, scan: ScanDataset, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._scan = scan
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(1)  # one walk of one disk at a time
        self._relay = _ScanRelay()
        self._relay.done.connect(self._on_done)
        self._generation = itertools.count(1)
        self._latest = 0
        self._pending = False

    def scan(self, config: TrainingConfig) -> None:
        self._latest = next(self._generation)
        self._pending = True
        self._pool.clear()  # a queued scan of an older folder is no longer wanted
        self._pool.start(_ScanTask(self._latest, self._scan, config, self._relay))

    def is_scanning(self) -> bool:
        """A scan was asked for and its result has not been reported yet."""
        return self._pending

    def wait(self, msecs: int = -1) -> bool:
        return self._pool.waitForDone(msecs)

    @Slot(int, object, str)
    def _on_done(self, generation: int, summary: DatasetSummary | None, error: str) -> None:
        if generation != self._latest:
            return  # the folder changed while this ran
        self._pending = False
        if summary is None:
            self.failed.emit(error)
        else:
            self.scanned.emit(summary)


# --- the grid --------------------------------------------------------------------------------------


class DatasetModel(QAbstractListModel):
    """The scanned images; captions edited here replace the scanned ones."""

    PathRole = Qt.ItemDataRole.UserRole + 1
    CaptionRole = Qt.ItemDataRole.UserRole + 2  # str, or None for an image without caption
    RepeatsRole = Qt.ItemDataRole.UserRole + 3

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._images: list[DatasetImage] = []
        self._row_of: dict[str, int] = {}
        self._icons: dict[str, QIcon] = {}
        self._placeholder: QIcon | None = None
        self.loader = ThumbnailLoader(self, threads=2)
        self.loader.loaded.connect(self._on_thumbnail)

    def set_images(self, images: tuple[DatasetImage, ...] | list[DatasetImage]) -> None:
        self.beginResetModel()
        self.loader.cancel_pending()
        self._images = list(images)
        self._row_of = {str(image.path): row for row, image in enumerate(self._images)}
        self._icons = {key: icon for key, icon in self._icons.items() if key in self._row_of}
        self.endResetModel()

    def images(self) -> list[DatasetImage]:
        return list(self._images)

    def image_at(self, row: int) -> DatasetImage:
        return self._images[row]

    def row_of(self, path: Path | str) -> int:
        return self._row_of.get(str(path), -1)

    def set_caption(self, path: Path, caption: str | None) -> None:
        row = self.row_of(path)
        if row < 0:
            return
        self._images[row] = self._images[row]._replace(caption=caption)
        index = self.index(row)
        self.dataChanged.emit(index, index)

    def has_thumbnail(self, path: Path | str) -> bool:
        return str(path) in self._icons

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: N802, B008
        return 0 if parent.isValid() else len(self._images)

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or index.row() >= len(self._images):
            return None
        image = self._images[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return image.path.name
        if role == Qt.ItemDataRole.DecorationRole:
            key = str(image.path)
            icon = self._icons.get(key)
            if icon is None:
                self.loader.request(key, THUMBNAIL_PIXELS)  # only rows being painted ask
                return self._placeholder_icon()
            return icon
        if role == Qt.ItemDataRole.ToolTipRole:
            caption = image.caption if image.caption is not None else self.tr("No caption: trained on the folder name or trigger word only")
            return f"{image.folder}/{image.path.name}\n{caption}"  # a tooltip from a file: plain text below
        if role == self.PathRole:
            return image.path
        if role == self.CaptionRole:
            return image.caption
        if role == self.RepeatsRole:
            return image.repeats
        return None

    @Slot(str, QImage)
    def _on_thumbnail(self, key: str, image: QImage) -> None:
        row = self._row_of.get(key)
        if row is None:
            return
        self._icons[key] = _square_icon(image) if not image.isNull() else self._placeholder_icon()
        index = self.index(row)
        self.dataChanged.emit(index, index, [Qt.ItemDataRole.DecorationRole])

    def _placeholder_icon(self) -> QIcon:
        if self._placeholder is None:
            pixmap = QPixmap(THUMBNAIL_PIXELS, THUMBNAIL_PIXELS)
            pixmap.fill(QColor(128, 128, 128, 60))
            self._placeholder = QIcon(pixmap)
        return self._placeholder


def _square_icon(image: QImage) -> QIcon:
    """The image centred on a transparent square: every cell the same size, portrait or landscape
    (the grid's uniform item size is measured once, on whichever icon came first)."""
    side = max(image.width(), image.height())
    pixmap = QPixmap(side, side)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    painter.drawImage((side - image.width()) // 2, (side - image.height()) // 2, image)
    painter.end()
    return QIcon(pixmap)


class _CaptionBadgeDelegate(QStyledItemDelegate):
    """Draws the thumbnail, then a small warning badge on images that have no caption."""

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: QModelIndex) -> None:
        super().paint(painter, option, index)
        if index.data(DatasetModel.CaptionRole) is not None:
            return
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        rect = QRect(option.rect.center().x() + THUMBNAIL // 2 - 22, option.rect.top() + 4, 20, 20)  # the icon's corner
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor(230, 140, 20))
        painter.drawEllipse(rect)
        painter.setPen(QColor("white"))
        font = painter.font()
        font.setBold(True)
        painter.setFont(font)
        painter.drawText(rect, Qt.AlignmentFlag.AlignCenter, "!")
        painter.restore()


# --- the pane ----------------------------------------------------------------------------------------


class DatasetView(QWidget):
    """Folder picker, counts, thumbnail grid and the caption editor of the selected image.

    ``folder_chosen(str)`` when the user picks or types a folder (the window rescans);
    ``caption_saved(str)`` with the caption file written; ``problem(str)`` when a save fails.
    """

    folder_chosen = Signal(str)
    caption_saved = Signal(str)
    problem = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.caption_extension = ".txt"
        self._summary = DatasetSummary()
        self._current: Path | None = None  # the image whose caption is in the editor
        self._last_folder = ""

        self.folder = QLineEdit()
        self.folder.setObjectName("dataset_folder")
        self.choose_button = QPushButton()
        self.counts = QLabel()
        self.counts.setObjectName("dataset_counts")
        self.counts.setWordWrap(True)
        self.counts.setTextFormat(Qt.TextFormat.PlainText)
        self.warnings = QLabel()
        self.warnings.setObjectName("dataset_warnings")
        self.warnings.setWordWrap(True)
        self.warnings.setTextFormat(Qt.TextFormat.PlainText)
        self.warnings.hide()

        self.model = DatasetModel(self)
        self.grid = QListView()
        self.grid.setObjectName("dataset_grid")
        self.grid.setViewMode(QListView.ViewMode.IconMode)
        self.grid.setResizeMode(QListView.ResizeMode.Adjust)
        self.grid.setMovement(QListView.Movement.Static)
        self.grid.setUniformItemSizes(True)
        self.grid.setIconSize(QSize(THUMBNAIL, THUMBNAIL))
        self.grid.setGridSize(QSize(THUMBNAIL + 16, THUMBNAIL + 30))
        self.grid.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.grid.setWordWrap(False)
        self.grid.setSelectionMode(QListView.SelectionMode.SingleSelection)
        self.grid.setItemDelegate(_CaptionBadgeDelegate(self.grid))
        self.grid.setModel(self.model)

        self.caption_title = QLabel()
        self.caption_title.setObjectName("caption_title")
        self.caption_title.setTextFormat(Qt.TextFormat.PlainText)
        self.caption_editor = QPlainTextEdit()
        self.caption_editor.setObjectName("caption_editor")
        self.caption_editor.setTabChangesFocus(True)
        self.caption_editor.setMaximumHeight(110)
        self.caption_editor.setEnabled(False)
        self.save_caption_button = QPushButton()
        self.save_caption_button.setEnabled(False)

        folder_row = QHBoxLayout()
        folder_row.addWidget(self.folder, 1)
        folder_row.addWidget(self.choose_button)
        caption_row = QHBoxLayout()
        caption_row.addWidget(self.caption_title, 1)
        caption_row.addWidget(self.save_caption_button)
        layout = QVBoxLayout(self)
        layout.addLayout(folder_row)
        layout.addWidget(self.counts)
        layout.addWidget(self.warnings)
        layout.addWidget(self.grid, 1)
        layout.addLayout(caption_row)
        layout.addWidget(self.caption_editor)

        self.choose_button.clicked.connect(self.choose_folder)
        self.folder.editingFinished.connect(self._on_folder_edited)
        self.grid.selectionModel().selectionChanged.connect(self._on_selection_change)
        self.save_caption_button.clicked.connect(self.save_caption)
        self.caption_editor.modificationChanged.connect(self.save_caption_button.setEnabled)
        self.retranslate()

    # --- texts ---

    def retranslate(self) -> None:
        self.folder.setPlaceholderText(self.tr("A folder of images with .txt captions (kohya: 10_name subfolders repeat 10×)"))
        self.choose_button.setText(self.tr("Choose…"))
        self.choose_button.setToolTip(self.tr("Choose the folder of training images (or drop it on the window)"))
        self.save_caption_button.setText(self.tr("Save Caption"))
        self.save_caption_button.setToolTip(self.tr("Write the caption to its .txt file (⌘S); switching images saves too"))
        self._no_caption_hint = self.tr("This image has no caption yet. Describe what is in it; the trigger word is added for you.")
        if self._current is not None:
            self.caption_editor.setPlaceholderText(self._no_caption_hint)
        self._show_caption_title()

    def changeEvent(self, event: QEvent) -> None:  # noqa: N802
        if event.type() == QEvent.Type.LanguageChange:
            self.retranslate()
        super().changeEvent(event)

    # --- dataset ---

    def set_folder(self, folder: str) -> None:
        """Show ``folder`` in the field without asking for a scan (the window does that)."""
        self._last_folder = folder
        self.folder.setText(folder)

    def summary(self) -> DatasetSummary:
        return self._summary

    def set_summary(self, summary: DatasetSummary) -> None:
        """A new scan: the grid shows its images; the selected image stays selected if it is still there."""
        self.save_caption_if_changed()
        keep = self._current
        self._summary = summary
        self.model.set_images(summary.images)
        self.warnings.setText("\n".join(summary.warnings))
        self.warnings.setVisible(bool(summary.warnings))
        self._current = None
        row = self.model.row_of(keep) if keep is not None else -1
        if row >= 0:
            self.grid.setCurrentIndex(self.model.index(row))
        else:
            self._show_caption(None)

    def set_scan_error(self, message: str) -> None:
        self.set_summary(DatasetSummary())
        self.warnings.setText(message)
        self.warnings.setVisible(bool(message))

    def choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, self.tr("Choose the folder of training images"), self.folder.text())
        if folder:
            self.folder.setText(folder)
            self._last_folder = folder
            self.folder_chosen.emit(folder)

    def select_path(self, path: Path) -> bool:
        row = self.model.row_of(path)
        if row < 0:
            return False
        self.grid.setCurrentIndex(self.model.index(row))
        return True

    def current_path(self) -> Path | None:
        return self._current

    # --- captions ---

    def save_caption(self) -> bool:
        """Write the editor's text to the current image's caption file; False (and ``problem``) on failure."""
        if self._current is None:
            return False
        text = self.caption_editor.toPlainText()
        target = caption_path_for(self._current, self.caption_extension)
        try:
            write_text_atomically(target, text)
        except OSError as error:
            self.problem.emit(self.tr("Cannot save the caption {file}: {error}").replace("{file}", str(target)).replace("{error}", error.strerror or str(error)))
            return False
        self.caption_editor.document().setModified(False)
        self.model.set_caption(self._current, text)
        self._summary = replace(self._summary, images=tuple(self.model.images()))
        self._show_caption_title()
        self.caption_saved.emit(str(target))
        return True

    def save_caption_if_changed(self) -> bool:
        if self._current is not None and self.caption_editor.document().isModified():
            return self.save_caption()
        return True

    def has_unsaved_caption(self) -> bool:
        return self._current is not None and self.caption_editor.document().isModified()

    @Slot(QItemSelection, QItemSelection)
    def _on_selection_change(self, _selected: QItemSelection, _deselected: QItemSelection) -> None:
        self.save_caption_if_changed()  # switching images saves the one being left
        indexes = self.grid.selectionModel().selectedIndexes()
        self._show_caption(self.model.image_at(indexes[0].row()) if indexes else None)

    def _show_caption(self, image: DatasetImage | None) -> None:
        self._current = image.path if image is not None else None
        self.caption_editor.blockSignals(True)
        self.caption_editor.setPlainText((image.caption or "") if image is not None else "")
        self.caption_editor.blockSignals(False)
        self.caption_editor.document().setModified(False)  # setPlainText also starts a fresh undo history
        self.caption_editor.setEnabled(image is not None)
        self.caption_editor.setPlaceholderText(self._no_caption_hint if image is not None else "")
        self.save_caption_button.setEnabled(False)
        self._show_caption_title()

    def _show_caption_title(self) -> None:
        if self._current is None:
            self.caption_title.setText(self.tr("Select an image to edit its caption"))
            return
        row = self.model.row_of(self._current)
        missing = row >= 0 and self.model.image_at(row).caption is None
        name = self._current.name
        self.caption_title.setText(
            self.tr("{name}: no caption").replace("{name}", name) if missing else self.tr("Caption of {name}").replace("{name}", name)
        )

    def _on_folder_edited(self) -> None:
        folder = self.folder.text().strip()
        if folder != self._last_folder:  # editingFinished also fires on a focus change without an edit
            self._last_folder = folder
            self.folder_chosen.emit(folder)
