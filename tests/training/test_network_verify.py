"""After training, the app checks the file through the inference code and makes one image with and without it."""

from __future__ import annotations

import torch
from safetensors.torch import save_file

from desktop.engine.loading import load_model
from desktop.library.taxonomy import ModelFamily
from desktop.training.kohya_export import TrainingFacts, lora_metadata, save_kohya_lora
from desktop.training.lora_network import LoRANetwork
from desktop.training.verify import sample_with_and_without, verify_lora
from tests.training.test_lora_network import same_weights, snapshot, trained


def test_a_saved_lora_verifies_changes_the_image_and_leaves_the_base_bit_identical(checkpoints, cpu_plan, tmp_path):
    model = load_model(checkpoints["sd1"], cpu_plan)
    net = trained(LoRANetwork(model, ModelFamily.SD1, 4, 4.0, conv_dim=2, generator=torch.Generator().manual_seed(0)))
    path = save_kohya_lora(tmp_path / "cat.safetensors", net.kohya_state_dict(), lora_metadata(TrainingFacts(ModelFamily.SD1)))
    report = verify_lora(path, model)
    assert (report.matched, report.total, report.unmatched, report.wrong_base) == (net.module_count, net.module_count, (), False)
    assert report.complete and report.ok and report.warning is None
    assert report.missing_metadata == () and report.hash_matches is True

    before = snapshot(model)
    comparison = sample_with_and_without(path, model, "a photo of a cat", seed=3, steps=2, size=(48, 32), sampler="Euler")
    with_lora, without, differs = comparison  # a plain tuple too
    assert differs and with_lora.size == without.size == (48, 32)
    assert same_weights(model, before)  # the merge was taken off bit for bit


def test_a_lora_for_another_base_or_without_metadata_does_not_verify(checkpoints, cpu_plan, tmp_path):
    sd1, sdxl = (load_model(checkpoints[f], cpu_plan) for f in ("sd1", "sdxl"))
    xl = LoRANetwork(sdxl, ModelFamily.SDXL, 4, 1.0)
    path = save_kohya_lora(tmp_path / "xl.safetensors", xl.kohya_state_dict(), lora_metadata(TrainingFacts(ModelFamily.SDXL)))
    report = verify_lora(path, sd1)
    assert report.wrong_base and report.matched == 0 and not report.ok
    assert "xl.safetensors" in report.warning and report.unmatched

    bare = tmp_path / "bare.safetensors"
    save_file(LoRANetwork(sd1, ModelFamily.SD1, 4, 1.0).kohya_state_dict(), str(bare))  # tensors only
    report = verify_lora(bare, sd1)
    assert report.complete and not report.ok
    assert report.hash_matches is None and "ss_network_dim" in report.missing_metadata
