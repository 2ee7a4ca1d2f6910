"""The job queue model on its own: dispatch order, reorder, remove, pause, forever, persistence."""

from __future__ import annotations

import json
from pathlib import Path

from desktop.core.events import JobFailure, JobReport
from desktop.core.requests import GenerationRequest
from desktop.ui.job_queue import CANCELLED, FAILED, FINISHED, QUEUED, RUNNING, JobQueue


def request(prompt: str) -> GenerationRequest:
    return GenerationRequest(prompt=prompt, model_path=Path("/models/a.safetensors"))


def started(queue: JobQueue) -> list[str]:
    names: list[str] = []
    queue.start_job.connect(lambda _job_id, req: names.append(req.prompt))
    return names


def test_jobs_run_one_after_another_in_order(qtbot, tmp_path: Path):
    queue = JobQueue(tmp_path / "queue.json")
    runs = started(queue)
    first, second = queue.add(request("one")), queue.add(request("two"))
    assert runs == ["one"] and first.state == RUNNING and second.state == QUEUED
    queue.on_job_finished(first.id, JobReport("finished"))
    assert runs == ["one", "two"] and first.state == FINISHED
    queue.on_job_finished(second.id, JobReport("failed", failure=JobFailure("model_file", "broken")))
    assert second.state == FAILED and second.message == "broken"


def test_reorder_remove_and_pause(qtbot, tmp_path: Path):
    queue = JobQueue(tmp_path / "queue.json")
    runs = started(queue)
    queue.set_paused(True)
    a, b, c = (queue.add(request(name)) for name in "abc")
    assert runs == []
    assert queue.move(c.id, -2) and [job.request.prompt for job in queue.jobs] == ["c", "a", "b"]
    assert queue.move(c.id, 1) and [job.request.prompt for job in queue.jobs] == ["a", "c", "b"]
    assert queue.remove(b.id) and [job.request.prompt for job in queue.jobs] == ["a", "c"]
    queue.set_paused(False)
    assert runs == ["a"]
    assert not queue.remove(a.id)  # running: cancel it instead
    assert not queue.move(a.id, 1)
    queue.on_job_finished(a.id, JobReport("cancelled"))
    assert a.state == CANCELLED and runs == ["a", "c"]
    queue.clear_ended()
    assert [job.request.prompt for job in queue.jobs] == ["c"]


def test_generate_forever_queues_the_same_request_again(qtbot):
    queue = JobQueue(None)
    runs = started(queue)
    queue.generate_forever = True
    job = queue.add(request("again"))
    queue.on_job_finished(job.id, JobReport("finished"))
    assert runs == ["again", "again"] and len(queue.jobs) == 2
    queue.generate_forever = False
    queue.on_job_finished(queue.jobs[1].id, JobReport("finished"))
    assert len(queue.jobs) == 2


def test_waiting_and_interrupted_jobs_are_saved_and_restored(qtbot, tmp_path: Path):
    path = tmp_path / "queue.json"
    queue = JobQueue(path)
    running = queue.add(request("interrupted"))
    waiting = queue.add(request("waiting"))
    done = json.loads(path.read_text(encoding="utf-8"))
    assert [item["id"] for item in done["jobs"]] == [running.id, waiting.id]

    restored = JobQueue(path)
    assert restored.restore() == 2
    assert [(job.request.prompt, job.state) for job in restored.jobs] == [("interrupted", QUEUED), ("waiting", QUEUED)]
    assert restored.jobs[0].request == running.request


def test_a_damaged_queue_file_is_set_aside(qtbot, tmp_path: Path):
    path = tmp_path / "queue.json"
    path.write_text("{ not json", encoding="utf-8")
    queue = JobQueue(path)
    problems: list[str] = []
    queue.load_problem.connect(problems.append)
    assert queue.restore() == 0 and queue.jobs == []
    assert problems and not path.exists() and list(tmp_path.glob("queue.json.corrupt-*"))
