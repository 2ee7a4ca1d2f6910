"""The model catalogue: every model file in the user's folders, what it is, and its hashes, in SQLite.

It is a cache: the files are the truth. A scan lists the folders, re-probes only files whose size
or modification time changed (so a rescan of thousands of unchanged files reads no headers), and
forgets files that are gone. Hashing a multi-GB checkpoint is slow, so it is separate
(:meth:`Catalogue.hash_file`, one file at a time in the background) and stored only if the file did
not change while it was read.

A database written by a newer version of the app is refused and left untouched (BAD_INPUTS 36); a
corrupt one is moved aside and rebuilt. One worker thread uses the catalogue at a time, but other
threads may look hashes up (:meth:`Catalogue.find_by_hash`): a lock serialises every query.

Lists (:meth:`scan`, :meth:`find_by_hash`, :meth:`find_by_short_hash`) leave
``CatalogueEntry.metadata`` empty, since ten thousand LoRAs' training metadata would sit in memory
for nothing; :meth:`entry` and :meth:`hash_file` fill it in for the details view.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import NamedTuple

from desktop import APP_NAME
from desktop.core.errors import DesktopError, ModelFileError
from desktop.library.catalogue_entry import CatalogueEntry
from desktop.library.hashes import CancelFlag, file_hashes
from desktop.library.model_folders import FoundFile, find_model_files
from desktop.library.probe import ModelProbe, probe_model
from desktop.library.sidecars import (
    FolderListing,
    display_metadata,
    merge_trigger_words,
    metadata_trigger_words,
    read_sidecars,
)
from desktop.library.sqlite_cache import open_cache, storable

SCHEMA_VERSION = 1

Progress = Callable[[int, int], None]

# Probed rows are committed in batches, so a cancelled or crashed first scan keeps what it did.
_COMMIT_EVERY = 50
_SHORT_HASH_MIN = 8  # the legacy hash; anything shorter matches too much

_SCHEMA = """
CREATE TABLE models (
    resolved BLOB PRIMARY KEY,  -- os.fsencode of the resolved path: the physical file
    path BLOB NOT NULL,  -- as found under a root: its name is the model's name
    folder_kind TEXT NOT NULL,  -- kind of the folder it is in (FOLDERS key)
    kind TEXT NOT NULL,  -- the probe's verdict; '' when the probe failed
    family TEXT NOT NULL,
    variant TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    is_folder INTEGER NOT NULL,
    description TEXT NOT NULL,
    reasons TEXT NOT NULL,  -- JSON list
    error TEXT NOT NULL,
    data_start INTEGER,  -- safetensors: where the tensor bytes start (for the tensor hash)
    header_trigger_words TEXT NOT NULL,  -- JSON list, from modelspec.trigger_phrase
    metadata TEXT NOT NULL,  -- JSON list of [key, value], already cut for display
    sha256 TEXT NOT NULL DEFAULT '',
    tensor_hash TEXT NOT NULL DEFAULT '',
    legacy_hash TEXT NOT NULL DEFAULT ''
);
CREATE INDEX models_sha256 ON models (sha256);
"""

# Every column but metadata, in _Row's order.
_TENSOR_HASHED_KINDS = frozenset({"lora", "lycoris", "embedding", "hypernetwork"})
_ROW_COLUMNS = (
    "resolved, path, folder_kind, kind, family, variant, size, mtime_ns, is_folder, description, "
    "reasons, error, data_start, header_trigger_words, sha256, tensor_hash, legacy_hash"
)


class NewerCatalogueError(DesktopError):
    """The catalogue database was written by a newer version of the app (BAD_INPUTS 36)."""

    code = "newer_catalogue"


class _Row(NamedTuple):
    resolved: bytes
    path: bytes
    folder_kind: str
    kind: str
    family: str
    variant: str
    size: int
    mtime_ns: int
    is_folder: int
    description: str
    reasons: str
    error: str
    data_start: int | None
    header_trigger_words: str
    sha256: str
    tensor_hash: str
    legacy_hash: str


class Catalogue:
    """The SQLite catalogue at ``db_path`` (created if missing). Call :meth:`close` when done."""

    def __init__(self, db_path: Path) -> None:
        self._lock = threading.Lock()
        self._connection = _open(Path(db_path))

    def close(self) -> None:
        with self._lock:
            self._connection.close()

    def __enter__(self) -> Catalogue:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- scanning -----------------------------------------------------------------------------

    def scan(
        self,
        roots: Iterable[Path],
        *,
        progress: Progress | None = None,
        cancel: CancelFlag | None = None,
    ) -> list[CatalogueEntry]:
        """Bring the catalogue up to date with the model folders under ``roots``; every model, sorted by name.

        Files that cannot be identified are listed with ``error`` set. Raises ``InterruptedError``
        when cancelled (what was probed so far is kept; nothing is forgotten).
        """
        found = find_model_files(roots, cancel=cancel)
        with self._lock:
            rows = self._query(f"SELECT {_ROW_COLUMNS} FROM models")
        known = {row.resolved: row for row in map(_Row._make, rows)}
        listings: dict[Path, FolderListing] = {}
        entries: list[CatalogueEntry] = []
        present: set[bytes] = set()
        pending: list[tuple[_Row, str]] = []
        try:
            for done, file in enumerate(found, start=1):
                if cancel is not None and cancel.is_set():
                    raise InterruptedError("scanning the model folders was cancelled")
                row = self._current_row(file, known, pending)
                if row is not None:  # None: removed since it was listed
                    present.add(row.resolved)
                    entries.append(_entry(row, _listing(listings, file.path.parent)))
                if len(pending) >= _COMMIT_EVERY:
                    self._write_rows(pending)
                    pending = []
                if progress is not None:
                    progress(done, len(found))
        finally:
            self._write_rows(pending)
        with self._lock, self._connection:
            gone = [(key,) for key in known if key not in present]
            self._connection.executemany("DELETE FROM models WHERE resolved = ?", gone)
        return sorted(entries, key=lambda entry: (entry.name.lower(), str(entry.path)))

    def _current_row(
        self, file: FoundFile, known: dict[bytes, _Row], pending: list[tuple[_Row, str]]
    ) -> _Row | None:
        """The stored row if the file is unchanged, else a fresh probe (queued in ``pending``)."""
        stamp = _stamp(file.resolved, file.is_folder)
        if stamp is None:
            return None
        key = os.fsencode(file.resolved)
        row = known.get(key)
        if row is None or (row.size, row.mtime_ns) != stamp:
            row, metadata = _probe_row(file, key, *stamp)
            pending.append((row, metadata))
        elif row.path != os.fsencode(file.path) or row.folder_kind != file.folder_kind:
            # Reached first through another root or folder this time: same file, new name.
            row = row._replace(path=os.fsencode(file.path), folder_kind=file.folder_kind)
            self._update_location(row)
        return row

    def _write_rows(self, rows: list[tuple[_Row, str]]) -> None:
        if not rows:
            return
        placeholders = ", ".join("?" * (len(_Row._fields) + 1))
        with self._lock, self._connection:
            self._connection.executemany(
                f"INSERT OR REPLACE INTO models ({_ROW_COLUMNS}, metadata) VALUES ({placeholders})",
                [(*row, metadata) for row, metadata in rows],
            )

    def _update_location(self, row: _Row) -> None:
        with self._lock, self._connection:
            self._connection.execute(
                "UPDATE models SET path = ?, folder_kind = ? WHERE resolved = ?",
                (row.path, row.folder_kind, row.resolved),
            )

    # --- hashing ------------------------------------------------------------------------------

    def unhashed(self) -> list[Path]:
        """Files still without a sha256, smallest first (so LoRAs get their hashes before checkpoints)."""
        with self._lock:
            rows = self._query(
                "SELECT path FROM models WHERE sha256 = '' AND is_folder = 0 ORDER BY size, path"
            )
        return [Path(os.fsdecode(path)) for (path,) in rows]

    def hash_file(
        self, path: Path, *, progress: Progress | None = None, cancel: CancelFlag | None = None
    ) -> CatalogueEntry | None:
        """Compute and store the sha256, legacy and (safetensors) tensor hashes of a catalogued file.

        One read of the file gives all three. Returns the updated entry; ``None`` if the file is
        not in the catalogue or is gone. If the file changed since the last scan, or while it was
        being read, nothing is stored and the entry is returned as it was (the next scan re-probes
        it). Raises ``InterruptedError`` when cancelled, storing nothing.
        """
        key = os.fsencode(_resolve(Path(path)))
        row = self._row(key)
        if row is None:
            return None
        if row.is_folder:
            return self.entry(path)
        physical = Path(os.fsdecode(row.resolved))
        before = _stamp(physical, False)
        if before is None:
            self._forget(key)
            return None
        if before != (row.size, row.mtime_ns):
            return self.entry(path)
        try:
            # Only networks are named by their tensor hash ("Lora hashes", "TI hashes"); skipping a
            # second sha256 over a 7 GB checkpoint halves the time it takes to hash.
            data_start = row.data_start if row.kind in _TENSOR_HASHED_KINDS else None
            hashes = file_hashes(physical, data_start, progress=progress, cancel=cancel)
        except ModelFileError:
            hashes = None  # shrank or vanished while being read: decided below
        after = _stamp(physical, False)
        if after is None:
            self._forget(key)
            return None
        if hashes is not None and after == before:
            with self._lock, self._connection:
                self._connection.execute(
                    "UPDATE models SET sha256 = ?, tensor_hash = ?, legacy_hash = ? "
                    "WHERE resolved = ? AND size = ? AND mtime_ns = ?",
                    (hashes.sha256, hashes.tensor_sha256, hashes.legacy, key, *before),
                )
        return self.entry(path)

    def _forget(self, key: bytes) -> None:
        with self._lock, self._connection:
            self._connection.execute("DELETE FROM models WHERE resolved = ?", (key,))

    # --- lookups ------------------------------------------------------------------------------

    def entry(self, path: Path) -> CatalogueEntry | None:
        """The catalogued file at ``path`` (any path reaching it), with its metadata; ``None`` if unknown."""
        key = os.fsencode(_resolve(Path(path)))
        with self._lock:
            rows = self._query(f"SELECT {_ROW_COLUMNS}, metadata FROM models WHERE resolved = ?", (key,))
        if not rows:
            return None
        *columns, metadata = rows[0]
        return _entry(_Row._make(columns), None, metadata=_decode_metadata(metadata))

    def find_by_hash(self, sha256: str) -> list[CatalogueEntry]:
        """Catalogued files with this full sha256 (duplicates on install, the gallery's "same model")."""
        return self._find("sha256 = ?", (sha256.strip().lower(),))

    def find_by_short_hash(self, prefix: str) -> list[CatalogueEntry]:
        """Files an infotext hash names: AutoV2 (10 chars) or any sha256 prefix, a "Lora hashes"/"TI
        hashes" 12-char tensor hash (or any prefix of it), or the legacy 8-char hash."""
        prefix = prefix.strip().lower()
        if len(prefix) < _SHORT_HASH_MIN or len(prefix) > 64 or not _is_hex(prefix):
            return []
        n = len(prefix)
        return self._find(
            "(sha256 != '' AND substr(sha256, 1, ?) = ?)"
            " OR (tensor_hash != '' AND substr(tensor_hash, 1, ?) = ?)"
            " OR legacy_hash = ?",
            (n, prefix, n, prefix, prefix),
        )

    def _find(self, where: str, parameters: tuple[object, ...]) -> list[CatalogueEntry]:
        with self._lock:
            rows = self._query(f"SELECT {_ROW_COLUMNS} FROM models WHERE {where} ORDER BY path", parameters)
        return [_entry(_Row._make(row), None) for row in rows]

    def _row(self, key: bytes) -> _Row | None:
        with self._lock:
            rows = self._query(f"SELECT {_ROW_COLUMNS} FROM models WHERE resolved = ?", (key,))
        return _Row._make(rows[0]) if rows else None

    def _query(self, sql: str, parameters: tuple[object, ...] = ()) -> list[tuple]:
        return self._connection.execute(sql, parameters).fetchall()


# --- opening the database --------------------------------------------------------------------


def _open(path: Path) -> sqlite3.Connection:
    return open_cache(
        path,
        what="model catalogue",
        version=SCHEMA_VERSION,
        schema=f"DROP TABLE IF EXISTS models; {_SCHEMA}",
        check="SELECT count(*) FROM models",
        newer_error=NewerCatalogueError,
    )


# --- probing ---------------------------------------------------------------------------------


def _probe_row(file: FoundFile, key: bytes, size: int, mtime_ns: int) -> tuple[_Row, str]:
    """A fresh row for ``file`` (hashes cleared) and its display metadata as JSON; never raises."""
    row = _Row(
        resolved=key,
        path=os.fsencode(file.path),
        folder_kind=file.folder_kind,
        kind="",
        family="unknown",
        variant="normal",
        size=size,
        mtime_ns=mtime_ns,
        is_folder=int(file.is_folder),
        description="",
        reasons="[]",
        error="",
        data_start=None,
        header_trigger_words="[]",
        sha256="",
        tensor_hash="",
        legacy_hash="",
    )
    try:
        probe = probe_model(file.path)
    except DesktopError as exc:
        return row._replace(error=_failure_message(file.path, exc)), "[]"
    except Exception as exc:  # noqa: BLE001 - one strange file must not end the scan of thousands
        return row._replace(error=storable(f"{file.path.name} could not be identified: {exc}")), "[]"
    header = probe.header
    metadata = header.metadata if header is not None else {}
    row = row._replace(
        kind=probe.kind.value,
        family=probe.family.value,
        variant=probe.variant.value,
        description=probe.describe(),
        reasons=json.dumps([*probe.reasons, *_placement_reasons(probe, file)]),
        data_start=header.data_start if header is not None else None,
        header_trigger_words=json.dumps(metadata_trigger_words(metadata)),
    )
    return row, json.dumps(display_metadata(metadata))


def _failure_message(path: Path, exc: DesktopError) -> str:
    if exc.details.get("reason") == "pickle":
        message = (
            f"{path.name} is a pickle file: convert it to .safetensors to use it "
            f"(pickle files can run code when they are opened, so {APP_NAME} never opens them)"
        )
    else:
        message = exc.message
    return storable(message)


def _placement_reasons(probe: ModelProbe, file: FoundFile) -> list[str]:
    kind = probe.kind.value
    same = kind == file.folder_kind or (kind == "lycoris" and file.folder_kind == "lora")
    if same:
        return []
    return [f"found in a {file.folder_kind} folder, but its contents say it is a {probe.kind.label}"]


# --- files on disk ---------------------------------------------------------------------------


def _stamp(path: Path, is_folder: bool) -> tuple[int, int] | None:
    """(size, mtime_ns) of a file; for a diffusers folder, its total size and newest file. None if gone."""
    try:
        stat = path.stat()
    except OSError:
        return None
    if not is_folder:
        return stat.st_size, stat.st_mtime_ns
    size, newest = 0, stat.st_mtime_ns
    for file_stat in _tree_stats(path):
        size += file_stat.st_size
        newest = max(newest, file_stat.st_mtime_ns)
    return size, newest


def _tree_stats(folder: Path) -> Iterator[os.stat_result]:
    for directory, _subfolders, names in os.walk(folder):
        for name in names:
            try:
                yield os.stat(os.path.join(directory, name))
            except OSError:
                continue


def _resolve(path: Path) -> Path:
    try:
        return path.resolve()
    except (OSError, RuntimeError):  # RuntimeError: a symlink loop
        return path.absolute()


def _listing(listings: dict[Path, FolderListing], folder: Path) -> FolderListing:
    listing = listings.get(folder)
    if listing is None:
        listing = listings[folder] = FolderListing(folder)
    return listing


# --- building entries ------------------------------------------------------------------------


def _entry(
    row: _Row, listing: FolderListing | None, metadata: tuple[tuple[str, str], ...] = ()
) -> CatalogueEntry:
    path = Path(os.fsdecode(row.path))
    sidecars = read_sidecars(path, listing=listing)
    return CatalogueEntry(
        path=path,
        kind=row.kind or row.folder_kind,
        family=row.family,
        size=row.size,
        mtime_ns=row.mtime_ns,
        description=row.description,
        variant=row.variant,
        reasons=tuple(json.loads(row.reasons)),
        error=row.error,
        sha256=row.sha256,
        tensor_hash=row.tensor_hash,
        legacy_hash=row.legacy_hash,
        preview=sidecars.preview,
        trigger_words=merge_trigger_words(sidecars.trigger_words, json.loads(row.header_trigger_words)),
        base_model=sidecars.base_model,
        civitai_url=sidecars.civitai_url,
        notes=sidecars.notes,
        preferred_weight=sidecars.preferred_weight,
        metadata=metadata,
        is_folder=bool(row.is_folder),
    )


def _decode_metadata(text: str) -> tuple[tuple[str, str], ...]:
    return tuple((str(key), str(value)) for key, value in json.loads(text))


def _is_hex(text: str) -> bool:
    return all(character in "0123456789abcdef" for character in text)
