"""The gallery pane: every generated image, newest first, findable by prompt, model, sampler, size and date.

Ten thousand images open at once because nothing is loaded that is not shown: :class:`GalleryModel`
asks the store for 200 rows at a time (``canFetchMore``/``fetchMore``, as the view scrolls), and a
thumbnail is made only when the view paints its row, on pool threads, into a bounded cache.

Grouping by day: captions show the time, and the first image of each day is marked: its caption
starts with the day in the grid, and a day header strip sits above it in the list. The grid keeps
uniform cells (fast layout at any size); the list, where rows are cheap, gives each day a header.

Everything shown from a file (prompts, parameters, names) is plain text, never rich text: files
are hostile (BAD_INPUTS 9-10). Files are the truth: a trashed image is forgotten by the index.
"""

from __future__ import annotations

import datetime
import os
import sys
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

from PySide6.QtCore import (
    QAbstractListModel,
    QCoreApplication,
    QDate,
    QEvent,
    QLocale,
    QMimeData,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QPoint,
    QRect,
    QRectF,
    QSize,
    Qt,
    QTime,
    QTimer,
    QUrl,
    Signal,
    Slot,
)
from PySide6.QtGui import (
    QAction,
    QColor,
    QFont,
    QGuiApplication,
    QIcon,
    QImage,
    QKeyEvent,
    QKeySequence,
    QPainter,
    QPalette,
    QPixmap,
)
from PySide6.QtWidgets import (
    QApplication,
    QComboBox,
    QHBoxLayout,
    QLineEdit,
    QListView,
    QMenu,
    QMessageBox,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from desktop.library.gallery_store import GalleryImage, GalleryQuery, GalleryStore
from desktop.ui import file_actions
from desktop.ui.i18n import format_datetime
from desktop.ui.model_browser import plain_tooltip
from desktop.ui.png_info import copy_to_clipboard, plain_label, shown_text
from desktop.ui.file_actions import reveal_file
from desktop.ui.image_detail import ImageDetail, QuickLook, local_time
from desktop.ui.thumbnails import ThumbnailLoader
from desktop.ui.view_actions import view_action

THUMBNAIL = 128  # grid thumbnail side in points
THUMBNAIL_PIXELS = 256  # decoded side: sharp at 2x (Retina)
PAGE_SIZE = 200
# Decoded thumbnails kept: 400 x 256 KB at most ~100 MB, eight screens of a full-screen grid.
PIXMAP_CACHE_SIZE = 400
LIST_ICON = 40
LIST_ROW = 48
DAY_HEADER = 26
_CELL_PADDING = 6
_CAPTION = 20
_PROMPT_IN_LIST = 300  # characters of a prompt's first line in a list row (the view elides the rest)
_FIRST_ROWS_TO_SEARCH = 2_000  # select() loads pages up to this many rows to find an image
_DATE_RANGES = (None, 0, 6, 29)  # days before today: Any time, Today, Last 7 days, Last 30 days
_SORTS = ("newest", "oldest", "name")


# --- small helpers -------------------------------------------------------------------------------


def time_caption(image: GalleryImage) -> str:
    moment = local_time(image)
    return QLocale().toString(QTime(moment.hour, moment.minute), QLocale.FormatType.ShortFormat)


def day_title(day: datetime.date, *, long: bool = True) -> str:
    """"Today", "Yesterday", or the date in the language's format."""
    today = datetime.date.today()
    if day == today:
        return QCoreApplication.translate("GalleryModel", "Today")
    if day == today - datetime.timedelta(days=1):
        return QCoreApplication.translate("GalleryModel", "Yesterday")
    format_type = QLocale.FormatType.LongFormat if long else QLocale.FormatType.ShortFormat
    return QLocale().toString(QDate(day.year, day.month, day.day), format_type)


def image_summary(image: GalleryImage) -> str:
    """One line of what matters for telling images apart: model, sampler, size, seed."""
    parts = [image.model, image.sampler, f"{image.width} × {image.height}" if image.width else ""]
    if image.seed is not None:
        parts.append(QCoreApplication.translate("GalleryModel", "Seed {seed}").replace("{seed}", str(image.seed)))
    return " · ".join(part for part in parts if part)


def first_line(text: str, limit: int = _PROMPT_IN_LIST) -> str:
    line = text.strip().split("\n", 1)[0]
    return line[:limit] + "…" if len(line) > limit else line


def ask_plainly(parent: QWidget | None, title: str, text: str) -> bool:
    """A Yes/Cancel question whose text (holding a file name) is never taken for HTML."""
    box = QMessageBox(QMessageBox.Icon.Question, title, "", QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel, parent)
    box.setTextFormat(Qt.TextFormat.PlainText)
    box.setText(text)
    box.setDefaultButton(QMessageBox.StandardButton.Cancel)
    return box.exec() == QMessageBox.StandardButton.Yes


def _placeholder_icon(mark: str = "") -> QIcon:
    pixmap = QPixmap(THUMBNAIL_PIXELS, THUMBNAIL_PIXELS)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    palette = QGuiApplication.palette()
    painter.setPen(Qt.PenStyle.NoPen)
    painter.setBrush(palette.color(QPalette.ColorRole.Mid).lighter(125))
    painter.drawRoundedRect(QRect(12, 12, THUMBNAIL_PIXELS - 24, THUMBNAIL_PIXELS - 24), 20, 20)
    if mark:
        font = painter.font()
        font.setPixelSize(72)
        painter.setFont(font)
        painter.setPen(palette.color(QPalette.ColorRole.Text))
        painter.drawText(pixmap.rect(), Qt.AlignmentFlag.AlignCenter, mark)
    painter.end()
    return QIcon(pixmap)


# --- the model -----------------------------------------------------------------------------------


class GalleryModel(QAbstractListModel):
    """The images matching a query, loaded from the store a page at a time as the view scrolls."""

    ImageRole = Qt.ItemDataRole.UserRole + 1
    DayRole = Qt.ItemDataRole.UserRole + 2  # datetime.date of the image (local)
    PathRole = Qt.ItemDataRole.UserRole + 3
    FavouriteRole = Qt.ItemDataRole.UserRole + 4
    FirstOfDayRole = Qt.ItemDataRole.UserRole + 5  # the first image of its day in this order (not when sorted by name)

    thumbnail_ready = Signal(str)  # path whose thumbnail just arrived (or failed)
    problem = Signal(str)  # the store failed a query (closed, newer schema...)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._store: GalleryStore | None = None
        self._query = GalleryQuery()
        self._images: list[GalleryImage] = []
        self._row_of: dict[Path, int] = {}
        self._offset = 0  # rows consumed from the store (its order), which may differ from len(_images) after dedup
        self._total = 0
        self._exhausted = True
        self._icons: OrderedDict[str, QIcon] = OrderedDict()  # thumbnail key -> icon, least recently used first
        self._broken: set[str] = set()  # thumbnail keys that could not be made
        self._placeholder: QIcon | None = None
        self._broken_icon: QIcon | None = None
        self.loader = ThumbnailLoader(self)
        self.loader.loaded.connect(self._on_thumbnail)

    # --- contents ---

    def store(self) -> GalleryStore | None:
        return self._store

    def set_store(self, store: GalleryStore | None) -> None:
        self._store = store
        self._icons.clear()
        self.reload()

    def query(self) -> GalleryQuery:
        return self._query

    def set_query(self, query: GalleryQuery) -> None:
        self._query = query
        self.reload()

    def total(self) -> int:
        """Images matching the query in the store (loaded or not), as counted at the last reload."""
        return self._total

    def reload(self, min_rows: int = 0) -> None:
        """Query again from the top; load at least ``min_rows`` rows (what the view showed before a refresh)."""
        self.loader.cancel_pending()
        self.beginResetModel()
        self._images, self._row_of, self._offset = [], {}, 0
        self._broken.clear()  # the reconcile may have replaced a damaged file
        self._total = self._ask(lambda store: store.count(self._query), 0)
        self._exhausted = self._total == 0
        if not self._exhausted:
            self._append(self._next_page(max(PAGE_SIZE, min_rows)))
        self.endResetModel()

    def image_at(self, row: int) -> GalleryImage | None:
        return self._images[row] if 0 <= row < len(self._images) else None

    def row_of(self, path: Path | str) -> int | None:
        """The row of ``path`` among the loaded rows (the store keys files by their resolved folder)."""
        row = self._row_of.get(Path(path))
        if row is None:
            folder, name = os.path.split(os.path.abspath(path))
            row = self._row_of.get(Path(os.path.realpath(folder), name))
        return row

    def find(self, path: Path | str, max_rows: int = _FIRST_ROWS_TO_SEARCH) -> int | None:
        """The row of ``path``, loading further pages (up to ``max_rows`` rows) until it is found."""
        row = self.row_of(path)
        while row is None and self.canFetchMore() and len(self._images) < max_rows:
            self.fetchMore()
            row = self.row_of(path)
        return row

    def replace(self, image: GalleryImage) -> None:
        """Show a changed image (a new favourite state) in place."""
        row = self._row_of.get(image.path)
        if row is not None:
            self._images[row] = image
            self.dataChanged.emit(self.index(row), self.index(row))

    def remove(self, path: Path) -> None:
        """Drop the row of an image the store forgot (trashed): later pages shift up by one in the store."""
        row = self.row_of(path)
        if row is None:
            return
        self.beginRemoveRows(QModelIndex(), row, row)
        del self._images[row]
        self._row_of = {image.path: index for index, image in enumerate(self._images)}
        self._offset = max(0, self._offset - 1)
        self._total = max(0, self._total - 1)
        self.endRemoveRows()
        if row < len(self._images):  # the next image may now start its day
            self.dataChanged.emit(self.index(row), self.index(row))

    # --- Qt model ---

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: N802, B008
        return 0 if parent.isValid() else len(self._images)

    def canFetchMore(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> bool:  # noqa: N802, B008
        return not parent.isValid() and not self._exhausted

    def fetchMore(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> None:  # noqa: N802, B008
        if parent.isValid() or self._exhausted:
            return
        page = self._next_page(PAGE_SIZE)
        new = self._unseen(page)
        if new:
            start = len(self._images)
            self.beginInsertRows(QModelIndex(), start, start + len(new) - 1)
            self._append(new)
            self.endInsertRows()

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> object:
        if not index.isValid() or not 0 <= index.row() < len(self._images):
            return None
        image = self._images[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return time_caption(image)
        if role == Qt.ItemDataRole.DecorationRole:
            return self._icon(image)
        if role == Qt.ItemDataRole.ToolTipRole:
            return plain_tooltip(self._tooltip(image))
        if role == self.ImageRole:
            return image
        if role == self.PathRole:
            return str(image.path)
        if role == self.DayRole:
            return image.day
        if role == self.FavouriteRole:
            return image.favourite
        if role == self.FirstOfDayRole:
            return self.is_first_of_day(index.row())
        return None

    def is_first_of_day(self, row: int) -> bool:
        if self._query.sort == "name" or not 0 <= row < len(self._images):
            return False
        return row == 0 or self._images[row - 1].day != self._images[row].day

    def flags(self, index: QModelIndex | QPersistentModelIndex) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        return Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemIsDragEnabled | Qt.ItemFlag.ItemNeverHasChildren

    def mimeTypes(self) -> list[str]:  # noqa: N802
        return ["text/uri-list"]

    def mimeData(self, indexes: Sequence[QModelIndex]) -> QMimeData:  # noqa: N802
        """File URLs, which Finder, browsers and image editors all accept as a drop of the files themselves."""
        mime = QMimeData()
        paths = [self._images[index.row()].path for index in indexes if index.isValid() and index.row() < len(self._images)]
        mime.setUrls([QUrl.fromLocalFile(str(path)) for path in paths])
        return mime

    def supportedDragActions(self) -> Qt.DropAction:  # noqa: N802
        return Qt.DropAction.CopyAction

    # --- thumbnails ---

    @staticmethod
    def _thumbnail_key(image: GalleryImage) -> str:
        """The file as it is now: an edited image (new mtime) gets a new thumbnail, the old one ages out."""
        return f"{image.mtime_ns}|{image.path}"

    def _icon(self, image: GalleryImage) -> QIcon:
        key = self._thumbnail_key(image)
        cached = self._icons.get(key)
        if cached is not None:
            self._icons.move_to_end(key)
            return cached
        if key in self._broken:
            if self._broken_icon is None:
                self._broken_icon = _placeholder_icon("?")
            return self._broken_icon
        store = self._store
        if store is not None and not self.loader.is_loading(key):
            path = image.path
            self.loader.request(key, THUMBNAIL_PIXELS, lambda: store.thumbnail(path, THUMBNAIL_PIXELS))
        if self._placeholder is None:
            self._placeholder = _placeholder_icon()
        return self._placeholder

    def cached_pixmap(self, image: GalleryImage) -> QPixmap | None:
        """The thumbnail already decoded for ``image``, if any (the quick look shows it while the image loads)."""
        cached = self._icons.get(self._thumbnail_key(image))
        return cached.pixmap(QSize(THUMBNAIL_PIXELS, THUMBNAIL_PIXELS)) if cached is not None else None

    @Slot(str, QImage)
    def _on_thumbnail(self, key: str, image: QImage) -> None:
        if image.isNull():
            self._broken.add(key)
        else:
            self._icons[key] = QIcon(QPixmap.fromImage(image))
            self._icons.move_to_end(key)
            while len(self._icons) > PIXMAP_CACHE_SIZE:
                self._icons.popitem(last=False)
        path = key.split("|", 1)[1]
        row = self._row_of.get(Path(path))
        if row is not None:
            self.dataChanged.emit(self.index(row), self.index(row), [Qt.ItemDataRole.DecorationRole])
        self.thumbnail_ready.emit(path)

    # --- store access ---

    def _ask(self, question, default):  # noqa: ANN001, ANN202
        if self._store is None:
            return default
        try:
            return question(self._store)
        except Exception as error:  # noqa: BLE001 - a closed or broken index shows an empty gallery and says why
            self.problem.emit(str(error) or type(error).__name__)
            return default

    def _next_page(self, limit: int) -> list[GalleryImage]:
        offset = self._offset
        page: list[GalleryImage] = self._ask(lambda store: store.page(self._query, offset, limit), [])
        self._offset += len(page)
        # A short page is the end; so is reaching the count (an image added since arrives with the next refresh).
        if len(page) < limit or self._offset >= self._total:
            self._exhausted = True
        return page

    def _unseen(self, page: list[GalleryImage]) -> list[GalleryImage]:
        """Rows not already shown: an image indexed between two pages shifts the next page down by one."""
        seen = set(self._row_of)
        new = []
        for image in page:
            if image.path not in seen:
                seen.add(image.path)
                new.append(image)
        return new

    def _append(self, images: list[GalleryImage]) -> None:
        for image in self._unseen(images):
            self._row_of[image.path] = len(self._images)
            self._images.append(image)

    def _tooltip(self, image: GalleryImage) -> str:
        lines = [
            first_line(image.prompt, 400),
            image_summary(image),
            format_datetime(local_time(image)),
            image.path.name,
        ]
        return "\n".join(line for line in lines if line)


# --- the delegate --------------------------------------------------------------------------------


class GalleryDelegate(QStyledItemDelegate):
    """Grid cells (thumbnail, star, time caption) and list rows (with a day header above each day's first row).

    ``sizeHint`` never asks for the decoration: the list computes every row's height at layout,
    and asking would start a thumbnail for each.
    """

    def __init__(self, view: QListView) -> None:
        super().__init__(view)
        self.view = view

    def is_grid(self) -> bool:
        return self.view.viewMode() == QListView.ViewMode.IconMode

    def sizeHint(self, option: QStyleOptionViewItem, index: QModelIndex) -> QSize:  # noqa: N802
        if self.is_grid():
            return QSize(THUMBNAIL + 2 * _CELL_PADDING, THUMBNAIL + _CELL_PADDING + _CAPTION + 4)
        header = DAY_HEADER if index.data(GalleryModel.FirstOfDayRole) else 0
        return QSize(240, LIST_ROW + header)

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: QModelIndex) -> None:
        image: GalleryImage | None = index.data(GalleryModel.ImageRole)
        if image is None:
            return
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        if self.is_grid():
            self._paint_cell(painter, option, index, image)
        else:
            rect = QRect(option.rect)
            if index.data(GalleryModel.FirstOfDayRole):
                self._paint_day_header(painter, QRect(rect.left(), rect.top(), rect.width(), DAY_HEADER), image.day)
                rect.setTop(rect.top() + DAY_HEADER)
            self._paint_row(painter, option, index, image, rect)
        painter.restore()

    @staticmethod
    def _paint_background(painter: QPainter, option: QStyleOptionViewItem, rect: QRect, radius: float) -> bool:
        """Selection or hover behind an item; True when selected (text then takes the highlighted colour)."""
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        colour = None
        if selected:
            colour = option.palette.color(QPalette.ColorRole.Highlight)
        elif option.state & QStyle.StateFlag.State_MouseOver:
            colour = option.palette.color(QPalette.ColorRole.Midlight)
        if colour is not None:
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(colour)
            painter.drawRoundedRect(QRectF(rect).adjusted(1, 1, -1, -1), radius, radius)
        return selected

    def _paint_day_header(self, painter: QPainter, rect: QRect, day: datetime.date) -> None:
        palette = self.view.palette()
        painter.fillRect(rect, palette.color(QPalette.ColorRole.AlternateBase))
        font = QFont(self.view.font())
        font.setBold(True)
        painter.setFont(font)
        painter.setPen(palette.color(QPalette.ColorRole.Text))
        painter.drawText(rect.adjusted(8, 0, -8, 0), Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft, day_title(day))

    def _paint_cell(self, painter: QPainter, option: QStyleOptionViewItem, index: QModelIndex, image: GalleryImage) -> None:
        rect = option.rect
        selected = self._paint_background(painter, option, rect, 8)
        frame = QRect(rect.x() + (rect.width() - THUMBNAIL) // 2, rect.y() + _CELL_PADDING, THUMBNAIL, THUMBNAIL)
        icon: QIcon | None = index.data(Qt.ItemDataRole.DecorationRole)
        if icon is not None:
            icon.paint(painter, frame, Qt.AlignmentFlag.AlignCenter)
            if image.favourite:
                shown = icon.actualSize(frame.size())
                self._paint_star(painter, QStyle.alignedRect(Qt.LayoutDirection.LeftToRight, Qt.AlignmentFlag.AlignCenter, shown, frame))

        caption_rect = QRect(rect.x() + 4, frame.bottom() + 3, rect.width() - 8, _CAPTION)
        font = QFont(option.font)
        caption = time_caption(image)
        if index.data(GalleryModel.FirstOfDayRole):
            font.setBold(True)
            caption = f"{day_title(image.day, long=False)} · {caption}"
        painter.setFont(font)
        painter.setPen(option.palette.color(QPalette.ColorRole.HighlightedText if selected else QPalette.ColorRole.Text))
        elided = painter.fontMetrics().elidedText(caption, Qt.TextElideMode.ElideRight, caption_rect.width())
        painter.drawText(caption_rect, Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignVCenter, elided)

    def _paint_row(self, painter: QPainter, option: QStyleOptionViewItem, index: QModelIndex, image: GalleryImage, rect: QRect) -> None:
        """Thumbnail, then two lines: time and summary (model, sampler, size, seed), and the prompt's first line."""
        selected = self._paint_background(painter, option, rect, 4)
        frame = QRect(rect.x() + 6, rect.y() + (rect.height() - LIST_ICON) // 2, LIST_ICON, LIST_ICON)
        icon: QIcon | None = index.data(Qt.ItemDataRole.DecorationRole)
        if icon is not None:
            icon.paint(painter, frame, Qt.AlignmentFlag.AlignCenter)
        palette = option.palette
        left = frame.right() + 10
        half = rect.height() // 2
        top_line = QRect(left, rect.y() + 2, rect.right() - left - 6, half - 2)
        bottom_line = QRect(left, rect.y() + half + 1, rect.right() - left - 6, half - 2)

        bold = QFont(option.font)
        bold.setBold(True)
        painter.setFont(bold)
        painter.setPen(palette.color(QPalette.ColorRole.HighlightedText if selected else QPalette.ColorRole.Text))
        when = ("★ " if image.favourite else "") + time_caption(image)
        painter.drawText(top_line, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignBottom, when)
        summary_rect = top_line.adjusted(painter.fontMetrics().horizontalAdvance(when) + 10, 0, 0, 0)
        painter.setFont(option.font)
        metrics = painter.fontMetrics()
        summary = metrics.elidedText(image_summary(image), Qt.TextElideMode.ElideRight, summary_rect.width())
        painter.drawText(summary_rect, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignBottom, summary)
        if not selected:
            painter.setPen(palette.color(QPalette.ColorRole.PlaceholderText))
        prompt = metrics.elidedText(first_line(image.prompt) or image.path.name, Qt.TextElideMode.ElideRight, bottom_line.width())
        painter.drawText(bottom_line, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop, prompt)

    @staticmethod
    def _paint_star(painter: QPainter, picture: QRect) -> None:
        badge = QRectF(picture.right() - 24, picture.top() + 4, 20, 20)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor(0, 0, 0, 150))
        painter.drawEllipse(badge)
        font = painter.font()
        font.setPixelSize(14)
        painter.setFont(font)
        painter.setPen(QColor("#ffcc33"))
        painter.drawText(badge, Qt.AlignmentFlag.AlignCenter, "★")


# --- the pane ------------------------------------------------------------------------------------


class GalleryPane(QWidget):
    """Search and filters above a virtualised thumbnail grid (or list) of the gallery store's images."""

    image_activated = Signal(str)  # path: double-click or Return (show it large in the main view)
    reuse_requested = Signal(object)  # GalleryImage: .prompt, .negative_prompt, .params
    reuse_seed_requested = Signal(int)
    image_removed = Signal(str)  # path moved to the Trash
    problem = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("gallery_pane")
        self.model = GalleryModel(self)
        self.model.problem.connect(self.problem)

        self.search = QLineEdit()
        self.search.setObjectName("gallery_search")
        self.search.setClearButtonEnabled(True)
        self.model_filter, self.sampler_filter, self.size_filter = QComboBox(), QComboBox(), QComboBox()
        self.date_filter, self.sort_combo = QComboBox(), QComboBox()
        self.filters = (self.model_filter, self.sampler_filter, self.size_filter, self.date_filter, self.sort_combo)
        for combo in self.filters:
            # Long model names are elided in the box (the menu shows them whole), so the toolbar stays narrow.
            combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            combo.setMinimumContentsLength(4)
        for combo in (self.model_filter, self.sampler_filter, self.size_filter):
            combo.addItem("", "")
        for _ in _DATE_RANGES:
            self.date_filter.addItem("")
        for sort in _SORTS:
            self.sort_combo.addItem("", sort)
        self.favourites_button = QToolButton()
        self.favourites_button.setObjectName("gallery_favourites")
        self.favourites_button.setText("★")
        self.favourites_button.setCheckable(True)
        self.grid_button, self.list_button = QToolButton(), QToolButton()
        for button, text in ((self.grid_button, "▦"), (self.list_button, "☰")):
            button.setText(text)
            button.setCheckable(True)
            button.setAutoExclusive(True)
        self.count_label = plain_label()
        self.count_label.setObjectName("gallery_count")

        self.view = QListView()
        self.view.setObjectName("gallery_view")
        self.view.setModel(self.model)
        self.delegate = GalleryDelegate(self.view)
        self.view.setItemDelegate(self.delegate)
        self.view.setSelectionMode(QListView.SelectionMode.SingleSelection)
        self.view.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.view.setMouseTracking(True)
        self.view.installEventFilter(self)

        # One toolbar row when the pane is wide (a bottom dock), the filters on a second row when narrow (a side dock).
        self._top_row, self._filter_row = QHBoxLayout(), QHBoxLayout()
        self._top_row.setSpacing(4)
        self._filter_row.setSpacing(4)
        self._top_row.addWidget(self.search, 2)
        for widget in (self.favourites_button, self.grid_button, self.list_button, self.count_label):
            self._top_row.addWidget(widget)
        for combo in self.filters:
            self._filter_row.addWidget(combo, 1)
        self._one_row = False
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(self._top_row)
        layout.addLayout(self._filter_row)
        layout.addWidget(self.view, 1)

        self._search_timer = QTimer(self)
        self._search_timer.setSingleShot(True)
        self._search_timer.setInterval(200)
        self._search_timer.timeout.connect(self.apply_filters)
        self.search.textChanged.connect(self._search_timer.start)
        for combo in (self.model_filter, self.sampler_filter, self.size_filter, self.date_filter, self.sort_combo):
            combo.currentIndexChanged.connect(self.apply_filters)
        self.favourites_button.toggled.connect(self.apply_filters)
        self.grid_button.toggled.connect(lambda grid: self.set_grid(grid))
        self.view.doubleClicked.connect(self._on_double_clicked)
        self.view.customContextMenuRequested.connect(self._show_menu)
        self.view.selectionModel().currentChanged.connect(self._on_current_changed)
        self.model.rowsRemoved.connect(self._update_count)

        self.preview: QuickLook | None = None
        self._build_actions()
        self.set_grid(True)
        self.retranslate()

    def _build_actions(self) -> None:
        def action(shortcut: str | QKeySequence.StandardKey | None = None) -> QAction:
            return view_action(self.view, shortcut)

        self.detail_action = action("Ctrl+I")
        self.reuse_action = action()
        self.reuse_seed_action = action()
        self.copy_prompt_action = action()
        self.copy_infotext_action = action(QKeySequence.StandardKey.Copy)
        self.reveal_action = action()
        self.favourite_action = action()
        self.trash_action = action("Ctrl+Backspace")
        self.detail_action.triggered.connect(lambda: self._with_selected(self.show_detail))
        self.reuse_action.triggered.connect(lambda: self._with_selected(self.reuse_requested.emit))
        self.reuse_seed_action.triggered.connect(lambda: self._with_selected(self._reuse_seed))
        self.copy_prompt_action.triggered.connect(lambda: self._with_selected(lambda image: copy_to_clipboard(image.prompt)))
        self.copy_infotext_action.triggered.connect(lambda: self._with_selected(lambda image: copy_to_clipboard(image.infotext())))
        self.reveal_action.triggered.connect(lambda: self._with_selected(lambda image: reveal_file(image.path)))
        self.favourite_action.triggered.connect(lambda: self._with_selected(lambda image: self.set_favourite(image, not image.favourite)))
        self.trash_action.triggered.connect(lambda: self._with_selected(self.move_to_trash))

    def retranslate(self) -> None:
        self.search.setPlaceholderText(self.tr("Search prompts"))
        self.model_filter.setItemText(0, self.tr("All models"))
        self.sampler_filter.setItemText(0, self.tr("All samplers"))
        self.size_filter.setItemText(0, self.tr("All sizes"))
        for index, text in enumerate((self.tr("Any time"), self.tr("Today"), self.tr("Last 7 days"), self.tr("Last 30 days"))):
            self.date_filter.setItemText(index, text)
        for index, text in enumerate((self.tr("Newest first"), self.tr("Oldest first"), self.tr("Name"))):
            self.sort_combo.setItemText(index, text)
        self.favourites_button.setToolTip(self.tr("Show favourites only"))
        self.grid_button.setToolTip(self.tr("Thumbnails"))
        self.list_button.setToolTip(self.tr("List by day"))
        self.detail_action.setText(self.tr("Show in Detail View"))
        self.reuse_action.setText(self.tr("Reuse Parameters"))
        self.reuse_seed_action.setText(self.tr("Reuse Seed"))
        self.copy_prompt_action.setText(self.tr("Copy Prompt"))
        self.copy_infotext_action.setText(self.tr("Copy Infotext"))
        self.reveal_action.setText(self.tr("Reveal in Finder") if sys.platform == "darwin" else self.tr("Show in Folder"))
        self.trash_action.setText(self.tr("Move to Trash…"))
        self._update_favourite_action()
        self._update_count()

    def changeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        if event.type() == QEvent.Type.LanguageChange:
            self.retranslate()
        super().changeEvent(event)

    def resizeEvent(self, event) -> None:  # noqa: N802
        super().resizeEvent(event)
        self._arrange_toolbar()

    def _arrange_toolbar(self) -> None:
        widgets = (self.favourites_button, self.grid_button, self.list_button, self.count_label, *self.filters)
        needed = 220 + sum(widget.sizeHint().width() + 4 for widget in widgets)  # 220: room to type a search
        one_row = self.width() >= needed
        if one_row == self._one_row:
            return
        self._one_row = one_row
        for position, combo in enumerate(self.filters, start=1):
            if one_row:
                self._top_row.insertWidget(position, combo, 1)
            else:
                self._filter_row.addWidget(combo, 1)

    # --- public ---

    def set_store(self, store: GalleryStore | None) -> None:
        """Show ``store``'s images (None detaches, before the worker closes the store)."""
        self.model.set_store(store)
        self._update_facets()
        self._update_count()

    def refresh(self) -> None:
        """Query again (after the worker changed the index), keeping the selection, scroll position and loaded rows."""
        current = self.selected_image()
        scroll = self.view.verticalScrollBar().value()
        self.model.reload(min_rows=self.model.rowCount())
        self._update_facets()
        self._update_count()
        if current is not None:
            row = self.model.row_of(current.path)
            if row is not None:
                self.view.setCurrentIndex(self.model.index(row))
        self.view.doItemsLayout()
        self.view.verticalScrollBar().setValue(scroll)

    def query(self) -> GalleryQuery:
        """The query the toolbar describes now."""
        days = _DATE_RANGES[max(0, self.date_filter.currentIndex())]
        since = None if days is None else datetime.date.today() - datetime.timedelta(days=days)
        return GalleryQuery(
            search=self.search.text().strip(),
            model=self.model_filter.currentData() or "",
            sampler=self.sampler_filter.currentData() or "",
            size=self.size_filter.currentData() or "",
            since=since,
            favourites_only=self.favourites_button.isChecked(),
            sort=self.sort_combo.currentData() or "newest",
        )

    @Slot()
    def apply_filters(self) -> None:
        """Show what the toolbar asks for now (the search box calls this 200 ms after the last key)."""
        self._search_timer.stop()
        current = self.selected_image()
        self.model.set_query(self.query())
        self._update_count()
        if current is not None:
            row = self.model.row_of(current.path)
            if row is not None:
                self.view.setCurrentIndex(self.model.index(row))
        if self.view.currentIndex().isValid():
            self.view.scrollTo(self.view.currentIndex())
        else:
            self.view.scrollToTop()

    def set_grid(self, grid: bool) -> None:
        if grid:
            self.view.setViewMode(QListView.ViewMode.IconMode)
            self.view.setIconSize(QSize(THUMBNAIL, THUMBNAIL))
            self.view.setGridSize(self.delegate.sizeHint(QStyleOptionViewItem(), QModelIndex()))
            self.view.setSpacing(0)
            self.view.setUniformItemSizes(True)
        else:
            self.view.setViewMode(QListView.ViewMode.ListMode)
            self.view.setIconSize(QSize(LIST_ICON, LIST_ICON))
            self.view.setGridSize(QSize())
            self.view.setSpacing(0)
            self.view.setUniformItemSizes(False)  # a day's first row is taller: it carries the day header
        self.view.setResizeMode(QListView.ResizeMode.Adjust)
        self.view.setMovement(QListView.Movement.Static)
        self.view.setDragEnabled(True)
        self.view.setDragDropMode(QListView.DragDropMode.DragOnly)
        self.view.setDefaultDropAction(Qt.DropAction.CopyAction)
        self.grid_button.setChecked(grid)
        self.list_button.setChecked(not grid)

    def is_grid(self) -> bool:
        return self.view.viewMode() == QListView.ViewMode.IconMode

    def selected_image(self) -> GalleryImage | None:
        index = self.view.currentIndex()
        return index.data(GalleryModel.ImageRole) if index.isValid() else None

    def select(self, path: Path | str) -> bool:
        """Make ``path`` current and scroll to it (loading further pages to find it); False when not shown."""
        row = self.model.find(path)
        if row is None:
            return False
        index = self.model.index(row)
        self.view.setCurrentIndex(index)
        self.view.scrollTo(index)
        return True

    def show_detail(self, image: GalleryImage) -> ImageDetail:
        detail = ImageDetail(image, self)
        detail.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        detail.reuse_requested.connect(self.reuse_requested)
        detail.reuse_seed_requested.connect(self.reuse_seed_requested)
        detail.favourite_toggled.connect(lambda on: detail.set_image(self.set_favourite(detail.image, on)))
        detail.trash_requested.connect(lambda: self.move_to_trash(detail.image) and detail.close())
        detail.show()
        return detail

    def show_preview(self) -> QuickLook | None:
        """The quick look of the current image (Space); arrows in it move through the gallery."""
        image = self.selected_image()
        if image is None:
            return None
        if self.preview is None:
            self.preview = QuickLook(self.window())
            self.preview.navigate.connect(self._on_preview_navigate)
            self.preview.finished.connect(lambda _result: self.view.setFocus())
        self._preview_image(image)
        return self.preview

    def set_favourite(self, image: GalleryImage, favourite: bool) -> GalleryImage:
        """Mark or unmark ``image``; returns it as it is now."""
        store = self.model.store()
        if store is None:
            return image
        try:
            store.set_favourite(image.path, favourite)
        except Exception as error:  # noqa: BLE001 - the index may be gone; the file is untouched either way
            self.problem.emit(str(error) or type(error).__name__)
            return image
        updated = store.image(image.path) or image
        if self.model.query().favourites_only and not favourite:
            self.refresh()  # it no longer belongs in this list
        else:
            self.model.replace(updated)
        self._update_favourite_action()
        return updated

    def move_to_trash(self, image: GalleryImage, *, confirm: bool = True) -> bool:
        """Trash the file (asking first), then forget it; where there is no Trash, delete only after asking again."""
        if confirm and not ask_plainly(
            self,
            self.tr("Move to Trash"),
            self.tr("Move {name} to the Trash?").replace("{name}", image.path.name),
        ):
            return False
        if not file_actions.move_to_trash(self, [image.path]):
            return False
        row = self.model.row_of(image.path)
        store = self.model.store()
        if store is not None:
            try:
                store.forget(image.path)
            except Exception as error:  # noqa: BLE001 - the next reconcile prunes it anyway
                self.problem.emit(str(error) or type(error).__name__)
        self.model.remove(image.path)
        if row is not None and self.model.rowCount():
            self.view.setCurrentIndex(self.model.index(min(row, self.model.rowCount() - 1)))
        self.image_removed.emit(str(image.path))
        return True

    # --- events ---

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802
        plain = (Qt.KeyboardModifier.NoModifier, Qt.KeyboardModifier.KeypadModifier)  # Enter on the keypad
        if watched is self.view and event.type() == QEvent.Type.KeyPress and event.modifiers() in plain:
            if event.key() == Qt.Key.Key_Space:
                self.show_preview()
                return True
            if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
                image = self.selected_image()
                if image is not None:
                    self.image_activated.emit(str(image.path))
                    self.show_detail(image)
                return True
        return super().eventFilter(watched, event)

    def _on_double_clicked(self, index: QModelIndex) -> None:
        if index.isValid():
            self.image_activated.emit(index.data(GalleryModel.PathRole))

    def _on_current_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        self._update_favourite_action()
        if self.preview is not None and self.preview.isVisible() and current.isValid():
            self._preview_image(current.data(GalleryModel.ImageRole))

    def _on_preview_navigate(self, key: int) -> None:
        QApplication.sendEvent(self.view, QKeyEvent(QEvent.Type.KeyPress, key, Qt.KeyboardModifier.NoModifier))

    def _preview_image(self, image: GalleryImage) -> None:
        assert self.preview is not None
        caption = " · ".join(part for part in (image.path.name, image_summary(image)) if part)
        self.preview.show_image(str(image.path), caption, self.model.cached_pixmap(image))

    def _show_menu(self, position: QPoint) -> None:
        index = self.view.indexAt(position)
        if not index.isValid():
            return
        self.view.setCurrentIndex(index)
        image: GalleryImage = index.data(GalleryModel.ImageRole)
        self.reuse_action.setEnabled(bool(image.source))
        self.copy_infotext_action.setEnabled(bool(image.source))
        self.copy_prompt_action.setEnabled(bool(image.prompt))
        self.reuse_seed_action.setEnabled(image.seed is not None)
        menu = QMenu(self)
        groups = (
            (self.reuse_action, self.reuse_seed_action),
            (self.copy_prompt_action, self.copy_infotext_action),
            (self.detail_action, self.reveal_action, self.favourite_action),
            (self.trash_action,),
        )
        for group in groups:
            if not menu.isEmpty():
                menu.addSeparator()
            menu.addActions(list(group))
        menu.popup(self.view.viewport().mapToGlobal(position))
        self._menu = menu  # the tests look at it; Qt owns it through the parent

    def _with_selected(self, action) -> None:  # noqa: ANN001
        image = self.selected_image()
        if image is not None:
            action(image)

    def _reuse_seed(self, image: GalleryImage) -> None:
        if image.seed is not None:
            self.reuse_seed_requested.emit(image.seed)

    def _update_favourite_action(self) -> None:
        image = self.selected_image()
        favourite = image is not None and image.favourite
        self.favourite_action.setText(self.tr("Remove from Favourites") if favourite else self.tr("Add to Favourites"))

    def _update_facets(self) -> None:
        store = self.model.store()
        facets: dict[str, list[str]] = {}
        if store is not None:
            try:
                facets = store.facets()
            except Exception as error:  # noqa: BLE001 - filters stay as they were
                self.problem.emit(str(error) or type(error).__name__)
                return
        for combo, key in ((self.model_filter, "model"), (self.sampler_filter, "sampler"), (self.size_filter, "size")):
            self._fill_facet(combo, facets.get(key, []))

    @staticmethod
    def _fill_facet(combo: QComboBox, values: list[str]) -> None:
        chosen = combo.currentData() or ""
        values = list(values)
        if chosen and chosen not in values:
            values.append(chosen)  # keep the user's filter even when its last image is gone
        combo.blockSignals(True)
        while combo.count() > 1:
            combo.removeItem(1)
        for value in values:
            combo.addItem(shown_text(value, 60).split("\n", 1)[0], value)
            combo.setItemData(combo.count() - 1, plain_tooltip(value), Qt.ItemDataRole.ToolTipRole)
        combo.setCurrentIndex(max(0, combo.findData(chosen)) if chosen else 0)
        combo.blockSignals(False)

    def _update_count(self, *_args: object) -> None:
        shown = self.model.total()
        query = self.model.query()
        locale = QLocale()
        if query == GalleryQuery(sort=query.sort) or self.model.store() is None:
            if shown == 1:
                text = self.tr("1 image")
            else:
                text = self.tr("{count} images").replace("{count}", locale.toString(shown))
        else:
            try:
                everything = self.model.store().count(GalleryQuery())
            except Exception:  # noqa: BLE001 - the model reported the store's problem already
                everything = shown
            text = self.tr("{count} of {total} images").replace("{count}", locale.toString(shown)).replace("{total}", locale.toString(everything))
        self.count_label.setText(text)
