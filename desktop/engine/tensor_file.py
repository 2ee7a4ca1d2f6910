"""Zero-copy torch tensors over a memory-mapped ``.safetensors`` file.

The header has already been checked strictly by :mod:`desktop.library.safetensors_file`; here the
data region is mapped copy-on-write, so tensors are views of the page cache (a 7 GB checkpoint
costs no RAM until its pages are touched) and nothing can ever write back to the user's file.
"""

from __future__ import annotations

import mmap
from pathlib import Path

import torch

from desktop.library.safetensors_file import SafetensorsHeader, read_safetensors_header

_TORCH_DTYPES = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
    "F8_E4M3": torch.float8_e4m3fn,
    "F8_E5M2": torch.float8_e5m2,
}


def map_tensors(path: Path, header: SafetensorsHeader | None = None) -> dict[str, torch.Tensor]:
    """All tensors of the file, as views of one private memory map (the map lives as long as they do)."""
    header = header or read_safetensors_header(path)
    with open(path, "rb") as handle:
        if header.file_size == 0:
            return {}
        mapped = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_COPY)
    tensors: dict[str, torch.Tensor] = {}
    for name, info in header.tensors.items():
        dtype = _TORCH_DTYPES[info.dtype]
        count = info.nbytes // dtype.itemsize if dtype.itemsize else 0
        if count == 0:
            tensors[name] = torch.empty(info.shape, dtype=dtype)
        elif info.begin % dtype.itemsize == 0:
            flat = torch.frombuffer(mapped, dtype=dtype, count=count, offset=info.begin)
            tensors[name] = flat.view(info.shape)
        else:
            # Misaligned data (legal in safetensors): kernels assume alignment, so copy this one.
            raw = torch.frombuffer(mapped, dtype=torch.uint8, count=info.nbytes, offset=info.begin)
            tensors[name] = raw.clone().view(dtype).view(info.shape)
    return tensors
