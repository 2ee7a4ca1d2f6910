"""Which layer of a loaded model each module of a LoRA file patches.

A1111 gives every layer a flat name (its module path with ``.`` replaced by ``_``) and looks the
file's module names up in that table. We do the same, for the two layouts LoRA files use:

- diffusers paths: kohya's SD1/SD2 names (``lora_unet_down_blocks_0_attentions_0_proj_in``,
  trained on the diffusers UNet) and diffusers/PEFT files (``unet.down_blocks.0.….lora_A.weight``).
  These are our modules' own paths.
- LDM/SGM paths: kohya's SDXL names (``lora_unet_input_blocks_4_1_transformer_blocks_0_attn2_to_k``,
  ``middle_block_1``, ``output_blocks_0_1``), the paths of the original UNet. Which LDM path is
  which of our modules is decided by diffusers' own checkpoint converter, the one the loader uses
  for LDM files: each UNet parameter's LDM name is written from the LDM block layout, passed
  through ``convert_ldm_unet_checkpoint``, and kept only when the converter sends it back to that
  very parameter. So an LDM name patches exactly the layer the loader filled from that LDM tensor.

Both spellings are in one table for every family (A1111 also accepts both). Underscores in flat
names are ambiguous, which is why names are looked up rather than parsed.

Text encoders: kohya writes ``lora_te_text_model_encoder_layers_0_self_attn_q_proj`` (SD1, SD2),
``lora_te1_`` (SDXL's CLIP-L; also SD1 files from diffusers' kohya converter) and ``lora_te2_``
(SDXL's OpenCLIP bigG). transformers 5's ``CLIPTextModel`` has no ``text_model`` level, while
``CLIPTextModelWithProjection`` keeps one, so ``text_model`` is dropped on both sides. SD2's
OpenCLIP tower is loaded as a ``CLIPTextModel`` with separate q/k/v projections: kohya's SD2 names
(which are HF CLIP names) fit it directly, as do the rows of OpenCLIP's fused ``in_proj``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

UNET = "unet"
TEXT_ENCODER = "te"  # the part whose multiplier is <lora:name:te_weight:…>

_KOHYA_UNET = "lora_unet_"
_KOHYA_SINGLE_TE = "lora_te_"
_KOHYA_TE = ("lora_te1_", "lora_te2_")
KOHYA_PREFIXES = (_KOHYA_UNET, _KOHYA_SINGLE_TE, *_KOHYA_TE)
# diffusers/PEFT files: component prefix -> (part, text encoder index or None for the UNet)
_DIFFUSERS_PREFIXES: Mapping[str, tuple[str, int | None]] = {
    "unet.": (UNET, None),
    "text_encoder.": (TEXT_ENCODER, 0),
    "text_encoder_2.": (TEXT_ENCODER, 1),
}
_PEFT_WRAPPER = "base_model.model."

# Old diffusers attention-processor LoRAs name the projection, not the layer.
_PROCESSOR_LAYERS = {
    UNET: {"to_q": "to_q", "to_k": "to_k", "to_v": "to_v", "to_out": "to_out.0"},
    TEXT_ENCODER: {"to_q": "q_proj", "to_k": "k_proj", "to_v": "v_proj", "to_out": "out_proj"},
}

_LDM_UNET_PREFIX = "model.diffusion_model."
_LDM_TOP_LEVEL = {
    "conv_in": "input_blocks.0.0",
    "time_embedding.linear_1": "time_embed.0",
    "time_embedding.linear_2": "time_embed.2",
    "add_embedding.linear_1": "label_emb.0.0",
    "add_embedding.linear_2": "label_emb.0.2",
    "conv_norm_out": "out.0",
    "conv_out": "out.2",
}
_LDM_RESNET = {
    "norm1": "in_layers.0",
    "conv1": "in_layers.2",
    "time_emb_proj": "emb_layers.1",
    "norm2": "out_layers.0",
    "conv2": "out_layers.3",
    "conv_shortcut": "skip_connection",
}


@dataclass(frozen=True)
class LayerTarget:
    """One layer a network module patches."""

    component: str  # "unet", "text_encoder" or "text_encoder_2"
    path: str  # module path inside that component, e.g. "down_blocks.0.attentions.0.proj_in"
    module: torch.nn.Module

    @property
    def part(self) -> str:
        """Which multiplier applies: ``UNET`` or ``TEXT_ENCODER`` (A1111's unet/te weights)."""
        return UNET if self.component == "unet" else TEXT_ENCODER


class ModelLayers:
    """Every patchable layer (Linear or Conv2d) of a model, under the names LoRA files give it.

    Works on any object with ``unet`` and ``text_encoders`` (a ``LoadedModel``), also on modules
    built on the meta device: only names and shapes are read.
    """

    def __init__(self, unet: torch.nn.Module, text_encoders: Sequence[torch.nn.Module]) -> None:
        self._unet = _unet_table(unet)
        self._text = [_text_table(encoder) for encoder in text_encoders]
        self._components = ["text_encoder", "text_encoder_2"][: len(text_encoders)]

    @classmethod
    def of(cls, model: Any) -> ModelLayers:
        return cls(model.unet, list(model.text_encoders))

    def find(self, module_name: str) -> LayerTarget | None:
        """The layer that a file's module name (the key before ``.lora_down.weight`` etc.) patches.

        >>> ModelLayers(torch.nn.Module(), []).find("lora_unet_conv_in") is None
        True
        """
        if module_name.startswith(KOHYA_PREFIXES):
            return self._find_kohya(module_name)
        return self._find_diffusers(module_name.removeprefix(_PEFT_WRAPPER))

    def kohya_names(self) -> Iterator[str]:
        """Every layer under its kohya name (diffusers spelling for the UNet), as a trainer writes them."""
        yield from (_KOHYA_UNET + flat for flat, (_, diffusers_name) in self._unet.items() if diffusers_name)
        prefixes = [_KOHYA_SINGLE_TE] if len(self._text) == 1 else list(_KOHYA_TE)
        for prefix, table in zip(prefixes, self._text):
            yield from (f"{prefix}text_model_{flat}" for flat in table)

    # --- lookups ---

    def _find_kohya(self, name: str) -> LayerTarget | None:
        if name.startswith(_KOHYA_UNET):
            return self._unet_target(name[len(_KOHYA_UNET):])
        if name.startswith(_KOHYA_SINGLE_TE):
            # A1111 matches lora_te_ only on models with one text encoder (SD1/SD2).
            return self._text_target(0, name[len(_KOHYA_SINGLE_TE):]) if len(self._text) == 1 else None
        index = _KOHYA_TE.index(name[: len(_KOHYA_TE[0])])
        return self._text_target(index, name[len(_KOHYA_TE[0]):])

    def _find_diffusers(self, name: str) -> LayerTarget | None:
        for prefix, (part, index) in _DIFFUSERS_PREFIXES.items():
            if name.startswith(prefix):
                path = _processor_path(name[len(prefix):], part)
                if index is None:
                    return self._unet_target(path.replace(".", "_"))
                return self._text_target(index, path.replace(".", "_"))
        # A bare PEFT dump of one model: the UNet's layer names are unambiguous.
        return self._unet_target(_processor_path(name, UNET).replace(".", "_"))

    def _unet_target(self, flat: str) -> LayerTarget | None:
        found = self._unet.get(flat)
        return None if found is None else LayerTarget("unet", found[0].path, found[0].module)

    def _text_target(self, index: int, flat: str) -> LayerTarget | None:
        if index >= len(self._text):
            return None
        found = self._text[index].get(flat.removeprefix("text_model_"))
        return None if found is None else LayerTarget(self._components[index], found.path, found.module)


@dataclass(frozen=True)
class _Layer:
    path: str
    module: torch.nn.Module


def _patchable(module: torch.nn.Module) -> bool:
    return isinstance(module, (torch.nn.Linear, torch.nn.Conv2d))


def _unet_table(unet: torch.nn.Module) -> dict[str, tuple[_Layer, bool]]:
    """Flat name -> (layer, whether the name is the diffusers spelling), both spellings."""
    layers = {path: _Layer(path, module) for path, module in unet.named_modules() if path and _patchable(module)}
    table: dict[str, tuple[_Layer, bool]] = {path.replace(".", "_"): (layer, True) for path, layer in layers.items()}
    for ldm_path, path in ldm_unet_paths(unet).items():
        if path in layers:
            table.setdefault(ldm_path.replace(".", "_"), (layers[path], False))
    return table


def _text_table(encoder: torch.nn.Module) -> dict[str, _Layer]:
    return {
        path.removeprefix("text_model.").replace(".", "_"): _Layer(path, module)
        for path, module in encoder.named_modules()
        if path and _patchable(module)
    }


def _processor_path(path: str, part: str) -> str:
    """``down_blocks.0….attn1.processor.to_out_lora`` (old diffusers files) -> ``down_blocks.0….attn1.to_out.0``."""
    path = path.replace(".processor.", ".").removeprefix("text_model.").removesuffix("_lora")
    head, _, last = path.rpartition(".")
    layer = _PROCESSOR_LAYERS[part].get(last)
    if layer is None or not head:
        return path
    return f"{head}.{layer}"


# ----------------------------------------------------------------------------- LDM names


def ldm_unet_paths(unet: torch.nn.Module) -> dict[str, str]:
    """LDM module path -> our (diffusers) module path, as diffusers' checkpoint converter maps them.

    Empty when the UNet's config is not one the LDM layout describes (e.g. per-block layer counts).
    """
    from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint

    config = getattr(unet, "config", None)
    layers_per_block = getattr(config, "layers_per_block", None)
    if not isinstance(layers_per_block, int):
        return {}
    parameters = [name for name, _ in unet.named_parameters()]
    upsampler_slot = _upsampler_slots(parameters)
    written = {}
    for name in parameters:
        ldm = _ldm_parameter_name(name, layers_per_block, upsampler_slot)
        if ldm is not None:
            written[ldm] = name
    # The converter only moves values between keys, so the values can be the LDM names themselves.
    converted = convert_ldm_unet_checkpoint({_LDM_UNET_PREFIX + ldm: ldm for ldm in written}, dict(config))
    paths: dict[str, str] = {}
    for name, ldm in converted.items():
        if isinstance(ldm, str) and written.get(ldm) == name:
            paths[ldm.rpartition(".")[0]] = name.rpartition(".")[0]
    return paths


def _upsampler_slots(parameters: Sequence[str]) -> dict[int, int]:
    """LDM slot of each up block's upsampler: after its resnet (0) and, if it has one, its attention (1)."""
    with_attention = {int(name.split(".")[1]) for name in parameters if name.startswith("up_blocks.") and ".attentions." in name}
    blocks = {int(name.split(".")[1]) for name in parameters if name.startswith("up_blocks.")}
    return {block: 2 if block in with_attention else 1 for block in blocks}


def _ldm_parameter_name(name: str, layers_per_block: int, upsampler_slot: Mapping[int, int]) -> str | None:
    """The original UNet's name for one of our parameters (openaimodel.UNetModel's block layout)."""
    module, _, parameter = name.rpartition(".")
    if module in _LDM_TOP_LEVEL:
        return f"{_LDM_TOP_LEVEL[module]}.{parameter}"
    parts = module.split(".")
    per_level = layers_per_block + 1  # resnets, then a down/upsampler slot
    try:
        if parts[0] == "down_blocks":
            level, kind, index, rest = int(parts[1]), parts[2], int(parts[3]), parts[4:]
            first = 1 + level * per_level
            if kind == "resnets":
                return _join(f"input_blocks.{first + index}.0", _resnet(rest), parameter)
            if kind == "attentions":
                return _join(f"input_blocks.{first + index}.1", ".".join(rest), parameter)
            if kind == "downsamplers":
                return _join(f"input_blocks.{first + layers_per_block}.0.op", "", parameter)
        if parts[0] == "mid_block":
            kind, index, rest = parts[1], int(parts[2]), parts[3:]
            if kind == "resnets":
                return _join(f"middle_block.{2 * index}", _resnet(rest), parameter)
            if kind == "attentions":
                return _join(f"middle_block.{2 * index + 1}", ".".join(rest), parameter)
        if parts[0] == "up_blocks":
            level, kind, index, rest = int(parts[1]), parts[2], int(parts[3]), parts[4:]
            first = level * per_level
            if kind == "resnets":
                return _join(f"output_blocks.{first + index}.0", _resnet(rest), parameter)
            if kind == "attentions":
                return _join(f"output_blocks.{first + index}.1", ".".join(rest), parameter)
            if kind == "upsamplers":
                return _join(f"output_blocks.{first + layers_per_block}.{upsampler_slot[level]}.conv", "", parameter)
    except (IndexError, ValueError, KeyError):
        return None
    return None


def _resnet(rest: Sequence[str]) -> str:
    inner = ".".join(rest)
    return _LDM_RESNET.get(inner, inner)


def _join(block: str, inner: str, parameter: str) -> str:
    return ".".join(part for part in (block, inner, parameter) if part)
