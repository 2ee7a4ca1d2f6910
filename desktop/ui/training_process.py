"""One training run in a child process, spoken to over its stdin and stdout.

Training runs in a separate process so that an out-of-memory kill or a crash in native code takes
down only the trainer, never the window and its unsaved work. The child writes one JSON event per
line (``desktop.training.events``); this class reads them as they come, without ever blocking the
GUI thread, and turns an exit without a last word (``finished``/``failed``) into a ``Failed`` event
of kind :data:`FAILURE_CRASHED`, so the window always learns how a run ended.
"""

from __future__ import annotations

import collections
import signal
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, QProcess, QProcessEnvironment, QTimer, Signal, Slot

from desktop.training.events import COMMANDS, EventFormatError, Failed, Finished, StepDone, decode

# The child ended without saying finished or failed: killed by the system (out of memory), a crash
# in native code, or stopped here after not answering a cancel.
FAILURE_CRASHED = "crashed"
# The child could not be started at all (the interpreter or the app binary is missing).
FAILURE_NOT_STARTED = "not_started"

CANCEL_GRACE_MS = 30_000  # a cancelled child saves a loadable LoRA of the steps so far before it exits
STDERR_LINES = 200
_MAX_LINE = 1 << 20  # a "line" longer than this without a newline is not an event; it is logged in pieces

CommandFor = Callable[[Path], list[str]]


class TrainingProcess(QObject):
    """Starts the child from ``command_for(config_path)`` and relays what it says.

    Signals: ``event_received(object)`` for every decoded event (and the synthetic crash),
    ``log_line(str)`` for stdout lines that are not events (a stray print), ``process_started()``
    when the child runs, ``process_ended(int, bool)`` (exit code or signal number, crashed) after
    the last event. ``event_received`` is not called ``event``: that would hide ``QObject.event``.
    """

    event_received = Signal(object)
    log_line = Signal(str)
    process_started = Signal()
    process_ended = Signal(int, bool)

    def __init__(self, command_for: CommandFor, parent: QObject | None = None, *, cancel_grace_ms: int = CANCEL_GRACE_MS) -> None:
        super().__init__(parent)
        self._command_for = command_for
        self._cancel_grace_ms = cancel_grace_ms
        self._process: QProcess | None = None
        self._stdout = bytearray()
        self._stderr = bytearray()
        self._stderr_tail: collections.deque[str] = collections.deque(maxlen=STDERR_LINES)
        self._ended_cleanly = False  # a finished or failed event arrived
        self._last_step: int | None = None
        self._kill_timer = QTimer(self)
        self._kill_timer.setSingleShot(True)
        self._kill_timer.timeout.connect(self._on_cancel_overdue)
        self._killed_after_cancel = False

    # --- control ---------------------------------------------------------------------------------

    def start(self, config_path: Path) -> None:
        """Run the child on ``config_path``; returns at once (``process_started`` or a failure follows)."""
        if self.is_running():
            raise RuntimeError("a training is already running")
        command = self._command_for(Path(config_path))
        self._stdout.clear()
        self._stderr.clear()
        self._stderr_tail.clear()
        self._ended_cleanly = False
        self._last_step = None
        self._killed_after_cancel = False
        if self._process is not None:
            self._process.deleteLater()  # the last run's process object, finished
        process = QProcess(self)
        environment = QProcessEnvironment.systemEnvironment()
        environment.insert("PYTHONUNBUFFERED", "1")  # events arrive as they happen, not in 8 KB blocks
        environment.insert("PYTHONIOENCODING", "utf-8")
        process.setProcessEnvironment(environment)
        process.setProcessChannelMode(QProcess.ProcessChannelMode.SeparateChannels)
        process.readyReadStandardOutput.connect(self._on_stdout)
        process.readyReadStandardError.connect(self._on_stderr)
        process.started.connect(self.process_started)
        process.finished.connect(self._on_finished)
        process.errorOccurred.connect(self._on_error)
        self._process = process
        process.start(command[0], command[1:])

    def is_running(self) -> bool:
        return self._process is not None and self._process.state() != QProcess.ProcessState.NotRunning

    def send(self, command: str) -> bool:
        """Write one control word (``pause``, ``resume``, ``cancel``, ``save``, ``sample``) to the child."""
        if command not in COMMANDS:
            raise ValueError(f"unknown training command {command!r}; one of {', '.join(COMMANDS)}")
        if not self.is_running():
            return False
        return self._process.write((command + "\n").encode("ascii")) > 0

    def cancel(self) -> None:
        """Ask the child to stop (it saves a LoRA of the steps so far); kill it if it has not exited in time."""
        if not self.is_running():
            return
        self.send("cancel")
        self._kill_timer.start(self._cancel_grace_ms)

    def kill(self) -> None:
        if self.is_running():
            self._process.kill()

    def shutdown(self, timeout_ms: int = 10_000) -> None:
        """At app quit only: cancel, wait a bounded time for the child's save, then kill it."""
        if not self.is_running():
            return
        self.send("cancel")
        if not self._process.waitForFinished(timeout_ms):
            self._process.kill()
            self._process.waitForFinished(2_000)

    def stderr_tail(self) -> list[str]:
        """The child's last lines of stderr (tracebacks, warnings), oldest first."""
        return list(self._stderr_tail)

    def pid(self) -> int:
        return int(self._process.processId()) if self._process is not None else 0

    # --- reading ---------------------------------------------------------------------------------

    @Slot()
    def _on_stdout(self) -> None:
        if self._process is None:
            return
        self._stdout += bytes(self._process.readAllStandardOutput())
        for line in _take_lines(self._stdout):
            self._handle_line(line)

    @Slot()
    def _on_stderr(self) -> None:
        if self._process is None:
            return
        self._stderr += bytes(self._process.readAllStandardError())
        for line in _take_lines(self._stderr):
            self._stderr_tail.append(line)

    def _handle_line(self, line: str) -> None:
        if not line.strip():
            return
        try:
            event = decode(line)
        except EventFormatError:
            self.log_line.emit(line.rstrip())
            return
        if isinstance(event, StepDone):
            self._last_step = event.step
        if isinstance(event, (Finished, Failed)):
            self._ended_cleanly = True
        self.event_received.emit(event)

    @Slot(int, QProcess.ExitStatus)
    def _on_finished(self, exit_code: int, status: QProcess.ExitStatus) -> None:
        self._kill_timer.stop()
        self._on_stdout()
        self._on_stderr()
        for buffer, handle in ((self._stdout, self._handle_line), (self._stderr, self._stderr_tail.append)):
            if buffer:  # the last line had no newline
                handle(buffer.decode("utf-8", errors="replace"))
                buffer.clear()
        crashed = status == QProcess.ExitStatus.CrashExit
        if not self._ended_cleanly:
            self.event_received.emit(Failed(kind=FAILURE_CRASHED, message=self._crash_message(exit_code, crashed), step=self._last_step))
        self.process_ended.emit(exit_code, crashed)

    @Slot(QProcess.ProcessError)
    def _on_error(self, error: QProcess.ProcessError) -> None:
        if error != QProcess.ProcessError.FailedToStart or self._process is None:
            return  # crashes and write errors end in finished(), which reports them
        message = self._process.errorString()
        self.event_received.emit(Failed(kind=FAILURE_NOT_STARTED, message=message, step=None))
        self.process_ended.emit(-1, True)

    @Slot()
    def _on_cancel_overdue(self) -> None:
        if self.is_running():
            self._killed_after_cancel = True
            self._process.kill()

    def _crash_message(self, exit_code: int, crashed: bool) -> str:
        """Exit code or signal, in words, then the last lines of stderr (usually the reason)."""
        if self._killed_after_cancel:
            head = f"The trainer did not stop within {self._cancel_grace_ms // 1000} s of being cancelled and was stopped."
        elif crashed:
            head = f"The trainer was killed by signal {exit_code} ({_signal_name(exit_code)})."
        elif exit_code > 128 and _signal_name(exit_code - 128) != "unknown":
            head = f"The trainer exited with code {exit_code} (signal {exit_code - 128}, {_signal_name(exit_code - 128)})."
        else:
            head = f"The trainer exited with code {exit_code} without reporting why."
        tail = "\n".join(list(self._stderr_tail)[-20:])
        return f"{head}\n{tail}" if tail else head


def _take_lines(buffer: bytearray) -> list[str]:
    """Remove and return the complete lines in ``buffer``; a partial last line stays for the next read."""
    lines = []
    while True:
        end = buffer.find(b"\n")
        if end < 0:
            if len(buffer) > _MAX_LINE:
                lines.append(buffer.decode("utf-8", errors="replace"))
                buffer.clear()
            return lines
        lines.append(buffer[:end].decode("utf-8", errors="replace").rstrip("\r"))
        del buffer[: end + 1]


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return "unknown"
