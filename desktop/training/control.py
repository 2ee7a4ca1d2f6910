"""Commands for a running training (pause, resume, cancel, save, sample), from another thread.

The trainer polls between steps, so every command takes effect within one training step. In the
child process a daemon thread feeds the app's stdin lines in; when stdin closes (the app quit or
crashed) the run is cancelled, which still saves a loadable LoRA and the resume state.
"""

from __future__ import annotations

import queue
import threading
from typing import TextIO

from desktop.training.events import parse_command


class TrainingControl:
    """A thread-safe queue of commands; ``cancel()`` also works from a signal handler."""

    def __init__(self) -> None:
        self._commands: queue.SimpleQueue[str] = queue.SimpleQueue()
        self._cancelled = threading.Event()

    def send(self, command: str) -> None:
        if command == "cancel":
            self._cancelled.set()
        self._commands.put(command)

    def cancel(self) -> None:
        self.send("cancel")

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def pending(self) -> list[str]:
        """Commands sent since the last call, in order (never blocks)."""
        commands = []
        while True:
            try:
                commands.append(self._commands.get_nowait())
            except queue.Empty:
                return commands

    def wait(self, timeout: float | None = None) -> str | None:
        """The next command, waiting for it (a paused run waits here); None on timeout."""
        try:
            return self._commands.get(timeout=timeout)
        except queue.Empty:
            return None


def feed_from_stream(stream: TextIO, control: TrainingControl) -> threading.Thread:
    """Read command lines from ``stream`` until it closes, then cancel. Unknown lines are ignored."""

    def read() -> None:
        try:
            for line in stream:
                command = parse_command(line)
                if command is not None:
                    control.send(command)
        except (OSError, ValueError):
            pass
        control.cancel()

    thread = threading.Thread(target=read, name="training-commands", daemon=True)
    thread.start()
    return thread
