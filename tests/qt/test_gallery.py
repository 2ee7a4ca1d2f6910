"""The gallery pane, image detail view, quick look and PNG Info dialog, on real PNGs in a real index.

Images are written with ``save_png`` (A1111 infotext in the ``parameters`` chunk) and indexed by the
real :class:`GalleryStore`; one paging test also uses a counting wrapper to see which pages were
asked for. Trash is faked at ``QFile.moveToTrash``: a test never trashes a real file of the user.
"""

from __future__ import annotations

import datetime
import os
import re
import threading
import time
from pathlib import Path

import pytest
from PIL import Image
from PySide6.QtCore import QFile, QLocale, QModelIndex, QObject, QPoint, QPointF, Qt, QThread, QTranslator, QUrl, Signal
from PySide6.QtGui import QImage, QWheelEvent
from PySide6.QtWidgets import QApplication, QLabel, QListView, QMessageBox, QStyleOptionViewItem

from desktop.core.infotext import format_infotext, parse_infotext
from desktop.library.gallery_store import GalleryQuery, GalleryStore
from desktop.library.image_metadata import ImageMetadata
from desktop.library.outputs import save_png
from desktop.ui import gallery as gallery_module
from desktop.ui.gallery import DAY_HEADER, LIST_ROW, PAGE_SIZE, GalleryModel, GalleryPane, ImageDetail, QuickLook
from desktop.ui.gallery_worker import GalleryWorker
from desktop.ui.png_info import TEXT_LIMIT, PngInfoDialog, show_png_info

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
HOSTILE = '<img src=x onerror="alert(1)"><a href="http://evil">click</a> <b>bold</b>'
MODELS = ("dreamshaper_8", "juggernautXL_v9", "realisticVision_v51")
SAMPLERS = ("Euler a", "DPM++ 2M", "DDIM")
SIZES = ((192, 288), (288, 192), (192, 192))
SUBJECTS = ("a red-haired knight", "a cat in a hat", "a lighthouse at dusk", "猫と桜", "a bowl of ramen")


def picture(number: int, width: int, height: int) -> Image.Image:
    """A gradient in a colour of its own, so screenshots show distinct thumbnails."""
    ramp = Image.linear_gradient("L")
    hue = Image.new("L", (width, height), (number * 47) % 255)
    saturation = ramp.resize((width, height)).point(lambda v: 110 + v // 2)
    value = ramp.rotate(90).resize((width, height)).point(lambda v: 250 - v // 2)
    return Image.merge("HSV", (hue, saturation, value)).convert("RGB")


def infotext(number: int, *, prompt: str | None = None, negative: str = "blurry, lowres", **extra: str) -> str:
    width, height = SIZES[number % 3]
    params = {
        "Steps": 20 + number % 5,
        "Sampler": SAMPLERS[number % 3],
        "Schedule type": "Karras",
        "CFG scale": 7,
        "Seed": 1000 + number,
        "Size": f"{width}x{height}",
        "Model hash": f"{number % 3:010x}",
        "Model": MODELS[number % 3],
        **extra,
    }
    return format_infotext(prompt if prompt is not None else f"{SUBJECTS[number % len(SUBJECTS)]}, detailed", negative, params)


def write_images(folder: Path, count: int, *, start: int = 0, days_apart: bool = True) -> list[Path]:
    """``count`` PNGs as the app saves them, a few minutes apart and spread over three days (newest last)."""
    paths = []
    now = time.time()
    for number in range(start, start + count):
        width, height = SIZES[number % 3]
        path = save_png(picture(number, width, height), infotext(number), folder, seed=1000 + number)
        age = (start + count - number) * 300 + (((start + count - number) // 10) * 86_400 if days_apart else 0)
        os.utime(path, (now - age, now - age))
        paths.append(path)
    return paths


@pytest.fixture
def outputs(tmp_path: Path) -> Path:
    return tmp_path / "outputs"


@pytest.fixture
def store(tmp_path: Path):
    gallery = GalleryStore(tmp_path / "index" / "gallery.sqlite", tmp_path / "index" / "thumbnails")
    yield gallery
    gallery.close()


@pytest.fixture
def pane(qtbot, store: GalleryStore, outputs: Path) -> GalleryPane:
    write_images(outputs, 30)
    store.reconcile([outputs])
    widget = GalleryPane()
    qtbot.addWidget(widget)
    widget.set_store(store)
    widget.resize(900, 600)
    widget.show()
    qtbot.waitExposed(widget)
    yield widget
    widget.model.loader.wait(5000)
    if widget.preview is not None:
        widget.preview.close()


def rows(pane: GalleryPane) -> list[Path]:
    return [pane.model.image_at(row).path for row in range(pane.model.rowCount())]


def prompts(pane: GalleryPane) -> list[str]:
    return [pane.model.image_at(row).prompt for row in range(pane.model.rowCount())]


def select_row(pane: GalleryPane, row: int) -> None:
    pane.view.setCurrentIndex(pane.model.index(row))
    pane.view.setFocus()


def open_details(pane: GalleryPane) -> list[ImageDetail]:
    return [widget for widget in QApplication.topLevelWidgets() if isinstance(widget, ImageDetail) and widget.isVisible()]


# --- paging ---------------------------------------------------------------------------------------


class CountingStore:
    """The real store, noting the pages asked for."""

    def __init__(self, store: GalleryStore) -> None:
        self.store = store
        self.pages: list[tuple[int, int]] = []
        self.thumbnails = 0

    def thumbnail(self, path: Path, size: int = 256) -> Path:
        self.thumbnails += 1
        return self.store.thumbnail(path, size)

    def page(self, query: GalleryQuery, offset: int, limit: int):
        self.pages.append((offset, limit))
        return self.store.page(query, offset, limit)

    def __getattr__(self, name: str):
        return getattr(self.store, name)


@pytest.fixture
def english_locale():
    """American English number formats ("1,000"), as the app sets for its language; restored after."""
    before = QLocale()
    QLocale.setDefault(QLocale(QLocale.Language.English, QLocale.Country.UnitedStates))
    yield
    QLocale.setDefault(before)


def test_a_thousand_images_open_with_the_first_page_and_load_more_on_scroll(qtbot, store: GalleryStore, outputs: Path, english_locale):
    write_images(outputs, 1000, days_apart=False)
    assert store.reconcile([outputs]).added == 1000
    counting = CountingStore(store)
    pane = GalleryPane()
    qtbot.addWidget(pane)
    pane.resize(800, 500)
    started = time.perf_counter()
    pane.set_store(counting)
    pane.show()
    qtbot.waitExposed(pane)
    first_page_seconds = time.perf_counter() - started
    assert pane.model.rowCount() <= PAGE_SIZE
    assert pane.model.total() == 1000
    assert all(limit <= PAGE_SIZE for _offset, limit in counting.pages)
    assert pane.count_label.text() == "1,000 images"  # QLocale grouping (English)
    assert first_page_seconds < 2.0
    qtbot.waitUntil(lambda: counting.thumbnails > 0)
    pane.model.loader.wait(5000)
    QApplication.processEvents()
    visible = sum(pane.view.visualRect(pane.model.index(row)).intersects(pane.view.viewport().rect()) for row in range(pane.model.rowCount()))
    assert 0 < counting.thumbnails <= visible + 12  # only what was painted, not the 200 rows loaded

    pane.view.scrollToBottom()  # the view asks for more when its last row comes into sight
    qtbot.waitUntil(lambda: pane.model.rowCount() > PAGE_SIZE, timeout=3000)
    loaded = pane.model.rowCount()
    pane.model.fetchMore(QModelIndex())
    assert pane.model.rowCount() == loaded + PAGE_SIZE
    while pane.model.canFetchMore(QModelIndex()):
        pane.model.fetchMore(QModelIndex())
    paths = rows(pane)
    assert len(paths) == 1000 == len(set(paths))
    times = [pane.model.image_at(row).mtime_ns for row in range(1000)]
    assert times == sorted(times, reverse=True)  # newest first
    pane.model.loader.wait(5000)


class WorkerRequests(QObject):
    """The window's side of the worker: queued signals, so each slot runs in the worker's thread."""

    reconcile = Signal(list)
    add = Signal(str)
    shutdown = Signal()


def test_refresh_after_the_worker_indexed_a_new_image_keeps_selection_and_loaded_rows(qtbot, store: GalleryStore, outputs: Path):
    """The worker on its own thread: reconcile finds files saved behind the app's back (BAD_INPUTS 33-34), add() one just saved."""
    write_images(outputs, 250, days_apart=False)
    pane = GalleryPane()
    qtbot.addWidget(pane)
    pane.set_store(store)
    assert pane.model.rowCount() == 0
    thread = QThread()
    worker = GalleryWorker(store)
    worker.moveToThread(thread)
    requests = WorkerRequests()
    requests.reconcile.connect(worker.reconcile)
    requests.add.connect(worker.add)
    requests.shutdown.connect(worker.shutdown)
    worker.changed.connect(pane.refresh)
    threads: set[int] = set()
    progress: list[tuple[int, int]] = []
    worker.progress.connect(lambda done, total: progress.append((done, total)), Qt.ConnectionType.DirectConnection)
    worker.progress.connect(lambda done, total: threads.add(threading.get_ident()), Qt.ConnectionType.DirectConnection)
    thread.start()
    try:
        requests.reconcile.emit([str(outputs)])
        qtbot.waitUntil(lambda: pane.model.total() == 250, timeout=30000)  # worker.changed -> pane.refresh, queued
        assert threads and threading.get_ident() not in threads
        assert pane.model.total() == 250 and progress[-1] == (250, 250)

        pane.model.fetchMore(QModelIndex())  # the user scrolled: 250 rows loaded
        select_row(pane, 220)
        chosen = pane.selected_image().path
        newest = save_png(picture(999, 64, 64), infotext(999, prompt="a brand new image"), outputs, seed=7)
        requests.add.emit(str(newest))
        qtbot.waitUntil(lambda: pane.model.total() == 251, timeout=5000)
        assert pane.model.row_of(newest) == 0
        assert pane.selected_image().path == chosen  # still selected, one row further down
        assert pane.model.total() == 251 and pane.model.rowCount() >= 250  # the rows loaded before stay loaded
    finally:
        pane.set_store(None)
        worker.stop()
        requests.shutdown.emit()
        thread.quit()
        assert thread.wait(10000)
    assert worker.store is None
    with pytest.raises(Exception):  # noqa: B017 - closed by the worker: sqlite3.ProgrammingError
        store.count()


# --- filters --------------------------------------------------------------------------------------


def test_search_filters_and_sort_change_the_rows(qtbot, pane: GalleryPane, store: GalleryStore):
    assert pane.model.rowCount() == 30 and pane.count_label.text() == "30 images"
    pane.search.setText("RED-HAIRED knight")
    assert pane.model.rowCount() == 30  # debounced: nothing happens on each key
    qtbot.waitUntil(lambda: pane.model.rowCount() == 6, timeout=2000)
    assert all("red-haired knight" in prompt for prompt in prompts(pane))
    assert pane.count_label.text() == "6 of 30 images"
    pane.search.setText("猫")
    pane.apply_filters()
    assert pane.model.rowCount() == 6 and all("猫" in prompt for prompt in prompts(pane))
    pane.search.clear()
    pane.apply_filters()

    assert [pane.model_filter.itemData(i) for i in range(pane.model_filter.count())] == ["", *sorted(MODELS, key=str.casefold)]
    pane.model_filter.setCurrentIndex(pane.model_filter.findData("juggernautXL_v9"))
    assert pane.model.rowCount() == 10 and {pane.model.image_at(r).model for r in range(10)} == {"juggernautXL_v9"}
    pane.sampler_filter.setCurrentIndex(pane.sampler_filter.findData("DPM++ 2M"))
    assert pane.model.rowCount() == 10  # juggernaut images were all made with DPM++ 2M
    pane.sampler_filter.setCurrentIndex(pane.sampler_filter.findData("DDIM"))
    assert pane.model.rowCount() == 0 and pane.count_label.text() == "0 of 30 images"
    pane.model_filter.setCurrentIndex(0)
    pane.sampler_filter.setCurrentIndex(0)
    pane.size_filter.setCurrentIndex(pane.size_filter.findData("288x192"))
    assert pane.model.rowCount() == 10 and all(pane.model.image_at(r).width == 288 for r in range(10))
    pane.size_filter.setCurrentIndex(0)

    pane.date_filter.setCurrentIndex(1)  # Today: the ten newest images were written today
    today = {pane.model.image_at(r).day for r in range(pane.model.rowCount())}
    assert today == {datetime.date.today()}
    pane.date_filter.setCurrentIndex(0)

    newest_first = rows(pane)
    pane.sort_combo.setCurrentIndex(pane.sort_combo.findData("oldest"))
    assert rows(pane) == newest_first[::-1]
    pane.sort_combo.setCurrentIndex(pane.sort_combo.findData("name"))
    assert [path.name for path in rows(pane)] == sorted(path.name for path in newest_first)
    assert not any(pane.model.index(r).data(GalleryModel.FirstOfDayRole) for r in range(30))  # no days when sorted by name


def test_favourites_show_a_star_filter_and_persist(qtbot, pane: GalleryPane, store: GalleryStore):
    select_row(pane, 3)
    image = pane.selected_image()
    pane.favourite_action.trigger()
    assert pane.model.index(3).data(GalleryModel.FavouriteRole) is True
    assert store.image(image.path).favourite
    assert pane.favourite_action.text() == "Remove from Favourites"
    pane.favourites_button.click()
    assert rows(pane) == [image.path]
    pane.set_favourite(pane.model.image_at(0), False)  # unmarked while only favourites show: it leaves the list
    assert pane.model.rowCount() == 0


def test_images_are_grouped_by_day_with_headers_in_the_list(qtbot, pane: GalleryPane):
    firsts = [row for row in range(pane.model.rowCount()) if pane.model.index(row).data(GalleryModel.FirstOfDayRole)]
    days = [pane.model.index(row).data(GalleryModel.DayRole) for row in firsts]
    assert firsts[0] == 0 and len(firsts) == len(set(days)) >= 3
    assert days == sorted(days, reverse=True)
    pane.set_grid(False)
    option = QStyleOptionViewItem()
    assert pane.delegate.sizeHint(option, pane.model.index(firsts[1])).height() == LIST_ROW + DAY_HEADER
    assert pane.delegate.sizeHint(option, pane.model.index(firsts[1] + 1)).height() == LIST_ROW
    pane.set_grid(True)
    assert "·" in pane.model.index(0).data(Qt.ItemDataRole.ToolTipRole)


# --- thumbnails -----------------------------------------------------------------------------------


def test_thumbnails_are_made_off_the_gui_thread_and_arrive_lazily(qtbot, pane: GalleryPane, store: GalleryStore):
    threads: list[int] = []
    real_thumbnail = store.thumbnail

    def recording(path, size=256):  # noqa: ANN001
        threads.append(threading.get_ident())
        return real_thumbnail(path, size)

    pane.model.loader.wait(5000)  # what the first paint asked for has arrived
    QApplication.processEvents()
    store.thumbnail = recording  # the model's tasks call the store it was given
    pane.model.set_store(store)
    first = pane.model.image_at(0).path
    assert pane.model.cached_pixmap(pane.model.image_at(0)) is None
    placeholder = pane.model.index(0).data(Qt.ItemDataRole.DecorationRole)
    with qtbot.waitSignal(pane.model.thumbnail_ready, check_params_cb=lambda key: key == str(first), timeout=5000):
        pass
    assert threads and threading.get_ident() not in threads
    pixmap = pane.model.cached_pixmap(pane.model.image_at(0))
    assert pixmap is not None and max(pixmap.width(), pixmap.height()) <= 256
    assert pane.model.index(0).data(Qt.ItemDataRole.DecorationRole).cacheKey() != placeholder.cacheKey()
    assert len(threads) < 30 or pane.view.height() > 2000  # only rows the view painted were asked for


def test_the_thumbnail_cache_stays_bounded(qtbot, pane: GalleryPane, monkeypatch):
    monkeypatch.setattr(gallery_module, "PIXMAP_CACHE_SIZE", 8)
    for row in range(pane.model.rowCount()):  # as if the user scrolled past every image
        pane.model.index(row).data(Qt.ItemDataRole.DecorationRole)
    pane.model.loader.wait(5000)
    QApplication.processEvents()
    cached = [row for row in range(30) if pane.model.cached_pixmap(pane.model.image_at(row)) is not None]
    assert len(cached) == 8


def test_a_corrupt_image_gets_a_placeholder_not_a_crash(qtbot, pane: GalleryPane, store: GalleryStore, outputs: Path):
    """BAD_INPUTS 30: a damaged file in the folder."""
    pane.model.loader.wait(5000)
    QApplication.processEvents()
    newest = pane.model.image_at(0).path
    newest.write_bytes(newest.read_bytes()[:200])  # cut short behind the index's back, no reconcile yet
    pane.model.set_store(store)
    with qtbot.waitSignal(pane.model.thumbnail_ready, check_params_cb=lambda key: key == str(newest), timeout=5000):
        pane.model.index(0).data(Qt.ItemDataRole.DecorationRole)
    assert pane.model.cached_pixmap(pane.model.image_at(0)) is None
    assert not pane.model.index(0).data(Qt.ItemDataRole.DecorationRole).isNull()  # the "?" placeholder


# --- actions --------------------------------------------------------------------------------------


def test_reuse_parameters_and_seed_emit_the_image_from_menu_and_detail_view(qtbot, pane: GalleryPane):
    select_row(pane, 2)
    image = pane.selected_image()
    pane._show_menu(pane.view.visualRect(pane.model.index(2)).center())
    texts = [action.text() for action in pane._menu.actions() if action.text()]
    assert texts[:2] == ["Reuse Parameters", "Reuse Seed"] and "Move to Trash…" in texts
    pane._menu.close()
    with qtbot.waitSignal(pane.reuse_requested) as reused:
        pane.reuse_action.trigger()
    assert reused.args[0] is image
    assert reused.args[0].params == tuple(parse_infotext(infotext(27))[2].items())  # row 2 is image 27 (newest first)
    with qtbot.waitSignal(pane.reuse_seed_requested) as seed:
        pane.reuse_seed_action.trigger()
    assert seed.args == [1027]

    detail = pane.show_detail(image)
    with qtbot.waitSignal(pane.reuse_requested) as reused:
        detail.reuse_button.click()
    assert reused.args[0].path == image.path and reused.args[0].prompt == image.prompt
    with qtbot.waitSignal(pane.reuse_seed_requested) as seed:
        detail.seed_button.click()
    assert seed.args == [1027]
    detail.close()


def test_copy_infotext_and_prompt_put_a1111_text_on_the_clipboard(qtbot, pane: GalleryPane):
    select_row(pane, 0)
    image = pane.selected_image()
    qtbot.keyClick(pane.view, Qt.Key.Key_C, Qt.KeyboardModifier.ControlModifier)  # Cmd+C on a Mac
    text = QApplication.clipboard().text()
    assert text == infotext(29)
    assert parse_infotext(text) == (image.prompt, image.negative_prompt, dict(image.params))
    pane.copy_prompt_action.trigger()
    assert QApplication.clipboard().text() == image.prompt


def test_move_to_trash_removes_the_file_the_row_and_the_index_entry(qtbot, pane: GalleryPane, store: GalleryStore, monkeypatch):
    trashed: list[str] = []

    def fake_trash(path: str):
        trashed.append(path)
        Path(path).unlink()
        return True, path

    monkeypatch.setattr(QFile, "moveToTrash", staticmethod(fake_trash))
    questions: list[str] = []
    monkeypatch.setattr(gallery_module, "ask_plainly", lambda parent, title, text: questions.append(text) or True)
    select_row(pane, 4)
    image = pane.selected_image()
    following = pane.model.image_at(5).path
    with qtbot.waitSignal(pane.image_removed) as removed:
        qtbot.keyClick(pane.view, Qt.Key.Key_Backspace, Qt.KeyboardModifier.ControlModifier)  # Cmd+Backspace
    assert image.path.name in questions[0]
    assert removed.args == [str(image.path)] and trashed == [str(image.path)]
    assert not image.path.exists()
    assert image.path not in rows(pane) and pane.model.rowCount() == 29
    assert store.image(image.path) is None and store.count() == 29
    assert pane.selected_image().path == following  # the next image is selected, ready for another delete
    assert pane.count_label.text() == "29 images"


def test_trash_declined_or_impossible_keeps_the_file(qtbot, pane: GalleryPane, monkeypatch):
    """BAD_INPUTS 35: no Trash on this disk and the user cancels the permanent delete."""
    monkeypatch.setattr(QFile, "moveToTrash", staticmethod(lambda path: (False, "")))
    monkeypatch.setattr(QMessageBox, "warning", staticmethod(lambda *args, **kwargs: QMessageBox.StandardButton.Cancel))
    monkeypatch.setattr(gallery_module, "ask_plainly", lambda parent, title, text: True)
    image = pane.model.image_at(0)
    assert not pane.move_to_trash(image)
    assert image.path.exists() and pane.model.row_of(image.path) == 0
    monkeypatch.setattr(gallery_module, "ask_plainly", lambda parent, title, text: False)
    assert not pane.move_to_trash(image)
    assert image.path.exists()


def test_drag_out_carries_file_urls(pane: GalleryPane):
    index = pane.model.index(1)
    assert pane.model.flags(index) & Qt.ItemFlag.ItemIsDragEnabled
    assert pane.view.dragDropMode() == QListView.DragDropMode.DragOnly
    mime = pane.model.mimeData([index])
    assert mime.urls() == [QUrl.fromLocalFile(str(pane.model.image_at(1).path))]
    assert mime.urls()[0].toLocalFile() == str(pane.model.image_at(1).path)


def test_double_click_and_return_activate_the_image(qtbot, pane: GalleryPane):
    select_row(pane, 1)
    path = str(pane.model.image_at(1).path)
    rect = pane.view.visualRect(pane.model.index(1))
    with qtbot.waitSignal(pane.image_activated) as activated:  # a real double-click: press, release, double-click
        qtbot.mousePress(pane.view.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
        qtbot.mouseRelease(pane.view.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
        qtbot.mouseDClick(pane.view.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert activated.args == [path]
    with qtbot.waitSignal(pane.image_activated):
        qtbot.keyClick(pane.view, Qt.Key.Key_Return)
    details = open_details(pane)
    assert len(details) == 1 and str(details[0].image.path) == path
    details[0].close()


# --- keyboard preview -----------------------------------------------------------------------------


def test_space_opens_the_quick_look_and_arrows_move_through_the_gallery(qtbot, pane: GalleryPane):
    select_row(pane, 0)
    qtbot.keyClick(pane.view, Qt.Key.Key_Space)
    preview = pane.preview
    assert isinstance(preview, QuickLook) and preview.isVisible()
    assert preview.path == str(pane.model.image_at(0).path)
    qtbot.waitUntil(lambda: preview.full_size, timeout=5000)  # the full image replaces the thumbnail
    assert preview.pixmap.width() == pane.model.image_at(0).width
    qtbot.keyClick(preview, Qt.Key.Key_Right)
    assert pane.view.currentIndex().row() == 1 and preview.path == str(pane.model.image_at(1).path)
    qtbot.keyClick(preview, Qt.Key.Key_Left)
    assert preview.path == str(pane.model.image_at(0).path)
    qtbot.keyClick(preview, Qt.Key.Key_Space)
    assert not preview.isVisible()
    qtbot.keyClick(pane.view, Qt.Key.Key_Space)
    assert preview.isVisible()
    qtbot.keyClick(preview, Qt.Key.Key_Escape)
    assert not preview.isVisible()


# --- the detail view ------------------------------------------------------------------------------


def test_detail_view_zooms_and_shows_hostile_metadata_literally(qtbot, store: GalleryStore, outputs: Path):
    """BAD_INPUTS 9 (HTML in the prompt and a parameter) and 10 (a huge prompt, cut for display)."""
    hostile = save_png(picture(1, 96, 64), infotext(1, prompt=HOSTILE, negative=HOSTILE, Comment=HOSTILE), outputs, seed=1)
    huge = save_png(picture(2, 64, 64), infotext(2, prompt="word, " * 200_000), outputs, seed=2)
    store.reconcile([outputs])
    pane = GalleryPane()
    qtbot.addWidget(pane)
    pane.set_store(store)
    detail = pane.show_detail(store.image(hostile))
    qtbot.waitExposed(detail)
    assert detail.metadata.prompt_text.toPlainText() == HOSTILE
    assert detail.metadata.negative_text.toPlainText() == HOSTILE
    table = detail.metadata.params_table
    values = {table.item(row, 0).text(): table.item(row, 1).text() for row in range(table.rowCount())}
    assert values["Comment"] == HOSTILE and values["Seed"] == "1001"
    for label in detail.findChildren(QLabel):
        assert label.textFormat() == Qt.TextFormat.PlainText or not label.text(), label.text()

    assert detail.view.fitting and detail.view.zoom() > 1  # a 96 px image fills the view
    fitted = detail.view.zoom()
    detail.zoom_in_action.trigger()
    assert detail.view.zoom() == pytest.approx(fitted * 1.25)
    detail.actual_size_action.trigger()
    assert detail.view.zoom() == 1
    viewport = detail.view.viewport()
    centre = QPointF(viewport.rect().center())
    for modifiers, expected in ((Qt.KeyboardModifier.ControlModifier, 1.25), (Qt.KeyboardModifier.NoModifier, 1.25)):
        wheel = QWheelEvent(
            centre, viewport.mapToGlobal(centre), QPoint(), QPoint(0, 120), Qt.MouseButton.NoButton, modifiers, Qt.ScrollPhase.NoScrollPhase, False
        )
        QApplication.sendEvent(viewport, wheel)
        assert detail.view.zoom() == pytest.approx(expected)  # Ctrl (Cmd) + wheel zooms; the plain wheel scrolls
    detail.fit_action.trigger()
    assert detail.view.zoom() == pytest.approx(fitted)
    assert [action.shortcut().toString() for action in (detail.fit_action,)] == ["Ctrl+0"]
    detail.close()

    started = time.perf_counter()
    big = pane.show_detail(store.image(huge))
    assert time.perf_counter() - started < 2.0
    shown = big.metadata.prompt_text.toPlainText()
    assert len(shown) < TEXT_LIMIT + 100 and "more characters not shown" in shown
    big.close()


def test_detail_view_favourite_and_trash_buttons(qtbot, pane: GalleryPane, store: GalleryStore, monkeypatch):
    monkeypatch.setattr(QFile, "moveToTrash", staticmethod(lambda path: (Path(path).unlink() is None, path)))
    monkeypatch.setattr(gallery_module, "ask_plainly", lambda parent, title, text: True)
    image = pane.model.image_at(0)
    detail = pane.show_detail(image)
    detail.favourite_button.click()
    assert detail.image.favourite and store.image(image.path).favourite
    assert pane.model.index(0).data(GalleryModel.FavouriteRole)
    assert "★" in detail.favourite_button.text()
    detail.trash_button.click()
    assert not image.path.exists() and pane.model.row_of(image.path) is None
    assert not detail.isVisible()


# --- PNG Info -------------------------------------------------------------------------------------


def test_png_info_shows_hostile_metadata_literally_and_offers_reuse_and_copy(qtbot):
    """BAD_INPUTS 9-10: HTML shown as text; raw text only on request."""
    metadata = ImageMetadata(
        source="comfyui",
        prompt=HOSTILE,
        negative_prompt="bad hands",
        params=(("Steps", "30"), ("Sampler", "DPM++ 2M"), ("Seed", "42"), ("Note", HOSTILE)),
        raw='{"3": {"class_type": "KSampler", "inputs": {"text": "' + HOSTILE + '"}}}',
        width=832,
        height=1216,
    )
    dialog = PngInfoDialog(metadata, Path("ComfyUI_00001_.png"))
    qtbot.addWidget(dialog)
    dialog.show()
    assert dialog.summary.text() == "Written by ComfyUI · 832 × 1216"
    assert dialog.windowTitle() == "PNG Info — ComfyUI_00001_.png"
    assert dialog.details.prompt_text.toPlainText() == HOSTILE
    table = dialog.details.params_table
    assert [table.item(row, 1).text() for row in range(table.rowCount())] == ["30", "DPM++ 2M", "42", HOSTILE]
    for label in dialog.findChildren(QLabel):
        assert label.textFormat() == Qt.TextFormat.PlainText, label.text()
    assert not dialog.raw_text.isVisible()
    dialog.raw_button.click()
    assert dialog.raw_text.isVisible() and dialog.raw_text.toPlainText() == metadata.raw
    dialog.copy_button.click()
    assert QApplication.clipboard().text() == metadata.infotext()
    with qtbot.waitSignal(dialog.reuse_requested) as reused:
        dialog.reuse_button.click()
    assert reused.args == [metadata]


def test_png_info_says_when_an_image_has_no_parameters(qtbot, tmp_path: Path, monkeypatch):
    """BAD_INPUTS 29-30: a plain PNG, and a file that is not an image at all."""
    plain = tmp_path / "photo.png"
    picture(3, 40, 30).save(plain)
    dialog = show_png_info(None, plain)
    qtbot.addWidget(dialog)
    assert dialog.summary.text() == "No generation parameters found · 40 × 30"
    assert not dialog.reuse_button.isEnabled() and not dialog.copy_button.isEnabled()
    assert not dialog.details.isVisible()

    bogus = tmp_path / "notes.png"
    bogus.write_text("<b>not an image</b>")
    warnings: list[str] = []
    monkeypatch.setattr("desktop.ui.png_info.plain_warning", lambda parent, title, text: warnings.append(text))
    assert show_png_info(None, bogus) is None
    assert warnings and "notes.png" in warnings[0]


def test_png_info_reads_what_the_app_saved(qtbot, outputs: Path):
    path = save_png(picture(5, 64, 64), infotext(5), outputs, seed=1005)
    dialog = show_png_info(None, path)
    qtbot.addWidget(dialog)
    assert dialog.metadata.found
    assert dialog.details.prompt_text.toPlainText() == f"{SUBJECTS[5 % len(SUBJECTS)]}, detailed"
    dialog.copy_button.click()
    assert QApplication.clipboard().text() == infotext(5)


# --- languages ------------------------------------------------------------------------------------


class Shouting(QTranslator):
    """A stand-in language: every gallery text in capitals, so a test sees which texts follow a switch."""

    CONTEXTS = ("GalleryPane", "GalleryModel", "ImageDetail", "MetadataView", "PngInfoDialog")

    def translate(self, context: str, source_text: str, disambiguation: str | None = None, n: int = -1) -> str | None:  # noqa: ARG002
        if context not in self.CONTEXTS:
            return None
        return re.sub(r"\{[A-Z_]+\}", lambda placeholder: placeholder.group(0).lower(), source_text.upper())  # {count} stays

    def isEmpty(self) -> bool:  # noqa: N802
        return False


def test_switching_language_updates_the_pane_detail_view_and_png_info(qtbot, pane: GalleryPane, qapp):
    """BAD_INPUTS 39: the toolbar, counts, menus, the detail view and PNG Info follow a language switch at once."""
    detail = pane.show_detail(pane.model.image_at(0))
    dialog = PngInfoDialog(ImageMetadata(), Path("x.png"))
    qtbot.addWidget(dialog)
    translator = Shouting()
    qapp.installTranslator(translator)
    try:
        for _ in range(2):
            QApplication.processEvents()
        assert pane.search.placeholderText() == "SEARCH PROMPTS"
        assert pane.model_filter.itemText(0) == "ALL MODELS" and pane.sort_combo.itemText(0) == "NEWEST FIRST"
        assert pane.count_label.text() == "30 IMAGES" and pane.trash_action.text() == "MOVE TO TRASH…"
        assert detail.reuse_button.text() == "REUSE PARAMETERS" and detail.metadata.prompt_label.text() == "PROMPT"
        assert dialog.summary.text() == "NO GENERATION PARAMETERS FOUND" and dialog.raw_button.text() == "SHOW RAW"
    finally:
        qapp.removeTranslator(translator)
        for _ in range(2):
            QApplication.processEvents()
    assert pane.search.placeholderText() == "Search prompts"
    detail.close()


# --- screenshot -----------------------------------------------------------------------------------


def test_screenshot_of_the_gallery_with_thirty_images(qtbot, pane: GalleryPane):
    """Saved for a person to look at: tests/artifacts/gallery.png (grid above, list by day below)."""
    select_row(pane, 4)
    pane.set_favourite(pane.model.image_at(2), True)
    pane.resize(1000, 560)

    def all_visible_thumbnails_loaded() -> bool:
        visible = [row for row in range(pane.model.rowCount()) if pane.view.visualRect(pane.model.index(row)).intersects(pane.view.viewport().rect())]
        for row in visible:
            pane.model.index(row).data(Qt.ItemDataRole.DecorationRole)
        return all(pane.model.cached_pixmap(pane.model.image_at(row)) is not None for row in visible)

    qtbot.waitUntil(all_visible_thumbnails_loaded, timeout=10000)
    grid = pane.grab()
    pane.set_grid(False)
    qtbot.waitUntil(all_visible_thumbnails_loaded, timeout=10000)
    listed = pane.grab()
    combined = QImage(grid.width(), grid.height() + listed.height(), QImage.Format.Format_ARGB32)
    from PySide6.QtGui import QPainter

    painter = QPainter(combined)
    painter.drawPixmap(0, 0, grid)
    painter.drawPixmap(0, grid.height(), listed)
    painter.end()
    ARTIFACTS.mkdir(exist_ok=True)
    assert combined.save(str(ARTIFACTS / "gallery.png"))
