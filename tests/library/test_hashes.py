"""A1111 / kohya / civitai hashes, checked against hashlib on the same bytes computed here."""

from __future__ import annotations

import hashlib
import os
import struct
import threading
import tracemalloc
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from desktop.core.errors import ModelFileError
from desktop.library.hashes import (
    BLOCK_SIZE,
    autov2_hash,
    legacy_model_hash,
    safetensors_tensor_hash,
    sha256_file,
    short_network_hash,
)

MIB = 1 << 20


def random_file(path: Path, size: int) -> bytes:
    data = os.urandom(size)
    path.write_bytes(data)
    return data


def test_sha256_file_matches_hashlib_and_autov2_is_its_first_10_chars(tmp_path: Path) -> None:
    data = random_file(tmp_path / "model.safetensors", 3 * MIB + 12345)
    expected = hashlib.sha256(data).hexdigest()

    full = sha256_file(tmp_path / "model.safetensors")

    assert full == expected
    assert autov2_hash(full) == expected[:10]


def test_sha256_of_an_empty_file(tmp_path: Path) -> None:
    (tmp_path / "empty").write_bytes(b"")
    calls: list[tuple[int, int]] = []
    assert (
        sha256_file(tmp_path / "empty", progress=lambda d, t: calls.append((d, t)))
        == hashlib.sha256().hexdigest()
    )
    assert calls == [(0, 0)]


def test_legacy_hash_reads_64_kib_at_offset_1_mib(tmp_path: Path) -> None:
    data = random_file(tmp_path / "old.ckpt", MIB + MIB // 5)  # > 1.1 MiB
    assert legacy_model_hash(tmp_path / "old.ckpt") == hashlib.sha256(data[0x100000:0x110000]).hexdigest()[:8]


def test_legacy_hash_of_a_file_ending_inside_the_window(tmp_path: Path) -> None:
    data = random_file(tmp_path / "mid.bin", MIB + 100)
    assert legacy_model_hash(tmp_path / "mid.bin") == hashlib.sha256(data[MIB:]).hexdigest()[:8]


def test_legacy_hash_of_a_file_under_1_mib_hashes_nothing_like_a1111(tmp_path: Path) -> None:
    random_file(tmp_path / "small.bin", 1000)
    # A1111 seeks past the end, reads b"" and hashes that.
    assert legacy_model_hash(tmp_path / "small.bin") == hashlib.sha256(b"").hexdigest()[:8] == "e3b0c442"


def _lora_tensors() -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return {
        "lora_unet_x.lora_down.weight": torch.randn(4, 64, generator=generator).half(),
        "lora_unet_x.lora_up.weight": torch.randn(64, 4, generator=generator).half(),
        "lora_unet_x.alpha": torch.tensor(4.0),
    }


def test_tensor_hash_is_sha256_of_the_bytes_after_the_header(tmp_path: Path) -> None:
    path = tmp_path / "lora.safetensors"
    save_file(_lora_tensors(), str(path), metadata={"ss_output_name": "lora"})
    blob = path.read_bytes()
    (header_length,) = struct.unpack("<Q", blob[:8])
    expected = hashlib.sha256(blob[8 + header_length :]).hexdigest()

    full = safetensors_tensor_hash(path)

    assert full == expected
    assert short_network_hash(full) == expected[:12]


def test_tensor_hash_ignores_metadata_but_the_file_hash_does_not(tmp_path: Path) -> None:
    # Why kohya hashes tensors only: editing metadata must not change the LoRA's identity.
    plain, tagged = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    save_file(_lora_tensors(), str(plain))
    save_file(_lora_tensors(), str(tagged), metadata={"ss_tag_frequency": '{"cat": 3}'})
    assert safetensors_tensor_hash(plain) == safetensors_tensor_hash(tagged)
    assert sha256_file(plain) != sha256_file(tagged)


def test_tensor_hash_refuses_a_file_that_is_not_safetensors(tmp_path: Path) -> None:
    random_file(tmp_path / "noise.safetensors", 5000)
    with pytest.raises(ModelFileError):
        safetensors_tensor_hash(tmp_path / "noise.safetensors")


def test_progress_is_monotone_and_reaches_the_total(tmp_path: Path) -> None:
    size = 3 * BLOCK_SIZE + 777
    random_file(tmp_path / "big", size)
    calls: list[tuple[int, int]] = []

    sha256_file(tmp_path / "big", progress=lambda done, total: calls.append((done, total)))

    assert len(calls) == 4
    assert all(total == size for _, total in calls)
    done = [d for d, _ in calls]
    assert done == sorted(done)
    assert done[-1] == size


def test_tensor_hash_progress_counts_only_tensor_bytes(tmp_path: Path) -> None:
    path = tmp_path / "t.safetensors"
    save_file({"w": torch.zeros(600_000)}, str(path))  # 2.4 MB of data
    calls: list[tuple[int, int]] = []
    safetensors_tensor_hash(path, progress=lambda done, total: calls.append((done, total)))
    assert calls[-1] == (2_400_000, 2_400_000)


def test_cancel_already_set_raises_before_reading(tmp_path: Path) -> None:
    random_file(tmp_path / "big", 2 * BLOCK_SIZE)
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(InterruptedError):
        sha256_file(tmp_path / "big", cancel=cancel)


def test_cancel_during_hashing_stops_at_the_next_block(tmp_path: Path) -> None:
    random_file(tmp_path / "big", 5 * BLOCK_SIZE)
    cancel = threading.Event()
    calls: list[int] = []

    def progress(done: int, total: int) -> None:
        calls.append(done)
        if len(calls) == 2:
            cancel.set()

    with pytest.raises(InterruptedError):
        sha256_file(tmp_path / "big", progress=progress, cancel=cancel)
    assert calls == [BLOCK_SIZE, 2 * BLOCK_SIZE]


def test_hashing_streams_instead_of_reading_the_whole_file(tmp_path: Path) -> None:
    random_file(tmp_path / "big", 24 * MIB)
    tracemalloc.start()
    try:
        sha256_file(tmp_path / "big")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * MIB


@pytest.mark.parametrize("function", [sha256_file, legacy_model_hash, safetensors_tensor_hash])
def test_missing_file_is_a_model_file_error(tmp_path: Path, function) -> None:
    with pytest.raises(ModelFileError) as caught:
        function(tmp_path / "gone.safetensors")
    assert "gone.safetensors" in caught.value.message
