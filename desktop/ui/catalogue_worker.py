"""The model catalogue on its own thread: scanning the folders and hashing new files never touch the GUI thread.

Hashing runs one file per event-loop turn, so a Refresh asked for in the middle of hashing a folder
of LoRAs is served after the current file, not after all of them; ``stop()`` (called from the GUI
thread) interrupts even a 7 GB checkpoint within one block.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, QTimer, Signal, Slot

from desktop.core.cancel import CancelToken
from desktop.library.catalogue import Catalogue
from desktop.library.catalogue_entry import CatalogueEntry


class CatalogueWorker(QObject):
    entries_changed = Signal(list)  # list[CatalogueEntry]: every model in the folders, after a scan
    entry_updated = Signal(object)  # CatalogueEntry whose hashes were just computed
    hash_progress = Signal(str, object, object)  # file name, bytes done, total (Python ints: files exceed 2 GB)
    hashing_finished = Signal()
    problem = Signal(str)

    def __init__(self, db_path: Path) -> None:
        super().__init__()
        self._db_path = db_path
        self._catalogue: Catalogue | None = None
        self._pending: list[Path] = []
        self._stop = CancelToken()

    # --- thread-safe, callable from any thread ---

    def stop(self) -> None:
        """Interrupt hashing at once (from the GUI thread, before quitting the thread)."""
        self._stop.cancel()

    def find_duplicate(self, sha256: str) -> Path | None:
        """An installed file with this content, for installs running on pool threads (the catalogue locks)."""
        catalogue = self._catalogue
        if catalogue is None:
            return None
        matches = catalogue.find_by_hash(sha256)
        return matches[0].path if matches else None

    def find_by_short_hash(self, prefix: str) -> list[CatalogueEntry]:
        """Models whose AutoV2, network or legacy hash starts with ``prefix`` (an image's "Model hash")."""
        catalogue = self._catalogue
        if catalogue is None or len(prefix) < 8:
            return []
        return catalogue.find_by_short_hash(prefix)

    def full_entry(self, path: Path) -> CatalogueEntry | None:
        """One model with its file metadata (lists leave it out); one indexed row, safe from the GUI thread."""
        catalogue = self._catalogue
        return catalogue.entry(path) if catalogue is not None else None

    # --- slots, run in the catalogue thread ---

    @Slot(list)
    def refresh(self, roots: list) -> None:
        catalogue = self._open()
        if catalogue is None:
            return
        try:
            entries = catalogue.scan([Path(root) for root in roots], cancel=self._stop)
        except Exception as error:  # noqa: BLE001 - a scan problem is reported, the app goes on
            self.problem.emit(str(error) or type(error).__name__)
            return
        self.entries_changed.emit(entries)
        was_idle = not self._pending
        self._pending = catalogue.unhashed()
        if was_idle and self._pending:
            QTimer.singleShot(0, self._hash_next)

    @Slot()
    def shutdown(self) -> None:
        self._stop.cancel()
        if self._catalogue is not None:
            self._catalogue.close()
            self._catalogue = None

    def _open(self) -> Catalogue | None:
        if self._catalogue is None and not self._stop.is_set():
            try:
                self._catalogue = Catalogue(self._db_path)
            except Exception as error:  # noqa: BLE001 - e.g. a catalogue from a newer version of the app
                self.problem.emit(str(error))
        return self._catalogue

    def _hash_next(self) -> None:
        if not self._pending or self._catalogue is None or self._stop.is_set():
            self._pending = []
            self.hashing_finished.emit()
            return
        path = self._pending.pop(0)
        name = path.name
        try:
            entry = self._catalogue.hash_file(
                path, progress=lambda done, total: self.hash_progress.emit(name, done, total), cancel=self._stop
            )
        except Exception as error:  # noqa: BLE001 - one unreadable file must not stop the others
            if not self._stop.is_set():
                self.problem.emit(str(error) or type(error).__name__)
            entry = None
        if entry is not None:
            self.entry_updated.emit(entry)
        QTimer.singleShot(0, self._hash_next)

