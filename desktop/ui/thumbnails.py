"""Images decoded and scaled on pool threads, so a grid of 4K PNGs never stalls the GUI thread.

A :class:`ThumbnailLoader` runs one :class:`ThumbnailTask` per request on its own small pool and
hands back a ``QImage`` (``QPixmap`` may only be made on the GUI thread, so the receiver converts).
The newest request runs first: while the user scrolls, what is on screen now is decoded before
what scrolled past. A failed image arrives as a null ``QImage``: the receiver shows a placeholder.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, QRunnable, Qt, QThread, QThreadPool, Signal, Slot
from PySide6.QtGui import QImage, QImageReader

# Where the image comes from: a path, or a callable that makes one (a thumbnail cache) on the pool thread.
ImageSource = Callable[[], "str | Path"]


def read_scaled(path: str | Path, max_side: int) -> QImage:
    """``path`` decoded at most ``max_side`` pixels wide and high (EXIF rotation applied); null when unreadable.

    ``QImageReader.setScaledSize`` lets JPEG decode at a reduced size, and Qt's allocation limit
    refuses decompression bombs (BAD_INPUTS 30) with a null image instead of gigabytes.
    """
    reader = QImageReader(str(path))
    reader.setAutoTransform(True)
    size = reader.size()
    if size.isValid() and not size.isEmpty() and (size.width() > max_side or size.height() > max_side):
        reader.setScaledSize(size.scaled(max_side, max_side, Qt.AspectRatioMode.KeepAspectRatio))
    return reader.read()


class _Relay(QObject):
    """Carries results from pool threads; parentless and shared with the tasks, so it outlives them all."""

    done = Signal(str, QImage)


class ThumbnailTask(QRunnable):
    """Make (``source``) and decode one image; never raises, a failure is a null image."""

    def __init__(self, key: str, relay: _Relay, max_side: int, source: ImageSource | None = None) -> None:
        super().__init__()
        self.key, self.relay, self.max_side, self.source = key, relay, max_side, source

    def run(self) -> None:
        try:
            path = self.source() if self.source is not None else self.key
            image = read_scaled(path, self.max_side)
        except Exception:  # noqa: BLE001 - a bad file must not kill the pool thread; the placeholder says enough
            image = QImage()
        try:
            self.relay.done.emit(self.key, image)
        except RuntimeError:  # the receiver was deleted while this ran (the window closed)
            pass


class ThumbnailLoader(QObject):
    """Requests images by key and emits ``loaded(key, image)`` on the GUI thread; a key in flight is not asked twice."""

    loaded = Signal(str, QImage)

    def __init__(self, parent: QObject | None = None, *, threads: int = 0) -> None:
        super().__init__(parent)
        self._pool = QThreadPool(self)
        ideal = QThread.idealThreadCount()
        self._pool.setMaxThreadCount(threads or max(1, min(4, ideal - 1)))
        self._relay = _Relay()
        self._relay.done.connect(self._on_done)  # queued: the relay is emitted from pool threads
        self._in_flight: set[str] = set()
        self._order = itertools.count()

    def request(self, key: str, max_side: int, source: ImageSource | None = None) -> None:
        """Decode ``source()`` (or the file named ``key``) at most ``max_side`` pixels; newest request first."""
        if key in self._in_flight:
            return
        self._in_flight.add(key)
        # QThreadPool runs higher priorities first: a growing number makes the queue last-in, first-out.
        priority = next(self._order) % 2_000_000_000
        self._pool.start(ThumbnailTask(key, self._relay, max_side, source), priority)

    def is_loading(self, key: str) -> bool:
        return key in self._in_flight

    def cancel_pending(self) -> None:
        """Drop the requests not started yet (the rows they were for are gone); running ones still report."""
        self._pool.clear()
        self._in_flight.clear()

    def wait(self, msecs: int = -1) -> bool:
        """Block until every started task finished (tests, and shutdown before the window goes)."""
        return self._pool.waitForDone(msecs)

    @Slot(str, QImage)
    def _on_done(self, key: str, image: QImage) -> None:
        self._in_flight.discard(key)
        self.loaded.emit(key, image)
