"""The engine's thread: one long-lived worker that owns the loaded model and runs one job at a time.

The UI never imports torch. It hands the worker a factory (from the composition root, ``app``)
that builds the engine service on first use, inside the worker thread, so the window is up
before torch loads. Cancel and Skip set thread-safe tokens directly: a queued signal would only
be delivered after the job it is meant to stop.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Protocol

from PySide6.QtCore import QObject, Signal, Slot

from desktop.core.cancel import CancelToken
from desktop.core.events import JobFailure, JobReport
from desktop.core.requests import GenerationRequest


class Engine(Protocol):
    """What the worker needs from the engine (``desktop.engine.service.EngineService``)."""

    def run(self, request: GenerationRequest, **handlers: Any) -> JobReport: ...

    def configure(self, **options: Any) -> None: ...

    def unload(self) -> None: ...

    def preload(self, request: GenerationRequest, on_status: Any = None) -> None: ...

    def close(self) -> None: ...


class EngineWorker(QObject):
    job_started = Signal(str)  # job id
    progress = Signal(str, object)  # job id, StepProgress
    preview = Signal(str, object)  # job id, PreviewImage
    image_saved = Signal(str, object)  # job id, ImageSaved
    status = Signal(str)  # loading messages ("Loaded SD 1.x in 2.1 s")
    job_finished = Signal(str, object)  # job id, JobReport
    ready = Signal()  # the engine is imported and waiting for work

    def __init__(self, engine_factory: Callable[[dict[str, Any]], Engine]) -> None:
        super().__init__()
        self._engine_factory = engine_factory
        self._options: dict[str, Any] = {}
        self._engine: Engine | None = None
        self._lock = threading.Lock()
        self._current_job: str | None = None
        self._cancel = CancelToken()
        self._skip = CancelToken()

    # --- called from the GUI thread (thread-safe) ---------------------------------------------

    def cancel(self, job_id: str | None = None) -> bool:
        """Stop the running job (or only if it is ``job_id``) at its next sampling step."""
        with self._lock:
            if self._current_job is None or (job_id is not None and job_id != self._current_job):
                return False
            self._cancel.cancel()
            return True

    def skip(self) -> bool:
        """Abandon the image being sampled; the job goes on with its next batch (A1111's Skip)."""
        with self._lock:
            if self._current_job is None:
                return False
            self._skip.cancel()
            return True

    @property
    def current_job(self) -> str | None:
        with self._lock:
            return self._current_job

    # --- run in the worker thread ------------------------------------------------------------

    @Slot()
    def warm_up(self) -> None:
        """Import the engine (torch) now, while the user is still typing."""
        try:
            self._ensure_engine()
        except Exception as error:  # noqa: BLE001 - reported with the first job instead
            self.status.emit(self.tr("The engine failed to start: {error}").replace("{error}", str(error)))
            return
        self.ready.emit()

    @Slot(dict)
    def configure(self, options: dict[str, Any]) -> None:
        """New preferences (output folder, device, precision...), applied from the next job on."""
        self._options = dict(options)
        if self._engine is not None:
            self._engine.configure(**self._options)

    @Slot(str, object)
    def run_job(self, job_id: str, request: GenerationRequest) -> None:
        with self._lock:
            self._current_job = job_id
            self._cancel = CancelToken()
            cancel = self._cancel
        self.job_started.emit(job_id)
        try:
            engine = self._ensure_engine()
            report = engine.run(
                request,
                on_progress=lambda step: self.progress.emit(job_id, step),
                on_preview=lambda image: self.preview.emit(job_id, image),
                on_image=lambda saved: self.image_saved.emit(job_id, saved),
                on_status=self.status.emit,
                cancel=cancel,
                skip=self._fresh_skip_token,
            )
        except Exception as error:  # noqa: BLE001 - the worker must survive anything
            report = JobReport("failed", failure=JobFailure("internal", f"{type(error).__name__}: {error}"))
        finally:
            with self._lock:
                self._current_job = None
        self.job_finished.emit(job_id, report)

    @Slot()
    def unload(self) -> None:
        """Free the loaded model (before a training starts: both do not fit in 16 GB)."""
        if self._engine is not None:
            self._engine.unload()
            self.status.emit(self.tr("Models unloaded for training"))

    @Slot(object)
    def preload(self, request: GenerationRequest) -> None:
        """Load the request's checkpoint again (after a training), failures reported as status."""
        try:
            self._ensure_engine().preload(request, on_status=self.status.emit)
        except Exception as error:  # noqa: BLE001 - the next job reports it properly
            self.status.emit(self.tr("The engine failed to start: {error}").replace("{error}", str(error)))

    @Slot()
    def shutdown(self) -> None:
        if self._engine is not None:
            self._engine.close()
            self._engine = None

    def _ensure_engine(self) -> Engine:
        if self._engine is None:
            self._engine = self._engine_factory(self._options)
        return self._engine

    def _fresh_skip_token(self) -> CancelToken:
        with self._lock:
            self._skip = CancelToken()
            return self._skip
