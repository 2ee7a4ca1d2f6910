"""The gallery index kept up to date on its own thread: reconciling ten thousand images never touches the GUI thread.

The window makes the :class:`GalleryStore` (so it can show the pane at once and report a store it
cannot open), hands it to this worker and moves the worker to a ``QThread``. The pane queries the
same store from the GUI thread for pages (a few milliseconds; the store serialises with a lock);
the worker does the slow part: listing the folders, reading new images' metadata, pruning what
Finder deleted (BAD_INPUTS 33-34), and indexing each image the app just saved.

Shutdown, as for the catalogue: ``stop()`` from the GUI thread (interrupts a reconcile within a
file), then the queued ``shutdown()`` closes the store, then ``quit()`` and ``wait()``. Detach the
pane first (``pane.set_store(None)``): the store is closed here.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, Signal, Slot

from desktop.core.cancel import CancelToken
from desktop.library.gallery_store import GalleryStore, ReconcileReport


class GalleryWorker(QObject):
    changed = Signal()  # the index changed (images added, removed or updated): the pane re-queries
    progress = Signal(int, int)  # images looked at, images in the folders
    reconciled = Signal(object)  # ReconcileReport, after every reconcile that ran to the end
    problem = Signal(str)

    def __init__(self, store: GalleryStore) -> None:
        super().__init__()
        self._store: GalleryStore | None = store
        self._stop = CancelToken()

    # --- thread-safe, callable from any thread ---

    @property
    def store(self) -> GalleryStore | None:
        """The store, for the pane's page queries on the GUI thread (None after shutdown)."""
        return self._store

    def stop(self) -> None:
        """Interrupt a reconcile at once (from the GUI thread, before quitting the thread)."""
        self._stop.cancel()

    # --- slots, run in the gallery thread ---

    @Slot(list)
    def reconcile(self, folders: list) -> None:
        """Bring the index in line with the files in ``folders`` (added, removed, edited behind our back)."""
        store = self._store
        if store is None or self._stop.is_set():
            return
        try:
            report: ReconcileReport = store.reconcile(
                [Path(folder) for folder in folders],
                progress=lambda done, total: self.progress.emit(int(done), int(total)),
                cancel=self._stop,
            )
        except Exception as error:  # noqa: BLE001 - a reconcile problem is reported, the app goes on
            if not self._stop.is_set():
                self.problem.emit(str(error) or type(error).__name__)
            return
        if self._stop.is_set():
            return
        self.reconciled.emit(report)
        if report.added or report.removed or report.updated:
            self.changed.emit()

    @Slot(str)
    def add(self, path: str) -> None:
        """Index one image the app just saved, so it shows without waiting for a reconcile."""
        store = self._store
        if store is None or self._stop.is_set():
            return
        try:
            image = store.add(Path(path))
        except Exception as error:  # noqa: BLE001 - the next reconcile picks the file up anyway
            self.problem.emit(str(error) or type(error).__name__)
            return
        if image is not None:
            self.changed.emit()

    @Slot()
    def shutdown(self) -> None:
        self._stop.cancel()
        store, self._store = self._store, None
        if store is not None:
            store.close()
