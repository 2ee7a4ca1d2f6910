"""Opening the app's SQLite caches (model catalogue, gallery index) the same careful way.

A cache can always be rebuilt from the files on disk, so an older format is simply dropped and
recreated, and a corrupt file is moved aside (kept for a bug report) and started afresh. A file
written by a newer version of the app is refused and left byte for byte as it was (BAD_INPUTS 36):
the user may go back to that version. Connections are made with ``check_same_thread=False``; the
owner serialises their use with a lock.
"""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

from desktop import APP_NAME
from desktop.core.errors import DesktopError


def open_cache(
    path: Path,
    *,
    what: str,
    version: int,
    schema: str,
    check: str,
    newer_error: type[DesktopError],
) -> sqlite3.Connection:
    """Open (or create) the cache at ``path`` in WAL mode, with the schema of format ``version``.

    ``what`` names it in messages ("model catalogue"); ``schema`` is a script that drops the old
    tables and creates the current ones, run when the file's ``user_version`` is older; ``check`` is
    a cheap query that fails if the file is damaged. Raises ``newer_error`` for a newer format and
    a :class:`DesktopError` when the file cannot be opened at all.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            return _connect(path, what, version, schema, check, newer_error)
        except sqlite3.DatabaseError as exc:
            if not is_corrupt(exc):
                raise
        # It is only a cache: keep the broken file for a bug report, start afresh.
        move_aside(path)
        return _connect(path, what, version, schema, check, newer_error)
    except (sqlite3.Error, OSError) as exc:
        raise DesktopError(f"The {what} {path} cannot be opened: {exc}", path=str(path), reason="unopenable") from exc


def _connect(
    path: Path, what: str, version: int, schema: str, check: str, newer_error: type[DesktopError]
) -> sqlite3.Connection:
    connection = sqlite3.connect(path, check_same_thread=False)
    try:
        # Read before anything is written: even switching to WAL rewrites the file header.
        (found,) = connection.execute("PRAGMA user_version").fetchone()
        if found > version:
            raise newer_error(
                f"The {what} {path} was written by a newer version of {APP_NAME} "
                f"(format {found}; this version reads format {version}). It was left as it is: "
                "update the app, or move the file away to let this version rebuild it.",
                path=str(path),
                found=found,
                supported=version,
            )
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
        if found < version:
            # An older format is simply rebuilt: everything in it can be found again on disk.
            connection.executescript(f"BEGIN; {schema} PRAGMA user_version = {version}; COMMIT;")
        connection.execute(check).fetchall()
    except BaseException:
        connection.close()
        raise
    return connection


def is_corrupt(exc: sqlite3.DatabaseError) -> bool:
    return getattr(exc, "sqlite_errorcode", None) in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)


def move_aside(path: Path) -> None:
    """Rename a broken database (and its journal files) to ``NAME.corrupt-STAMP``."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    number = 1
    while target.exists():
        number += 1
        target = path.with_name(f"{path.name}.corrupt-{stamp}-{number}")
    os.replace(path, target)
    # A journal left beside the broken file belongs to it, not to the new database.
    for suffix in ("-wal", "-shm", "-journal"):
        companion = path.with_name(path.name + suffix)
        if companion.exists():
            os.replace(companion, target.with_name(target.name + suffix))


def storable(text: str) -> str:
    """``text`` as SQLite can store it.

    A name that is not valid UTF-8 (possible on Linux) reaches Python as lone surrogates, which
    SQLite cannot store; such text is only shown, so a replacement character will do.
    """
    return text.encode("utf-8", "replace").decode("utf-8")
