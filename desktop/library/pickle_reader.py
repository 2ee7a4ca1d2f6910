"""Read PyTorch pickle checkpoints without torch and without running their code; write safetensors.

``.ckpt``/``.pt``/``.pth``/``.bin`` files are pickles, and unpickling can call any Python function
the file names (BAD_INPUTS item 7). This module never lets it: :class:`RestrictedUnpickler` answers
every global the pickle asks for from a short allowlist (modelled on A1111's ``modules/safe.py``)
with *stand-ins* written here, which only record what they are given. Nothing from torch or numpy
is imported; anything else the pickle names is refused with :class:`UnsafePickle`, naming it.
The app still runs this module only in a child process (:mod:`desktop.library.pickle_convert`):
a crash, a runaway allocation or a bug here cannot take the app down.

Containers
    - zip (``torch.save`` since 1.6): ``<root>/data.pkl`` holds the object, ``<root>/data/<key>``
      the raw little-endian bytes of each storage; ``<root>`` is any single folder name (the
      file's stem, or "archive" when saved to a buffer). Only PyTorch's own member names are
      accepted, every member must be stored uncompressed and lie inside the file, and each storage
      member must be exactly as large as the pickle says (BAD_INPUTS item 8).
    - legacy (``torch.save(..., _use_new_zipfile_serialization=False)``, torch < 1.6): five
      pickles back to back (magic number, protocol 1001, system info, the object, the list of
      storage keys), then each storage as an 8-byte element count and its raw bytes.
    - anything else (7z, rar, gzip, tar, a safetensors file, random bytes) is refused.

Tensors are rebuilt as :class:`TensorRef` (storage, dtype, offset, shape, stride) and their bytes
copied straight from the file: contiguous tensors in chunks, strided ones (transposes, expands)
by a strided copy of memoryview slices. Tensors sharing one storage each get their own copy.

Output of :func:`convert_to_safetensors` (issue 8 loads these names)
    - checkpoint (a dict with ``"state_dict"``): the tensors of ``state_dict``; small top-level
      scalars (``global_step``, ``epoch``...) become metadata (text as it was, numbers and booleans
      in JSON spelling); optimizer states, callbacks and the like are dropped.
    - A1111 textual-inversion embedding (``"string_to_param": {"*": tensor[n, 768]}``): one tensor
      ``emb_params``, as A1111 names it in ``.safetensors`` embeddings; ``name``, ``step``,
      ``sd_checkpoint``, ``sd_checkpoint_name`` become metadata. An SDXL ``.pt`` holding ``clip_l``
      and ``clip_g`` keeps those two names.
    - A1111 hypernetwork (integer keys such as 320, 640, 768, 1280, each a list of two state
      dicts, for the key and value projections): tensors ``"{dim}.{index}.{param}"``, e.g.
      ``"768.0.linear.0.weight"`` (``index`` 0 is the key module, 1 the value module).
      Metadata: ``format`` = ``"a1111-hypernetwork"``, and every other non-integer key of the file
      (``layer_structure``, ``activation_func``, ``is_layer_norm``, ``weight_initialization``,
      ``use_dropout``, ``dropout_structure``, ``activate_output``, ``last_layer_dropout``, ``name``,
      ``step``, ``sd_checkpoint``, ``sd_checkpoint_name``...) under its own name as JSON text:
      ``"[1, 2, 1]"``, ``"\\"relu\\""``, ``"false"``. Read each with ``json.loads``.
    - anything else: nested dicts and lists flattened with ``"."`` (list items by index), tensors
      only.

Writing is pure Python too (the library layer may not import the safetensors package): the header
is computed up front, then the tensors are streamed, widest dtype first so that each is aligned,
into a temporary file next to the target (:func:`partial_path`), fsynced and renamed into place.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import itertools
import json
import math
import os
import pickle
import re
import struct
import sys
import time
import zipfile
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO

from desktop.core.errors import DesktopError, ModelFileError, UnsupportedModel
from desktop.library.file_errors import reading
from desktop.library.safetensors_file import DTYPE_SIZES, MAX_HEADER_BYTES, METADATA_KEY

# data.pkl of an SDXL checkpoint is ~300 KB; a pickle this big is not a model's, and the legacy
# format's pickles are read from this much of the file's head at most.
MAX_PICKLE_BYTES = 64 * 1024 * 1024
MAX_ZIP_MEMBERS = 200_000
MAX_TENSOR_DIMS = 64
# Deeper nesting than any real checkpoint; keeps the flattening recursion far from Python's limit.
MAX_NESTING = 64
MAX_METADATA_CHARS = 4096
MAX_HYPERNETWORK_OPTION_CHARS = 65536
COPY_CHUNK = 16 * 1024 * 1024
HYPERNETWORK_FORMAT = "a1111-hypernetwork"

Progress = Callable[[int, int], None]

_TORCH_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
_TORCH_LEGACY_PROTOCOL = 1001
_ZIP_LOCAL_HEADER = struct.Struct("<4s2B4HL2L2H")  # as zipfile.structFileHeader
_ZIP_MEMBER = re.compile(
    r"(?P<root>[^/]+)/(?:data\.pkl|data/(?P<key>[0-9]+)|version|byteorder|\.format_version"
    r"|\.storage_alignment|\.data/serialization_id|\.data/version)"
)
_OTHER_CONTAINERS = (
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"Rar!\x1a\x07", "a RAR archive"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"BZh", "a bzip2 archive"),
    (b"\xfd7zXZ\x00", "an xz archive"),
    (b"(\xb5/\xfd", "a zstd archive"),
    (b"PK\x05\x06", "an empty zip archive"),
)
_MEMORYVIEW_FORMATS = {1: "B", 2: "H", 4: "I", 8: "Q"}


class UnsafePickle(UnsupportedModel):
    """The pickle asks for a Python global outside the allowlist: it is refused, never called."""

    code = "unsafe_pickle"


# Raised where the file name is not at hand; :func:`_named_errors` turns them into the errors above.
class _Forbidden(Exception):
    """Becomes :class:`UnsafePickle`."""


class _NotConvertible(Exception):
    """Becomes :class:`UnsupportedModel`: the file is readable, but holds something we cannot keep."""


class _CorruptPickle(ValueError):
    """Becomes :class:`ModelFileError`: the pickle does not describe its tensors consistently."""


# --- what the pickle rebuilds ------------------------------------------------------------------


@dataclass(frozen=True)
class StorageRef:
    """One storage of the file: ``nbytes`` bytes at ``view_offset`` inside the stored blob ``key``."""

    key: str
    dtype: str  # safetensors name of the storage's element type ("U8" for untyped storages)
    nbytes: int
    view_offset: int = 0  # legacy files can save a view into a larger storage


@dataclass(frozen=True)
class TensorRef:
    """A tensor as torch would rebuild it: ``offset`` and ``stride`` count elements of ``dtype``."""

    storage: StorageRef
    dtype: str
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]

    @property
    def itemsize(self) -> int:
        return DTYPE_SIZES[self.dtype]

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.numel * self.itemsize

    def is_contiguous(self) -> bool:
        expected = 1
        for size, stride in zip(reversed(self.shape), reversed(self.stride)):
            if size != 1 and stride != expected:
                return False
            expected *= size
        return True

    def storage_span(self) -> tuple[int, int]:
        """First element and one past the last element of the storage this tensor touches."""
        if self.numel == 0:
            return self.offset, self.offset
        last = self.offset + sum((size - 1) * stride for size, stride in zip(self.shape, self.stride))
        return self.offset, last + 1


# --- stand-ins for the allowed globals --------------------------------------------------------
# Each is what the unpickler gets instead of the real torch/numpy object. They check their
# arguments, because a hostile pickle chooses them.


@dataclass(frozen=True)
class _StorageType:
    """Stands in for ``torch.FloatStorage`` and friends (``dtype`` None: ``torch.UntypedStorage``)."""

    name: str
    dtype: str | None


@dataclass(frozen=True)
class _DType:
    """Stands in for ``torch.float16`` and friends."""

    name: str
    dtype: str


class _Marker:
    """Stands in for a type the pickle only names (``torch.Tensor``, ``torch.nn.Parameter``)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


class _OpaqueObject:
    """An instance whose class is allowed but irrelevant (numpy arrays, Lightning callbacks).

    It accepts any construction arguments and any pickled state and keeps the state, which
    nothing here calls into: ``Unpickler`` only ever calls ``__setstate__`` on it.
    """

    standin_for = "object"
    state: object = None

    def __new__(cls, *args: object, **kwargs: object) -> _OpaqueObject:
        return super().__new__(cls)

    def __init__(self, *args: object, **kwargs: object) -> None:
        pass

    def __setstate__(self, state: object) -> None:
        self.state = state

    def __repr__(self) -> str:
        return f"<{self.standin_for}>"


class _ParameterDict(_OpaqueObject):
    """``torch.nn.ParameterDict`` (old A1111 embeddings keep ``string_to_param`` in one)."""

    standin_for = "torch.nn.ParameterDict"

    def parameters(self) -> Mapping[object, object]:
        state = self.state[0] if isinstance(self.state, tuple) and self.state else self.state
        params = dict.get(state, "_parameters") if isinstance(state, dict) else None
        return params if isinstance(params, dict) else {}


class _ModelCheckpoint(_OpaqueObject):
    standin_for = "pytorch_lightning ModelCheckpoint"


class _NumpyArray(_OpaqueObject):
    standin_for = "numpy array"


class _NumpyDType(_OpaqueObject):
    """``numpy.dtype("i8", False, True)``, then its state: ``(3, "<", ...)``."""

    standin_for = "numpy dtype"

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__()
        self.code = args[0] if args and isinstance(args[0], str) else ""


_NUMPY_SCALAR_FORMATS = {
    "i1": "b", "i2": "h", "i4": "i", "i8": "q", "u1": "B", "u2": "H", "u4": "I", "u8": "Q",
    "f2": "e", "f4": "f", "f8": "d", "b1": "?",
}  # fmt: skip


def _numpy_scalar(dtype: object, data: object = b"") -> object:
    """A numpy scalar (often ``global_step``) as a Python number when it is a plain one."""
    if isinstance(dtype, _NumpyDType) and isinstance(data, bytes):
        fmt = _NUMPY_SCALAR_FORMATS.get(dtype.code)
        state = dtype.state if isinstance(dtype.state, tuple) else ()
        big_endian = len(state) > 1 and state[1] == ">"
        if fmt is not None and len(data) == struct.calcsize(fmt):
            return struct.unpack((">" if big_endian else "<") + fmt, data)[0]
    return _NumpyArray()


def _codecs_encode(text: object, encoding: object = "utf-8", errors: object = "strict") -> bytes:
    """Protocol-2 pickles spell ``bytes`` as ``_codecs.encode(text, "latin1")``; no other codec."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1", "utf-8", "utf8", "ascii"):
        codec = _brief(encoding)
        raise _Forbidden(f"its pickle calls _codecs.encode with codec {codec}, which is not allowed")
    return text.encode(str(encoding))


def _brief(value: object) -> str:
    """A short description of a value from the pickle, for messages: never a huge or deep repr."""
    if isinstance(value, int) and value.bit_length() > 64:
        return f"a {value.bit_length()}-bit integer"
    text = repr(value) if isinstance(value, (str, bytes, int, float, type(None))) else type(value).__name__
    return text if len(text) <= 80 else text[:77] + "..."


def _count(value: object, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise _CorruptPickle(f"{what} is {_brief(value)}, not a count")
    return value


def _counts(value: object, what: str) -> tuple[int, ...]:
    if not isinstance(value, (tuple, list)) or len(value) > MAX_TENSOR_DIMS:
        raise _CorruptPickle(f"{what} is {_brief(value)}, not a tensor shape")
    return tuple(_count(item, what) for item in value)


def _tensor(storage: object, offset: object, size: object, stride: object, dtype: str | None) -> TensorRef:
    if not isinstance(storage, StorageRef):
        raise _CorruptPickle(f"a tensor is built on {type(storage).__name__}, not on a storage")
    shape = _counts(size, "a tensor shape")
    strides = _counts(stride, "a tensor stride")
    if len(shape) != len(strides):
        raise _CorruptPickle(f"a tensor has shape {shape} but strides {strides}")
    element = dtype or storage.dtype
    tensor = TensorRef(storage, element, _count(offset, "a storage offset"), shape, strides)
    begin, end = tensor.storage_span()
    if tensor.numel and end * tensor.itemsize > storage.nbytes:
        raise _CorruptPickle(
            f"a tensor of shape {shape} at element {begin} reaches past the end of its storage "
            f"({storage.nbytes} bytes)"
        )
    return tensor


def _check_metadata(metadata: object) -> None:
    # Lazy conjugate/negative bits would need arithmetic on the bytes; real weights never carry them.
    if isinstance(metadata, dict) and any(dict.values(metadata)):
        raise _NotConvertible(f"a tensor carries lazy flags {sorted(metadata)} that conversion cannot apply")


def _rebuild_tensor(storage: object, storage_offset: object, size: object, stride: object) -> TensorRef:
    return _tensor(storage, storage_offset, size, stride, None)


def _rebuild_tensor_v2(
    storage: object,
    storage_offset: object,
    size: object,
    stride: object,
    requires_grad: object = False,
    backward_hooks: object = None,
    metadata: object = None,
) -> TensorRef:
    _check_metadata(metadata)
    return _tensor(storage, storage_offset, size, stride, None)


def _rebuild_tensor_v3(
    storage: object,
    storage_offset: object,
    size: object,
    stride: object,
    requires_grad: object,
    backward_hooks: object,
    dtype: object,
    metadata: object = None,
) -> TensorRef:
    """Newer dtypes (float8) are saved as untyped bytes plus an explicit dtype."""
    if not isinstance(dtype, _DType):
        raise _CorruptPickle(f"a tensor has dtype {_brief(dtype)}")
    _check_metadata(metadata)
    return _tensor(storage, storage_offset, size, stride, dtype.dtype)


def _rebuild_parameter(data: object, requires_grad: object = False, backward_hooks: object = None) -> object:
    return _require_tensor(data)


def _rebuild_parameter_with_state(
    data: object, requires_grad: object = False, backward_hooks: object = None, state: object = None
) -> object:
    return _require_tensor(data)


def _rebuild_from_type_v2(func: object, new_type: object, args: object, state: object = None) -> object:
    """A tensor with Python attributes attached: rebuild the plain tensor, ignore the attributes."""
    if func not in (_rebuild_tensor, _rebuild_tensor_v2, _rebuild_tensor_v3, _rebuild_parameter):
        called = _brief(func)
        raise _Forbidden(f"its pickle asks _rebuild_from_type_v2 to call {called}, which is not allowed")
    if not isinstance(new_type, _Marker) or not isinstance(args, tuple):
        raise _CorruptPickle(f"_rebuild_from_type_v2 got {_brief(new_type)}")
    return _require_tensor(func(*args))  # type: ignore[operator]  # one of the stand-ins above


def _require_tensor(value: object) -> TensorRef:
    if not isinstance(value, TensorRef):
        raise _CorruptPickle(f"a parameter wraps {type(value).__name__}, not a tensor")
    return value


def _torch_size(dims: object = ()) -> tuple[int, ...]:
    return _counts(dims, "a torch.Size")


def _torch_device(kind: object = "cpu", index: object = None) -> str:
    return f"{kind}:{index}" if index is not None else str(kind)


_STORAGE_DTYPES = {
    "DoubleStorage": "F64",
    "FloatStorage": "F32",
    "HalfStorage": "F16",
    "BFloat16Storage": "BF16",
    "LongStorage": "I64",
    "IntStorage": "I32",
    "ShortStorage": "I16",
    "CharStorage": "I8",
    "ByteStorage": "U8",
    "BoolStorage": "BOOL",
}
_TORCH_DTYPES = {
    "float64": "F64",
    "float32": "F32",
    "float16": "F16",
    "bfloat16": "BF16",
    "int64": "I64",
    "int32": "I32",
    "int16": "I16",
    "int8": "I8",
    "uint8": "U8",
    "bool": "BOOL",
    "float8_e4m3fn": "F8_E4M3",
    "float8_e5m2": "F8_E5M2",
}
# Real torch types that safetensors (and so this app) cannot hold: refused as unsupported, not unsafe.
_UNSUPPORTED_TORCH_TYPES = frozenset(
    {
        "ComplexFloatStorage", "ComplexDoubleStorage", "QInt8Storage", "QUInt8Storage", "QInt32Storage",
        "QUInt4x2Storage", "QUInt2x4Storage", "complex32", "complex64", "complex128", "uint16", "uint32",
        "uint64", "float8_e4m3fnuz", "float8_e5m2fnuz", "float8_e8m0fnu", "float4_e2m1fn_x2",
        "qint8", "quint8", "qint32", "quint4x2", "quint2x4",
    }
)  # fmt: skip

_UNTYPED_STORAGE = _StorageType("UntypedStorage", None)
_LIGHTNING_CHECKPOINT = ("pytorch_lightning", "lightning.pytorch")


def _allowed_globals() -> dict[tuple[str, str], object]:
    allowed: dict[tuple[str, str], object] = {
        ("collections", "OrderedDict"): OrderedDict,
        ("builtins", "set"): set,
        ("__builtin__", "set"): set,
        ("_codecs", "encode"): _codecs_encode,
        ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
        ("torch._utils", "_rebuild_tensor_v3"): _rebuild_tensor_v3,
        ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
        ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter_with_state,
        ("torch._tensor", "_rebuild_from_type_v2"): _rebuild_from_type_v2,
        ("torch", "Tensor"): _Marker("torch.Tensor"),
        ("torch._tensor", "Tensor"): _Marker("torch.Tensor"),
        ("torch.nn.parameter", "Parameter"): _Marker("torch.nn.Parameter"),
        ("torch", "Size"): _torch_size,
        ("torch", "device"): _torch_device,
        ("torch", "UntypedStorage"): _UNTYPED_STORAGE,
        ("torch.storage", "UntypedStorage"): _UNTYPED_STORAGE,
        ("torch.nn.modules.container", "ParameterDict"): _ParameterDict,
        ("numpy", "dtype"): _NumpyDType,
        ("numpy", "ndarray"): _NumpyArray,
    }
    for numpy_core in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(numpy_core, "scalar")] = _numpy_scalar
        allowed[(numpy_core, "_reconstruct")] = _NumpyArray
    for package in _LIGHTNING_CHECKPOINT:
        allowed[(f"{package}.callbacks.model_checkpoint", "ModelCheckpoint")] = _ModelCheckpoint
    for name, dtype in _STORAGE_DTYPES.items():
        allowed[("torch", name)] = _StorageType(name, dtype)
    for name, dtype in _TORCH_DTYPES.items():
        allowed[("torch", name)] = _DType(name, dtype)
    return allowed


_ALLOWED_GLOBALS: Mapping[tuple[str, str], object] = _allowed_globals()


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that can only build plain containers and the stand-ins above.

    Every global goes through :meth:`find_class` (``GLOBAL``, ``STACK_GLOBAL``, ``INST``, ``OBJ``
    and the copyreg ``EXT`` codes alike), so a global outside the allowlist never reaches ``REDUCE``.
    ``persistent_load`` hands storage ids to ``storages`` (None: the pickle may not have any).
    """

    def __init__(self, file: IO[bytes], path: Path, storages: Callable[[tuple], StorageRef] | None) -> None:
        super().__init__(file, encoding="utf-8")
        self._path = path
        self._storages = storages

    def find_class(self, module: str, name: str) -> object:
        standin = _ALLOWED_GLOBALS.get((module, name))
        if standin is not None:
            return standin
        qualified = f"{module}.{name}"
        if module == "torch" and name in _UNSUPPORTED_TORCH_TYPES:
            raise UnsupportedModel(
                f"{self._path.name} holds tensors of type torch.{name}, which a .safetensors file "
                "cannot store, so it cannot be converted",
                path=str(self._path),
                reason="unsupported_dtype",
                global_name=qualified,
            )
        raise UnsafePickle(
            f"{self._path.name} was refused: its pickle asks to run {qualified}, which is not part of "
            "a model file (pickles can run code when they are opened; this one was not opened)",
            path=str(self._path),
            reason="unsafe_pickle",
            global_name=qualified,
        )

    def persistent_load(self, pid: object) -> object:
        if self._storages is None or not isinstance(pid, tuple) or not pid:
            raise _CorruptPickle(f"unexpected persistent id {_brief(pid)}")
        return self._storages(pid)


def _storage_id_fields(pid: tuple, expected: int) -> tuple:
    kind = pid[0].decode("ascii", "replace") if isinstance(pid[0], bytes) else pid[0]
    if kind == "module":
        raise _NotConvertible("it stores a whole Python module (source code), not just weights")
    if kind != "storage" or len(pid) != expected:
        raise _CorruptPickle(f"unexpected persistent id {_brief(pid)}")
    storage_type, key = pid[1], pid[2]
    if not isinstance(storage_type, _StorageType) or not isinstance(key, (str, bytes)):
        raise _CorruptPickle(f"unexpected persistent id {_brief(pid)}")
    key = key.decode("ascii", "replace") if isinstance(key, bytes) else key
    return (storage_type, key, *pid[3:])


def _storage_nbytes(storage_type: _StorageType, numel: object) -> int:
    count = _count(numel, "a storage size")
    return count * (DTYPE_SIZES[storage_type.dtype] if storage_type.dtype else 1)


# --- reading the containers --------------------------------------------------------------------


@dataclass(frozen=True)
class _Region:
    """Where the bytes of one stored storage lie in the file."""

    start: int
    nbytes: int


class PickleCheckpoint:
    """An opened checkpoint: the rebuilt object (tensors as :class:`TensorRef`) and its file."""

    def __init__(
        self, path: Path, file: IO[bytes], container: str, obj: object, regions: dict[str, _Region]
    ) -> None:
        self.path = path
        self.container = container  # "zip" or "legacy"
        self.obj = obj
        self._file = file
        self._regions = regions

    def tensor_chunks(self, tensor: TensorRef) -> Iterator[bytes]:
        """The tensor's bytes in row-major order, in pieces of at most :data:`COPY_CHUNK` bytes."""
        if tensor.numel == 0:
            return
        begin, end = tensor.storage_span()
        start = self._start(tensor.storage) + begin * tensor.itemsize
        if tensor.is_contiguous():
            for offset in range(0, tensor.nbytes, COPY_CHUNK):
                yield self._read(start + offset, min(COPY_CHUNK, tensor.nbytes - offset))
            return
        span = self._read(start, (end - begin) * tensor.itemsize)
        yield from _chunks(strided_copy(span, tensor.itemsize, tensor.shape, tensor.stride))

    def _start(self, storage: StorageRef) -> int:
        region = self._regions.get(storage.key)
        if region is None or storage.view_offset + storage.nbytes > region.nbytes:
            raise _CorruptPickle(f"storage {_brief(storage.key)} is missing or smaller than its tensors need")
        return region.start + storage.view_offset

    def _read(self, start: int, length: int) -> bytes:
        with reading(self.path):
            self._file.seek(start)
            data = self._file.read(length)
        if len(data) != length:
            raise _truncated(self.path)
        return data


def _chunks(data: bytes | bytearray) -> Iterator[bytes]:
    view = memoryview(data)
    for offset in range(0, len(view), COPY_CHUNK):
        yield bytes(view[offset : offset + COPY_CHUNK])


def strided_copy(
    span: bytes | bytearray, itemsize: int, shape: Sequence[int], stride: Sequence[int]
) -> bytearray:
    """Gather a strided tensor whose first element is ``span[0]`` into row-major order.

    The largest dimension is copied by one strided memoryview assignment, the others are
    iterated in Python: a transposed 1280x1280 matrix is 1280 slice copies, not 1.6 M elements.
    """
    numel = math.prod(shape)
    out = bytearray(numel * itemsize)
    if numel == 0:
        return out
    # (size, source stride, target stride) of every dimension that is not 1 long
    dims = [dim for dim in zip(shape, stride, _contiguous_strides(shape)) if dim[0] > 1]
    moving = [dim for dim in dims if dim[1] != 0]
    if not moving:  # every element is the same one (an expanded scalar)
        out[:] = bytes(span[:itemsize]) * numel
        return out
    source = memoryview(span).cast("B").cast(_MEMORYVIEW_FORMATS[itemsize])
    target = memoryview(out).cast(_MEMORYVIEW_FORMATS[itemsize])
    inner = max(moving, key=lambda dim: dim[0])
    outer = [dim for dim in dims if dim is not inner]
    size, step, out_step = inner
    for index in itertools.product(*(range(dim[0]) for dim in outer)):
        src = sum(i * dim[1] for i, dim in zip(index, outer))
        dst = sum(i * dim[2] for i, dim in zip(index, outer))
        row = source[src : src + (size - 1) * step + 1 : step]
        target[dst : dst + (size - 1) * out_step + 1 : out_step] = row
    return out


def _contiguous_strides(shape: Sequence[int]) -> list[int]:
    strides, step = [], 1
    for size in reversed(shape):
        strides.append(step)
        step *= size
    return strides[::-1]


@contextlib.contextmanager
def open_pickle_checkpoint(path: str | Path) -> Iterator[PickleCheckpoint]:
    """Open a torch zip or legacy checkpoint with :class:`RestrictedUnpickler`; refuse anything else."""
    path = Path(path)
    with reading(path):
        if path.is_dir():
            raise ModelFileError(
                f"{path.name} is a folder, not a checkpoint", path=str(path), reason="directory"
            )
        file = path.open("rb")
    with file:
        with reading(path):
            size = os.fstat(file.fileno()).st_size
            head = file.read(512)
        container = _container(path, head, size)
        with _named_errors(path):
            load = _load_zip if container == "zip" else _load_legacy
            obj, regions = load(path, file, size)
        yield PickleCheckpoint(path, file, container, obj, regions)


def _container(path: Path, head: bytes, size: int) -> str:
    if size == 0:
        raise ModelFileError(f"{path.name} is empty (0 bytes)", path=str(path), reason="too_short")
    if head.startswith(b"PK\x03\x04"):
        return "zip"
    for magic, what in _OTHER_CONTAINERS:
        if head.startswith(magic):
            raise _not_checkpoint(path, f"it is {what}: extract the model from it first")
    if head[257:262] == b"ustar":
        raise _not_checkpoint(path, "it is a tar archive (or a checkpoint from PyTorch before 0.4)")
    if len(head) > 8 and head[8:9] == b"{":
        raise _not_checkpoint(path, "it is already a safetensors file: rename it to .safetensors")
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return "legacy"
    raise _not_checkpoint(path, "it is neither a zip nor a pickle")


def _load_zip(path: Path, file: IO[bytes], size: int) -> tuple[object, dict[str, _Region]]:
    try:
        archive = zipfile.ZipFile(file)
    except (zipfile.BadZipFile, OSError, ValueError):
        raise ModelFileError(
            f"{path.name} is truncated or corrupt: its zip directory cannot be read",
            path=str(path),
            reason="truncated",
        ) from None
    members = archive.infolist()
    if len(members) > MAX_ZIP_MEMBERS:
        raise _odd_zip(path, f"it has {len(members)} members")
    root = _check_zip_members(path, members, size)
    by_name = {info.filename: info for info in members}
    pickle_info = by_name.get(f"{root}/data.pkl")
    if pickle_info is None:
        raise _odd_zip(path, f"it has no {root}/data.pkl")
    if pickle_info.file_size > MAX_PICKLE_BYTES:
        raise _odd_zip(path, f"its data.pkl claims {pickle_info.file_size} bytes")
    byteorder = by_name.get(f"{root}/byteorder")
    if byteorder is not None and (byteorder.file_size > 16 or archive.read(byteorder) != b"little"):
        raise _big_endian(path)

    regions: dict[str, _Region] = {}

    def storage(pid: tuple) -> StorageRef:
        storage_type, key, _location, numel = _storage_id_fields(pid, 5)
        nbytes = _storage_nbytes(storage_type, numel)
        info = by_name.get(f"{root}/data/{key}")
        if info is None:
            raise _CorruptPickle(f"storage {_brief(key)} has no member in data/")
        if info.file_size != nbytes:
            raise _CorruptPickle(f"data/{key} holds {info.file_size} bytes but its storage needs {nbytes}")
        if key not in regions:
            regions[key] = _Region(_member_data_start(path, file, info, size), nbytes)
        return StorageRef(key, storage_type.dtype or "U8", nbytes)

    raw = archive.read(pickle_info)  # checks the CRC; never more than the size checked above
    obj = RestrictedUnpickler(io.BytesIO(raw), path, storage).load()
    return obj, regions


def _check_zip_members(path: Path, members: list[zipfile.ZipInfo], size: int) -> str:
    """Only PyTorch's own members, all under one folder, stored uncompressed, inside the file."""
    roots, names = set(), set()
    for info in members:
        match = _ZIP_MEMBER.fullmatch(info.filename)
        if match is None:
            raise _odd_zip(path, f"it contains {info.filename!r}, which PyTorch does not write")
        if info.filename in names:
            raise _odd_zip(path, f"it contains {info.filename!r} twice")
        if info.flag_bits & 0x1:
            raise _odd_zip(path, f"{info.filename!r} is encrypted")
        if info.compress_type != zipfile.ZIP_STORED or info.compress_size != info.file_size:
            raise _odd_zip(path, f"{info.filename!r} is compressed, which PyTorch never does")
        if info.header_offset + _ZIP_LOCAL_HEADER.size + info.file_size > size:
            raise ModelFileError(
                f"{path.name} is truncated or corrupt: {info.filename!r} claims {info.file_size} bytes "
                f"but the file has only {size}",
                path=str(path),
                reason="truncated",
            )
        roots.add(match["root"])
        names.add(info.filename)
    if len(roots) != 1:
        raise _odd_zip(path, f"its members lie in {len(roots)} folders instead of one")
    return roots.pop()


def _member_data_start(path: Path, file: IO[bytes], info: zipfile.ZipInfo, size: int) -> int:
    """Offset of a stored member's bytes, from its local header (as zipfile itself computes it)."""
    with reading(path):
        file.seek(info.header_offset)
        fixed = file.read(_ZIP_LOCAL_HEADER.size)
        if len(fixed) != _ZIP_LOCAL_HEADER.size:
            raise _truncated(path)
        fields = _ZIP_LOCAL_HEADER.unpack(fixed)
        name_length, extra_length = fields[10], fields[11]
        name = file.read(name_length)
    expected_name = info.orig_filename.encode("utf-8" if info.flag_bits & 0x800 else "cp437")
    if fields[0] != b"PK\x03\x04" or name != expected_name:
        raise _odd_zip(path, f"the local header of {info.filename!r} does not match the zip directory")
    start = info.header_offset + _ZIP_LOCAL_HEADER.size + name_length + extra_length
    if start + info.file_size > size:
        raise _truncated(path)
    return start


def _load_legacy(path: Path, file: IO[bytes], size: int) -> tuple[object, dict[str, _Region]]:
    with reading(path):
        file.seek(0)
        head = io.BytesIO(file.read(MAX_PICKLE_BYTES))

    def plain() -> object:
        return RestrictedUnpickler(head, path, None).load()

    if plain() != _TORCH_MAGIC_NUMBER:
        raise _not_checkpoint(path, "it is a pickle, but not one PyTorch wrote")
    protocol = plain()
    if protocol != _TORCH_LEGACY_PROTOCOL:
        raise UnsupportedModel(
            f"{path.name} uses PyTorch file protocol {_brief(protocol)}, which is not supported",
            path=str(path),
        )
    info = plain()
    if not isinstance(info, dict) or dict.get(info, "little_endian") is not True:
        raise _big_endian(path)

    roots: dict[str, tuple[str, int]] = {}  # key -> (dtype, bytes) of each stored storage

    def storage(pid: tuple) -> StorageRef:
        storage_type, key, _location, numel, view = _storage_id_fields(pid, 6)
        nbytes = _storage_nbytes(storage_type, numel)
        dtype = storage_type.dtype or "U8"
        if roots.setdefault(key, (dtype, nbytes)) != (dtype, nbytes):
            raise _CorruptPickle(f"storage {_brief(key)} is described twice, differently")
        if view is None:
            return StorageRef(key, dtype, nbytes)
        if not isinstance(view, tuple) or len(view) != 3:
            raise _CorruptPickle(f"storage view {_brief(view)}")
        itemsize = DTYPE_SIZES[dtype]
        offset = _count(view[1], "a view offset") * itemsize
        length = _count(view[2], "a view size") * itemsize
        if offset + length > nbytes:
            raise _CorruptPickle(f"a view of storage {_brief(key)} reaches past its end")
        return StorageRef(key, dtype, length, view_offset=offset)

    try:
        obj = RestrictedUnpickler(head, path, storage).load()
        keys = plain()
    except (EOFError, pickle.UnpicklingError):
        if size > MAX_PICKLE_BYTES:  # the pickle ran past the part of the file that was read
            raise UnsupportedModel(
                f"{path.name} cannot be converted: its pickle is larger than "
                f"{MAX_PICKLE_BYTES // 2**20} MB, more than any model's",
                path=str(path),
                reason="pickle_too_large",
            ) from None
        raise
    if not isinstance(keys, list) or not all(isinstance(k, str) and k in roots for k in keys):
        raise _CorruptPickle("the list of stored storages does not match the pickle")
    return obj, _legacy_regions(path, file, size, head.tell(), keys, roots)


def _legacy_regions(
    path: Path, file: IO[bytes], size: int, position: int, keys: list[str], roots: dict[str, tuple[str, int]]
) -> dict[str, _Region]:
    """Each storage is an 8-byte little-endian element count followed by its bytes."""
    regions: dict[str, _Region] = {}
    for key in keys:
        if key in regions:
            raise _CorruptPickle(f"storage {_brief(key)} is stored twice")
        dtype, nbytes = roots[key]
        with reading(path):
            file.seek(position)
            count = file.read(8)
        if len(count) != 8:
            raise _truncated(path)
        if int.from_bytes(count, "little") * DTYPE_SIZES[dtype] != nbytes:
            raise _CorruptPickle(f"storage {_brief(key)} is stored with another size than the pickle says")
        if position + 8 + nbytes > size:
            raise _truncated(path)
        regions[key] = _Region(position + 8, nbytes)
        position += 8 + nbytes
    missing = sorted(set(roots) - set(regions))
    if missing:
        raise _CorruptPickle(f"storages {missing[:5]} are used but not stored")
    return regions


@contextlib.contextmanager
def _named_errors(path: Path) -> Iterator[None]:
    """Name the file in errors raised by code that does not know it, and call bad data corrupt."""
    try:
        yield
    except DesktopError:
        raise
    except _Forbidden as exc:
        message = f"{path.name} was refused: {exc}"
        raise UnsafePickle(message, path=str(path), reason="unsafe_pickle") from None
    except _NotConvertible as exc:
        raise UnsupportedModel(
            f"{path.name} cannot be converted: {exc}", path=str(path), reason="unsupported"
        ) from None
    # A hostile or damaged pickle can feed the stand-ins anything; none of this is a crash of ours.
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, KeyError, AttributeError, IndexError,
            OverflowError, RecursionError, zipfile.BadZipFile) as exc:  # fmt: skip
        raise _corrupt(path, exc) from None


def _not_checkpoint(path: Path, why: str) -> ModelFileError:
    message = f"{path.name} is not a PyTorch checkpoint: {why}"
    return ModelFileError(message, path=str(path), reason="not_checkpoint")


def _odd_zip(path: Path, why: str) -> ModelFileError:
    message = f"{path.name} is not a checkpoint PyTorch wrote: {why}"
    return ModelFileError(message, path=str(path), reason="odd_container")


def _truncated(path: Path) -> ModelFileError:
    message = f"{path.name} is truncated: it ends before its data does"
    return ModelFileError(message, path=str(path), reason="truncated")


def _big_endian(path: Path) -> UnsupportedModel:
    message = f"{path.name} was saved on a big-endian machine, which conversion does not support"
    return UnsupportedModel(message, path=str(path), reason="big_endian")


def _corrupt(path: Path, exc: BaseException) -> ModelFileError:
    detail = str(exc) or type(exc).__name__
    return ModelFileError(f"{path.name} is corrupt: {detail}", path=str(path), reason="corrupt")


# --- from the rebuilt object to a flat state dict ----------------------------------------------


@dataclass(frozen=True)
class ConversionReport:
    """What a conversion found and wrote; ``dropped`` names what was not kept (optimizer states...)."""

    source: str
    target: str
    container: str  # "zip" or "legacy"
    layout: str  # "checkpoint", "embedding", "hypernetwork" or "other"
    tensor_count: int
    tensor_bytes: int
    metadata: Mapping[str, str] = field(default_factory=dict)
    dropped: tuple[str, ...] = ()

    def to_json(self) -> dict[str, object]:
        return {**asdict(self), "metadata": dict(self.metadata), "dropped": list(self.dropped)}


@dataclass
class _Flat:
    layout: str
    tensors: dict[str, TensorRef] = field(default_factory=dict)
    metadata: dict[str, str] = field(default_factory=dict)
    dropped: list[str] = field(default_factory=list)

    def add_tensors(self, value: object, prefix: str, depth: int = 0) -> None:
        """Flatten dicts, lists and modules below ``prefix`` with "."; drop whatever is not a tensor."""
        if depth > MAX_NESTING:
            raise _NotConvertible(f"its data nests more than {MAX_NESTING} levels deep")
        if isinstance(value, TensorRef):
            if not prefix or prefix in self.tensors or prefix == METADATA_KEY:
                raise _NotConvertible(f"it holds two tensors named {_brief(prefix)} once flattened")
            self.tensors[prefix] = value
        elif isinstance(value, (dict, list, tuple, _ParameterDict)):
            for key, item in _items(value):
                self.add_tensors(item, f"{prefix}.{key}" if prefix else str(key), depth + 1)
        elif prefix:
            self.dropped.append(prefix)

    def add_scalar(self, key: object, value: object) -> bool:
        """Keep a small top-level value as text metadata, as the file had it; False if it is not one."""
        if isinstance(value, str):
            text = value
        elif isinstance(value, (bool, int, float)):
            text = json.dumps(value)
        else:
            return False
        if len(text) > MAX_METADATA_CHARS:
            return False
        self.metadata[str(key)] = text
        return True


def _items(value: object) -> list[tuple[object, object]]:
    if isinstance(value, _ParameterDict):
        value = value.parameters()
    if isinstance(value, dict):
        # dict.items, not value.items: BUILD can set instance attributes on an OrderedDict.
        return list(dict.items(value))
    return list(enumerate(value))  # type: ignore[arg-type]  # list or tuple


def _flatten(obj: object) -> _Flat:
    """Pick the layout of the rebuilt object and flatten it (see the module docstring)."""
    if isinstance(obj, TensorRef):
        flat = _Flat("other")
        flat.add_tensors(obj, "tensor")
        return flat
    if not isinstance(obj, dict):
        flat = _Flat("other")
        if isinstance(obj, (list, tuple, _ParameterDict)):
            flat.add_tensors(obj, "")
        return flat
    if "string_to_param" in obj:
        return _flatten_embedding(obj)
    if isinstance(dict.get(obj, "clip_l"), TensorRef) and isinstance(dict.get(obj, "clip_g"), TensorRef):
        return _flatten_top_level(obj, _Flat("embedding"), tensor_keys=("clip_l", "clip_g"))
    if _is_hypernetwork(obj):
        return _flatten_hypernetwork(obj)
    if isinstance(dict.get(obj, "state_dict"), (dict, _ParameterDict)):
        flat = _Flat("checkpoint")
        flat.add_tensors(obj["state_dict"], "")
        return _flatten_top_level(obj, flat, tensor_keys=())
    flat = _Flat("other")
    for key, value in dict.items(obj):
        if not flat.add_scalar(key, value):
            flat.add_tensors(value, str(key))
    return flat


def _flatten_top_level(obj: dict, flat: _Flat, tensor_keys: tuple[str, ...]) -> _Flat:
    for key, value in dict.items(obj):
        if key in tensor_keys:
            flat.add_tensors(value, str(key))
        elif key != "state_dict" and not flat.add_scalar(key, value):
            flat.dropped.append(str(key))
    return flat


def _flatten_embedding(obj: dict) -> _Flat:
    params = obj["string_to_param"]
    items = _items(params) if isinstance(params, (dict, _ParameterDict)) else []
    if len(items) != 1 or not isinstance(items[0][1], TensorRef):
        raise _NotConvertible(
            f"it is an embedding with {len(items)} terms; A1111 embeddings hold exactly one"
        )
    flat = _Flat("embedding")
    flat.add_tensors(items[0][1], "emb_params")
    for key in ("name", "step", "sd_checkpoint", "sd_checkpoint_name"):
        if key in obj:
            flat.add_scalar(key, obj[key])
    kept = {"string_to_param", *flat.metadata}
    flat.dropped.extend(str(key) for key in obj if str(key) not in kept)
    return flat


def _is_hypernetwork(obj: dict) -> bool:
    layers = [value for key, value in dict.items(obj) if _is_layer_size(key)]
    return bool(layers) and all(
        isinstance(pair, (list, tuple)) and pair and all(isinstance(sd, dict) for sd in pair)
        for pair in layers
    )


def _is_layer_size(key: object) -> bool:
    return isinstance(key, int) and not isinstance(key, bool)


def _flatten_hypernetwork(obj: dict) -> _Flat:
    flat = _Flat("hypernetwork")
    for key, value in dict.items(obj):
        if _is_layer_size(key):
            for index, state_dict in enumerate(value):
                flat.add_tensors(state_dict, f"{key}.{index}")
            continue
        text = _json_option(value)
        if text is None:
            flat.dropped.append(str(key))
        else:
            flat.metadata[str(key)] = text
    flat.metadata["format"] = HYPERNETWORK_FORMAT
    return flat


def _json_option(value: object) -> str | None:
    """A hypernetwork option as JSON text, or None when it is not plain data or too big."""
    try:
        text = json.dumps(_plain_copy(value), allow_nan=False)
    except ValueError:  # not plain data, or NaN/inf, which have no JSON spelling
        return None
    return text if len(text) <= MAX_HYPERNETWORK_OPTION_CHARS else None


def _plain_copy(item: object, depth: int = 0) -> object:
    """Plain lists and dicts of JSON scalars, rebuilt so json never calls a method the pickle set."""
    if depth > MAX_NESTING:
        raise ValueError("nested too deeply")
    if item is None or isinstance(item, (str, bool, int, float)):
        return item
    if isinstance(item, (list, tuple)):
        return [_plain_copy(x, depth + 1) for x in item]
    if isinstance(item, dict) and all(isinstance(k, str) for k in item):
        return {k: _plain_copy(v, depth + 1) for k, v in dict.items(item)}
    raise ValueError(f"{type(item).__name__} is not plain data")


# --- writing safetensors ------------------------------------------------------------------------


def partial_path(target: Path) -> Path:
    """Where the converter writes before renaming into ``target``; whoever stops it removes this."""
    return target.with_name(f".{target.name}.partial")


def convert_to_safetensors(
    source: str | Path, target: str | Path, *, progress: Progress | None = None
) -> ConversionReport:
    """Read ``source`` with the restricted unpickler and write its tensors to ``target``.

    Raises :class:`UnsafePickle` for a pickle that asks for anything but tensors and plain data,
    :class:`UnsupportedModel` for a readable file with nothing convertible, and
    :class:`ModelFileError` for a file that is not a sound PyTorch checkpoint. Run it in a child
    process (:func:`desktop.library.pickle_convert.convert_pickle_file` does).
    """
    source, target = Path(source), Path(target)
    with open_pickle_checkpoint(source) as checkpoint, _named_errors(source):
        flat = _flatten(checkpoint.obj)
        if not flat.tensors:
            raise UnsupportedModel(
                f"{source.name} holds no tensors, so it is not a model", path=str(source), reason="no_tensors"
            )
        total = _write(checkpoint, flat, target, progress)
    return ConversionReport(
        source=str(source),
        target=str(target),
        container=checkpoint.container,
        layout=flat.layout,
        tensor_count=len(flat.tensors),
        tensor_bytes=total,
        metadata=dict(flat.metadata),
        dropped=_summarised(flat.dropped),
    )


def _summarised(names: list[str], limit: int = 50) -> tuple[str, ...]:
    if len(names) <= limit:
        return tuple(names)
    return (*names[:limit], f"... and {len(names) - limit} more")


def _write(checkpoint: PickleCheckpoint, flat: _Flat, target: Path, progress: Progress | None) -> int:
    # Widest dtypes first, as the safetensors library orders them, so every tensor stays aligned.
    names = sorted(flat.tensors, key=lambda name: (-flat.tensors[name].itemsize, name))
    header: dict[str, object] = {}
    total = 0
    for name in names:
        tensor = flat.tensors[name]
        end = total + tensor.nbytes
        header[name] = {"dtype": tensor.dtype, "shape": list(tensor.shape), "data_offsets": [total, end]}
        total = end
    if flat.metadata:
        header[METADATA_KEY] = flat.metadata
    raw = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    raw += b" " * (-len(raw) % 8)  # the tensor data starts 8-byte aligned, as safetensors writes it
    if len(raw) > MAX_HEADER_BYTES:
        raise _NotConvertible("it has too many tensors for one safetensors header")

    partial = partial_path(target)
    try:
        with partial.open("wb") as out:
            out.write(struct.pack("<Q", len(raw)) + raw)
            done = 0
            if progress is not None:
                progress(done, total)
            for name in names:
                for chunk in checkpoint.tensor_chunks(flat.tensors[name]):
                    out.write(chunk)
                    done += len(chunk)
                    if progress is not None:
                        progress(done, total)
            out.flush()
            os.fsync(out.fileno())
        os.replace(partial, target)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return total


# --- the child process -------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m desktop.library.pickle_reader SOURCE TARGET``: convert, answer in JSON lines.

    stdout carries ``{"progress": [done, total]}`` lines, then one ``{"done": report}`` line, or
    one ``{"error": {"type", "message", "details"}}`` line and exit status 2.
    """
    parser = argparse.ArgumentParser(prog="pickle_reader", description="Convert a torch pickle to safetensors")
    parser.add_argument("source", type=Path)
    parser.add_argument("target", type=Path)
    parser.add_argument("--max-memory", type=int, default=None, help="address-space limit in bytes (Linux)")
    args = parser.parse_args(argv)
    _limit_memory(args.max_memory)
    try:
        report = convert_to_safetensors(args.source, args.target, progress=_ProgressPrinter())
    except DesktopError as exc:
        return _fail(type(exc).__name__, exc.message, exc.details)
    except OSError as exc:
        return _fail("OSError", exc.strerror or str(exc), {"errno": exc.errno, "filename": exc.filename})
    except MemoryError:
        return _fail("MemoryError", "the conversion needed more memory than it may use", {})
    _emit({"done": report.to_json()})
    return 0


class _ProgressPrinter:
    """Report progress on stdout at most ten times a second, and always the first and last step."""

    def __init__(self) -> None:
        self._last = 0.0

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if done in (0, total) or now - self._last >= 0.1:
            self._last = now
            _emit({"progress": [done, total]})


def _emit(message: Mapping[str, object]) -> None:
    sys.stdout.write(json.dumps(message, default=str) + "\n")
    sys.stdout.flush()


def _fail(kind: str, message: str, details: Mapping[str, object]) -> int:
    _emit({"error": {"type": kind, "message": message, "details": dict(details)}})
    return 2


def _limit_memory(limit: int | None) -> None:
    # RLIMIT_AS is enforced on Linux; macOS accepts it but ignores it, so there it is not set.
    if limit is None or not sys.platform.startswith("linux"):
        return
    import resource

    _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


if __name__ == "__main__":
    sys.exit(main())
