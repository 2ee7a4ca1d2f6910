"""kohya-format export (issue 9): metadata as kohya spells it, sshs hashes, atomic fp16 saves, and files
that the inference code and diffusers' ``load_lora_weights`` (kohya path) read back to the trained outputs.
"""

from __future__ import annotations

import datetime
import hashlib
import io
import json
import os
import re
from types import SimpleNamespace

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file
from safetensors.torch import save as safetensors_bytes

from desktop.core.errors import UnsupportedModel
from desktop.engine.loading import load_model
from desktop.engine.networks.lora import NetworkPatcher, load_network
from desktop.library.hashes import safetensors_tensor_hash
from desktop.library import atomic_write
from desktop.library.taxonomy import ModelFamily
from desktop.training.kohya_export import REQUIRED_KEYS, TrainingFacts, lora_metadata, save_kohya_lora
from desktop.training.lora_network import LoRANetwork
from tests.engine.test_lora import _diffusers_pipeline, meta_model, text_output, unet_output

HOSTILE = 'naïve "quoted", 猫 🐱 \\ back\nslash'


def facts(family=ModelFamily.SD1, **overrides) -> TrainingFacts:
    values = dict(
        family=family, network_dim=16, network_alpha=8.0, output_name="my_cat", network_args={"conv_dim": "4", "conv_alpha": "1"},
        learning_rate=1e-4, text_encoder_lr=5e-5, epochs=10, epoch=3, steps=300, max_train_steps=1000, resolution=(512, 768),
        batch_size=2, clip_skip=2, seed=42, lr_scheduler="cosine_with_restarts", lr_warmup_steps=10,
        optimizer_args={"weight_decay": "0.01"}, noise_offset=0.05, min_snr_gamma=5.0, mixed_precision="fp16",
        tag_frequency={"10_cat": {"cat": 20, "sitting": 3}}, dataset_dirs={"10_cat": {"n_repeats": 10, "img_count": 20}},
        num_train_images=200, base_model_name="v1-5-pruned.safetensors", base_model_sha256="ab" * 32,
        training_started_at=1_700_000_000.25, training_finished_at=1_700_003_600.75, session_id=1234, trigger_word="sks cat",
    )  # fmt: skip
    values.update(overrides)
    return TrainingFacts(**values)


# ----------------------------------------------------------------------------- metadata


def test_metadata_has_every_required_key_as_kohya_spells_it():
    metadata = lora_metadata(facts())
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items())
    assert set(REQUIRED_KEYS) <= set(metadata)
    expected = {
        "ss_v2": "False", "ss_base_model_version": "sd_v1", "ss_network_module": "networks.lora",
        "ss_network_dim": "16", "ss_network_alpha": "8.0", "ss_network_args": '{"conv_dim": "4", "conv_alpha": "1"}',
        "ss_output_name": "my_cat", "ss_learning_rate": "0.0001", "ss_unet_lr": "None", "ss_text_encoder_lr": "5e-05",
        "ss_num_epochs": "10", "ss_epoch": "3", "ss_steps": "300", "ss_max_train_steps": "1000",
        "ss_resolution": "(512, 768)", "ss_num_train_images": "200", "ss_batch_size_per_device": "2",
        "ss_clip_skip": "2", "ss_seed": "42", "ss_lr_scheduler": "cosine_with_restarts", "ss_lr_warmup_steps": "10",
        "ss_optimizer": "torch.optim.adamw.AdamW(weight_decay=0.01)", "ss_noise_offset": "0.05", "ss_min_snr_gamma": "5.0",
        "ss_mixed_precision": "fp16", "ss_sd_model_name": "v1-5-pruned.safetensors", "ss_new_sd_model_hash": "ab" * 32,
        "ss_training_started_at": "1700000000.25", "ss_training_finished_at": "1700003600.75", "ss_session_id": "1234",
        "ss_dataset_dirs": '{"10_cat": {"n_repeats": 10, "img_count": 20}}',
        "modelspec.sai_model_spec": "1.0.1", "modelspec.architecture": "stable-diffusion-v1/lora",
        "modelspec.implementation": "diffusers", "modelspec.title": "my_cat", "modelspec.resolution": "512x768",
        "modelspec.date": datetime.datetime.fromtimestamp(1_700_003_600).isoformat(), "modelspec.prediction_type": "epsilon",
        "modelspec.encoder_layer": "2", "modelspec.trigger_phrase": "sks cat",
    }  # fmt: skip
    assert {key: metadata[key] for key in expected} == expected
    assert json.loads(metadata["ss_tag_frequency"]) == {"10_cat": {"cat": 20, "sitting": 3}}


@pytest.mark.parametrize(
    ("family", "v", "version", "architecture", "implementation", "v2"),
    [
        (ModelFamily.SD1, False, "sd_v1", "stable-diffusion-v1/lora", "diffusers", "False"),
        (ModelFamily.SD2, False, "sd_v2", "stable-diffusion-v2-512/lora", "diffusers", "True"),
        (ModelFamily.SD2, True, "sd_v2_v", "stable-diffusion-v2-768-v/lora", "diffusers", "True"),
        (ModelFamily.SDXL, False, "sdxl_base_v1-0", "stable-diffusion-xl-v1-base/lora", "https://github.com/Stability-AI/generative-models", "False"),
    ],
)  # fmt: skip
def test_base_model_version_and_architecture_per_family(family, v, version, architecture, implementation, v2):
    metadata = lora_metadata(facts(family, v_prediction=v))
    assert (metadata["ss_base_model_version"], metadata["modelspec.architecture"]) == (version, architecture)
    assert (metadata["modelspec.implementation"], metadata["ss_v2"]) == (implementation, v2)
    assert metadata["modelspec.prediction_type"] == ("v" if v else "epsilon")


def test_optional_modelspec_keys_only_when_they_say_something_and_other_families_are_refused():
    metadata = lora_metadata(facts(clip_skip=1, trigger_word="", network_args={}))
    assert "modelspec.encoder_layer" not in metadata and "modelspec.trigger_phrase" not in metadata
    assert metadata["ss_network_args"] == "{}"
    assert "modelspec.encoder_layer" not in lora_metadata(facts(clip_skip=None))
    assert lora_metadata(facts(extra={"ss_custom": 3, "ss_seed": "7"}))["ss_custom"] == "3"  # extra wins, made a string
    assert lora_metadata(facts(extra={"ss_seed": "7"}))["ss_seed"] == "7"
    with pytest.raises(UnsupportedModel, match="Flux"):
        lora_metadata(facts(ModelFamily.FLUX))


def test_hostile_strings_survive_the_file(tmp_path):
    tags = {f"10_{HOSTILE}": {HOSTILE: 2, "🐱": 1}}
    metadata = lora_metadata(facts(output_name=HOSTILE, trigger_word=HOSTILE, comment=HOSTILE, tag_frequency=tags,
                                   base_model_name="caf\udce9.safetensors"))  # fmt: skip  # an undecodable file name
    assert metadata["ss_sd_model_name"] == "caf\ufffd.safetensors"
    path = save_kohya_lora(tmp_path / "odd.safetensors", {"lora_unet_a.alpha": torch.tensor(1.0)}, metadata)
    with safe_open(str(path), "pt") as handle:
        stored = handle.metadata()
    assert {k: stored[k] for k in metadata} == metadata
    assert stored["ss_output_name"] == stored["modelspec.trigger_phrase"] == stored["modelspec.description"] == HOSTILE
    assert json.loads(stored["ss_tag_frequency"]) == tags


# ----------------------------------------------------------------------------- the file


def addnet_hashes(data: bytes) -> tuple[str, str]:
    """kohya's addnet_hash_safetensors and addnet_hash_legacy, written out as train_util has them."""
    b = io.BytesIO(data)
    n = int.from_bytes(b.read(8), "little")
    b.seek(n + 8)
    model = hashlib.sha256()
    for chunk in iter(lambda: b.read(1024 * 1024), b""):
        model.update(chunk)
    b.seek(0x100000)
    return model.hexdigest(), hashlib.sha256(b.read(0x10000)).hexdigest()[0:8]


def test_a_full_size_sd15_file_has_264_modules_792_tensors_kohya_hashes_and_every_module_matches(tmp_path):
    model = meta_model(ModelFamily.SD1)
    net = LoRANetwork(model, ModelFamily.SD1, 16, 8.0, generator=torch.Generator().manual_seed(0))
    tensors = net.kohya_state_dict()
    metadata = lora_metadata(facts())
    path = save_kohya_lora(tmp_path / "full.safetensors", tensors, metadata)
    with safe_open(str(path), "pt") as handle:
        stored = handle.metadata()
    assert stored == {**metadata, "sshs_model_hash": stored["sshs_model_hash"], "sshs_legacy_hash": stored["sshs_legacy_hash"]}
    raw = path.read_bytes()
    header = int.from_bytes(raw[:8], "little")
    assert stored["sshs_model_hash"] == hashlib.sha256(raw[8 + header :]).hexdigest() == safetensors_tensor_hash(path)
    ss_only = safetensors_bytes(tensors, {k: v for k, v in metadata.items() if k.startswith("ss_")})
    assert len(ss_only) > 0x110000  # the legacy hash reads real bytes here
    assert (stored["sshs_model_hash"], stored["sshs_legacy_hash"]) == addnet_hashes(ss_only)

    network = load_network(path)
    assert (len(network.modules), network.tensor_count) == (264, 792)
    assert all(re.fullmatch(r"(lora_unet|lora_te)_[A-Za-z0-9_]+", name) for name in network.modules)
    assert all(m.alpha == 8.0 and m.tensors["lora_down.weight"].dtype == torch.float16 for m in network.modules.values())
    match = NetworkPatcher(model).match(network)
    assert (match.matched, match.total, match.wrong_base) == (264, 264, False)


def test_saving_is_fp16_on_the_cpu_and_atomic(tmp_path, monkeypatch):
    path = tmp_path / "Lora" / "x.safetensors"  # the folder is made
    tensors = {"lora_unet_a.lora_down.weight": torch.randn(2, 3), "lora_unet_a.lora_up.weight": torch.randn(3, 2).t(), "lora_unet_a.alpha": torch.tensor(2.0)}
    save_kohya_lora(path, tensors, {"ss_network_dim": "2"})
    loaded = load_file(str(path))
    assert all(t.dtype == torch.float16 for t in loaded.values()) and loaded["lora_unet_a.alpha"].item() == 2.0
    torch.testing.assert_close(loaded["lora_unet_a.lora_up.weight"].float(), tensors["lora_unet_a.lora_up.weight"], rtol=1e-3, atol=1e-3)
    save_kohya_lora(path, tensors, {}, dtype=None)
    assert load_file(str(path))["lora_unet_a.lora_down.weight"].dtype == torch.float32
    good = path.read_bytes()

    def crash(descriptor):
        raise OSError("disk full")  # the new bytes are in the temporary file, not yet on disk

    monkeypatch.setattr(atomic_write.os, "fsync", crash)
    with pytest.raises(OSError, match="disk full"):
        save_kohya_lora(path, tensors, {})
    monkeypatch.undo()
    with pytest.raises(ValueError, match="lora_unet_a.weight"):
        save_kohya_lora(path, {"lora_unet_a.weight": torch.zeros(1)}, {})
    with pytest.raises(TypeError, match="ss_steps"):
        save_kohya_lora(path, tensors, {"ss_steps": 3})  # type: ignore[dict-item]
    assert path.read_bytes() == good and sorted(p.name for p in path.parent.iterdir()) == ["x.safetensors"]
    umask = os.umask(0o022)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # an ordinary file, not a private temporary one


# ----------------------------------------------------------------------------- trained files, read back


@pytest.fixture(scope="module")
def tiny(checkpoints, cpu_plan):
    return {family: load_model(checkpoints[family], cpu_plan) for family in ("sd1", "sdxl")}


def trained_network(model, family: ModelFamily) -> LoRANetwork:
    """A LoCon network with random ``lora_up`` (a stand-in for training), its weights fp16-representable
    so that the fp16 file holds exactly the live network."""
    net = LoRANetwork(model, family, 4, 2.0, conv_dim=2, conv_alpha=1.0, generator=torch.Generator().manual_seed(0))
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for lora in net.loras:
            lora.lora_up.weight.copy_(torch.randn(lora.lora_up.weight.shape, generator=generator) * 0.2)
    net.load_kohya_state_dict(net.kohya_state_dict())
    return net


def outputs(model):
    return unet_output(model), [text_output(encoder) for encoder in model.text_encoders]


def assert_outputs_close(actual, expected):
    torch.testing.assert_close(actual[0], expected[0], rtol=1e-4, atol=1e-5)
    for a, e in zip(actual[1], expected[1]):
        torch.testing.assert_close(a, e, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("family", ["sd1", "sdxl"])
def test_the_saved_file_gives_the_live_networks_outputs_through_our_patcher_and_diffusers(tiny, family, tmp_path):
    model = tiny[family]
    net = trained_network(model, ModelFamily(family))
    base = outputs(model)
    pipe = _diffusers_pipeline(model)  # copies of the base modules, made before anything is installed
    path = save_kohya_lora(tmp_path / f"{family}.safetensors", net.kohya_state_dict(), lora_metadata(facts(ModelFamily(family))))
    net.apply()
    try:
        live = outputs(model)
    finally:
        net.remove()
    assert not torch.allclose(live[0], base[0])

    patcher = NetworkPatcher(model)
    [match] = patcher.apply([(load_network(path), 1.0, 1.0)])
    try:
        assert (match.matched, match.total) == (net.module_count, net.module_count) and match.complete
        assert_outputs_close(outputs(model), live)
    finally:
        patcher.restore()
    assert torch.equal(unet_output(model), base[0])

    pipe.load_lora_weights(str(path))  # diffusers' kohya converter (SGM names on SDXL), peft layers
    encoders = [pipe.text_encoder] + ([pipe.text_encoder_2] if family == "sdxl" else [])
    theirs = (unet_output(SimpleNamespace(unet=pipe.unet)), [text_output(e) for e in encoders])
    assert_outputs_close(theirs, live)
    pipe.set_adapters(pipe.get_list_adapters()["unet"], adapter_weights=[0.0])
    assert torch.equal(unet_output(SimpleNamespace(unet=pipe.unet)), base[0])  # weight 0 is the base model
