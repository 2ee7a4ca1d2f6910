"""Model files by kind in A1111-layout folders: what the parameter menus and completions offer.

A plain directory listing (names and paths, no probing or hashing), cheap enough to refresh
whenever the window gains focus. The catalogue (hashes, previews, probing) builds on it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from desktop.library.hashes import CancelFlag
from desktop.library.probe import PICKLE_SUFFIXES

# Sub-folder names of an A1111 root (``models/<folder>``) and of a ComfyUI root.
FOLDERS: dict[str, tuple[str, ...]] = {
    "checkpoint": ("Stable-diffusion", "checkpoints"),
    "vae": ("VAE", "vae"),
    "lora": ("Lora", "loras", "LyCORIS"),
    "embedding": ("embeddings",),
    "hypernetwork": ("hypernetworks",),
}
_WEIGHT_SUFFIXES = (".safetensors",)
# Listed so the user learns why an old .ckpt is not offered (and can convert it); never opened here.
_PICKLE_SUFFIXES = tuple(sorted(PICKLE_SUFFIXES))
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


@dataclass(frozen=True)
class FoundFile:
    """A model file (or diffusers folder) found under a root, before anything is read from it."""

    path: Path  # as found under the root: its name is the one A1111 shows, even through a symlink
    resolved: Path  # the physical file, so the same file reached twice is listed once
    folder_kind: str  # the FOLDERS key of the folder it was found in
    is_folder: bool  # a diffusers folder


def find_model_files(roots: Iterable[Path], *, cancel: CancelFlag | None = None) -> list[FoundFile]:
    """Every ``.safetensors`` file of every kind under ``roots``, plus diffusers folders (checkpoints)
    and pickle files (``.ckpt``, ``.pt``, ``.pth``, ``.bin``), each physical file once.

    The first root and kind that reach a file win, so the order is stable. Symlinked folders are
    followed, but each real folder is walked once: a symlink loop cannot make this hang.
    Raises ``InterruptedError`` when ``cancel`` is set.
    """
    roots = [Path(root) for root in roots]
    seen: set[Path] = set()
    visited: set[tuple[int, int]] = set()
    resolved_folders: dict[str, Path] = {}
    found: list[FoundFile] = []
    suffixes = _WEIGHT_SUFFIXES + _PICKLE_SUFFIXES
    for kind in FOLDERS:
        for folder in _kind_folders(roots, kind):
            walk = _walk_entries(folder, diffusers=kind == "checkpoint", suffixes=suffixes, visited=visited)
            for entry in walk:
                if cancel is not None and cancel.is_set():
                    raise InterruptedError("listing the model folders was cancelled")
                path = Path(entry.path)
                if entry.is_symlink():
                    resolved = _resolve(path)
                else:
                    resolved = _resolved_folder(resolved_folders, path.parent) / path.name
                if resolved not in seen:
                    seen.add(resolved)
                    found.append(FoundFile(path, resolved, kind, entry.is_dir()))
    return found


def _resolved_folder(cache: dict[str, Path], folder: Path) -> Path:
    # Resolving each file costs a stat per path component; a folder's files share one resolution.
    key = str(folder)
    resolved = cache.get(key)
    if resolved is None:
        resolved = cache[key] = _resolve(folder)
    return resolved


def _resolve(path: Path) -> Path:
    try:
        return path.resolve()
    except (OSError, RuntimeError):  # RuntimeError: a symlink loop on Python < 3.13
        return path.absolute()


def _kind_folders(roots: Iterable[Path], kind: str) -> list[Path]:
    folders = []
    for root in roots:
        root = Path(root)
        if not (root / "Stable-diffusion").is_dir() and (root / "models").is_dir():
            root = root / "models"  # the user chose the webui (or ComfyUI) folder itself, not its models folder
        candidates = [root / name for name in FOLDERS[kind]]
        if kind == "embedding":
            candidates.append(root.parent / "embeddings")
        folders.extend(folder for folder in candidates if folder.is_dir())
    return folders


def _walk(folder: Path, *, diffusers: bool) -> Iterator[Path]:
    for entry in _walk_entries(folder, diffusers=diffusers, suffixes=_WEIGHT_SUFFIXES, visited=set()):
        yield Path(entry.path)


def _walk_entries(
    folder: Path, *, diffusers: bool, suffixes: tuple[str, ...], visited: set[tuple[int, int]]
) -> Iterator[os.DirEntry[str]]:
    # ``visited`` holds the (device, inode) of every folder entered: a symlink pointing back up the
    # tree (or two pointing at each other) would otherwise be walked until the path got too long.
    try:
        identity = _identity(os.stat(folder))
        if identity in visited:
            return
        visited.add(identity)
        with os.scandir(folder) as scan:
            entries = sorted(scan, key=lambda entry: entry.name)
    except OSError:
        return
    for entry in entries:
        if entry.name.startswith("."):
            continue
        try:
            is_dir = entry.is_dir()
        except OSError:
            continue
        if is_dir:
            if diffusers and os.path.isfile(os.path.join(entry.path, _DIFFUSERS_MARKER)):
                yield entry
            else:
                yield from _walk_entries(
                    Path(entry.path), diffusers=diffusers, suffixes=suffixes, visited=visited
                )
        elif entry.name.lower().endswith(suffixes):
            yield entry


def _identity(stat: os.stat_result) -> tuple[int, int]:
    return stat.st_dev, stat.st_ino
