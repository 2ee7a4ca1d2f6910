"""The trainable LoRA network (issue 9): kohya's module set, names, init, forward, and taking it off again.

Expected names come from ``tests/engine/test_lora.py`` (written from kohya's layout, independent of
the code under test) and, for SDXL, from the inference side's lookup table; expected outputs from
the merged-weights formula ``W + m * alpha / rank * up @ down`` written out here.
"""

from __future__ import annotations

import copy
import math
import re
from types import SimpleNamespace

import pytest
import torch

from desktop.core.errors import UnsupportedModel
from desktop.engine.loading import load_model
from desktop.engine.networks.lora_keys import ModelLayers
from desktop.library.taxonomy import ModelFamily
from desktop.training.lora_network import LoRAModule, LoRANetwork, NetworkStateMismatch
from tests.engine.test_lora import full_sd15_shapes, kohya_sd_names, meta_model, sd15_kohya_module_names, text_output, unet_output

CONTRACT_KEY = re.compile(r"^(lora_unet|lora_te|lora_te1|lora_te2)_[A-Za-z0-9_]+\.(lora_down\.weight|lora_up\.weight|alpha)$")


@pytest.fixture(scope="module")
def tiny(checkpoints, cpu_plan):
    models = {family: load_model(checkpoints[family], cpu_plan) for family in ("sd1", "sdxl")}
    for model in models.values():
        for part in (model.unet, *model.text_encoders):
            part.requires_grad_(False)  # what the trainer does: only the LoRA learns
    return models


def network(model, family=ModelFamily.SD1, dim=4, alpha=2.0, seed=0, **options) -> LoRANetwork:
    return LoRANetwork(model, family, dim, alpha, generator=torch.Generator().manual_seed(seed), **options)


def trained(net: LoRANetwork, seed: int = 1) -> LoRANetwork:
    """Random ``lora_up`` values: a stand-in for training (kohya starts them at zero)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for lora in net.loras:
            lora.lora_up.weight.copy_(torch.randn(lora.lora_up.weight.shape, generator=generator) * 0.2)
    return net


def snapshot(model) -> dict[str, torch.Tensor]:
    parts = {"unet": model.unet, **{f"te{i}": e for i, e in enumerate(model.text_encoders)}}
    return {f"{p}.{n}": t.detach().clone() for p, module in parts.items() for n, t in module.state_dict().items()}


def same_weights(model, before: dict[str, torch.Tensor]) -> bool:
    return all(torch.equal(before[name], value) for name, value in snapshot(model).items())


# ----------------------------------------------------------------------------- full size, on the meta device


def test_full_size_sd15_network_is_kohyas_264_modules_792_fp16_cpu_tensors_with_the_configured_alpha():
    model = meta_model(ModelFamily.SD1)  # full architecture, no weights
    net = network(model, dim=16, alpha=8.0)
    assert net.module_count == 264 and (len(net.unet_loras), len(net.text_encoder_loras)) == (192, 72)
    assert set(net.module_names) == set(sd15_kohya_module_names())
    tensors = net.kohya_state_dict()
    assert len(tensors) == 792 and all(CONTRACT_KEY.match(key) for key in tensors)
    assert all(t.device.type == "cpu" and t.dtype == torch.float16 and t.is_contiguous() for t in tensors.values())
    for name, (weight_shape, in_shape) in full_sd15_shapes().items():
        conv = len(weight_shape) == 4
        assert tuple(tensors[f"{name}.lora_down.weight"].shape) == (16, *in_shape), name
        assert tuple(tensors[f"{name}.lora_up.weight"].shape) == (weight_shape[0], 16, *((1, 1) if conv else ())), name
        assert tensors[f"{name}.alpha"].shape == () and tensors[f"{name}.alpha"].item() == 8.0
    assert all(lora.scale == 0.5 for lora in net.loras)
    assert not torch.equal(tensors[f"{name}.lora_down.weight"], torch.zeros_like(tensors[f"{name}.lora_down.weight"]))
    assert all(not t.any() for key, t in tensors.items() if key.endswith("lora_up.weight"))  # training starts at the base


def test_full_size_sdxl_network_has_kohyas_986_modules_under_sgm_and_te1_te2_names():
    model = meta_model(ModelFamily.SDXL)
    net = network(model, ModelFamily.SDXL, dim=8, alpha=4.0)
    assert (len(net.unet_loras), len(net.text_encoder_loras)) == (722, 264)  # kohya's sdxl_train_network numbers
    names = net.module_names
    assert sum(n.startswith("lora_te1_") for n in names) == 72 and sum(n.startswith("lora_te2_") for n in names) == 192
    assert not any(n.startswith(("lora_unet_down_blocks", "lora_unet_up_blocks", "lora_unet_mid_block")) for n in names)
    assert "lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q" in names
    assert "lora_unet_middle_block_1_transformer_blocks_9_ff_net_2" in names
    assert "lora_unet_output_blocks_0_1_proj_out" in names
    layers = ModelLayers.of(model)  # the inference side's table finds the very layer each module trains
    assert all(layers.find(lora.lora_name).module is lora.base for lora in net.loras)


# ----------------------------------------------------------------------------- tiny models: names


def test_tiny_sd1_names_are_kohyas_lora_te_and_diffusers_unet_paths(tiny):
    model = tiny["sd1"]
    net = network(model)
    assert set(net.module_names) == set(kohya_sd_names(model.unet.config, text_layers=2))
    assert not hasattr(model.text_encoders[0], "text_model")  # transformers 5: no text_model level...
    fc1 = model.text_encoders[0].encoder.layers[1].mlp.fc1
    assert dict(zip(net.module_names, (l.base for l in net.loras)))["lora_te_text_model_encoder_layers_1_mlp_fc1"] is fc1  # ...still in the name
    layers = ModelLayers.of(model)
    assert all(layers.find(lora.lora_name).module is lora.base for lora in net.loras)


def test_tiny_sdxl_names_are_te1_te2_and_sgm_unet_paths(tiny):
    model = tiny["sdxl"]
    net = network(model, ModelFamily.SDXL)
    names = dict(zip(net.module_names, (l.base for l in net.loras)))
    big_g = model.text_encoders[1]  # CLIPTextModelWithProjection keeps text_model
    assert names["lora_te2_text_model_encoder_layers_1_self_attn_v_proj"] is big_g.text_model.encoder.layers[1].self_attn.v_proj
    assert names["lora_te1_text_model_encoder_layers_0_mlp_fc2"] is model.text_encoders[0].encoder.layers[0].mlp.fc2
    assert names["lora_unet_input_blocks_4_1_transformer_blocks_0_attn2_to_k"] is model.unet.down_blocks[1].attentions[0].transformer_blocks[0].attn2.to_k
    assert names["lora_unet_middle_block_1_proj_in"] is model.unet.mid_block.attentions[0].proj_in
    assert not any(name.startswith("lora_te_") for name in names)
    assert sum(name.startswith("lora_unet_") for name in names) == 12 * (2 + 1 + 3)  # transformers: 2 down, 1 mid, 3 up


def test_conv_dim_adds_kohyas_locon_layers_with_their_own_rank_and_alpha(tiny):
    model = tiny["sd1"]
    plain, locon = network(model), network(model, conv_dim=3, conv_alpha=1.5)
    added = {lora.lora_name: lora for lora in locon.loras if lora.lora_name not in set(plain.module_names)}
    resnet = "lora_unet_down_blocks_0_resnets_0_"
    assert {resnet + "conv1", resnet + "conv2", resnet + "time_emb_proj"} <= set(added)
    assert "lora_unet_down_blocks_0_downsamplers_0_conv" in added and "lora_unet_up_blocks_0_upsamplers_0_conv" in added
    assert "lora_unet_mid_block_resnets_1_conv2" in added and "lora_unet_conv_in" not in added
    conv = added[resnet + "conv1"]
    assert (conv.rank, float(conv.alpha), conv.scale) == (3, 1.5, 0.5)
    assert tuple(conv.lora_down.weight.shape) == (3, 32, 3, 3) and tuple(conv.lora_up.weight.shape) == (32, 3, 1, 1)
    assert added["lora_unet_down_blocks_0_downsamplers_0_conv"].lora_down.stride == (2, 2)
    assert (added[resnet + "time_emb_proj"].rank, float(added[resnet + "time_emb_proj"].alpha)) == (4, 2.0)  # Linear: network dim
    assert locon.network_args == {"conv_dim": "3", "conv_alpha": "1.5"} and plain.network_args == {}
    xl = network(tiny["sdxl"], ModelFamily.SDXL, conv_dim=2)
    xl_names = set(xl.module_names)
    assert {"lora_unet_input_blocks_1_0_in_layers_2", "lora_unet_input_blocks_1_0_emb_layers_1", "lora_unet_input_blocks_3_0_op",
            "lora_unet_output_blocks_2_2_conv", "lora_unet_middle_block_2_out_layers_3"} <= xl_names  # fmt: skip
    layers = ModelLayers.of(tiny["sdxl"])
    assert all(layers.find(lora.lora_name).module is lora.base for lora in xl.loras)
    assert xl.conv_alpha == 1.0  # kohya's default when conv_alpha is not given


def test_unet_only_text_encoder_only_and_separate_parameter_groups(tiny):
    model = tiny["sd1"]
    unet_only = network(model, train_text_encoder=False)
    te_only = network(model, train_unet=False)
    assert all(n.startswith("lora_unet_") for n in unet_only.module_names) and unet_only.module_count == 84
    assert all(n.startswith("lora_te_") for n in te_only.module_names) and te_only.module_count == 12
    both = network(model)
    unet_params, te_params = both.unet_parameters(), both.text_encoder_parameters()
    assert len(unet_params) == 2 * 84 and len(te_params) == 2 * 12
    assert {id(p) for p in unet_params} | {id(p) for p in te_params} == {id(p) for p in both.parameters()}
    assert not {id(p) for p in unet_params} & {id(p) for p in te_params}
    base = {id(p) for p in model.unet.parameters()} | {id(p) for p in model.text_encoders[0].parameters()}
    assert not base & {id(p) for p in both.parameters()}  # the base layers are referenced, not registered


def test_kohya_initialisation_is_seeded_kaiming_uniform_down_and_zero_up():
    model = meta_model(ModelFamily.SD1)
    a, b, c = network(model, seed=5), network(model, seed=5), network(model, seed=6)
    sa, sb, sc = a.kohya_state_dict(None), b.kohya_state_dict(None), c.kohya_state_dict(None)
    down = "lora_unet_mid_block_attentions_0_proj_in.lora_down.weight"
    assert all(torch.equal(sa[k], sb[k]) for k in sa) and not torch.equal(sa[down], sc[down])
    for lora in a.loras[:20]:
        fan_in = lora.lora_down.weight[0].numel()
        bound = 1 / math.sqrt(fan_in)  # kaiming_uniform_ with a = sqrt(5)
        assert lora.lora_down.weight.abs().max() <= bound and lora.lora_down.weight.abs().max() > bound / 2
        assert lora.lora_down.weight.dtype == torch.float32 and not lora.lora_up.weight.any()


def test_alpha_none_or_zero_is_the_rank_and_an_unsupported_family_is_refused():
    layer = torch.nn.Linear(8, 8)
    assert float(LoRAModule("lora_unet_x", layer, 4, None).alpha) == 4.0
    assert LoRAModule("lora_unet_x", layer, 4, 0).scale == 1.0
    with pytest.raises(UnsupportedModel, match="Flux"):
        LoRANetwork(SimpleNamespace(unet=torch.nn.Module(), text_encoders=[]), ModelFamily.FLUX)


# ----------------------------------------------------------------------------- forward


def merged_outputs(model, net: LoRANetwork, multiplier: float):
    """Outputs of the base model with ``W + m * alpha / rank * up @ down`` merged in, then the weights put back."""
    saved = {}
    with torch.no_grad():
        for lora in net.loras:
            weight = lora.base.weight
            saved[id(weight)] = (weight, weight.detach().clone())
            up = lora.lora_up.weight.reshape(lora.lora_up.weight.shape[0], -1)
            down = lora.lora_down.weight.reshape(lora.rank, -1)
            weight += multiplier * (float(lora.alpha) / lora.rank) * (up @ down).reshape(weight.shape)
    try:
        return unet_output(model), [text_output(e) for e in model.text_encoders]
    finally:
        with torch.no_grad():
            for weight, value in saved.values():
                weight.copy_(value)


@pytest.mark.parametrize("family", ["sd1", "sdxl"])
def test_the_live_network_computes_the_merged_weights_and_multiplier_0_and_remove_give_the_base_bit_for_bit(tiny, family):
    model = tiny[family]
    before = snapshot(model)
    base_unet, base_text = unet_output(model), [text_output(e) for e in model.text_encoders]
    net = trained(network(model, ModelFamily(family), conv_dim=2, conv_alpha=1.0))
    try:
        net.apply()
        net.apply()  # idempotent: not installed twice
        net.set_multiplier(0.7)
        live_unet, live_text = unet_output(model), [text_output(e) for e in model.text_encoders]
        assert not torch.allclose(live_unet, base_unet)
        net.set_multiplier(0.0)
        assert torch.equal(unet_output(model), base_unet)
        assert all(torch.equal(text_output(e), t) for e, t in zip(model.text_encoders, base_text))
    finally:
        net.remove()
    assert torch.equal(unet_output(model), base_unet)
    assert all("forward" not in lora.base.__dict__ for lora in net.loras)  # the class's own forward again
    assert same_weights(model, before)  # the base weights were never written
    expected_unet, expected_text = merged_outputs(model, net, 0.7)
    torch.testing.assert_close(live_unet, expected_unet, rtol=1e-4, atol=1e-5)
    for live, expected in zip(live_text, expected_text):
        torch.testing.assert_close(live, expected, rtol=1e-4, atol=1e-5)


def test_remove_restores_an_instance_forward_that_was_there_before():
    layer = torch.nn.Linear(4, 4)
    own = lambda x: x * 3  # noqa: E731 - e.g. another tool's hook
    layer.forward = own
    lora = LoRAModule("lora_unet_x", layer, 2, 1.0)
    assert torch.equal(lora(torch.ones(1, 4)), torch.full((1, 4), 3.0))  # callable before it is installed
    lora.apply_to_base()
    assert layer.forward == lora.forward and torch.equal(layer(torch.ones(1, 4)), torch.full((1, 4), 3.0))  # up is zero
    lora.remove_from_base()
    assert layer.__dict__["forward"] is own


def test_training_moves_only_the_lora_in_fp32_beside_a_bf16_base(tiny):
    model = tiny["sd1"]
    unet = copy.deepcopy(model.unet).to(torch.bfloat16)
    half = SimpleNamespace(unet=unet, text_encoders=model.text_encoders)
    net = network(half, train_text_encoder=False)
    before = {n: p.detach().clone() for n, p in unet.named_parameters()}
    optimizer = torch.optim.AdamW(net.unet_parameters(), lr=1e-2)
    net.apply()
    try:
        generator = torch.Generator().manual_seed(0)
        latents = torch.randn(1, 4, 8, 8, generator=generator).to(torch.bfloat16)
        context = torch.randn(1, 77, 32, generator=generator).to(torch.bfloat16)
        for _ in range(2):
            out = unet(latents, torch.tensor([10.0]), encoder_hidden_states=context).sample
            assert out.dtype == torch.bfloat16
            loss = out.float().pow(2).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    finally:
        net.remove()
    assert all(p.grad is None for p in unet.parameters())
    assert all(torch.equal(before[n], p) for n, p in unet.named_parameters())
    assert all(p.dtype == torch.float32 for p in net.parameters())
    assert any(lora.lora_up.weight.any() for lora in net.unet_loras)  # the LoRA learned something


def test_gradient_checkpointing_gives_the_same_gradients(tiny, monkeypatch):
    model = tiny["sd1"]
    grads = []
    checkpointed_calls = []
    checkpoint = torch.utils.checkpoint.checkpoint
    monkeypatch.setattr(torch.utils.checkpoint, "checkpoint", lambda *a, **k: checkpointed_calls.append(1) or checkpoint(*a, **k))
    for checkpointing in (False, True):
        unet = copy.deepcopy(model.unet).train()
        if checkpointing:
            unet.enable_gradient_checkpointing()
        net = trained(network(SimpleNamespace(unet=unet, text_encoders=model.text_encoders), train_text_encoder=False))
        net.apply()
        generator = torch.Generator().manual_seed(0)
        latents, context = torch.randn(2, 4, 8, 8, generator=generator), torch.randn(2, 77, 32, generator=generator)
        unet(latents, torch.tensor([10.0, 500.0]), encoder_hidden_states=context).sample.pow(2).mean().backward()
        net.remove()
        grads.append([p.grad.clone() for p in net.unet_parameters()])
    assert checkpointed_calls  # the second pass really recomputed blocks
    assert all(g.abs().sum() > 0 for g in grads[0][1::2])  # every lora_up got a gradient
    for plain, checkpointed in zip(*grads):
        torch.testing.assert_close(plain, checkpointed, rtol=1e-5, atol=1e-7)


# ----------------------------------------------------------------------------- resume


def test_load_kohya_state_dict_round_trips_and_refuses_what_does_not_fit(tiny):
    model = tiny["sd1"]
    source = trained(network(model, seed=1))
    target = network(model, seed=2)
    target.load_kohya_state_dict(source.kohya_state_dict(torch.float32))
    assert all(torch.equal(a, b) for a, b in zip(source.state_dict().values(), target.state_dict().values()))
    fp16 = source.kohya_state_dict()  # a saved file: fp16 weights and alpha
    target.load_kohya_state_dict(fp16)
    assert all(torch.equal(target.state_dict()[k], v.float()) for k, v in fp16.items())

    untouched = {k: v.clone() for k, v in target.state_dict().items()}
    missing = dict(fp16)
    missing.pop("lora_te_text_model_encoder_layers_0_mlp_fc1.lora_up.weight")
    extra = {**fp16, "lora_unet_conv_in.lora_up.weight": torch.zeros(1)}
    cases = {
        "1 tensors missing": missing,
        "this network does not have": extra,
        "another shape": network(model, dim=8).kohya_state_dict(),
        "another alpha": network(model, alpha=3.0).kohya_state_dict(),
    }
    for message, tensors in cases.items():
        with pytest.raises(NetworkStateMismatch, match=message):
            target.load_kohya_state_dict(tensors)
    assert all(torch.equal(untouched[k], v) for k, v in target.state_dict().items())  # nothing half-loaded
