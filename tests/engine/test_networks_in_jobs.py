"""Networks named in a prompt, end to end through EngineService: looked up in the model folders,
applied, recorded in the infotext as A1111 writes it, and warned about when they cannot be used."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from desktop.core.infotext import parse_infotext
from desktop.core.requests import GenerationRequest
from desktop.engine.devices import plan_devices
from desktop.engine.loading import load_model
from desktop.engine.service import EngineOptions, EngineService
from desktop.library.hashes import safetensors_tensor_hash, sha256_file
from tests.engine.test_hypernetwork import save_a1111_hypernetwork


@pytest.fixture(scope="module")
def widths(tiny_sd1: Path) -> tuple[int, tuple[int, ...]]:
    model = load_model(tiny_sd1, plan_devices("cpu", "fp32"))
    return model.text_encoders[0].config.hidden_size, tuple(model.unet.config.block_out_channels)


@pytest.fixture
def models(tmp_path: Path) -> Path:
    root = tmp_path / "models"
    for folder in ("Lora", "embeddings", "hypernetworks"):
        (root / folder).mkdir(parents=True)
    return root


def run(models: Path, tmp_path: Path, tiny_sd1: Path, prompt: str, negative: str = ""):
    service = EngineService(EngineOptions(output_dir=tmp_path / "out", device="cpu", precision="fp32", model_roots=(models,), cache_dir=tmp_path / "cache"))
    try:
        request = GenerationRequest(prompt=prompt, negative_prompt=negative, steps=3, width=64, height=64, seed=7, model_path=tiny_sd1, sampler="Euler")
        report = service.run(request)
    finally:
        service.close()
    assert report.outcome == "finished", report.failure
    image = Image.open(report.images[0].path)
    return report, np.asarray(image), parse_infotext(image.text["parameters"])[2]


def test_an_embedding_in_the_prompt_changes_the_image_and_is_named_in_ti_hashes(models, tmp_path, tiny_sd1, widths):
    width, _ = widths
    embedding = models / "embeddings" / "shiny-style.safetensors"
    save_file({"emb_params": torch.randn(2, width, generator=torch.Generator().manual_seed(3)) * 5}, str(embedding))
    _, plain, plain_params = run(models, tmp_path / "a", tiny_sd1, "a photo of a cup")
    report, styled, params = run(models, tmp_path / "b", tiny_sd1, "a photo of a cup, shiny-style")
    assert not np.array_equal(plain, styled)
    assert params["TI hashes"] == f"shiny-style: {safetensors_tensor_hash(embedding)[:12]}"
    assert "TI hashes" not in plain_params and report.warnings == ()
    assert list(params)[-1] == "Version"  # network keys come before Version, as in A1111


def test_a_hypernetwork_pt_is_converted_applied_and_recorded(models, tmp_path, tiny_sd1, widths):
    width, blocks = widths
    save_a1111_hypernetwork(models / "hypernetworks" / "anime.pt", (width, *blocks))
    _, plain, _ = run(models, tmp_path / "a", tiny_sd1, "a cat")
    report, patched, params = run(models, tmp_path / "b", tiny_sd1, "a cat <hypernet:anime:0.8>")
    assert not np.array_equal(plain, patched)
    assert (params["Hypernet"], params["Hypernet strength"]) == ("anime", "0.8")
    assert report.warnings == ()
    assert any((tmp_path / "b" / "cache" / "hypernetworks").glob("*.safetensors"))  # converted once, cached


def test_missing_networks_warn_and_the_image_is_still_made(models, tmp_path, tiny_sd1):
    report, _, params = run(models, tmp_path, tiny_sd1, "a cat <lora:nowhere:0.7> <hypernet:gone:1>")
    assert any("LoRA 'nowhere' was not found" in warning for warning in report.warnings)
    assert any("hypernetwork 'gone' was not found" in warning for warning in report.warnings)
    assert "Lora hashes" not in params and "Hypernet" not in params


def test_a_pickle_embedding_is_hashed_by_its_file(models, tmp_path, tiny_sd1, widths):
    width, _ = widths
    embedding = models / "embeddings" / "oldneg.pt"
    torch.save({"string_to_token": {"*": 265}, "string_to_param": {"*": torch.randn(1, width)}, "name": "oldneg", "step": 1}, embedding)
    report, _, params = run(models, tmp_path, tiny_sd1, "a cat", negative="oldneg, blurry")
    assert params["TI hashes"] == f"oldneg: {sha256_file(embedding)[:12]}"


def test_a_lora_in_the_prompt_changes_the_image_is_recorded_and_comes_off_for_the_next_job(models, tmp_path, tiny_sd1):
    from desktop.engine.networks.lora_keys import ModelLayers

    model = load_model(tiny_sd1, plan_devices("cpu", "fp32"))
    generator = torch.Generator().manual_seed(4)
    tensors = {}
    layers = ModelLayers.of(model)
    for name in layers.kohya_names():
        if name.startswith("lora_unet_") and ("attn2_to_k" in name or "attn2_to_v" in name):
            out_features, in_features = layers.find(name).module.weight.shape
            tensors[f"{name}.lora_down.weight"] = torch.randn(4, in_features, generator=generator)
            tensors[f"{name}.lora_up.weight"] = torch.randn(out_features, 4, generator=generator)
            tensors[f"{name}.alpha"] = torch.tensor(4.0)
    lora = models / "Lora" / "detail.safetensors"
    save_file(tensors, str(lora))

    service = EngineService(EngineOptions(output_dir=tmp_path / "out", device="cpu", precision="fp32", model_roots=(models,)))
    try:
        def job(prompt: str):
            request = GenerationRequest(prompt=prompt, steps=3, width=64, height=64, seed=7, model_path=tiny_sd1, sampler="Euler")
            report = service.run(request)
            assert report.outcome == "finished", report.failure
            image = Image.open(report.images[0].path)
            return report, np.asarray(image), parse_infotext(image.text["parameters"])[2]

        _, base, _ = job("a cat")
        report, patched, params = job("a cat <lora:detail:0.8>")
        _, again, _ = job("a cat")  # same loaded model, LoRA taken off
    finally:
        service.close()
    assert not np.array_equal(base, patched) and np.array_equal(base, again)
    assert params["Lora hashes"] == f"detail: {safetensors_tensor_hash(lora)[:12]}"
    assert report.warnings == ()
