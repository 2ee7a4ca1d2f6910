"""The training child process, for real: small Python scripts written here print real ``encode(...)``
lines and obey stdin commands, crash, get killed, print garbage, or ignore a cancel."""

from __future__ import annotations

import signal
import sys
import textwrap
from pathlib import Path

import pytest
from PySide6.QtCore import QElapsedTimer, QTimer

from desktop.training.events import (
    FAILURE_NAN_LOSS,
    OUTCOME_CANCELLED,
    Failed,
    Finished,
    Paused,
    Resumed,
    SampleSaved,
    Saved,
    Started,
    StepDone,
)
from desktop.ui.training_process import FAILURE_CRASHED, FAILURE_NOT_STARTED, STDERR_LINES, TrainingProcess

REPO = Path(__file__).resolve().parents[2]
TIMEOUT_MS = 30_000

PRELUDE = f"""
import os, signal, sys, time
sys.path.insert(0, {str(REPO)!r})
from desktop.training.events import *

def say(event, *, split=False):
    line = encode(event) + "\\n"
    if split:  # half a line, a pause, the rest: the reader must buffer
        sys.stdout.write(line[:10]); sys.stdout.flush(); time.sleep(0.2)
        line = line[10:]
    sys.stdout.write(line); sys.stdout.flush()
"""

OBEDIENT = """
say(Started(total_steps=100, steps_per_epoch=10, epochs=10, images=5, device="cpu", output_dir="out"))
step = 0
for step in range(1, 4):
    say(StepDone(step=step, epoch=1, loss=0.2 / step, average_loss=0.15, lr=1e-4), split=step == 2)
for line in sys.stdin:
    word = parse_command(line)
    if word == "pause":
        say(Paused(step=step))
    elif word == "resume":
        say(Resumed(step=step))
    elif word == "save":
        say(Saved(path="out/lora-manual.safetensors", step=step, epoch=1, reason="manual"))
    elif word == "sample":
        say(SampleSaved(path="out/sample.png", step=step, epoch=1, prompt="a photo of sks"))
    elif word == "cancel":
        say(Saved(path="out/lora.safetensors", step=step, epoch=1, reason="cancelled"))
        say(Finished(outcome=OUTCOME_CANCELLED, lora_path="out/lora.safetensors", steps=step, seconds=1.5))
        break
"""


def write_child(folder: Path, body: str, name: str = "child.py") -> Path:
    path = folder / name
    path.write_text(PRELUDE + textwrap.dedent(body), encoding="utf-8")
    return path


class Recorder:
    def __init__(self, process: TrainingProcess) -> None:
        self.events: list[object] = []
        self.logged: list[str] = []
        self.ended: list[tuple[int, bool]] = []
        process.event_received.connect(self.events.append)
        process.log_line.connect(self.logged.append)
        process.process_ended.connect(lambda code, crashed: self.ended.append((code, crashed)))

    def of(self, kind: type) -> list:
        return [event for event in self.events if isinstance(event, kind)]


_STARTED: list[TrainingProcess] = []


@pytest.fixture(autouse=True)
def _no_child_outlives_its_test():
    yield
    while _STARTED:
        process = _STARTED.pop()
        if process.is_running():
            process.kill()
            process.shutdown(timeout_ms=5000)


def run_script(script: Path, **kwargs) -> tuple[TrainingProcess, Recorder]:
    process = TrainingProcess(lambda config: [sys.executable, str(script), str(config)], **kwargs)
    _STARTED.append(process)
    return process, Recorder(process)


def test_events_arrive_in_order_and_commands_are_obeyed(qtbot, tmp_path: Path):
    process, seen = run_script(write_child(tmp_path, OBEDIENT))
    with qtbot.waitSignal(process.process_started, timeout=TIMEOUT_MS):
        process.start(tmp_path / "run.toml")
    assert process.is_running()
    qtbot.waitUntil(lambda: len(seen.of(StepDone)) == 3, timeout=TIMEOUT_MS)
    assert isinstance(seen.events[0], Started) and seen.events[0].total_steps == 100
    assert [event.step for event in seen.of(StepDone)] == [1, 2, 3]  # the split line came through whole
    assert seen.of(StepDone)[1].loss == pytest.approx(0.1)

    for command, kind in (("pause", Paused), ("resume", Resumed), ("save", Saved), ("sample", SampleSaved)):
        assert process.send(command)
        qtbot.waitUntil(lambda kind=kind: bool(seen.of(kind)), timeout=TIMEOUT_MS)
    assert seen.of(Saved)[0].reason == "manual" and seen.of(SampleSaved)[0].prompt == "a photo of sks"
    with pytest.raises(ValueError):
        process.send("reboot")

    with qtbot.waitSignal(process.process_ended, timeout=TIMEOUT_MS):
        process.cancel()
    finished = seen.of(Finished)
    assert len(finished) == 1 and finished[0].outcome == OUTCOME_CANCELLED and finished[0].steps == 3
    assert seen.of(Saved)[-1].reason == "cancelled"
    assert not seen.of(Failed)  # a clean exit after "finished" is not a crash
    assert seen.ended == [(0, False)]
    assert not process.is_running() and not process.send("pause")
    assert seen.logged == []


def test_a_child_killed_by_a_signal_becomes_a_crash_event_with_the_stderr_tail(qtbot, tmp_path: Path):
    script = write_child(
        tmp_path,
        """
        say(Started(total_steps=10, steps_per_epoch=10, epochs=1, images=10))
        say(StepDone(step=7, epoch=1, loss=0.1, average_loss=0.1, lr=1e-4))
        for number in range(300):
            print(f"stderr line {number}", file=sys.stderr)
        print("RuntimeError: MPS backend out of memory", file=sys.stderr, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
        """,
    )
    process, seen = run_script(script)
    with qtbot.waitSignal(process.process_ended, timeout=TIMEOUT_MS):
        process.start(tmp_path / "run.toml")
    crash = seen.events[-1]
    assert isinstance(crash, Failed) and crash.kind == FAILURE_CRASHED and crash.step == 7
    assert f"signal {int(signal.SIGKILL)}" in crash.message and "SIGKILL" in crash.message
    assert "MPS backend out of memory" in crash.message  # the reason is in the last stderr lines
    tail = process.stderr_tail()
    assert len(tail) == STDERR_LINES and tail[-1] == "RuntimeError: MPS backend out of memory"
    assert seen.ended == [(int(signal.SIGKILL), True)]


def test_exit_code_137_without_a_last_word_is_a_crash_named_as_sigkill(qtbot, tmp_path: Path):
    script = write_child(tmp_path, "say(Started(total_steps=10, steps_per_epoch=10, epochs=1, images=10))\nsys.exit(137)\n")
    process, seen = run_script(script)
    with qtbot.waitSignal(process.process_ended, timeout=TIMEOUT_MS):
        process.start(tmp_path / "run.toml")
    assert [type(event) for event in seen.events] == [Started, Failed]
    crash = seen.events[-1]
    assert crash.kind == FAILURE_CRASHED and crash.step is None
    assert "code 137" in crash.message and "SIGKILL" in crash.message
    assert seen.ended == [(137, False)]


def test_garbage_lines_are_logged_and_a_reported_failure_is_not_a_crash(qtbot, tmp_path: Path):
    script = write_child(
        tmp_path,
        """
        print("Loading weights... done")
        print("{not json")
        print('{"event": "teleported", "step": 3}')
        print('{"event": "step", "epoch": 1}')  # incomplete
        print("\\x00\\x01 binary junk \\u2603")
        sys.stdout.buffer.write(b"\\xff\\xfe not utf-8\\n")
        say(StepDone(step=1, epoch=1, loss=float("nan"), average_loss=float("nan"), lr=1e-4))
        # the last word without a newline at all
        sys.stdout.write(encode(Failed(kind=FAILURE_NAN_LOSS, message="loss is NaN", step=1)))
        sys.stdout.flush()
        sys.exit(1)
        """,
    )
    process, seen = run_script(script)
    with qtbot.waitSignal(process.process_ended, timeout=TIMEOUT_MS):
        process.start(tmp_path / "run.toml")
    assert seen.logged[:4] == ["Loading weights... done", "{not json", '{"event": "teleported", "step": 3}', '{"event": "step", "epoch": 1}']
    assert len(seen.logged) == 6 and "not utf-8" in seen.logged[-1]
    assert [type(event) for event in seen.events] == [StepDone, Failed]
    assert seen.events[0].loss != seen.events[0].loss  # NaN survives the trip
    assert seen.events[1].kind == FAILURE_NAN_LOSS and seen.events[1].step == 1  # the child's own words, no crash added
    assert seen.ended == [(1, False)]


def test_a_child_that_ignores_cancel_is_killed_after_the_grace_period(qtbot, tmp_path: Path):
    script = write_child(
        tmp_path,
        """
        say(StepDone(step=4, epoch=1, loss=0.1, average_loss=0.1, lr=1e-4))
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        while True:
            time.sleep(0.05)
        """,
    )
    process, seen = run_script(script, cancel_grace_ms=700)
    process.start(tmp_path / "run.toml")
    qtbot.waitUntil(lambda: bool(seen.of(StepDone)), timeout=TIMEOUT_MS)
    timer = QElapsedTimer()
    timer.start()
    with qtbot.waitSignal(process.process_ended, timeout=TIMEOUT_MS):
        process.cancel()
    assert timer.elapsed() >= 600
    crash = seen.events[-1]
    assert isinstance(crash, Failed) and crash.kind == FAILURE_CRASHED and crash.step == 4
    assert "did not stop within" in crash.message


def test_a_missing_program_is_reported_not_raised(qtbot, tmp_path: Path):
    process = TrainingProcess(lambda config: [str(tmp_path / "no-such-trainer"), str(config)])
    seen = Recorder(process)
    with qtbot.waitSignal(process.process_ended, timeout=TIMEOUT_MS):
        process.start(tmp_path / "run.toml")
    assert len(seen.events) == 1 and seen.events[0].kind == FAILURE_NOT_STARTED
    assert not process.is_running()


def test_thousands_of_events_stream_through_without_stalling_the_gui_thread(qtbot, tmp_path: Path):
    script = write_child(
        tmp_path,
        """
        for step in range(1, 3001):
            say(StepDone(step=step, epoch=1 + step // 500, loss=1.0 / step, average_loss=0.5, lr=1e-4))
        say(Finished(outcome="completed", lora_path="x.safetensors", steps=3000, seconds=9.0))
        """,
    )
    process, seen = run_script(script)
    ticks: list[int] = []
    clock = QElapsedTimer()
    timer = QTimer()
    timer.setInterval(10)
    timer.timeout.connect(lambda: ticks.append(clock.elapsed()))
    clock.start()
    timer.start()
    with qtbot.waitSignal(process.process_ended, timeout=TIMEOUT_MS):
        process.start(tmp_path / "run.toml")
    timer.stop()
    steps = [event.step for event in seen.of(StepDone)]
    assert steps == list(range(1, 3001))
    assert isinstance(seen.events[-1], Finished)
    gaps = [later - earlier for earlier, later in zip(ticks, ticks[1:])]
    assert gaps and max(gaps) < 1000  # the GUI thread kept running its timers while reading


def test_a_second_start_while_running_is_refused_and_a_new_run_starts_clean(qtbot, tmp_path: Path):
    process, seen = run_script(write_child(tmp_path, OBEDIENT))
    process.start(tmp_path / "run.toml")
    qtbot.waitUntil(lambda: len(seen.of(StepDone)) == 3, timeout=TIMEOUT_MS)
    with pytest.raises(RuntimeError):
        process.start(tmp_path / "run.toml")
    with qtbot.waitSignal(process.process_ended, timeout=TIMEOUT_MS):
        process.cancel()
    seen.events.clear()
    with qtbot.waitSignal(process.process_started, timeout=TIMEOUT_MS):
        process.start(tmp_path / "run.toml")
    qtbot.waitUntil(lambda: len(seen.of(StepDone)) == 3, timeout=TIMEOUT_MS)
    process.shutdown(timeout_ms=TIMEOUT_MS)  # the bounded wait used at app quit
    assert not process.is_running()
    assert seen.of(Finished) and not seen.of(Failed)
