"""Textual-inversion embeddings as A1111 uses them: found in a prompt by file name, read as vectors.

Files
    A1111's ``.pt`` holds ``{"string_to_param": {"*": tensor[n, width]}, "name", "step"...}``;
    its ``.safetensors`` embeddings hold one tensor ``emb_params``; SDXL embeddings hold
    ``clip_l`` [n, 768] and ``clip_g`` [n, 1280]; diffusers' ``learned_embeds`` hold one tensor
    named after its token (a single [width] vector). :func:`load_embedding` reads all of these
    from ``.safetensors``, and also flattened ``string_to_param.*`` keys. Pickles (``.pt``,
    ``.bin``) are never unpickled here: they are converted in a child process by
    :func:`desktop.library.pickle_convert.convert_pickle_file` (restricted unpickler), which
    writes the same names (``emb_params``, or ``clip_l``/``clip_g``).

Names in prompts (A1111's ``EmbeddingDatabase``)
    An embedding's name is its file stem. Each name is tokenized, and at each position of a
    tokenized prompt piece the longest name whose token ids match there wins. The match is by
    token ids, and the CLIP tokenizer lowercases its input, so ``EasyNegative``, ``easynegative``
    and ``EASYNEGATIVE`` in a prompt all find ``EasyNegative.safetensors``: names are distinct
    (case-sensitive) keys of the library, but matching is case-insensitive, exactly as in A1111.
    Only files that exist, can be read and fit the model's text encoders are embeddings; any
    other word, including a name whose file is broken or made for another base model, is text
    (A1111 skips such files when it loads its database). Those two cases give a warning.

Vectors
    A1111 keeps vectors in float32 and ``shape`` is the vector width (clip_l + clip_g widths for
    SDXL, 2048); a file fits a model when its widths equal the text encoders' token-embedding
    widths: one tensor for SD1/SD2, ``clip_l`` then ``clip_g`` for SDXL's two encoders.
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from desktop.core.errors import DesktopError, ModelFileError
from desktop.engine.tensor_file import map_tensors
from desktop.library.file_errors import reading
from desktop.library.pickle_convert import convert_pickle_file
from desktop.library.safetensors_file import TensorInfo, read_safetensors_header
from desktop.library.taxonomy import ModelFamily

SINGLE_KEY = "emb_params"  # the one vector set of an SD1/SD2 embedding (A1111's .safetensors name)
SDXL_KEYS = ("clip_l", "clip_g")  # SDXL: the vectors for CLIP-L, then for OpenCLIP bigG
MAX_VECTORS = 75  # a prompt chunk's text length: A1111 cannot place a longer embedding (its encoder fails)
PICKLE_SUFFIXES = (".pt", ".bin")
MAX_PICKLE_BYTES = 32 * 2**20  # 75 SDXL vectors are 0.6 MB; pickles above this are never embeddings
FAMILY_WIDTHS: Mapping[ModelFamily, tuple[int, ...]] = {
    ModelFamily.SD1: (768,),
    ModelFamily.SD2: (1024,),
    ModelFamily.SDXL: (768, 1280),
}
_FLOAT_DTYPES = ("F16", "BF16", "F32", "F64")
_PARAM_PREFIX = "string_to_param."


def vector_keys(encoder_count: int) -> tuple[str, ...]:
    """The vector set each text encoder of a model reads: one for SD1/SD2, clip_l and clip_g for SDXL."""
    return SDXL_KEYS if encoder_count == 2 else (SINGLE_KEY,)


def text_encoder_widths(text_encoders: Sequence[Any]) -> tuple[int, ...]:
    """Token-embedding width of each text encoder (768 for CLIP-L, 1024 SD2, 1280 bigG; less in tiny test models)."""
    return tuple(int(encoder.get_input_embeddings().embedding_dim) for encoder in text_encoders)


@dataclass(frozen=True, eq=False)
class Embedding:
    """One embedding file: ``vectors`` maps :data:`SINGLE_KEY` or both :data:`SDXL_KEYS` to float32 [n, width]."""

    name: str  # the file stem: what a prompt writes
    path: Path
    vectors: Mapping[str, torch.Tensor]
    vector_count: int  # token positions it takes in a prompt chunk (A1111's ``vectors``)
    shape: int  # A1111's ``shape``: the vector width; clip_l + clip_g widths for SDXL

    @property
    def widths(self) -> tuple[int, ...]:
        """Vector width per text encoder, in encoder order."""
        return tuple(int(self.vectors[key].shape[-1]) for key in vector_keys(len(self.vectors)))

    @property
    def family(self) -> ModelFamily:
        """The base model family these widths belong to (UNKNOWN for other widths)."""
        for family, widths in FAMILY_WIDTHS.items():
            if widths == self.widths:
                return family
        return ModelFamily.UNKNOWN

    def fits(self, widths: Sequence[int]) -> bool:
        """Whether the vectors fit text encoders of these token-embedding widths (see :func:`text_encoder_widths`)."""
        return set(self.vectors) == set(vector_keys(len(widths))) and self.widths == tuple(widths)

    def fits_family(self, family: ModelFamily) -> bool:
        """Whether the vectors fit full-size models of ``family`` (for lists of embeddings; generation checks widths)."""
        return family in FAMILY_WIDTHS and self.fits(FAMILY_WIDTHS[family])

    def describe(self) -> str:
        """For messages: "a Stable Diffusion XL embedding (768 + 1280 wide)", "an embedding of 32-wide vectors"."""
        wide = " + ".join(str(width) for width in self.widths)
        if self.family is ModelFamily.UNKNOWN:
            return f"an embedding of {wide}-wide vectors"
        return f"a {self.family.label} embedding ({wide} wide)"


def load_embedding(path: str | Path) -> Embedding:
    """Read an embedding file: ``.safetensors`` directly, ``.pt``/``.bin`` through the safe pickle converter.

    Raises :class:`ModelFileError` naming the file for anything that is not a usable embedding:
    missing or corrupt files, files holding something else (a LoRA in the embeddings folder),
    non-float or misshapen vectors, NaN/inf values, no vectors or more than :data:`MAX_VECTORS`.
    Pickles the converter refuses raise its :class:`~desktop.core.errors.UnsupportedModel` (an
    embedding with several terms) or :class:`~desktop.library.pickle_reader.UnsafePickle` (a
    malicious pickle, which never runs). All are :class:`~desktop.core.errors.DesktopError`.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in PICKLE_SUFFIXES:
        return _load_pickle(path)
    if suffix != ".safetensors":
        raise ModelFileError(
            f"{path.name} is not an embedding file this app reads (.safetensors, .pt or .bin)",
            path=str(path),
            reason="unsupported_format",
        )
    return _load_safetensors(path, path)


def _load_pickle(path: Path) -> Embedding:
    with reading(path):
        size = path.stat().st_size
    if size > MAX_PICKLE_BYTES:  # a checkpoint in the embeddings folder: do not convert gigabytes to say so
        raise ModelFileError(
            f"{path.name} is not a textual-inversion embedding: it is {size // 2**20} MB, far more than an embedding",
            path=str(path),
            reason="not_embedding",
        )
    with tempfile.TemporaryDirectory(prefix="embedding-") as folder:
        converted = Path(folder) / (path.stem + ".safetensors")
        try:
            convert_pickle_file(path, converted, timeout=60)
        except OSError as exc:  # the temporary folder could not be written
            raise ModelFileError(f"{path.name} could not be converted: {exc}", path=str(path), reason="unreadable") from exc
        # The tensors are copied out before the temporary file goes (see _load_safetensors).
        return _load_safetensors(converted, path)


def _load_safetensors(file: Path, path: Path) -> Embedding:
    """Read ``file``; ``path`` is the user's file, named in errors and kept on the embedding."""

    def error(reason: str, problem: str) -> ModelFileError:
        return ModelFileError(f"{path.name} {problem}", path=str(path), reason=reason)

    try:
        header = read_safetensors_header(file)
    except ModelFileError as exc:
        raise ModelFileError(exc.message.replace(file.name, path.name), **{**exc.details, "path": str(path)}) from None
    chosen = _pick_vectors(header.tensors, error)
    for key, info in chosen.items():
        if info.dtype not in _FLOAT_DTYPES:
            raise error("bad_vectors", f"is not a textual-inversion embedding: its vectors {info.name!r} are {info.dtype}, not floating point")
        if len(info.shape) not in (1, 2) or 0 in info.shape:
            raise error("bad_vectors", f"is not a textual-inversion embedding: its vectors {info.name!r} have shape {list(info.shape)}, not [vectors, width]")
    with reading(path):
        mapped = map_tensors(file, header)
    # float32 copies, as A1111 keeps them; copies also outlive the map (and a temporary file).
    vectors = {key: _as_rows(mapped[info.name]).to(torch.float32, copy=True) for key, info in chosen.items()}
    counts = {key: tensor.shape[0] for key, tensor in vectors.items()}
    if len(set(counts.values())) != 1:
        raise error("bad_vectors", f"is corrupt: clip_l has {counts['clip_l']} vectors but clip_g has {counts['clip_g']}")
    count = next(iter(counts.values()))
    if count > MAX_VECTORS:
        raise error("too_many_vectors", f"has {count} vectors; at most {MAX_VECTORS} fit in a prompt chunk")
    if not all(torch.isfinite(tensor).all() for tensor in vectors.values()):
        raise error("bad_vectors", "is corrupt: its vectors contain NaN or infinite values")
    return Embedding(
        name=path.stem,
        path=path,
        vectors=vectors,
        vector_count=count,
        shape=sum(int(tensor.shape[-1]) for tensor in vectors.values()),
    )


def _pick_vectors(tensors: Mapping[str, TensorInfo], error: Callable[[str, str], ModelFileError]) -> dict[str, TensorInfo]:
    """Which tensors are the vectors, in A1111's order of layouts."""
    if all(key in tensors for key in SDXL_KEYS):
        return {key: tensors[key] for key in SDXL_KEYS}
    if SINGLE_KEY in tensors:
        return {SINGLE_KEY: tensors[SINGLE_KEY]}
    params = [name for name in tensors if name.startswith(_PARAM_PREFIX)]
    if len(params) == 1:
        return {SINGLE_KEY: tensors[params[0]]}
    if len(tensors) == 1:  # diffusers' learned_embeds: one tensor named after its token
        return {SINGLE_KEY: next(iter(tensors.values()))}
    names = ", ".join(list(tensors)[:3]) + (", ..." if len(tensors) > 3 else "")
    held = f"{len(tensors)} tensors ({names})" if tensors else "no tensors"
    raise error("not_embedding", f"is not a textual-inversion embedding: it holds {held}, not emb_params or clip_l and clip_g")


def _as_rows(tensor: torch.Tensor) -> torch.Tensor:
    """A single [width] vector is one row (diffusers' learned_embeds), as A1111 unsqueezes it."""
    return tensor.unsqueeze(0) if tensor.dim() == 1 else tensor


# ----------------------------------------------------------------------------- the library


NameIndex = Mapping[int, Sequence[tuple[tuple[int, ...], str]]]


class EmbeddingLibrary:
    """The embedding files a prompt may name (name -> file, the name being the file stem, as A1111).

    Files are read on first use and kept while their size and modification time stay the same
    (failures too, so a broken file is not re-read on every keystroke of the token counter).
    Safe to share between the engine thread and the token counter's thread.
    """

    def __init__(self, files: Mapping[str, Path]) -> None:
        self._files = {name: Path(path) for name, path in files.items()}
        self._lock = threading.Lock()
        self._loaded: dict[str, tuple[tuple[Path, int, int], Embedding | DesktopError]] = {}
        # Keyed by id(tokenizer); the tokenizer is kept with its index so the id cannot be reused.
        self._indexes: dict[int, tuple[Any, NameIndex]] = {}

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(sorted(self._files))

    def __contains__(self, name: object) -> bool:
        return name in self._files

    def __len__(self) -> int:
        return len(self._files)

    def path(self, name: str) -> Path:
        return self._files[name]

    def load(self, name: str) -> Embedding:
        """The embedding called ``name`` (``KeyError`` if there is none); raises the file's error if it is unusable."""
        path = self._files[name]
        with reading(path):
            stat = os.stat(path)
        key = (path, stat.st_mtime_ns, stat.st_size)
        with self._lock:
            cached = self._loaded.get(name)
            if cached is None or cached[0] != key:
                result: Embedding | DesktopError
                try:
                    loaded = load_embedding(path)
                    # The library's name, which is the stem unless the caller chose otherwise.
                    result = Embedding(name, path, loaded.vectors, loaded.vector_count, loaded.shape)
                except DesktopError as exc:
                    result = exc
                cached = (key, result)
                self._loaded[name] = cached
        result = cached[1]
        if isinstance(result, DesktopError):
            raise result.with_traceback(None)
        return result

    def name_index(self, tokenizer: Any) -> NameIndex:
        """A1111's ``ids_lookup``: first token id -> (name's token ids, name), longest first.

        Names of equal length keep sorted name order (A1111 keeps its folder-walk order).
        """
        with self._lock:
            cached = self._indexes.get(id(tokenizer))
            if cached is not None and cached[0] is tokenizer:
                return cached[1]
            names = self.names
            encoded = tokenizer(list(names), truncation=False, add_special_tokens=False)["input_ids"] if names else []
            index: dict[int, list[tuple[tuple[int, ...], str]]] = {}
            for name, ids in zip(names, encoded):
                if ids:  # a name of only whitespace has no tokens; it can never be written in a prompt
                    index.setdefault(ids[0], []).append((tuple(ids), name))
            for candidates in index.values():
                candidates.sort(key=lambda candidate: len(candidate[0]), reverse=True)
            self._indexes[id(tokenizer)] = (tokenizer, index)
            return index


@dataclass(frozen=True)
class EmbeddingWarning:
    """A name in a prompt whose file could not be used; the name was read as plain text."""

    name: str
    path: Path
    reason: str  # "mismatch" (another base model's widths), or the ModelFileError's reason
    message: str


@dataclass(frozen=True)
class EmbeddingMatch:
    embedding: Embedding
    token_count: int  # prompt tokens the name took (its vectors take ``embedding.vector_count``)


@dataclass
class PromptEmbeddings:
    """One job's view of the library: which embeddings fit its text encoders, and what its prompts used.

    ``widths``: the text encoders' token-embedding widths (:func:`text_encoder_widths`); ``None``
    accepts any readable embedding (the token counter, which has no model). Pass one instance to
    every encode call of a job (positive and negative prompts); afterwards ``used`` holds the
    embeddings placed in a prompt (name -> Embedding, for "TI hashes") and ``warnings`` one entry
    per name whose file was broken or made for another base model.
    """

    library: EmbeddingLibrary
    widths: tuple[int, ...] | None = None
    used: dict[str, Embedding] = field(default_factory=dict)
    warnings: list[EmbeddingWarning] = field(default_factory=list)
    _usable: dict[str, Embedding | None] = field(default_factory=dict, repr=False)

    @classmethod
    def for_encoders(cls, library: EmbeddingLibrary, text_encoders: Sequence[Any]) -> PromptEmbeddings:
        return cls(library, text_encoder_widths(text_encoders))

    def find_at(self, tokens: Sequence[int], position: int, tokenizer: Any) -> EmbeddingMatch | None:
        """A1111's ``find_embedding_at_position``: the longest usable name whose tokens start at ``position``."""
        candidates = self.library.name_index(tokenizer).get(tokens[position], ())
        for ids, name in candidates:
            if tuple(tokens[position : position + len(ids)]) == ids:
                embedding = self._embedding(name)
                if embedding is not None:
                    self.used[name] = embedding
                    return EmbeddingMatch(embedding, len(ids))
        return None

    def _embedding(self, name: str) -> Embedding | None:
        """The usable embedding, or None (with one warning per job) when its file cannot serve this model."""
        if name in self._usable:
            return self._usable[name]
        embedding: Embedding | None = None
        try:
            embedding = self.library.load(name)
        except DesktopError as exc:
            reason = str(exc.details.get("reason", exc.code))
            self._warn(name, reason, f"{exc.message}; \"{name}\" in the prompt is read as plain text")
        else:
            if self.widths is not None and not embedding.fits(self.widths):
                wide = " + ".join(str(width) for width in self.widths)
                self._warn(
                    name,
                    "mismatch",
                    f"{embedding.path.name} is {embedding.describe()}, which does not fit this model's text "
                    f"encoder ({wide} wide); \"{name}\" in the prompt is read as plain text",
                )
                embedding = None
        self._usable[name] = embedding
        return embedding

    def _warn(self, name: str, reason: str, message: str) -> None:
        self.warnings.append(EmbeddingWarning(name, self.library.path(name), reason, message))
