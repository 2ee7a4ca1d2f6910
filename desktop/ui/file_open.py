"""Files dropped on the Dock icon or opened with the app from Finder: one QFileOpenEvent per file.

macOS delivers them to the application object, also at launch (before the window exists) and
while a job runs. They are collected for a moment, so that fifty files dropped at once arrive as
one batch, and handed to the window when it is there (BAD_INPUTS 18).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QEvent, QObject, QTimer
from PySide6.QtGui import QFileOpenEvent


class FileOpenForwarder(QObject):
    """Install on the QApplication; set ``target`` (a callable taking a list of paths) when the window exists."""

    def __init__(self, parent: QObject | None = None, *, batch_ms: int = 200) -> None:
        super().__init__(parent)
        self._pending: list[Path] = []
        self._target: Callable[[list[Path]], None] | None = None
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(batch_ms)
        self._timer.timeout.connect(self._flush)

    def set_target(self, target: Callable[[list[Path]], None]) -> None:
        self._target = target
        if self._pending:
            self._timer.start()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt's name
        if event.type() == QEvent.Type.FileOpen and isinstance(event, QFileOpenEvent):
            path = event.file() or event.url().toLocalFile()
            if path:
                self._pending.append(Path(path))
                if self._target is not None:
                    self._timer.start()
                return True
        return super().eventFilter(watched, event)

    def _flush(self) -> None:
        if self._target is None or not self._pending:
            return
        files, self._pending = list(dict.fromkeys(self._pending)), []
        self._target(files)
