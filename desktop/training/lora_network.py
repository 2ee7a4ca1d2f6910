"""A trainable LoRA on a loaded model, with kohya sd-scripts' ``networks/lora.py`` semantics.

Why our own modules and not PEFT: the file we write must be a kohya LoRA (A1111, ComfyUI and
civitai read nothing else as reliably), and kohya's module set, names, initialisation, alpha and
scale are simplest to guarantee by doing what kohya does:

- One :class:`LoRAModule` per target layer: ``lora_down`` (Linear ``in -> rank``, or a Conv2d with
  the layer's kernel, stride and padding) and ``lora_up`` (``rank -> out``, 1x1 for convolutions),
  both without bias, fp32; ``kaiming_uniform_(down, a=sqrt(5))``, ``zeros_(up)`` so that training
  starts from the base model exactly. ``scale = alpha / rank``; alpha None or 0 means rank.
- Installed by replacing the layer's ``forward`` with the module's (kohya's ``apply_to``): the base
  layer's weights are never touched, so they stay frozen and can be fp16/bf16 while the LoRA
  computes in fp32. ``remove()`` puts the original ``forward`` back exactly.
- Targets (kohya's defaults): every Linear and 1x1 Conv2d inside each ``Transformer2DModel`` of the
  UNet (attn1/attn2 to_q/k/v/out.0, ff.net.0.proj, ff.net.2, proj_in, proj_out) and the
  q/k/v/out_proj and fc1/fc2 of every text-encoder layer. With ``conv_dim > 0`` (kohya's LoCon,
  ``network_args = ["conv_dim=..", "conv_alpha=.."]``) also the layers of ``ResnetBlock2D``,
  ``Downsample2D`` and ``Upsample2D``: 3x3 convolutions at ``conv_dim``/``conv_alpha``, their
  Linear and 1x1 layers (``time_emb_proj``, ``conv_shortcut``) at ``network_dim``/``network_alpha``,
  exactly as kohya's ``create_modules`` assigns them.
- Names: ``lora_unet_<diffusers path>`` for SD1/SD2 (kohya trains those on a diffusers-named UNet),
  the SGM path for SDXL (``lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q``, what
  ``sdxl_train_network`` writes), taken from the same LDM table the inference side matches with.
  Text encoders: ``lora_te_text_model_encoder_layers_N_…`` (SD1/SD2), ``lora_te1_``/``lora_te2_``
  (SDXL). transformers 5's ``CLIPTextModel`` has no ``text_model`` level while
  ``CLIPTextModelWithProjection`` keeps one; the name always says ``text_model``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from desktop.core.errors import UnsupportedModel
from desktop.engine.networks.lora_keys import ldm_unet_paths
from desktop.library.taxonomy import ModelFamily

UNET_PREFIX = "lora_unet"
TE_PREFIX = "lora_te"
SDXL_TE_PREFIXES = ("lora_te1", "lora_te2")

UNET_TARGETS = frozenset({"Transformer2DModel"})
UNET_CONV_TARGETS = frozenset({"ResnetBlock2D", "Downsample2D", "Upsample2D"})
_TEXT_LAYER = re.compile(r"^(?:text_model\.)?encoder\.layers\.\d+\.(?:self_attn|mlp)\.[A-Za-z0-9_]+$")
_FAMILIES = (ModelFamily.SD1, ModelFamily.SD2, ModelFamily.SDXL)
_SHOWN = 5


class NetworkStateMismatch(UnsupportedModel):
    """LoRA tensors (e.g. a file to resume from) that do not fit this network: other names, shapes or alpha."""

    code = "lora_state_mismatch"


# ----------------------------------------------------------------------------- one layer


class LoRAModule(nn.Module):
    """The LoRA for one Linear or Conv2d layer; the layer itself is referenced, never registered.

    Not registering the base layer keeps its weights out of ``parameters()`` and ``state_dict()``:
    the optimizer and the saved file see only ``lora_down``, ``lora_up`` and ``alpha``.
    """

    def __init__(
        self,
        name: str,
        base: nn.Module,
        rank: int,
        alpha: float | None = None,
        *,
        multiplier: float = 1.0,
        device: torch.device | str | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        if rank <= 0:
            raise ValueError(f"{name}: the rank must be positive, got {rank}")
        self.lora_name = name
        self.rank = int(rank)
        self.lora_down, self.lora_up = _lora_layers(base, self.rank)
        alpha = float(self.rank) if alpha is None or alpha == 0 else float(alpha)
        self.scale = alpha / self.rank
        self.register_buffer("alpha", torch.tensor(alpha, dtype=torch.float32))
        self.multiplier = float(multiplier)
        with torch.no_grad():  # kohya's initialisation: a random down, a zero up (the LoRA starts as a no-op)
            nn.init.kaiming_uniform_(self.lora_down.weight, a=math.sqrt(5), generator=generator)
            nn.init.zeros_(self.lora_up.weight)
        if device is not None:
            self.to(device)
        # Plain attributes (not submodules): see the class docstring.
        self.__dict__["base"] = base
        self.__dict__["_saved_forward"] = None  # (had an instance forward, that forward) while applied

    @property
    def applied(self) -> bool:
        return self.__dict__["_saved_forward"] is not None

    def apply_to_base(self) -> None:
        """Route the base layer's calls through :meth:`forward` (kohya's ``apply_to``); idempotent."""
        if self.applied:
            return
        base = self.base
        own = base.__dict__.get("forward")
        self.__dict__["_saved_forward"] = (own is not None, own)
        self.__dict__["_base_forward"] = base.forward  # what the layer did before: usually its class's forward
        base.forward = self.forward

    def remove_from_base(self) -> None:
        """Give the base layer back its own ``forward`` exactly (the instance attribute removed or restored)."""
        saved = self.__dict__["_saved_forward"]
        if saved is None:
            return
        had_own, own = saved
        if had_own:
            self.base.forward = own
        else:
            del self.base.forward
        self.__dict__["_saved_forward"] = None
        self.__dict__.pop("_base_forward", None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``base(x) + up(down(x)) * multiplier * scale``, the LoRA part in fp32, one rounding to the base dtype."""
        base_forward = self.__dict__.get("_base_forward") or self.base.forward  # also callable while not installed
        original = base_forward(x)
        if self.multiplier == 0:
            return original
        delta = self.lora_up(self.lora_down(x.to(self.lora_down.weight.dtype)))
        return (original.to(delta.dtype) + delta * (self.multiplier * self.scale)).to(original.dtype)


def _lora_layers(base: nn.Module, rank: int) -> tuple[nn.Module, nn.Module]:
    """kohya's down/up pair for ``base``, on the CPU in fp32 whatever device and dtype ``base`` has."""
    options: dict[str, Any] = {"bias": False, "device": "cpu", "dtype": torch.float32}
    if isinstance(base, nn.Conv2d):
        if base.groups != 1:
            raise ValueError(f"a grouped convolution ({base.groups} groups) cannot take a kohya LoRA")
        down = nn.Conv2d(base.in_channels, rank, base.kernel_size, base.stride, base.padding, **options)
        return down, nn.Conv2d(rank, base.out_channels, (1, 1), (1, 1), **options)
    if isinstance(base, nn.Linear):
        return nn.Linear(base.in_features, rank, **options), nn.Linear(rank, base.out_features, **options)
    raise TypeError(f"a LoRA needs a Linear or Conv2d layer, not {type(base).__name__}")


# ----------------------------------------------------------------------------- the network


class LoRANetwork(nn.Module):
    """kohya's LoRA network on a loaded model (anything with ``unet`` and ``text_encoders``).

    ``network_alpha`` / ``conv_alpha`` None mean 1.0, kohya's defaults (a module given alpha 0
    uses its rank). ``generator`` seeds the ``lora_down`` initialisation (the global RNG when
    None), so a run is reproducible from its seed. LoRA tensors are made on the CPU (then moved to
    ``device``) from the layers' shapes, so the base model may sit on the meta device. The base
    model's parameters are neither registered nor touched: freezing them
    (``requires_grad_(False)``) is the trainer's job, as in kohya's ``train_network``.
    """

    def __init__(
        self,
        model: Any,
        family: ModelFamily,
        network_dim: int = 4,
        network_alpha: float | None = 1.0,
        *,
        conv_dim: int = 0,
        conv_alpha: float | None = None,
        train_unet: bool = True,
        train_text_encoder: bool = True,
        multiplier: float = 1.0,
        device: torch.device | str | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        family = ModelFamily(family)
        if family not in _FAMILIES:
            raise UnsupportedModel(f"LoRA training supports SD1.x, SD2.x and SDXL checkpoints, not {family.label}", family=family.value)
        self.family = family
        self.network_dim = int(network_dim)
        self.network_alpha = 1.0 if network_alpha is None else float(network_alpha)
        self.conv_dim = int(conv_dim or 0)
        self.conv_alpha = 1.0 if conv_alpha is None else float(conv_alpha)
        self.text_encoder_loras: list[LoRAModule] = []
        self.unet_loras: list[LoRAModule] = []

        def make(name: str, layer: nn.Module, rank: int, alpha: float) -> LoRAModule:
            return LoRAModule(name, layer, rank, alpha, multiplier=multiplier, generator=generator)

        if train_text_encoder:  # kohya creates the text encoders' modules first
            for name, layer in text_encoder_targets(model.text_encoders, family):
                self.text_encoder_loras.append(make(name, layer, self.network_dim, self.network_alpha))
        if train_unet:
            for name, layer in unet_targets(model.unet, family, conv=self.conv_dim > 0):
                rank, alpha = self._rank_and_alpha(layer)
                self.unet_loras.append(make(name, layer, rank, alpha))
        for lora in self.loras:
            self.add_module(lora.lora_name, lora)  # state_dict keys: "<name>.lora_down.weight", ...
        if device is not None:
            self.to(device)

    def _rank_and_alpha(self, layer: nn.Module) -> tuple[int, float]:
        """kohya: Linear and 1x1 convolutions take the network's dim, larger kernels the conv dim."""
        if isinstance(layer, nn.Conv2d) and tuple(layer.kernel_size) != (1, 1):
            return self.conv_dim, self.conv_alpha
        return self.network_dim, self.network_alpha

    # --- what it holds ---

    @property
    def loras(self) -> list[LoRAModule]:
        return self.text_encoder_loras + self.unet_loras

    @property
    def module_count(self) -> int:
        return len(self.text_encoder_loras) + len(self.unet_loras)

    @property
    def module_names(self) -> list[str]:
        return [lora.lora_name for lora in self.loras]

    @property
    def network_args(self) -> dict[str, str]:
        """kohya's ``network_args`` as its ``ss_network_args`` records them (strings); empty without LoCon."""
        if self.conv_dim <= 0:
            return {}
        return {"conv_dim": str(self.conv_dim), "conv_alpha": f"{self.conv_alpha:g}"}

    def unet_parameters(self) -> list[nn.Parameter]:
        return [p for lora in self.unet_loras for p in lora.parameters()]

    def text_encoder_parameters(self) -> list[nn.Parameter]:
        return [p for lora in self.text_encoder_loras for p in lora.parameters()]

    # --- installing ---

    @property
    def applied(self) -> bool:
        return any(lora.applied for lora in self.loras)

    def apply(self, fn: Any = None) -> Any:  # type: ignore[override]
        """Install every module on its layer (kohya's ``apply_to``); calling it again changes nothing.

        ``apply(fn)`` is still ``nn.Module.apply`` (torch and transformers call it that way).
        """
        if fn is not None:
            return super().apply(fn)
        for lora in self.loras:
            lora.apply_to_base()
        return self

    def remove(self) -> None:
        """Take every module off: each layer's ``forward`` is exactly what it was before :meth:`apply`."""
        for lora in self.loras:
            lora.remove_from_base()

    def set_multiplier(self, multiplier: float) -> None:
        """The strength of every module (1 while training; 0 gives the base model's outputs exactly)."""
        for lora in self.loras:
            lora.multiplier = float(multiplier)

    # --- kohya tensors ---

    def kohya_state_dict(self, dtype: torch.dtype | None = torch.float16) -> dict[str, torch.Tensor]:
        """The tensors of a kohya file: CPU copies, contiguous, in ``dtype`` (fp32 kept when None).

        ``alpha`` is converted too, as kohya's ``save_weights`` does.
        """
        tensors = {}
        for key, value in self.state_dict().items():
            copy = value.detach().to(device="cpu", dtype=dtype or value.dtype, copy=True)
            tensors[key] = copy.contiguous()
        return tensors

    def load_kohya_state_dict(self, tensors: Mapping[str, torch.Tensor]) -> None:
        """Load saved LoRA tensors (to resume). Strict: every name, every shape and the alphas must match.

        Raises :class:`NetworkStateMismatch` naming what differs; nothing is loaded then.
        """
        own = self.state_dict()
        _check_state(own, tensors)
        with torch.no_grad():
            for key, value in own.items():
                if not key.endswith(".alpha"):
                    value.copy_(tensors[key].reshape(value.shape))


def _check_state(own: Mapping[str, torch.Tensor], tensors: Mapping[str, torch.Tensor]) -> None:
    problems = []
    missing = [key for key in own if key not in tensors]
    unexpected = [key for key in tensors if key not in own]
    if missing:
        problems.append(f"{len(missing)} tensors missing (e.g. {', '.join(missing[:_SHOWN])})")
    if unexpected:
        problems.append(f"{len(unexpected)} tensors this network does not have (e.g. {', '.join(unexpected[:_SHOWN])})")
    misshapen = [
        f"{key} {tuple(tensors[key].shape)} instead of {tuple(value.shape)}"
        for key, value in own.items()
        if key in tensors and tensors[key].shape != value.shape and not (key.endswith(".alpha") and tensors[key].numel() == 1)
    ]
    if misshapen:
        problems.append(f"{len(misshapen)} tensors of another shape (e.g. {'; '.join(misshapen[:_SHOWN])})")
    other_alpha = [
        f"{key} {float(tensors[key].reshape(())):g} instead of {float(value):g}"
        for key, value in own.items()
        if key.endswith(".alpha") and key in tensors and tensors[key].numel() == 1
        and not math.isclose(float(tensors[key].reshape(())), float(value), rel_tol=1e-3)
    ]  # fmt: skip  # rel_tol: an alpha read back from fp16 differs in the 4th digit
    if other_alpha:
        problems.append(f"another alpha (e.g. {'; '.join(other_alpha[:_SHOWN])})")
    if problems:
        raise NetworkStateMismatch("the LoRA tensors do not fit this network: " + "; ".join(problems))


# ----------------------------------------------------------------------------- targets and names


def unet_targets(unet: nn.Module, family: ModelFamily, *, conv: bool = False) -> Iterator[tuple[str, nn.Module]]:
    """(kohya name, layer) for kohya's UNet module set, in the UNet's module order.

    As kohya's ``create_modules``: every Linear/Conv2d inside a target block; with ``conv`` the
    resnet and sampler blocks count as targets too (the caller gives 3x3 kernels the conv rank).
    A layer reachable under two names is taken once.
    """
    kinds = UNET_TARGETS | (UNET_CONV_TARGETS if conv else frozenset())
    name_of = _unet_namer(unet, family)
    seen: set[int] = set()
    for block_path, block in unet.named_modules():
        if type(block).__name__ not in kinds:
            continue
        for child_path, layer in block.named_modules():
            if not isinstance(layer, (nn.Linear, nn.Conv2d)) or id(layer) in seen:
                continue
            seen.add(id(layer))
            yield name_of(f"{block_path}.{child_path}"), layer


def text_encoder_targets(encoders: Sequence[nn.Module], family: ModelFamily) -> Iterator[tuple[str, nn.Module]]:
    """(kohya name, layer) for q/k/v/out_proj and fc1/fc2 of every layer of every text encoder."""
    prefixes = SDXL_TE_PREFIXES if family is ModelFamily.SDXL else (TE_PREFIX,)
    if len(encoders) != len(prefixes):
        raise UnsupportedModel(f"{family.label} should have {len(prefixes)} text encoders, this model has {len(encoders)}")
    for prefix, encoder in zip(prefixes, encoders):
        for path, layer in encoder.named_modules():
            if isinstance(layer, nn.Linear) and _TEXT_LAYER.match(path):
                yield text_encoder_name(prefix, path), layer


def text_encoder_name(prefix: str, path: str) -> str:
    """``lora_te_text_model_encoder_layers_0_self_attn_q_proj`` whether or not the model has a ``text_model`` level."""
    return f"{prefix}_text_model_" + path.removeprefix("text_model.").replace(".", "_")


def _unet_namer(unet: nn.Module, family: ModelFamily):
    """diffusers module path -> kohya name: diffusers spelling for SD1/SD2, SGM spelling for SDXL."""
    if family is not ModelFamily.SDXL:
        return lambda path: f"{UNET_PREFIX}_" + path.replace(".", "_")
    sgm = {diffusers: ldm for ldm, diffusers in ldm_unet_paths(unet).items()}

    def name(path: str) -> str:
        if path not in sgm:
            raise UnsupportedModel(f"this SDXL UNet's layer {path} has no place in the SGM layout kohya names SDXL LoRAs by")
        return f"{UNET_PREFIX}_" + sgm[path].replace(".", "_")

    return name
