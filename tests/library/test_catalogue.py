"""The SQLite model catalogue: scanning A1111/ComfyUI folders, incremental rescans, hashing, lookups.

Real safetensors files (random weights, written with the safetensors package) and real SQLite files
in tmp_path. Covers BAD_INPUTS items 2, 7, 9, 10, 14, 16 and 36.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import sqlite3
import struct
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from desktop.core.cancel import CancelToken
from desktop.library import catalogue as catalogue_module
from desktop.library import hashes
from desktop.library.catalogue import SCHEMA_VERSION, Catalogue, NewerCatalogueError
from desktop.library.catalogue_entry import CatalogueEntry
from desktop.library.hashes import file_hashes, legacy_model_hash, safetensors_tensor_hash

MIB = 1 << 20
HOSTILE = '<img src=x onerror="alert(1)">'
U = "model.diffusion_model."


# --- model files -------------------------------------------------------------------------------


def _random(shape: tuple[int, ...], seed: int, dtype: type = np.float16) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def write(path: Path, tensors: dict[str, np.ndarray], metadata: dict[str, str] | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata=metadata)
    return path


def sd1_checkpoint(path: Path, seed: int = 0) -> Path:
    return write(
        path,
        {
            U + "input_blocks.0.0.weight": _random((8, 4, 3, 3), seed),
            U + "input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight": _random((8, 768), seed + 1),
            "cond_stage_model.transformer.text_model.final_layer_norm.weight": _random((8,), seed + 2),
            "first_stage_model.encoder.conv_in.weight": _random((8, 3, 3, 3), seed + 3),
        },
    )


def sd1_lora(path: Path, seed: int = 0, *, rank: int = 4, metadata: dict[str, str] | None = None) -> Path:
    tensors: dict[str, np.ndarray] = {}
    for i, name in enumerate(
        (
            "lora_te_text_model_encoder_layers_0_self_attn_q_proj",
            "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k",
        )
    ):
        tensors[f"{name}.lora_down.weight"] = _random((rank, 768), seed + i)
        tensors[f"{name}.lora_up.weight"] = _random((8, rank), seed + 10 + i)
        tensors[f"{name}.alpha"] = np.array(rank, dtype=np.float16)
    return write(path, tensors, metadata)


def embedding(path: Path, seed: int = 0) -> Path:
    return write(path, {"emb_params": _random((2, 768), seed, np.float32)})


def vae(path: Path, seed: int = 0) -> Path:
    return write(
        path,
        {
            "encoder.conv_in.weight": _random((8, 3, 3, 3), seed),
            "encoder.conv_out.weight": _random((8, 8, 3, 3), seed + 1),
            "decoder.conv_in.weight": _random((8, 4, 3, 3), seed + 2),
            "decoder.conv_out.weight": _random((3, 8, 3, 3), seed + 3),
            "quant_conv.weight": _random((8, 8, 1, 1), seed + 4),
        },
    )


def diffusers_folder(folder: Path) -> Path:
    (folder / "unet").mkdir(parents=True)
    (folder / "model_index.json").write_text(
        json.dumps({"_class_name": "StableDiffusionPipeline", "unet": ["diffusers", "UNet2DConditionModel"]})
    )
    (folder / "unet" / "config.json").write_text(json.dumps({"cross_attention_dim": 768, "in_channels": 4}))
    write(folder / "unet" / "diffusion_pytorch_model.safetensors", {"conv_in.weight": _random((8, 4, 3, 3), 5)})
    return folder


class _Sentinel:
    """Unpickling this runs code: it creates the sentinel file (BAD_INPUTS 7)."""

    def __init__(self, sentinel: Path) -> None:
        self.sentinel = sentinel

    def __reduce__(self):
        return (Path.touch, (self.sentinel,))


def malicious_pickle(path: Path, sentinel: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps({"state_dict": _Sentinel(sentinel)}, protocol=2))
    return path


def touch_later(path: Path, *, grow: bytes = b"") -> None:
    """Change the file the way an editor or a re-download would: new bytes or at least a new mtime."""
    if grow:
        with path.open("ab") as file:
            file.write(grow)
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))


@pytest.fixture
def catalogue(tmp_path: Path):
    opened = Catalogue(tmp_path / "state" / "catalogue.sqlite")
    yield opened
    opened.close()


def by_name(entries: list[CatalogueEntry]) -> dict[str, CatalogueEntry]:
    return {entry.name: entry for entry in entries}


def count_probes(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    calls: list[Path] = []
    real = catalogue_module.probe_model

    def counting(path):
        calls.append(Path(path))
        return real(path)

    monkeypatch.setattr(catalogue_module, "probe_model", counting)
    return calls


# --- scanning ----------------------------------------------------------------------------------


def test_scan_finds_every_kind_in_a1111_and_comfyui_layouts(tmp_path: Path, catalogue: Catalogue) -> None:
    webui = tmp_path / "stable-diffusion-webui"
    a1111 = webui / "models"
    comfy = tmp_path / "ComfyUI" / "models"
    sd1_checkpoint(a1111 / "Stable-diffusion" / "SD1.5" / "dreamshaper_8.safetensors")
    sd1_lora(a1111 / "Lora" / "add_detail.safetensors")
    sd1_lora(a1111 / "LyCORIS" / "locon_style.safetensors", seed=1)
    vae(a1111 / "VAE" / "vae-ft-mse-840000.safetensors")
    embedding(webui / "embeddings" / "EasyNegative.safetensors")  # A1111 keeps these at the top
    embedding(a1111 / "embeddings" / "badhandv4.safetensors", seed=1)
    malicious_pickle(a1111 / "hypernetworks" / "anime.pt", tmp_path / "sentinel")
    diffusers_folder(a1111 / "Stable-diffusion" / "sd15-diffusers")
    sd1_checkpoint(comfy / "checkpoints" / "comfy_ckpt.safetensors", seed=2)
    sd1_lora(comfy / "loras" / "comfy_lora.safetensors", seed=2)
    vae(comfy / "vae" / "comfy_vae.safetensors", seed=2)
    embedding(comfy / "embeddings" / "comfy_emb.safetensors", seed=2)
    (a1111 / "Lora" / "notes.txt").write_text("not a model")
    (a1111 / "Lora" / "half.safetensors.part").write_bytes(b"partial")

    found = by_name(catalogue.scan([a1111, comfy]))

    kinds = {name: (entry.kind, entry.family, bool(entry.error)) for name, entry in found.items()}
    assert kinds == {
        "dreamshaper_8": ("checkpoint", "sd1", False),
        "sd15-diffusers": ("checkpoint", "sd1", False),
        "comfy_ckpt": ("checkpoint", "sd1", False),
        "add_detail": ("lora", "sd1", False),
        "locon_style": ("lora", "sd1", False),
        "comfy_lora": ("lora", "sd1", False),
        "vae-ft-mse-840000": ("vae", "unknown", False),
        "comfy_vae": ("vae", "unknown", False),
        "EasyNegative": ("embedding", "sd1", False),
        "badhandv4": ("embedding", "sd1", False),
        "comfy_emb": ("embedding", "sd1", False),
        "anime": ("hypernetwork", "unknown", True),
    }
    checkpoint = found["dreamshaper_8"]
    assert checkpoint.path == a1111 / "Stable-diffusion" / "SD1.5" / "dreamshaper_8.safetensors"
    assert checkpoint.description == "Stable Diffusion 1.x checkpoint, fp16, with baked-in VAE"
    assert checkpoint.size == checkpoint.path.stat().st_size
    assert checkpoint.mtime_ns == checkpoint.path.stat().st_mtime_ns
    assert any("matched the checkpoint probe" in reason for reason in checkpoint.reasons)
    folder = found["sd15-diffusers"]
    assert folder.is_folder and folder.hashed and folder.size > 0
    assert catalogue.entry(checkpoint.path) == checkpoint


def test_a_file_in_the_wrong_folder_shows_as_what_it_is_with_the_reason(tmp_path: Path, catalogue: Catalogue) -> None:
    """BAD_INPUTS 12: a LoRA dropped among checkpoints."""
    sd1_lora(tmp_path / "models" / "Stable-diffusion" / "lost_lora.safetensors")
    (entry,) = catalogue.scan([tmp_path / "models"])
    assert (entry.kind, entry.family, entry.error) == ("lora", "sd1", "")
    assert "found in a checkpoint folder, but its contents say it is a LoRA" in entry.reasons


def test_bad_input_2_broken_files_are_listed_with_the_reason_and_the_kind_of_their_folder(
    tmp_path: Path, catalogue: Catalogue
) -> None:
    lora = tmp_path / "models" / "Lora"
    lora.mkdir(parents=True)
    (lora / "empty.safetensors").write_bytes(b"")
    (lora / "huge_header.safetensors").write_bytes(struct.pack("<Q", 10**12) + b"{}")
    truncated = sd1_lora(lora / "truncated.safetensors")
    truncated.write_bytes(truncated.read_bytes()[:-100])
    found = by_name(catalogue.scan([tmp_path / "models"]))
    assert {entry.kind for entry in found.values()} == {"lora"}
    assert "only 0 bytes long" in found["empty"].error
    assert "100 MB limit" in found["huge_header"].error
    assert "incomplete download" in found["truncated"].error
    assert all(entry.description == "" and entry.family == "unknown" for entry in found.values())


def test_unchanged_files_are_not_probed_again_even_after_reopening(tmp_path: Path, monkeypatch) -> None:
    models = tmp_path / "models"
    sd1_checkpoint(models / "Stable-diffusion" / "a.safetensors")
    sd1_lora(models / "Lora" / "b.safetensors")
    probes = count_probes(monkeypatch)
    db = tmp_path / "catalogue.sqlite"
    first = Catalogue(db)
    entries = first.scan([models])
    assert len(probes) == 2
    hashed = first.hash_file(models / "Lora" / "b.safetensors")
    assert hashed is not None and hashed.sha256
    assert by_name(first.scan([models]))["b"].sha256 == hashed.sha256
    assert len(probes) == 2
    first.close()

    again = Catalogue(db)
    rescanned = by_name(again.scan([models]))
    again.close()
    assert len(probes) == 2  # still no header read
    assert rescanned["b"].sha256 == hashed.sha256  # hashes kept
    assert rescanned["a"].description == by_name(entries)["a"].description


def test_a_changed_file_is_probed_again_and_loses_its_hashes(tmp_path: Path, catalogue: Catalogue, monkeypatch) -> None:
    path = sd1_lora(tmp_path / "models" / "Lora" / "style.safetensors")
    catalogue.scan([tmp_path / "models"])
    assert catalogue.hash_file(path).sha256
    probes = count_probes(monkeypatch)

    sd1_checkpoint(path)  # the same name now holds a checkpoint
    touch_later(path)
    (entry,) = catalogue.scan([tmp_path / "models"])

    assert probes == [path]
    assert (entry.kind, entry.sha256, entry.tensor_hash, entry.legacy_hash) == ("checkpoint", "", "", "")
    assert catalogue.unhashed() == [path]


def test_deleted_files_disappear(tmp_path: Path, catalogue: Catalogue) -> None:
    models = tmp_path / "models"
    keep = sd1_lora(models / "Lora" / "keep.safetensors")
    gone = sd1_lora(models / "Lora" / "gone.safetensors", seed=3)
    assert len(catalogue.scan([models])) == 2
    gone.unlink()
    assert [entry.path for entry in catalogue.scan([models])] == [keep]
    assert catalogue.entry(gone) is None
    assert catalogue.unhashed() == [keep]


def test_rescan_of_2000_unchanged_files_is_fast_and_reads_no_header(tmp_path: Path, catalogue: Catalogue, monkeypatch) -> None:
    models = tmp_path / "models"
    blob = sd1_lora(tmp_path / "template.safetensors").read_bytes()
    for i in range(2000):
        folder = models / "Lora" / f"set{i % 20}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"lora {i}.safetensors").write_bytes(blob)
    (models / "Lora" / "set0" / "lora 0.preview.png").write_bytes(b"png")
    assert len(catalogue.scan([models])) == 2000

    def no_probe(path):
        raise AssertionError(f"{path} was probed again")

    monkeypatch.setattr(catalogue_module, "probe_model", no_probe)
    monkeypatch.setattr(catalogue_module, "file_hashes", no_probe)
    started = time.perf_counter()
    entries = catalogue.scan([models])
    elapsed = time.perf_counter() - started
    assert len(entries) == 2000 and elapsed < 1.0, elapsed
    assert by_name(entries)["lora 0"].preview == models / "Lora" / "set0" / "lora 0.preview.png"


def test_scan_reports_progress_and_a_cancel_keeps_the_catalogue(tmp_path: Path, catalogue: Catalogue) -> None:
    models = tmp_path / "models"
    for i in range(3):
        sd1_lora(models / "Lora" / f"l{i}.safetensors", seed=i)
    seen: list[tuple[int, int]] = []
    catalogue.scan([models], progress=lambda done, total: seen.append((done, total)))
    assert seen == [(1, 3), (2, 3), (3, 3)]

    (models / "Lora" / "l0.safetensors").unlink()
    token = CancelToken()
    with pytest.raises(InterruptedError):
        catalogue.scan([models], progress=lambda done, total: token.cancel(), cancel=token)
    # A cancelled scan has not seen every file, so it forgets none.
    assert catalogue.entry(models / "Lora" / "l0.safetensors") is not None
    assert len(catalogue.scan([models])) == 2
    assert catalogue.entry(models / "Lora" / "l0.safetensors") is None


def test_bad_input_16_symlink_loops_do_not_hang_and_the_same_file_is_listed_once(
    tmp_path: Path, catalogue: Catalogue
) -> None:
    models = tmp_path / "models"
    lora = sd1_lora(models / "Lora" / "real.safetensors")
    (models / "Lora" / "up").symlink_to(models)  # loops back above the Lora folder
    (models / "Lora" / "self").symlink_to(models / "Lora")
    (models / "Lora" / "a").symlink_to(models / "Lora" / "b")
    (models / "Lora" / "b").symlink_to(models / "Lora" / "a")  # a dangling pair
    (models / "Lora" / "again.safetensors").symlink_to(lora)
    (models / "Lora" / "dangling.safetensors").symlink_to(models / "nowhere.safetensors")
    second_root = tmp_path / "second"
    (second_root / "Lora").mkdir(parents=True)
    (second_root / "Lora" / "shared").symlink_to(models / "Lora")

    result: list[list[CatalogueEntry]] = []
    worker = threading.Thread(target=lambda: result.append(catalogue.scan([models, second_root, models])))
    worker.start()
    worker.join(timeout=30)
    assert not worker.is_alive(), "the scan hangs on a symlink loop"
    (entry,) = result[0]
    assert entry.path in (lora, models / "Lora" / "again.safetensors")
    assert catalogue.entry(second_root / "Lora" / "shared" / "real.safetensors") is not None


def test_a_symlinked_model_keeps_the_name_of_the_link(tmp_path: Path, catalogue: Catalogue) -> None:
    """Install's "link" mode puts a symlink in the models folder; its name is the model's name."""
    store = sd1_lora(tmp_path / "store" / "0123abcd.safetensors")
    link = tmp_path / "models" / "Lora" / "nice name.safetensors"
    link.parent.mkdir(parents=True)
    link.symlink_to(store)
    (entry,) = catalogue.scan([tmp_path / "models"])
    assert entry.path == link and entry.name == "nice name"
    assert catalogue.hash_file(link).sha256 == hashlib.sha256(store.read_bytes()).hexdigest()


def test_bad_input_7_pickle_files_are_listed_with_an_explanation_and_never_unpickled(
    tmp_path: Path, catalogue: Catalogue
) -> None:
    models = tmp_path / "models"
    sentinel = tmp_path / "sentinel"
    malicious_pickle(models / "Stable-diffusion" / "old.ckpt", sentinel)
    malicious_pickle(models / "Lora" / "old_lora.pt", sentinel)
    malicious_pickle(models / "VAE" / "old_vae.pth", sentinel)
    malicious_pickle(models / "embeddings" / "old_emb.bin", sentinel)
    malicious_pickle(models / "Lora" / "disguised.safetensors", sentinel)  # pickle under a safe name

    found = by_name(catalogue.scan([models]))
    assert {name: entry.kind for name, entry in found.items()} == {
        "old": "checkpoint",
        "old_lora": "lora",
        "old_vae": "vae",
        "old_emb": "embedding",
        "disguised": "lora",
    }
    for entry in found.values():
        assert "is a pickle file: convert it to .safetensors to use it" in entry.error
    hashed = catalogue.hash_file(models / "Stable-diffusion" / "old.ckpt")  # hashing reads bytes, nothing more
    assert hashed.sha256 == hashlib.sha256(hashed.path.read_bytes()).hexdigest() and hashed.tensor_hash == ""
    assert not sentinel.exists()


# --- hashing -----------------------------------------------------------------------------------


def test_hashes_match_hashlib_and_lookups_find_the_file(tmp_path: Path, catalogue: Catalogue) -> None:
    path = sd1_lora(tmp_path / "models" / "Lora" / "big.safetensors", rank=512)  # ~1.6 MB: has a legacy window
    data = path.read_bytes()
    data_start = 8 + struct.unpack("<Q", data[:8])[0]
    catalogue.scan([tmp_path / "models"])
    assert catalogue.unhashed() == [path]
    seen: list[tuple[int, int]] = []

    entry = catalogue.hash_file(path, progress=lambda done, total: seen.append((done, total)))

    assert entry.sha256 == hashlib.sha256(data).hexdigest()
    assert entry.tensor_hash == hashlib.sha256(data[data_start:]).hexdigest() == safetensors_tensor_hash(path)
    assert entry.legacy_hash == hashlib.sha256(data[MIB : MIB + 0x10000]).hexdigest()[:8] == legacy_model_hash(path)
    assert seen[-1] == (len(data), len(data))
    assert catalogue.unhashed() == []
    assert catalogue.entry(path) == entry
    assert [e.path for e in catalogue.find_by_hash(entry.sha256.upper())] == [path]
    for short in (entry.model_hash, entry.network_hash, entry.legacy_hash, entry.sha256):
        assert [e.path for e in catalogue.find_by_short_hash(short)] == [path], short
    for nothing in ("", "abc", "zzzzzzzzzz", "%%%%%%%%%%", "_" * 12, "0" * 10):
        assert catalogue.find_by_short_hash(nothing) == []
    assert catalogue.find_by_hash("0" * 64) == []


@pytest.mark.parametrize("block_size", [7, 1000, 65536, MIB])
def test_one_pass_hashes_agree_across_block_boundaries(tmp_path: Path, monkeypatch, block_size: int) -> None:
    data = os.urandom(MIB + 70_000)
    path = tmp_path / "file.bin"
    path.write_bytes(data)
    monkeypatch.setattr(hashes, "BLOCK_SIZE", block_size)
    result = file_hashes(path, 12_345)
    assert result.sha256 == hashlib.sha256(data).hexdigest()
    assert result.tensor_sha256 == hashlib.sha256(data[12_345:]).hexdigest()
    assert result.legacy == hashlib.sha256(data[MIB : MIB + 0x10000]).hexdigest()[:8]
    assert file_hashes(path, None).tensor_sha256 == ""


def test_hash_cancel_stores_nothing(tmp_path: Path, catalogue: Catalogue, monkeypatch) -> None:
    monkeypatch.setattr(hashes, "BLOCK_SIZE", 4096)
    path = sd1_lora(tmp_path / "models" / "Lora" / "l.safetensors", rank=64)
    catalogue.scan([tmp_path / "models"])
    token = CancelToken()
    with pytest.raises(InterruptedError):
        catalogue.hash_file(path, progress=lambda done, total: token.cancel(), cancel=token)
    assert catalogue.entry(path).sha256 == ""
    assert catalogue.unhashed() == [path]


def test_a_file_changing_while_it_is_hashed_is_not_stored(tmp_path: Path, catalogue: Catalogue, monkeypatch) -> None:
    monkeypatch.setattr(hashes, "BLOCK_SIZE", 4096)
    path = sd1_lora(tmp_path / "models" / "Lora" / "l.safetensors", rank=64)
    catalogue.scan([tmp_path / "models"])

    entry = catalogue.hash_file(path, progress=lambda done, total: touch_later(path, grow=b"x") if done == 4096 else None)

    assert entry is not None and entry.sha256 == ""
    assert catalogue.entry(path).sha256 == ""
    # Changed since the scan (not during the hash): also left for the next scan to re-probe.
    assert catalogue.hash_file(path).sha256 == ""
    catalogue.scan([tmp_path / "models"])
    assert catalogue.hash_file(path).sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_file_removed_while_it_is_hashed_gives_none(tmp_path: Path, catalogue: Catalogue, monkeypatch) -> None:
    monkeypatch.setattr(hashes, "BLOCK_SIZE", 4096)
    path = sd1_lora(tmp_path / "models" / "Lora" / "l.safetensors", rank=64)
    other = sd1_lora(tmp_path / "models" / "Lora" / "m.safetensors", seed=9)
    catalogue.scan([tmp_path / "models"])
    assert catalogue.hash_file(path, progress=lambda done, total: path.unlink(missing_ok=True)) is None
    assert catalogue.entry(path) is None and catalogue.unhashed() == [other]
    other.unlink()
    assert catalogue.hash_file(other) is None
    assert catalogue.hash_file(tmp_path / "never catalogued.safetensors") is None


def test_unhashed_lists_smallest_first_and_skips_diffusers_folders(tmp_path: Path, catalogue: Catalogue) -> None:
    models = tmp_path / "models"
    big = sd1_checkpoint(models / "Stable-diffusion" / "a_big.safetensors")
    small = embedding(models / "embeddings" / "z_small.safetensors")
    diffusers_folder(models / "Stable-diffusion" / "folder")
    catalogue.scan([models])
    assert catalogue.unhashed() == [small, big]
    assert catalogue.hash_file(models / "Stable-diffusion" / "folder").is_folder


def test_the_catalogue_is_created_on_one_thread_and_used_from_others(tmp_path: Path, catalogue: Catalogue) -> None:
    path = sd1_lora(tmp_path / "models" / "Lora" / "l.safetensors")
    errors: list[BaseException] = []
    hashed: list[CatalogueEntry] = []

    def work() -> None:
        try:
            catalogue.scan([tmp_path / "models"])
            hashed.append(catalogue.hash_file(path))
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    def look_up() -> None:
        try:
            for _ in range(200):
                catalogue.find_by_hash("0" * 64)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=work), threading.Thread(target=look_up)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == [] and hashed[0].sha256
    assert catalogue.find_by_hash(hashed[0].sha256)[0].path == path


# --- the database file -------------------------------------------------------------------------


def test_the_database_uses_wal_and_records_its_schema_version(tmp_path: Path, catalogue: Catalogue) -> None:
    sd1_lora(tmp_path / "models" / "Lora" / "l.safetensors")
    catalogue.scan([tmp_path / "models"])
    with sqlite3.connect(tmp_path / "state" / "catalogue.sqlite") as reader:
        assert reader.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert reader.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
        assert reader.execute("SELECT count(*) FROM models").fetchone() == (1,)


def test_bad_input_36_a_catalogue_from_a_newer_version_is_refused_and_left_untouched(tmp_path: Path) -> None:
    db = tmp_path / "catalogue.sqlite"
    with sqlite3.connect(db) as writer:
        writer.execute("CREATE TABLE models (future TEXT, columns BLOB)")
        writer.execute("INSERT INTO models VALUES ('kept', x'00')")
        writer.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    writer.close()
    before, stamp = db.read_bytes(), db.stat().st_mtime_ns

    with pytest.raises(NewerCatalogueError) as caught:
        Catalogue(db)

    assert "newer version of Diffusion Desktop" in str(caught.value) and str(db) in str(caught.value)
    assert db.read_bytes() == before and db.stat().st_mtime_ns == stamp
    assert sorted(p.name for p in tmp_path.iterdir()) == ["catalogue.sqlite"]


@pytest.mark.parametrize("garbage", [b"\x00\xffnot sqlite" * 500, b"SQLite format 3\x00" + os.urandom(4000)])
def test_a_corrupt_database_is_moved_aside_and_rebuilt(tmp_path: Path, garbage: bytes) -> None:
    db = tmp_path / "catalogue.sqlite"
    db.write_bytes(garbage)
    (tmp_path / "catalogue.sqlite-wal").write_bytes(b"stale journal")
    sd1_lora(tmp_path / "models" / "Lora" / "l.safetensors")

    catalogue = Catalogue(db)
    try:
        (entry,) = catalogue.scan([tmp_path / "models"])
    finally:
        catalogue.close()

    assert entry.kind == "lora"
    (aside,) = tmp_path.glob("catalogue.sqlite.corrupt-*[0-9]")
    assert aside.read_bytes() == garbage
    reopened = Catalogue(db)  # the rebuilt file is sound, and the stale journal was not replayed into it
    assert [e.path for e in reopened.scan([tmp_path / "models"])] == [entry.path]
    reopened.close()


def test_an_unopenable_database_path_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "catalogue.sqlite").mkdir()
    with pytest.raises(Exception, match="The model catalogue .* cannot be opened"):
        Catalogue(tmp_path / "catalogue.sqlite")
    assert (tmp_path / "catalogue.sqlite").is_dir()  # not "moved aside": it is not ours


# --- names and sidecars ------------------------------------------------------------------------


def test_bad_input_14_unicode_emoji_and_long_names(tmp_path: Path, catalogue: Catalogue) -> None:
    lora = tmp_path / "models" / "Lora" / "中文 目录"
    names = ["水彩 🎨, v1:2", "x" * 200, "café ✨ (final) [v2]"]
    for i, name in enumerate(names):
        sd1_lora(lora / f"{name}.safetensors", seed=i)
    (lora / "水彩 🎨, v1:2.preview.png").write_bytes(b"png")
    (lora / "水彩 🎨, v1:2.json").write_text(json.dumps({"activation text": "水彩画"}), encoding="utf-8")

    found = by_name(catalogue.scan([tmp_path / "models"]))

    assert sorted(found) == sorted(names)
    chinese = found["水彩 🎨, v1:2"]
    assert chinese.preview == lora / "水彩 🎨, v1:2.preview.png"
    assert chinese.trigger_words == ("水彩画",)
    hashed = catalogue.hash_file(chinese.path)
    assert catalogue.find_by_short_hash(hashed.network_hash)[0].path == chinese.path


def test_a_file_name_that_is_not_utf8_is_listed(tmp_path: Path, catalogue: Catalogue) -> None:
    """BAD_INPUTS 14 on filesystems that allow any bytes (Linux); macOS volumes refuse such names."""
    folder = tmp_path / "models" / "Lora"
    folder.mkdir(parents=True)
    try:
        target = os.path.join(os.fsencode(folder), b"latin1 \xe9t\xe9.safetensors")
        with open(target, "wb") as file:
            file.write(b"")
    except OSError:
        pytest.skip("this filesystem only takes UTF-8 names")
    (entry,) = catalogue.scan([tmp_path / "models"])
    assert os.fsencode(entry.path) == target and "only 0 bytes long" in entry.error
    assert catalogue.entry(entry.path) == entry


def test_sidecars_and_metadata_reach_the_entry_literally_and_cut(tmp_path: Path, catalogue: Catalogue) -> None:
    """BAD_INPUTS 9 (HTML shown as text) and 10 (megabytes of metadata cut for display)."""
    lora = tmp_path / "models" / "Lora"
    cover = "data:image/png;base64," + "B" * 2_000_000
    tags = json.dumps({"1_x": {f"tag{i}": i for i in range(20_000)}})
    path = sd1_lora(
        lora / "evil.safetensors",
        metadata={
            "ss_output_name": HOSTILE,
            "ssmd_cover_images": json.dumps([cover]),
            "ss_tag_frequency": tags,
            "modelspec.trigger_phrase": "from header, shared",
        },
    )
    (lora / "evil.civitai.info").write_text(
        json.dumps({"trainedWords": [f"{HOSTILE}, shared"], "baseModel": "SD 1.5", "modelId": 7, "id": 8}),
        encoding="utf-8",
    )
    (lora / "evil.txt").write_text(HOSTILE, encoding="utf-8")
    (lora / "garbage.civitai.info").write_bytes(b"\xff{{{ not json")
    sd1_lora(lora / "garbage.safetensors", seed=4)

    found = by_name(catalogue.scan([tmp_path / "models"]))

    evil = found["evil"]
    assert evil.trigger_words == (HOSTILE, "shared", "from header")
    assert evil.notes == HOSTILE and evil.base_model == "SD 1.5"
    assert evil.civitai_url == "https://civitai.com/models/7?modelVersionId=8"
    assert evil.metadata == ()  # lists stay small; the details view asks for one entry
    details = dict(catalogue.entry(path).metadata)
    assert details["ss_output_name"] == HOSTILE
    assert details["ssmd_cover_images"] == f"(image data, {len(json.dumps([cover]))} bytes)"
    assert details["ss_tag_frequency"].endswith(f"… ({len(tags)} characters)")
    assert len(details["ss_tag_frequency"]) < 2100
    garbage = found["garbage"]
    assert (garbage.kind, garbage.error, garbage.trigger_words, garbage.civitai_url) == ("lora", "", (), "")


def test_sidecars_are_read_again_on_every_scan(tmp_path: Path, catalogue: Catalogue) -> None:
    lora = tmp_path / "models" / "Lora"
    sd1_lora(lora / "l.safetensors")
    assert catalogue.scan([tmp_path / "models"])[0].preview is None
    (lora / "l.png").write_bytes(b"png")
    assert catalogue.scan([tmp_path / "models"])[0].preview == lora / "l.png"
