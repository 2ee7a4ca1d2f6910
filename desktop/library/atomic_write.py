"""Saving files so that a crash or a full disk leaves the old file or the new one, never half."""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def write_bytes_atomically(path: Path, data: bytes, *, durable: bool = True) -> None:
    """Write to a temporary file in the same folder, then rename it over ``path``.

    ``durable`` also fsyncs the file and the folder, so the new file survives a power cut (a cache
    can skip it: a torn cache file is recomputed). The file gets the usual permissions (umask),
    like any file the user saves, not ``mkstemp``'s owner-only 0600.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    try:
        with open(temp, "xb") as stream:
            stream.write(data)
            if durable:
                stream.flush()
                os.fsync(stream.fileno())
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    if durable:
        _sync_folder(path.parent)


def write_text_atomically(path: Path, text: str) -> None:
    """UTF-8 text (newlines as given), durably and atomically."""
    write_bytes_atomically(path, text.encode("utf-8"))


def _sync_folder(folder: Path) -> None:
    """Make the rename itself durable where the OS allows fsync on a folder (not on Windows)."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)
