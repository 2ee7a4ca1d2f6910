"""Strict reader for the header of a ``.safetensors`` file, without torch.

The format: 8 bytes little-endian header length N, N bytes of UTF-8 JSON mapping tensor names to
``{"dtype", "shape", "data_offsets": [begin, end]}`` (offsets relative to the data region) plus an
optional ``"__metadata__"`` str->str map, then the tensor bytes packed with no gaps.

We check everything the safetensors library checks (and a little more) so that a file accepted
here will also load later, and a broken one is refused at import with a message naming the file.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from desktop.core.errors import ModelFileError
from desktop.library.file_errors import reading

DTYPE_SIZES: Mapping[str, int] = MappingProxyType(
    {
        "F64": 8,
        "F32": 4,
        "F16": 2,
        "BF16": 2,
        "I64": 8,
        "I32": 4,
        "I16": 2,
        "I8": 1,
        "U8": 1,
        "BOOL": 1,
        "F8_E4M3": 1,
        "F8_E5M2": 1,
    }
)

# The safetensors library's own limit; a bigger header is a corrupt length, not a real header.
MAX_HEADER_BYTES = 100_000_000

# Browsers and the Hugging Face cache name files this way while they are still downloading.
PARTIAL_DOWNLOAD_SUFFIXES = (".crdownload", ".part", ".incomplete", ".download")

METADATA_KEY = "__metadata__"
_LENGTH_PREFIX = 8


@dataclass(frozen=True)
class TensorInfo:
    """One tensor of the file; ``begin``/``end`` are absolute byte offsets in the file."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    begin: int
    end: int

    @property
    def nbytes(self) -> int:
        return self.end - self.begin


@dataclass(frozen=True)
class SafetensorsHeader:
    """The parsed and validated header of a safetensors file."""

    path: Path
    header_length: int
    data_start: int
    file_size: int
    tensors: Mapping[str, TensorInfo]
    metadata: Mapping[str, str]


def read_safetensors_header(path: str | Path) -> SafetensorsHeader:
    """Read and validate the header of ``path``; raise :class:`ModelFileError` if it is not sound.

    Only the header is read: at most 8 + 100 MB bytes, and never more than the file holds.
    """
    path = Path(path)
    file_size = _checked_file_size(path)
    if path.suffix.lower() in PARTIAL_DOWNLOAD_SUFFIXES:
        raise _error(
            path,
            "partial_download",
            f"{path.name} is an incomplete download: wait for the download to finish, "
            "then use the finished .safetensors file",
        )
    if file_size < _LENGTH_PREFIX:
        raise _error(
            path,
            "too_short",
            f"{path.name} is not a valid safetensors file: it is only {file_size} bytes long",
        )
    with reading(path), path.open("rb") as file:
        header_length = int.from_bytes(file.read(_LENGTH_PREFIX), "little")
        _check_header_length(path, header_length, file_size)
        raw = file.read(header_length)
    if len(raw) != header_length:
        # The file shrank between stat() and read(): treat it like any other truncation.
        raise _error(path, "truncated", f"{path.name} is truncated or not a safetensors file")

    data_start = _LENGTH_PREFIX + header_length
    entries = _parse_json(path, raw)
    metadata = _parse_metadata(path, entries.pop(METADATA_KEY, None))
    tensors = _parse_tensors(path, entries, data_start)
    _check_layout(path, tensors, data_start, file_size)
    return SafetensorsHeader(
        path=path,
        header_length=header_length,
        data_start=data_start,
        file_size=file_size,
        tensors=MappingProxyType(tensors),
        metadata=MappingProxyType(metadata),
    )


def _error(path: Path, reason: str, message: str) -> ModelFileError:
    return ModelFileError(message, path=str(path), reason=reason)


def _checked_file_size(path: Path) -> int:
    with reading(path):
        stat = path.stat()
    if path.is_dir():
        raise _error(path, "directory", f"{path.name} is a folder, not a safetensors file")
    return stat.st_size


def _check_header_length(path: Path, header_length: int, file_size: int) -> None:
    # Checked before reading so a corrupt length never turns into a huge allocation.
    if header_length > MAX_HEADER_BYTES:
        raise _error(
            path,
            "header_too_large",
            f"{path.name} is truncated or not a safetensors file: its header claims "
            f"{header_length} bytes, more than the 100 MB limit",
        )
    if _LENGTH_PREFIX + header_length > file_size:
        raise _error(
            path,
            "truncated",
            f"{path.name} is truncated or not a safetensors file: its header claims "
            f"{header_length} bytes but the file has only {file_size}",
        )


def _parse_json(path: Path, raw: bytes) -> dict[str, object]:
    if not raw.startswith(b"{"):
        raise _error(
            path, "bad_header", f"{path.name} is not a safetensors file: its header is not a JSON object"
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _error(path, "bad_header", f"{path.name} is corrupt: its header is not valid UTF-8") from None
    try:
        parsed = json.loads(text, object_pairs_hook=reject_duplicate_keys, parse_constant=_reject_constant)
    except DuplicateKey as exc:
        raise _error(
            path, "duplicate_key", f"{path.name} is corrupt: its header names {exc.key!r} twice"
        ) from None
    except ValueError as exc:
        raise _error(
            path, "bad_header", f"{path.name} is corrupt: its header is not valid JSON ({exc})"
        ) from None
    except RecursionError:
        # Deeply nested arrays exhaust the JSON decoder's stack; no real header nests like that.
        raise _error(path, "bad_header", f"{path.name} is corrupt: its header nests too deeply") from None
    if not isinstance(parsed, dict):
        raise _error(
            path, "bad_header", f"{path.name} is not a safetensors file: its header is not a JSON object"
        )
    return parsed


class DuplicateKey(ValueError):
    """A JSON object with the same key twice (``reject_duplicate_keys``)."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def reject_duplicate_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    """``json.loads(..., object_pairs_hook=reject_duplicate_keys)``: refuse objects with a key twice."""
    # json.loads keeps the last of two equal keys; a reader that kept the first would see another file.
    result: dict[str, object] = {}
    for key, value in pairs:
        if key in result:
            raise DuplicateKey(key)
        result[key] = value
    return result


def _reject_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


def _parse_metadata(path: Path, raw: object) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, dict) or not all(isinstance(v, str) for v in raw.values()):
        raise _error(
            path,
            "bad_metadata",
            f"{path.name} is corrupt: its __metadata__ must map text keys to text values",
        )
    return raw


def _parse_tensors(path: Path, entries: dict[str, object], data_start: int) -> dict[str, TensorInfo]:
    tensors: dict[str, TensorInfo] = {}
    for name, entry in entries.items():
        if not isinstance(entry, dict):
            raise _error(path, "bad_tensor", f"{path.name} is corrupt: tensor {name!r} has no description")
        dtype = entry.get("dtype")
        if not isinstance(dtype, str) or dtype not in DTYPE_SIZES:
            raise _error(
                path, "bad_dtype", f"{path.name} is corrupt: tensor {name!r} has unknown dtype {dtype!r}"
            )
        shape = entry.get("shape")
        if not isinstance(shape, list) or not all(_is_count(d) for d in shape):
            raise _error(
                path, "bad_shape", f"{path.name} is corrupt: tensor {name!r} has an invalid shape {shape!r}"
            )
        offsets = entry.get("data_offsets")
        if (
            not isinstance(offsets, list)
            or len(offsets) != 2
            or not all(_is_count(o) for o in offsets)
            or offsets[0] > offsets[1]
        ):
            raise _error(
                path,
                "bad_offsets",
                f"{path.name} is corrupt: tensor {name!r} has invalid offsets {offsets!r}",
            )
        begin, end = offsets
        expected = math.prod(shape) * DTYPE_SIZES[dtype]
        if end - begin != expected:
            raise _error(
                path,
                "bad_size",
                f"{path.name} is corrupt: tensor {name!r} ({dtype} {tuple(shape)}) needs {expected} bytes "
                f"but its offsets span {end - begin}",
            )
        tensors[name] = TensorInfo(name, dtype, tuple(shape), data_start + begin, data_start + end)
    return tensors


def _is_count(value: object) -> bool:
    # bool is an int subclass, and true/false are not sizes.
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _check_layout(path: Path, tensors: dict[str, TensorInfo], data_start: int, file_size: int) -> None:
    """Tensors must tile the data region exactly, as the safetensors library requires."""
    position = data_start
    for info in sorted(tensors.values(), key=lambda t: (t.begin, t.end)):
        if info.begin < position:
            raise _error(
                path, "overlap", f"{path.name} is corrupt: tensor {info.name!r} overlaps another tensor"
            )
        if info.begin > position:
            raise _error(
                path, "gap", f"{path.name} is corrupt: there are unused bytes before tensor {info.name!r}"
            )
        position = info.end
    if position > file_size:
        raise _error(
            path,
            "incomplete",
            f"{path.name} is an incomplete download: the file is shorter than its header says "
            f"({file_size} bytes instead of {position})",
        )
    if position < file_size:
        raise _error(
            path,
            "trailing_bytes",
            f"{path.name} is corrupt: {file_size - position} unexpected bytes follow the last tensor",
        )
