"""The gallery inside the main window: images in the output folder are indexed, dropped images show
PNG Info, and Reuse Parameters from either fills the fields."""

from __future__ import annotations

from pathlib import Path

from PIL import Image
from PySide6.QtWidgets import QApplication

from desktop.library.outputs import save_png
from desktop.ui.png_info import PngInfoDialog
from tests.qt.test_main_window import close_window, open_window, paths  # noqa: F401 - fixture

INFOTEXT = "a red fox in snow\nNegative prompt: blurry\nSteps: 7, Sampler: Euler, CFG scale: 5, Seed: 99, Size: 64x64"


def test_output_images_are_indexed_and_reuse_fills_the_fields(qtbot, paths):  # noqa: F811
    window = open_window(qtbot, paths)
    saved = save_png(Image.new("RGB", (64, 64), "orange"), INFOTEXT, window.output_dir(), 99)
    window.reconcile_gallery()  # what activating the window does after Finder
    qtbot.waitUntil(lambda: window.gallery.model.total() == 1, timeout=10_000)
    window.gallery.reuse_requested.emit(window.gallery.model.image_at(0))
    request = window.parameters.request(window.prompt.text(), window.negative_prompt.text())
    assert (request.prompt, request.negative_prompt, request.steps, request.sampler, request.seed) == (
        "a red fox in snow", "blurry", 7, "Euler", 99
    )
    saved.unlink()  # deleted in Finder
    window.reconcile_gallery()
    qtbot.waitUntil(lambda: window.gallery.model.total() == 0, timeout=10_000)
    close_window(window)


def test_a_dropped_image_shows_how_it_was_made(qtbot, paths, tmp_path: Path):  # noqa: F811
    window = open_window(qtbot, paths)
    civitai = save_png(Image.new("RGB", (64, 64), "teal"), INFOTEXT, tmp_path / "Downloads", 99)
    window.install_dropped([civitai])
    qtbot.waitUntil(lambda: any(isinstance(w, PngInfoDialog) and w.isVisible() for w in QApplication.topLevelWidgets()), timeout=5000)
    dialog = next(w for w in QApplication.topLevelWidgets() if isinstance(w, PngInfoDialog) and w.isVisible())
    dialog.reuse_requested.emit(dialog.metadata)
    assert window.prompt.text() == "a red fox in snow"
    assert not window.error_banner.isVisible()  # an image is not "not a model file"
    dialog.close()
    close_window(window)
