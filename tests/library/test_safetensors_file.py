"""Strict safetensors header reader: real files from the safetensors library, and broken ones by hand.

Covers BAD_INPUTS.md items 1-6 (model import); the test names carry the item number.
"""

from __future__ import annotations

import json
import struct
import tracemalloc
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors import safe_open
from safetensors.torch import save_file

from desktop.core.errors import ModelFileError
from desktop.library.safetensors_file import (
    DTYPE_SIZES,
    MAX_HEADER_BYTES,
    SafetensorsHeader,
    TensorInfo,
    read_safetensors_header,
)


def write_raw(path: Path, header: bytes | dict, data: bytes = b"", *, length: int | None = None) -> Path:
    """Write a file in safetensors framing with any header bytes and any declared length."""
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    declared = len(raw) if length is None else length
    path.write_bytes(struct.pack("<Q", declared) + raw + data)
    return path


def entry(dtype: str, shape: list, begin: int, end: int) -> dict:
    return {"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}


def rejected(path: Path) -> ModelFileError:
    with pytest.raises(ModelFileError) as caught:
        read_safetensors_header(path)
    error = caught.value
    assert path.name in error.message, "the message names the file"
    assert "\n" not in error.message, "the message is one line"
    assert error.details["path"] == str(path)
    return error


# --- files written by the safetensors library ------------------------------------------------


def _all_dtype_tensors() -> dict[str, torch.Tensor]:
    base = torch.arange(6, dtype=torch.float32).reshape(2, 3)
    return {
        "f64": base.double(),
        "f32": base,
        "f16": base.half(),
        "bf16": base.bfloat16(),
        "i64": base.long(),
        "i32": base.int(),
        "i16": base.short(),
        "i8": base.to(torch.int8),
        "u8": base.to(torch.uint8),
        "bool": base > 2,
        "f8_e4m3": base.to(torch.float8_e4m3fn),
        "f8_e5m2": base.to(torch.float8_e5m2),
        "scalar": torch.tensor(3.5),
        "empty": torch.zeros(0, 4),
    }


def test_reads_every_dtype_from_a_file_written_by_safetensors(tmp_path: Path) -> None:
    path = tmp_path / "all.safetensors"
    tensors = _all_dtype_tensors()
    save_file(tensors, str(path), metadata={"ss_network_dim": "8", "note": "héllo"})

    header = read_safetensors_header(path)

    assert isinstance(header, SafetensorsHeader)
    assert header.path == path
    assert header.file_size == path.stat().st_size
    assert header.data_start == 8 + header.header_length
    assert dict(header.metadata) == {"ss_network_dim": "8", "note": "héllo"}
    assert set(header.tensors) == set(tensors)
    blob = path.read_bytes()
    with safe_open(str(path), "pt") as reference:
        for name, tensor in tensors.items():
            info = header.tensors[name]
            assert isinstance(info, TensorInfo)
            assert info.name == name
            assert info.shape == tuple(reference.get_slice(name).get_shape())
            assert info.dtype == reference.get_slice(name).get_dtype()
            assert info.nbytes == tensor.numel() * tensor.element_size()
            # begin/end are absolute: the bytes there are the tensor's own bytes.
            assert blob[info.begin : info.end] == tensor.reshape(-1).view(torch.uint8).numpy().tobytes()


def test_dtype_sizes_cover_the_safetensors_dtypes() -> None:
    assert dict(DTYPE_SIZES) == {
        "F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1,
        "U8": 1, "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1,
    }  # fmt: skip


def test_file_without_tensors_or_metadata_is_valid(tmp_path: Path) -> None:
    header = read_safetensors_header(write_raw(tmp_path / "empty.safetensors", {}))
    assert dict(header.tensors) == {}
    assert dict(header.metadata) == {}


def test_header_may_be_padded_with_trailing_spaces(tmp_path: Path) -> None:
    # The safetensors library pads headers to 8-byte alignment with spaces.
    raw = b'{"a":' + json.dumps(entry("U8", [2], 0, 2)).encode() + b"}   "
    path = write_raw(tmp_path / "padded.safetensors", raw, b"xy")
    assert read_safetensors_header(path).tensors["a"].shape == (2,)


_DTYPES = {
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "U8": torch.uint8,
}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    specs=st.dictionaries(
        st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=12).filter(
            lambda s: s != "__metadata__"
        ),
        st.tuples(st.sampled_from(sorted(_DTYPES)), st.lists(st.integers(0, 5), max_size=3)),
        min_size=1,
        max_size=6,
    )
)
def test_property_agrees_with_safetensors_on_random_files(tmp_path: Path, specs: dict) -> None:
    path = tmp_path / "random.safetensors"
    tensors = {name: torch.zeros(shape, dtype=_DTYPES[dtype]) for name, (dtype, shape) in specs.items()}
    save_file(tensors, str(path))
    header = read_safetensors_header(path)
    assert {n: (t.dtype, list(t.shape)) for n, t in header.tensors.items()} == {
        n: (d, s) for n, (d, s) in specs.items()
    }


# --- BAD_INPUTS item 1: too short ------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, 7])
def test_bad_input_1_empty_or_shorter_than_8_bytes(tmp_path: Path, size: int) -> None:
    path = tmp_path / "short.safetensors"
    path.write_bytes(b"\x01" * size)
    error = rejected(path)
    assert "not a valid safetensors file" in error.message
    assert error.details["reason"] == "too_short"


def test_missing_file(tmp_path: Path) -> None:
    error = rejected(tmp_path / "nowhere.safetensors")
    assert error.details["reason"] == "missing"


def test_directory_is_not_a_file(tmp_path: Path) -> None:
    folder = tmp_path / "folder.safetensors"
    folder.mkdir()
    assert rejected(folder).details["reason"] == "directory"


# --- BAD_INPUTS item 2: absurd header length -------------------------------------------------


def test_bad_input_2_header_longer_than_the_file(tmp_path: Path) -> None:
    path = write_raw(tmp_path / "cut.safetensors", b'{"a": 1}', length=5000)
    error = rejected(path)
    assert "truncated or not a safetensors file" in error.message


@pytest.mark.parametrize("length", [MAX_HEADER_BYTES + 1, 2**63, 2**64 - 1])
def test_bad_input_2_header_over_100_mb_is_refused_without_allocating_it(tmp_path: Path, length: int) -> None:
    path = write_raw(tmp_path / "huge.safetensors", b"{}", length=length)
    with path.open("r+b") as file:  # sparse: a file big enough that only the 100 MB cap can refuse it
        file.truncate(min(length, 2**40) + 16)
    tracemalloc.start()
    try:
        error = rejected(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "truncated or not a safetensors file" in error.message
    assert error.details["reason"] == "header_too_large"
    assert peak < 1_000_000


# --- BAD_INPUTS item 3: not JSON -------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (b" {}", "leading space"),
        (b"[1, 2]", "array"),
        (b"PK\x03\x04junk", "zip bytes"),
        (b'{"a": "\xff\xfe"}', "invalid UTF-8"),
        (b'{"a": ', "truncated JSON"),
        (b'{"a": 1} {"b": 2}', "two documents"),
        (b'{"a": NaN}', "NaN is not JSON"),
    ],
)
def test_bad_input_3_header_not_a_json_object(tmp_path: Path, raw: bytes, why: str) -> None:
    error = rejected(write_raw(tmp_path / "bad.safetensors", raw))
    assert error.details["reason"] == "bad_header", why


def test_bad_input_3_deeply_nested_header(tmp_path: Path) -> None:
    raw = b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    assert rejected(write_raw(tmp_path / "deep.safetensors", raw)).details["reason"] == "bad_header"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    header=st.one_of(
        st.binary(max_size=64),
        st.recursive(
            st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=6),
            lambda inner: st.lists(inner, max_size=4)
            | st.dictionaries(st.text(max_size=6), inner, max_size=4),
            max_leaves=12,
        ).map(lambda value: json.dumps({"t": value, "__metadata__": value}).encode()),
    ),
    data=st.binary(max_size=16),
    length_delta=st.integers(-4, 4),
)
def test_property_any_bytes_give_a_header_or_a_model_file_error(
    tmp_path: Path, header: bytes, data: bytes, length_delta: int
) -> None:
    """Items 1-5 in general: whatever the bytes, the reader answers with a header or ModelFileError."""
    path = write_raw(tmp_path / "fuzz.safetensors", header, data, length=max(0, len(header) + length_delta))
    try:
        read_safetensors_header(path)
    except ModelFileError as error:
        assert "\n" not in error.message


# --- BAD_INPUTS item 4: duplicate names ------------------------------------------------------


def test_bad_input_4_duplicate_tensor_names(tmp_path: Path) -> None:
    one = json.dumps(entry("U8", [1], 0, 1))
    raw = f'{{"w": {one}, "w": {one}}}'.encode()
    error = rejected(write_raw(tmp_path / "dup.safetensors", raw, b"x"))
    assert error.details["reason"] == "duplicate_key"
    assert "'w'" in error.message


def test_bad_input_4_duplicate_names_spelled_differently(tmp_path: Path) -> None:
    # "\u0077" decodes to "w": the duplicate is only visible after JSON decoding.
    one = json.dumps(entry("U8", [1], 0, 1))
    raw = f'{{"w": {one}, "\\u0077": {one}}}'.encode()
    assert rejected(write_raw(tmp_path / "dup.safetensors", raw, b"x")).details["reason"] == "duplicate_key"


def test_bad_input_4_duplicate_metadata_keys(tmp_path: Path) -> None:
    raw = b'{"__metadata__": {"k": "a", "k": "b"}}'
    assert rejected(write_raw(tmp_path / "dup.safetensors", raw)).details["reason"] == "duplicate_key"


# --- BAD_INPUTS item 5: offsets --------------------------------------------------------------


@pytest.mark.parametrize(
    ("tensors", "data", "reason"),
    [
        ({"a": entry("F32", [2], 0, 8), "b": entry("F32", [2], 4, 12)}, 12, "overlap"),
        ({"a": entry("F32", [2], 0, 8), "b": entry("F32", [2], 12, 20)}, 20, "gap"),
        ({"a": entry("F32", [2], 4, 12)}, 12, "gap"),  # leading gap
        ({"a": entry("F32", [2], 0, 12)}, 12, "bad_size"),  # dtype x shape != bytes
        ({"a": entry("F16", [3, 3], 0, 36)}, 36, "bad_size"),
        ({"a": entry("F32", [2], 8, 0)}, 8, "bad_offsets"),  # begin > end
        ({"a": entry("F32", [2], -8, 0)}, 8, "bad_offsets"),
        ({"a": entry("F32", [2], 0, 8), "b": {"dtype": "F32", "shape": [2]}}, 8, "bad_offsets"),
        ({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4, 8]}}, 4, "bad_offsets"),
        ({"a": entry("F32", [2], 0, 8)}, 9, "trailing_bytes"),
    ],
)
def test_bad_input_5_offsets(tmp_path: Path, tensors: dict, data: int, reason: str) -> None:
    error = rejected(write_raw(tmp_path / "offsets.safetensors", tensors, b"\0" * data))
    assert error.details["reason"] == reason


def test_bad_input_5_offsets_beyond_the_data(tmp_path: Path) -> None:
    error = rejected(write_raw(tmp_path / "far.safetensors", {"a": entry("U8", [4], 0, 4)}, b"\0\0"))
    assert error.details["reason"] == "incomplete"


def test_zero_sized_tensors_may_share_an_offset(tmp_path: Path) -> None:
    tensors = {"e1": entry("F32", [0], 0, 0), "e2": entry("F32", [0, 3], 0, 0), "a": entry("U8", [1], 0, 1)}
    header = read_safetensors_header(write_raw(tmp_path / "zero.safetensors", tensors, b"\0"))
    assert header.tensors["e2"].nbytes == 0


@pytest.mark.parametrize(
    ("description", "reason"),
    [
        (entry("F4", [1], 0, 1), "bad_dtype"),
        (entry("float32", [1], 0, 4), "bad_dtype"),
        (entry(["F32"], [1], 0, 4), "bad_dtype"),  # unhashable: must not crash the lookup
        (entry("F32", [-1], 0, 4), "bad_shape"),
        (entry("F32", [1.0], 0, 4), "bad_shape"),
        (entry("F32", [True], 0, 4), "bad_shape"),
        (entry("F32", "4", 0, 4), "bad_shape"),
        ([1, 2], "bad_tensor"),
    ],
)
def test_invalid_tensor_descriptions(tmp_path: Path, description: object, reason: str) -> None:
    error = rejected(write_raw(tmp_path / "desc.safetensors", {"t": description}, b"\0" * 4))
    assert error.details["reason"] == reason


@pytest.mark.parametrize("metadata", [["a"], {"steps": 3}, {"a": None}, {"a": {"b": "c"}}, "text"])
def test_metadata_must_map_text_to_text(tmp_path: Path, metadata: object) -> None:
    error = rejected(write_raw(tmp_path / "meta.safetensors", {"__metadata__": metadata}))
    assert error.details["reason"] == "bad_metadata"


# --- BAD_INPUTS item 6: partial downloads ----------------------------------------------------


@pytest.mark.parametrize("suffix", [".crdownload", ".part", ".incomplete", ".download", ".PART"])
def test_bad_input_6_partial_download_names(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"model.safetensors{suffix}"
    save_file({"a": torch.zeros(2)}, str(path))
    error = rejected(path)
    assert "incomplete download" in error.message
    assert error.details["reason"] == "partial_download"


def test_bad_input_6_file_shorter_than_its_header_says(tmp_path: Path) -> None:
    path = tmp_path / "cut.safetensors"
    save_file({"a": torch.ones(64), "b": torch.ones(64)}, str(path))
    with path.open("r+b") as file:
        file.truncate(path.stat().st_size - 100)
    error = rejected(path)
    assert "incomplete download: the file is shorter than its header says" in error.message
    assert error.details["reason"] == "incomplete"
