"""``python -m desktop train CONFIG.toml``: a training from the terminal, or as the app's child process.

With ``--events`` the run speaks the JSON-lines protocol of :mod:`desktop.training.events` on stdout
and takes commands on stdin (the app's training window); library chatter that would otherwise reach
stdout goes to stderr. Without it, progress lines go to stderr and Ctrl-C cancels cleanly (a second
Ctrl-C stops at once).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from desktop.training import events

EXIT_COMPLETED = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2  # the config or the dataset: fixing the input fixes it
EXIT_CANCELLED = 130


def run_training_command(
    config_path: Path, *, emit_events: bool, stdout: TextIO, stderr: TextIO, stdin: TextIO | None = None
) -> int:
    """Run the training in ``config_path``; the exit status says how it ended (EXIT_*)."""
    with _events_channel(stdout, enabled=emit_events) as channel:
        report = _EventWriter(channel) if emit_events else _ProgressPrinter(stderr)
        return _run(config_path, report, (stdin or sys.stdin) if emit_events else None)


def _run(config_path: Path, report, commands: TextIO | None) -> int:
    from desktop.training.config import ConfigError, load_config
    from desktop.training.control import TrainingControl, feed_from_stream

    try:
        loaded = load_config(config_path)
    except ConfigError as error:
        report(events.Failed(events.FAILURE_CONFIG, error.message))
        return EXIT_BAD_INPUT
    for note in loaded.notes():
        report(events.Warning(note))
    control = TrainingControl()
    if commands is not None:
        feed_from_stream(commands, control)
    from desktop.training.trainer import train

    with _cancel_on_interrupt(control, enabled=commands is None):
        outcome = train(loaded.config, report, control)
    if isinstance(outcome, events.Finished):
        return EXIT_COMPLETED if outcome.outcome == events.OUTCOME_COMPLETED else EXIT_CANCELLED
    assert isinstance(outcome, events.Failed)
    return EXIT_BAD_INPUT if outcome.kind in (events.FAILURE_CONFIG, events.FAILURE_DATASET) else EXIT_FAILED


class _EventWriter:
    """Events as JSON lines on the real stdout, flushed at once (the app reads them live)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def __call__(self, event: events.TrainingEvent) -> None:
        self.stream.write(events.encode(event) + "\n")
        self.stream.flush()


class _ProgressPrinter:
    """Human-readable progress on stderr."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def __call__(self, event: events.TrainingEvent) -> None:
        line = _describe(event)
        if line:
            self.stream.write(line + "\n")
            self.stream.flush()


def _describe(event: events.TrainingEvent) -> str:
    if isinstance(event, events.StepDone):
        return (
            f"step {event.step} epoch {event.epoch}  loss {event.loss:.4f} (avg {event.average_loss:.4f})  "
            f"lr {event.lr:.2e}  {event.seconds_per_step:.2f} s/it  ETA {_duration(event.eta_seconds)}  "
            f"memory {event.memory_bytes / 2**30:.1f} GiB"
        )
    if isinstance(event, events.Started):
        resumed = f", resuming at step {event.resumed_from_step}" if event.resumed_from_step else ""
        return f"Training on {event.device}: {event.images} images, {event.steps_per_epoch} steps per epoch, {event.total_steps} steps{resumed}"
    if isinstance(event, events.Progress):
        if event.stage == "caching_latents":  # one line per tenth, not per image
            every = max(1, event.total // 10)
            if event.current % every and event.current != event.total:
                return ""
            return f"Caching latents {event.current}/{event.total}"
        return event.message and f"{event.message}" + (f" ({event.current}/{event.total})" if event.total > 1 else "")
    if isinstance(event, events.Saved):
        return f"Saved {event.path} ({event.reason}, step {event.step})"
    if isinstance(event, events.StateSaved):
        return f"Saved the resume state in {event.path} (step {event.step})"
    if isinstance(event, events.SampleSaved):
        return f"Sample: {event.path}"
    if isinstance(event, events.Verified):
        return f"Verified {Path(event.path).name}: {event.matched}/{event.total} modules matched; with/without samples differ: {event.differs}"
    if isinstance(event, events.Warning):
        return f"warning: {event.message}"
    if isinstance(event, events.Finished):
        return f"Training {event.outcome} after {event.steps} steps in {_duration(event.seconds)}; LoRA: {event.lora_path or 'none'}"
    if isinstance(event, events.Failed):
        step = f" at step {event.step}" if event.step else ""
        return f"error ({event.kind}{step}): {event.message}"
    return ""


def _duration(seconds: float) -> str:
    seconds = int(max(0, seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"


@contextlib.contextmanager
def _cancel_on_interrupt(control, *, enabled: bool) -> Iterator[None]:
    """First Ctrl-C: cancel at the next step (a LoRA and the state are saved); second: stop now."""
    if not enabled:
        yield
        return

    def handler(_signum, _frame) -> None:
        if control.cancelled:
            raise KeyboardInterrupt
        sys.stderr.write("\nCancelling after this step (Ctrl-C again to stop at once)...\n")
        control.cancel()

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@contextlib.contextmanager
def _events_channel(stdout: TextIO, *, enabled: bool) -> Iterator[TextIO]:
    """Keep the process's stdout for events only: anything else printed there (Python or C level,
    libraries included) goes to stderr, and the events get their own copy of the original stdout."""
    if not enabled or stdout is not sys.__stdout__:
        yield stdout
        return
    sys.stdout.flush()
    saved = os.dup(1)
    channel = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
    os.dup2(2, 1)
    try:
        yield channel
    finally:
        sys.stdout.flush()
        channel.close()
        os.dup2(saved, 1)
        os.close(saved)
