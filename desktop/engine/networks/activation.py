"""Turning a prompt's ``<lora:…>`` / ``<hypernet:…>`` tags and embedding names into patched models for one job.

Names are looked up as A1111 does, by file stem in the model folders (``models/Lora`` and
``models/LyCORIS``, ``embeddings``, ``models/hypernetworks``; ComfyUI's names too). A name that is
missing, a file that is broken, or a network made for another base never stops the job: each
becomes a warning naming the file, shown in the app and printed by the CLI. What was applied is
recorded in the infotext as A1111 writes it (``Lora hashes``, ``TI hashes``, ``Hypernet``).

LoRA weights stay patched between jobs while the same LoRAs are asked for (so "Generate forever"
patches once); hypernetwork hooks are removed after each job.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from desktop.core.errors import DesktopError
from desktop.core.prompt_syntax import NetworkRef
from desktop.library.model_folders import find_model_files
from desktop.library.probe import PICKLE_SUFFIXES

_FOLDER_KINDS = {"lora": "lora", "embedding": "embedding", "hypernetwork": "hypernetwork"}
ShortHash = Callable[[Path], str]  # the 12-char hash A1111 writes for a network file


@dataclass(frozen=True)
class NetworkFiles:
    """Network files by kind and name (file stem); ``.safetensors`` wins over a pickle of the same name."""

    loras: dict[str, Path] = field(default_factory=dict)
    embeddings: dict[str, Path] = field(default_factory=dict)
    hypernetworks: dict[str, Path] = field(default_factory=dict)

    @classmethod
    def scan(cls, roots: Iterable[Path]) -> NetworkFiles:
        found: dict[str, dict[str, Path]] = {"lora": {}, "embedding": {}, "hypernetwork": {}}
        for item in find_model_files(roots):
            kind = _FOLDER_KINDS.get(item.folder_kind)
            if kind is None or item.is_folder:
                continue
            names = found[kind]
            name = item.path.stem
            current = names.get(name)
            if current is None or (current.suffix.lower() in PICKLE_SUFFIXES and item.path.suffix == ".safetensors"):
                names[name] = item.path
        return cls(found["lora"], found["embedding"], found["hypernetwork"])


def infotext_list(entries: Sequence[tuple[str, str]]) -> str:
    """A1111's "name: hash, name: hash" value; names lose ``:`` and ``,`` so the list parses back."""
    return ", ".join(f"{name.replace(':', '').replace(',', '')}: {value}" for name, value in entries)


@dataclass
class JobNetworks:
    """What one job uses: embeddings for the encoder, and the infotext keys and warnings it produced."""

    embeddings: Any = None  # EmbeddingLibrary, or None when there are no embedding files
    short_hash: ShortHash | None = None
    extra_params: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def note_embeddings(self, used: dict[str, Any], problems: Iterable[Any]) -> None:
        """After encoding: "TI hashes" for the embeddings the prompts used, and their warnings."""
        if used and self.short_hash is not None:
            self.extra_params["TI hashes"] = infotext_list(
                [(name, self.short_hash(embedding.path)) for name, embedding in sorted(used.items())]
            )
        for problem in problems:
            message = getattr(problem, "message", str(problem))
            if message not in self.warnings:
                self.warnings.append(message)


class ExtraNetworks:
    """Keeps loaded networks and the LoRA patch of the current model between jobs."""

    def __init__(self, cache_dir: Path, short_hash: ShortHash) -> None:
        self.cache_dir = cache_dir
        self.short_hash = short_hash
        self._loras: dict[tuple[str, int, int], Any] = {}
        self._hypernetworks: dict[tuple[str, int, int], Any] = {}
        self._patcher: Any = None
        self._patched_model: Any = None
        self._library: Any = None
        self._library_files: dict[str, Path] | None = None

    def forget_model(self) -> None:
        """The model is being unloaded: its patch goes with it (the weights are dropped, not restored)."""
        self._patcher = None
        self._patched_model = None

    @contextlib.contextmanager
    def activated(self, model: Any, refs: Sequence[NetworkRef], files: NetworkFiles) -> Iterator[JobNetworks]:
        """Patch ``model`` for the tags in ``refs`` for the duration of a job."""
        job = JobNetworks(embeddings=self._embedding_library(files.embeddings), short_hash=self.short_hash)
        self._apply_loras(model, [ref for ref in refs if ref.kind in ("lora", "lyco")], files, job)
        hypernet_patch = self._apply_hypernetworks(model, [ref for ref in refs if ref.kind == "hypernet"], files, job)
        for ref in refs:
            if ref.kind not in ("lora", "lyco", "hypernet"):
                job.warnings.append(f"<{ref.kind}:{ref.name}> is not a network this app knows; it was ignored")
        try:
            yield job
        finally:
            if hypernet_patch is not None:
                hypernet_patch.restore()

    # --- LoRA ---

    def _apply_loras(self, model: Any, refs: Sequence[NetworkRef], files: NetworkFiles, job: JobNetworks) -> None:
        wanted: list[tuple[Any, float, float]] = []
        hashes: list[tuple[str, str]] = []
        for ref in refs:
            path = files.loras.get(ref.name)
            if path is None:
                job.warnings.append(f"LoRA '{ref.name}' was not found in the Lora folders; the image was made without it")
                continue
            try:
                network = _cached(self._loras, path, lambda path=path: _load_network(path))
            except DesktopError as error:
                job.warnings.append(f"LoRA {path.name} could not be used: {error}")
                continue
            wanted.append((network, ref.te_weight, ref.unet_weight))
            hashes.append((ref.name, self.short_hash(path)))
        if self._patched_model is not model:
            self._patcher = _patcher_for(model) if wanted else None
            self._patched_model = model if wanted else None
        if self._patcher is None:
            return  # nothing asked for and nothing patched: torch-free fast path
        for match in self._patcher.apply(wanted):
            message = match.warning()  # names the file and how many modules matched
            if message is not None:
                job.warnings.append(message)
        if hashes:
            job.extra_params["Lora hashes"] = infotext_list(hashes)

    # --- hypernetworks ---

    def _apply_hypernetworks(self, model: Any, refs: Sequence[NetworkRef], files: NetworkFiles, job: JobNetworks) -> Any:
        if not refs:
            return None
        from desktop.engine.networks.hypernetwork import HypernetworkPatch, load_hypernetwork

        chosen: list[tuple[Any, float]] = []
        for ref in refs:
            path = files.hypernetworks.get(ref.name)
            if path is None:
                job.warnings.append(f"hypernetwork '{ref.name}' was not found in the hypernetworks folder; the image was made without it")
                continue
            try:
                hypernetwork = _cached(
                    self._hypernetworks, path, lambda path=path: load_hypernetwork(path, self.cache_dir / "hypernetworks")
                )
            except DesktopError as error:
                job.warnings.append(f"hypernetwork {path.name} could not be used: {error}")
                continue
            chosen.append((hypernetwork, ref.te_weight))
        if not chosen:
            return None
        patch = HypernetworkPatch.apply(model.unet, chosen)
        job.warnings.extend(patch.warnings)
        job.extra_params["Hypernet"] = ", ".join(hypernetwork.name for hypernetwork, _ in chosen)
        if len(chosen) == 1:
            job.extra_params["Hypernet strength"] = f"{chosen[0][1]:g}"
        return patch

    # --- embeddings ---

    def _embedding_library(self, embeddings: dict[str, Path]) -> Any:
        if not embeddings:
            return None
        if self._library is None or self._library_files != embeddings:
            from desktop.engine.networks.embeddings import EmbeddingLibrary

            self._library = EmbeddingLibrary(embeddings)
            self._library_files = dict(embeddings)
        return self._library


def _load_network(path: Path) -> Any:
    from desktop.engine.networks.lora import load_network

    return load_network(path)


def _patcher_for(model: Any) -> Any:
    from desktop.engine.networks.lora import NetworkPatcher

    return NetworkPatcher(model, originals=getattr(model, "originals", None))


def _cached(cache: dict[tuple[str, int, int], Any], path: Path, load: Callable[[], Any]) -> Any:
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in cache:
        for old in [k for k in cache if k[0] == key[0]]:
            del cache[old]  # the file changed: the old version is never asked for again
        cache[key] = load()
    return cache[key]
