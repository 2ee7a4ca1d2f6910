"""Model files by kind in A1111-layout folders: what the parameter menus and completions offer.

A plain directory listing (names and paths, no probing or hashing), cheap enough to refresh
whenever the window gains focus. The catalogue (hashes, previews, probing) builds on it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

# Sub-folder names of an A1111 root (``models/<folder>``) and of a ComfyUI root.
FOLDERS: dict[str, tuple[str, ...]] = {
    "checkpoint": ("Stable-diffusion", "checkpoints"),
    "vae": ("VAE", "vae"),
    "lora": ("Lora", "loras", "LyCORIS"),
    "embedding": ("embeddings",),
    "hypernetwork": ("hypernetworks",),
}
_WEIGHT_SUFFIXES = (".safetensors",)
_DIFFUSERS_MARKER = "model_index.json"


@dataclass(frozen=True, order=True)
class ModelEntry:
    name: str  # file name without extension: what A1111 shows and what <lora:name> refers to
    path: Path
    kind: str


def list_models(roots: Iterable[Path], kind: str) -> list[ModelEntry]:
    """Every ``.safetensors`` file (and, for checkpoints, diffusers folder) of ``kind``, sorted by name.

    ``roots`` are A1111 ``models`` folders (or the kind's folder itself). Subfolders are searched,
    as A1111 does; hidden files and unreadable folders are skipped. Embeddings may also live in a
    ``embeddings`` folder beside ``models`` (A1111 keeps them at the webui root).
    """
    seen: set[Path] = set()
    entries: list[ModelEntry] = []
    for folder in _kind_folders(roots, kind):
        for path in _walk(folder, diffusers=kind == "checkpoint"):
            resolved = path.resolve()
            if resolved not in seen:
                seen.add(resolved)
                entries.append(ModelEntry(path.stem if path.is_file() else path.name, path, kind))
    return sorted(entries, key=lambda entry: (entry.name.lower(), str(entry.path)))


def _kind_folders(roots: Iterable[Path], kind: str) -> list[Path]:
    folders = []
    for root in roots:
        root = Path(root)
        candidates = [root / name for name in FOLDERS[kind]]
        if kind == "embedding":
            candidates.append(root.parent / "embeddings")
        folders.extend(folder for folder in candidates if folder.is_dir())
    return folders


def _walk(folder: Path, *, diffusers: bool) -> Iterable[Path]:
    try:
        entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
    except OSError:
        return
    for entry in entries:
        if entry.name.startswith("."):
            continue
        path = Path(entry.path)
        if entry.is_dir():
            if diffusers and (path / _DIFFUSERS_MARKER).is_file():
                yield path
            else:
                yield from _walk(path, diffusers=diffusers)
        elif entry.name.lower().endswith(_WEIGHT_SUFFIXES):
            yield path
