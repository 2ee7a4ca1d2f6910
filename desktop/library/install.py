"""Installing a dropped model file into the right A1111 folder: probe, copy to a temporary name, rename.

Pickle files are refused (they are never opened here); an identical file already present is not
copied twice; a copy that fails or is cancelled leaves nothing behind.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

from desktop.core.cancel import CancelToken
from desktop.core.errors import UnsupportedModel
from desktop.library.file_errors import reading
from desktop.library.probe import probe_model
from desktop.library.taxonomy import ModelKind

_CHUNK = 8 * 1024 * 1024
_FOLDER_BY_KIND = {
    ModelKind.CHECKPOINT: "Stable-diffusion",
    ModelKind.LORA: "Lora",
    ModelKind.LYCORIS: "Lora",
    ModelKind.VAE: "VAE",
    ModelKind.EMBEDDING: "embeddings",
    ModelKind.HYPERNETWORK: "hypernetworks",
}


def install_model(
    source: Path,
    models_root: Path,
    *,
    progress: Callable[[int, int], None] | None = None,
    cancel: CancelToken | None = None,
) -> Path:
    """Copy ``source`` into ``models_root/<folder for its kind>/``; returns the installed path.

    Raises :class:`UnsupportedModel` for files the app cannot use (named by what they are) and
    ``ModelFileError`` for unreadable ones; ``Cancelled`` when cancelled.
    """
    source = Path(source)
    probe = probe_model(source)
    folder_name = _FOLDER_BY_KIND.get(probe.kind)
    if folder_name is None:
        raise UnsupportedModel(f"{source.name} is {probe.describe()}, which this app cannot use", path=str(source))
    folder = Path(models_root) / folder_name
    target = folder / source.name
    size = source.stat().st_size
    if target.exists() and target.stat().st_size == size and _same_content(source, target):
        return target  # already installed
    stem, suffix, number = target.stem, target.suffix, 1
    while target.exists():
        number += 1
        target = folder / f"{stem} ({number}){suffix}"
    folder.mkdir(parents=True, exist_ok=True)
    if shutil.disk_usage(folder).free < size:
        raise OSError(28, f"not enough free space in {folder} for {source.name}")
    temp = folder / f".installing-{target.name}"
    copied = 0
    try:
        with reading(source), source.open("rb") as reader, temp.open("wb") as writer:
            while chunk := reader.read(_CHUNK):
                if cancel is not None:
                    cancel.raise_if_cancelled()
                writer.write(chunk)
                copied += len(chunk)
                if progress is not None:
                    progress(copied, size)
            writer.flush()
            os.fsync(writer.fileno())
        os.replace(temp, target)
    finally:
        temp.unlink(missing_ok=True)
    return target


def _same_content(a: Path, b: Path) -> bool:
    with a.open("rb") as first, b.open("rb") as second:
        while True:
            left, right = first.read(_CHUNK), second.read(_CHUNK)
            if left != right:
                return False
            if not left:
                return True
