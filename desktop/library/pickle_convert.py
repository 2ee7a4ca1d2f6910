"""Convert a pickle checkpoint to ``.safetensors`` in a child process; the app never unpickles.

The child runs :mod:`desktop.library.pickle_reader` (restricted unpickler, no torch) under
``python -I``: no ``PYTHON*`` variables, no user site-packages and not the current folder on its
path, so nothing beside the file being converted can change what it imports; the package root is
put on its path explicitly, which works from any working directory. On Linux its address space is
capped so a hostile file cannot make it eat the machine's memory (macOS ignores that limit).

The child answers in JSON lines on stdout (progress, then "done" or "error"); its errors come back
as the same classes here. A cancel or a child that stops reporting is killed at once, and the
half-written file is removed.
"""

from __future__ import annotations

import json
import os
import queue
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

import desktop
from desktop.core.cancel import CancelToken, Cancelled
from desktop.core.errors import DesktopError, ModelFileError, UnsupportedModel
from desktop.library.file_errors import reading
from desktop.library.pickle_reader import UnsafePickle, partial_path

Progress = Callable[[int, int], None]

CHILD_MEMORY_LIMIT = 4 * 1024**3  # the child holds one tensor at a time; the largest SD tensors are ~250 MB
_POLL_SECONDS = 0.05
_STDERR_KEPT = 8192
_CHILD_ERRORS: dict[str, type[DesktopError]] = {
    "UnsafePickle": UnsafePickle,
    "UnsupportedModel": UnsupportedModel,
    "ModelFileError": ModelFileError,
}
# Imports the converter from this very package, whatever the working directory or sys.path say.
CHILD_FLAG = "--convert-pickle-child"
_BOOTSTRAP = (
    "import sys; sys.path.insert(0, sys.argv[1]); "
    "from desktop.library.pickle_reader import main; sys.exit(main(sys.argv[2:]))"
)


def convert_pickle_file(
    source: str | Path,
    target: str | Path,
    *,
    timeout: float = 600,
    cancel: CancelToken | None = None,
    progress: Progress | None = None,
) -> Path:
    """Write the tensors of pickle checkpoint ``source`` to ``target`` (.safetensors); return ``target``.

    ``timeout`` is how long the child may go without reporting progress. ``progress`` gets
    (bytes written, bytes in all) on the calling thread. Raises :class:`UnsafePickle` (naming the
    forbidden global) or :class:`UnsupportedModel` for files that cannot be converted,
    :class:`ModelFileError` for unreadable ones and a timeout, ``OSError`` for a failed write
    (ENOSPC...), and :class:`Cancelled` when ``cancel`` is set. On any failure neither ``target``
    nor a partial file is left behind.
    """
    # Absolute paths: the child must open the same files whatever its working directory.
    source, target = Path(os.path.abspath(source)), Path(os.path.abspath(target))
    with reading(source):  # a missing or unreadable source is reported before a process starts
        is_folder = stat.S_ISDIR(source.stat().st_mode)
    if is_folder:
        message = f"{source.name} is a folder, not a checkpoint"
        raise ModelFileError(message, path=str(source), reason="directory")
    if source == target:
        raise ValueError("the converted file must not replace its source")
    target.parent.mkdir(parents=True, exist_ok=True)
    target_existed = target.exists()
    child = _start_child(source, target)
    try:
        outcome = _supervise(child, source, timeout, cancel, progress)
    except BaseException:
        partial_path(target).unlink(missing_ok=True)
        if not target_existed:  # the child may have renamed its file into place just before it was stopped
            target.unlink(missing_ok=True)
        raise
    if "done" not in outcome:
        partial_path(target).unlink(missing_ok=True)
        raise _child_error(source, outcome, child.returncode)
    return target


def _start_child(source: Path, target: Path) -> subprocess.Popen[bytes]:
    arguments = ["--max-memory", str(CHILD_MEMORY_LIMIT), "--", str(source), str(target)]
    if getattr(sys, "frozen", False):
        # In the .app, sys.executable is the app itself: desktop.__main__ hands this flag to the reader.
        command = [sys.executable, CHILD_FLAG, *arguments]
    else:
        package_root = str(Path(desktop.__file__).resolve().parent.parent)
        command = [sys.executable, "-I", "-c", _BOOTSTRAP, package_root, *arguments]
    return subprocess.Popen(
        command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, close_fds=True
    )


def _supervise(
    child: subprocess.Popen[bytes],
    source: Path,
    timeout: float,
    cancel: CancelToken | None,
    progress: Progress | None,
) -> dict[str, object]:
    """Relay progress until the child ends; return its last message ("done"/"error") plus "stderr".

    However this ends (cancel, timeout, an exception in ``progress``), the child is dead after it.
    """
    lines: queue.Queue[bytes | None] = queue.Queue()
    stderr: list[bytes] = []
    readers = [
        threading.Thread(target=_read_lines, args=(child.stdout, lines), daemon=True),
        threading.Thread(target=_read_tail, args=(child.stderr, stderr), daemon=True),
    ]
    for reader in readers:
        reader.start()
    try:
        outcome = _relay(lines, source, timeout, cancel, progress)
    finally:
        if child.poll() is None:
            child.kill()
        child.wait()
        for reader in readers:  # the pipes reach EOF once the child is gone
            reader.join()
        for stream in (child.stdout, child.stderr):
            if stream is not None:
                stream.close()
    outcome["stderr"] = b"".join(stderr).decode("utf-8", "replace")
    return outcome


def _relay(
    lines: queue.Queue[bytes | None],
    source: Path,
    timeout: float,
    cancel: CancelToken | None,
    progress: Progress | None,
) -> dict[str, object]:
    outcome: dict[str, object] = {}
    deadline = time.monotonic() + timeout
    while True:
        if cancel is not None and cancel.is_set():
            raise Cancelled()
        try:
            line = lines.get(timeout=_POLL_SECONDS)
        except queue.Empty:
            if time.monotonic() > deadline:
                raise ModelFileError(
                    f"converting {source.name} stopped making progress for {timeout:g} s and was stopped",
                    path=str(source),
                    reason="timeout",
                ) from None
            continue
        if line is None:  # stdout closed: the child has ended
            return outcome
        message = _parse(line)
        if "progress" in message:
            deadline = time.monotonic() + timeout
            if progress is not None:
                done, total = message["progress"]  # type: ignore[misc]
                progress(int(done), int(total))
        elif "done" in message or "error" in message:
            outcome = message


def _read_lines(stream: IO[bytes], lines: queue.Queue[bytes | None]) -> None:
    for line in stream:
        lines.put(line)
    lines.put(None)


def _read_tail(stream: IO[bytes], kept: list[bytes]) -> None:
    """Keep the last bytes of stderr (a traceback's last line says what went wrong)."""
    for chunk in iter(lambda: stream.read(4096), b""):
        kept.append(chunk)
        tail = b"".join(kept)[-_STDERR_KEPT:]
        kept[:] = [tail]


def _parse(line: bytes) -> dict[str, object]:
    try:
        message = json.loads(line)
    except ValueError:
        return {}
    return message if isinstance(message, dict) else {}


def _child_error(source: Path, outcome: dict[str, object], returncode: int | None) -> BaseException:
    """The error the child reported, as the same class here; a crash becomes a ModelFileError."""
    error = outcome.get("error")
    if isinstance(error, dict):
        kind, message = str(error.get("type")), str(error.get("message"))
        details = error.get("details")
        details = details if isinstance(details, dict) else {}
        if kind in _CHILD_ERRORS:
            return _CHILD_ERRORS[kind](message, **details)
        if kind == "OSError":  # e.g. ENOSPC while writing: the caller handles it like a failed copy
            number = details.get("errno")
            return OSError(number if isinstance(number, int) else 0, message, details.get("filename"))
        if kind == "MemoryError":
            message = f"{source.name} could not be converted: {message}"
            return ModelFileError(message, path=str(source), reason="memory")
    stderr_lines = [line.strip() for line in str(outcome.get("stderr", "")).splitlines() if line.strip()]
    killed = returncode is not None and returncode < 0
    how = f"signal {-returncode}" if killed else f"exit status {returncode}"  # type: ignore[operator]
    if stderr_lines:
        how += f": {stderr_lines[-1]}"
    message = f"{source.name} could not be converted: the converter stopped unexpectedly ({how})"
    return ModelFileError(message, path=str(source), reason="converter_failed")
