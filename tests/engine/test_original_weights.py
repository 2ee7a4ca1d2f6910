"""Taking a LoRA off a single-file checkpoint re-reads the base weights from the file: no copies held."""

from __future__ import annotations

import torch

from desktop.engine.loading import load_model
from desktop.engine.networks.lora import NetworkPatcher, load_network
from desktop.engine.networks.lora_keys import ModelLayers
from tests.engine.test_lora import _all_parameters, _changed, sd_lora_shapes, sdxl_kohya_shapes, unet_output, write_kohya
from tests.fixtures import ldm_layout


def _patchable(model) -> list[tuple[str, str, torch.Tensor]]:
    components = {"unet": model.unet, "text_encoder": model.text_encoders[0]}
    if len(model.text_encoders) > 1:
        components["text_encoder_2"] = model.text_encoders[1]
    rows = []
    for component, module in components.items():
        for path, layer in module.named_modules():
            if isinstance(layer, (torch.nn.Linear, torch.nn.Conv2d)):
                rows.append((component, f"{path}.weight", layer.weight))
    return rows


def test_every_unet_and_clip_l_weight_is_read_back_bit_identical(checkpoints, cpu_plan):
    for family in ("sd1", "sdxl"):
        model = load_model(checkpoints[family], cpu_plan)
        found = {"unet": 0, "text_encoder": 0, "text_encoder_2": 0}
        for component, name, live in _patchable(model):
            original = model.originals(component, name)
            if original is None:
                continue
            assert torch.equal(original.to(live.dtype), live), (family, component, name)
            found[component] += 1
        unet_layers = sum(1 for c, _, _ in _patchable(model) if c == "unet")
        te_layers = sum(1 for c, _, _ in _patchable(model) if c == "text_encoder")
        assert found["unet"] == unet_layers and found["text_encoder"] == te_layers, (family, found)
        assert found["text_encoder_2"] == 0  # OpenCLIP's fused projections: copied instead


def test_an_sdxl_lora_on_unet_and_clip_l_keeps_no_copies_and_restores_bit_for_bit(checkpoints, cpu_plan, tmp_path):
    model = load_model(checkpoints["sdxl"], cpu_plan)
    hp = ldm_layout.TINY["sdxl"]
    shapes = {name: shape for name, shape in sdxl_kohya_shapes(hp).items() if not name.startswith("lora_te2_")}
    path = tmp_path / "xl.safetensors"
    write_kohya(path, shapes, base="sdxl_base_v1-0")
    snapshot = _all_parameters(model)
    base = unet_output(model)

    patcher = NetworkPatcher(model, originals=model.originals)
    match = patcher.apply([(load_network(path), 1.0, 1.0)])[0]
    assert match.matched == match.total > 0
    assert _changed(model, snapshot)  # the LoRA is on
    assert patcher.backup_bytes == 0  # every base value can be read again from the file
    patcher.restore()
    assert _changed(model, snapshot) == set()
    assert torch.equal(unet_output(model), base)


def test_without_a_file_to_read_from_the_patcher_still_copies(checkpoints, cpu_plan, tmp_path):
    model = load_model(checkpoints["sd1"], cpu_plan)
    layers = ModelLayers.of(model)
    names = [name for name in layers.kohya_names() if "attn2_to_k" in name][:2]
    path = tmp_path / "sd1.safetensors"
    write_kohya(path, sd_lora_shapes(model, names))
    snapshot = _all_parameters(model)
    patcher = NetworkPatcher(model)  # no originals (a diffusers folder)
    patcher.apply([(load_network(path), 1.0, 1.0)])
    assert patcher.backup_bytes > 0
    patcher.restore()
    assert _changed(model, snapshot) == set()
