"""The result view: the live preview while sampling, then the finished image, scaled to fit."""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QImage, QPainter, QPixmap
from PySide6.QtWidgets import QSizePolicy, QWidget

from desktop.core.events import PreviewImage


def preview_to_image(preview: PreviewImage) -> QImage:
    """A deep copy, so the QImage does not point into the event's bytes."""
    image = QImage(preview.rgb, preview.width, preview.height, preview.width * 3, QImage.Format.Format_RGB888)
    return image.copy()


class ImageView(QWidget):
    """Paints one image centred and scaled to fit, smoothly; previews are upscaled from latent size."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._pixmap: QPixmap | None = None
        self._placeholder = ""
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(256, 256)

    def sizeHint(self) -> QSize:  # noqa: N802
        return QSize(640, 640)

    def set_image(self, image: QImage | QPixmap | None) -> None:
        if isinstance(image, QImage):
            image = QPixmap.fromImage(image)
        self._pixmap = image
        self.update()

    def has_image(self) -> bool:
        return self._pixmap is not None

    def set_placeholder(self, text: str) -> None:
        self._placeholder = text
        self.update()

    def paintEvent(self, _event) -> None:  # noqa: N802
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        if self._pixmap is None or self._pixmap.isNull():
            painter.setPen(self.palette().placeholderText().color())
            painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, self._placeholder)
            return
        scaled = self._pixmap.size().scaled(self.size(), Qt.AspectRatioMode.KeepAspectRatio)
        x = (self.width() - scaled.width()) // 2
        y = (self.height() - scaled.height()) // 2
        painter.drawPixmap(x, y, scaled.width(), scaled.height(), self._pixmap)
