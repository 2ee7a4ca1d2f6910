"""Installing a dropped model file into the right A1111 folder: probe, copy to a temporary name, rename.

The file is hashed while it is copied (one pass over a 7 GB checkpoint, not two), so a file whose
content is already installed under any name is recognised and not kept twice. Pickle files are
converted to ``.safetensors`` in a separate process with a restricted unpickler (never unpickled
here). A copy that fails, runs out of space or is cancelled leaves nothing behind and never touches
the original.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from desktop.core.cancel import CancelToken
from desktop.core.errors import UnsupportedModel
from desktop.library.file_errors import reading
from desktop.library.probe import PICKLE_SUFFIXES, ModelProbe, probe_model
from desktop.library.taxonomy import ModelFamily, ModelKind

_CHUNK = 8 * 1024 * 1024
FOLDER_BY_KIND = {
    ModelKind.CHECKPOINT: "Stable-diffusion",
    ModelKind.LORA: "Lora",
    ModelKind.LYCORIS: "Lora",
    ModelKind.VAE: "VAE",
    ModelKind.EMBEDDING: "embeddings",
    ModelKind.HYPERNETWORK: "hypernetworks",
}
UNSUPPORTED_FAMILIES = frozenset({ModelFamily.SD3, ModelFamily.FLUX})
INSTALL_MODES = ("copy", "move", "link")

Progress = Callable[[int, int], None]
FindDuplicate = Callable[[str], "Path | None"]  # sha256 -> an installed file with that content


@dataclass(frozen=True)
class Installed:
    path: Path  # where the model now is (the existing file when it was a duplicate)
    probe: ModelProbe
    sha256: str  # of the installed file ("" for a diffusers folder, or when linked)
    duplicate: bool = False  # the same content was already installed: nothing was added
    converted_from: Path | None = None  # the pickle file this .safetensors was made from


def install_model(
    source: Path,
    models_root: Path,
    *,
    mode: str = "copy",
    progress: Progress | None = None,
    cancel: CancelToken | None = None,
    find_duplicate: FindDuplicate | None = None,
) -> Installed:
    """Put ``source`` into ``models_root/<folder for its kind>/`` by copying, moving or linking it.

    Raises :class:`UnsupportedModel` for files the app cannot use (named by what they are),
    ``ModelFileError`` for unreadable ones, ``OSError`` (ENOSPC) when the disk is too full, and
    ``Cancelled`` when cancelled.
    """
    if mode not in INSTALL_MODES:
        raise ValueError(f"unknown install mode {mode!r}")
    source = Path(source)
    if source.suffix.lower() in PICKLE_SUFFIXES and source.is_file():
        return _install_pickle(source, Path(models_root), progress=progress, cancel=cancel, find_duplicate=find_duplicate)
    probe = probe_model(source)
    folder = _folder_for(probe, source, Path(models_root))
    existing = folder / source.name
    if existing.exists() and existing.resolve() == source.resolve():
        return Installed(existing, probe, "", duplicate=True)  # dropped from its own folder
    if source.is_dir():
        return Installed(_place_folder(source, folder, mode), probe, "")
    if mode == "link":
        target = _free_name(folder, source.name)
        folder.mkdir(parents=True, exist_ok=True)
        target.symlink_to(source.resolve())
        return Installed(target, probe, "")
    return _copy_file(source, folder, probe, mode=mode, progress=progress, cancel=cancel, find_duplicate=find_duplicate)


def _folder_for(probe: ModelProbe, source: Path, models_root: Path) -> Path:
    folder_name = FOLDER_BY_KIND.get(probe.kind)
    if folder_name is None:
        raise UnsupportedModel(f"{source.name} is {probe.describe()}, which this app cannot use", path=str(source))
    if probe.family in UNSUPPORTED_FAMILIES:
        raise UnsupportedModel(
            f"{source.name} is {probe.describe()}: {probe.family.label} models are not supported "
            "(this app runs Stable Diffusion 1.x, 2.x and XL)",
            path=str(source),
        )
    return models_root / folder_name


def _copy_file(
    source: Path,
    folder: Path,
    probe: ModelProbe,
    *,
    mode: str,
    progress: Progress | None,
    cancel: CancelToken | None,
    find_duplicate: FindDuplicate | None,
) -> Installed:
    with reading(source):
        size = source.stat().st_size
    folder.mkdir(parents=True, exist_ok=True)
    if mode == "move" and _same_device(source, folder):
        # A rename: instant and needs no space; the content is read only to look for duplicates.
        digest = _sha256(source, cancel, progress) if find_duplicate is not None else ""
        duplicate = _installed_copy(source, digest, folder / source.name, find_duplicate, cancel)
        if duplicate is not None:
            return Installed(duplicate, probe, digest, duplicate=True)
        target = _free_name(folder, source.name)
        os.replace(source, target)
        return Installed(target, probe, digest)
    free = shutil.disk_usage(folder).free
    if free < size:
        raise OSError(
            28, f"not enough free space in {folder} for {source.name}: {_gb(size)} needed, {_gb(free)} free"
        )
    temp = Path(tempfile.mkstemp(prefix=".installing-", suffix=".safetensors", dir=folder)[1])
    try:
        digest = _copy_and_hash(source, temp, size, progress, cancel)
        duplicate = _installed_copy(source, digest, folder / source.name, find_duplicate, cancel)
        if duplicate is not None:
            return Installed(duplicate, probe, digest, duplicate=True)
        target = _free_name(folder, source.name)
        os.replace(temp, target)
    finally:
        temp.unlink(missing_ok=True)
    if mode == "move":
        source.unlink()  # only now: the copy is complete and renamed into place
    return Installed(target, probe, digest)


def _install_pickle(
    source: Path,
    models_root: Path,
    *,
    progress: Progress | None,
    cancel: CancelToken | None,
    find_duplicate: FindDuplicate | None,
) -> Installed:
    from desktop.library.pickle_convert import convert_pickle_file

    models_root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".converting-", dir=models_root) as scratch:
        converted = Path(scratch) / f"{source.stem}.safetensors"
        convert_pickle_file(source, converted, cancel=cancel, progress=progress)
        probe = probe_model(converted)
        folder = _folder_for(probe, source, models_root)
        installed = _copy_file(
            converted, folder, probe, mode="move", progress=None, cancel=cancel, find_duplicate=find_duplicate
        )
    return Installed(installed.path, installed.probe, installed.sha256, installed.duplicate, converted_from=source)


def _place_folder(source: Path, folder: Path, mode: str) -> Path:
    target = _free_name(folder, source.name)
    folder.mkdir(parents=True, exist_ok=True)
    if mode == "link":
        target.symlink_to(source.resolve(), target_is_directory=True)
    elif mode == "move":
        shutil.move(source, target)
    else:
        temp = folder / f".installing-{target.name}"
        try:
            shutil.copytree(source, temp)
            os.replace(temp, target)
        finally:
            shutil.rmtree(temp, ignore_errors=True)
    return target


def _copy_and_hash(source: Path, temp: Path, size: int, progress: Progress | None, cancel: CancelToken | None) -> str:
    digest = hashlib.sha256()
    copied = 0
    with reading(source):
        reader = source.open("rb")
    # Read errors name the source (ModelFileError); write errors (a full disk) stay OSErrors.
    with reader, temp.open("wb") as writer:
        while True:
            with reading(source):
                chunk = reader.read(_CHUNK)
            if not chunk:
                break
            if cancel is not None:
                cancel.raise_if_cancelled()
            writer.write(chunk)
            digest.update(chunk)
            copied += len(chunk)
            if progress is not None:
                progress(copied, size)
        writer.flush()
        os.fsync(writer.fileno())
    if copied != size:
        raise OSError(f"{source.name} changed while it was being copied")
    return digest.hexdigest()


def _installed_copy(
    source: Path, digest: str, same_name: Path, find_duplicate: FindDuplicate | None, cancel: CancelToken | None
) -> Path | None:
    """An installed file with the content of ``source``: one the catalogue knows by hash, or one of the same name."""
    if digest and find_duplicate is not None:
        known = find_duplicate(digest)
        if known is not None and Path(known).exists():
            return Path(known)
    if same_name.is_file() and same_name.stat().st_size == source.stat().st_size:
        if _sha256(same_name, cancel) == (digest or _sha256(source, cancel)):
            return same_name
    return None


def _sha256(path: Path, cancel: CancelToken | None, progress: Progress | None = None) -> str:
    digest = hashlib.sha256()
    done, size = 0, path.stat().st_size
    with reading(path), path.open("rb") as file:
        while chunk := file.read(_CHUNK):
            if cancel is not None:
                cancel.raise_if_cancelled()
            digest.update(chunk)
            done += len(chunk)
            if progress is not None:
                progress(done, size)
    return digest.hexdigest()


def _free_name(folder: Path, name: str) -> Path:
    """``name``, or ``stem (2).ext``, ``stem (3).ext``... whichever does not exist yet."""
    target = folder / name
    stem, suffix, number = target.stem, target.suffix, 1
    while target.exists() or target.is_symlink():
        number += 1
        target = folder / f"{stem} ({number}){suffix}"
    return target


def _same_device(source: Path, folder: Path) -> bool:
    try:
        return source.stat().st_dev == folder.stat().st_dev
    except OSError:
        return False


def _gb(size: int) -> str:
    return f"{size / 1e9:.1f} GB"
