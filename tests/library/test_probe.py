"""Model identification by content, on header-only files with realistic key layouts.

The files are valid safetensors with zero data. Shapes are tiny except those the probe reads
(input channels, cross-attention and text-encoder widths). Covers BAD_INPUTS.md items 7, 12, 13.
"""

from __future__ import annotations

import json
import math
import os
import pickle
import shlex
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors import safe_open

from desktop.core.errors import ModelFileError, UnsupportedModel
from desktop.library.probe import ModelProbe, probe_model, require_generation_checkpoint
from desktop.library.taxonomy import ModelFamily, ModelKind, ModelLayout, ModelVariant, PredictionType

REPO_ROOT = Path(__file__).resolve().parents[2]
U = "model.diffusion_model."
_SIZES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "U8": 1}

Spec = dict[str, tuple[str, tuple[int, ...]]]


def write_model(path: Path, tensors: Spec, metadata: dict[str, str] | None = None) -> Path:
    """Write a valid safetensors file holding ``tensors`` ({name: (dtype, shape)}) as zeros."""
    header: dict[str, object] = {}
    offset = 0
    for name, (dtype, shape) in tensors.items():
        size = math.prod(shape) * _SIZES[dtype]
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    if metadata is not None:
        header["__metadata__"] = metadata
    raw = json.dumps(header).encode()
    with path.open("wb") as file:
        file.write(struct.pack("<Q", len(raw)) + raw)
        file.truncate(8 + len(raw) + offset)  # zeros, sparse where the filesystem allows
    return path


# --- realistic key sets ------------------------------------------------------------------------


def unet(dtype: str = "F16", *, in_channels: int = 4, context: int = 768, sdxl: bool = False) -> Spec:
    block = "input_blocks.4.1" if sdxl else "input_blocks.1.1"  # SDXL has no attention at level 0
    keys: Spec = {
        U + "input_blocks.0.0.weight": (dtype, (8, in_channels, 3, 3)),
        U + "input_blocks.0.0.bias": (dtype, (8,)),
        U + "time_embed.0.weight": (dtype, (8, 8)),
        U + f"{block}.proj_in.weight": (dtype, (8, 8)),
        U + f"{block}.transformer_blocks.0.attn1.to_q.weight": (dtype, (8, 8)),
        U + f"{block}.transformer_blocks.0.attn2.to_q.weight": (dtype, (8, 8)),
        U + f"{block}.transformer_blocks.0.attn2.to_k.weight": (dtype, (8, context)),
        U + f"{block}.transformer_blocks.0.attn2.to_v.weight": (dtype, (8, context)),
        U + "middle_block.1.transformer_blocks.0.attn2.to_k.weight": (dtype, (8, context)),
        U + "out.2.weight": (dtype, (4, 8, 3, 3)),
    }
    if sdxl:
        keys[U + "label_emb.0.0.weight"] = (dtype, (8, 2816 if context == 2048 else 2560))
    return keys


def clip_l(prefix: str, dtype: str = "F16") -> Spec:
    return {
        prefix + "text_model.embeddings.token_embedding.weight": (dtype, (16, 8)),
        prefix + "text_model.embeddings.position_embedding.weight": (dtype, (77, 8)),
        prefix + "text_model.encoder.layers.0.self_attn.q_proj.weight": (dtype, (8, 8)),
        prefix + "text_model.final_layer_norm.weight": (dtype, (8,)),
    }


def open_clip(prefix: str, dtype: str = "F16") -> Spec:
    return {
        prefix + "token_embedding.weight": (dtype, (16, 8)),
        prefix + "positional_embedding": (dtype, (77, 8)),
        prefix + "transformer.resblocks.0.attn.in_proj_weight": (dtype, (24, 8)),
        prefix + "ln_final.weight": (dtype, (8,)),
        prefix + "text_projection": (dtype, (8, 8)),
    }


def vae(prefix: str = "first_stage_model.", dtype: str = "F16", latent: int = 4) -> Spec:
    return {
        prefix + "encoder.conv_in.weight": (dtype, (8, 3, 3, 3)),
        prefix + "encoder.down.0.block.0.conv1.weight": (dtype, (8, 8, 3, 3)),
        prefix + "encoder.conv_out.weight": (dtype, (2 * latent, 8, 3, 3)),
        prefix + "decoder.conv_in.weight": (dtype, (8, latent, 3, 3)),
        prefix + "decoder.conv_out.weight": (dtype, (3, 8, 3, 3)),
        prefix + "quant_conv.weight": (dtype, (2 * latent, 2 * latent, 1, 1)),
    }


SCHEDULE: Spec = {"alphas_cumprod": ("F32", (1000,)), "betas": ("F32", (1000,))}
EMA: Spec = {
    "model_ema.decay": ("F32", ()),
    "model_ema.num_updates": ("I32", ()),
    "model_ema.diffusion_modelinput_blocks00weight": ("F32", (8, 4, 3, 3)),
}


def sd1(dtype: str = "F16", *, in_channels: int = 4, with_vae: bool = True, context: int = 768) -> Spec:
    keys = unet(dtype, in_channels=in_channels, context=context) | clip_l(
        "cond_stage_model.transformer.", dtype
    )
    return keys | SCHEDULE | (vae(dtype=dtype) if with_vae else {})


def sd2(dtype: str = "F16") -> Spec:
    return (
        unet(dtype, context=1024) | open_clip("cond_stage_model.model.", dtype) | vae(dtype=dtype) | SCHEDULE
    )


def sdxl(dtype: str = "F16") -> Spec:
    return (
        unet(dtype, context=2048, sdxl=True)
        | clip_l("conditioner.embedders.0.transformer.", dtype)
        | open_clip("conditioner.embedders.1.model.", dtype)
        | vae(dtype=dtype)
    )


def sdxl_refiner(dtype: str = "F16") -> Spec:
    return (
        unet(dtype, context=1280, sdxl=True)
        | open_clip("conditioner.embedders.0.model.", dtype)
        | vae(dtype=dtype)
    )


def kohya_lora(modules: dict[str, int], rank: int = 4) -> Spec:
    """{kohya module name: input width} -> down/up/alpha tensors."""
    keys: Spec = {}
    for name, width in modules.items():
        keys[f"{name}.lora_down.weight"] = ("F16", (rank, width))
        keys[f"{name}.lora_up.weight"] = ("F16", (8, rank))
        keys[f"{name}.alpha"] = ("F16", ())
    return keys


SD1_LORA_MODULES = {
    "lora_te_text_model_encoder_layers_0_self_attn_q_proj": 768,
    "lora_te_text_model_encoder_layers_0_mlp_fc1": 768,
    "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q": 320,
    "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k": 768,
    "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_ff_net_2": 1280,
}
SDXL_LORA_MODULES = {
    "lora_te1_text_model_encoder_layers_0_self_attn_q_proj": 768,
    "lora_te2_text_model_encoder_layers_0_self_attn_q_proj": 1280,
    "lora_unet_input_blocks_4_1_transformer_blocks_0_attn2_to_k": 2048,
    "lora_unet_output_blocks_0_1_transformer_blocks_0_attn1_to_out_0": 1280,
}


def probe_of(tmp_path: Path, tensors: Spec, name: str = "model.safetensors", **kwargs) -> ModelProbe:
    return probe_model(write_model(tmp_path / name, tensors, **kwargs))


def refusal(probe: ModelProbe) -> str:
    with pytest.raises(UnsupportedModel) as caught:
        require_generation_checkpoint(probe)
    assert "\n" not in caught.value.message
    assert probe.path.name in caught.value.message
    return caught.value.message


def test_helper_writes_files_the_safetensors_library_accepts(tmp_path: Path) -> None:
    path = write_model(tmp_path / "sd1.safetensors", sd1() | EMA, metadata={"a": "b"})
    with safe_open(str(path), "np") as file:
        assert set(file.keys()) == set(sd1() | EMA)
        assert file.metadata() == {"a": "b"}
        assert file.get_tensor(U + "input_blocks.0.0.weight").shape == (8, 4, 3, 3)


# --- checkpoints -------------------------------------------------------------------------------


def test_sd1_fp16_with_vae(tmp_path: Path) -> None:
    probe = probe_of(tmp_path, sd1("F16"))
    assert (probe.kind, probe.family, probe.variant) == (
        ModelKind.CHECKPOINT,
        ModelFamily.SD1,
        ModelVariant.NORMAL,
    )
    assert probe.prediction is PredictionType.EPSILON
    assert probe.layout is ModelLayout.LDM_SINGLE_FILE
    assert probe.precision == "fp16"  # the fp32 schedule tensors are not UNet weights
    assert probe.has_vae and not probe.has_ema
    assert probe.in_channels == 4
    assert probe.header is not None and probe.header.path == probe.path
    assert probe.can_generate
    require_generation_checkpoint(probe)
    assert probe.describe() == "Stable Diffusion 1.x checkpoint, fp16, with baked-in VAE"
    assert any("cond_stage_model.transformer" in r for r in probe.reasons)
    assert any("cross-attention width 768" in r for r in probe.reasons)


def test_sd1_fp32_with_ema_and_without_vae(tmp_path: Path) -> None:
    probe = probe_of(tmp_path, sd1("F32", with_vae=False) | EMA)
    assert probe.family is ModelFamily.SD1
    assert probe.has_ema and not probe.has_vae
    assert probe.precision == "fp32"
    assert probe.describe() == "Stable Diffusion 1.x checkpoint, fp32, with EMA weights"


def test_sd1_with_the_old_text_encoder_names(tmp_path: Path) -> None:
    keys = unet() | {"cond_stage_model.transformer.embeddings.token_embedding.weight": ("F16", (16, 8))}
    assert probe_of(tmp_path, keys).family is ModelFamily.SD1


def test_family_comes_from_the_layout_not_the_sizes(tmp_path: Path) -> None:
    # A tiny SD1-layout model with a 32-wide context is still SD1.
    probe = probe_of(tmp_path, sd1(context=32))
    assert probe.family is ModelFamily.SD1
    assert any("cross-attention width 32" in r for r in probe.reasons)


def test_bad_input_13_sd2_prediction_is_left_to_load_time(tmp_path: Path) -> None:
    probe = probe_of(tmp_path, sd2())
    assert probe.family is ModelFamily.SD2
    assert probe.prediction is PredictionType.UNKNOWN
    assert probe.can_generate
    assert probe.describe() == "Stable Diffusion 2.x checkpoint, fp16, with baked-in VAE"


def test_bad_input_13_v_prediction_marker_key(tmp_path: Path) -> None:
    probe = probe_of(tmp_path, sd2() | {"v_pred": ("F32", ())})
    assert probe.prediction is PredictionType.V_PREDICTION
    assert "v-prediction" in probe.describe()


@pytest.mark.parametrize(
    ("declared", "expected"),
    [
        ("v", PredictionType.V_PREDICTION),
        ("v_prediction", PredictionType.V_PREDICTION),
        ("epsilon", PredictionType.EPSILON),
    ],
)
def test_bad_input_13_prediction_from_modelspec_metadata(
    tmp_path: Path, declared: str, expected: PredictionType
) -> None:
    probe = probe_of(tmp_path, sd2(), metadata={"modelspec.prediction_type": declared})
    assert probe.prediction is expected


def test_sdxl_base(tmp_path: Path) -> None:
    probe = probe_of(tmp_path, sdxl("F16"), name="anything.safetensors")
    assert probe.family is ModelFamily.SDXL
    assert probe.prediction is PredictionType.EPSILON
    assert probe.can_generate
    assert probe.describe() == "Stable Diffusion XL base checkpoint, fp16, with baked-in VAE"
    assert any("cross-attention width 2048" in r for r in probe.reasons)


def test_sdxl_v_prediction_marker(tmp_path: Path) -> None:
    assert probe_of(tmp_path, sdxl() | {"v_pred": ("F32", ())}).prediction is PredictionType.V_PREDICTION


def test_bf16_and_mixed_precision(tmp_path: Path) -> None:
    assert probe_of(tmp_path, sdxl("BF16"), name="bf16.safetensors").precision == "bf16"
    mixed = sdxl("F16") | {U + "out.2.weight": ("F32", (4, 8, 3, 3))}
    assert probe_of(tmp_path, mixed, name="mixed.safetensors").precision == "mixed"


def test_sdxl_refiner_is_recognised_and_refused_for_txt2img(tmp_path: Path) -> None:
    probe = probe_of(tmp_path, sdxl_refiner(), name="refiner.safetensors")
    assert probe.kind is ModelKind.CHECKPOINT
    assert probe.family is ModelFamily.SDXL_REFINER
    assert not probe.can_generate
    assert "refiner.safetensors is an SDXL refiner" in refusal(probe)


def test_bad_input_13_inpainting_checkpoint_is_detected_and_refused(tmp_path: Path) -> None:
    probe = probe_of(tmp_path, sd1(in_channels=9), name="x.safetensors")
    assert probe.variant is ModelVariant.INPAINT
    assert probe.in_channels == 9
    assert not probe.can_generate
    assert probe.describe() == "Stable Diffusion 1.x inpainting checkpoint, fp16, with baked-in VAE"
    assert refusal(probe) == (
        "x.safetensors is a Stable Diffusion 1.x inpainting checkpoint; "
        "inpainting models are not supported for txt2img yet"
    )


@pytest.mark.parametrize(
    ("channels", "variant"), [(5, ModelVariant.DEPTH), (8, ModelVariant.INSTRUCT_PIX2PIX)]
)
def test_other_unet_variants(tmp_path: Path, channels: int, variant: ModelVariant) -> None:
    probe = probe_of(tmp_path, sd2() | {U + "input_blocks.0.0.weight": ("F16", (8, channels, 3, 3))})
    assert probe.variant is variant
    assert not probe.can_generate
    refusal(probe)


def test_unet_without_a_text_encoder_has_no_family_guess(tmp_path: Path) -> None:
    probe = probe_of(tmp_path, unet())
    assert probe.kind is ModelKind.CHECKPOINT
    assert probe.family is ModelFamily.UNKNOWN
    assert not probe.can_generate
    refusal(probe)


def test_bad_input_12_sd3_is_recognised_as_unsupported(tmp_path: Path) -> None:
    keys: Spec = {
        U + "joint_blocks.0.context_block.attn.qkv.weight": ("F16", (24, 8)),
        U + "joint_blocks.0.x_block.attn.qkv.weight": ("F16", (24, 8)),
        U + "x_embedder.proj.weight": ("F16", (8, 16, 2, 2)),
        "text_encoders.clip_l.transformer.text_model.embeddings.token_embedding.weight": ("F16", (16, 8)),
    } | vae()
    probe = probe_of(tmp_path, keys, name="sd3.safetensors")
    assert (probe.kind, probe.family) == (ModelKind.CHECKPOINT, ModelFamily.SD3)
    assert (
        refusal(probe)
        == "sd3.safetensors is a Stable Diffusion 3 model, which Diffusion Desktop does not support yet"
    )


@pytest.mark.parametrize("prefix", [U, ""])
def test_bad_input_12_flux_is_recognised_as_unsupported(tmp_path: Path, prefix: str) -> None:
    keys: Spec = {
        prefix + "double_blocks.0.img_attn.qkv.weight": ("BF16", (24, 8)),
        prefix + "double_blocks.0.txt_attn.qkv.weight": ("BF16", (24, 8)),
        prefix + "single_blocks.0.linear1.weight": ("BF16", (24, 8)),
        prefix + "img_in.weight": ("BF16", (8, 64)),
    }
    probe = probe_of(tmp_path, keys, name="flux1-dev.safetensors")
    assert (probe.kind, probe.family, probe.precision) == (ModelKind.CHECKPOINT, ModelFamily.FLUX, "bf16")
    assert (
        refusal(probe)
        == "flux1-dev.safetensors is a Flux model, which Diffusion Desktop does not support yet"
    )


# --- ControlNet --------------------------------------------------------------------------------


def test_bad_input_12_ldm_controlnet(tmp_path: Path) -> None:
    keys: Spec = {
        "control_model.input_blocks.0.0.weight": ("F16", (8, 4, 3, 3)),
        "control_model.input_hint_block.0.weight": ("F16", (8, 3, 3, 3)),
        "control_model.zero_convs.0.0.weight": ("F16", (8, 8, 1, 1)),
        "control_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight": ("F16", (8, 768)),
    }
    probe = probe_of(tmp_path, keys, name="control_canny.safetensors")
    assert (probe.kind, probe.family) == (ModelKind.CONTROLNET, ModelFamily.SD1)
    assert "ControlNet" in refusal(probe)


def test_controlnet_bundled_with_a_full_model_is_still_a_controlnet(tmp_path: Path) -> None:
    keys = sd1() | {
        "control_model.input_hint_block.0.weight": ("F16", (8, 3, 3, 3)),
        "control_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight": ("F16", (8, 768)),
    }
    assert probe_of(tmp_path, keys).kind is ModelKind.CONTROLNET


def test_diffusers_sdxl_controlnet(tmp_path: Path) -> None:
    keys: Spec = {
        "controlnet_cond_embedding.conv_in.weight": ("F16", (8, 3, 3, 3)),
        "add_embedding.linear_1.weight": ("F16", (8, 2816)),
        "down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.weight": ("F16", (8, 2048)),
        "controlnet_down_blocks.0.weight": ("F16", (8, 8, 1, 1)),
    }
    probe = probe_of(tmp_path, keys)
    assert (probe.kind, probe.family) == (ModelKind.CONTROLNET, ModelFamily.SDXL)


# --- LoRA and LyCORIS --------------------------------------------------------------------------


def test_bad_input_12_sd1_lora_dropped_as_checkpoint(tmp_path: Path) -> None:
    probe = probe_of(
        tmp_path,
        kohya_lora(SD1_LORA_MODULES),
        name="x.safetensors",
        metadata={"ss_network_module": "networks.lora"},
    )
    assert (probe.kind, probe.family, probe.layout) == (ModelKind.LORA, ModelFamily.SD1, ModelLayout.KOHYA)
    assert probe.precision == "fp16"
    assert not probe.has_vae and not probe.has_ema
    assert probe.describe() == "LoRA for Stable Diffusion 1.x, fp16"
    assert refusal(probe) == (
        "x.safetensors is a LoRA for Stable Diffusion 1.x, not a checkpoint: "
        "put it in models/Lora and use <lora:x:1> in the prompt"
    )


def test_sd2_lora_by_text_encoder_width(tmp_path: Path) -> None:
    modules = {
        "lora_te_text_model_encoder_layers_0_self_attn_q_proj": 1024,
        "lora_unet_mid_block_attentions_0_proj_in": 1280,
    }
    assert probe_of(tmp_path, kohya_lora(modules)).family is ModelFamily.SD2


def test_bad_input_12_sdxl_lora_is_told_apart_from_sd1(tmp_path: Path) -> None:
    probe = probe_of(tmp_path, kohya_lora(SDXL_LORA_MODULES), name="pixel_art_xl.safetensors")
    assert (probe.kind, probe.family) == (ModelKind.LORA, ModelFamily.SDXL)
    assert "for Stable Diffusion XL" in refusal(probe)


@pytest.mark.parametrize(
    ("width", "family"), [(768, ModelFamily.SD1), (1024, ModelFamily.SD2), (2048, ModelFamily.SDXL)]
)
def test_unet_only_lora_family_from_cross_attention_width(
    tmp_path: Path, width: int, family: ModelFamily
) -> None:
    modules = {
        "lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn2_to_k": width,
        "lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn1_to_q": 640,
    }
    probe = probe_of(tmp_path, kohya_lora(modules))
    assert (probe.kind, probe.family) == (ModelKind.LORA, family)


def test_lora_without_readable_widths_falls_back_to_kohya_metadata(tmp_path: Path) -> None:
    modules = {"lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_ff_net_2": 1280}
    probe = probe_of(tmp_path, kohya_lora(modules), metadata={"ss_base_model_version": "sdxl_base_v1-0"})
    assert probe.family is ModelFamily.SDXL
    assert any("ss_base_model_version" in r for r in probe.reasons)


def test_identification_ignores_the_file_name(tmp_path: Path) -> None:
    lora = probe_of(tmp_path, kohya_lora(SD1_LORA_MODULES), name="sd_xl_base_1.0.safetensors")
    assert (lora.kind, lora.family) == (ModelKind.LORA, ModelFamily.SD1)
    checkpoint = probe_of(tmp_path, sdxl(), name="my_lora_v2 (LoRA).safetensors")
    assert (checkpoint.kind, checkpoint.family) == (ModelKind.CHECKPOINT, ModelFamily.SDXL)


def test_lora_with_1x1_convolutions_is_plain_lora_not_locon(tmp_path: Path) -> None:
    # SD1's proj_in is a 1x1 conv: its kohya LoRA has 4-D down weights but is no LoCon.
    keys = kohya_lora(SD1_LORA_MODULES) | {
        "lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight": ("F16", (4, 320, 1, 1)),
        "lora_unet_down_blocks_0_attentions_0_proj_in.lora_up.weight": ("F16", (320, 4, 1, 1)),
    }
    assert probe_of(tmp_path, keys).kind is ModelKind.LORA


def test_locon_convolution_lora_is_lycoris(tmp_path: Path) -> None:
    keys = kohya_lora(SD1_LORA_MODULES) | {
        "lora_unet_down_blocks_0_resnets_0_conv1.lora_down.weight": ("F16", (4, 320, 3, 3)),
        "lora_unet_down_blocks_0_resnets_0_conv1.lora_up.weight": ("F16", (320, 4, 1, 1)),
    }
    probe = probe_of(tmp_path, keys)
    assert (probe.kind, probe.family, probe.layout) == (ModelKind.LYCORIS, ModelFamily.SD1, ModelLayout.KOHYA)
    assert any("LoCon" in r for r in probe.reasons)


def test_bad_input_12_lycoris_loha(tmp_path: Path) -> None:
    keys: Spec = {}
    for name, width in {
        "lora_te_text_model_encoder_layers_0_self_attn_q_proj": 768,
        "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k": 768,
    }.items():
        keys |= {
            f"{name}.hada_w1_a": ("F16", (8, 4)),
            f"{name}.hada_w1_b": ("F16", (4, width)),
            f"{name}.hada_w2_a": ("F16", (8, 4)),
            f"{name}.hada_w2_b": ("F16", (4, width)),
            f"{name}.alpha": ("F16", ()),
        }
    probe = probe_of(tmp_path, keys, name="loha.safetensors")
    assert (probe.kind, probe.family) == (ModelKind.LYCORIS, ModelFamily.SD1)
    assert refusal(probe).startswith(
        "loha.safetensors is a LyCORIS network for Stable Diffusion 1.x, not a checkpoint"
    )


def test_lycoris_lokr_width_is_the_kronecker_product(tmp_path: Path) -> None:
    name = "lora_unet_input_blocks_4_1_transformer_blocks_0_attn2_to_k"
    keys: Spec = {
        f"{name}.lokr_w1": ("F16", (8, 8)),
        f"{name}.lokr_w2_a": ("F16", (80, 2)),
        f"{name}.lokr_w2_b": ("F16", (2, 256)),  # 8 * 256 = 2048: SDXL
        f"{name}.alpha": ("F16", ()),
    }
    probe = probe_of(tmp_path, keys)
    assert (probe.kind, probe.family) == (ModelKind.LYCORIS, ModelFamily.SDXL)


def test_diffusers_peft_sdxl_lora(tmp_path: Path) -> None:
    keys: Spec = {
        "unet.down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.lora_A.weight": ("F16", (4, 2048)),
        "unet.down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.lora_B.weight": ("F16", (8, 4)),
        "text_encoder_2.text_model.encoder.layers.0.self_attn.q_proj.lora_A.weight": ("F16", (4, 1280)),
        "text_encoder_2.text_model.encoder.layers.0.self_attn.q_proj.lora_B.weight": ("F16", (8, 4)),
    }
    probe = probe_of(tmp_path, keys)
    assert (probe.kind, probe.family, probe.layout) == (
        ModelKind.LORA,
        ModelFamily.SDXL,
        ModelLayout.DIFFUSERS_LORA,
    )


def test_diffusers_attention_processor_sd1_lora(tmp_path: Path) -> None:
    keys: Spec = {
        "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn2.processor.to_k_lora.down.weight": (
            "F32",
            (4, 768),
        ),
        "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn2.processor.to_k_lora.up.weight": (
            "F32",
            (8, 4),
        ),
    }
    probe = probe_of(tmp_path, keys)
    assert (probe.kind, probe.family, probe.layout) == (
        ModelKind.LORA,
        ModelFamily.SD1,
        ModelLayout.DIFFUSERS_LORA,
    )


# --- embeddings, VAE, upscalers, unknown -------------------------------------------------------


@pytest.mark.parametrize(("width", "family"), [(768, ModelFamily.SD1), (1024, ModelFamily.SD2)])
def test_bad_input_12_textual_inversion_embedding(tmp_path: Path, width: int, family: ModelFamily) -> None:
    probe = probe_of(tmp_path, {"emb_params": ("F32", (2, width))}, name="bad-hands.safetensors")
    assert (probe.kind, probe.family) == (ModelKind.EMBEDDING, family)
    assert "put it in the embeddings folder and write bad-hands in the prompt" in refusal(probe)


def test_sdxl_embedding(tmp_path: Path) -> None:
    probe = probe_of(tmp_path, {"clip_l": ("F16", (2, 768)), "clip_g": ("F16", (2, 1280))})
    assert (probe.kind, probe.family) == (ModelKind.EMBEDDING, ModelFamily.SDXL)


def test_diffusers_learned_embedding(tmp_path: Path) -> None:
    probe = probe_of(tmp_path, {"<cat-toy>": ("F32", (768,))})
    assert (probe.kind, probe.family) == (ModelKind.EMBEDDING, ModelFamily.SD1)


@pytest.mark.parametrize("prefix", ["", "first_stage_model."])
def test_bad_input_12_ldm_vae(tmp_path: Path, prefix: str) -> None:
    probe = probe_of(tmp_path, vae(prefix, "F32"), name="vae-ft-mse.safetensors")
    assert (probe.kind, probe.family, probe.layout) == (
        ModelKind.VAE,
        ModelFamily.UNKNOWN,
        ModelLayout.LDM_SINGLE_FILE,
    )
    assert not probe.has_vae  # "baked-in VAE" is about checkpoints
    assert probe.describe() == "VAE, fp32"
    assert "put it in models/VAE" in refusal(probe)


def test_diffusers_vae(tmp_path: Path) -> None:
    keys: Spec = {
        "encoder.conv_in.weight": ("F16", (8, 3, 3, 3)),
        "encoder.down_blocks.0.resnets.0.conv1.weight": ("F16", (8, 8, 3, 3)),
        "decoder.conv_in.weight": ("F16", (8, 16, 3, 3)),
        "decoder.conv_out.weight": ("F16", (3, 8, 3, 3)),
    }
    probe = probe_of(tmp_path, keys)
    assert (probe.kind, probe.layout) == (ModelKind.VAE, ModelLayout.OTHER)
    assert any("16 latent channels" in r for r in probe.reasons)


@pytest.mark.parametrize(
    "keys",
    [
        {"conv_first.weight": ("F32", (8, 3, 3, 3)), "body.0.rdb1.conv1.weight": ("F32", (8, 8, 3, 3))},
        {"model.0.weight": ("F32", (8, 3, 3, 3)), "model.1.sub.0.RDB1.conv1.0.weight": ("F32", (8, 8, 3, 3))},
    ],
)
def test_esrgan_upscaler(tmp_path: Path, keys: Spec) -> None:
    probe = probe_of(tmp_path, keys, name="4x-UltraSharp.safetensors")
    assert probe.kind is ModelKind.UPSCALER
    assert "upscaler" in refusal(probe)


def test_unknown_file_lists_some_keys(tmp_path: Path) -> None:
    probe = probe_of(
        tmp_path, {"foo.weight": ("F32", (2, 2)), "bar.bias": ("F32", (2,))}, name="thing.safetensors"
    )
    assert probe.kind is ModelKind.UNKNOWN
    assert probe.describe() == "not a Stable Diffusion model file"
    assert any("bar.bias" in r and "foo.weight" in r for r in probe.reasons)
    assert "not a Stable Diffusion model file" in refusal(probe)


_EVERY_REALISTIC_KEY = sorted(
    set(sd1() | sd2() | sdxl() | sdxl_refiner() | EMA)
    | set(kohya_lora(SD1_LORA_MODULES) | kohya_lora(SDXL_LORA_MODULES))
    | {"emb_params", "clip_l", "clip_g", "v_pred", "conv_first.weight", "model.0.weight", "model.1.sub.0.w"}
    | {"control_model.input_hint_block.0.weight", "controlnet_cond_embedding.conv_in.weight"}
    | {"double_blocks.0.img_attn.qkv.weight", U + "joint_blocks.0.x_block.attn.qkv.weight"}
    | {
        "lora_unet_a_attn2_to_k.hada_w1_b",
        "lora_unet_a_attn2_to_k.lokr_w1",
        "lora_unet_a_attn2_to_k.lokr_w2_b",
    }
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.dictionaries(
        st.sampled_from(_EVERY_REALISTIC_KEY),
        st.tuples(
            st.sampled_from(["F16", "F32", "BF16", "I64"]), st.lists(st.integers(0, 5), max_size=4).map(tuple)
        ),
        max_size=12,
    )
)
def test_property_any_mix_of_known_keys_and_shapes_probes_without_crashing(
    tmp_path: Path, tensors: Spec
) -> None:
    """Item 12 in general: odd combinations and shapes give a verdict, never an exception."""
    probe = probe_of(tmp_path, tensors)
    assert probe.describe()
    try:
        require_generation_checkpoint(probe)
    except UnsupportedModel as error:
        assert probe.path.name in error.message
    else:
        assert probe.can_generate


# --- unreadable files --------------------------------------------------------------------------


def test_corrupt_and_missing_files_are_model_file_errors(tmp_path: Path) -> None:
    (tmp_path / "corrupt.safetensors").write_bytes(b"\x10\0\0\0\0\0\0\0{not json at all")
    with pytest.raises(ModelFileError):
        probe_model(tmp_path / "corrupt.safetensors")
    with pytest.raises(ModelFileError):
        probe_model(tmp_path / "missing.safetensors")
    with pytest.raises(ModelFileError):
        probe_model(tmp_path / "missing.ckpt")


def test_header_length_starting_with_the_pickle_byte_is_still_safetensors(tmp_path: Path) -> None:
    # 0x0280 = 640: the file starts with b"\x80\x02", like a protocol-2 pickle.
    header = json.dumps(
        {"emb_params": {"dtype": "F32", "shape": [1, 768], "data_offsets": [0, 3072]}}
    ).encode()
    header = header.ljust(0x280, b" ")
    path = tmp_path / "padded.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header + bytes(3072))
    assert path.read_bytes()[:2] == b"\x80\x02"
    assert probe_model(path).kind is ModelKind.EMBEDDING


# --- BAD_INPUTS item 7: pickles are never opened ------------------------------------------------


class _RunsCommand:
    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


class _OpensFile:
    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def _zip_checkpoint(payload: bytes) -> bytes:
    """The torch.save container: a zip holding archive/data.pkl."""
    from io import BytesIO

    buffer = BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("archive/data.pkl", payload)
        archive.writestr("archive/version", "3\n")
    return buffer.getvalue()


def _malicious_payloads(sentinel: Path) -> dict[str, bytes]:
    command = pickle.dumps({"state_dict": _RunsCommand(f"touch {shlex.quote(str(sentinel))}")}, protocol=2)
    opener = pickle.dumps(_OpensFile(str(sentinel)), protocol=4)
    return {"system": command, "open": opener, "zip": _zip_checkpoint(command)}


def test_malicious_payload_is_real(tmp_path: Path) -> None:
    """Guard for the test below: unpickling the payload does create the sentinel."""
    sentinel = tmp_path / "proof"
    pickle.loads(_malicious_payloads(sentinel)["open"]).close()
    assert sentinel.exists()


@pytest.mark.parametrize("payload_name", ["system", "open", "zip"])
@pytest.mark.parametrize("suffix", [".ckpt", ".pt", ".pth", ".bin", ".safetensors", ".CKPT"])
def test_bad_input_7_malicious_pickle_is_refused_unopened(
    tmp_path: Path, payload_name: str, suffix: str
) -> None:
    sentinel = tmp_path / "pwned"
    path = tmp_path / f"model{suffix}"
    path.write_bytes(_malicious_payloads(sentinel)[payload_name])

    with pytest.raises(UnsupportedModel) as caught:
        probe_model(path)

    assert not sentinel.exists()
    message = caught.value.message
    assert "pickle" in message and "can run code" in message and ".safetensors version" in message
    assert path.name in message
    assert caught.value.details["reason"] == "pickle"


# --- diffusers folders -------------------------------------------------------------------------


def write_diffusers(
    root: Path,
    unet_config: dict,
    *,
    prediction: str | None = "epsilon",
    weights_suffix: str = ".safetensors",
    class_name: str = "StableDiffusionPipeline",
) -> Path:
    index = {
        "_class_name": class_name,
        "_diffusers_version": "0.30.0",
        "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"],
        "scheduler": ["diffusers", "PNDMScheduler"],
        "safety_checker": [None, None],
    }
    root.mkdir()
    (root / "model_index.json").write_text(json.dumps(index))
    for component in ("unet", "vae", "text_encoder", "tokenizer", "scheduler"):
        (root / component).mkdir()
    (root / "unet" / "config.json").write_text(json.dumps(unet_config))
    (root / "tokenizer" / "vocab.json").write_text("{}")
    scheduler = {"_class_name": "PNDMScheduler"} | ({"prediction_type": prediction} if prediction else {})
    (root / "scheduler" / "scheduler_config.json").write_text(json.dumps(scheduler))
    weights = {"unet": "diffusion_pytorch_model", "vae": "diffusion_pytorch_model", "text_encoder": "model"}
    for component, stem in weights.items():
        target = root / component / f"{stem}{weights_suffix}"
        if weights_suffix == ".safetensors":
            write_model(target, {"conv_in.weight": ("F16", (8, 4, 3, 3)), "conv_in.bias": ("F16", (8,))})
        else:
            target.write_bytes(_malicious_payloads(root.parent / "pwned")["system"])
    return root


@pytest.mark.parametrize(
    ("config", "family"),
    [
        ({"cross_attention_dim": 768}, ModelFamily.SD1),
        ({"cross_attention_dim": 1024}, ModelFamily.SD2),
        ({"cross_attention_dim": 2048, "addition_embed_type": "text_time"}, ModelFamily.SDXL),
        ({"cross_attention_dim": 1280, "addition_embed_type": "text_time"}, ModelFamily.SDXL_REFINER),
    ],
)
def test_diffusers_folder_family_from_unet_config(tmp_path: Path, config: dict, family: ModelFamily) -> None:
    root = write_diffusers(tmp_path / "model", config | {"in_channels": 4})
    if family is ModelFamily.SDXL_REFINER:
        # The refiner has only OpenCLIP bigG, saved as text_encoder_2: no CLIP-L folder.
        (root / "text_encoder").rename(root / "text_encoder_2")
    probe = probe_model(root)
    assert (probe.kind, probe.family, probe.layout) == (
        ModelKind.CHECKPOINT,
        family,
        ModelLayout.DIFFUSERS_FOLDER,
    )
    assert probe.prediction is PredictionType.EPSILON
    assert probe.precision == "fp16"
    assert probe.has_vae and probe.header is None
    assert probe.can_generate is (family is not ModelFamily.SDXL_REFINER)


def test_diffusers_folder_v_prediction_and_inpainting(tmp_path: Path) -> None:
    probe = probe_model(
        write_diffusers(
            tmp_path / "sd2-inpaint",
            {"cross_attention_dim": 1024, "in_channels": 9},
            prediction="v_prediction",
        )
    )
    assert (probe.family, probe.variant, probe.in_channels) == (ModelFamily.SD2, ModelVariant.INPAINT, 9)
    assert probe.prediction is PredictionType.V_PREDICTION
    assert "inpainting" in refusal(probe)


def test_diffusers_folder_default_prediction_is_epsilon(tmp_path: Path) -> None:
    probe = probe_model(write_diffusers(tmp_path / "m", {"cross_attention_dim": 768}, prediction=None))
    assert probe.prediction is PredictionType.EPSILON
    assert probe.in_channels == 4


def test_bad_input_7_diffusers_folder_with_only_pickle_weights_is_refused(tmp_path: Path) -> None:
    folder = write_diffusers(tmp_path / "old", {"cross_attention_dim": 768}, weights_suffix=".bin")
    with pytest.raises(UnsupportedModel) as caught:
        probe_model(folder)
    assert "pickle" in caught.value.message
    assert not (tmp_path / "pwned").exists()


def test_folder_without_model_index_is_not_a_model(tmp_path: Path) -> None:
    (tmp_path / "photos").mkdir()
    with pytest.raises(ModelFileError) as caught:
        probe_model(tmp_path / "photos")
    assert "model_index.json" in caught.value.message


def test_diffusers_folder_without_weights(tmp_path: Path) -> None:
    folder = write_diffusers(tmp_path / "empty", {"cross_attention_dim": 768})
    for weights in folder.glob("*/*.safetensors"):
        weights.unlink()
    with pytest.raises(ModelFileError):
        probe_model(folder)


# --- layering --------------------------------------------------------------------------------


def test_library_imports_without_torch() -> None:
    code = (
        "import sys\n"
        "import desktop.library.probe, desktop.library.hashes, desktop.library.safetensors_file\n"
        "heavy = [m for m in ('torch', 'numpy', 'safetensors', 'PySide6') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, check=True, timeout=60)


# --- cross-check with the independent LDM layout spec ------------------------------------------


@pytest.mark.parametrize("size", ["tiny", "full"])
@pytest.mark.parametrize(
    ("family", "expected", "ema"),
    [("sd1", ModelFamily.SD1, True), ("sd2", ModelFamily.SD2, True), ("sdxl", ModelFamily.SDXL, False)],
)
def test_checkpoints_from_the_ldm_layout_spec(
    tmp_path: Path, family: str, expected: ModelFamily, ema: bool, size: str
) -> None:
    """tests/fixtures/ldm_layout.py lists every key of real checkpoints, written from the original code."""
    torch = pytest.importorskip("torch")
    layout = pytest.importorskip("tests.fixtures.ldm_layout")
    shapes_of = getattr(layout, f"{family}_checkpoint_shapes")
    shapes = shapes_of(tiny=size == "tiny", **({"with_ema": True} if ema else {}))
    path = tmp_path / f"{family}.safetensors"
    layout.write_checkpoint(path, shapes, dtype=torch.float16, fill="random" if size == "tiny" else "tagged")

    probe = probe_model(path)

    assert (probe.kind, probe.family, probe.variant) == (ModelKind.CHECKPOINT, expected, ModelVariant.NORMAL)
    assert (probe.has_vae, probe.has_ema, probe.precision) == (True, ema, "fp16")
    assert probe.can_generate


def test_a_converted_a1111_hypernetwork_is_recognised(tmp_path: Path) -> None:
    tensors = {}
    for dim in (768, 320, 640, 1280):
        for half in (0, 1):
            tensors[f"{dim}.{half}.linear.0.weight"] = ("F32", (dim * 2, dim))
            tensors[f"{dim}.{half}.linear.0.bias"] = ("F32", (dim * 2,))
            tensors[f"{dim}.{half}.linear.1.weight"] = ("F32", (dim, dim * 2))
    probe = probe_of(tmp_path, tensors, metadata={"format": "a1111-hypernetwork"})
    assert (probe.kind, probe.family) == (ModelKind.HYPERNETWORK, ModelFamily.SD1)
    assert "hypernetwork" in probe.describe()
