"""LoRA and LyCORIS merged into real model weights (issue 8).

The files are written here in the exact layouts trainers write (kohya names per CONTRACTS.md:
diffusers paths for SD1, SGM paths for SDXL taken from the independent LDM layout in
``tests/fixtures/ldm_layout.py``; diffusers/PEFT names), and every expected delta is computed here
from A1111's formulas written out independently (loops, einsum, Kronecker blocks), not by the
module under test. diffusers' own ``load_lora_weights`` (kohya path, through peft) is the second,
independent implementation the UNet and text-encoder outputs are compared with.
"""

from __future__ import annotations

import copy
import math
import pickle
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from desktop.core.errors import ModelFileError, UnsupportedModel
from desktop.engine import architecture
from desktop.engine.devices import plan_devices
from desktop.engine.loading import load_model
from desktop.engine.networks.lora import LoadedNetwork, NetworkMatch, NetworkModule, NetworkPatcher, load_network
from desktop.engine.networks.lora_keys import ModelLayers
from desktop.library.taxonomy import ModelFamily
from tests.fixtures import ldm_layout

RANK, ALPHA = 4, 2.0
ATTENTION_PARTS = ("attn1", "attn2", "ff_net", "proj_in", "proj_out", "self_attn", "mlp_fc")


# ----------------------------------------------------------------------------- models


@pytest.fixture(scope="module")
def tiny_models(checkpoints):
    plan = plan_devices("cpu", "fp32")
    models = {family: load_model(checkpoints[family], plan) for family in ("sd1", "sd2", "sdxl")}
    snapshots = {family: _all_parameters(model) for family, model in models.items()}
    return models, snapshots


def _components(model) -> dict[str, torch.nn.Module]:
    parts = {"unet": model.unet, "vae": model.vae}
    parts.update({f"text_encoder_{i}": encoder for i, encoder in enumerate(model.text_encoders)})
    return parts


def _all_parameters(model) -> dict[str, torch.Tensor]:
    return {f"{part}.{name}": p.detach().clone() for part, module in _components(model).items() for name, p in module.named_parameters()}


def _changed(model, snapshot) -> set[str]:
    """Names of the parameters that are no longer bit-identical to the snapshot."""
    current = {f"{part}.{name}": p for part, module in _components(model).items() for name, p in module.named_parameters()}
    return {name for name, p in current.items() if not torch.equal(p, snapshot[name])}


def _model_fixture(tiny_models, family):
    models, snapshots = tiny_models
    model = models[family]
    yield model
    with torch.no_grad():  # whatever a failing test left behind, the next one starts from the file's weights
        current = {f"{part}.{name}": p for part, module in _components(model).items() for name, p in module.named_parameters()}
        for name, p in current.items():
            p.copy_(snapshots[family][name])


@pytest.fixture
def sd1(tiny_models):
    yield from _model_fixture(tiny_models, "sd1")


@pytest.fixture
def sd2(tiny_models):
    yield from _model_fixture(tiny_models, "sd2")


@pytest.fixture
def sdxl(tiny_models):
    yield from _model_fixture(tiny_models, "sdxl")


def unet_output(model) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    config = model.unet.config
    latents = torch.randn(1, config.in_channels, 8, 8, generator=generator)
    context = torch.randn(1, 77, config.cross_attention_dim, generator=generator)
    kwargs = {}
    if config.addition_embed_type == "text_time":
        pooled = config.projection_class_embeddings_input_dim - 6 * config.addition_time_embed_dim
        kwargs["added_cond_kwargs"] = {"text_embeds": torch.randn(1, pooled, generator=generator), "time_ids": torch.ones(1, 6)}
    with torch.no_grad():
        return model.unet(latents, torch.tensor([500.5]), encoder_hidden_states=context, **kwargs).sample


def text_output(encoder) -> torch.Tensor:
    ids = (torch.arange(77) * 37 % 1000).reshape(1, 77)
    with torch.no_grad():
        return encoder(ids).last_hidden_state


def flat_layers(module: torch.nn.Module) -> dict[str, torch.nn.Module]:
    """diffusers/transformers path with dots as underscores -> layer (what kohya SD1 names spell)."""
    return {path.removeprefix("text_model.").replace(".", "_"): m for path, m in module.named_modules() if path}


# ----------------------------------------------------------------------------- kohya files


def kohya_sd_names(unet_config, text_layers: int) -> list[str]:
    """kohya module names of an SD1/SD2 LoRA on every transformer and text-encoder layer.

    Written from kohya's layout (diffusers block paths: CrossAttn blocks have ``layers_per_block``
    attentions going down, one more going up, one in the middle), not from the table under test.
    """
    per_level = unet_config.layers_per_block
    blocks = [
        f"down_blocks_{level}_attentions_{i}"
        for level, kind in enumerate(unet_config.down_block_types) if "CrossAttn" in kind for i in range(per_level)
    ]
    blocks.append("mid_block_attentions_0")
    blocks += [
        f"up_blocks_{level}_attentions_{i}"
        for level, kind in enumerate(unet_config.up_block_types) if "CrossAttn" in kind for i in range(per_level + 1)
    ]  # fmt: skip
    names = []
    for block in blocks:
        names += [f"lora_unet_{block}_proj_in", f"lora_unet_{block}_proj_out"]
        for attn in ("attn1", "attn2"):
            names += [f"lora_unet_{block}_transformer_blocks_0_{attn}_{p}" for p in ("to_q", "to_k", "to_v", "to_out_0")]
        names += [f"lora_unet_{block}_transformer_blocks_0_ff_net_0_proj", f"lora_unet_{block}_transformer_blocks_0_ff_net_2"]
    for layer in range(text_layers):
        names += [f"lora_te_text_model_encoder_layers_{layer}_self_attn_{p}" for p in ("q_proj", "k_proj", "v_proj", "out_proj")]
        names += [f"lora_te_text_model_encoder_layers_{layer}_mlp_{p}" for p in ("fc1", "fc2")]
    return names


def kohya_metadata(base: str, rank: int = RANK, alpha: float = ALPHA) -> dict[str, str]:
    return {
        "ss_v2": "False", "ss_base_model_version": base, "ss_network_module": "networks.lora",
        "ss_network_dim": str(rank), "ss_network_alpha": str(alpha), "ss_network_args": "{}",
        "ss_output_name": "detail", "ss_learning_rate": "0.0001", "ss_num_epochs": "1", "ss_steps": "10",
        "ss_resolution": "(512, 512)", "ss_tag_frequency": '{"img": {"a cat": 1}}',
        "modelspec.sai_model_spec": "1.0.1", "modelspec.architecture": "stable-diffusion-v1/lora",
    }  # fmt: skip


def lora_pair(out_features: int, in_shape: tuple[int, ...], generator: torch.Generator, rank: int = RANK, conv: bool = False):
    """kohya's down/up for a layer: down keeps a convolution's kernel, up is 1x1."""
    down = torch.randn(rank, *in_shape, generator=generator) * 0.3
    up = torch.randn(out_features, rank, *((1, 1) if conv else ()), generator=generator) * 0.1
    return down, up


def write_kohya(path: Path, shapes: dict[str, tuple[tuple[int, ...], tuple[int, ...]]], *, seed=1, rank=RANK, alpha=ALPHA, base="sd_v1") -> dict[str, torch.Tensor]:
    """``shapes``: module name -> (weight shape, down's input shape). fp16 on disk, alpha as a 0-dim fp32 tensor."""
    generator = torch.Generator().manual_seed(seed)
    tensors = {}
    for name, (weight_shape, in_shape) in shapes.items():
        down, up = lora_pair(weight_shape[0], in_shape, generator, rank, conv=len(weight_shape) == 4)
        tensors[f"{name}.lora_down.weight"] = down.half()
        tensors[f"{name}.lora_up.weight"] = up.half()
        tensors[f"{name}.alpha"] = torch.tensor(alpha)
    save_file(tensors, str(path), metadata=kohya_metadata(base, rank, alpha))
    return tensors


def sd_lora_shapes(model, names: list[str]) -> dict[str, tuple[tuple[int, ...], tuple[int, ...]]]:
    unet, text = flat_layers(model.unet), flat_layers(model.text_encoders[0])
    shapes = {}
    for name in names:
        layer = unet[name.removeprefix("lora_unet_")] if name.startswith("lora_unet_") else text[name.removeprefix("lora_te_text_model_")]
        weight = layer.weight.shape
        shapes[name] = (tuple(weight), tuple(weight[1:]))
    return shapes


def lora_delta(tensors: dict[str, torch.Tensor], name: str, weight_shape, rank=RANK, alpha=ALPHA) -> torch.Tensor:
    """W' - W = alpha / rank * up @ down, reshaped to the weight (the merged-weights formula)."""
    down = tensors[f"{name}.lora_down.weight"].float().reshape(rank, -1)
    up = tensors[f"{name}.lora_up.weight"].float().reshape(-1, rank)
    return (alpha / rank * (up @ down)).reshape(weight_shape)


# ----------------------------------------------------------------------------- kohya on SD1.5


def test_kohya_lora_on_tiny_sd1_merges_w_plus_w_alpha_over_rank_up_down_and_restores_bit_for_bit(sd1, tmp_path, tiny_models):
    snapshot = tiny_models[1]["sd1"]
    names = kohya_sd_names(sd1.unet.config, sd1.text_encoders[0].config.num_hidden_layers)
    assert len(names) == 7 * 12 + 2 * 6  # 7 transformers in the tiny UNet, 2 text-encoder layers
    path = tmp_path / "detail.safetensors"
    tensors = write_kohya(path, sd_lora_shapes(sd1, names))
    network = load_network(path)
    assert (network.name, len(network.modules), network.tensor_count) == ("detail", len(names), 3 * len(names))
    assert network.metadata["ss_network_module"] == "networks.lora"
    base_unet, base_text = unet_output(sd1), text_output(sd1.text_encoders[0])
    patcher = NetworkPatcher(sd1)

    [match] = patcher.apply([(network, 0.7, 0.8)])
    assert (match.matched, match.total, match.wrong_base, match.unmatched) == (len(names), len(names), False, ())
    assert match.complete and match.warning() is None
    unet, text = flat_layers(sd1.unet), flat_layers(sd1.text_encoders[0])
    expected_changed = set()
    for name in names:
        if name.startswith("lora_unet_"):
            root, layer, multiplier, part = sd1.unet, unet[name[len("lora_unet_"):]], 0.8, "unet"
        else:
            root, layer, multiplier, part = sd1.text_encoders[0], text[name[len("lora_te_text_model_"):]], 0.7, "text_encoder_0"
        full = next(n for n, m in root.named_modules() if m is layer)
        base = snapshot[f"{part}.{full}.weight"]
        expected = base + multiplier * lora_delta(tensors, name, base.shape)
        torch.testing.assert_close(layer.weight, expected, rtol=0, atol=2e-6, msg=name)
        expected_changed.add(f"{part}.{full}.weight")
    assert _changed(sd1, snapshot) == expected_changed  # nothing else moved: biases, norms, VAE
    assert not torch.allclose(unet_output(sd1), base_unet)
    assert not torch.allclose(text_output(sd1.text_encoders[0]), base_text)

    versions = [p._version for p in sd1.unet.parameters()]
    assert patcher.apply([(network, 0.7, 0.8)]) == [match]  # the same list again: not one write
    assert [p._version for p in sd1.unet.parameters()] == versions

    patcher.restore()
    assert _changed(sd1, snapshot) == set()
    patcher.apply([(network, 0.0, 0.0)])  # weight 0 is the base model, exactly
    assert torch.equal(unet_output(sd1), base_unet)
    assert _changed(sd1, snapshot) == set()


def sd15_kohya_module_names() -> list[str]:
    """The 264 modules of a full SD1.5 kohya LoRA (CONTRACTS: 192 UNet + 72 text encoder), written out."""
    config = SimpleNamespace(
        layers_per_block=2,
        down_block_types=["CrossAttnDownBlock2D"] * 3 + ["DownBlock2D"],
        up_block_types=["UpBlock2D"] + ["CrossAttnUpBlock2D"] * 3,
    )
    return kohya_sd_names(config, text_layers=12)


def meta_model(family: ModelFamily):
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    with torch.device("meta"):
        unet = UNet2DConditionModel.from_config(architecture.bundled_config(family, "unet"))
        encoders = [CLIPTextModel(CLIPTextConfig(**architecture.bundled_config(family, "text_encoder")))]
        if family is ModelFamily.SDXL:
            encoders.append(CLIPTextModelWithProjection(CLIPTextConfig(**architecture.bundled_config(family, "text_encoder_2"))))
    return SimpleNamespace(unet=unet, text_encoders=encoders)


def full_sd15_shapes() -> dict[str, tuple[tuple[int, ...], tuple[int, ...]]]:
    """Weight shape and down input for each of the 264 modules, from SD1.5's widths (not from a model)."""
    channels = {"down_blocks_0": 320, "down_blocks_1": 640, "down_blocks_2": 1280, "mid_block": 1280,
                "up_blocks_1": 1280, "up_blocks_2": 640, "up_blocks_3": 320}  # fmt: skip
    shapes = {}
    for name in sd15_kohya_module_names():
        if name.startswith("lora_te_"):
            out_f, in_f = {"mlp_fc1": (3072, 768), "mlp_fc2": (768, 3072)}.get(name[-7:], (768, 768))
            shapes[name] = ((out_f, in_f), (in_f,))
            continue
        c = next(width for block, width in channels.items() if name.startswith(f"lora_unet_{block}_"))
        if name.endswith(("proj_in", "proj_out")):
            shapes[name] = ((c, c, 1, 1), (c, 1, 1))  # SD1.5's 1x1 convolutions
        elif name.endswith(("attn2_to_k", "attn2_to_v")):
            shapes[name] = ((c, 768), (768,))
        elif name.endswith("ff_net_0_proj"):
            shapes[name] = ((8 * c, c), (c,))
        elif name.endswith("ff_net_2"):
            shapes[name] = ((c, 4 * c), (4 * c,))
        else:
            shapes[name] = ((c, c), (c,))
    return shapes


def test_a_full_sd15_kohya_lora_has_264_modules_and_792_tensors_and_every_one_fits(tmp_path):
    model = meta_model(ModelFamily.SD1)
    path = tmp_path / "full.safetensors"
    write_kohya(path, full_sd15_shapes(), rank=16, alpha=8.0)
    network = load_network(path)
    assert (len(network.modules), network.tensor_count) == (264, 792)
    assert sum(name.startswith("lora_unet_") for name in network.modules) == 192

    match = NetworkPatcher(model).match(network)
    assert (match.matched, match.total, match.wrong_base, match.misfits) == (264, 264, False, 0)
    # ...and those are ALL the layers of every transformer and every text-encoder layer.
    layers = ModelLayers.of(model)
    targets = {id(layers.find(name).module) for name in network.modules}
    transformer_layers = {
        id(m) for p, m in model.unet.named_modules() if ".attentions." in p and isinstance(m, (torch.nn.Linear, torch.nn.Conv2d))
    }
    encoder_layers = {id(m) for p, m in model.text_encoders[0].named_modules() if ".layers." in p and isinstance(m, torch.nn.Linear)}
    assert len(transformer_layers) == 192 and len(encoder_layers) == 72
    assert targets == transformer_layers | encoder_layers


@pytest.mark.slow
def test_full_size_sd15_apply_and_restore_timings_and_bit_identical_restore(tmp_path):
    """Full-size SD1.5 UNet + CLIP-L (fp16, CPU) with a rank-16 LoRA on all 264 modules: times printed."""
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    with torch.device("meta"):
        unet = UNet2DConditionModel.from_config(architecture.bundled_config(ModelFamily.SD1, "unet"))
        encoder = CLIPTextModel(CLIPTextConfig(**architecture.bundled_config(ModelFamily.SD1, "text_encoder")))
    generator = torch.Generator().manual_seed(0)
    model = SimpleNamespace(unet=unet.to_empty(device="cpu").half(), text_encoders=[encoder.to_empty(device="cpu").half()])
    path = tmp_path / "full.safetensors"
    tensors = write_kohya(path, full_sd15_shapes(), rank=16, alpha=8.0)
    network = load_network(path)
    layers = ModelLayers.of(model)
    touched = {name: layers.find(name).module.weight for name in network.modules}
    with torch.no_grad():
        for p in (*model.unet.parameters(), *model.text_encoders[0].parameters()):
            p.zero_()
        for weight in touched.values():  # random values where the LoRA lands
            weight.copy_(torch.randn(weight.shape, generator=generator) * 0.02)
    before = {name: w.detach().clone() for name, w in touched.items()}
    patcher = NetworkPatcher(model)

    timings = {}
    started = time.perf_counter()
    [match] = patcher.apply([(network, 1.0, 1.0)])
    timings["first apply (with backups)"] = time.perf_counter() - started
    started = time.perf_counter()
    patcher.apply([(network, 1.0, 1.0)])
    timings["same list again"] = time.perf_counter() - started
    started = time.perf_counter()
    patcher.apply([(network, 1.0, 0.5)])
    timings["switch weight (restore + apply)"] = time.perf_counter() - started
    started = time.perf_counter()
    patcher.restore()
    timings["restore"] = time.perf_counter() - started
    print("\n" + "\n".join(f"  {what}: {seconds * 1000:.0f} ms" for what, seconds in timings.items()))
    print(f"  {sum(w.numel() for w in touched.values()) / 1e6:.0f} M weights touched")

    assert match.matched == 264
    assert all(torch.equal(touched[name], before[name]) for name in touched)
    name = "lora_unet_up_blocks_3_attentions_2_transformer_blocks_0_ff_net_0_proj"
    patcher.apply([(network, 1.0, 1.0)])
    expected = (before[name].float() + lora_delta(tensors, name, before[name].shape, rank=16, alpha=8.0)).half()
    assert torch.equal(touched[name], expected)  # fp32 sum, one rounding to fp16
    patcher.restore()


# ----------------------------------------------------------------------------- diffusers as the reference


def _diffusers_pipeline(model):
    from diffusers import EulerDiscreteScheduler, StableDiffusionPipeline, StableDiffusionXLPipeline

    scheduler = EulerDiscreteScheduler(steps_offset=1)
    if len(model.text_encoders) == 2:
        return StableDiffusionXLPipeline(
            vae=model.vae, text_encoder=copy.deepcopy(model.text_encoders[0]), text_encoder_2=copy.deepcopy(model.text_encoders[1]),
            tokenizer=model.tokenizers[0], tokenizer_2=model.tokenizers[1], unet=copy.deepcopy(model.unet), scheduler=scheduler,
        )  # fmt: skip
    return StableDiffusionPipeline(
        vae=model.vae, text_encoder=copy.deepcopy(model.text_encoders[0]), tokenizer=model.tokenizers[0],
        unet=copy.deepcopy(model.unet), scheduler=scheduler, safety_checker=None, feature_extractor=None,
        requires_safety_checker=False,
    )  # fmt: skip


def sdxl_kohya_shapes(hp: dict, *, every_layer: bool = False) -> dict[str, tuple[tuple[int, ...], tuple[int, ...]]]:
    """kohya SDXL module names: SGM UNet paths from the independent LDM layout, HF names for both encoders.

    The transformers' layers, or with ``every_layer`` every Linear/Conv of the UNet (LoCon: resnet
    and sampler convolutions, time and label embeddings, conv_in/conv_out).
    """
    shapes = {}
    unet = ldm_layout.unet_shapes(**hp["unet"], prefix="")
    for key, shape in unet.items():
        if not key.endswith(".weight") or len(shape) not in (2, 4):
            continue  # biases and norms
        module = key[: -len(".weight")]
        in_transformer = any(f".{part}" in module for part in ("attn1", "attn2", "ff.", "proj_in", "proj_out"))
        if in_transformer or every_layer:
            shapes["lora_unet_" + module.replace(".", "_")] = (shape, shape[1:])
    for prefix, text in (("lora_te1_", hp["clip_l"]["hidden"]), ("lora_te2_", hp["open_clip"]["width"])):
        inner = hp["clip_l"]["intermediate"] if prefix == "lora_te1_" else 4 * text
        for layer in range(2):
            stem = f"{prefix}text_model_encoder_layers_{layer}_"
            for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
                shapes[f"{stem}self_attn_{proj}"] = ((text, text), (text,))
            shapes[f"{stem}mlp_fc1"] = ((inner, text), (text,))
            shapes[f"{stem}mlp_fc2"] = ((text, inner), (inner,))
    return shapes


@pytest.mark.parametrize("family", ["sd1", "sdxl"])
def test_diffusers_load_lora_weights_gives_the_same_unet_and_text_encoder_outputs(family, tiny_models, tmp_path, request):
    model = request.getfixturevalue(family)
    path = tmp_path / f"{family}.safetensors"
    if family == "sd1":
        write_kohya(path, sd_lora_shapes(model, kohya_sd_names(model.unet.config, 2)))
    else:
        write_kohya(path, sdxl_kohya_shapes(ldm_layout.TINY_SDXL), base="sdxl_base_v1-0")
    pipe = _diffusers_pipeline(model)
    pipe.load_lora_weights(str(path))  # diffusers' kohya converter (SGM block mapping for SDXL), peft layers

    [match] = NetworkPatcher(model).apply([(load_network(path), 1.0, 1.0)])
    assert match.complete
    torch.testing.assert_close(unet_output(model), unet_output(SimpleNamespace(unet=pipe.unet)), rtol=1e-4, atol=1e-4)
    encoders = [pipe.text_encoder] + ([pipe.text_encoder_2] if family == "sdxl" else [])
    for ours, theirs in zip(model.text_encoders, encoders):
        torch.testing.assert_close(text_output(ours), text_output(theirs), rtol=1e-4, atol=1e-4)


# ----------------------------------------------------------------------------- SDXL and LDM names


@pytest.mark.parametrize("family", ["sd1", "sdxl"])
def test_every_ldm_layer_name_patches_the_layer_the_loader_filled_from_that_tensor(family, checkpoints, tiny_models):
    """The LDM -> diffusers table agrees with the real loader on every Linear/Conv of the UNet (LoCon included)."""
    model = tiny_models[0][family]
    layers = ModelLayers.of(model)
    prefix = ldm_layout.UNET_PREFIX
    checked = 0
    with safe_open(str(checkpoints[family]), "pt") as handle:
        for key in handle.keys():
            if not key.startswith(prefix) or not key.endswith(".weight") or len(handle.get_slice(key).get_shape()) not in (2, 4):
                continue
            target = layers.find("lora_unet_" + key[len(prefix) : -len(".weight")].replace(".", "_"))
            assert target is not None, key
            assert torch.equal(target.module.weight, handle.get_tensor(key).float()), key
            checked += 1
    assert checked == sum(isinstance(m, (torch.nn.Linear, torch.nn.Conv2d)) for m in model.unet.modules())


def test_an_sdxl_kohya_lora_with_te1_te2_sgm_names_and_locon_convs_patches_tiny_sdxl(sdxl, tiny_models, tmp_path):
    snapshot = tiny_models[1]["sdxl"]
    shapes = sdxl_kohya_shapes(ldm_layout.TINY_SDXL, every_layer=True)
    assert any("_in_layers_2" in n for n in shapes) and any("_op" in n for n in shapes)  # LoCon: 3x3 convs
    path = tmp_path / "xl.safetensors"
    tensors = write_kohya(path, shapes, base="sdxl_base_v1-0")
    base = unet_output(sdxl)
    [match] = NetworkPatcher(sdxl).apply([(load_network(path), 0.5, 1.5)])
    assert match.complete, match
    layers = ModelLayers.of(sdxl)
    for name, (weight_shape, _) in shapes.items():
        target = layers.find(name)
        prefix = "unet" if target.component == "unet" else {"text_encoder": "text_encoder_0", "text_encoder_2": "text_encoder_1"}[target.component]
        before = snapshot[f"{prefix}.{target.path}.weight"]
        multiplier = 1.5 if name.startswith("lora_unet_") else 0.5
        torch.testing.assert_close(target.module.weight, before + multiplier * lora_delta(tensors, name, weight_shape), rtol=0, atol=2e-6)
    assert not torch.allclose(unet_output(sdxl), base)


def test_item12_an_sdxl_lora_on_sd15_matches_nothing_and_changes_nothing(sd1, tiny_models, tmp_path):
    """BAD_INPUTS 12: SDXL LoRA on SD1.5 -> wrong base, 0 matched, a warning naming the file; no partial patch."""
    # Full-size SDXL modules of input_blocks.4.1 and both encoders' first layers: attn1 and ff
    # would fit SD1.5's 640-wide layers, the 2048-wide cross-attention does not.
    xl = {name: shape for name, shape in sdxl_kohya_shapes(ldm_layout.FULL_SDXL).items()
          if "input_blocks_4_1_transformer_blocks_0_" in name or "layers_0_" in name}  # fmt: skip
    path = tmp_path / "xl_style.safetensors"
    write_kohya(path, xl, base="sdxl_base_v1-0")
    network = load_network(path)
    full_sd15 = meta_model(ModelFamily.SD1)
    match = NetworkPatcher(full_sd15).match(network)
    assert (match.matched, match.total, match.wrong_base) == (0, len(xl), True)
    assert match.misfits >= 2 and "xl_style.safetensors" in match.warning() and "another base model" in match.warning()

    tiny_xl = tmp_path / "tiny_xl.safetensors"
    write_kohya(tiny_xl, sdxl_kohya_shapes(ldm_layout.TINY_SDXL), base="sdxl_base_v1-0")
    before = unet_output(sd1)
    [match] = NetworkPatcher(sd1).apply([(load_network(tiny_xl), 1.0, 1.0)])
    assert match.wrong_base and match.matched == 0
    assert torch.equal(unet_output(sd1), before) and _changed(sd1, tiny_models[1]["sd1"]) == set()


# ----------------------------------------------------------------------------- LyCORIS formulas


def _apply_one(model, tmp_path, tensors: dict[str, torch.Tensor], te=1.0, unet=1.0) -> NetworkMatch:
    path = tmp_path / f"lyco_{len(list(tmp_path.iterdir()))}.safetensors"  # a new file: never rewrite a mapped one
    save_file(tensors, str(path))
    [match] = NetworkPatcher(model).apply([(load_network(path), te, unet)])
    return match


LINEAR = "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q"  # 32 x 32 in tiny SD1
CONV = "down_blocks.0.resnets.0.conv1"  # 32 x 32 x 3 x 3


def _layer(model, path: str) -> torch.nn.Module:
    return model.unet.get_submodule(path)


def _kohya(path: str) -> str:
    return "lora_unet_" + path.replace(".", "_")


def test_loha_delta_is_the_hadamard_product_of_two_low_rank_products(sd1, tmp_path):
    g = torch.Generator().manual_seed(3)
    w1a, w1b, w2a, w2b = (torch.randn(*s, generator=g) * 0.3 for s in ((32, 2), (2, 32), (32, 2), (2, 32)))
    base = _layer(sd1, LINEAR).weight.detach().clone()
    name = _kohya(LINEAR)
    _apply_one(sd1, tmp_path, {f"{name}.hada_w1_a": w1a, f"{name}.hada_w1_b": w1b, f"{name}.hada_w2_a": w2a,
                               f"{name}.hada_w2_b": w2b, f"{name}.alpha": torch.tensor(1.0)}, unet=0.6)  # fmt: skip
    expected = torch.empty(32, 32)
    for o in range(32):
        for i in range(32):
            expected[o, i] = sum(w1a[o, r] * w1b[r, i] for r in range(2)) * sum(w2a[o, r] * w2b[r, i] for r in range(2))
    torch.testing.assert_close(_layer(sd1, LINEAR).weight, base + 0.6 * 0.5 * expected, rtol=0, atol=1e-5)  # alpha 1 / rank 2


def test_loha_with_tucker_cores_on_a_3x3_convolution(sd1, tmp_path):
    g = torch.Generator().manual_seed(4)
    r = 2
    t1, t2 = torch.randn(r, r, 3, 3, generator=g), torch.randn(r, r, 3, 3, generator=g)
    w1a, w1b, w2a, w2b = (torch.randn(r, 32, generator=g) * 0.3 for _ in range(4))  # LyCORIS CP: (rank, out) / (rank, in)
    base = _layer(sd1, CONV).weight.detach().clone()
    name = _kohya(CONV)
    _apply_one(sd1, tmp_path, {f"{name}.hada_t1": t1, f"{name}.hada_t2": t2, f"{name}.hada_w1_a": w1a, f"{name}.hada_w1_b": w1b,
                               f"{name}.hada_w2_a": w2a, f"{name}.hada_w2_b": w2b, f"{name}.alpha": torch.tensor(2.0)})  # fmt: skip

    def cp(t, wa, wb):  # delta[o, i, k, l] = sum_ab t[a, b, k, l] wa[a, o] wb[b, i]
        return torch.tensordot(torch.tensordot(wa, t, dims=([0], [0])), wb, dims=([1], [0])).permute(0, 3, 1, 2)

    torch.testing.assert_close(_layer(sd1, CONV).weight, base + cp(t1, w1a, w1b) * cp(t2, w2a, w2b), rtol=0, atol=1e-5)  # alpha 2 / rank 2


def _kron_blocks(w1: torch.Tensor, w2: torch.Tensor) -> torch.Tensor:
    """Kronecker product written as blocks: block (i, j) is w1[i, j] * w2."""
    rows = [torch.cat([w1[i, j] * w2 for j in range(w1.shape[1])], dim=1) for i in range(w1.shape[0])]
    return torch.cat(rows, dim=0)


def test_lokr_delta_is_a_kronecker_product_scaled_only_with_a_factored_side(sd1, tmp_path):
    g = torch.Generator().manual_seed(5)
    w1, w2a, w2b = torch.randn(4, 4, generator=g), torch.randn(8, 2, generator=g) * 0.3, torch.randn(2, 8, generator=g) * 0.3
    base = _layer(sd1, LINEAR).weight.detach().clone()
    name = _kohya(LINEAR)
    _apply_one(sd1, tmp_path, {f"{name}.lokr_w1": w1, f"{name}.lokr_w2_a": w2a, f"{name}.lokr_w2_b": w2b, f"{name}.alpha": torch.tensor(4.0)})
    torch.testing.assert_close(_layer(sd1, LINEAR).weight, base + 2.0 * _kron_blocks(w1, w2a @ w2b), rtol=0, atol=1e-5)  # 4 / rank 2

    w2 = torch.randn(8, 8, 3, 3, generator=g) * 0.1  # both sides whole: no rank, alpha ignored
    conv_base = _layer(sd1, CONV).weight.detach().clone()
    conv = _kohya(CONV)
    _apply_one(sd1, tmp_path, {f"{conv}.lokr_w1": w1, f"{conv}.lokr_w2": w2, f"{conv}.alpha": torch.tensor(100.0)})
    expected = torch.stack([torch.stack([_kron_blocks(w1, w2[:, :, k, l]) for l in range(3)], -1) for k in range(3)], -2)
    torch.testing.assert_close(_layer(sd1, CONV).weight, conv_base + expected, rtol=0, atol=1e-5)


def test_lokr_with_a_tucker_core_and_locon_with_lora_mid(sd1, tmp_path):
    g = torch.Generator().manual_seed(6)
    r = 2
    w1 = torch.randn(2, 2, generator=g)
    t2, w2a, w2b = torch.randn(r, r, 3, 3, generator=g), torch.randn(r, 16, generator=g) * 0.3, torch.randn(r, 16, generator=g) * 0.3
    base = _layer(sd1, CONV).weight.detach().clone()
    name = _kohya(CONV)
    _apply_one(sd1, tmp_path, {f"{name}.lokr_w1": w1, f"{name}.lokr_t2": t2, f"{name}.lokr_w2_a": w2a, f"{name}.lokr_w2_b": w2b,
                               f"{name}.alpha": torch.tensor(1.0)})  # fmt: skip
    w2 = torch.einsum("abkl,ao,bi->oikl", t2, w2a, w2b)  # the Tucker product, written as one einsum
    expected = torch.stack([torch.stack([_kron_blocks(w1, w2[:, :, k, l]) for l in range(3)], -1) for k in range(3)], -2)
    torch.testing.assert_close(_layer(sd1, CONV).weight, base + 0.5 * expected, rtol=0, atol=1e-5)  # 1 / rank 2

    conv2 = "down_blocks.0.resnets.0.conv2"
    name = _kohya(conv2)
    mid, up, down = torch.randn(r, r, 3, 3, generator=g), torch.randn(32, r, 1, 1, generator=g) * 0.3, torch.randn(r, 32, 1, 1, generator=g) * 0.3
    base = _layer(sd1, conv2).weight.detach().clone()
    _apply_one(sd1, tmp_path, {f"{name}.lora_mid.weight": mid, f"{name}.lora_up.weight": up, f"{name}.lora_down.weight": down,
                               f"{name}.alpha": torch.tensor(1.0)})  # fmt: skip
    expected = torch.zeros(32, 32, 3, 3)
    for n in range(r):
        for m in range(r):
            expected += mid[n, m] * (up[:, n, 0, 0][:, None] * down[m, :, 0, 0][None, :])[:, :, None, None]
    torch.testing.assert_close(_layer(sd1, conv2).weight, base + 0.5 * expected, rtol=0, atol=1e-5)


def test_full_diff_with_bias_and_kohya_dora(sd1, tmp_path):
    g = torch.Generator().manual_seed(7)
    out = "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_out.0"  # has a bias
    layer = _layer(sd1, out)
    base_w, base_b = layer.weight.detach().clone(), layer.bias.detach().clone()
    diff, diff_b = torch.randn(32, 32, generator=g) * 0.01, torch.randn(32, generator=g) * 0.01
    name = _kohya(out)
    _apply_one(sd1, tmp_path, {f"{name}.diff": diff, f"{name}.diff_b": diff_b}, unet=-2.0)
    torch.testing.assert_close(layer.weight, base_w - 2.0 * diff, rtol=0, atol=1e-6)
    torch.testing.assert_close(layer.bias, base_b - 2.0 * diff_b, rtol=0, atol=1e-6)

    base = _layer(sd1, LINEAR).weight.detach().clone()
    down, up = torch.randn(RANK, 32, generator=g) * 0.3, torch.randn(32, RANK, generator=g) * 0.3
    magnitude = torch.rand(1, 32, generator=g) + 0.5
    name = _kohya(LINEAR)
    _apply_one(sd1, tmp_path, {f"{name}.lora_down.weight": down, f"{name}.lora_up.weight": up, f"{name}.alpha": torch.tensor(ALPHA),
                               f"{name}.dora_scale": magnitude}, unet=0.7)  # fmt: skip
    merged = base + ALPHA / RANK * (up @ down)
    column_norms = torch.sqrt((merged**2).sum(dim=0, keepdim=True))  # one norm per input column
    torch.testing.assert_close(_layer(sd1, LINEAR).weight, base + 0.7 * (merged * magnitude / column_norms - base), rtol=0, atol=1e-5)


def test_a_4_channel_locon_on_an_inpainting_conv_in_is_zero_padded():
    weight = torch.randn(8, 9, 3, 3)
    down, up = torch.randn(2, 4, 3, 3), torch.randn(8, 2, 1, 1)
    module = NetworkModule("lora_unet_conv_in", "LoRA", {"lora_down.weight": down, "lora_up.weight": up}, alpha=2.0)
    delta = module.delta(weight)
    assert delta.shape == weight.shape and torch.equal(delta[:, 4:], torch.zeros(8, 5, 3, 3))
    torch.testing.assert_close(delta[:, :4], (up.reshape(8, 2) @ down.reshape(2, -1)).reshape(8, 4, 3, 3))


def test_linear_and_conv_lora_shapes_are_reshaped_for_proj_in_as_a1111_does(sd1, sd2, tmp_path):
    """SD1's proj_in is a 1x1 conv, SD2's a Linear (use_linear_projection): either LoRA shape fits both."""
    g = torch.Generator().manual_seed(8)
    for model, shape in ((sd1, (RANK, 32)), (sd2, (RANK, 64, 1, 1))):  # a linear LoRA on a conv, a conv LoRA on a linear
        layer = model.unet.down_blocks[0].attentions[0].proj_in
        base = layer.weight.detach().clone()
        down = torch.randn(*shape, generator=g)
        up = torch.randn(base.shape[0], RANK, *shape[2:], generator=g) * 0.1
        name = "lora_unet_down_blocks_0_attentions_0_proj_in"
        match = _apply_one(model, tmp_path, {f"{name}.lora_down.weight": down, f"{name}.lora_up.weight": up})
        assert match.complete
        expected = (up.reshape(base.shape[0], RANK) @ down.reshape(RANK, -1)).reshape(base.shape)
        torch.testing.assert_close(layer.weight, base + expected, rtol=0, atol=1e-6)  # no alpha: scale 1


# ----------------------------------------------------------------------------- diffusers/PEFT files


def test_diffusers_and_peft_format_loras_with_and_without_alpha(sd1, tmp_path):
    g = torch.Generator().manual_seed(9)
    to_v = sd1.unet.up_blocks[1].attentions[0].transformer_blocks[0].attn2.to_v
    to_out = sd1.unet.mid_block.attentions[0].transformer_blocks[0].attn1.to_out[0]
    q_proj = sd1.text_encoders[0].encoder.layers[1].self_attn.q_proj
    fc2 = sd1.text_encoders[0].encoder.layers[0].mlp.fc2
    bases = {id(m): m.weight.detach().clone() for m in (to_v, to_out, q_proj, fc2)}
    pairs = {}

    def pair(layer):
        pairs[id(layer)] = (torch.randn(2, layer.weight.shape[1], generator=g) * 0.3, torch.randn(layer.weight.shape[0], 2, generator=g) * 0.3)
        return pairs[id(layer)]

    v_down, v_up = pair(to_v)
    o_down, o_up = pair(to_out)
    q_down, q_up = pair(q_proj)
    f_down, f_up = pair(fc2)
    tensors = {
        # PEFT (diffusers >= 0.24 save_lora_weights): no alpha, so scale 1
        "unet.up_blocks.1.attentions.0.transformer_blocks.0.attn2.to_v.lora_A.weight": v_down,
        "unet.up_blocks.1.attentions.0.transformer_blocks.0.attn2.to_v.lora_B.weight": v_up,
        "text_encoder.text_model.encoder.layers.1.self_attn.q_proj.lora_A.weight": q_down,
        "text_encoder.text_model.encoder.layers.1.self_attn.q_proj.lora_B.weight": q_up,
        "text_encoder.text_model.encoder.layers.1.self_attn.q_proj.alpha": torch.tensor(1.0),  # alpha 1 / rank 2
        # old diffusers attention processors and text-encoder lora_linear_layer
        "unet.mid_block.attentions.0.transformer_blocks.0.attn1.processor.to_out_lora.down.weight": o_down,
        "unet.mid_block.attentions.0.transformer_blocks.0.attn1.processor.to_out_lora.up.weight": o_up,
        "text_encoder.text_model.encoder.layers.0.mlp.fc2.lora_linear_layer.down.weight": f_down,
        "text_encoder.text_model.encoder.layers.0.mlp.fc2.lora_linear_layer.up.weight": f_up,
    }
    match = _apply_one(sd1, tmp_path, tensors, te=0.5, unet=2.0)
    assert (match.matched, match.total) == (4, 4)
    for layer, multiplier, scale in ((to_v, 2.0, 1.0), (to_out, 2.0, 1.0), (q_proj, 0.5, 0.5), (fc2, 0.5, 1.0)):
        down, up = pairs[id(layer)]
        torch.testing.assert_close(layer.weight, bases[id(layer)] + multiplier * scale * (up @ down), rtol=0, atol=1e-6)


# ----------------------------------------------------------------------------- several networks, weights, states


def test_several_at_once_add_a_negative_weight_subtracts_and_a_new_list_restores_first(sd1, tmp_path, tiny_models):
    names = kohya_sd_names(sd1.unet.config, 2)
    shapes = sd_lora_shapes(sd1, names)
    a, b = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    ta, tb = write_kohya(a, shapes, seed=1), write_kohya(b, shapes, seed=2, alpha=1.0)
    first, second = load_network(a), load_network(b)
    layer = sd1.unet.mid_block.attentions[0].transformer_blocks[0].attn1.to_k
    q = sd1.text_encoders[0].encoder.layers[0].self_attn.q_proj
    name, te_name = "lora_unet_mid_block_attentions_0_transformer_blocks_0_attn1_to_k", "lora_te_text_model_encoder_layers_0_self_attn_q_proj"
    base, te_base = layer.weight.detach().clone(), q.weight.detach().clone()
    da, db = lora_delta(ta, name, base.shape), lora_delta(tb, name, base.shape, alpha=1.0)
    patcher = NetworkPatcher(sd1)

    matches = patcher.apply([(first, 1.0, 1.0), (second, 0.3, -0.5)])
    assert [m.name for m in matches] == ["a", "b"] and all(m.complete for m in matches)
    torch.testing.assert_close(layer.weight, base + da - 0.5 * db, rtol=0, atol=2e-6)
    torch.testing.assert_close(q.weight, te_base + lora_delta(ta, te_name, te_base.shape) + 0.3 * lora_delta(tb, te_name, te_base.shape, alpha=1.0), rtol=0, atol=2e-6)

    patcher.apply([(second, 1.0, 1.0)])  # a different list: back to the base, then only `second`
    torch.testing.assert_close(layer.weight, base + db, rtol=0, atol=2e-6)
    patcher.apply([(second, 1.0, -1.0)])
    torch.testing.assert_close(layer.weight, base - db, rtol=0, atol=2e-6)
    assert patcher.applied == ((second, 1.0, -1.0),)
    patcher.apply([])  # nothing asked for: the base model, bit for bit
    assert _changed(sd1, tiny_models[1]["sd1"]) == set()
    assert patcher.applied == ()


def test_unmatched_and_unsupported_modules_are_counted_and_named_and_the_rest_applies(sd1, tmp_path):
    g = torch.Generator().manual_seed(10)
    good = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_k"
    layer = sd1.unet.down_blocks[0].attentions[0].transformer_blocks[0].attn1.to_k
    base = layer.weight.detach().clone()
    down, up = torch.randn(RANK, 32, generator=g), torch.randn(32, RANK, generator=g)
    tensors = {
        f"{good}.lora_down.weight": down, f"{good}.lora_up.weight": up,
        "lora_unet_down_blocks_9_attentions_0_proj_in.lora_down.weight": torch.zeros(RANK, 32),
        "lora_unet_down_blocks_9_attentions_0_proj_in.lora_up.weight": torch.zeros(32, RANK),
        "lora_unet_down_blocks_0_attentions_0_proj_out.oft_blocks": torch.zeros(4, 8, 8),
        "bundle_emb.cat.string_to_param.*": torch.zeros(1, 32),  # an embedding bundled in the LoRA: not ours to apply
    }  # fmt: skip
    path = tmp_path / "partly.safetensors"
    save_file(tensors, str(path))
    network = load_network(path)
    assert network.ignored_keys == ("bundle_emb.cat.string_to_param.*",)
    [match] = NetworkPatcher(sd1).apply([(network, 1.0, 1.0)])
    assert (match.matched, match.total, match.wrong_base) == (1, 3, False)
    assert set(match.unmatched) == {"lora_unet_down_blocks_9_attentions_0_proj_in", "lora_unet_down_blocks_0_attentions_0_proj_out"}
    assert match.unsupported == ("OFT (1 modules)",)
    assert "partly.safetensors" in match.warning() and "1 of 3" in match.warning()
    torch.testing.assert_close(layer.weight, base + up @ down, rtol=0, atol=1e-6)


# ----------------------------------------------------------------------------- bad files


def test_items_1_2_3_empty_truncated_and_garbage_files_are_model_file_errors(tmp_path):
    empty = tmp_path / "empty.safetensors"
    empty.write_bytes(b"")
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}\x00\x00\x00\x00\x00\x00")
    whole = tmp_path / "whole.safetensors"
    save_file({"lora_unet_conv_in.lora_down.weight": torch.zeros(4, 4, 3, 3), "lora_unet_conv_in.lora_up.weight": torch.zeros(32, 4, 1, 1)}, str(whole))
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(whole.read_bytes()[:-100])
    for path in (empty, garbage, truncated):
        with pytest.raises(ModelFileError) as error:
            load_network(path)
        assert path.name in str(error.value)


def test_alpha_that_is_not_one_number_is_a_model_file_error(tmp_path):
    path = tmp_path / "odd_alpha.safetensors"
    save_file({"lora_unet_conv_in.lora_down.weight": torch.zeros(4, 4), "lora_unet_conv_in.lora_up.weight": torch.zeros(4, 4),
               "lora_unet_conv_in.alpha": torch.ones(3)}, str(path))  # fmt: skip
    with pytest.raises(ModelFileError, match="odd_alpha.safetensors"):
        load_network(path)


def test_item12_a_checkpoint_or_vae_given_as_a_lora_is_refused_naming_what_it_is(tiny_sd1, tmp_path):
    with pytest.raises(UnsupportedModel, match="checkpoint"):
        load_network(tiny_sd1)
    vae = tmp_path / "vae.safetensors"
    save_file({"encoder.conv_in.weight": torch.zeros(8, 3, 3, 3), "decoder.conv_out.weight": torch.zeros(3, 8, 3, 3)}, str(vae))
    with pytest.raises(UnsupportedModel, match="vae.safetensors holds no LoRA"):
        load_network(vae)


class _Payload:
    """Unpickling this would create the sentinel file."""

    def __init__(self, sentinel: Path) -> None:
        self.sentinel = sentinel

    def __reduce__(self):
        return (Path.touch, (self.sentinel,))


def test_item7_a_pickle_lora_is_refused_and_never_unpickled(tmp_path):
    sentinel = tmp_path / "pwned"
    for name in ("evil.pt", "evil.safetensors"):  # by extension, and by content under a safe name
        path = tmp_path / name
        path.write_bytes(pickle.dumps({"lora_unet_conv_in.lora_down.weight": _Payload(sentinel)}, protocol=2))
        with pytest.raises(UnsupportedModel, match="pickle"):
            load_network(path)
    assert not sentinel.exists()


def test_the_loaded_network_is_compared_by_identity_so_reapplying_the_cached_object_is_a_no_op(sd1, tmp_path):
    path = tmp_path / "same.safetensors"
    write_kohya(path, sd_lora_shapes(sd1, kohya_sd_names(sd1.unet.config, 2)[:3]))
    first, reloaded = load_network(path), load_network(path)
    assert isinstance(first, LoadedNetwork) and first != reloaded
    patcher = NetworkPatcher(sd1)
    patcher.apply([(first, 1.0, 1.0)])
    layer = sd1.unet.down_blocks[0].attentions[0].proj_in
    version = layer.weight._version
    patcher.apply([(first, 1, 1)])  # ints equal to the floats: still the same list
    assert layer.weight._version == version
    patcher.apply([(reloaded, 1.0, 1.0)])  # another object (the file may have changed): patched afresh
    assert layer.weight._version > version
    assert math.isclose(patcher.applied[0][2], 1.0)
    patcher.restore()


def test_text_encoder_prefixes_follow_a1111_and_transformers_5_paths(tiny_models):
    """lora_te_ on one-encoder models only; lora_te1_ also on SD1 (diffusers' kohya converter writes it)."""
    models = tiny_models[0]
    sd1_layers, xl_layers = ModelLayers.of(models["sd1"]), ModelLayers.of(models["sdxl"])
    fc1 = models["sd1"].text_encoders[0].encoder.layers[1].mlp.fc1  # no .text_model in transformers 5
    for name in ("lora_te_text_model_encoder_layers_1_mlp_fc1", "lora_te1_text_model_encoder_layers_1_mlp_fc1", "text_encoder.text_model.encoder.layers.1.mlp.fc1"):
        assert sd1_layers.find(name).module is fc1, name
    assert sd1_layers.find("lora_te2_text_model_encoder_layers_1_mlp_fc1") is None
    assert xl_layers.find("lora_te_text_model_encoder_layers_1_mlp_fc1") is None  # A1111 does not match it on SDXL
    big_g = models["sdxl"].text_encoders[1]  # CLIPTextModelWithProjection keeps .text_model
    target = xl_layers.find("lora_te2_text_model_encoder_layers_1_self_attn_v_proj")
    assert target.module is big_g.text_model.encoder.layers[1].self_attn.v_proj and target.part == "te"
    assert xl_layers.find("text_encoder_2.text_model.encoder.layers.1.self_attn.to_v_lora").module is target.module
    assert xl_layers.find("lora_unet_middle_block_1_proj_in").module is models["sdxl"].unet.mid_block.attentions[0].proj_in
    assert xl_layers.find("lora_unet_mid_block_attentions_0_proj_in").module is models["sdxl"].unet.mid_block.attentions[0].proj_in
    assert set(sd1_layers.kohya_names()) >= set(kohya_sd_names(models["sd1"].unet.config, 2))


def test_malformed_module_shapes_count_as_misfits_and_never_raise(sd1, tmp_path, tiny_models):
    name = _kohya(LINEAR)
    out = _kohya("down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_out.0")
    tensors = {
        f"{name}.lokr_w1": torch.ones(4), f"{name}.lokr_w2": torch.ones(8, 8),  # a 1-d Kronecker factor
        f"{out}.diff": torch.zeros(32, 32), f"{out}.diff_b": torch.zeros(7),  # a bias diff of the wrong size
    }
    match = _apply_one(sd1, tmp_path, tensors)
    assert (match.matched, match.misfits, match.wrong_base) == (0, 2, True)
    assert _changed(sd1, tiny_models[1]["sd1"]) == set()


def test_re_readable_originals_replace_the_copies_and_a_wrong_one_falls_back_to_a_copy(sd1, tmp_path, tiny_models):
    """With ``originals`` (e.g. views of the memory-mapped checkpoint) the patcher holds no weight copies."""
    snapshot = tiny_models[1]["sd1"]
    components = {"unet": "unet", "text_encoder": "text_encoder_0"}
    wrong = "down_blocks.0.attentions.0.proj_in.weight"
    asked = []

    def originals(component: str, name: str):
        asked.append((component, name))
        value = snapshot[f"{components[component]}.{name}"]
        return value + 1 if name == wrong else value.half().float()  # a lossless dtype round trip, like fp16 files

    path = tmp_path / "detail.safetensors"
    write_kohya(path, sd_lora_shapes(sd1, kohya_sd_names(sd1.unet.config, 2)))
    patcher = NetworkPatcher(sd1, originals=originals)
    [match] = patcher.apply([(load_network(path), 1.0, 1.0)])
    assert match.complete and ("unet", wrong) in asked
    proj_in = sd1.unet.down_blocks[0].attentions[0].proj_in.weight
    assert patcher.backup_bytes == proj_in.numel() * 4  # only the layer whose "original" was not the weight
    patcher.apply([(load_network(path), 0.5, 0.5)])
    patcher.restore()
    assert _changed(sd1, snapshot) == set() and patcher.backup_bytes == 0
