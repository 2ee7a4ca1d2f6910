"""The gallery index: every image in the output folders, how it was made, and its thumbnails.

The image files are the truth and this SQLite index is a cache of them (BAD_INPUTS 33-34):
:meth:`GalleryStore.reconcile` lists the folders in one pass (a stat per file, no file opened
when nothing changed), reads the parameters of new and changed images only, and forgets images
that are gone, so images added, edited or deleted behind the app's back, and an image written just
before a crash, all show up correctly after it. The app also calls :meth:`GalleryStore.add` after
each save so a new image appears at once.

The one thing the files cannot give back is which images the user marked as favourites, so those
live in a small JSON file next to the database as well (``NAME.favourites.json``, written
atomically). It is the authority: a rebuilt or corrupt index takes its favourites from it.

Searching uses an SQLite FTS5 trigram index (substring matches, any script), with a plain scan of
the same case-folded text for words shorter than three characters (which trigrams cannot find),
or for every word where SQLite lacks FTS5.

Thumbnails are JPEG (PNG when the image has transparency) files in ``thumbnails_dir`` named after
the image's path, size, modification time and the requested size: an edited image gets a new
thumbnail, and old ones are pruned when the folders are reconciled. Making one touches no shared
state, so pool threads may call :meth:`GalleryStore.thumbnail` at once. Every other method takes a
lock around the database: the store may be shared by the GUI thread and workers.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import sqlite3
import stat
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from PIL import Image, ImageOps

from desktop.core.errors import DesktopError
from desktop.core.infotext import format_infotext
from desktop.library.atomic_write import write_text_atomically
from desktop.library.hashes import CancelFlag
from desktop.library.image_metadata import ImageFileError, ImageMetadata, read_image_metadata
from desktop.library.sqlite_cache import open_cache, storable

SCHEMA_VERSION = 1

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp"})
SORT_ORDERS = ("newest", "oldest", "name")
# Thumbnails of anything larger are refused: a decompression bomb would take gigabytes to decode.
MAX_THUMBNAIL_PIXELS = 100_000_000
MAX_THUMBNAIL_SIZE = 4096

Progress = Callable[[int, int], None]

# Hostile or runaway metadata is cut before it reaches the index (each of the prompt and the
# negative prompt, so at most 64 K characters of searchable text an image). The detail view reads
# the file itself when it needs everything.
_MAX_PROMPT_CHARS = 32_768
_MAX_PARAMS = 256
_MAX_PARAM_CHARS = 8_192
# Parameters are committed in batches, so a cancelled or crashed first index keeps what it read.
_COMMIT_EVERY = 200
_COMMIT_SECONDS = 1.0
_TRIGRAM = 3  # the shortest word the trigram index can find
_STALE_TEMP_SECONDS = 3600

_TABLE = """
CREATE TABLE images (
    id INTEGER PRIMARY KEY,
    path BLOB NOT NULL UNIQUE,  -- os.fsencode of the path, its folder resolved (see _key)
    name TEXT NOT NULL,  -- the file name, for sorting
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    readable INTEGER NOT NULL,  -- 0: not an image (corrupt, half written); kept so it is not re-read
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    source TEXT NOT NULL,  -- ImageMetadata.source; '' when it carries no parameters
    prompt TEXT NOT NULL,
    negative_prompt TEXT NOT NULL,
    params TEXT NOT NULL,  -- JSON list of [key, value]
    model TEXT NOT NULL,  -- the filter columns, from params
    model_hash TEXT NOT NULL,
    sampler TEXT NOT NULL,
    dims TEXT NOT NULL,  -- 'WIDTHxHEIGHT' of the image itself
    seed INTEGER,
    favourite INTEGER NOT NULL DEFAULT 0,
    search_text TEXT NOT NULL  -- prompt, newline, negative prompt, case-folded
);
CREATE INDEX images_by_time ON images (readable, mtime_ns, path);
CREATE INDEX images_by_name ON images (readable, name COLLATE NOCASE, path);
CREATE INDEX images_by_model ON images (model);
CREATE INDEX images_by_sampler ON images (sampler);
CREATE INDEX images_by_dims ON images (dims);
"""

# An external-content index: the text is stored once, in images.search_text.
_SEARCH_INDEX = """
CREATE VIRTUAL TABLE images_fts USING fts5(
    search_text, content='images', content_rowid='id', tokenize='trigram'
);
CREATE TRIGGER images_fts_insert AFTER INSERT ON images BEGIN
    INSERT INTO images_fts (rowid, search_text) VALUES (new.id, new.search_text);
END;
CREATE TRIGGER images_fts_delete AFTER DELETE ON images BEGIN
    INSERT INTO images_fts (images_fts, rowid, search_text) VALUES ('delete', old.id, old.search_text);
END;
CREATE TRIGGER images_fts_update AFTER UPDATE OF search_text ON images BEGIN
    INSERT INTO images_fts (images_fts, rowid, search_text) VALUES ('delete', old.id, old.search_text);
    INSERT INTO images_fts (rowid, search_text) VALUES (new.id, new.search_text);
END;
"""


class _Record(NamedTuple):
    """A row as reconcile and add() write it (everything but the favourite mark)."""

    path: bytes
    name: str
    size: int
    mtime_ns: int
    readable: int
    width: int
    height: int
    source: str
    prompt: str
    negative_prompt: str
    params: str
    model: str
    model_hash: str
    sampler: str
    dims: str
    seed: int | None
    search_text: str


_WRITE_COLUMNS = ", ".join(_Record._fields)
_READ_COLUMNS = "path, size, mtime_ns, width, height, prompt, negative_prompt, params, source, favourite"
_ORDER = {
    "newest": "mtime_ns DESC, path DESC",
    "oldest": "mtime_ns ASC, path ASC",
    "name": "name COLLATE NOCASE ASC, path ASC",
}


class NewerGalleryError(DesktopError):
    """The gallery index was written by a newer version of the app (BAD_INPUTS 36)."""

    code = "newer_gallery"


class GalleryError(DesktopError):
    """The gallery's own files (favourites, thumbnails) cannot be written."""

    code = "gallery"


@dataclass(frozen=True)
class GalleryImage:
    """One image of the gallery as the index knows it (prompts cut to 32 K characters each)."""

    path: Path
    size: int
    mtime_ns: int
    width: int
    height: int
    prompt: str
    negative_prompt: str
    params: tuple[tuple[str, str], ...]  # A1111 key names, as ImageMetadata.params
    source: str  # ImageMetadata.source; "" when the image carries no parameters
    favourite: bool = False

    def param(self, key: str, default: str = "") -> str:
        for name, value in self.params:
            if name == key:
                return value
        return default

    @property
    def model(self) -> str:
        return self.param("Model")

    @property
    def model_hash(self) -> str:
        return self.param("Model hash")

    @property
    def sampler(self) -> str:
        return self.param("Sampler")

    @property
    def seed(self) -> int | None:
        return _seed(self.param("Seed"))

    @property
    def day(self) -> datetime.date:
        """The local date the file was last written: what the gallery groups by."""
        return datetime.date.fromtimestamp(self.mtime_ns / 1e9)

    def infotext(self) -> str:
        return format_infotext(self.prompt, self.negative_prompt, dict(self.params))


@dataclass(frozen=True)
class GalleryQuery:
    """What the gallery shows: every field narrows it; the defaults show everything, newest first."""

    search: str = ""  # words that must all appear in the prompt or negative prompt, any case
    model: str = ""  # exact "Model" parameter
    sampler: str = ""  # exact "Sampler" parameter
    size: str = ""  # "512x768": the image's own size
    since: datetime.date | None = None
    until: datetime.date | None = None  # inclusive
    favourites_only: bool = False
    sort: str = "newest"  # one of SORT_ORDERS


@dataclass(frozen=True)
class ReconcileReport:
    """Images that appeared, disappeared, or changed (edited, or renamed: moved with their favourite)."""

    added: int
    removed: int
    updated: int


class GalleryStore:
    """The index at ``db_path`` (created if missing) and the thumbnail cache in ``thumbnails_dir``."""

    def __init__(self, db_path: Path, thumbnails_dir: Path) -> None:
        self._lock = threading.Lock()
        self._thumbnails_dir = Path(thumbnails_dir)
        db_path = Path(db_path)
        self._favourites_file = db_path.with_name(f"{db_path.stem}.favourites.json")
        schema = "DROP TABLE IF EXISTS images_fts; DROP TABLE IF EXISTS images; " + _TABLE
        if _trigram_search_available():
            schema += _SEARCH_INDEX
        self._connection = open_cache(
            db_path,
            what="gallery index",
            version=SCHEMA_VERSION,
            schema=schema,
            check="SELECT count(*) FROM images",
            newer_error=NewerGalleryError,
        )
        try:
            self._fts = bool(
                self._connection.execute("SELECT 1 FROM sqlite_master WHERE name = 'images_fts'").fetchall()
            )
            self._favourites = self._load_favourites()
        except BaseException:
            self._connection.close()
            raise

    def close(self) -> None:
        with self._lock:
            self._connection.close()

    def __enter__(self) -> GalleryStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- keeping up with the folders ----------------------------------------------------------

    def reconcile(
        self,
        folders: Iterable[Path],
        *,
        progress: Progress | None = None,
        cancel: CancelFlag | None = None,
    ) -> ReconcileReport:
        """Make the index list exactly the images under ``folders`` (and their subfolders).

        Unchanged files (same size and modification time) cost a stat each; new and changed ones
        are read, newest first, with ``progress(done, total)`` after each. Raises
        ``InterruptedError`` when cancelled: what was read so far is kept.
        """
        # Rows are loaded before the folders are listed, so an image add() indexes meanwhile is
        # either seen by the listing or not among the rows this pass may delete.
        with self._lock:
            rows = self._connection.execute("SELECT path, size, mtime_ns, readable FROM images").fetchall()
        known = {path: (size, mtime_ns, readable) for path, size, mtime_ns, readable in rows}
        started = time.time()
        found = _list_images(folders, skip=_real_folder(self._thumbnails_dir), cancel=cancel)
        gone = {key: known[key] for key in known.keys() - found.keys()}
        new = {key: found[key] for key in found.keys() - known.keys()}
        changed = {key: stamp for key, stamp in found.items() if key in known and known[key][:2] != stamp}

        renamed = _match_renames(gone, new)
        self._move_rows(renamed)
        for old, new_key in renamed.items():
            del gone[old]
            del new[new_key]
        removed = self._delete_rows(gone)

        to_read = sorted({**new, **changed}.items(), key=lambda item: item[1][1], reverse=True)
        added = updated = 0
        pending: list[_Record] = []
        last_commit = time.monotonic()
        try:
            for done, (key, (size, mtime_ns)) in enumerate(to_read, start=1):
                if cancel is not None and cancel.is_set():
                    raise InterruptedError("indexing the gallery was cancelled")
                record = _record(key, size, mtime_ns, _read_metadata(os.fsdecode(key)))
                pending.append(record)
                # Counted as the gallery sees it: a file that becomes a readable image appears,
                # one that stops being readable disappears.
                was_image = key in known and bool(known[key][2])
                if record.readable and was_image:
                    updated += 1
                elif record.readable:
                    added += 1
                elif was_image:
                    removed += 1
                if len(pending) >= _COMMIT_EVERY or time.monotonic() - last_commit >= _COMMIT_SECONDS:
                    self._write_records(pending)
                    pending = []
                    last_commit = time.monotonic()
                if progress is not None:
                    progress(done, len(to_read))
        finally:
            self._write_records(pending)
        self._prune_thumbnails(found, started)
        return ReconcileReport(added=added, removed=removed, updated=updated + len(renamed))

    def add(self, path: Path) -> GalleryImage | None:
        """Index one image now (the app calls this after each save); ``None`` if it is not an image."""
        path = Path(path)
        if path.name.startswith(".") or path.suffix.lower() not in IMAGE_SUFFIXES:
            return None
        try:
            status = path.stat()
        except OSError:
            return None
        if not stat.S_ISREG(status.st_mode):
            return None
        key = _key(path)
        record = _record(key, status.st_size, status.st_mtime_ns, _read_metadata(os.fsdecode(key)))
        self._write_records([record])
        return self.image(path) if record.readable else None

    def _write_records(self, records: list[_Record]) -> None:
        if not records:
            return
        # A changed file keeps its row, so its id (the search index's rowid) and favourite mark.
        updates = ", ".join(f"{column} = excluded.{column}" for column in _Record._fields[1:])
        placeholders = ", ".join("?" * (len(_Record._fields) + 1))
        with self._lock, self._connection:
            favourites = self._favourites
            self._connection.executemany(
                f"INSERT INTO images ({_WRITE_COLUMNS}, favourite) VALUES ({placeholders}) "
                f"ON CONFLICT (path) DO UPDATE SET {updates}",
                [(*record, os.fsdecode(record.path) in favourites) for record in records],
            )

    def _move_rows(self, renamed: dict[bytes, bytes]) -> None:
        if not renamed:
            return
        with self._lock:
            with self._connection:
                # add() may have indexed the new name meanwhile: that row gives way to the moved one.
                self._connection.executemany("DELETE FROM images WHERE path = ?", [(new,) for new in renamed.values()])
                self._connection.executemany(
                    "UPDATE images SET path = ?, name = ? WHERE path = ?",
                    [(new, _name(new), old) for old, new in renamed.items()],
                )
            moved = {os.fsdecode(old): os.fsdecode(new) for old, new in renamed.items()}
            favourites = {moved.get(path, path) for path in self._favourites}
            if favourites != self._favourites:
                self._save_favourites(favourites)

    def _delete_rows(self, gone: dict[bytes, tuple[int, int, int]]) -> int:
        """Forget rows of files that are gone; the number of them that were images.

        A row whose size or time changed since it was read (add() saw a new file at that path) stays.
        """
        with self._lock, self._connection:
            self._connection.executemany(
                "DELETE FROM images WHERE path = ? AND size = ? AND mtime_ns = ?",
                [(key, size, mtime_ns) for key, (size, mtime_ns, _readable) in gone.items()],
            )
        return sum(1 for _size, _mtime_ns, readable in gone.values() if readable)

    # --- queries ------------------------------------------------------------------------------

    def count(self, query: GalleryQuery = GalleryQuery()) -> int:
        where, parameters = self._where(query)
        with self._lock:
            (number,) = self._connection.execute(f"SELECT count(*) FROM images WHERE {where}", parameters).fetchone()
        return int(number)

    def page(self, query: GalleryQuery, offset: int, limit: int) -> list[GalleryImage]:
        """The images ``offset`` to ``offset + limit`` of the query's result, in its sort order."""
        if query.sort not in _ORDER:
            raise ValueError(f"unknown gallery sort order {query.sort!r}; expected one of {SORT_ORDERS}")
        if limit <= 0:
            return []
        where, parameters = self._where(query)
        with self._lock:
            rows = self._connection.execute(
                f"SELECT {_READ_COLUMNS} FROM images WHERE {where} ORDER BY {_ORDER[query.sort]} LIMIT ? OFFSET ?",
                (*parameters, limit, max(0, offset)),
            ).fetchall()
        return [_image(row) for row in rows]

    def image(self, path: Path) -> GalleryImage | None:
        with self._lock:
            rows = self._connection.execute(
                f"SELECT {_READ_COLUMNS} FROM images WHERE path = ? AND readable = 1", (_key(Path(path)),)
            ).fetchall()
        return _image(rows[0]) if rows else None

    def facets(self) -> dict[str, list[str]]:
        """The models, samplers and sizes of the indexed images, sorted, for the filter menus."""
        facets: dict[str, list[str]] = {}
        with self._lock:
            for facet, column in (("model", "model"), ("sampler", "sampler"), ("size", "dims")):
                rows = self._connection.execute(
                    f"SELECT DISTINCT {column} FROM images WHERE readable = 1 AND {column} != ''"
                ).fetchall()
                facets[facet] = [value for (value,) in rows]
        facets["model"].sort(key=lambda name: (name.casefold(), name))
        facets["sampler"].sort(key=lambda name: (name.casefold(), name))
        facets["size"].sort(key=_size_order)
        return facets

    def _where(self, query: GalleryQuery) -> tuple[str, list[object]]:
        clauses = ["readable = 1"]
        parameters: list[object] = []
        words = list(dict.fromkeys(query.search.casefold().split()))
        indexed = [word for word in words if self._fts and len(word) >= _TRIGRAM]
        if indexed:
            clauses.append("id IN (SELECT rowid FROM images_fts WHERE images_fts MATCH ?)")
            parameters.append(" AND ".join('"' + word.replace('"', '""') + '"' for word in indexed))
        for word in words:
            if word not in indexed:
                # instr, not LIKE: no wildcards to escape, and the text is already case-folded.
                clauses.append("instr(search_text, ?) > 0")
                parameters.append(word)
        for column, value in (("model", query.model), ("sampler", query.sampler), ("dims", query.size)):
            if value:
                clauses.append(f"{column} = ?")
                parameters.append(value)
        if query.since is not None:
            clauses.append("mtime_ns >= ?")
            parameters.append(_local_midnight_ns(query.since))
        if query.until is not None:
            clauses.append("mtime_ns < ?")
            parameters.append(_local_midnight_ns(query.until + datetime.timedelta(days=1)))
        if query.favourites_only:
            clauses.append("favourite = 1")
        return " AND ".join(clauses), parameters

    # --- favourites and deletion --------------------------------------------------------------

    def set_favourite(self, path: Path, favourite: bool) -> None:
        """Mark or unmark an image; kept in the favourites file first, so a rebuilt index keeps it."""
        key = _key(Path(path))
        text = os.fsdecode(key)
        with self._lock:
            favourites = self._favourites | {text} if favourite else self._favourites - {text}
            if favourites != self._favourites:
                self._save_favourites(favourites)
            with self._connection:
                self._connection.execute(
                    "UPDATE images SET favourite = ? WHERE path = ?", (int(bool(favourite)), key)
                )

    def forget(self, path: Path) -> None:
        """Drop an image the user deleted (moved to the Trash): its row, favourite mark and thumbnails."""
        key = _key(Path(path))
        text = os.fsdecode(key)
        with self._lock:
            with self._connection:
                self._connection.execute("DELETE FROM images WHERE path = ?", (key,))
            if text in self._favourites:
                self._save_favourites(self._favourites - {text})
        for thumbnail in self._thumbnails_dir.glob(f"{_path_digest(key)}-*"):
            thumbnail.unlink(missing_ok=True)

    def _load_favourites(self) -> frozenset[str]:
        """The favourites file's set, with the index brought in line; from the index if the file is lost."""
        stored = _read_favourites_file(self._favourites_file)
        marked = {
            os.fsdecode(path)
            for (path,) in self._connection.execute("SELECT path FROM images WHERE favourite = 1")
        }
        if stored is None:
            favourites = frozenset(marked)
            if favourites or self._favourites_file.exists():
                _write_favourites_file(self._favourites_file, favourites)
            return favourites
        with self._connection:
            self._connection.executemany(
                "UPDATE images SET favourite = 1 WHERE path = ?", [(os.fsencode(p),) for p in stored - marked]
            )
            self._connection.executemany(
                "UPDATE images SET favourite = 0 WHERE path = ?", [(os.fsencode(p),) for p in marked - stored]
            )
        return stored

    def _save_favourites(self, favourites: frozenset[str] | set[str]) -> None:
        """Write the favourites file, then remember the set (call with the lock held)."""
        favourites = frozenset(favourites)
        _write_favourites_file(self._favourites_file, favourites)
        self._favourites = favourites

    # --- thumbnails ---------------------------------------------------------------------------

    def thumbnail(self, path: Path, size: int = 256) -> Path:
        """A cached thumbnail of the image at ``path``, at most ``size`` pixels wide and high.

        Made on first use and whenever the image changed; raises :class:`ImageFileError` when the
        file is not a readable image or is too large to decode safely (over 100 megapixels).
        """
        if not 0 < size <= MAX_THUMBNAIL_SIZE:
            raise ValueError(f"thumbnail size {size} is outside 1..{MAX_THUMBNAIL_SIZE}")
        path = Path(path)
        try:
            status = path.stat()
        except OSError as exc:
            raise ImageFileError(
                f"{path.name} cannot be read: {exc.strerror or exc}", path=str(path), reason="unreadable"
            ) from exc
        stem = _thumbnail_stem(_key(path), status.st_size, status.st_mtime_ns, size)
        for suffix in (".jpg", ".png"):
            cached = self._thumbnails_dir / (stem + suffix)
            if _is_nonempty_file(cached):  # an empty one: cut short by a crash, made again
                return cached
        return _store_thumbnail(_make_thumbnail(path, size), self._thumbnails_dir, stem)

    def _prune_thumbnails(self, found: dict[bytes, tuple[int, int]], started: float) -> None:
        """Delete thumbnails of images that are gone or changed, and temp files a crash left.

        Thumbnails made since the folders were listed are spared: their image may be newer than
        the listing (saved meanwhile), and a pool thread may be about to load them.
        """
        current = {_thumbnail_prefix(key, size, mtime_ns) for key, (size, mtime_ns) in found.items()}
        now = time.time()
        try:
            with os.scandir(self._thumbnails_dir) as entries:
                for entry in entries:
                    name = entry.name
                    try:
                        if name.startswith(".thumb-"):
                            if now - entry.stat().st_mtime > _STALE_TEMP_SECONDS:
                                os.unlink(entry.path)
                        elif name.endswith((".jpg", ".png")) and name.rsplit("-", 1)[0] + "-" not in current:
                            if entry.stat().st_mtime < started:
                                os.unlink(entry.path)
                    except OSError:
                        continue  # another thread's file, or gone already: the next pass sees it
        except OSError:
            return  # no thumbnails yet


# --- listing the folders ---------------------------------------------------------------------


def _list_images(
    folders: Iterable[Path], *, skip: str | None, cancel: CancelFlag | None
) -> dict[bytes, tuple[int, int]]:
    """{key: (size, mtime_ns)} of every image file under ``folders``: one scandir pass, no file opened.

    Hidden files and folders are skipped (our ``.saving-*`` temp files among them), and so is the
    thumbnail folder. Folder symlinks are not followed (no loops, one key per file); file symlinks are.
    """
    found: dict[bytes, tuple[int, int]] = {}
    stack = [real for real in map(_real_folder, folders) if real is not None]
    while stack:
        if cancel is not None and cancel.is_set():
            raise InterruptedError("indexing the gallery was cancelled")
        folder = stack.pop()
        if folder == skip:
            continue
        try:
            with os.scandir(folder) as entries:
                for entry in entries:
                    if entry.name.startswith("."):
                        continue
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            stack.append(entry.path)
                            continue
                        if os.path.splitext(entry.name)[1].lower() not in IMAGE_SUFFIXES:
                            continue
                        status = entry.stat()
                    except OSError:
                        continue  # vanished since it was listed
                    if stat.S_ISREG(status.st_mode):
                        found[os.fsencode(entry.path)] = (status.st_size, status.st_mtime_ns)
        except OSError:
            continue  # unreadable or removed (an unplugged disk): its images are gone for now
    return found


def _match_renames(gone: dict[bytes, tuple[int, int, int]], new: dict[bytes, tuple[int, int]]) -> dict[bytes, bytes]:
    """{old key: new key} where exactly one vanished and one appeared file share size and mtime_ns.

    A rename or move in the Finder keeps both; nanosecond times make a false match very unlikely,
    and an ambiguous one is left as a delete and an add.
    """
    gone_by_stamp = {(size, mtime_ns): key for key, (size, mtime_ns, _readable) in gone.items()}
    new_by_stamp = {stamp: key for key, stamp in new.items()}
    gone_counts = Counter((size, mtime_ns) for size, mtime_ns, _readable in gone.values())
    new_counts = Counter(new.values())
    return {
        gone_by_stamp[stamp]: new_key
        for stamp, new_key in new_by_stamp.items()
        if new_counts[stamp] == 1 and gone_counts.get(stamp) == 1
    }


def _real_folder(folder: Path) -> str | None:
    try:
        real = os.path.realpath(folder)
    except (OSError, ValueError):
        return None
    return real if os.path.isdir(real) else None


def _key(path: Path) -> bytes:
    """The index key of a file: its folder resolved (symlinks, ``..``), its own name kept.

    The listing walks resolved folders, so any path the UI hands back reaches the same row.
    """
    folder, name = os.path.split(os.path.abspath(path))
    return os.fsencode(os.path.join(os.path.realpath(folder), name))


def _name(key: bytes) -> str:
    return storable(os.fsdecode(os.path.basename(key)))


# --- reading an image's parameters -----------------------------------------------------------


def _read_metadata(path: str) -> ImageMetadata | None:
    """The image's parameters; ``None`` when it is not a readable image."""
    try:
        return read_image_metadata(path)
    except ImageFileError:
        return None
    except Exception:  # noqa: BLE001 - a reader bug on one strange file must not end the index or hide it
        return ImageMetadata()


def _record(key: bytes, size: int, mtime_ns: int, metadata: ImageMetadata | None) -> _Record:
    """The row for an image (readable = 0 and all empty when ``metadata`` is None: not an image)."""
    if metadata is None:
        return _Record(key, _name(key), size, mtime_ns, 0, 0, 0, "", "", "", "[]", "", "", "", "", None, "")
    prompt = storable(metadata.prompt[:_MAX_PROMPT_CHARS])
    negative = storable(metadata.negative_prompt[:_MAX_PROMPT_CHARS])
    params = [
        (storable(str(name)[:_MAX_PARAM_CHARS]), storable(str(value)[:_MAX_PARAM_CHARS]))
        for name, value in metadata.params[:_MAX_PARAMS]
    ]
    values = dict(reversed(params))  # the first of repeated keys wins, as GalleryImage.param reads it
    width, height = max(0, int(metadata.width)), max(0, int(metadata.height))
    dims = f"{width}x{height}" if width and height else values.get("Size", "")
    seed = _seed(values.get("Seed", ""))
    if seed is not None and not -(1 << 63) <= seed < 1 << 63:
        seed = None  # SQLite integers are 64-bit; the params keep the text
    return _Record(
        path=key,
        name=_name(key),
        size=size,
        mtime_ns=mtime_ns,
        readable=1,
        width=width,
        height=height,
        source=storable(metadata.source),
        prompt=prompt,
        negative_prompt=negative,
        params=json.dumps(params, ensure_ascii=False),
        model=values.get("Model", ""),
        model_hash=values.get("Model hash", ""),
        sampler=values.get("Sampler", ""),
        dims=dims,
        seed=seed,
        search_text=f"{prompt}\n{negative}".casefold(),
    )


def _image(row: tuple) -> GalleryImage:
    path, size, mtime_ns, width, height, prompt, negative, params, source, favourite = row
    return GalleryImage(
        path=Path(os.fsdecode(path)),
        size=size,
        mtime_ns=mtime_ns,
        width=width,
        height=height,
        prompt=prompt,
        negative_prompt=negative,
        params=tuple((str(key), str(value)) for key, value in json.loads(params)),
        source=source,
        favourite=bool(favourite),
    )


def _seed(text: str) -> int | None:
    try:
        return int(text.strip())
    except ValueError:
        return None


def _size_order(size: str) -> tuple[int, int, str]:
    width, _, height = size.partition("x")
    try:
        return int(width) * int(height), int(width), size
    except ValueError:
        return 1 << 62, 0, size


def _local_midnight_ns(day: datetime.date) -> int:
    return int(datetime.datetime.combine(day, datetime.time()).timestamp()) * 1_000_000_000


def _trigram_search_available() -> bool:
    """Whether this SQLite has FTS5 with the trigram tokenizer (3.34+); checked in a throwaway database."""
    connection = sqlite3.connect(":memory:")
    try:
        connection.execute("CREATE VIRTUAL TABLE probe USING fts5(text, tokenize='trigram')")
        return True
    except sqlite3.Error:
        return False
    finally:
        connection.close()


# --- the favourites file ---------------------------------------------------------------------


def _read_favourites_file(path: Path) -> frozenset[str] | None:
    """The saved favourites; ``None`` when the file is missing or unreadable (a damaged one is kept as .bak)."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        favourites = document["favourites"]
        if not isinstance(favourites, list) or not all(isinstance(item, str) for item in favourites):
            raise ValueError("favourites is not a list of paths")
        return frozenset(favourites)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError):
        try:
            os.replace(path, path.with_name(path.name + ".bak"))
        except OSError:
            pass
        return None


def _write_favourites_file(path: Path, favourites: frozenset[str]) -> None:
    # ensure_ascii keeps names that are not valid UTF-8 (lone surrogates) as \udcXX escapes.
    text = json.dumps({"format": 1, "favourites": sorted(favourites)}, indent=1) + "\n"
    try:
        write_text_atomically(path, text)
    except OSError as exc:
        raise GalleryError(
            f"The gallery favourites could not be saved in {path}: {exc.strerror or exc}", path=str(path)
        ) from exc


# --- thumbnails ------------------------------------------------------------------------------


def _path_digest(key: bytes) -> str:
    return hashlib.sha256(key).hexdigest()[:32]


def _thumbnail_prefix(key: bytes, size: int, mtime_ns: int) -> str:
    return f"{_path_digest(key)}-{size}-{mtime_ns}-"


def _thumbnail_stem(key: bytes, size: int, mtime_ns: int, pixels: int) -> str:
    """``PATHDIGEST-SIZE-MTIME-PIXELS``: a changed image gets a new name; pruning needs no database."""
    return f"{_thumbnail_prefix(key, size, mtime_ns)}{pixels}"


def _is_nonempty_file(path: Path) -> bool:
    try:
        return path.stat().st_size > 0
    except OSError:
        return False


def _make_thumbnail(path: Path, size: int) -> Image.Image:
    """The image scaled to fit ``size`` x ``size``, upright, in RGB (RGBA if it has transparency)."""
    try:
        with Image.open(path) as image:
            # Image.open reads only the header: the size is known before any pixel is decoded.
            width, height = image.size
            if width * height > MAX_THUMBNAIL_PIXELS:
                raise ImageFileError(
                    f"{path.name} is too large to show ({width}x{height} pixels; the limit is "
                    f"{MAX_THUMBNAIL_PIXELS // 1_000_000} megapixels)",
                    path=str(path),
                    reason="too_large",
                )
            # thumbnail() first asks a JPEG decoder for a reduced scale (Image.draft), so a big
            # JPEG is decoded at 1/2 to 1/8 of its size.
            image.thumbnail((size, size))
            upright = ImageOps.exif_transpose(image)
            return upright.convert("RGBA" if _has_alpha(upright) else "RGB")
    except ImageFileError:
        raise
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as exc:
        # Pillow reports truncated, corrupt and unknown files in all these ways.
        raise ImageFileError(
            f"{path.name} is not an image that can be shown: {exc}", path=str(path), reason="unreadable"
        ) from exc


def _has_alpha(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info


def _store_thumbnail(picture: Image.Image, folder: Path, stem: str) -> Path:
    """Save under a temporary name, then rename: readers never see half a thumbnail."""
    suffix, file_format, options = (".png", "PNG", {}) if picture.mode == "RGBA" else (".jpg", "JPEG", {"quality": 85})
    final = folder / (stem + suffix)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle, temp = tempfile.mkstemp(prefix=".thumb-", suffix=suffix, dir=folder)
        try:
            with os.fdopen(handle, "wb") as stream:
                picture.save(stream, format=file_format, **options)
            os.replace(temp, final)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise GalleryError(
            f"A thumbnail could not be saved in {folder}: {exc.strerror or exc}", path=str(folder)
        ) from exc
    return final
