"""LoRA and LyCORIS (LoCon, LoHa, LoKr, full diffs) applied to the loaded model's weights, as A1111 does.

A1111's built-in Lora extension merges each module's delta into the weight (``W += w * delta``)
and keeps a backup to undo it. So does :class:`NetworkPatcher`: the backups are exact copies, so
removing the networks gives the base weights back bit for bit, and asking again for the same
networks between jobs does nothing at all.

Module names: kohya writes ``lora_unet_<diffusers path>`` for SD1/SD2, SGM names
(``lora_unet_input_blocks_4_1_…``) for SDXL, and ``lora_te[12]_text_model_…`` for the text
encoders. Rather than parse those names (underscores are ambiguous), every Linear/Conv2d module
of our model is given its kohya name, and the file's names are looked up in that table; SDXL's SGM
names are first mapped to diffusers blocks with diffusers' own converter. diffusers/PEFT-format
files (``unet.….lora_A.weight``) name module paths directly.

Delta formulas (A1111 ``extensions-builtin/Lora/network_*.py``), scale = alpha / rank:
- LoRA/LoCon: ``up @ down`` (convolutions flattened), rank = ``down.shape[0]``;
- LoHa: ``(w1a @ w1b) * (w2a @ w2b)``, rank = ``w1b.shape[0]``;
- LoKr: ``kron(w1, w2)`` with w1/w2 given or as ``a @ b`` products (scale only with a factored side);
- diff: the stored difference itself.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from desktop.core.errors import ModelFileError, UnsupportedModel

_KOHYA_PREFIXES = ("lora_unet_", "lora_te_", "lora_te1_", "lora_te2_")
_PEFT_PREFIXES = {"unet.": "unet", "text_encoder.": "te1", "text_encoder_2.": "te2"}
_SUFFIXES = (
    "lora_down.weight", "lora_up.weight", "lora_mid.weight", "alpha",
    "hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b", "hada_t1", "hada_t2",
    "lokr_w1", "lokr_w1_a", "lokr_w1_b", "lokr_w2", "lokr_w2_a", "lokr_w2_b", "lokr_t2",
    "diff", "diff_b", "dora_scale",
    "lora_A.weight", "lora_B.weight", "lora.down.weight", "lora.up.weight",
)  # fmt: skip


@dataclass
class LoadedNetwork:
    """One network file: its tensors grouped by module name (as written in the file), on the CPU."""

    path: Path
    name: str
    modules: dict[str, dict[str, torch.Tensor]]
    peft: bool = False  # module names are diffusers/PEFT paths ("unet.down_blocks.0…")


@dataclass(frozen=True)
class NetworkMatch:
    """How much of a network found a home in the model: the UI warns when not all of it did."""

    name: str
    path: Path
    matched: int
    total: int
    unmatched: tuple[str, ...] = ()  # a few of the module names that matched nothing (or the wrong shape)
    wrong_base: bool = False  # nothing fitted: made for another base model

    def __post_init__(self) -> None:
        object.__setattr__(self, "wrong_base", self.wrong_base or (self.total > 0 and self.matched == 0))


def load_network(path: str | Path) -> LoadedNetwork:
    """Read a LoRA/LyCORIS ``.safetensors`` file; ``ModelFileError`` when it is not one."""
    path = Path(path)
    if path.suffix.lower() != ".safetensors":
        raise UnsupportedModel(f"{path.name}: only .safetensors LoRA files are loaded (convert other formats first)", path=str(path))
    try:
        tensors = load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as error:
        raise ModelFileError(f"{path.name} cannot be read as a LoRA: {error}", path=str(path), reason="corrupt") from error
    modules: dict[str, dict[str, torch.Tensor]] = {}
    peft = False
    for key, tensor in tensors.items():
        suffix = next((s for s in _SUFFIXES if key.endswith("." + s)), None)
        if suffix is None:
            continue
        module = key[: -len(suffix) - 1]
        if module.startswith(tuple(_PEFT_PREFIXES)):
            peft = True
            module = module.replace(".base_model.model.", ".").removesuffix(".lora")
        elif not module.startswith(_KOHYA_PREFIXES):
            continue
        modules.setdefault(module, {})[suffix.replace("lora.down.weight", "lora_A.weight").replace("lora.up.weight", "lora_B.weight")] = tensor
    if not modules:
        raise ModelFileError(f"{path.name} holds no LoRA or LyCORIS modules", path=str(path), reason="not_a_network")
    return LoadedNetwork(path, path.stem, modules, peft)


def module_delta(parts: Mapping[str, torch.Tensor], shape: torch.Size) -> torch.Tensor:
    """The weight difference one module of a network makes at multiplier 1, in fp32 and the weight's shape."""
    parts = {name: tensor.float() for name, tensor in parts.items()}
    alpha = float(parts["alpha"]) if "alpha" in parts else None
    if "lora_down.weight" in parts or "lora_A.weight" in parts:
        down = parts.get("lora_down.weight", parts.get("lora_A.weight"))
        up = parts.get("lora_up.weight", parts.get("lora_B.weight"))
        if "lora_mid.weight" in parts:
            raise UnsupportedModel("LoCon with a Tucker middle factor (lora_mid) is not supported")
        rank = down.shape[0]
        delta = up.flatten(1) @ down.flatten(1)
    elif "hada_w1_a" in parts:
        if "hada_t1" in parts:
            raise UnsupportedModel("LoHa with Tucker factors (hada_t1) is not supported")
        rank = parts["hada_w1_b"].shape[0]
        delta = (parts["hada_w1_a"] @ parts["hada_w1_b"]) * (parts["hada_w2_a"] @ parts["hada_w2_b"])
    elif "lokr_w1" in parts or "lokr_w1_a" in parts:
        if "lokr_t2" in parts:
            raise UnsupportedModel("LoKr with a Tucker factor (lokr_t2) is not supported")
        w1 = parts["lokr_w1"] if "lokr_w1" in parts else parts["lokr_w1_a"] @ parts["lokr_w1_b"]
        w2 = parts["lokr_w2"] if "lokr_w2" in parts else parts["lokr_w2_a"] @ parts["lokr_w2_b"].flatten(1)
        factored = parts.get("lokr_w1_b", parts.get("lokr_w2_b"))
        rank = factored.shape[0] if factored is not None else None
        # For a convolution the kernel rides along in w2's columns: kron of the flattened w2 then
        # reshaped to (out, in, kh, kw) is the same tensor as a 4-d Kronecker product.
        delta = torch.kron(w1, w2.flatten(1))
        if rank is None:
            alpha = None  # A1111: no scale without a factored side
    elif "diff" in parts:
        rank, alpha = None, None
        delta = parts["diff"]
    else:
        raise UnsupportedModel("unknown network module type: " + ", ".join(sorted(parts)))
    if delta.numel() != shape.numel():
        raise ValueError(f"shape {tuple(delta.shape)} does not fit a weight of shape {tuple(shape)}")
    scale = alpha / rank if alpha is not None and rank else 1.0
    return delta.reshape(shape) * scale


@dataclass
class _Target:
    module: torch.nn.Module
    part: str  # "te" or "unet": which multiplier applies


@dataclass
class NetworkPatcher:
    """Applies networks to one loaded model in place and takes them off again exactly."""

    model: Any  # LoadedModel
    _targets: dict[str, _Target] = field(default_factory=dict)
    _backups: dict[int, tuple[torch.nn.Module, torch.Tensor]] = field(default_factory=dict)
    _applied: tuple[tuple[int, float, float], ...] = ()
    _matches: list[NetworkMatch] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._targets = _kohya_targets(self.model)

    def apply(self, networks: Sequence[tuple[LoadedNetwork, float, float]]) -> list[NetworkMatch]:
        """Patch the weights for ``networks`` ((network, te weight, unet weight) each); returns how each matched."""
        wanted = tuple((id(network), te, unet) for network, te, unet in networks)
        if wanted == self._applied:
            return list(self._matches)
        self.restore()
        matches = []
        with torch.no_grad():
            for network, te_weight, unet_weight in networks:
                matches.append(self._apply_one(network, te_weight, unet_weight))
        self._applied, self._matches = wanted, matches
        return list(matches)

    def restore(self) -> None:
        """The base weights, bit for bit."""
        with torch.no_grad():
            for module, backup in self._backups.values():
                module.weight.copy_(backup)
        self._backups.clear()
        self._applied, self._matches = (), []

    def _apply_one(self, network: LoadedNetwork, te_weight: float, unet_weight: float) -> NetworkMatch:
        names = _names_for_model(network, self.model)
        matched, unmatched = 0, []
        for file_name, parts in network.modules.items():
            target = self._targets.get(names.get(file_name, file_name))
            if target is None:
                unmatched.append(file_name)
                continue
            weight = target.module.weight
            try:
                delta = module_delta(parts, weight.shape)
            except (ValueError, RuntimeError, KeyError, UnsupportedModel):
                unmatched.append(file_name)
                continue
            matched += 1
            multiplier = te_weight if target.part == "te" else unet_weight
            if multiplier == 0:
                continue
            key = id(target.module)
            if key not in self._backups:
                self._backups[key] = (target.module, weight.detach().to("cpu", copy=True))
            weight.copy_((weight.float() + delta.to(weight.device) * multiplier).to(weight.dtype))
        return NetworkMatch(network.name, network.path, matched, len(network.modules), tuple(unmatched[:5]))


def _kohya_targets(model: Any) -> dict[str, _Target]:
    """Every patchable module of the model under its kohya name and its diffusers/PEFT path."""
    targets: dict[str, _Target] = {}

    def add(prefix: str, peft_prefix: str, root: torch.nn.Module, part: str, text: bool) -> None:
        for path, module in root.named_modules():
            if not isinstance(module, (torch.nn.Linear, torch.nn.Conv2d)) or not path:
                continue
            kohya_path = ("text_model." + path.removeprefix("text_model.")) if text else path
            targets[prefix + kohya_path.replace(".", "_")] = _Target(module, part)
            targets[peft_prefix + path.removeprefix("text_model.")] = _Target(module, part)

    add("lora_unet_", "unet.", model.unet, "unet", text=False)
    encoders = model.text_encoders
    if len(encoders) == 1:
        add("lora_te_", "text_encoder.", encoders[0], "te", text=True)
        add("lora_te1_", "text_encoder.", encoders[0], "te", text=True)  # diffusers' converter writes te1 for SD1
    else:
        add("lora_te1_", "text_encoder.", encoders[0], "te", text=True)
        add("lora_te2_", "text_encoder_2.", encoders[1], "te", text=True)
    return targets


def _names_for_model(network: LoadedNetwork, model: Any) -> dict[str, str]:
    """File module name -> our target name: SGM block names mapped to diffusers ones, PEFT paths tidied."""
    if network.peft:
        return {name: name.replace("text_encoder.text_model.", "text_encoder.").replace("text_encoder_2.text_model.", "text_encoder_2.") for name in network.modules}
    unet_names = [name for name in network.modules if name.startswith("lora_unet_")]
    if not any(block in name for name in unet_names for block in ("input_blocks", "middle_block", "output_blocks")):
        return {}
    from diffusers.loaders.lora_conversion_utils import _maybe_map_sgm_blocks_to_diffusers

    try:
        mapped = _maybe_map_sgm_blocks_to_diffusers({name: name for name in unet_names}, model.unet.config)
    except (ValueError, KeyError, IndexError):
        return {}  # not an SGM layout this UNet has: the names will not match, and the match says so
    # The converter renumbers SGM blocks; the block names themselves diffusers' loader renames after it.
    renamed = {"input_blocks": "down_blocks", "middle_block": "mid_block", "output_blocks": "up_blocks"}
    result = {}
    for new, original in mapped.items():
        for sgm, diffusers_name in renamed.items():
            new = new.replace(f"lora_unet_{sgm}_", f"lora_unet_{diffusers_name}_")
        result[original] = new
    return result
