"""A1111 styles.csv, model folder listings, and installing a dropped model file."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest

from desktop.core.cancel import CancelToken, Cancelled
from desktop.core.errors import ModelFileError, UnsupportedModel
from desktop.library.install import install_model
from desktop.library.model_folders import list_models
from desktop.library.styles import Style, apply_style, read_styles, write_styles


def test_styles_read_what_a1111_writes_and_round_trip(tmp_path: Path):
    path = tmp_path / "styles.csv"
    path.write_text(
        'name,prompt,negative_prompt\n"Photo","{prompt}, photo, 35mm","cartoon, drawing"\nNo negative,"film grain",\n,"nameless",\n',
        encoding="utf-8-sig",
    )
    styles = read_styles(path)
    assert styles == [Style("Photo", "{prompt}, photo, 35mm", "cartoon, drawing"), Style("No negative", "film grain", "")]
    assert apply_style("a cat", styles[0].prompt) == "a cat, photo, 35mm"
    styles.append(Style("中文, \"quoted\"", "水彩, (watercolor:1.2)", "低质量\nsecond line"))
    write_styles(path, styles)
    assert read_styles(path) == styles
    assert [p.name for p in tmp_path.iterdir()] == ["styles.csv"]  # no temporary file left


def test_missing_styles_file_means_no_styles(tmp_path: Path):
    assert read_styles(tmp_path / "styles.csv") == []


def test_models_are_listed_by_kind_from_a1111_and_comfyui_roots(tmp_path: Path):
    a1111 = tmp_path / "webui" / "models"
    comfy = tmp_path / "ComfyUI" / "models"
    for path in (
        a1111 / "Stable-diffusion" / "sub" / "Anything V5.safetensors",
        a1111 / "Stable-diffusion" / "old.ckpt",
        a1111 / "Stable-diffusion" / ".hidden.safetensors",
        a1111 / "Lora" / "detail.safetensors",
        a1111.parent / "embeddings" / "easynegative.safetensors",
        comfy / "checkpoints" / "dreamshaper.safetensors",
        comfy / "loras" / "style.safetensors",
    ):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")
    diffusers_folder = a1111 / "Stable-diffusion" / "sd15-diffusers"
    diffusers_folder.mkdir()
    (diffusers_folder / "model_index.json").write_text("{}")
    checkpoints = list_models([a1111, comfy], "checkpoint")
    assert [entry.name for entry in checkpoints] == ["Anything V5", "dreamshaper", "sd15-diffusers"]
    assert [entry.name for entry in list_models([a1111, comfy], "lora")] == ["detail", "style"]
    assert [entry.name for entry in list_models([a1111], "embedding")] == ["easynegative"]
    assert list_models([tmp_path / "missing"], "vae") == []


def test_install_copies_into_the_folder_for_the_kind_and_skips_an_identical_copy(tmp_path: Path, tiny_sd1: Path):
    source = tmp_path / "下载" / "my model 🎨.safetensors"
    source.parent.mkdir()
    shutil.copy(tiny_sd1, source)
    seen: list[tuple[int, int]] = []
    result = install_model(source, tmp_path / "models", progress=lambda done, total: seen.append((done, total)))
    installed = result.path
    assert installed == tmp_path / "models" / "Stable-diffusion" / source.name
    assert result.sha256 == hashlib.sha256(source.read_bytes()).hexdigest() and not result.duplicate
    assert installed.read_bytes() == source.read_bytes()
    assert seen[-1] == (source.stat().st_size, source.stat().st_size)
    again = install_model(source, tmp_path / "models")  # BAD_INPUTS 15: same file twice
    assert again.path == installed and again.duplicate

    different = tmp_path / "other" / source.name
    different.parent.mkdir()
    different.write_bytes(installed.read_bytes()[:-1] + bytes([installed.read_bytes()[-1] ^ 1]))  # other weights
    second = install_model(different, tmp_path / "models").path
    assert second.name == "my model 🎨 (2).safetensors" and installed.read_bytes() == source.read_bytes()
    with pytest.raises(ModelFileError):
        install_model(tmp_path / "nothing.safetensors", tmp_path / "models")


def test_install_refuses_unusable_files_and_cancel_leaves_nothing(tmp_path: Path, tiny_sd1: Path):
    pickle = tmp_path / "model.ckpt"
    pickle.write_bytes(b"\x80\x04K\x01.")
    with pytest.raises((UnsupportedModel, ModelFileError)):
        install_model(pickle, tmp_path / "models")
    cancel = CancelToken()
    cancel.cancel()
    with pytest.raises(Cancelled):
        install_model(tiny_sd1, tmp_path / "models", cancel=cancel)
    assert list((tmp_path / "models" / "Stable-diffusion").iterdir()) == []


def test_same_content_under_a_new_name_is_recognised_by_hash_and_not_copied(tmp_path: Path, tiny_sd1: Path):
    """BAD_INPUTS 15: same hash, new name."""
    models = tmp_path / "models"
    first = install_model(tiny_sd1, models)
    renamed = tmp_path / "renamed copy.safetensors"
    shutil.copy(tiny_sd1, renamed)
    known = {first.sha256: first.path}
    again = install_model(renamed, models, find_duplicate=known.get)
    assert again.duplicate and again.path == first.path
    assert sorted(p.name for p in (models / "Stable-diffusion").iterdir()) == [tiny_sd1.name]
    assert renamed.exists()  # the user's file is left alone


def test_move_and_link_modes(tmp_path: Path, tiny_sd1: Path):
    models = tmp_path / "models"
    original = tiny_sd1.read_bytes()
    moved_source = tmp_path / "to move.safetensors"
    shutil.copy(tiny_sd1, moved_source)
    moved = install_model(moved_source, models, mode="move")
    assert not moved_source.exists() and moved.path.read_bytes() == original

    linked_source = tmp_path / "elsewhere" / "linked.safetensors"
    linked_source.parent.mkdir()
    linked_source.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
    linked = install_model(linked_source, models, mode="link")
    assert linked.path.is_symlink() and linked.path.resolve() == linked_source.resolve()
    assert linked_source.exists()


def test_a_full_disk_is_refused_before_copying_with_the_space_needed(tmp_path: Path, tiny_sd1: Path, monkeypatch):
    """BAD_INPUTS 17: checked with statvfs first; nothing written, the message says how much is needed."""
    models = tmp_path / "models"
    monkeypatch.setattr(shutil, "disk_usage", lambda _path: shutil._ntuple_diskusage(10**9, 10**9 - 10, 10))
    with pytest.raises(OSError, match="free space"):
        install_model(tiny_sd1, models)
    assert list((models / "Stable-diffusion").iterdir()) == []


def test_a_write_failure_mid_copy_removes_the_temporary_file_and_keeps_the_original(tmp_path: Path, tiny_sd1: Path, monkeypatch):
    """BAD_INPUTS 16/17: the disk fills (ENOSPC) while writing."""
    models = tmp_path / "models"
    original = tiny_sd1.read_bytes()
    real_fsync = os.fsync

    def full_disk(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(OSError, match="No space"):
        install_model(tiny_sd1, models)
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert list((models / "Stable-diffusion").iterdir()) == []
    assert tiny_sd1.read_bytes() == original


def test_a_directory_or_a_missing_file_is_an_error(tmp_path: Path):
    """BAD_INPUTS 16."""
    empty_folder = tmp_path / "not a model"
    empty_folder.mkdir()
    with pytest.raises((ModelFileError, UnsupportedModel)):
        install_model(empty_folder, tmp_path / "models")
    with pytest.raises(ModelFileError):
        install_model(tmp_path / "gone.safetensors", tmp_path / "models")


def test_the_webui_folder_itself_can_be_chosen_as_a_root(tmp_path: Path):
    """Users point Preferences at stable-diffusion-webui (or ComfyUI), not at its models folder."""
    webui = tmp_path / "stable-diffusion-webui"
    (webui / "models" / "Lora").mkdir(parents=True)
    (webui / "models" / "Lora" / "style.safetensors").write_bytes(b"")
    (webui / "embeddings").mkdir()
    (webui / "embeddings" / "easynegative.safetensors").write_bytes(b"")
    comfy = tmp_path / "ComfyUI"
    (comfy / "models" / "checkpoints").mkdir(parents=True)
    (comfy / "models" / "checkpoints" / "base.safetensors").write_bytes(b"")
    assert [entry.name for entry in list_models([webui], "lora")] == ["style"]
    assert [entry.name for entry in list_models([webui], "embedding")] == ["easynegative"]
    assert [entry.name for entry in list_models([comfy], "checkpoint")] == ["base"]


def test_a_dropped_ckpt_is_converted_in_a_child_process_and_installed_as_safetensors(tmp_path: Path, tiny_sd1: Path):
    import torch
    from safetensors.torch import load_file

    weights = load_file(tiny_sd1)
    ckpt = tmp_path / "Downloads" / "old model.ckpt"
    ckpt.parent.mkdir()
    torch.save({"state_dict": weights, "global_step": 1000}, ckpt)
    result = install_model(ckpt, tmp_path / "models")
    assert result.path == tmp_path / "models" / "Stable-diffusion" / "old model.safetensors"
    assert result.converted_from == ckpt and result.probe.can_generate
    converted = load_file(result.path)
    assert converted.keys() == weights.keys() and all(torch.equal(converted[k], weights[k]) for k in weights)
    assert ckpt.exists()  # the original is left alone
    assert not any(p.name.startswith(".") for p in (tmp_path / "models").rglob("*"))  # no scratch files left
    again = install_model(ckpt, tmp_path / "models")  # BAD_INPUTS 15: dropped twice
    assert again.duplicate and again.path == result.path


def test_a_malicious_pickle_is_refused_and_never_runs(tmp_path: Path):
    """BAD_INPUTS 7."""
    sentinel = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {sentinel}",))

    import pickle

    evil = tmp_path / "evil.ckpt"
    evil.write_bytes(pickle.dumps({"state_dict": Exploit()}, protocol=2))
    with pytest.raises(UnsupportedModel, match="system"):
        install_model(evil, tmp_path / "models")
    assert not sentinel.exists()
    assert not (tmp_path / "models" / "Stable-diffusion").exists() or not any((tmp_path / "models" / "Stable-diffusion").iterdir())
