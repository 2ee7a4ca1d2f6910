"""The hashes AUTOMATIC1111, kohya and civitai use to name model files.

- AutoV2 ("Model hash" in infotext): first 10 hex chars of the sha256 of the whole file.
- Legacy A1111 ``model_hash``: sha256 of the 64 KiB at offset 1 MiB, first 8 hex chars.
- Tensor hash (kohya ``sshs_model_hash``, A1111 ``addnet_hash_safetensors``): sha256 of the bytes
  after the safetensors header, so editing metadata does not change it; "Lora hashes" and
  "TI hashes" in infotext show its first 12 hex chars.

Files are streamed in 1 MiB blocks: checkpoints are several GB and must never sit in memory.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from desktop.core.errors import ModelFileError
from desktop.library.file_errors import reading
from desktop.library.safetensors_file import read_safetensors_header

BLOCK_SIZE = 1 << 20
LEGACY_OFFSET = 0x100000
LEGACY_LENGTH = 0x10000

Progress = Callable[[int, int], None]


class CancelFlag(Protocol):
    """Anything with ``is_set()``: a ``threading.Event`` or the app's cancel token."""

    def is_set(self) -> bool: ...


def sha256_file(
    path: str | Path, *, progress: Progress | None = None, cancel: CancelFlag | None = None
) -> str:
    """Full hex sha256 of the file's bytes."""
    path = Path(path)
    return _sha256_range(path, 0, _file_size(path), progress, cancel)


def autov2_hash(sha256_hex: str) -> str:
    """The short "Model hash" A1111 writes in infotext and civitai accepts."""
    return sha256_hex[:10]


def legacy_model_hash(path: str | Path) -> str:
    """A1111's old ``model_hash``; a file shorter than 1 MiB hashes an empty read, as in A1111."""
    path = Path(path)
    size = _file_size(path)
    start = min(LEGACY_OFFSET, size)
    return _sha256_range(path, start, min(LEGACY_LENGTH, size - start), None, None)[:8]


def safetensors_tensor_hash(
    path: str | Path, *, progress: Progress | None = None, cancel: CancelFlag | None = None
) -> str:
    """Full hex sha256 of the tensor data, i.e. everything after the length prefix and header."""
    header = read_safetensors_header(path)
    return _sha256_range(
        header.path, header.data_start, header.file_size - header.data_start, progress, cancel
    )


def short_network_hash(full_hash: str) -> str:
    """The 12-character form used in "Lora hashes" and "TI hashes"."""
    return full_hash[:12]


def _file_size(path: Path) -> int:
    if path.is_dir():
        raise ModelFileError(f"{path.name} is a folder, not a file", path=str(path), reason="directory")
    with reading(path):
        return path.stat().st_size


def _sha256_range(
    path: Path, start: int, length: int, progress: Progress | None, cancel: CancelFlag | None
) -> str:
    digest = hashlib.sha256()
    done = 0
    with reading(path), path.open("rb") as file:
        file.seek(start)
        while done < length:
            if cancel is not None and cancel.is_set():
                raise InterruptedError(f"hashing {path.name} was cancelled")
            block = file.read(min(BLOCK_SIZE, length - done))
            if not block:
                raise ModelFileError(
                    f"{path.name} got shorter while it was being hashed",
                    path=str(path),
                    reason="truncated",
                )
            digest.update(block)
            done += len(block)
            if progress is not None:
                progress(done, length)
    if progress is not None and length == 0:
        progress(0, 0)
    return digest.hexdigest()


@dataclass(frozen=True)
class FileHashes:
    sha256: str  # of the whole file
    tensor_sha256: str  # of the bytes from ``data_start`` to the end; "" when there is no data_start
    legacy: str  # A1111's old 8-character model_hash


def file_hashes(
    path: str | Path,
    data_start: int | None,
    *,
    progress: Progress | None = None,
    cancel: CancelFlag | None = None,
) -> FileHashes:
    """Every hash of a file from one read: the full sha256, the tensor hash and the legacy hash.

    ``data_start`` is the safetensors header's ``data_start`` (``None`` for other files). Reading a
    7 GB checkpoint once instead of three times is what makes background hashing bearable.
    Raises ``InterruptedError`` when cancelled, :class:`ModelFileError` if the file cannot be read
    or gets shorter meanwhile.
    """
    path = Path(path)
    size = _file_size(path)
    whole, tensors, legacy = hashlib.sha256(), hashlib.sha256(), hashlib.sha256()
    legacy_start = min(LEGACY_OFFSET, size)
    legacy_end = min(legacy_start + LEGACY_LENGTH, size)
    position = 0
    with reading(path), path.open("rb") as file:
        while position < size:
            if cancel is not None and cancel.is_set():
                raise InterruptedError(f"hashing {path.name} was cancelled")
            block = file.read(min(BLOCK_SIZE, size - position))
            if not block:
                raise ModelFileError(
                    f"{path.name} got shorter while it was being hashed", path=str(path), reason="truncated"
                )
            end = position + len(block)
            whole.update(block)
            view = memoryview(block)  # slices without copying a megabyte each time
            if data_start is not None and end > data_start:
                tensors.update(view[max(0, data_start - position) :])
            if position < legacy_end and end > legacy_start:
                legacy.update(view[max(0, legacy_start - position) : legacy_end - position])
            position = end
            if progress is not None:
                progress(position, size)
    if progress is not None and size == 0:
        progress(0, 0)
    return FileHashes(
        sha256=whole.hexdigest(),
        tensor_sha256=tensors.hexdigest() if data_start is not None else "",
        legacy=legacy.hexdigest()[:8],
    )
