"""Saving images: A1111 names, metadata chunk, never overwriting, nothing half-written."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from PIL import Image

from desktop.library.outputs import OutputError, next_image_number, save_png


def _image(color: int = 0) -> Image.Image:
    return Image.new("RGB", (16, 16), (color, 0, 0))


def test_saved_png_carries_the_parameters_chunk(tmp_path):
    infotext = "a cat\nNegative prompt: dog\nSteps: 20, Sampler: Euler a, Seed: 5"
    path = save_png(_image(), infotext, tmp_path, seed=5)
    assert path.name == "00000-5.png"
    assert Image.open(path).text["parameters"] == infotext


def test_numbers_continue_after_existing_images_and_never_overwrite(tmp_path):
    (tmp_path / "00041-9.png").write_bytes(b"existing")
    (tmp_path / "notes.txt").write_text("not an image")
    assert next_image_number(tmp_path) == 42
    first = save_png(_image(1), "x", tmp_path, seed=1)
    second = save_png(_image(2), "x", tmp_path, seed=1)
    assert (first.name, second.name) == ("00042-1.png", "00043-1.png")
    assert (tmp_path / "00041-9.png").read_bytes() == b"existing"


def test_concurrent_writers_get_distinct_files(tmp_path):
    paths: list[Path] = []
    lock = threading.Lock()

    def write(i: int) -> None:
        path = save_png(_image(i), f"image {i}", tmp_path, seed=i)
        with lock:
            paths.append(path)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({p.name for p in paths}) == 8
    assert sorted(Image.open(p).text["parameters"] for p in paths) == sorted(f"image {i}" for i in range(8))


def test_failed_save_leaves_no_partial_file(tmp_path, monkeypatch):
    """BAD_INPUTS 22/38: a write that fails (disk full) leaves neither a temp file nor a broken image."""

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OutputError, match="No space left"):
        save_png(_image(), "x", tmp_path, seed=1)
    assert list(tmp_path.iterdir()) == []


def test_unwritable_output_folder_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file-not-folder"
    blocker.write_text("x")
    with pytest.raises(OutputError, match="output folder"):
        save_png(_image(), "x", blocker / "out", seed=1)
