"""Self-test of tests/fixtures/ldm_layout.py against diffusers / transformers.

The fixture is written from the original LDM/SGM code; diffusers and
transformers are an independent second implementation of the same
architectures. Keys differ between the two, but parameter totals, tensor
counts and the multiset of tensor shapes (1x1 conv == linear) must agree.
Models are built on the meta device, so even full-size checks are cheap.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any, Iterable

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from tests.fixtures import ldm_layout as L

# Totals of the real released models (diffusers/transformers parameter counts).
SD15_UNET_PARAMS = 859_520_964
SD2_UNET_PARAMS = 865_910_724
SDXL_UNET_PARAMS = 2_567_463_684
SD_VAE_PARAMS = 83_653_863
CLIP_L_TEXT_PARAMS = 123_060_480  # without the position_ids buffer


# --------------------------------------------------------------------------- #
# helpers                                                                      #
# --------------------------------------------------------------------------- #


def _norm_shape(shape: Iterable[int]) -> tuple[int, ...]:
    """Treat a 1x1 conv weight like the equivalent linear weight."""
    s = tuple(shape)
    if len(s) == 4 and s[2:] == (1, 1):
        return s[:2]
    return s


def _shape_multiset(shapes: Iterable[Iterable[int]]) -> Counter[tuple[int, ...]]:
    return Counter(_norm_shape(s) for s in shapes)


def _param_shapes(model: torch.nn.Module) -> list[tuple[int, ...]]:
    return [tuple(p.shape) for p in model.parameters()]


def _meta_model(factory: Any, *args: Any, **kwargs: Any) -> torch.nn.Module:
    import accelerate

    with accelerate.init_empty_weights():
        return factory(*args, **kwargs)


def _diffusers_unet_config(hp: dict[str, Any], heads: Iterable[int]) -> dict[str, Any]:
    """Translate fixture hyperparameters into a diffusers UNet2DConditionModel config."""
    mc, mult = hp["model_channels"], hp["channel_mult"]
    levels = range(len(mult))
    attn = set(hp["attention_levels"])
    down = tuple("CrossAttnDownBlock2D" if i in attn else "DownBlock2D" for i in levels)
    up = tuple("CrossAttnUpBlock2D" if i in attn else "UpBlock2D" for i in reversed(levels))
    # diffusers uses transformer_layers_per_block[-1] for the mid block.
    depth = [max(d, 1) for d in hp["transformer_depth"]]
    depth[-1] = hp["middle_transformer_depth"]
    config: dict[str, Any] = {
        "sample_size": 8,
        "in_channels": hp["in_channels"],
        "out_channels": hp["out_channels"],
        "block_out_channels": tuple(mc * m for m in mult),
        "layers_per_block": hp["num_res_blocks"],
        "down_block_types": down,
        "up_block_types": up,
        "cross_attention_dim": hp["context_dim"],
        "transformer_layers_per_block": tuple(depth),
        # diffusers' historical misnomer: this is the number of heads.
        "attention_head_dim": tuple(heads),
        "use_linear_projection": hp["use_linear_in_transformer"],
    }
    if hp["adm_in_channels"] is not None:
        config.update(
            addition_embed_type="text_time",
            addition_time_embed_dim=L.SDXL_ADM_SCALAR_DIM,
            projection_class_embeddings_input_dim=hp["adm_in_channels"],
        )
    return config


def _assert_unet_matches(hp: dict[str, Any], heads: Iterable[int]) -> int:
    from diffusers import UNet2DConditionModel

    ours = L.unet_shapes(**hp)
    theirs = _meta_model(UNet2DConditionModel, **_diffusers_unet_config(hp, heads))
    theirs_shapes = _param_shapes(theirs)
    assert len(ours) == len(theirs_shapes)
    assert L.total_elements(ours) == sum(math.prod(s) for s in theirs_shapes)
    assert _shape_multiset(ours.values()) == _shape_multiset(theirs_shapes)
    return L.total_elements(ours)


def _assert_vae_matches(hp: dict[str, Any]) -> int:
    from diffusers import AutoencoderKL

    ours = L.vae_shapes(**hp)
    n = len(hp["ch_mult"])
    theirs = _meta_model(
        AutoencoderKL,
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * n,
        up_block_types=("UpDecoderBlock2D",) * n,
        block_out_channels=tuple(hp["ch"] * m for m in hp["ch_mult"]),
        layers_per_block=hp["num_res_blocks"],
        latent_channels=hp["z_channels"],
        norm_num_groups=32,
    )
    theirs_shapes = _param_shapes(theirs)
    assert len(ours) == len(theirs_shapes)
    assert L.total_elements(ours) == sum(math.prod(s) for s in theirs_shapes)
    assert _shape_multiset(ours.values()) == _shape_multiset(theirs_shapes)
    return L.total_elements(ours)


def _assert_clip_l_matches(hp: dict[str, Any], heads: int) -> int:
    from transformers import CLIPTextConfig, CLIPTextModel

    ours = L.clip_l_shapes(**hp)
    # position_ids is a buffer in the files but not a parameter anywhere.
    ids = [k for k in ours if k.endswith("position_ids")]
    assert ids == [L.SD1_CLIP_PREFIX + "text_model.embeddings.position_ids"]
    assert ours[ids[0]] == (1, hp["positions"])
    params = {k: v for k, v in ours.items() if k not in ids}
    config = CLIPTextConfig(
        vocab_size=hp["vocab"],
        hidden_size=hp["hidden"],
        intermediate_size=hp["intermediate"],
        num_hidden_layers=hp["layers"],
        num_attention_heads=heads,
        max_position_embeddings=hp["positions"],
    )
    theirs = _meta_model(CLIPTextModel, config)
    theirs_shapes = _param_shapes(theirs)
    # Same keys up to the prefix, so compare exactly.
    # transformers 5 flattened CLIPTextModel (no `text_model.` level, unlike the
    # files and CLIPTextModelWithProjection), so compare below that level.
    theirs_named = {k.removeprefix("text_model."): tuple(p.shape) for k, p in theirs.named_parameters()}
    ours_named = {k.removeprefix(L.SD1_CLIP_PREFIX + "text_model."): v for k, v in params.items()}
    assert ours_named == theirs_named
    assert L.total_elements(params) == sum(math.prod(s) for s in theirs_shapes)
    return L.total_elements(params)


def _assert_open_clip_matches(hp: dict[str, Any], heads: int, prefix: str) -> None:
    """OpenCLIP text tower vs HF CLIPTextModelWithProjection.

    Equal after: splitting each fused in_proj into q/k/v, transposing
    text_projection (OpenCLIP does x @ P, HF a Linear), and dropping
    logit_scale (HF text-only model has none). So OpenCLIP total ==
    HF total + 1.
    """
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection

    ours = L.open_clip_shapes(**hp, heads=heads, prefix=prefix)
    assert ours[prefix + "logit_scale"] == ()
    mapped: list[tuple[int, ...]] = []
    for key, shape in ours.items():
        name = key.removeprefix(prefix)
        if name == "logit_scale":
            continue
        if name.endswith("attn.in_proj_weight"):
            mapped += [(shape[0] // 3, shape[1])] * 3
        elif name.endswith("attn.in_proj_bias"):
            mapped += [(shape[0] // 3,)] * 3
        elif name == "text_projection":
            mapped.append((shape[1], shape[0]))
        else:
            mapped.append(shape)
    config = CLIPTextConfig(
        vocab_size=hp["vocab"],
        hidden_size=hp["width"],
        intermediate_size=4 * hp["width"],
        num_hidden_layers=hp["layers"],
        num_attention_heads=heads,
        max_position_embeddings=hp["positions"],
        projection_dim=hp["projection_dim"],
    )
    theirs = _meta_model(CLIPTextModelWithProjection, config)
    theirs_shapes = _param_shapes(theirs)
    theirs_total = sum(math.prod(s) for s in theirs_shapes)
    assert L.total_elements(ours) == theirs_total + 1
    assert Counter(mapped) == Counter(theirs_shapes)


# --------------------------------------------------------------------------- #
# full-size architectures vs diffusers / transformers                          #
# --------------------------------------------------------------------------- #


@pytest.mark.slow
def test_full_sd15_unet_matches_diffusers() -> None:
    total = _assert_unet_matches(L.FULL_SD1["unet"], heads=(8, 8, 8, 8))
    assert total == SD15_UNET_PARAMS


@pytest.mark.slow
def test_full_sd2_unet_matches_diffusers() -> None:
    total = _assert_unet_matches(L.FULL_SD2["unet"], heads=(5, 10, 20, 20))
    assert total == SD2_UNET_PARAMS


@pytest.mark.slow
def test_full_sdxl_unet_matches_diffusers() -> None:
    total = _assert_unet_matches(L.FULL_SDXL["unet"], heads=(5, 10, 20))
    assert total == SDXL_UNET_PARAMS


@pytest.mark.slow
def test_full_vae_matches_diffusers() -> None:
    assert _assert_vae_matches(L.FULL_SD1["vae"]) == SD_VAE_PARAMS


@pytest.mark.slow
def test_full_clip_l_matches_transformers() -> None:
    assert _assert_clip_l_matches(L.FULL_SD1["clip_l"], heads=12) == CLIP_L_TEXT_PARAMS


@pytest.mark.slow
def test_full_open_clip_vit_h_matches_transformers() -> None:
    _assert_open_clip_matches(L.FULL_SD2["open_clip"], heads=16, prefix=L.SD2_OPENCLIP_PREFIX)


@pytest.mark.slow
def test_full_open_clip_bigg_matches_transformers() -> None:
    _assert_open_clip_matches(L.FULL_SDXL["open_clip"], heads=20, prefix=L.SDXL_OPENCLIP_PREFIX)


# --------------------------------------------------------------------------- #
# tiny architectures vs diffusers / transformers                               #
# --------------------------------------------------------------------------- #


def test_tiny_sd1_unet_matches_diffusers() -> None:
    _assert_unet_matches(L.TINY_SD1["unet"], heads=(L.TINY_SD1["unet_num_heads"],) * 2)


def test_tiny_sd2_unet_matches_diffusers() -> None:
    hp = L.TINY_SD2["unet"]
    heads = [hp["model_channels"] * m // L.TINY_SD2["unet_num_head_channels"] for m in hp["channel_mult"]]
    assert heads == [1, 2]
    _assert_unet_matches(hp, heads=heads)


def test_tiny_sdxl_unet_matches_diffusers() -> None:
    hp = L.TINY_SDXL["unet"]
    assert hp["adm_in_channels"] == L.TINY_SDXL["open_clip"]["projection_dim"] + 6 * 256 == 1600
    assert hp["context_dim"] == L.TINY_SDXL["clip_l"]["hidden"] + L.TINY_SDXL["open_clip"]["width"] == 96
    _assert_unet_matches(hp, heads=(1, 2))


def test_tiny_vae_matches_diffusers() -> None:
    for family in L.TINY.values():
        _assert_vae_matches(family["vae"])


def test_tiny_clip_l_matches_transformers() -> None:
    _assert_clip_l_matches(L.TINY_SD1["clip_l"], heads=L.TINY_SD1["clip_l_heads"])


def test_tiny_open_clip_matches_transformers() -> None:
    _assert_open_clip_matches(L.TINY_SD2["open_clip"], heads=1, prefix=L.SD2_OPENCLIP_PREFIX)
    _assert_open_clip_matches(L.TINY_SDXL["open_clip"], heads=1, prefix=L.SDXL_OPENCLIP_PREFIX)


# --------------------------------------------------------------------------- #
# key-level spot checks (names as they appear in the released files)           #
# --------------------------------------------------------------------------- #


def test_sd15_known_keys() -> None:
    s = L.sd1_checkpoint_shapes(with_ema=True)
    u = L.UNET_PREFIX
    assert s[u + "input_blocks.0.0.weight"] == (320, 4, 3, 3)
    assert s[u + "input_blocks.1.1.proj_in.weight"] == (320, 320, 1, 1)  # SD1: conv
    assert s[u + "input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight"] == (320, 768)
    assert s[u + "input_blocks.1.1.transformer_blocks.0.ff.net.0.proj.weight"] == (2560, 320)
    assert s[u + "input_blocks.4.0.skip_connection.weight"] == (640, 320, 1, 1)
    assert s[u + "input_blocks.9.0.op.weight"] == (1280, 1280, 3, 3)
    assert u + "input_blocks.10.1.norm.weight" not in s  # deepest level: no attention
    assert s[u + "middle_block.1.proj_out.weight"] == (1280, 1280, 1, 1)
    assert s[u + "output_blocks.0.0.in_layers.0.weight"] == (2560,)
    assert s[u + "output_blocks.2.1.conv.weight"] == (1280, 1280, 3, 3)
    assert s[u + "output_blocks.5.2.conv.weight"] == (1280, 1280, 3, 3)
    assert s[u + "output_blocks.8.2.conv.weight"] == (640, 640, 3, 3)
    assert s[u + "output_blocks.11.1.proj_in.weight"] == (320, 320, 1, 1)
    assert s[u + "out.2.weight"] == (4, 320, 3, 3)
    assert u + "label_emb.0.0.weight" not in s
    assert s["model_ema.diffusion_modelinput_blocks00weight"] == (320, 4, 3, 3)
    assert s["model_ema.decay"] == () and s["model_ema.num_updates"] == ()
    assert s["alphas_cumprod"] == (1000,)
    v = L.VAE_PREFIX
    assert s[v + "encoder.conv_out.weight"] == (8, 512, 3, 3)
    assert s[v + "encoder.down.1.block.0.nin_shortcut.weight"] == (256, 128, 1, 1)
    assert v + "encoder.down.3.downsample.conv.weight" not in s
    assert s[v + "decoder.mid.attn_1.q.weight"] == (512, 512, 1, 1)
    assert s[v + "decoder.up.0.block.0.nin_shortcut.weight"] == (128, 256, 1, 1)
    assert s[v + "decoder.up.3.upsample.conv.weight"] == (512, 512, 3, 3)
    assert v + "decoder.up.0.upsample.conv.weight" not in s
    assert s[v + "decoder.up.0.block.2.conv2.weight"] == (128, 128, 3, 3)
    assert s[v + "quant_conv.weight"] == (8, 8, 1, 1)
    assert s[v + "post_quant_conv.weight"] == (4, 4, 1, 1)
    c = L.SD1_CLIP_PREFIX
    assert s[c + "text_model.encoder.layers.11.mlp.fc1.weight"] == (3072, 768)
    assert s[c + "text_model.final_layer_norm.weight"] == (768,)
    # EMA copy sits between the UNet and the VAE, like LatentDiffusion's state dict.
    keys = list(s)
    assert keys.index("model_ema.decay") < keys.index(v + "encoder.conv_in.weight")
    # SD1.5 full checkpoint: UNet + VAE + CLIP-L (+ 77 position ids + 12x1000 DDPM).
    no_ema = L.sd1_checkpoint_shapes()
    assert L.total_elements(no_ema) == SD15_UNET_PARAMS + SD_VAE_PARAMS + CLIP_L_TEXT_PARAMS + 77 + 12_000


def test_sd2_known_keys() -> None:
    s = L.sd2_checkpoint_shapes()
    u = L.UNET_PREFIX
    assert s[u + "input_blocks.1.1.proj_in.weight"] == (320, 320)  # SD2: linear
    assert s[u + "input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight"] == (320, 1024)
    o = L.SD2_OPENCLIP_PREFIX
    assert s[o + "positional_embedding"] == (77, 1024)
    assert s[o + "token_embedding.weight"] == (49408, 1024)
    assert s[o + "transformer.resblocks.23.attn.in_proj_weight"] == (3072, 1024)
    assert s[o + "transformer.resblocks.23.mlp.c_fc.weight"] == (4096, 1024)
    assert s[o + "text_projection"] == (1024, 1024)
    assert s[o + "logit_scale"] == ()
    assert o + "transformer.resblocks.24.ln_1.weight" not in s
    assert set(L.DDPM_BUFFER_NAMES) <= set(s)


def test_sdxl_known_keys() -> None:
    s = L.sdxl_checkpoint_shapes()
    u = L.UNET_PREFIX
    assert s[u + "label_emb.0.0.weight"] == (1280, 2816)
    assert s[u + "label_emb.0.2.weight"] == (1280, 1280)
    assert u + "input_blocks.1.1.norm.weight" not in s  # level 0 has no attention
    assert s[u + "input_blocks.4.1.proj_in.weight"] == (640, 640)
    assert s[u + "input_blocks.4.1.transformer_blocks.1.attn2.to_k.weight"] == (640, 2048)
    assert u + "input_blocks.4.1.transformer_blocks.2.norm1.weight" not in s
    assert s[u + "input_blocks.7.1.transformer_blocks.9.attn1.to_q.weight"] == (1280, 1280)
    assert s[u + "middle_block.1.transformer_blocks.9.norm3.weight"] == (1280,)
    assert s[u + "output_blocks.2.2.conv.weight"] == (1280, 1280, 3, 3)
    assert s[u + "output_blocks.5.2.conv.weight"] == (640, 640, 3, 3)
    assert u + "output_blocks.8.1.conv.weight" not in s
    assert s[L.SDXL_CLIP_L_PREFIX + "text_model.embeddings.position_ids"] == (1, 77)
    g = L.SDXL_OPENCLIP_PREFIX
    assert s[g + "transformer.resblocks.31.attn.in_proj_weight"] == (3840, 1280)
    assert s[g + "text_projection"] == (1280, 1280)
    assert s[L.VAE_PREFIX + "decoder.conv_out.weight"] == (3, 128, 3, 3)
    assert not set(L.DDPM_BUFFER_NAMES) & set(s)
    assert not any(k.startswith("model_ema.") for k in s)


def test_ema_key_naming() -> None:
    assert L.ema_key("model.diffusion_model.input_blocks.0.0.weight") == (
        "model_ema.diffusion_modelinput_blocks00weight"
    )
    assert L.ema_key("model.diffusion_model.middle_block.1.transformer_blocks.0.attn1.to_q.weight") == (
        "model_ema.diffusion_modelmiddle_block1transformer_blocks0attn1to_qweight"
    )


def test_tiny_layouts_have_real_key_pattern() -> None:
    # Tiny files are supposed to be real files shrunk: same naming scheme.
    sd1 = L.sd1_checkpoint_shapes(tiny=True, with_ema=True)
    assert sd1[L.UNET_PREFIX + "input_blocks.1.1.proj_in.weight"] == (32, 32, 1, 1)
    assert sd1[L.SD1_CLIP_PREFIX + "text_model.embeddings.token_embedding.weight"] == (49408, 32)
    sd2 = L.sd2_checkpoint_shapes(tiny=True)
    assert sd2[L.UNET_PREFIX + "input_blocks.1.1.proj_in.weight"] == (64, 64)
    assert sd2[L.SD2_OPENCLIP_PREFIX + "positional_embedding"] == (77, 64)
    xl = L.sdxl_checkpoint_shapes(tiny=True)
    assert xl[L.UNET_PREFIX + "label_emb.0.0.weight"] == (256, 1600)
    assert xl[L.UNET_PREFIX + "input_blocks.4.1.transformer_blocks.0.attn2.to_k.weight"] == (128, 96)
    assert L.UNET_PREFIX + "input_blocks.1.1.norm.weight" not in xl


# --------------------------------------------------------------------------- #
# writers                                                                      #
# --------------------------------------------------------------------------- #


def _read_header(path: Path) -> bytes:
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        return f.read(n)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
def test_handwritten_header_is_byte_identical_to_safetensors(tmp_path: Path, dtype: torch.dtype) -> None:
    shapes = L.sd1_checkpoint_shapes(tiny=True, with_ema=True)
    # One metadata key only: safetensors serialises metadata from a Rust
    # HashMap, so the order of several keys varies from process to process.
    meta = {"format": "pt"}
    L.write_checkpoint(tmp_path / "random.safetensors", shapes, dtype=dtype, fill="random", metadata=meta)
    L.write_checkpoint(tmp_path / "tagged.safetensors", shapes, dtype=dtype, fill="tagged", metadata=meta)
    assert _read_header(tmp_path / "random.safetensors") == _read_header(tmp_path / "tagged.safetensors")
    assert (tmp_path / "random.safetensors").stat().st_size == (tmp_path / "tagged.safetensors").stat().st_size


def test_handwritten_header_with_several_metadata_keys(tmp_path: Path) -> None:
    shapes = L.sd2_checkpoint_shapes(tiny=True)
    meta = {"format": "pt", "modelspec.title": "tiny", "modelspec.architecture": "stable-diffusion-v2"}
    L.write_checkpoint(tmp_path / "random.safetensors", shapes, fill="random", metadata=meta)
    L.write_checkpoint(tmp_path / "tagged.safetensors", shapes, fill="tagged", metadata=meta)
    ref = json.loads(_read_header(tmp_path / "random.safetensors"))
    ours = json.loads(_read_header(tmp_path / "tagged.safetensors"))
    assert ours == ref
    assert list(ours)[1:] == list(ref)[1:]  # tensor entries in the same layout order


def test_handwritten_header_without_metadata(tmp_path: Path) -> None:
    shapes = L.sdxl_checkpoint_shapes(tiny=True)
    header, _, size = L.build_header(shapes, dtype=torch.float16)
    save_file({k: torch.zeros(v, dtype=L.tensor_dtype(k, torch.float16)) for k, v in shapes.items()},
              str(tmp_path / "ref.safetensors"))
    assert header[8:] == _read_header(tmp_path / "ref.safetensors")
    assert len(header) + size == (tmp_path / "ref.safetensors").stat().st_size


def test_tag_values_unique_and_exact_in_all_float_dtypes() -> None:
    tags = [L.tag_value(i) for i in range(4096)]
    for dtype in (torch.float16, torch.bfloat16, torch.float32):
        cast = torch.tensor(tags, dtype=torch.float64).to(dtype).to(torch.float64).tolist()
        assert cast == tags
    assert len(set(tags)) == len(tags)
    assert tags[0] == 1.0
    with pytest.raises(ValueError):
        L.tag_value(4096)


@pytest.mark.parametrize("family", ["sd1", "sd2", "sdxl"])
def test_tagged_tiny_file_roundtrip(tmp_path: Path, family: str) -> None:
    builders = {
        "sd1": lambda: L.sd1_checkpoint_shapes(tiny=True, with_ema=True),
        "sd2": lambda: L.sd2_checkpoint_shapes(tiny=True),
        "sdxl": lambda: L.sdxl_checkpoint_shapes(tiny=True),
    }
    shapes = builders[family]()
    path = tmp_path / "tagged.safetensors"
    tags = L.write_checkpoint(path, shapes, fill="tagged", metadata={"family": family})
    ddpm = L.ddpm_buffer_values()
    with safe_open(str(path), framework="pt") as f:
        assert f.metadata() == {"family": family}
        assert set(f.keys()) == set(shapes)
        for key, shape in shapes.items():
            t = f.get_tensor(key)
            assert tuple(t.shape) == shape, key
            assert t.dtype == L.tensor_dtype(key, torch.float16), key
            flat = t.reshape(-1)
            if key in tags:
                assert flat[0].item() == tags[key], key
                assert not flat[1:].any(), key
            elif key.endswith("position_ids"):
                assert torch.equal(t, torch.arange(77).reshape(1, 77))
            elif key in ddpm:
                torch.testing.assert_close(t.double(), ddpm[key], rtol=2e-3, atol=1e-6)
            else:
                assert key.startswith("model_ema."), key
    assert len(set(tags.values())) == len(tags)
    assert "alphas_cumprod" not in tags


def test_random_tiny_file_is_seeded_and_sane(tmp_path: Path) -> None:
    shapes = L.sd1_checkpoint_shapes(tiny=True)
    a, b, c = (tmp_path / n for n in ("a.safetensors", "b.safetensors", "c.safetensors"))
    assert L.write_checkpoint(a, shapes, seed=1) == {}
    L.write_checkpoint(b, shapes, seed=1)
    L.write_checkpoint(c, shapes, seed=2)
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()
    with safe_open(str(a), framework="pt") as f:
        for key in f.keys():
            t = f.get_tensor(key)
            assert torch.isfinite(t.double()).all(), key
            if t.is_floating_point() and t.numel() > 1:
                assert t.abs().sum() > 0, key
        norm = f.get_tensor(L.UNET_PREFIX + "out.0.weight").double()
        assert (norm - 1).abs().max() < 0.2
        ac = f.get_tensor("alphas_cumprod").double()
        assert abs(ac[0].item() - (1 - 0.00085)) < 5e-4  # stored in the file dtype (fp16)
        assert abs(ac[-1].item() - 0.0047) < 1e-4  # SD's final alpha_bar
        betas = f.get_tensor("betas").double()
        assert abs(betas[-1].item() - 0.012) < 1e-5


def _check_full_tagged(path: Path, shapes: L.Shapes, tags: dict[str, float]) -> None:
    with safe_open(str(path), framework="pt") as f:
        assert set(f.keys()) == set(shapes)
        for key in f.keys():
            sl = f.get_slice(key)
            shape = tuple(sl.get_shape())
            assert shape == shapes[key], key
            if key not in tags:
                continue
            first = f.get_tensor(key) if shape == () else sl[0:1]
            assert first.reshape(-1)[0].item() == tags[key], key


def _write_full(path: Path, shapes: L.Shapes, label: str) -> dict[str, float]:
    start = time.perf_counter()
    tags = L.write_checkpoint(path, shapes, fill="tagged", metadata={"format": "pt"})
    elapsed = time.perf_counter() - start
    st = os.stat(path)
    print(
        f"\n{label}: wrote {st.st_size / 2**30:.2f} GiB tagged file ({len(shapes)} tensors) "
        f"in {elapsed:.2f} s; {st.st_blocks * 512 / 2**20:.1f} MiB on disk"
    )
    return tags


@pytest.mark.slow
def test_full_sd15_tagged_file(tmp_path: Path) -> None:
    shapes = L.sd1_checkpoint_shapes()
    path = tmp_path / "sd15.safetensors"
    tags = _write_full(path, shapes, "SD1.5")
    assert path.stat().st_size > 2 * L.total_elements(shapes)  # fp16 data + header
    assert len(tags) == len(shapes) - 12 - 1  # minus DDPM buffers and position_ids
    _check_full_tagged(path, shapes, tags)


@pytest.mark.slow
def test_full_sdxl_tagged_file(tmp_path: Path) -> None:
    shapes = L.sdxl_checkpoint_shapes()
    path = tmp_path / "sdxl.safetensors"
    tags = _write_full(path, shapes, "SDXL")
    assert len(tags) == len(shapes) - 1  # minus CLIP-L position_ids
    assert len(tags) > 2048  # exercises the negative half of the tag space
    _check_full_tagged(path, shapes, tags)
