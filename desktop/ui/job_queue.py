"""The generate queue: a Qt list model of jobs that run one after another and survive a restart.

Each job holds a frozen :class:`GenerationRequest`. Waiting jobs can be reordered and removed;
the queue can be paused; "Generate forever" queues the same request again when a job finishes.
Waiting (and interrupted) jobs are saved atomically to a JSON file after every change.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PySide6.QtCore import QAbstractListModel, QCoreApplication, QEvent, QModelIndex, QObject, QPersistentModelIndex, Qt, Signal

from desktop.core.errors import InvalidRequest
from desktop.core.events import JobReport
from desktop.core.requests import GenerationRequest
from desktop.library.atomic_write import write_text_atomically

QUEUED, RUNNING, FINISHED, CANCELLED, FAILED = "queued", "running", "finished", "cancelled", "failed"
_QUEUE_FILE_VERSION = 1


@dataclass
class Job:
    request: GenerationRequest
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    state: str = QUEUED
    fraction: float = 0.0  # progress 0..1 while running
    images: list[str] = field(default_factory=list)
    message: str = ""  # the failure or warning shown in the list
    report: JobReport | None = None
    created: float = field(default_factory=time.time)

    @property
    def waiting(self) -> bool:
        return self.state == QUEUED


class JobQueue(QAbstractListModel):
    JobRole = Qt.ItemDataRole.UserRole + 1

    start_job = Signal(str, object)  # job id, request: connect to the worker's run_job
    job_changed = Signal(str)  # job id
    paused_changed = Signal(bool)
    load_problem = Signal(str)  # the saved queue could not be read (it was set aside)

    def __init__(self, store_path: Path | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._jobs: list[Job] = []
        self._store_path = store_path
        self._paused = False
        self.generate_forever = False

    # --- Qt model ------------------------------------------------------------------------------

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008, N802
        return 0 if parent.isValid() else len(self._jobs)

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._jobs):
            return None
        job = self._jobs[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return describe(job)
        if role == Qt.ItemDataRole.ToolTipRole:
            return job.request.prompt + (f"\n\n{job.message}" if job.message else "")
        if role == self.JobRole:
            return job
        return None

    def event(self, event: QEvent) -> bool:
        # A parent widget passes LanguageChange on to its children: show the states in the new language.
        if event.type() == QEvent.Type.LanguageChange and self._jobs:
            self.dataChanged.emit(self.index(0), self.index(len(self._jobs) - 1), [Qt.ItemDataRole.DisplayRole])
        return super().event(event)

    # --- queries -------------------------------------------------------------------------------

    @property
    def jobs(self) -> list[Job]:
        return list(self._jobs)

    def job(self, job_id: str) -> Job | None:
        return next((job for job in self._jobs if job.id == job_id), None)

    def running(self) -> Job | None:
        return next((job for job in self._jobs if job.state == RUNNING), None)

    def waiting(self) -> list[Job]:
        return [job for job in self._jobs if job.waiting]

    @property
    def paused(self) -> bool:
        return self._paused

    # --- commands ------------------------------------------------------------------------------

    def add(self, request: GenerationRequest) -> Job:
        job = Job(request)
        self.beginInsertRows(QModelIndex(), len(self._jobs), len(self._jobs))
        self._jobs.append(job)
        self.endInsertRows()
        self._save()
        self.dispatch()
        return job

    def remove(self, job_id: str) -> bool:
        """Remove a waiting or ended job; a running job must be cancelled instead."""
        for row, job in enumerate(self._jobs):
            if job.id == job_id and job.state != RUNNING:
                self.beginRemoveRows(QModelIndex(), row, row)
                del self._jobs[row]
                self.endRemoveRows()
                self._save()
                return True
        return False

    def move(self, job_id: str, delta: int) -> bool:
        """Move a waiting job up (negative) or down among the rows."""
        row = next((r for r, job in enumerate(self._jobs) if job.id == job_id), None)
        if row is None or not self._jobs[row].waiting:
            return False
        target = max(0, min(len(self._jobs) - 1, row + delta))
        if target == row:
            return False
        # Qt's destination row counts positions before the move
        destination = target + 1 if target > row else target
        self.beginMoveRows(QModelIndex(), row, row, QModelIndex(), destination)
        self._jobs.insert(target, self._jobs.pop(row))
        self.endMoveRows()
        self._save()
        return True

    def clear_ended(self) -> None:
        for job in [job for job in self._jobs if job.state in (FINISHED, CANCELLED, FAILED)]:
            self.remove(job.id)

    def set_paused(self, paused: bool) -> None:
        if paused != self._paused:
            self._paused = paused
            self.paused_changed.emit(paused)
            if not paused:
                self.dispatch()

    def dispatch(self) -> None:
        """Start the first waiting job unless one is running or the queue is paused."""
        if self._paused or self.running() is not None:
            return
        job = next((job for job in self._jobs if job.waiting), None)
        if job is None:
            return
        job.state = RUNNING
        job.fraction = 0.0
        self._changed(job)
        self.start_job.emit(job.id, job.request)

    # --- worker events -------------------------------------------------------------------------

    def on_progress(self, job_id: str, fraction: float) -> None:
        job = self.job(job_id)
        if job is not None:
            job.fraction = fraction
            self._changed(job, save=False)

    def on_image_saved(self, job_id: str, path: str) -> None:
        job = self.job(job_id)
        if job is not None:
            job.images.append(path)

    def on_job_finished(self, job_id: str, report: JobReport) -> None:
        job = self.job(job_id)
        if job is None:
            return
        job.report = report
        job.state = {"finished": FINISHED, "cancelled": CANCELLED}.get(report.outcome, FAILED)
        job.fraction = 1.0 if job.state == FINISHED else job.fraction
        if report.failure is not None:
            job.message = report.failure.message
        elif report.warnings:
            job.message = "; ".join(report.warnings)
        self._changed(job)
        if self.generate_forever and job.state == FINISHED:
            self.add(job.request)
        self.dispatch()

    # --- persistence ---------------------------------------------------------------------------

    def restore(self) -> int:
        """Load the saved waiting jobs (an interrupted running job waits again). Returns how many."""
        if self._store_path is None or not self._store_path.exists():
            return 0
        try:
            data = json.loads(self._store_path.read_text(encoding="utf-8"))
            if not isinstance(data, dict) or data.get("version") != _QUEUE_FILE_VERSION:
                raise ValueError("not a queue file of this version")
            jobs = [Job(GenerationRequest.from_json(item["request"]), id=str(item["id"])) for item in data["jobs"]]
        except (OSError, ValueError, KeyError, TypeError, InvalidRequest) as error:
            aside = self._store_path.with_name(f"{self._store_path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
            self._store_path.replace(aside)
            message = self.tr("The saved queue could not be read ({error}); it was moved to {name}.")
            self.load_problem.emit(message.replace("{error}", str(error)).replace("{name}", aside.name))
            return 0
        if jobs:
            self.beginInsertRows(QModelIndex(), len(self._jobs), len(self._jobs) + len(jobs) - 1)
            self._jobs.extend(jobs)
            self.endInsertRows()
        return len(jobs)

    def _save(self) -> None:
        if self._store_path is None:
            return
        pending = [job for job in self._jobs if job.state in (QUEUED, RUNNING)]
        data = {"version": _QUEUE_FILE_VERSION, "jobs": [{"id": job.id, "request": job.request.to_json()} for job in pending]}
        write_text_atomically(self._store_path, json.dumps(data, ensure_ascii=False, indent=1))

    def _changed(self, job: Job, *, save: bool = True) -> None:
        row = self._jobs.index(job)
        index = self.index(row)
        self.dataChanged.emit(index, index)
        self.job_changed.emit(job.id)
        if save:
            self._save()


def describe(job: Job) -> str:
    """Two lines for the queue list: the prompt, then size, steps, sampler, count and state."""
    translate = QCoreApplication.translate
    request = job.request
    prompt = " ".join(request.prompt.split())
    if len(prompt) > 60:
        prompt = prompt[:57] + "…"
    count = request.batch_count * request.batch_size
    steps = translate("JobQueue", "{steps} steps").replace("{steps}", str(request.steps))
    detail = f"{request.width}×{request.height} · {steps} · {request.sampler}"
    if count > 1:
        detail += f" · ×{count}"
    states = {
        QUEUED: translate("JobQueue", "waiting"),
        FINISHED: translate("JobQueue", "finished"),
        CANCELLED: translate("JobQueue", "cancelled"),
        FAILED: translate("JobQueue", "failed"),
    }
    state = f"{round(job.fraction * 100)}%" if job.state == RUNNING else states.get(job.state, job.state)
    return f"{prompt or translate('JobQueue', '(empty prompt)')}\n{detail} · {state}"
