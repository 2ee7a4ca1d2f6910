"""Converting pickle checkpoints to safetensors without ever running their code.

The files are real: written by ``torch.save`` (zip and legacy formats), or hand-built pickles and
zips for the hostile cases. Converted files are read back with ``safetensors.torch`` and compared
byte for byte. Covers BAD_INPUTS.md items 7 (malicious pickle) and 8 (odd containers).
"""

from __future__ import annotations

import io
import json
import os
import pickle
import struct
import subprocess
import sys
import threading
import time
import types
import zipfile
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from desktop.core.cancel import CancelToken, Cancelled
from desktop.core.errors import ModelFileError, UnsupportedModel
from desktop.library.pickle_convert import convert_pickle_file
from desktop.library.pickle_reader import (
    HYPERNETWORK_FORMAT,
    UnsafePickle,
    convert_to_safetensors,
    partial_path,
    strided_copy,
)
from desktop.library.probe import probe_model
from desktop.library.safetensors_file import read_safetensors_header
from desktop.library.taxonomy import ModelFamily, ModelKind
from tests.fixtures.ldm_layout import sd1_checkpoint_shapes

REPO_ROOT = Path(__file__).resolve().parents[2]
FORMATS = pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])


def save(obj: object, path: Path, *, legacy: bool = False) -> Path:
    torch.save(obj, path, _use_new_zipfile_serialization=not legacy)
    return path


def assert_same_tensors(converted: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> None:
    assert sorted(converted) == sorted(expected)
    for name, want in expected.items():
        got = converted[name]
        assert got.dtype == want.dtype, name
        assert got.shape == want.shape, name
        # Compare bytes, so that NaNs, -0.0 and float8 compare exactly too.
        assert raw_bytes(got) == raw_bytes(want), name


def raw_bytes(tensor: torch.Tensor) -> list[int]:
    return tensor.detach().contiguous().reshape(-1).view(torch.uint8).tolist()


def outputs_left(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.suffix != ".ckpt" and p.suffix != ".pt")


# --- what converts -------------------------------------------------------------------------------


def tiny_sd1_state_dict() -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    shapes = sd1_checkpoint_shapes(tiny=True, with_vae=False)
    return {name: torch.randn(shape, generator=generator).to(torch.float16) for name, shape in shapes.items()}


@pytest.fixture
def lightning_module(monkeypatch: pytest.MonkeyPatch) -> type:
    """A class that pickles as Lightning's ModelCheckpoint, as old LDM checkpoints key their callbacks."""
    module = types.ModuleType("pytorch_lightning.callbacks.model_checkpoint")

    class ModelCheckpoint:
        def __init__(self) -> None:
            self.best_model_score = torch.tensor(0.25)
            self.dirpath = "/logs/checkpoints"

    ModelCheckpoint.__module__, ModelCheckpoint.__qualname__ = module.__name__, "ModelCheckpoint"
    module.ModelCheckpoint = ModelCheckpoint  # type: ignore[attr-defined]
    for parent in ("pytorch_lightning", "pytorch_lightning.callbacks"):  # pickle imports the module by name
        monkeypatch.setitem(sys.modules, parent, types.ModuleType(parent))
    monkeypatch.setitem(sys.modules, module.__name__, module)
    return ModelCheckpoint


def test_ldm_checkpoint_converts_in_a_child_from_any_folder_and_is_then_probed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, lightning_module: type
) -> None:
    state_dict = tiny_sd1_state_dict()
    checkpoint = {
        "state_dict": state_dict,
        "global_step": np.int64(840000),  # numpy scalars appear in real LDM checkpoints
        "epoch": 5,
        "pytorch-lightning_version": "1.4.2",
        "optimizer_states": [{"state": {0: {"exp_avg": torch.ones(3)}}}],
        "callbacks": {lightning_module: {"best_model_score": torch.tensor(0.25)}},
        "lr_schedulers": [],
    }
    source = save(checkpoint, tmp_path / "v1-tiny.ckpt")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # the child must find the desktop package without the repo as cwd
    seen: list[tuple[int, int]] = []

    target = convert_pickle_file(
        source, tmp_path / "v1-tiny.safetensors", progress=lambda done, total: seen.append((done, total))
    )

    assert_same_tensors(load_file(target), state_dict)
    metadata = read_safetensors_header(target).metadata
    assert metadata["global_step"] == "840000"
    assert metadata["epoch"] == "5"
    assert metadata["pytorch-lightning_version"] == "1.4.2"
    total = sum(t.numel() * t.element_size() for t in state_dict.values())
    assert seen[0] == (0, total) and seen[-1] == (total, total)
    probe = probe_model(target)
    assert probe.kind is ModelKind.CHECKPOINT
    assert probe.family is ModelFamily.SD1
    assert probe.can_generate
    assert not partial_path(target).exists()


def varied_tensors() -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    base = torch.randn(6, 10, generator=generator)
    cube = torch.randn(3, 4, 5, generator=generator).half()
    return {
        "f32": base,
        "f16": torch.randn(4, 3, generator=generator).half(),
        "bf16": torch.randn(17, generator=generator).bfloat16(),
        "f64": torch.randn(2, 2, generator=generator).double(),
        "i64": torch.arange(-5, 5),
        "i32": torch.arange(7, dtype=torch.int32),
        "i16": torch.arange(3, dtype=torch.int16),
        "i8": torch.tensor([-128, 0, 127], dtype=torch.int8),
        "u8": torch.arange(250, 256, dtype=torch.uint8),
        "bool": torch.tensor([True, False, True]),
        "scalar": torch.tensor(3.5),
        "empty": torch.zeros(0, 4),
        "special": torch.tensor([float("nan"), float("inf"), -0.0]),
        # views sharing base's storage, with offsets
        "row": base[3],
        "block": base[1:4, 2:7],
        "transposed": base.t(),
        "every_other": base[:, ::2],
        "permuted": cube.permute(2, 0, 1),
        "expanded": torch.randn(3, 1, generator=generator).expand(3, 4),
        "parameter": torch.nn.Parameter(torch.randn(2, 3, generator=generator)),
    }


@FORMATS
def test_every_dtype_shared_storage_and_strided_view_round_trips(tmp_path: Path, legacy: bool) -> None:
    tensors = varied_tensors()
    source = save({"state_dict": tensors}, tmp_path / "varied.ckpt", legacy=legacy)

    report = convert_to_safetensors(source, tmp_path / "varied.safetensors")

    assert_same_tensors(load_file(tmp_path / "varied.safetensors"), tensors)
    assert report.container == ("legacy" if legacy else "zip")
    assert report.layout == "checkpoint"
    assert report.tensor_count == len(tensors)
    read_safetensors_header(tmp_path / "varied.safetensors")  # the app's own strict reader accepts it


def test_float8_tensors_saved_as_untyped_storage_convert(tmp_path: Path) -> None:
    tensors = {
        "e4m3": torch.randn(8).to(torch.float8_e4m3fn),
        "e5m2": torch.randn(2, 4).to(torch.float8_e5m2).t(),
    }
    source = save(tensors, tmp_path / "fp8.pt")

    convert_to_safetensors(source, tmp_path / "fp8.safetensors")

    assert_same_tensors(load_file(tmp_path / "fp8.safetensors"), tensors)


@pytest.mark.parametrize(
    ("shape", "make_view"),
    [
        ((5, 7), lambda t: t.t()),
        ((2, 3, 4, 5), lambda t: t.permute(3, 1, 0, 2)),
        ((4, 6), lambda t: t[::2, 1::3]),
        ((3, 1), lambda t: t.expand(3, 5)),
        ((1, 4), lambda t: t.expand(3, 4).t()),
        ((4, 4), lambda t: t.as_strided((3, 2, 2), (0, 4, 1))),
    ],
)
def test_strided_copy_matches_torch(shape: tuple[int, ...], make_view) -> None:
    base = torch.arange(torch.Size(shape).numel(), dtype=torch.int16).reshape(shape)
    view = make_view(base)
    span = base.flatten()[view.storage_offset() :].numpy().tobytes()

    copied = strided_copy(span, 2, view.shape, view.stride())

    assert bytes(copied) == view.contiguous().numpy().tobytes()


def test_a1111_embedding_becomes_emb_params(tmp_path: Path) -> None:
    vectors = torch.randn(4, 768)
    embedding = {
        "string_to_token": {"*": 265},
        "string_to_param": {"*": vectors},
        "name": "my-style",
        "step": 3000,
        "sd_checkpoint": "cc6cb27103",
        "sd_checkpoint_name": "v1-5-pruned-emaonly",
    }
    source = save(embedding, tmp_path / "my-style.pt")

    report = convert_to_safetensors(source, tmp_path / "my-style.safetensors")

    assert_same_tensors(load_file(tmp_path / "my-style.safetensors"), {"emb_params": vectors})
    assert report.layout == "embedding"
    assert report.metadata == {
        "name": "my-style",
        "step": "3000",
        "sd_checkpoint": "cc6cb27103",
        "sd_checkpoint_name": "v1-5-pruned-emaonly",
    }
    probe = probe_model(tmp_path / "my-style.safetensors")
    assert (probe.kind, probe.family) == (ModelKind.EMBEDDING, ModelFamily.SD1)


def test_old_a1111_embedding_with_a_parameter_dict_converts(tmp_path: Path) -> None:
    """Embeddings saved by torch 1.11-era A1111 keep string_to_param in a torch.nn.ParameterDict."""
    vectors = torch.randn(2, 768)
    params = torch.nn.ParameterDict({"*": torch.nn.Parameter(vectors.clone())})
    embedding = {"string_to_token": {"*": 265}, "string_to_param": params, "name": "old"}
    source = save(embedding, tmp_path / "old.pt")

    convert_to_safetensors(source, tmp_path / "old.safetensors")

    assert_same_tensors(load_file(tmp_path / "old.safetensors"), {"emb_params": vectors})


def test_sdxl_embedding_in_a_pt_file_keeps_clip_l_and_clip_g(tmp_path: Path) -> None:
    tensors = {"clip_l": torch.randn(2, 768), "clip_g": torch.randn(2, 1280)}
    source = save(dict(tensors), tmp_path / "xl.pt")

    convert_to_safetensors(source, tmp_path / "xl.safetensors")

    assert_same_tensors(load_file(tmp_path / "xl.safetensors"), tensors)
    probe = probe_model(tmp_path / "xl.safetensors")
    assert (probe.kind, probe.family) == (ModelKind.EMBEDDING, ModelFamily.SDXL)


def test_embedding_with_several_terms_is_refused_as_a1111_does(tmp_path: Path) -> None:
    terms = {"a": torch.ones(1, 768), "b": torch.ones(1, 768)}
    source = save({"string_to_param": terms}, tmp_path / "two.pt")

    with pytest.raises(UnsupportedModel, match="two.pt cannot be converted: it is an embedding with 2 terms"):
        convert_to_safetensors(source, tmp_path / "two.safetensors")


class HypernetworkModule(torch.nn.Module):
    """The parameter names of A1111's HypernetworkModule with layer_structure [1, 2, 1] and layer norm."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.linear = torch.nn.Sequential(
            torch.nn.Linear(dim, dim * 2), torch.nn.LayerNorm(dim * 2), torch.nn.Linear(dim * 2, dim)
        )


def test_a1111_hypernetwork_tensors_are_named_by_dim_and_module_with_options_as_json(tmp_path: Path) -> None:
    options = {
        "step": 4000,
        "name": "anime-hn",
        "layer_structure": [1, 2, 1],
        "activation_func": "relu",
        "is_layer_norm": True,
        "weight_initialization": "Normal",
        "sd_checkpoint": "cc6cb27103",
        "sd_checkpoint_name": "v1-5",
        "activate_output": False,
        "use_dropout": False,
        "dropout_structure": [0, 0, 0],
        "last_layer_dropout": False,
        "optional_info": None,
    }
    hypernetwork: dict[object, object] = dict(options)
    expected: dict[str, torch.Tensor] = {}
    for dim in (320, 640):
        pair = [HypernetworkModule(dim).state_dict(), HypernetworkModule(dim).state_dict()]
        hypernetwork[dim] = pair
        for index, state_dict in enumerate(pair):
            expected.update({f"{dim}.{index}.{name}": t for name, t in state_dict.items()})
    source = save(hypernetwork, tmp_path / "anime-hn.pt")

    report = convert_to_safetensors(source, tmp_path / "anime-hn.safetensors")

    assert_same_tensors(load_file(tmp_path / "anime-hn.safetensors"), expected)
    assert "640.1.linear.2.weight" in expected
    metadata = read_safetensors_header(tmp_path / "anime-hn.safetensors").metadata
    assert metadata["format"] == HYPERNETWORK_FORMAT == "a1111-hypernetwork"
    assert metadata["layer_structure"] == "[1, 2, 1]"
    assert {key: json.loads(metadata[key]) for key in options} == options
    assert report.layout == "hypernetwork"


def test_a_pickle_without_tensors_is_not_a_model(tmp_path: Path) -> None:
    source = save({"epoch": 3, "notes": "nothing here"}, tmp_path / "empty.ckpt")

    with pytest.raises(UnsupportedModel, match="holds no tensors"):
        convert_to_safetensors(source, tmp_path / "empty.safetensors")


# --- BAD_INPUTS item 7: malicious pickles never run ------------------------------------------------


class Payload:
    """Pickles as REDUCE(callable, (argument,)): what a hostile checkpoint does."""

    def __init__(self, function: object, argument: str) -> None:
        self.function, self.argument = function, argument

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return self.function, (self.argument,)


def payloads(sentinel: Path) -> dict[str, Payload]:
    return {
        "os.system": Payload(os.system, f"touch '{sentinel}'"),
        "builtins.exec": Payload(exec, f"open({str(sentinel)!r}, 'w').close()"),
        "builtins.eval": Payload(eval, f"open({str(sentinel)!r}, 'w').close()"),
    }


@pytest.mark.parametrize("function", ["os.system", "builtins.exec", "builtins.eval"])
def test_item7_malicious_pickle_file_is_refused_and_its_payload_never_runs(
    tmp_path: Path, function: str
) -> None:
    sentinel = tmp_path / "pwned"
    source = tmp_path / "evil.ckpt"
    source.write_bytes(pickle.dumps({"state_dict": payloads(sentinel)[function]}, protocol=2))
    # The file really is hostile: plain pickle.load runs it (in a throwaway process).
    load_it = f"import pickle; pickle.load(open({str(source)!r}, 'rb'))"
    subprocess.run([sys.executable, "-c", load_it], check=True)
    assert sentinel.exists()
    sentinel.unlink()

    with pytest.raises(UnsafePickle) as refused:
        convert_pickle_file(source, tmp_path / "evil.safetensors")

    assert not sentinel.exists()
    # Protocol 2 spells builtins "__builtin__", and os.system is posix.system on Unix.
    expected = {
        "os.system": "posix.system",
        "builtins.exec": "__builtin__.exec",
        "builtins.eval": "__builtin__.eval",
    }
    assert refused.value.details["global_name"] == expected[function]
    assert refused.value.details["global_name"] in str(refused.value)
    assert "evil.ckpt" in str(refused.value)
    assert outputs_left(tmp_path) == []


def torch_zip_with(tmp_path: Path, data_pkl: bytes, name: str = "evil.ckpt") -> Path:
    """A genuine torch.save zip whose data.pkl is replaced (the storages stay valid)."""
    genuine = save({"weight": torch.ones(4)}, tmp_path / "genuine.pt")
    path = tmp_path / name
    with zipfile.ZipFile(genuine) as source, zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as target:
        for info in source.infolist():
            data = data_pkl if info.filename.endswith("/data.pkl") else source.read(info)
            target.writestr(info.filename, data)
    genuine.unlink()
    return path


def test_item7_malicious_data_pkl_inside_a_valid_torch_zip_never_runs(tmp_path: Path) -> None:
    sentinel = tmp_path / "pwned"
    # A valid tensor first (it matches the zip's storage), then the payload.
    hostile = OrderedDict(
        [("model.diffusion_model.out.2.weight", torch.ones(4)), ("x", payloads(sentinel)["os.system"])]
    )
    real = io.BytesIO()
    torch.save(hostile, real)  # torch writes the payload's REDUCE into data.pkl for us
    with zipfile.ZipFile(real) as archive:
        data_pkl = archive.read(next(n for n in archive.namelist() if n.endswith("/data.pkl")))
    source = torch_zip_with(tmp_path, data_pkl)

    with pytest.raises(UnsafePickle, match="evil.ckpt was refused"):
        convert_pickle_file(source, tmp_path / "evil.safetensors")

    assert not sentinel.exists()
    assert outputs_left(tmp_path) == []


def test_item7_malicious_object_in_a_legacy_checkpoint_never_runs(tmp_path: Path) -> None:
    sentinel = tmp_path / "pwned"
    header = b"".join(
        pickle.dumps(part, protocol=2)
        for part in (0x1950A86A20F9469CFC6C, 1001, {"protocol_version": 1001, "little_endian": True})
    )
    source = tmp_path / "legacy-evil.ckpt"
    source.write_bytes(header + pickle.dumps({"state_dict": payloads(sentinel)["builtins.exec"]}, protocol=2))

    with pytest.raises(UnsafePickle, match="__builtin__.exec"):
        convert_pickle_file(source, tmp_path / "evil.safetensors")

    assert not sentinel.exists()


@pytest.mark.parametrize(
    "global_name",
    [
        "torch.storage._load_from_bytes",  # unpickles again, unrestricted
        "torch._utils._rebuild_device_tensor_from_numpy",
        "subprocess.Popen",
        "builtins.getattr",
        "torch.nn.modules.linear.Linear",
    ],
)
def test_item7_globals_outside_the_allowlist_are_named_and_refused(tmp_path: Path, global_name: str) -> None:
    module, name = global_name.rsplit(".", 1)
    data_pkl = b"\x80\x02c" + f"{module}\n{name}\n".encode() + b")R."  # GLOBAL, EMPTY_TUPLE, REDUCE
    source = torch_zip_with(tmp_path, data_pkl, "refused.ckpt")

    with pytest.raises(UnsafePickle) as refused:
        convert_to_safetensors(source, tmp_path / "refused.safetensors")

    assert refused.value.details["global_name"] == global_name
    assert refused.value.code == "unsafe_pickle"


def test_conversion_never_loads_torch_or_numpy(tmp_path: Path) -> None:
    source = save({"state_dict": {"w": torch.ones(3)}, "step": np.int64(3)}, tmp_path / "plain.ckpt")
    code = (
        "import sys; from desktop.library.pickle_reader import main; "
        f"main([{str(source)!r}, {str(tmp_path / 'plain.safetensors')!r}]); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'numpy', 'safetensors')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip().splitlines()[-1] == "[]"
    assert json.loads(result.stdout.splitlines()[-2])["done"]["tensor_count"] == 1


# --- BAD_INPUTS item 8: odd containers and damaged files --------------------------------------------


@pytest.mark.parametrize(
    ("head", "what"),
    [
        (b"7z\xbc\xaf\x27\x1c\x00\x04", "7-Zip archive"),
        (b"Rar!\x1a\x07\x01\x00", "RAR archive"),
        (b"\x1f\x8b\x08\x00", "gzip archive"),
        (b"\x9a\x04\x11random bytes", "neither a zip nor a pickle"),
    ],
)
def test_item8_other_containers_and_random_bytes_are_refused(tmp_path: Path, head: bytes, what: str) -> None:
    source = tmp_path / "model.ckpt"
    source.write_bytes(head + os.urandom(4096))

    with pytest.raises(ModelFileError, match=what):
        convert_to_safetensors(source, tmp_path / "model.safetensors")

    assert outputs_left(tmp_path) == []


def test_item8_seven_zip_is_refused_through_the_child_too(tmp_path: Path) -> None:
    source = tmp_path / "model.ckpt"
    source.write_bytes(b"7z\xbc\xaf\x27\x1c\x00\x04" + bytes(64))

    expected = "model.ckpt is not a PyTorch checkpoint: it is a 7-Zip archive"
    with pytest.raises(ModelFileError, match=expected) as refused:
        convert_pickle_file(source, tmp_path / "model.safetensors")

    assert refused.value.details["reason"] == "not_checkpoint"


def patch_central_sizes(path: Path, member_suffix: str, size: int) -> None:
    """Rewrite the sizes one central-directory entry claims, leaving the data as it is."""
    raw = bytearray(path.read_bytes())
    position = raw.find(b"PK\x01\x02")
    while position != -1:
        name_length = struct.unpack_from("<H", raw, position + 28)[0]
        name = bytes(raw[position + 46 : position + 46 + name_length])
        if name.endswith(member_suffix.encode()):
            struct.pack_into("<II", raw, position + 20, size, size)  # compressed, uncompressed
        position = raw.find(b"PK\x01\x02", position + 4)
    path.write_bytes(bytes(raw))


@pytest.mark.parametrize("member", ["/data/0", "/data.pkl"])
def test_item8_zip_members_claiming_absurd_sizes_are_refused_before_reading(
    tmp_path: Path, member: str
) -> None:
    source = save({"w": torch.ones(16)}, tmp_path / "bomb.ckpt")
    patch_central_sizes(source, member, 0xFFFF_FFF0)

    with pytest.raises(ModelFileError, match="bomb.ckpt is truncated or corrupt: .* claims 4294967280 bytes"):
        convert_to_safetensors(source, tmp_path / "bomb.safetensors")


def rezip(
    source: Path,
    target: Path,
    *,
    compression: int = zipfile.ZIP_STORED,
    extra: dict[str, bytes] | None = None,
    rename: dict[str, str] | None = None,
    shorten: str | None = None,
) -> Path:
    """Copy a torch zip member by member, changing one thing (``rename`` maps names below the root)."""
    with zipfile.ZipFile(source) as original, zipfile.ZipFile(target, "w", compression) as rebuilt:
        for info in original.infolist():
            data = original.read(info)
            if shorten and info.filename.endswith(shorten):
                data = data[:-4]
            root, rest = info.filename.split("/", 1)
            rebuilt.writestr(f"{root}/{(rename or {}).get(rest, rest)}", data)
        for name, data in (extra or {}).items():
            rebuilt.writestr(name, data)
    return target


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"extra": {"genuine/evil.py": b"import os"}}, "contains 'genuine/evil.py', which PyTorch does not"),
        ({"extra": {"../escape/data.pkl": b""}}, "contains '../escape/data.pkl'"),
        ({"extra": {"other/version": b"3"}}, "its members lie in 2 folders"),
        ({"compression": zipfile.ZIP_DEFLATED}, "is compressed, which PyTorch never does"),
        ({"rename": {"data.pkl": "data/9"}}, "it has no genuine/data.pkl"),
        ({"shorten": "/data/0"}, "data/0 holds 60 bytes but its storage needs 64"),
    ],
    ids=["foreign-member", "path-escape", "two-roots", "deflated", "no-data-pkl", "short-storage"],
)
def test_item8_zips_torch_did_not_write_are_refused(tmp_path: Path, change: dict, message: str) -> None:
    genuine = save({"w": torch.ones(16)}, tmp_path / "genuine.pt")
    source = rezip(genuine, tmp_path / "odd.ckpt", **change)

    with pytest.raises(ModelFileError, match=message):
        convert_to_safetensors(source, tmp_path / "odd.safetensors")

    assert not (tmp_path / "odd.safetensors").exists()


def test_checkpoint_folder_named_after_the_file_as_old_torch_wrote_it_converts(tmp_path: Path) -> None:
    genuine = save({"w": torch.arange(4.0)}, tmp_path / "genuine.pt")
    with zipfile.ZipFile(genuine) as original, zipfile.ZipFile(tmp_path / "sd-v1-4.ckpt", "w") as renamed:
        assert {name.split("/")[0] for name in original.namelist()} == {"genuine"}
        for info in original.infolist():
            renamed.writestr("sd-v1-4/" + info.filename.split("/", 1)[1], original.read(info))
    source = tmp_path / "sd-v1-4.ckpt"

    convert_to_safetensors(source, tmp_path / "sd-v1-4.safetensors")

    assert_same_tensors(load_file(tmp_path / "sd-v1-4.safetensors"), {"w": torch.arange(4.0)})


@FORMATS
def test_truncated_checkpoints_are_refused_and_leave_nothing(tmp_path: Path, legacy: bool) -> None:
    source = save({"state_dict": {"w": torch.randn(64, 64)}}, tmp_path / "cut.ckpt", legacy=legacy)
    raw = source.read_bytes()
    source.write_bytes(raw[: len(raw) // 2])

    with pytest.raises(ModelFileError, match="cut.ckpt is truncated") as refused:
        convert_pickle_file(source, tmp_path / "cut.safetensors")

    assert refused.value.details["reason"] == "truncated"
    assert outputs_left(tmp_path) == []


def test_plain_pickle_that_torch_did_not_write_is_refused(tmp_path: Path) -> None:
    source = tmp_path / "data.pt"
    source.write_bytes(pickle.dumps({"weights": [1.0, 2.0]}, protocol=2))

    expected = "data.pt is not a PyTorch checkpoint: it is a pickle, but not one PyTorch wrote"
    with pytest.raises(ModelFileError, match=expected):
        convert_to_safetensors(source, tmp_path / "data.safetensors")


# --- stopping the child ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def slow_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One tensor whose strided copy takes the child seconds: 4**12 fp16 elements, axes reversed."""
    folder = tmp_path_factory.mktemp("slow")
    tensor = torch.zeros((4,) * 12, dtype=torch.float16).permute(*reversed(range(12)))
    return save({"slow": tensor}, folder / "slow.ckpt")


def test_cancel_kills_the_child_promptly_and_leaves_no_target(tmp_path: Path, slow_checkpoint: Path) -> None:
    token = CancelToken()
    target = tmp_path / "slow.safetensors"
    cancelled_at: list[float] = []

    def on_progress(done: int, total: int) -> None:
        if not cancelled_at:  # the header is written; the slow copy starts now
            cancelled_at.append(time.monotonic())
            token.cancel()

    with pytest.raises(Cancelled):
        convert_pickle_file(slow_checkpoint, target, cancel=token, progress=on_progress)

    assert time.monotonic() - cancelled_at[0] < 1.5
    assert not target.exists()
    assert not partial_path(target).exists()
    assert list(tmp_path.iterdir()) == []


def test_cancel_from_another_thread_stops_the_child(tmp_path: Path, slow_checkpoint: Path) -> None:
    token = CancelToken()
    threading.Timer(0.5, token.cancel).start()
    started = time.monotonic()

    with pytest.raises(Cancelled):
        convert_pickle_file(slow_checkpoint, tmp_path / "slow.safetensors", cancel=token)

    assert time.monotonic() - started < 2.5
    assert list(tmp_path.iterdir()) == []


def test_a_child_that_stops_reporting_progress_times_out(tmp_path: Path, slow_checkpoint: Path) -> None:
    started = time.monotonic()

    with pytest.raises(ModelFileError, match="stopped making progress for 0.5 s") as stopped:
        convert_pickle_file(slow_checkpoint, tmp_path / "slow.safetensors", timeout=0.5)

    assert stopped.value.details["reason"] == "timeout"
    assert time.monotonic() - started < 3
    assert list(tmp_path.iterdir()) == []


# --- the child's failures, as the caller sees them --------------------------------------------------


def test_a_write_error_in_the_child_comes_back_as_the_same_os_error(tmp_path: Path) -> None:
    source = save({"w": torch.ones(2)}, tmp_path / "ok.ckpt")
    target = tmp_path / "taken.safetensors"
    target.mkdir()  # the child cannot rename its file over a folder

    with pytest.raises(IsADirectoryError):
        convert_pickle_file(source, target)

    assert target.is_dir()
    assert not partial_path(target).exists()


def test_a_crashing_child_is_reported_with_the_last_line_it_printed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import desktop.library.pickle_convert as pickle_convert

    monkeypatch.setattr(pickle_convert, "_BOOTSTRAP", "raise RuntimeError('converter bug')")
    source = save({"w": torch.ones(2)}, tmp_path / "ok.ckpt")

    expected = r"ok.ckpt could not be converted: .* \(exit status 1: RuntimeError: converter bug\)"
    with pytest.raises(ModelFileError, match=expected):
        convert_pickle_file(source, tmp_path / "ok.safetensors")

    assert outputs_left(tmp_path) == []


def test_the_frozen_app_runs_itself_as_the_converter_child(tmp_path: Path, monkeypatch):
    """In the .app, sys.executable is the app: ``desktop.__main__`` must route the child flag to the reader."""
    import subprocess as sp

    from desktop.library import pickle_convert

    captured: list[list[str]] = []
    real_popen = sp.Popen

    def popen(command, **kwargs):
        captured.append(list(command))
        # what the frozen binary would do: run desktop.__main__ with the same arguments
        return real_popen([sys.executable, "-m", "desktop", *command[1:]], cwd=Path(__file__).resolve().parents[2], **kwargs)

    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(pickle_convert.subprocess, "Popen", popen)
    source = tmp_path / "emb.pt"
    import torch

    torch.save({"string_to_param": {"*": torch.ones(2, 8)}, "name": "emb"}, source)
    target = pickle_convert.convert_pickle_file(source, tmp_path / "emb.safetensors")
    assert captured[0][1] == pickle_convert.CHILD_FLAG
    from safetensors.torch import load_file

    assert torch.equal(load_file(target)["emb_params"], torch.ones(2, 8))
