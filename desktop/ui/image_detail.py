"""Looking at one gallery image: the Quick-Look-style preview (space bar) and the detail view
(the image with zoom, its parameters as plain text, and the actions on it)."""

from __future__ import annotations

import datetime
import sys
from pathlib import Path

from PySide6.QtCore import QCoreApplication, QEvent, QRect, QRectF, QSize, Qt, Signal, Slot
from PySide6.QtGui import QAction, QColor, QGuiApplication, QImage, QImageReader, QKeyEvent, QKeySequence, QPainter, QPixmap
from PySide6.QtWidgets import (
    QDialog,
    QGraphicsPixmapItem,
    QGraphicsScene,
    QGraphicsSimpleTextItem,
    QGraphicsView,
    QGridLayout,
    QPushButton,
    QSplitter,
    QStyle,
    QVBoxLayout,
    QWidget,
)

from desktop.library.gallery_store import GalleryImage
from desktop.ui.file_actions import reveal_file
from desktop.ui.i18n import format_datetime, format_size
from desktop.ui.png_info import MetadataView, copy_to_clipboard, plain_label, shown_text, source_name
from desktop.ui.thumbnails import ThumbnailLoader


def local_time(image: GalleryImage) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(image.mtime_ns / 1e9)


class QuickLook(QDialog):
    """A large preview over the window, as Finder's space bar: Space or Escape closes, arrows move.

    The thumbnail shows at once; the full image is decoded on a pool thread at screen size.
    """

    navigate = Signal(int)  # a Qt.Key: the pane moves its selection as that arrow key would

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent, Qt.WindowType.Tool | Qt.WindowType.FramelessWindowHint)
        self.setObjectName("gallery_quick_look")
        self.setAttribute(Qt.WidgetAttribute.WA_TranslucentBackground)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.path: str = ""
        self.caption = ""
        self.pixmap: QPixmap | None = None
        self.full_size = False  # the full image (not the thumbnail) is shown
        self._loader = ThumbnailLoader(self, threads=1)
        self._loader.loaded.connect(self._on_loaded)

    def show_image(self, path: str, caption: str, thumbnail: QPixmap | None) -> None:
        self.path, self.caption = path, caption
        self.pixmap, self.full_size = thumbnail, False
        self._place()
        self._loader.cancel_pending()
        ratio = self.devicePixelRatioF()
        self._loader.request(path, int(max(self.width(), self.height()) * ratio))
        if not self.isVisible():
            self.show()
            self.raise_()
            self.activateWindow()
        self.setFocus()
        self.update()

    def _place(self) -> None:
        screen = (self.parentWidget().screen() if self.parentWidget() is not None else None) or QGuiApplication.primaryScreen()
        area = screen.availableGeometry()
        size = QSize(int(area.width() * 0.85), int(area.height() * 0.85))
        self.setGeometry(QStyle.alignedRect(Qt.LayoutDirection.LeftToRight, Qt.AlignmentFlag.AlignCenter, size, area))

    @Slot(str, QImage)
    def _on_loaded(self, key: str, image: QImage) -> None:
        if key == self.path and not image.isNull():
            self.pixmap, self.full_size = QPixmap.fromImage(image), True
            self.update()

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802
        key = event.key()
        if key in (Qt.Key.Key_Space, Qt.Key.Key_Escape):
            self.close()
        elif key in (Qt.Key.Key_Left, Qt.Key.Key_Right, Qt.Key.Key_Up, Qt.Key.Key_Down):
            self.navigate.emit(int(key))
        else:
            super().keyPressEvent(event)

    def paintEvent(self, _event) -> None:  # noqa: N802
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor(20, 20, 20, 235))
        painter.drawRoundedRect(QRectF(self.rect()), 12, 12)
        area = self.rect().adjusted(16, 16, -16, -16 - 28)
        if self.pixmap is not None and not self.pixmap.isNull():
            size = self.pixmap.size() / self.pixmap.devicePixelRatio()
            target = size.scaled(area.size(), Qt.AspectRatioMode.KeepAspectRatio)
            painter.drawPixmap(QStyle.alignedRect(Qt.LayoutDirection.LeftToRight, Qt.AlignmentFlag.AlignCenter, target, area), self.pixmap)
        painter.setPen(QColor(230, 230, 230))
        caption_rect = QRect(16, self.height() - 36, self.width() - 32, 24)
        elided = painter.fontMetrics().elidedText(self.caption, Qt.TextElideMode.ElideMiddle, caption_rect.width())
        painter.drawText(caption_rect, Qt.AlignmentFlag.AlignCenter, elided)  # drawText never reads HTML


# --- the detail view -----------------------------------------------------------------------------


class ZoomableImage(QGraphicsView):
    """One image, fit to the view by default; zoom with Ctrl+wheel or the zoom actions, drag to pan."""

    MIN_ZOOM, MAX_ZOOM, STEP = 0.05, 16.0, 1.25

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setScene(QGraphicsScene(self))
        self.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        self.setDragMode(QGraphicsView.DragMode.ScrollHandDrag)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setBackgroundBrush(QColor(32, 32, 32))
        self.item: QGraphicsPixmapItem | None = None
        self.fitting = True

    def load(self, path: Path) -> bool:
        """Show the image at ``path``; False (and a message in the view) when it cannot be read."""
        self.scene().clear()
        self.item = None
        reader = QImageReader(str(path))
        reader.setAutoTransform(True)
        image = reader.read()  # Qt's allocation limit refuses decompression bombs (BAD_INPUTS 30)
        if image.isNull():
            text = QGraphicsSimpleTextItem(
                QCoreApplication.translate("ImageDetail", "This image cannot be shown: {error}").replace("{error}", reader.errorString())
            )
            text.setBrush(QColor(220, 220, 220))
            self.scene().addItem(text)
            return False
        self.item = self.scene().addPixmap(QPixmap.fromImage(image))
        self.item.setTransformationMode(Qt.TransformationMode.SmoothTransformation)
        self.scene().setSceneRect(self.item.boundingRect())
        self.fit()
        return True

    def zoom(self) -> float:
        return self.transform().m11()

    def fit(self) -> None:
        self.fitting = True
        if self.item is not None:
            self.fitInView(self.item, Qt.AspectRatioMode.KeepAspectRatio)

    def actual_size(self) -> None:
        self.fitting = False
        self.resetTransform()

    def zoom_by(self, factor: float) -> None:
        self.fitting = False
        target = min(self.MAX_ZOOM, max(self.MIN_ZOOM, self.zoom() * factor))
        self.scale(target / self.zoom(), target / self.zoom())

    def viewportEvent(self, event: QEvent) -> bool:  # noqa: N802
        if event.type() == QEvent.Type.NativeGesture and event.gestureType() == Qt.NativeGestureType.ZoomNativeGesture:
            self.zoom_by(1 + event.value())  # a trackpad pinch
            return True
        return super().viewportEvent(event)

    def wheelEvent(self, event) -> None:  # noqa: N802 - Ctrl (Cmd on a Mac) + wheel zooms, the plain wheel scrolls
        if event.modifiers() & Qt.KeyboardModifier.ControlModifier:
            steps = event.angleDelta().y() / 120
            if steps:
                self.zoom_by(self.STEP**steps)
            event.accept()
        else:
            super().wheelEvent(event)

    def resizeEvent(self, event) -> None:  # noqa: N802
        super().resizeEvent(event)
        if self.fitting:
            self.fit()


class ImageDetail(QDialog):
    """The full image with zoom, and its metadata as plain text, with the gallery's actions as buttons."""

    reuse_requested = Signal(object)  # the GalleryImage
    reuse_seed_requested = Signal(int)
    favourite_toggled = Signal(bool)
    trash_requested = Signal()

    def __init__(self, image: GalleryImage, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("image_detail")
        self.setWindowFlag(Qt.WindowType.Window)
        self.image = image
        self.view = ZoomableImage()
        self.view.setObjectName("image_detail_view")
        self.info = plain_label()
        self.info.setObjectName("image_detail_info")
        self.info.setWordWrap(True)
        self.info.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.metadata = MetadataView()

        self.reuse_button, self.seed_button = QPushButton(), QPushButton()
        self.copy_prompt_button, self.copy_infotext_button = QPushButton(), QPushButton()
        self.reveal_button, self.favourite_button, self.trash_button = QPushButton(), QPushButton(), QPushButton()
        self.favourite_button.setCheckable(True)
        buttons = QGridLayout()
        for number, button in enumerate(
            (self.reuse_button, self.seed_button, self.copy_prompt_button, self.copy_infotext_button, self.reveal_button, self.favourite_button, self.trash_button)
        ):
            buttons.addWidget(button, number // 2, number % 2)

        side = QWidget()
        side_layout = QVBoxLayout(side)
        side_layout.setContentsMargins(8, 0, 0, 0)
        side_layout.addWidget(self.info)
        side_layout.addWidget(self.metadata, 1)
        side_layout.addLayout(buttons)
        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(self.view)
        splitter.addWidget(side)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 2)
        layout = QVBoxLayout(self)
        layout.addWidget(splitter)

        self.zoom_in_action, self.zoom_out_action = QAction(self), QAction(self)
        self.fit_action, self.actual_size_action = QAction(self), QAction(self)
        self.zoom_in_action.setShortcuts([QKeySequence(QKeySequence.StandardKey.ZoomIn), QKeySequence("Ctrl+=")])
        self.zoom_out_action.setShortcuts([QKeySequence(QKeySequence.StandardKey.ZoomOut)])
        self.fit_action.setShortcut(QKeySequence("Ctrl+0"))
        self.actual_size_action.setShortcut(QKeySequence("Ctrl+1"))
        for action in (self.zoom_in_action, self.zoom_out_action, self.fit_action, self.actual_size_action):
            self.addAction(action)
        self.zoom_in_action.triggered.connect(lambda: self.view.zoom_by(ZoomableImage.STEP))
        self.zoom_out_action.triggered.connect(lambda: self.view.zoom_by(1 / ZoomableImage.STEP))
        self.fit_action.triggered.connect(self.view.fit)
        self.actual_size_action.triggered.connect(self.view.actual_size)

        self.reuse_button.clicked.connect(lambda: self.reuse_requested.emit(self.image))
        self.seed_button.clicked.connect(self._reuse_seed)
        self.copy_prompt_button.clicked.connect(lambda: copy_to_clipboard(self.image.prompt))
        self.copy_infotext_button.clicked.connect(lambda: copy_to_clipboard(self.image.infotext()))
        self.reveal_button.clicked.connect(lambda: reveal_file(self.image.path))
        self.favourite_button.clicked.connect(lambda: self.favourite_toggled.emit(self.favourite_button.isChecked()))
        self.trash_button.clicked.connect(self.trash_requested.emit)

        self.view.load(image.path)
        self.set_image(image)
        self.resize(1100, 720)

    def set_image(self, image: GalleryImage) -> None:
        """Show new facts about the same file (favourite state) or another image's metadata."""
        if image.path != self.image.path:
            self.view.load(image.path)
        self.image = image
        self.metadata.set_metadata(image.prompt, image.negative_prompt, image.params)
        has_parameters = bool(image.source)
        self.reuse_button.setEnabled(has_parameters)
        self.copy_infotext_button.setEnabled(has_parameters)
        self.copy_prompt_button.setEnabled(bool(image.prompt))
        self.seed_button.setEnabled(image.seed is not None)
        self.favourite_button.setChecked(image.favourite)
        self.retranslate()

    def retranslate(self) -> None:
        image = self.image
        self.setWindowTitle(shown_text(image.path.name, 200))
        facts = [
            image.path.name,
            f"{image.width} × {image.height}" if image.width else "",
            format_size(image.size),
            format_datetime(local_time(image)),
        ]
        written = (
            self.tr("Written by {tool}").replace("{tool}", source_name(image.source)) if image.source else self.tr("No generation parameters found")
        )
        self.info.setText(" · ".join(fact for fact in facts if fact) + "\n" + written)
        self.reuse_button.setText(self.tr("Reuse Parameters"))
        self.seed_button.setText(self.tr("Reuse Seed"))
        self.copy_prompt_button.setText(self.tr("Copy Prompt"))
        self.copy_infotext_button.setText(self.tr("Copy Infotext"))
        self.reveal_button.setText(self.tr("Reveal in Finder") if sys.platform == "darwin" else self.tr("Show in Folder"))
        self.favourite_button.setText(self.tr("★ Favourite") if image.favourite else self.tr("☆ Favourite"))
        self.trash_button.setText(self.tr("Move to Trash…"))
        self.zoom_in_action.setText(self.tr("Zoom In"))
        self.zoom_out_action.setText(self.tr("Zoom Out"))
        self.fit_action.setText(self.tr("Zoom to Fit"))
        self.actual_size_action.setText(self.tr("Actual Size"))
        self.metadata.retranslate()

    def changeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        if event.type() == QEvent.Type.LanguageChange:
            self.retranslate()
        super().changeEvent(event)

    def _reuse_seed(self) -> None:
        if self.image.seed is not None:
            self.reuse_seed_requested.emit(self.image.seed)
