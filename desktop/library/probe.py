"""Identify a model file by its contents: tensor names, shapes and dtypes, never its file name.

As in InvokeAI's config factory, each model type has one small probe that returns a match or
``None``; :data:`_PROBES` tries them in an explicit priority order (the most specific layouts
first, so that e.g. a ControlNet that embeds a UNet is not taken for a checkpoint). The evidence
behind the verdict is kept in :attr:`ModelProbe.reasons` for the "why" panel and bug reports.

Pickle formats (``.ckpt``, ``.pt``, ``.pth``, ``.bin``) can run arbitrary code when loaded, so
they are refused without being opened: at most their first bytes are read, never unpickled.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from desktop import APP_NAME
from desktop.core.errors import ModelFileError, UnsupportedModel
from desktop.library.file_errors import reading
from desktop.library.safetensors_file import SafetensorsHeader, TensorInfo, read_safetensors_header
from desktop.library.taxonomy import (
    GENERATION_FAMILIES,
    ModelFamily,
    ModelKind,
    ModelLayout,
    ModelVariant,
    PredictionType,
)

UNET = "model.diffusion_model."
PICKLE_SUFFIXES = frozenset({".ckpt", ".pt", ".pth", ".bin"})
WEIGHT_SUFFIXES = PICKLE_SUFFIXES | {".safetensors"}

_ZIP_MAGIC = b"PK\x03\x04"  # torch.save's default container: a zip holding data.pkl
_PICKLE_PROTO = 0x80  # pickle protocol 2+ starts with PROTO and the protocol number

_VARIANT_BY_IN_CHANNELS = {
    4: ModelVariant.NORMAL,
    9: ModelVariant.INPAINT,  # latent + mask + masked-image latent
    5: ModelVariant.DEPTH,  # latent + depth map
    8: ModelVariant.INSTRUCT_PIX2PIX,  # latent + source-image latent
}
# Cross-attention width of the UNet, for files that carry no text encoder (networks, ControlNets).
_FAMILY_BY_CONTEXT_DIM = {
    768: ModelFamily.SD1,
    1024: ModelFamily.SD2,
    2048: ModelFamily.SDXL,
    1280: ModelFamily.SDXL_REFINER,
}
_FAMILY_BY_TEXT_DIM = {768: ModelFamily.SD1, 1024: ModelFamily.SD2}
_PRECISION_BY_DTYPE = {
    "F16": "fp16",
    "BF16": "bf16",
    "F32": "fp32",
    "F64": "fp64",
    "F8_E4M3": "fp8",
    "F8_E5M2": "fp8",
}


@dataclass(frozen=True)
class ModelProbe:
    """What a model file or folder is, and the evidence for it."""

    path: Path
    kind: ModelKind
    family: ModelFamily
    variant: ModelVariant
    prediction: PredictionType
    layout: ModelLayout
    precision: str  # "fp16", "bf16", "fp32", "mixed" (also "fp8"/"fp64", or "unknown" with no float weights)
    has_vae: bool
    has_ema: bool
    in_channels: int | None
    reasons: tuple[str, ...]
    header: SafetensorsHeader | None

    @property
    def can_generate(self) -> bool:
        """True for a plain txt2img checkpoint of a family the engine runs."""
        return (
            self.kind is ModelKind.CHECKPOINT
            and self.family in GENERATION_FAMILIES
            and self.variant is ModelVariant.NORMAL
            and self.in_channels == 4
        )

    def describe(self) -> str:
        """One English line, e.g. "Stable Diffusion XL base checkpoint, fp16, with baked-in VAE"."""
        if self.kind is ModelKind.UNKNOWN:
            return "not a Stable Diffusion model file"
        parts = [self._title()]
        if self.precision != "unknown":
            parts.append(self.precision)
        if self.prediction is PredictionType.V_PREDICTION:
            parts.append(self.prediction.label)
        if self.has_vae:
            parts.append("with baked-in VAE")
        if self.has_ema:
            parts.append("with EMA weights")
        if self.layout is ModelLayout.DIFFUSERS_FOLDER:
            parts.append(self.layout.label)
        return ", ".join(parts)

    def _title(self) -> str:
        kind = self.kind.label
        if self.kind is ModelKind.CHECKPOINT and self.variant is not ModelVariant.NORMAL:
            kind = f"{self.variant.label} {kind}"
        if self.family is ModelFamily.UNKNOWN:
            return kind[0].upper() + kind[1:]
        if self.kind is ModelKind.CHECKPOINT:
            base = " base" if self.family is ModelFamily.SDXL else ""
            return f"{self.family.label}{base} {kind}"
        return f"{kind} for {self.family.label}"


def probe_model(path: str | Path) -> ModelProbe:
    """Identify a ``.safetensors`` file or a diffusers folder.

    Raises :class:`ModelFileError` when the file cannot be read as a model at all, and
    :class:`UnsupportedModel` for pickle checkpoints, which are never opened.
    """
    path = Path(path)
    if path.is_dir():
        return _probe_diffusers_folder(path)
    prefix = _read_prefix(path)
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise _pickle_refusal(path, f"its {path.suffix} extension")
    if _looks_like_pickle(prefix):
        raise _pickle_refusal(path, "its content")
    return _probe_header(read_safetensors_header(path))


def require_generation_checkpoint(probe: ModelProbe) -> None:
    """Raise :class:`UnsupportedModel`, naming what the file is, unless it can run txt2img."""
    if probe.can_generate:
        return
    raise UnsupportedModel(
        _why_not_generation(probe),
        path=str(probe.path),
        kind=probe.kind.value,
        family=probe.family.value,
        variant=probe.variant.value,
    )


# --- pickle refusal --------------------------------------------------------------------------


def _read_prefix(path: Path) -> bytes:
    """The first 9 bytes: enough to tell pickle/zip from safetensors ("{" at offset 8)."""
    with reading(path), path.open("rb") as file:
        return file.read(9)


def _looks_like_pickle(prefix: bytes) -> bool:
    # A safetensors length prefix can begin with 0x80 or "PK" by chance, but its header then starts
    # with "{" at offset 8; a pickle or a zip local-file header does not put "{" there.
    if prefix[8:9] == b"{":
        return False
    if prefix.startswith(_ZIP_MAGIC):
        return True
    return len(prefix) >= 2 and prefix[0] == _PICKLE_PROTO and 1 <= prefix[1] <= 5


def _pickle_refusal(path: Path, evidence: str) -> UnsupportedModel:
    return UnsupportedModel(
        f"{path.name} is a pickle checkpoint (judging by {evidence}); pickle files can run code when "
        f"they are opened, so {APP_NAME} does not open them: use the .safetensors version of this "
        "model (conversion comes later)",
        path=str(path),
        reason="pickle",
    )


# --- single safetensors file -----------------------------------------------------------------


@dataclass(frozen=True)
class _Match:
    """What one probe found; ``weights_prefix`` selects the tensors whose dtype is the precision."""

    kind: ModelKind
    family: ModelFamily = ModelFamily.UNKNOWN
    variant: ModelVariant = ModelVariant.NORMAL
    prediction: PredictionType = PredictionType.UNKNOWN
    layout: ModelLayout = ModelLayout.OTHER
    in_channels: int | None = None
    weights_prefix: str = ""
    reasons: tuple[str, ...] = field(default=())


_Probe = Callable[[SafetensorsHeader], "_Match | None"]


def _probe_header(header: SafetensorsHeader) -> ModelProbe:
    for name, probe in _PROBES:
        match = probe(header)
        if match is not None:
            return _result(header, match, (f"matched the {name} probe", *match.reasons))
    keys = sorted(header.tensors)
    reasons = (
        f"no probe matched (tried {', '.join(name for name, _ in _PROBES)})",
        f"{len(keys)} tensors, e.g. {', '.join(keys[:5]) or 'none'}",
    )
    return _result(header, _Match(ModelKind.UNKNOWN), reasons)


def _result(header: SafetensorsHeader, match: _Match, reasons: tuple[str, ...]) -> ModelProbe:
    tensors = header.tensors
    is_checkpoint = match.kind is ModelKind.CHECKPOINT
    return ModelProbe(
        path=header.path,
        kind=match.kind,
        family=match.family,
        variant=match.variant,
        prediction=match.prediction,
        layout=match.layout,
        precision=_precision(t for name, t in tensors.items() if name.startswith(match.weights_prefix)),
        has_vae=is_checkpoint and "first_stage_model.encoder.conv_in.weight" in tensors,
        has_ema=is_checkpoint and any(name.startswith("model_ema.") for name in tensors),
        in_channels=match.in_channels,
        reasons=reasons,
        header=header,
    )


def _precision(tensors: Iterable[TensorInfo]) -> str:
    # 0-dim tensors are bookkeeping (LoRA alpha, EMA decay), often fp32 beside fp16 weights.
    found = {_PRECISION_BY_DTYPE[t.dtype] for t in tensors if t.shape and t.dtype in _PRECISION_BY_DTYPE}
    if not found:
        return "unknown"
    return found.pop() if len(found) == 1 else "mixed"


def _has_prefix(header: SafetensorsHeader, prefix: str) -> bool:
    return any(name.startswith(prefix) for name in header.tensors)


def _dim(header: SafetensorsHeader, key: str | None, axis: int) -> int | None:
    info = header.tensors.get(key) if key is not None else None
    if info is None or len(info.shape) <= axis:
        return None
    return info.shape[axis]


def _context_dim(header: SafetensorsHeader, prefix: str) -> int | None:
    """Cross-attention input width of a UNet stored under ``prefix`` (LDM or diffusers names)."""
    preferred = prefix + "input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight"
    if preferred in header.tensors:
        return _dim(header, preferred, 1)
    # SDXL has no attention in its first level; any attn2.to_k of the UNet has the same width.
    key = next(
        (k for k in sorted(header.tensors) if k.startswith(prefix) and k.endswith("attn2.to_k.weight")),
        None,
    )
    return _dim(header, key, 1)


def _probe_sd3(header: SafetensorsHeader) -> _Match | None:
    for prefix in (UNET, ""):
        if _has_prefix(header, prefix + "joint_blocks.0."):
            return _Match(
                ModelKind.CHECKPOINT,
                ModelFamily.SD3,
                layout=ModelLayout.LDM_SINGLE_FILE if prefix else ModelLayout.OTHER,
                weights_prefix=prefix,
                reasons=(f"MMDiT blocks ({prefix}joint_blocks.*)",),
            )
    return None


def _probe_flux(header: SafetensorsHeader) -> _Match | None:
    for prefix in (UNET, ""):
        if prefix + "double_blocks.0.img_attn.qkv.weight" in header.tensors:
            return _Match(
                ModelKind.CHECKPOINT,
                ModelFamily.FLUX,
                layout=ModelLayout.LDM_SINGLE_FILE if prefix else ModelLayout.OTHER,
                weights_prefix=prefix,
                reasons=(f"Flux double-stream blocks ({prefix}double_blocks.*)",),
            )
    if _has_prefix(header, "single_transformer_blocks.0.") and _has_prefix(header, "transformer_blocks.0."):
        return _Match(
            ModelKind.CHECKPOINT,
            ModelFamily.FLUX,
            reasons=("Flux transformer in diffusers layout (single_transformer_blocks.*)",),
        )
    return None


def _probe_controlnet(header: SafetensorsHeader) -> _Match | None:
    tensors = header.tensors
    if _has_prefix(header, "control_model.") or any("input_hint_block." in k for k in tensors):
        prefix = "control_model." if _has_prefix(header, "control_model.") else ""
        layout, is_sdxl = ModelLayout.LDM_SINGLE_FILE, _has_prefix(header, prefix + "label_emb.")
        reasons = [f"ControlNet in LDM layout ({prefix}input_hint_block.* / zero_convs.*)"]
    elif _has_prefix(header, "controlnet_cond_embedding."):
        prefix, layout = "", ModelLayout.OTHER
        is_sdxl = _has_prefix(header, "add_embedding.")
        reasons = ["ControlNet in diffusers layout (controlnet_cond_embedding.*)"]
    else:
        return None
    # A ControlNet carries no text encoder: its cross-attention width is the only clue to its base.
    context = _context_dim(header, prefix)
    reasons.append(f"cross-attention width {context}")
    family = ModelFamily.SDXL if is_sdxl else _FAMILY_BY_CONTEXT_DIM.get(context or 0, ModelFamily.UNKNOWN)
    if is_sdxl:
        reasons.append("has SDXL's added size/time embedding")
    return _Match(ModelKind.CONTROLNET, family, layout=layout, reasons=tuple(reasons))


def _probe_checkpoint(header: SafetensorsHeader) -> _Match | None:
    in_channels = _dim(header, UNET + "input_blocks.0.0.weight", 1)
    if in_channels is None:
        return None
    reasons = [f"UNet in LDM layout ({UNET}*) taking {in_channels} input channels"]
    variant = _VARIANT_BY_IN_CHANNELS.get(in_channels, ModelVariant.NORMAL)
    if in_channels not in _VARIANT_BY_IN_CHANNELS:
        reasons.append(f"{in_channels} input channels is not a layout this app knows")
    family = _checkpoint_family(header, reasons)
    reasons.append(f"cross-attention width {_context_dim(header, UNET)}")
    prediction = _checkpoint_prediction(header, family, reasons)
    return _Match(
        ModelKind.CHECKPOINT,
        family,
        variant,
        prediction,
        ModelLayout.LDM_SINGLE_FILE,
        in_channels,
        weights_prefix=UNET,
        reasons=tuple(reasons),
    )


def _checkpoint_family(header: SafetensorsHeader, reasons: list[str]) -> ModelFamily:
    """Decide by which text encoders are present, not by tensor sizes (tiny test models share the layout)."""
    clip_l_sgm = _has_prefix(header, "conditioner.embedders.0.transformer.")
    big_g_second = _has_prefix(header, "conditioner.embedders.1.model.")
    big_g_only = _has_prefix(header, "conditioner.embedders.0.model.")
    has_label_emb = _has_prefix(header, UNET + "label_emb.")
    if clip_l_sgm and big_g_second:
        if has_label_emb:
            reasons.append("text encoders CLIP-L and OpenCLIP bigG (conditioner.embedders.0/1) and label_emb")
            return ModelFamily.SDXL
        reasons.append("SDXL text encoders but no UNet label_emb: unknown layout")
        return ModelFamily.UNKNOWN
    if big_g_only:
        reasons.append("only the OpenCLIP bigG text encoder (conditioner.embedders.0.model.*): SDXL refiner")
        return ModelFamily.SDXL_REFINER
    if _has_prefix(header, "cond_stage_model.model."):
        reasons.append("OpenCLIP ViT-H text encoder (cond_stage_model.model.*)")
        return ModelFamily.SD2
    if _has_prefix(header, "cond_stage_model.transformer."):
        reasons.append("CLIP ViT-L text encoder (cond_stage_model.transformer.*)")
        return ModelFamily.SD1
    reasons.append("no text encoder this app knows (UNet-only or unusual layout)")
    return ModelFamily.UNKNOWN


def _checkpoint_prediction(
    header: SafetensorsHeader, family: ModelFamily, reasons: list[str]
) -> PredictionType:
    if "v_pred" in header.tensors:
        reasons.append("has a 'v_pred' marker tensor")
        return PredictionType.V_PREDICTION
    declared = header.metadata.get("modelspec.prediction_type", "").strip().lower()
    if declared in ("v", "v_prediction", "v-prediction"):
        reasons.append(f"metadata modelspec.prediction_type={declared}")
        return PredictionType.V_PREDICTION
    if declared in ("epsilon", "eps"):
        reasons.append(f"metadata modelspec.prediction_type={declared}")
        return PredictionType.EPSILON
    if family in (ModelFamily.SD1, ModelFamily.SDXL, ModelFamily.SDXL_REFINER):
        return PredictionType.EPSILON
    if family is ModelFamily.SD2:
        # Both exist (512-base is epsilon, 768-v is v); the loader decides with a test run, as A1111 does.
        reasons.append("SD2 prediction type is not recorded in the file; decided at load time")
    return PredictionType.UNKNOWN


# --- LoRA and LyCORIS ------------------------------------------------------------------------

_KOHYA_PREFIXES = ("lora_unet_", "lora_te_", "lora_te1_", "lora_te2_")
# Parameter suffix -> normalised role. The module is the key minus this suffix.
_NETWORK_PARAMS = {
    ".lora_down.weight": "down",  # kohya
    ".lora_up.weight": "up",
    ".lora_A.weight": "down",  # PEFT
    ".lora_B.weight": "up",
    "_lora.down.weight": "down",  # diffusers attention processors (to_k_lora.down.weight)
    "_lora.up.weight": "up",
    ".lora.down.weight": "down",
    ".lora.up.weight": "up",
    ".alpha": "alpha",
    ".hada_w1_a": "hada_w1_a",  # LyCORIS LoHa
    ".hada_w1_b": "hada_w1_b",
    ".hada_w2_a": "hada_w2_a",
    ".hada_w2_b": "hada_w2_b",
    ".lokr_w1": "lokr_w1",  # LyCORIS LoKr
    ".lokr_w1_a": "lokr_w1_a",
    ".lokr_w1_b": "lokr_w1_b",
    ".lokr_w2": "lokr_w2",
    ".lokr_w2_a": "lokr_w2_a",
    ".lokr_w2_b": "lokr_w2_b",
}
_Modules = dict[str, dict[str, TensorInfo]]


def _network_modules(header: SafetensorsHeader) -> _Modules:
    """Group network tensors by the layer they patch: {module name: {role: tensor}}."""
    modules: _Modules = {}
    for key, info in header.tensors.items():
        for suffix, role in _NETWORK_PARAMS.items():
            if key.endswith(suffix):
                modules.setdefault(key[: -len(suffix)], {})[role] = info
                break
    # A module with only an alpha is not evidence of a network.
    return {name: params for name, params in modules.items() if set(params) - {"alpha"}}


def _probe_network(header: SafetensorsHeader) -> _Match | None:
    """LoRA, or LyCORIS when the modules use its decompositions (LoHa, LoKr, LoCon)."""
    modules = _network_modules(header)
    if not modules:
        return None
    lycoris = _lycoris_evidence(modules, header.metadata)
    if lycoris is not None:
        return _network_match(ModelKind.LYCORIS, modules, header, lycoris)
    return _network_match(ModelKind.LORA, modules, header, f"{len(modules)} LoRA modules (down/up pairs)")


def _lycoris_evidence(modules: _Modules, metadata: Mapping[str, str]) -> str | None:
    roles = {role for params in modules.values() for role in params}
    if any(role.startswith("hada_") for role in roles):
        return "LoHa weights (hada_w1_a/hada_w1_b ...)"
    if any(role.startswith("lokr_") for role in roles):
        return "LoKr weights (lokr_w1/lokr_w2 ...)"
    for name, params in modules.items():
        down = params.get("down")
        if down is not None and len(down.shape) == 4 and down.shape[2:] != (1, 1):
            return f"LoCon: a {down.shape[2]}x{down.shape[3]} convolution LoRA on {name}"
    if modules and "lycoris" in metadata.get("ss_network_module", ""):
        return f"metadata ss_network_module={metadata['ss_network_module']}"
    return None


def _network_match(kind: ModelKind, modules: _Modules, header: SafetensorsHeader, evidence: str) -> _Match:
    is_kohya = any(name.startswith(_KOHYA_PREFIXES) for name in modules)
    naming = "kohya module names (lora_unet_/lora_te*_)" if is_kohya else "diffusers/PEFT module names"
    reasons = [evidence, naming]
    family = _network_family(modules, header.metadata, reasons)
    layout = ModelLayout.KOHYA if is_kohya else ModelLayout.DIFFUSERS_LORA
    return _Match(kind, family, layout=layout, reasons=tuple(reasons))


def _network_family(modules: _Modules, metadata: Mapping[str, str], reasons: list[str]) -> ModelFamily:
    # One spelling for kohya ("..._attn2_to_k") and diffusers ("...attn2.processor.to_k") names.
    flat = {name.replace(".", "_").replace("processor_", ""): params for name, params in modules.items()}
    names = list(flat)
    if any(
        n.startswith(("lora_unet_double_blocks_", "lora_unet_single_blocks_"))
        or "single_transformer_blocks" in n
        for n in names
    ):
        reasons.append("patches Flux double/single-stream blocks")
        return ModelFamily.FLUX
    if any("joint_blocks" in n for n in names):
        reasons.append("patches SD3 joint blocks")
        return ModelFamily.SD3
    if any(n.startswith(("lora_te1_", "lora_te2_", "text_encoder_2_")) for n in names):
        reasons.append("patches two text encoders (lora_te1_/lora_te2_): SDXL")
        return ModelFamily.SDXL

    text_dim = _first_in_features(
        flat,
        lambda n: n.startswith(("lora_te_", "text_encoder_"))
        and any(p in n for p in ("q_proj", "k_proj", "v_proj")),
    )
    unet_dim = _first_in_features(flat, lambda n: "attn2_to_k" in n)
    text_family = _FAMILY_BY_TEXT_DIM.get(text_dim or 0)
    unet_family = _FAMILY_BY_CONTEXT_DIM.get(unet_dim or 0)
    if text_dim is not None:
        reasons.append(f"text-encoder width {text_dim}")
    if unet_dim is not None:
        reasons.append(f"UNet cross-attention width {unet_dim}")
    if text_family and unet_family and text_family is not unet_family:
        reasons.append("text encoder and UNet widths disagree")
        return ModelFamily.UNKNOWN
    family = text_family or unet_family
    if family is not None:
        return family

    declared = metadata.get("ss_base_model_version", "")
    for prefix, family in (
        ("sdxl", ModelFamily.SDXL),
        ("sd_v1", ModelFamily.SD1),
        ("sd_v2", ModelFamily.SD2),
    ):
        if declared.startswith(prefix):
            reasons.append(f"no width to read; metadata ss_base_model_version={declared}")
            return family
    reasons.append("no text-encoder or cross-attention module to tell the base model")
    return ModelFamily.UNKNOWN


def _first_in_features(flat: _Modules, wanted: Callable[[str], bool]) -> int | None:
    for name in sorted(flat):
        if wanted(name):
            width = _in_features(flat[name])
            if width is not None:
                return width
    return None


def _in_features(params: Mapping[str, TensorInfo]) -> int | None:
    """Input width of the patched layer, read from the network's down-projection."""
    for role in ("down", "hada_w1_b", "hada_w2_b"):
        if role in params and len(params[role].shape) >= 2:
            return params[role].shape[1]
    # LoKr: the patch is kron(w1, w2), so its input width is the product of their column counts.
    w1 = params.get("lokr_w1") or params.get("lokr_w1_b")
    w2 = params.get("lokr_w2") or params.get("lokr_w2_b")
    if w1 is not None and w2 is not None and len(w1.shape) >= 2 and len(w2.shape) >= 2:
        return w1.shape[1] * w2.shape[1]
    return None


# --- small single-purpose files --------------------------------------------------------------


def _probe_embedding(header: SafetensorsHeader) -> _Match | None:
    tensors = header.tensors
    if len(tensors) > 3:  # an embedding is a handful of vectors, never a network
        return None
    if "clip_l" in tensors and "clip_g" in tensors:
        return _Match(
            ModelKind.EMBEDDING, ModelFamily.SDXL, reasons=("SDXL embedding (clip_l and clip_g vectors)",)
        )
    if "emb_params" in tensors:
        key, evidence = "emb_params", "A1111 embedding (emb_params)"
    elif len(tensors) == 1:
        # diffusers' learned_embeds.safetensors: one tensor named after its token, e.g. "<cat-toy>".
        (key,) = tensors
        if len(tensors[key].shape) not in (1, 2) or tensors[key].shape[-1] not in _FAMILY_BY_TEXT_DIM:
            return None
        evidence = f"a single token vector {key!r} of text-encoder width"
    else:
        return None
    shape = tensors[key].shape
    width = shape[-1] if shape else None
    family = _FAMILY_BY_TEXT_DIM.get(width or 0, ModelFamily.UNKNOWN)
    return _Match(ModelKind.EMBEDDING, family, reasons=(evidence, f"vector width {width}"))


def _probe_vae(header: SafetensorsHeader) -> _Match | None:
    tensors = header.tensors
    for prefix in ("", "first_stage_model."):
        ldm = prefix + "encoder.conv_in.weight" in tensors and prefix + "decoder.conv_out.weight" in tensors
        diffusers = prefix + "encoder.down_blocks.0.resnets.0.conv1.weight" in tensors
        if not (ldm or diffusers):
            continue
        layout = ModelLayout.OTHER if diffusers else ModelLayout.LDM_SINGLE_FILE
        reasons = [f"autoencoder ({prefix}encoder.* and {prefix}decoder.*), {layout.label}"]
        latent = _dim(header, prefix + "decoder.conv_in.weight", 1)
        if latent == 4:
            reasons.append("4 latent channels: SD1, SD2 and SDXL VAEs share this shape")
        elif latent is not None:
            reasons.append(f"{latent} latent channels")
        return _Match(ModelKind.VAE, layout=layout, reasons=tuple(reasons))
    return None


_HYPERNETWORK_TENSOR = re.compile(r"^(\d+)\.[01]\.linear\.\d+\.(weight|bias)$")


def _probe_hypernetwork(header: SafetensorsHeader) -> _Match | None:
    """An A1111 hypernetwork as our pickle converter writes it: ``{dim}.{0|1}.linear.{n}.weight`` per context width."""
    names = list(header.tensors)
    if not names or not all(_HYPERNETWORK_TENSOR.match(name) for name in names):
        return None
    dims = sorted({int(_HYPERNETWORK_TENSOR.match(name).group(1)) for name in names})
    family = ModelFamily.SD1 if 768 in dims else ModelFamily.SD2 if 1024 in dims else ModelFamily.UNKNOWN
    marker = header.metadata.get("format") == "a1111-hypernetwork"
    reasons = (
        "key/value module pairs per context width (N.0.linear.*, N.1.linear.*)" + (", format=a1111-hypernetwork" if marker else ""),
        "widths " + ", ".join(map(str, dims)),
    )
    return _Match(ModelKind.HYPERNETWORK, family, reasons=reasons)


def _probe_upscaler(header: SafetensorsHeader) -> _Match | None:
    tensors = header.tensors
    if "conv_first.weight" in tensors:
        return _Match(ModelKind.UPSCALER, reasons=("ESRGAN-style network (conv_first.weight)",))
    if "model.0.weight" in tensors and _has_prefix(header, "model.1.sub."):
        return _Match(ModelKind.UPSCALER, reasons=("old ESRGAN layout (model.0.weight, model.1.sub.*)",))
    return None


_PROBES: tuple[tuple[str, _Probe], ...] = (
    ("SD3", _probe_sd3),
    ("Flux", _probe_flux),
    ("ControlNet", _probe_controlnet),
    ("checkpoint", _probe_checkpoint),
    ("LoRA/LyCORIS", _probe_network),
    ("embedding", _probe_embedding),
    ("hypernetwork", _probe_hypernetwork),
    ("VAE", _probe_vae),
    ("upscaler", _probe_upscaler),
)


# --- diffusers folder ------------------------------------------------------------------------


def _probe_diffusers_folder(folder: Path) -> ModelProbe:
    index = _read_json(
        folder / "model_index.json",
        missing_message=(
            f"{folder.name} is a folder, not a model file, and not a diffusers model (no model_index.json)"
        ),
    )
    class_name = str(index.get("_class_name", "unknown pipeline"))
    reasons = [f"diffusers folder ({class_name})"]
    weights = _component_weights(folder, index)
    denoiser = "unet" if "unet" in weights else "transformer"

    unet_config = _read_json(folder / "unet" / "config.json") if (folder / "unet").is_dir() else None
    in_channels: int | None = None
    variant = ModelVariant.NORMAL
    if unet_config is not None:
        family = _family_from_unet_config(folder, unet_config, reasons)
        channels = unet_config.get("in_channels", 4)
        if not isinstance(channels, int) or isinstance(channels, bool):
            raise ModelFileError(
                f"{folder.name}/unet/config.json is corrupt: in_channels is {channels!r}",
                path=str(folder),
                reason="bad_config",
            )
        in_channels = channels
        variant = _VARIANT_BY_IN_CHANNELS.get(in_channels, ModelVariant.NORMAL)
        reasons.append(f"UNet takes {in_channels} input channels")
    elif "Flux" in class_name:
        family = ModelFamily.FLUX
    elif "StableDiffusion3" in class_name:
        family = ModelFamily.SD3
    else:
        family = ModelFamily.UNKNOWN
        reasons.append("no unet/config.json")

    precision = "unknown"
    if denoiser in weights:
        headers = [read_safetensors_header(p) for p in weights[denoiser]]
        precision = _precision(t for h in headers for t in h.tensors.values())
    return ModelProbe(
        path=folder,
        kind=ModelKind.CHECKPOINT,
        family=family,
        variant=variant,
        prediction=_diffusers_prediction(folder, reasons),
        layout=ModelLayout.DIFFUSERS_FOLDER,
        precision=precision,
        has_vae="vae" in weights,
        has_ema=False,
        in_channels=in_channels,
        reasons=tuple(reasons),
        header=None,
    )


def _component_weights(folder: Path, index: Mapping[str, object]) -> dict[str, list[Path]]:
    """Safetensors weights of each component; refuse components that only have pickle weights."""
    weights: dict[str, list[Path]] = {}
    for component, spec in index.items():
        directory = folder / component
        # Components are plain subfolder names; "_class_name" and friends are not components.
        is_subfolder = Path(component).name == component and component not in ("", ".", "..")
        if (
            component.startswith("_")
            or not is_subfolder
            or not isinstance(spec, list)
            or not directory.is_dir()
        ):
            continue
        files = sorted(p for p in directory.iterdir() if p.suffix.lower() in WEIGHT_SUFFIXES and p.is_file())
        safe = [p for p in files if p.suffix.lower() == ".safetensors"]
        if safe:
            weights[component] = _preferred_weights(safe)
        elif files:
            raise _pickle_refusal(folder, f"{component}/{files[0].name}, with no .safetensors beside it")
    if not weights:
        raise ModelFileError(
            f"{folder.name} is a diffusers folder without any .safetensors weights",
            path=str(folder),
            reason="no_weights",
        )
    return weights


def _preferred_weights(files: list[Path]) -> list[Path]:
    # A folder may hold the same weights twice ("model.safetensors" and "model.fp16.safetensors");
    # the files without a variant tag are the default set diffusers loads.
    plain = [p for p in files if "." not in p.stem]
    return plain or files


def _family_from_unet_config(folder: Path, config: Mapping[str, object], reasons: list[str]) -> ModelFamily:
    """Family from the pipeline's structure, as for single files, not from absolute sizes.

    SDXL conditions on pooled text and image size ("text_time"); its refiner has no CLIP-L
    (``text_encoder`` missing). Among the others, SD1 uses OpenAI's CLIP (quick_gelu) and SD2
    OpenCLIP (gelu). Real files have 768/1024/2048-wide cross-attention; that is only recorded.
    """
    context = config.get("cross_attention_dim")
    text_time = config.get("addition_embed_type") == "text_time"
    reasons.append(
        f"unet cross_attention_dim={context}, addition_embed_type={config.get('addition_embed_type')}"
    )
    if text_time:
        return ModelFamily.SDXL if (folder / "text_encoder").is_dir() else ModelFamily.SDXL_REFINER
    encoder_file = folder / "text_encoder" / "config.json"
    if encoder_file.is_file():
        encoder = _read_json(encoder_file)
        activation = encoder.get("hidden_act")
        reasons.append(f"text encoder activation {activation}")
        if activation == "quick_gelu":
            return ModelFamily.SD1
        if activation == "gelu":
            return ModelFamily.SD2
    if context == 768:
        return ModelFamily.SD1
    if context == 1024:
        return ModelFamily.SD2
    return ModelFamily.UNKNOWN


def _diffusers_prediction(folder: Path, reasons: list[str]) -> PredictionType:
    path = folder / "scheduler" / "scheduler_config.json"
    if not path.is_file():
        reasons.append("no scheduler/scheduler_config.json: prediction type unknown")
        return PredictionType.UNKNOWN
    declared = _read_json(path).get("prediction_type", "epsilon")  # diffusers' default
    reasons.append(f"scheduler prediction_type={declared}")
    if declared == "epsilon":
        return PredictionType.EPSILON
    if declared == "v_prediction":
        return PredictionType.V_PREDICTION
    return PredictionType.UNKNOWN


def _read_json(path: Path, missing_message: str | None = None) -> dict[str, object]:
    try:
        parsed = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        message = missing_message or f"{path.name} is missing from {path.parent}"
        raise ModelFileError(message, path=str(path), reason="missing") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ModelFileError(
            f"{path.parent.name}/{path.name} cannot be read as JSON: {exc}",
            path=str(path),
            reason="bad_config",
        ) from exc
    if not isinstance(parsed, dict):
        raise ModelFileError(
            f"{path.parent.name}/{path.name} is not a JSON object", path=str(path), reason="bad_config"
        )
    return parsed


# --- messages --------------------------------------------------------------------------------


def _why_not_generation(probe: ModelProbe) -> str:
    name, stem = probe.path.name, probe.path.stem
    family = probe.family
    based = f" for {family.label}" if family is not ModelFamily.UNKNOWN else ""
    kind = probe.kind
    if kind in (ModelKind.LORA, ModelKind.LYCORIS):
        return (
            f"{name} is a {kind.label}{based}, not a checkpoint: put it in models/Lora "
            f"and use <lora:{stem}:1> in the prompt"
        )
    if kind is ModelKind.EMBEDDING:
        return (
            f"{name} is a {kind.label}{based}, not a checkpoint: put it in the embeddings folder "
            f"and write {stem} in the prompt"
        )
    if kind is ModelKind.HYPERNETWORK:
        return (
            f"{name} is a hypernetwork{based}, not a checkpoint: put it in models/hypernetworks "
            f"and use <hypernet:{stem}:1> in the prompt"
        )
    if kind is ModelKind.VAE:
        return f"{name} is a VAE, not a checkpoint: put it in models/VAE and choose it as the VAE"
    if kind is ModelKind.CONTROLNET:
        return f"{name} is a ControlNet{based}, not a checkpoint; ControlNet is not supported yet"
    if kind is ModelKind.UPSCALER:
        return f"{name} is an upscaler model, not a checkpoint; upscalers are not supported yet"
    if kind is ModelKind.UNKNOWN:
        return f"{name} is not a Stable Diffusion model file (its tensor names match no known model type)"
    return _why_not_generation_checkpoint(probe)


def _why_not_generation_checkpoint(probe: ModelProbe) -> str:
    name, family = probe.path.name, probe.family
    if family in (ModelFamily.FLUX, ModelFamily.SD3):
        return f"{name} is a {family.label} model, which {APP_NAME} does not support yet"
    if family is ModelFamily.SDXL_REFINER:
        return (
            f"{name} is an SDXL refiner, which only finishes images started by an SDXL base model; "
            "choose an SDXL base checkpoint (refiner support comes later)"
        )
    if family is ModelFamily.UNKNOWN:
        return f"{name} is a checkpoint of a model family {APP_NAME} does not recognise"
    if probe.variant is not ModelVariant.NORMAL:
        return (
            f"{name} is a {family.label} {probe.variant.label} checkpoint; "
            f"{probe.variant.label} models are not supported for txt2img yet"
        )
    return (
        f"{name} is a {family.label} checkpoint whose UNet takes {probe.in_channels} input channels; "
        "only 4-channel txt2img checkpoints are supported"
    )
