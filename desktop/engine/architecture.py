"""Diffusers configs for a checkpoint: the family's bundled config, with every size read from the tensors.

The bundled config (``resources/configs/<family>``) supplies what shapes cannot tell (activation,
attention-head rule, scaling factor, noise schedule); the checkpoint supplies channel counts,
block depths and widths. Real files reproduce the bundled configs exactly (a test checks this), and
files with other sizes, such as the tiny models the tests build, load through the same code.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from desktop.core.errors import ModelFileError
from desktop.core.paths import resources_dir
from desktop.library.taxonomy import ModelFamily

Shapes = Mapping[str, tuple[int, ...]]
HEAD_CHANNELS = 64  # SD2, SDXL and all their text encoders use 64-channel attention heads


def family_config_dir(family: ModelFamily) -> Path:
    return resources_dir() / "configs" / family.value


def bundled_config(family: ModelFamily, component: str) -> dict[str, Any]:
    with open(family_config_dir(family) / f"{component}.json", encoding="utf-8") as handle:
        return json.load(handle)


def _indices(shapes: Shapes, pattern: str) -> list[int]:
    """Sorted distinct integers captured by ``pattern`` (one group) over the keys."""
    regex = re.compile(pattern)
    return sorted({int(m.group(1)) for key in shapes if (m := regex.match(key))})


def _shape(shapes: Shapes, key: str) -> tuple[int, ...]:
    try:
        return shapes[key]
    except KeyError:
        raise ModelFileError(f"the checkpoint lacks the tensor {key!r}; it is damaged or not in the expected layout") from None


def infer_unet_config(family: ModelFamily, shapes: Shapes) -> dict[str, Any]:
    """UNet2DConditionModel config from LDM UNet shapes (keys without ``model.diffusion_model.``)."""
    config = bundled_config(family, "unet")
    model_channels, in_channels = _shape(shapes, "input_blocks.0.0.weight")[:2]
    levels: list[dict[str, Any]] = [{"channels": model_channels, "resnets": 0, "depth": 0}]
    for block in _indices(shapes, r"input_blocks\.(\d+)\.")[1:]:
        if f"input_blocks.{block}.0.op.weight" in shapes:  # a Downsample closes the level
            levels.append({"channels": None, "resnets": 0, "depth": 0})
            continue
        level = levels[-1]
        level["channels"] = _shape(shapes, f"input_blocks.{block}.0.out_layers.3.weight")[0]
        level["resnets"] += 1
        depth = len(_indices(shapes, rf"input_blocks\.{block}\.1\.transformer_blocks\.(\d+)\."))
        level["depth"] = max(level["depth"], depth)
    resnet_counts = {level["resnets"] for level in levels}
    if len(resnet_counts) != 1:
        raise ModelFileError("the UNet has a different number of blocks per level; this layout is not supported")
    block_out_channels = [level["channels"] for level in levels]
    has_attention = [level["depth"] > 0 for level in levels]
    attn2 = sorted(k for k in shapes if k.endswith("attn2.to_k.weight"))
    if not attn2:
        raise ModelFileError("the UNet has no cross-attention layers; it is not a text-to-image Stable Diffusion UNet")
    proj_in = next(k for k in sorted(shapes) if k.endswith(".proj_in.weight"))
    middle_depth = len(_indices(shapes, r"middle_block\.1\.transformer_blocks\.(\d+)\."))
    depths = [max(level["depth"], 1) for level in levels]
    if middle_depth != depths[-1]:
        raise ModelFileError("the UNet's middle block depth differs from its last level; this layout is not supported")

    config.update(
        in_channels=in_channels,
        out_channels=_shape(shapes, "out.2.weight")[0],
        block_out_channels=block_out_channels,
        layers_per_block=resnet_counts.pop(),
        cross_attention_dim=shapes[attn2[0]][1],
        use_linear_projection=len(shapes[proj_in]) == 2,
        down_block_types=["CrossAttnDownBlock2D" if a else "DownBlock2D" for a in has_attention],
        up_block_types=["CrossAttnUpBlock2D" if a else "UpBlock2D" for a in reversed(has_attention)],
        transformer_layers_per_block=depths if any(d != 1 for d in depths) else 1,
    )
    if family is not ModelFamily.SD1:
        # SD1 fixes 8 heads per layer; later families fix the head width instead.
        config["attention_head_dim"] = [max(1, c // HEAD_CHANNELS) for c in block_out_channels]
    if "label_emb.0.0.weight" in shapes:
        config["projection_class_embeddings_input_dim"] = shapes["label_emb.0.0.weight"][1]
    return config


def infer_vae_config(family: ModelFamily, shapes: Shapes) -> dict[str, Any]:
    """AutoencoderKL config from LDM VAE shapes (keys without ``first_stage_model.``)."""
    config = bundled_config(family, "vae")
    levels = _indices(shapes, r"encoder\.down\.(\d+)\.")
    channels = [_shape(shapes, f"encoder.down.{i}.block.0.conv2.weight")[0] for i in levels]
    config.update(
        block_out_channels=channels,
        layers_per_block=len(_indices(shapes, r"encoder\.down\.0\.block\.(\d+)\.")),
        latent_channels=_shape(shapes, "decoder.conv_in.weight")[1],
        in_channels=_shape(shapes, "encoder.conv_in.weight")[1],
        out_channels=_shape(shapes, "decoder.conv_out.weight")[0],
        down_block_types=["DownEncoderBlock2D"] * len(levels),
        up_block_types=["UpDecoderBlock2D"] * len(levels),
    )
    return config


def infer_clip_config(family: ModelFamily, component: str, shapes: Shapes) -> dict[str, Any]:
    """CLIPTextConfig kwargs from HF-layout CLIP shapes (keys without the ``text_model.`` prefix)."""
    config = bundled_config(family, component)
    vocab, hidden = _shape(shapes, "embeddings.token_embedding.weight")
    config.update(
        vocab_size=vocab,
        hidden_size=hidden,
        max_position_embeddings=_shape(shapes, "embeddings.position_embedding.weight")[0],
        num_hidden_layers=len(_indices(shapes, r"encoder\.layers\.(\d+)\.")),
        intermediate_size=_shape(shapes, "encoder.layers.0.mlp.fc1.weight")[0],
        num_attention_heads=max(1, hidden // HEAD_CHANNELS),
    )
    if "text_projection.weight" in shapes:
        config["projection_dim"] = shapes["text_projection.weight"][0]
    return config


def infer_open_clip_config(family: ModelFamily, component: str, shapes: Shapes, *, drop_last_layer: bool) -> dict[str, Any]:
    """CLIPTextConfig kwargs from OpenCLIP shapes (keys without ``...model.``).

    SD2 conditions on the penultimate layer, so its last layer is dropped (``drop_last_layer``).
    """
    config = bundled_config(family, component)
    vocab, width = _shape(shapes, "token_embedding.weight")
    layers = len(_indices(shapes, r"transformer\.resblocks\.(\d+)\."))
    config.update(
        vocab_size=vocab,
        hidden_size=width,
        max_position_embeddings=_shape(shapes, "positional_embedding")[0],
        num_hidden_layers=layers - 1 if drop_last_layer else layers,
        intermediate_size=_shape(shapes, "transformer.resblocks.0.mlp.c_fc.weight")[0],
        num_attention_heads=max(1, width // HEAD_CHANNELS),
    )
    if "text_projection" in shapes:
        config["projection_dim"] = shapes["text_projection"][1]
    return config
