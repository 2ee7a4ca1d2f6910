"""The gallery index: reconciling the output folders with SQLite, search, filters, favourites, thumbnails.

Real PNG/JPEG files written with Pillow (A1111 ``parameters`` chunk, as the app saves them) and real
SQLite files in tmp_path. Covers BAD_INPUTS items 9, 10, 14, 30, 32, 33, 34 and 36.
"""

from __future__ import annotations

import datetime
import json
import os
import sqlite3
import struct
import sys
import threading
import zlib
from pathlib import Path

import pytest
from PIL import Image, PngImagePlugin

from desktop.core.cancel import CancelToken
from desktop.core.infotext import format_infotext
from desktop.library import gallery_store as store_module
from desktop.library.gallery_store import (
    SCHEMA_VERSION,
    GalleryImage,
    GalleryQuery,
    GalleryStore,
    NewerGalleryError,
    ReconcileReport,
)
from desktop.library.image_metadata import ImageFileError
from desktop.library.outputs import save_png

DAY = 86_400 * 10**9
HOSTILE = '<img src=x onerror="alert(1)">'


# --- images on disk ----------------------------------------------------------------------------


def png(
    folder: Path,
    prompt: str,
    negative: str = "",
    *,
    seed: int = 1,
    model: str = "dreamshaper_8",
    sampler: str = "Euler a",
    size: tuple[int, int] = (8, 8),
    mtime_ns: int | None = None,
    mode: str = "RGB",
) -> Path:
    """A generated image exactly as the app saves it: NNNNN-seed.png with A1111 infotext."""
    params = {
        "Steps": 20,
        "Sampler": sampler,
        "Schedule type": "Karras",
        "CFG scale": 7,
        "Seed": seed,
        "Size": f"{size[0]}x{size[1]}",
        "Model hash": "0123456789",
        "Model": model,
    }
    path = save_png(Image.new(mode, size, "red"), format_infotext(prompt, negative, params), folder, seed)
    if mtime_ns is not None:
        os.utime(path, ns=(mtime_ns, mtime_ns))
    return path


def rewrite(path: Path, prompt: str) -> None:
    """Save another image with other parameters over ``path``, as an editor would, with a newer time."""
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", format_infotext(prompt, "", {"Steps": 20, "Sampler": "Euler", "Seed": 9}))
    Image.new("RGB", (8, 8), "green").save(path, format="PNG", pnginfo=info)
    later(path)


def later(path: Path, seconds: int = 5) -> None:
    """What an editor does to a file: a newer modification time."""
    mtime_ns = path.stat().st_mtime_ns + seconds * 10**9
    os.utime(path, ns=(mtime_ns, mtime_ns))


def png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG that claims ``width`` x ``height`` in its header (a decompression bomb) but holds almost nothing."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    )
    return path


@pytest.fixture
def outputs(tmp_path: Path) -> Path:
    # Resolved: on macOS tmp_path lies behind the /var -> /private/var symlink, and the store
    # reports paths with their folders resolved.
    folder = tmp_path.resolve() / "outputs"
    folder.mkdir()
    return folder


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "gallery.sqlite"


@pytest.fixture
def thumbnails(tmp_path: Path) -> Path:
    return tmp_path / "state" / "thumbnails"


@pytest.fixture
def store(db_path: Path, thumbnails: Path):
    opened = GalleryStore(db_path, thumbnails)
    yield opened
    opened.close()


def everything(store: GalleryStore, query: GalleryQuery = GalleryQuery()) -> list[GalleryImage]:
    return store.page(query, 0, 10_000)


def names(images: list[GalleryImage]) -> list[str]:
    return [image.path.name for image in images]


def count_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    real = store_module.read_image_metadata

    def counting(path):
        calls.append(str(path))
        return real(path)

    monkeypatch.setattr(store_module, "read_image_metadata", counting)
    return calls


def assert_search_index_intact(db_path: Path) -> None:
    """FTS5's own check that the trigram index matches the rows (the triggers kept it in step)."""
    connection = sqlite3.connect(db_path)
    try:
        if connection.execute("SELECT count(*) FROM sqlite_master WHERE name = 'images_fts'").fetchone() == (1,):
            connection.execute("INSERT INTO images_fts (images_fts) VALUES ('integrity-check')")
    finally:
        connection.close()


@pytest.fixture(params=["fts5", "scan"])
def search_store(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, db_path: Path, thumbnails: Path):
    """The store with the FTS5 trigram index, and as it works on an SQLite without FTS5."""
    if request.param == "scan":
        monkeypatch.setattr(store_module, "_trigram_search_available", lambda: False)
    elif not store_module._trigram_search_available():
        pytest.skip("this SQLite has no FTS5 trigram tokenizer")
    opened = GalleryStore(db_path, thumbnails)
    connection = sqlite3.connect(db_path)
    has_index = connection.execute("SELECT count(*) FROM sqlite_master WHERE name = 'images_fts'").fetchone()
    connection.close()
    assert has_index == ((1,) if request.param == "fts5" else (0,))
    yield opened
    opened.close()


# --- reconciling with the folders (BAD_INPUTS 33, 34) --------------------------------------------


def test_first_reconcile_indexes_every_image_in_a1111_subfolders(outputs: Path, store: GalleryStore) -> None:
    """BAD_INPUTS 33: A1111's outputs/txt2img-images/DATE/ layout; temp files, hidden files and other files skipped."""
    first = png(outputs / "txt2img-images" / "2026-11-25", "a red fox", "blurry", seed=11)
    second = png(outputs / "img2img-images" / "2026-11-26", "a blue bird", seed=22)
    Image.new("RGB", (4, 6)).save(outputs / "photo.JPG", format="JPEG")
    Image.new("RGB", (4, 4)).save(outputs / "clip.webp", format="WEBP")
    (outputs / "txt2img-images" / "2026-11-25" / ".saving-abc.png").write_bytes(first.read_bytes())
    (outputs / ".hidden.png").write_bytes(first.read_bytes())
    (outputs / ".cache").mkdir()
    (outputs / ".cache" / "x.png").write_bytes(first.read_bytes())
    (outputs / "notes.txt").write_text("not an image")
    (outputs / "params.json").write_text("{}")

    report = store.reconcile([outputs])

    assert report == ReconcileReport(added=4, removed=0, updated=0)
    assert sorted(names(everything(store))) == sorted([first.name, second.name, "photo.JPG", "clip.webp"])
    fox = store.image(first)
    assert fox is not None
    assert fox.path == first
    assert (fox.prompt, fox.negative_prompt, fox.source) == ("a red fox", "blurry", "a1111")
    assert (fox.model, fox.model_hash, fox.sampler, fox.seed) == ("dreamshaper_8", "0123456789", "Euler a", 11)
    assert (fox.width, fox.height, fox.size, fox.mtime_ns) == (8, 8, first.stat().st_size, first.stat().st_mtime_ns)
    assert fox.param("Schedule type") == "Karras" and fox.param("Missing", "-") == "-"
    assert fox.favourite is False
    photo = store.image(outputs / "photo.JPG")
    assert photo is not None and photo.source == "" and photo.seed is None and (photo.width, photo.height) == (4, 6)


def test_an_unchanged_rescan_reads_no_file(outputs: Path, store: GalleryStore, monkeypatch) -> None:
    for seed in range(5):
        png(outputs, f"prompt {seed}", seed=seed)
    store.reconcile([outputs])
    reads = count_reads(monkeypatch)

    assert store.reconcile([outputs]) == ReconcileReport(0, 0, 0)
    assert reads == []
    assert store.count() == 5


def test_files_added_deleted_and_edited_behind_the_apps_back(
    outputs: Path, store: GalleryStore, db_path: Path, monkeypatch
) -> None:
    """BAD_INPUTS 33: the folder changed while the app was not looking."""
    kept = png(outputs, "kept", seed=1)
    deleted = png(outputs, "deleted", seed=2)
    edited = png(outputs, "before editing", seed=3)
    store.reconcile([outputs])

    deleted.unlink()
    added = png(outputs / "sub", "added later", seed=4)
    rewrite(edited, "after editing")
    reads = count_reads(monkeypatch)

    report = store.reconcile([outputs])

    assert report == ReconcileReport(added=1, removed=1, updated=1)
    assert sorted(Path(path).name for path in reads) == sorted([added.name, edited.name])
    assert store.image(deleted) is None
    assert store.image(added).prompt == "added later"
    assert store.image(edited).prompt == "after editing"
    assert store.image(kept).prompt == "kept"
    assert store.count() == 3
    assert [store.count(GalleryQuery(search=word)) for word in ("before", "after", "deleted")] == [0, 1, 0]
    assert_search_index_intact(db_path)


def test_a_rename_in_the_finder_keeps_the_favourite(outputs: Path, store: GalleryStore, monkeypatch) -> None:
    """BAD_INPUTS 33: a renamed or moved file is the same image, so its favourite mark follows it."""
    image = png(outputs, "a castle", seed=5)
    store.reconcile([outputs])
    store.set_favourite(image, True)
    moved = outputs / "keepers" / "castle.png"
    moved.parent.mkdir()
    os.replace(image, moved)
    reads = count_reads(monkeypatch)

    report = store.reconcile([outputs])

    assert report == ReconcileReport(added=0, removed=0, updated=1)
    assert reads == []  # same size and time: the row moved, nothing was read again
    assert store.image(image) is None
    renamed = store.image(moved)
    assert renamed is not None and renamed.favourite and renamed.prompt == "a castle"
    assert names(everything(store, GalleryQuery(favourites_only=True))) == ["castle.png"]


def test_an_image_written_just_before_a_crash_appears_after_restart(
    outputs: Path, db_path: Path, thumbnails: Path
) -> None:
    """BAD_INPUTS 34: the image was saved, then the app died before calling add()."""
    first = GalleryStore(db_path, thumbnails)
    first.add(png(outputs, "indexed", seed=1))
    orphan = png(outputs, "saved, never indexed", seed=2)  # the crash: no add(), no close()

    restarted = GalleryStore(db_path, thumbnails)
    try:
        assert restarted.count() == 1
        report = restarted.reconcile([outputs])
        assert report.added == 1
        assert restarted.image(orphan).prompt == "saved, never indexed"
        assert restarted.count() == 2
    finally:
        restarted.close()
        first.close()


def test_add_indexes_a_freshly_saved_image_at_once(outputs: Path, store: GalleryStore) -> None:
    path = png(outputs, "just generated", seed=42)

    image = store.add(path)

    assert image is not None and image.path == path and image.seed == 42
    assert store.count() == 1
    assert store.add(path) == image  # indexing twice changes nothing
    assert store.count() == 1
    assert store.add(outputs / "missing.png") is None
    (outputs / "notes.txt").write_text("hello")
    assert store.add(outputs / "notes.txt") is None
    broken = outputs / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    assert store.add(broken) is None
    assert store.count() == 1


def test_broken_images_are_not_listed_and_not_read_again(outputs: Path, store: GalleryStore, monkeypatch) -> None:
    """BAD_INPUTS 30: a corrupt PNG is skipped quietly, and not re-read on every start until it changes."""
    png(outputs, "fine", seed=1)
    broken = outputs / "00099-9.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 100)
    assert store.reconcile([outputs]) == ReconcileReport(added=1, removed=0, updated=0)
    reads = count_reads(monkeypatch)

    store.reconcile([outputs])
    assert reads == []
    assert store.count() == 1 and store.image(broken) is None

    rewrite(broken, "repaired")
    assert store.reconcile([outputs]) == ReconcileReport(added=1, removed=0, updated=0)  # an image at last
    assert store.image(broken).prompt == "repaired"

    broken.write_bytes(b"\x89PNG\r\n\x1a\n broken again")
    later(broken, 10)
    assert store.reconcile([outputs]) == ReconcileReport(added=0, removed=1, updated=0)
    assert store.count() == 1


def test_unicode_and_odd_file_names(outputs: Path, store: GalleryStore, db_path: Path) -> None:
    """BAD_INPUTS 14: Chinese, emoji, ``:`` and ``,`` in names; on Linux even a name that is not UTF-8."""
    odd = [outputs / "猫 🐱, a:b.png", outputs / ("x" * 200 + ".png")]
    if sys.platform.startswith("linux"):
        odd.append(Path(os.fsdecode(os.path.join(os.fsencode(outputs), b"bad-\xff\xfe.png"))))
    for number, path in enumerate(odd):
        os.replace(png(outputs / "tmp", f"odd {number}", seed=number), path)

    store.reconcile([outputs])
    for path in odd:
        store.set_favourite(path, True)
        store.thumbnail(path, 16)
    store.close()

    with GalleryStore(db_path, db_path.parent / "thumbnails") as reopened:
        assert sorted(image.path for image in everything(reopened, GalleryQuery(favourites_only=True))) == sorted(odd)
        assert [reopened.image(path).prompt for path in odd] == [f"odd {number}" for number in range(len(odd))]
        assert sorted(image.path for image in everything(reopened, GalleryQuery(sort="name"))) == sorted(odd)


def test_reconcile_drops_images_outside_the_given_folders_and_missing_folders(
    tmp_path: Path, outputs: Path, store: GalleryStore
) -> None:
    """BAD_INPUTS 33: an unplugged disk or a removed folder is an empty folder, not an error."""
    png(outputs, "here", seed=1)
    other = tmp_path.resolve() / "other"
    png(other, "there", seed=2)
    store.reconcile([outputs, other])
    assert store.count() == 2

    report = store.reconcile([outputs, tmp_path / "unplugged"])

    assert report.removed == 1
    assert [image.prompt for image in everything(store)] == ["here"]


def test_folders_reached_through_a_symlink_and_the_thumbnail_folder_inside_outputs(
    tmp_path: Path, outputs: Path
) -> None:
    """A path through a symlinked folder reaches the same row; our own thumbnails are never indexed."""
    image = png(outputs, "linked", seed=1)
    link = tmp_path / "link"
    link.symlink_to(outputs, target_is_directory=True)
    (outputs / "loop").symlink_to(outputs, target_is_directory=True)  # never followed
    with GalleryStore(tmp_path / "gallery.sqlite", outputs / "thumbnails") as store:
        store.reconcile([link])
        store.thumbnail(link / image.name)
        store.reconcile([link, outputs])

        assert store.count() == 1
        assert store.image(link / image.name).path == image
        assert store.image(link / "." / image.name) is not None


def test_cancel_keeps_what_was_indexed(outputs: Path, store: GalleryStore, monkeypatch) -> None:
    """A cancelled first index keeps its progress (batches are committed) and the next pass finishes it."""
    monkeypatch.setattr(store_module, "_COMMIT_EVERY", 4)
    for seed in range(20):
        png(outputs, f"image {seed}", seed=seed, mtime_ns=1_700_000_000 * 10**9 + seed * 10**9)
    cancel = CancelToken()
    seen: list[tuple[int, int]] = []

    def progress(done: int, total: int) -> None:
        seen.append((done, total))
        if done == 9:
            cancel.cancel()

    with pytest.raises(InterruptedError):
        store.reconcile([outputs], progress=progress, cancel=cancel)

    assert seen == [(done, 20) for done in range(1, 10)]
    assert store.count() == 9
    # Newest first, so the part that made it in is the part the user looks at first.
    assert [image.seed for image in everything(store)] == list(range(19, 10, -1))
    report = store.reconcile([outputs])
    assert report == ReconcileReport(added=11, removed=0, updated=0)
    assert store.count() == 20


def test_cancel_while_listing_the_folders(outputs: Path, store: GalleryStore) -> None:
    png(outputs, "one", seed=1)
    cancel = CancelToken()
    cancel.cancel()
    with pytest.raises(InterruptedError):
        store.reconcile([outputs], cancel=cancel)
    assert store.count() == 0


# --- the database file (BAD_INPUTS 32, 36) -------------------------------------------------------


def test_the_index_uses_wal_and_records_its_format(db_path: Path, store: GalleryStore) -> None:
    connection = sqlite3.connect(db_path)
    try:
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert connection.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    finally:
        connection.close()


def test_a_newer_index_is_refused_and_left_untouched(db_path: Path, thumbnails: Path) -> None:
    """BAD_INPUTS 36."""
    db_path.parent.mkdir(parents=True)
    connection = sqlite3.connect(db_path)
    connection.execute("CREATE TABLE future (x)")
    connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    connection.commit()
    connection.close()
    before = db_path.read_bytes()

    with pytest.raises(NewerGalleryError) as error:
        GalleryStore(db_path, thumbnails)

    assert "newer version" in error.value.message and str(db_path) in error.value.message
    assert error.value.details["found"] == SCHEMA_VERSION + 1
    assert db_path.read_bytes() == before
    assert not db_path.with_name(db_path.name + "-wal").exists()


def test_a_corrupt_index_is_rebuilt_and_favourites_survive(outputs: Path, db_path: Path, thumbnails: Path) -> None:
    """BAD_INPUTS 32: the index is a cache; the favourites file is the copy that survives it."""
    loved = png(outputs, "loved", seed=1)
    png(outputs, "plain", seed=2)
    with GalleryStore(db_path, thumbnails) as store:
        store.reconcile([outputs])
        store.set_favourite(loved, True)
    db_path.write_bytes(b"this is not an SQLite database" * 100)

    with GalleryStore(db_path, thumbnails) as store:
        assert store.count() == 0
        store.reconcile([outputs])
        assert store.count() == 2
        assert store.image(loved).favourite
        assert names(everything(store, GalleryQuery(favourites_only=True))) == [loved.name]
    assert list(db_path.parent.glob("gallery.sqlite.corrupt-*"))


def test_favourites_survive_a_lost_favourites_file_and_a_garbled_one(
    outputs: Path, db_path: Path, thumbnails: Path
) -> None:
    loved = png(outputs, "loved", seed=1)
    with GalleryStore(db_path, thumbnails) as store:
        store.reconcile([outputs])
        store.set_favourite(loved, True)
    favourites_file = db_path.with_name("gallery.favourites.json")
    assert json.loads(favourites_file.read_text())["favourites"] == [str(loved)]

    favourites_file.unlink()
    with GalleryStore(db_path, thumbnails) as store:
        assert store.image(loved).favourite
    assert json.loads(favourites_file.read_text())["favourites"] == [str(loved)]

    favourites_file.write_text("{ garbled")
    with GalleryStore(db_path, thumbnails) as store:
        assert store.image(loved).favourite
    assert favourites_file.with_name("gallery.favourites.json.bak").read_text() == "{ garbled"
    assert json.loads(favourites_file.read_text())["favourites"] == [str(loved)]


def test_the_favourites_file_wins_over_the_index(outputs: Path, db_path: Path, thumbnails: Path) -> None:
    """A crash between writing the favourites file and the index: the file holds the user's last choice."""
    image = png(outputs, "changed my mind", seed=1)
    with GalleryStore(db_path, thumbnails) as store:
        store.reconcile([outputs])
        store.set_favourite(image, True)
    db_path.with_name("gallery.favourites.json").write_text(json.dumps({"format": 1, "favourites": []}))

    with GalleryStore(db_path, thumbnails) as store:
        assert not store.image(image).favourite
        assert store.count(GalleryQuery(favourites_only=True)) == 0


def test_set_favourite_and_forget(outputs: Path, store: GalleryStore, db_path: Path) -> None:
    """forget() after a move to the Trash (BAD_INPUTS 35): row, favourite and thumbnails go."""
    image = png(outputs, "to the trash", seed=1)
    other = png(outputs, "stays", seed=2)
    store.reconcile([outputs])
    store.set_favourite(image, True)
    store.set_favourite(other, True)
    store.set_favourite(other, False)
    assert store.image(image).favourite and not store.image(other).favourite
    thumbnail = store.thumbnail(image)

    image.unlink()
    store.forget(image)

    assert store.image(image) is None
    assert not thumbnail.exists()
    assert store.count() == 1
    assert json.loads(db_path.with_name("gallery.favourites.json").read_text())["favourites"] == []


# --- search, filters, sort, paging, facets ---------------------------------------------------------


def test_search_needs_every_word_in_prompt_or_negative_any_case(outputs: Path, search_store: GalleryStore) -> None:
    png(outputs, "A Girl with RED hair, (masterpiece:1.2)", "lowres, blurry", seed=1)
    png(outputs, "a boy with red shoes", "bad hands", seed=2)
    png(outputs, "一只猫在窗台上睡觉, sunlight", "模糊", seed=3)
    png(outputs, "landscape, mountains", "red", seed=4)
    search_store.reconcile([outputs])

    def found(text: str) -> list[int | None]:
        query = GalleryQuery(search=text, sort="oldest")
        assert search_store.count(query) == len(search_store.page(query, 0, 100))
        return [image.seed for image in search_store.page(query, 0, 100)]

    assert found("red") == [1, 2, 4]  # the negative prompt counts too
    assert found("RED hair") == [1]
    assert found("hair red") == [1]  # any order
    assert found("red blurry") == [1]  # one word in the prompt, one in the negative
    assert found("masterpiece:1.2") == [1]
    assert found("boy girl") == []
    assert found("猫") == [3]  # one character: shorter than a trigram
    assert found("窗台上") == [3]
    assert found("猫 模糊") == [3]
    assert found("狗") == []
    assert found("ai") == [1, 4]  # a substring: "hair", "mountains"
    assert found("   ") == [1, 2, 3, 4]


def test_search_text_is_literal_not_sql_or_fts_syntax(outputs: Path, search_store: GalleryStore) -> None:
    png(outputs, 'a "quoted" word, 100% done, snake_case', seed=1)
    png(outputs, "10000 dots, snakeXcase", seed=2)
    search_store.reconcile([outputs])

    def found(text: str) -> list[int | None]:
        return [image.seed for image in search_store.page(GalleryQuery(search=text), 0, 100)]

    assert found("100%") == [1]
    assert found("%") == [1]
    assert found("snake_case") == [1]
    assert found("_") == [1]
    assert found('"quoted"') == [1]
    assert found('"') == [1]
    assert found("AND OR NOT") == []
    assert found("dots*") == []
    assert found("*") == []


def test_huge_and_hostile_prompts_are_stored_cut_and_literal(outputs: Path, store: GalleryStore) -> None:
    """BAD_INPUTS 9 and 10: markup is kept as text; a runaway prompt is cut, and the rest still works."""
    png(outputs, HOSTILE + " " + "word " * 40_000 + "needle_at_the_end", "also " * 10_000, seed=1)
    png(outputs, "small", seed=2)

    store.reconcile([outputs])

    big = store.page(GalleryQuery(search="onerror"), 0, 10)
    assert len(big) == 1
    assert big[0].prompt.startswith(HOSTILE)
    assert len(big[0].prompt) <= 32_768 and len(big[0].negative_prompt) <= 32_768
    assert store.count(GalleryQuery(search="needle_at_the_end")) == 0  # beyond the cut
    assert store.count() == 2


def test_filters_by_model_sampler_size_date_and_favourites(outputs: Path, store: GalleryStore) -> None:
    noon = datetime.datetime(2026, 11, 25, 12, 0).timestamp()
    base = int(noon) * 10**9
    a = png(outputs, "a", seed=1, model="dreamshaper_8", sampler="Euler a", size=(8, 12), mtime_ns=base - 2 * DAY)
    b = png(outputs, "b", seed=2, model="sdxl_base", sampler="DPM++ 2M", size=(12, 8), mtime_ns=base - DAY)
    c = png(outputs, "c", seed=3, model="dreamshaper_8", sampler="DPM++ 2M", size=(8, 8), mtime_ns=base)
    store.reconcile([outputs])
    store.set_favourite(b, True)

    def seeds(**fields: object) -> list[int | None]:
        query = GalleryQuery(sort="oldest", **fields)
        assert store.count(query) == len(store.page(query, 0, 100))
        return [image.seed for image in store.page(query, 0, 100)]

    assert seeds(model="dreamshaper_8") == [1, 3]
    assert seeds(model="dreamshaper") == []  # exact, not a prefix
    assert seeds(sampler="DPM++ 2M") == [2, 3]
    assert seeds(size="12x8") == [2]
    assert seeds(model="dreamshaper_8", sampler="DPM++ 2M") == [3]
    assert seeds(since=datetime.date(2026, 11, 24)) == [2, 3]
    assert seeds(until=datetime.date(2026, 11, 24)) == [1, 2]  # inclusive
    assert seeds(since=datetime.date(2026, 11, 24), until=datetime.date(2026, 11, 24)) == [2]
    assert seeds(favourites_only=True) == [2]
    assert seeds(favourites_only=True, model="dreamshaper_8") == []
    assert [store.image(path).day for path in (a, b, c)] == [
        datetime.date(2026, 11, 23),
        datetime.date(2026, 11, 24),
        datetime.date(2026, 11, 25),
    ]


def test_sort_orders_and_paging(outputs: Path, store: GalleryStore) -> None:
    base = 1_750_000_000 * 10**9
    for seed in range(25):
        # Numbers run one way, times the other, so "name" and "newest" differ.
        png(outputs, f"image {seed}", seed=seed, mtime_ns=base - seed * 10**9)
    store.reconcile([outputs])

    newest = [image.seed for image in everything(store, GalleryQuery(sort="newest"))]
    oldest = [image.seed for image in everything(store, GalleryQuery(sort="oldest"))]
    by_name = [image.seed for image in everything(store, GalleryQuery(sort="name"))]
    assert newest == list(range(25))
    assert oldest == list(reversed(range(25)))
    assert by_name == list(range(25))  # 00000-0.png, 00001-1.png, ...
    assert by_name != oldest

    query = GalleryQuery(sort="oldest")
    pages = [store.page(query, offset, 10) for offset in (0, 10, 20, 30)]
    assert [len(page) for page in pages] == [10, 10, 5, 0]
    assert [image.seed for page in pages for image in page] == oldest
    assert store.page(query, 0, 0) == []
    assert store.count(query) == 25
    with pytest.raises(ValueError):
        store.page(GalleryQuery(sort="random"), 0, 10)


def test_facets_list_what_the_filter_menus_offer(outputs: Path, store: GalleryStore) -> None:
    png(outputs, "a", seed=1, model="sdxl_base", sampler="Euler a", size=(16, 8))
    png(outputs, "b", seed=2, model="Dreamshaper_8", sampler="DPM++ 2M", size=(8, 8))
    png(outputs, "c", seed=3, model="sdxl_base", sampler="DPM++ 2M", size=(8, 16))
    Image.new("RGB", (4, 4)).save(outputs / "no_parameters.png")
    store.reconcile([outputs])

    assert store.facets() == {
        "model": ["Dreamshaper_8", "sdxl_base"],
        "sampler": ["DPM++ 2M", "Euler a"],
        "size": ["4x4", "8x8", "8x16", "16x8"],
    }


def test_infotext_of_a_gallery_image_is_the_saved_one(outputs: Path, store: GalleryStore) -> None:
    """BAD_INPUTS 14: commas, colons and Chinese in the prompt survive the index."""
    path = png(outputs, "猫, (a: b), \"quoted\"\nsecond line", "bad, worse", seed=7)
    store.reconcile([outputs])
    with Image.open(path) as image:
        saved = image.text["parameters"]

    assert store.image(path).infotext() == saved


# --- thumbnails (BAD_INPUTS 30, 33) --------------------------------------------------------------


def test_a_thumbnail_is_made_once_and_reused(outputs: Path, store: GalleryStore, thumbnails: Path, monkeypatch) -> None:
    path = png(outputs, "big picture", seed=1, size=(640, 320))
    made: list[Path] = []
    real = store_module._make_thumbnail

    def counting(image_path: Path, size: int):
        made.append(image_path)
        return real(image_path, size)

    monkeypatch.setattr(store_module, "_make_thumbnail", counting)

    first = store.thumbnail(path, 128)
    second = store.thumbnail(path, 128)
    larger = store.thumbnail(path, 256)

    assert first == second and first.parent == thumbnails and first.suffix == ".jpg"
    assert larger != first
    assert len(made) == 2
    with Image.open(first) as thumbnail:
        assert thumbnail.size == (128, 64) and thumbnail.format == "JPEG"
    assert not list(thumbnails.glob(".thumb-*"))


def test_a_thumbnail_is_made_again_when_the_image_changes_and_old_ones_are_pruned(
    outputs: Path, store: GalleryStore, thumbnails: Path
) -> None:
    """BAD_INPUTS 33: thumbnails regenerate after an edit; those of deleted images go at the next reconcile."""
    path = png(outputs, "red", seed=1, size=(64, 64))
    gone = png(outputs, "deleted later", seed=2)
    store.reconcile([outputs])
    old = store.thumbnail(path, 32)
    gone_thumbnail = store.thumbnail(gone, 32)
    with Image.open(old) as thumbnail:
        assert thumbnail.getpixel((16, 16))[0] > 200

    Image.new("RGB", (64, 64), "blue").save(path)
    later(path)
    gone.unlink()
    new = store.thumbnail(path, 32)

    assert new != old
    with Image.open(new) as thumbnail:
        assert thumbnail.getpixel((16, 16))[2] > 200
    store.reconcile([outputs])
    assert not old.exists() and not gone_thumbnail.exists() and new.exists()


def test_transparent_images_get_png_thumbnails(outputs: Path, store: GalleryStore) -> None:
    path = outputs / "cutout.png"
    Image.new("RGBA", (40, 20), (255, 0, 0, 0)).save(path)

    thumbnail = store.thumbnail(path, 16)

    with Image.open(thumbnail) as image:
        assert thumbnail.suffix == ".png" and image.mode == "RGBA" and image.size == (16, 8)
        assert image.getpixel((4, 4))[3] == 0


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
@pytest.mark.parametrize("side", [12_000, 20_000], ids=["144MP", "400MP"])
def test_a_decompression_bomb_gets_no_thumbnail(
    outputs: Path, store: GalleryStore, thumbnails: Path, side: int
) -> None:
    """BAD_INPUTS 30: the header's size is checked before any pixel is decoded; Pillow's global limit is untouched."""
    limit = Image.MAX_IMAGE_PIXELS
    bomb = png_header_only(outputs / "bomb.png", side, side)

    with pytest.raises(ImageFileError) as error:
        store.thumbnail(bomb)

    assert "bomb.png" in error.value.message
    assert Image.MAX_IMAGE_PIXELS == limit
    assert not any(thumbnails.glob("*"))


def test_no_thumbnail_for_files_that_are_not_images(outputs: Path, store: GalleryStore) -> None:
    """BAD_INPUTS 30."""
    broken = outputs / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(64))
    truncated = png(outputs, "cut short", seed=1, size=(64, 64))
    truncated.write_bytes(truncated.read_bytes()[:-40])

    for path in (broken, outputs / "missing.png", truncated):
        with pytest.raises(ImageFileError) as error:
            store.thumbnail(path)
        assert path.name in error.value.message


def test_thumbnails_from_many_threads_at_once(outputs: Path, store: GalleryStore, thumbnails: Path) -> None:
    images = [png(outputs, f"image {seed}", seed=seed, size=(96, 96)) for seed in range(6)]
    results: dict[tuple[int, int], Path] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(12)

    def work(worker: int) -> None:
        try:
            start.wait()
            for round_number in range(3):
                for index in range(len(images)):
                    path = images[(index + worker) % len(images)]
                    results[(worker, round_number * 10 + index)] = store.thumbnail(path, 48)
                    store.count()  # queries from the same threads share the connection safely
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(worker,)) for worker in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    made = sorted(thumbnails.glob("*.jpg"))
    assert len(made) == len(images)
    assert set(results.values()) == set(made)
    for thumbnail in made:
        with Image.open(thumbnail) as image:
            image.load()
            assert image.size == (48, 48)
    assert not list(thumbnails.glob(".thumb-*"))
