"""LoRA and LyCORIS applied to real model weights: kohya key layouts for SD1.5 and SDXL, the merged
weight formula, multipliers, restore bit for bit, wrong-base files, LoHa/LoKr and PEFT formats."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import save_file

from desktop.core.errors import ModelFileError
from desktop.engine import architecture
from desktop.engine.devices import plan_devices
from desktop.engine.loading import load_model
from desktop.engine.networks.lora import NetworkPatcher, _kohya_targets, _names_for_model, load_network, module_delta
from desktop.library.taxonomy import ModelFamily

RANK, ALPHA = 4, 2.0


@pytest.fixture
def sd1(tiny_sd1: Path):
    return load_model(tiny_sd1, plan_devices("cpu", "fp32"))


def unet_output(model) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    config = model.unet.config
    latents = torch.randn(1, config.in_channels, 8, 8, generator=generator)
    context = torch.randn(1, 77, config.cross_attention_dim, generator=generator)
    with torch.no_grad():
        return model.unet(latents, torch.tensor([500]), encoder_hidden_states=context).sample


def kohya_lora_for(model, path: Path, *, seed: int = 1) -> dict[str, torch.Tensor]:
    """A kohya file with a module for every attention, feed-forward and proj layer of the model (and the TE)."""
    generator = torch.Generator().manual_seed(seed)
    tensors: dict[str, torch.Tensor] = {}
    for name, target in _kohya_targets(model).items():
        if not name.startswith(("lora_unet_", "lora_te_")):
            continue
        if not any(part in name for part in ("attn1", "attn2", "ff_net", "proj_in", "proj_out", "self_attn", "mlp_fc")):
            continue
        weight = target.module.weight
        out_features, in_features = weight.shape[0], weight[0].numel()
        down = torch.randn(RANK, in_features, generator=generator)
        if weight.dim() == 4:
            down = down.reshape(RANK, *weight.shape[1:])  # a convolution: kohya keeps the kernel shape
        tensors[f"{name}.lora_down.weight"] = down
        tensors[f"{name}.lora_up.weight"] = torch.randn(out_features, RANK, generator=generator) * 0.1
        tensors[f"{name}.alpha"] = torch.tensor(ALPHA)
    save_file({k: v.half() if k.endswith("weight") else v for k, v in tensors.items()}, str(path))
    return tensors


def test_a_kohya_lora_patches_w_plus_w_alpha_over_rank_up_down_and_restores_bit_for_bit(sd1, tmp_path):
    path = tmp_path / "detail.safetensors"
    kohya_lora_for(sd1, path)
    network = load_network(path)
    base_params = {name: p.detach().clone() for name, p in sd1.unet.named_parameters()}
    base_te = {name: p.detach().clone() for name, p in sd1.text_encoders[0].named_parameters()}
    base_out = unet_output(sd1)
    patcher = NetworkPatcher(sd1)

    [match] = patcher.apply([(network, 0.7, 0.8)])
    assert match.matched == match.total == len(network.modules) and not match.wrong_base
    q = sd1.unet.down_blocks[0].attentions[0].transformer_blocks[0].attn2.to_q.weight
    parts = network.modules["lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_q"]
    expected = base_params["down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_q.weight"] + 0.8 * (ALPHA / RANK) * (
        parts["lora_up.weight"].float() @ parts["lora_down.weight"].float()
    )
    torch.testing.assert_close(q, expected, rtol=0, atol=1e-6)
    fc1 = next(p for name, p in sd1.text_encoders[0].named_parameters() if name.endswith("layers.0.mlp.fc1.weight"))
    te_parts = network.modules["lora_te_text_model_encoder_layers_0_mlp_fc1"]
    te_name = next(name for name in base_te if name.endswith("layers.0.mlp.fc1.weight"))
    torch.testing.assert_close(fc1, base_te[te_name] + 0.7 * (ALPHA / RANK) * (te_parts["lora_up.weight"].float() @ te_parts["lora_down.weight"].float()), rtol=0, atol=1e-6)
    assert not torch.allclose(unet_output(sd1), base_out)

    assert patcher.apply([(network, 0.7, 0.8)]) == [match]  # the same list again: nothing to do
    patcher.restore()
    assert all(torch.equal(p, base_params[name]) for name, p in sd1.unet.named_parameters())
    assert all(torch.equal(p, base_te[name]) for name, p in sd1.text_encoders[0].named_parameters())
    patcher.apply([(network, 0.0, 0.0)])  # weight 0 is the base model
    assert torch.equal(unet_output(sd1), base_out)


def test_several_networks_add_and_a_negative_weight_subtracts(sd1, tmp_path):
    a, b = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    kohya_lora_for(sd1, a, seed=1)
    kohya_lora_for(sd1, b, seed=2)
    first, second = load_network(a), load_network(b)
    base = sd1.unet.mid_block.attentions[0].transformer_blocks[0].attn1.to_k.weight.detach().clone()
    name = "lora_unet_mid_block_attentions_0_transformer_blocks_0_attn1_to_k"
    delta_a = module_delta(first.modules[name], base.shape)
    delta_b = module_delta(second.modules[name], base.shape)
    patcher = NetworkPatcher(sd1)
    patcher.apply([(first, 1.0, 1.0), (second, 1.0, -0.5)])
    torch.testing.assert_close(sd1.unet.mid_block.attentions[0].transformer_blocks[0].attn1.to_k.weight, base + delta_a - 0.5 * delta_b, rtol=0, atol=1e-6)
    patcher.apply([(second, 1.0, 1.0)])  # a different list: restore first, then apply
    torch.testing.assert_close(sd1.unet.mid_block.attentions[0].transformer_blocks[0].attn1.to_k.weight, base + delta_b, rtol=0, atol=1e-6)


def test_an_sdxl_lora_on_sd1_matches_nothing_and_changes_nothing(sd1, tmp_path):
    """BAD_INPUTS 12: a warning with the counts, never a crash, never a silent partial patch."""
    path = tmp_path / "xl.safetensors"
    save_file(
        {
            "lora_te1_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight": torch.zeros(4, 768),
            "lora_te1_text_model_encoder_layers_0_self_attn_q_proj.lora_up.weight": torch.zeros(768, 4),
            "lora_unet_input_blocks_4_1_transformer_blocks_0_attn2_to_k.lora_down.weight": torch.ones(4, 2048),
            "lora_unet_input_blocks_4_1_transformer_blocks_0_attn2_to_k.lora_up.weight": torch.ones(640, 4),
        },
        str(path),
    )
    before = unet_output(sd1)
    [match] = NetworkPatcher(sd1).apply([(load_network(path), 1.0, 1.0)])
    assert match.wrong_base and match.matched == 0 and match.total == 2
    assert torch.equal(unet_output(sd1), before)


def full_size_model(family: ModelFamily):
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    with torch.device("meta"):
        unet = UNet2DConditionModel.from_config(architecture.bundled_config(family, "unet"))
        encoders = [CLIPTextModel(CLIPTextConfig(**architecture.bundled_config(family, "text_encoder")))]
        if family is ModelFamily.SDXL:
            encoders.append(CLIPTextModelWithProjection(CLIPTextConfig(**architecture.bundled_config(family, "text_encoder_2"))))
    return SimpleNamespace(unet=unet, text_encoders=encoders)


def sd15_kohya_module_names() -> list[str]:
    """The 264 module names of a full SD1.5 kohya LoRA, written from the kohya layout, not from our table."""
    names = []
    transformers = [f"down_blocks_{b}_attentions_{a}" for b in range(3) for a in range(2)]
    transformers += ["mid_block_attentions_0"]
    transformers += [f"up_blocks_{b}_attentions_{a}" for b in range(1, 4) for a in range(3)]
    for block in transformers:
        names += [f"lora_unet_{block}_proj_in", f"lora_unet_{block}_proj_out"]
        for attn in ("attn1", "attn2"):
            names += [f"lora_unet_{block}_transformer_blocks_0_{attn}_{p}" for p in ("to_q", "to_k", "to_v", "to_out_0")]
        names += [f"lora_unet_{block}_transformer_blocks_0_ff_net_0_proj", f"lora_unet_{block}_transformer_blocks_0_ff_net_2"]
    for layer in range(12):
        names += [f"lora_te_text_model_encoder_layers_{layer}_self_attn_{p}" for p in ("q_proj", "k_proj", "v_proj", "out_proj")]
        names += [f"lora_te_text_model_encoder_layers_{layer}_mlp_{p}" for p in ("fc1", "fc2")]
    return names


def test_every_module_of_a_full_sd15_kohya_lora_finds_its_layer():
    names = sd15_kohya_module_names()
    assert len(names) == 264 and sum(n.startswith("lora_unet_") for n in names) == 192
    targets = _kohya_targets(full_size_model(ModelFamily.SD1))
    missing = [name for name in names if name not in targets]
    assert missing == []


def test_sdxl_sgm_block_names_map_to_the_diffusers_layers():
    model = full_size_model(ModelFamily.SDXL)
    targets = _kohya_targets(model)
    names = [
        "lora_unet_input_blocks_4_1_transformer_blocks_0_attn2_to_k",
        "lora_unet_input_blocks_7_1_transformer_blocks_9_ff_net_2",
        "lora_unet_middle_block_1_transformer_blocks_0_attn1_to_q",
        "lora_unet_output_blocks_0_1_transformer_blocks_0_attn1_to_out_0",
        "lora_unet_output_blocks_5_1_proj_out",
        "lora_te1_text_model_encoder_layers_0_self_attn_q_proj",
        "lora_te2_text_model_encoder_layers_31_mlp_fc2",
    ]
    network = SimpleNamespace(peft=False, modules=dict.fromkeys(names, {}))
    mapped = _names_for_model(network, model)
    resolved = {name: mapped.get(name, name) for name in names}
    assert all(target in targets for target in resolved.values()), resolved
    assert resolved["lora_unet_input_blocks_4_1_transformer_blocks_0_attn2_to_k"] == "lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn2_to_k"
    assert resolved["lora_unet_middle_block_1_transformer_blocks_0_attn1_to_q"] == "lora_unet_mid_block_attentions_0_transformer_blocks_0_attn1_to_q"
    assert targets[resolved["lora_unet_input_blocks_4_1_transformer_blocks_0_attn2_to_k"]].module.weight.shape == (640, 2048)


def test_loha_and_lokr_deltas_follow_the_lycoris_formulas():
    g = torch.Generator().manual_seed(0)
    w1a, w1b, w2a, w2b = (torch.randn(*shape, generator=g) for shape in ((8, 2), (2, 6), (8, 2), (2, 6)))
    loha = module_delta({"hada_w1_a": w1a, "hada_w1_b": w1b, "hada_w2_a": w2a, "hada_w2_b": w2b, "alpha": torch.tensor(1.0)}, torch.Size((8, 6)))
    torch.testing.assert_close(loha, (w1a @ w1b) * (w2a @ w2b) * 0.5)
    k1, k2a, k2b = torch.randn(2, 3, generator=g), torch.randn(4, 2, generator=g), torch.randn(2, 2, generator=g)
    lokr = module_delta({"lokr_w1": k1, "lokr_w2_a": k2a, "lokr_w2_b": k2b, "alpha": torch.tensor(4.0)}, torch.Size((8, 6)))
    expected = torch.stack([torch.stack([k1[i, j] * (k2a @ k2b) for j in range(3)], 1) for i in range(2)]).reshape(8, 6)
    torch.testing.assert_close(lokr, expected * 2.0)  # alpha 4 / rank 2
    conv_w2 = torch.randn(4, 2, 3, 3, generator=g)
    conv = module_delta({"lokr_w1": k1, "lokr_w2": conv_w2}, torch.Size((8, 6, 3, 3)))
    torch.testing.assert_close(conv, torch.kron(k1.reshape(2, 3, 1, 1), conv_w2))  # no factored side: no scale


def test_a_peft_format_lora_is_applied_too(sd1, tmp_path):
    g = torch.Generator().manual_seed(5)
    to_v = sd1.unet.up_blocks[1].attentions[0].transformer_blocks[0].attn2.to_v
    base = to_v.weight.detach().clone()
    down, up = torch.randn(2, base.shape[1], generator=g), torch.randn(base.shape[0], 2, generator=g)
    path = tmp_path / "peft.safetensors"
    save_file({"unet.up_blocks.1.attentions.0.transformer_blocks.0.attn2.to_v.lora_A.weight": down,
               "unet.up_blocks.1.attentions.0.transformer_blocks.0.attn2.to_v.lora_B.weight": up}, str(path))
    [match] = NetworkPatcher(sd1).apply([(load_network(path), 1.0, 0.5)])
    assert match.matched == 1
    torch.testing.assert_close(to_v.weight, base + 0.5 * (up @ down), rtol=0, atol=1e-6)  # no alpha: scale 1


def test_corrupt_and_empty_files_are_model_file_errors(tmp_path):
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    with pytest.raises(ModelFileError):
        load_network(broken)
    empty = tmp_path / "vae.safetensors"
    save_file({"encoder.conv_in.weight": torch.zeros(1)}, str(empty))
    with pytest.raises(ModelFileError, match="no LoRA"):
        load_network(empty)
