"""LoRA and LyCORIS networks (LoCon, LoHa, LoKr, full diffs, DoRA) merged into a loaded model, as A1111 does.

A1111's built-in Lora extension (``extensions-builtin/Lora``, v1.10) adds each module's delta to
the layer's weight, ``W += multiplier * delta``, and keeps a copy of ``W`` to undo it. So does
:class:`NetworkPatcher`, with exact copies: taking the networks off gives the base weights back bit
for bit, and asking again for the same networks between jobs does nothing at all.

Deltas follow A1111's ``network_lora.py``, ``network_hada.py``, ``network_lokr.py``,
``network_full.py`` and ``network.py`` (``finalize_updown``), at multiplier 1:

- LoRA / LoCon: ``up @ down`` (a convolution's kernel rides in ``down``; a 1x1 ``up``), or with a
  Tucker middle ``lora_mid`` ``einsum("n m k l, i n, m j -> i j k l", mid, up, down)``;
  rank = ``down.shape[0]``.
- LoHa: ``(w1a @ w1b) * (w2a @ w2b)``, or with Tucker cores ``hada_t1``/``hada_t2``;
  rank = ``w1b.shape[0]``.
- LoKr: ``kron(w1, w2)``, each side given whole or as ``a @ b`` (``w2`` also as a Tucker
  product with ``lokr_t2``); rank = the factored side's (``w2``'s wins); no rank, no scale.
- diff: the stored difference itself (and ``diff_b`` for the bias).

Then, as ``finalize_updown``: reshape to the weight's shape when the sizes agree (a linear LoRA
on SD1's 1x1-conv ``proj_in`` and a conv LoRA on SD2's linear one both fit), times
``alpha / rank`` (or the ``scale`` tensor; 1 without a rank or alpha), DoRA's weight
decomposition when the module has ``dora_scale``, and the multiplier: the ``te`` weight for
text-encoder layers, the ``unet`` weight for the UNet's.

Where we differ from A1111, on purpose:

- A file that does not fit the model (a module whose delta has another shape than its layer: an
  SDXL LoRA on SD1.5, an SD2 LoRA on SD1) changes nothing at all. A1111 merges whatever happens to
  fit and counts errors for the rest, which gives a silently damaged model.
- All networks' deltas for one layer are summed in fp32 and cast to the weight's dtype once;
  A1111 rounds to the weight's dtype after each network.
- An inpainting UNet's 9-channel ``conv_in`` gets a 4-channel delta zero-padded, as in A1111, but
  a delta that already has 9 channels is not padded again.
- A ``diff_b`` for a layer without a bias is ignored (A1111 adds a bias parameter to the layer).
- Not applied (reported as unsupported, never silently): (IA)³, LyCORIS norm, GLoRA, OFT/BOFT,
  and PEFT's DoRA (``lora_magnitude_vector``, a different decomposition from kohya's
  ``dora_scale``, which is supported).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from desktop.core.errors import GenerationError, ModelFileError, UnsupportedModel
from desktop.engine.networks.lora_keys import KOHYA_PREFIXES, TEXT_ENCODER, LayerTarget, ModelLayers
from desktop.engine.tensor_file import map_tensors
from desktop.library.probe import probe_model

# kohya files: "<module>.<role>"; other spellings of the same roles.
_ROLE_ALIASES = {
    "lora_A.weight": "lora_down.weight",
    "lora_B.weight": "lora_up.weight",
    "lora.down.weight": "lora_down.weight",
    "lora.up.weight": "lora_up.weight",
}
# diffusers/PEFT files: the module path is the key without one of these endings.
_DIFFUSERS_ROLES = (
    (".lora_linear_layer.down.weight", "lora_down.weight"),
    (".lora_linear_layer.up.weight", "lora_up.weight"),
    ("_lora.down.weight", "lora_down.weight"),  # attention processors: "...processor.to_q_lora.down.weight"
    ("_lora.up.weight", "lora_up.weight"),
    (".lora.down.weight", "lora_down.weight"),
    (".lora.up.weight", "lora_up.weight"),
    (".lora_A.weight", "lora_down.weight"),
    (".lora_B.weight", "lora_up.weight"),
    (".lora_down.weight", "lora_down.weight"),
    (".lora_up.weight", "lora_up.weight"),
    (".lora_mid.weight", "lora_mid.weight"),
    (".lora_magnitude_vector", "lora_magnitude_vector"),
    (".dora_scale", "dora_scale"),
    (".alpha", "alpha"),
    *((f".{role}", role) for role in (
        "hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b", "hada_t1", "hada_t2",
        "lokr_w1", "lokr_w1_a", "lokr_w1_b", "lokr_w2", "lokr_w2_a", "lokr_w2_b", "lokr_t2",
        "diff", "diff_b",
    )),
)  # fmt: skip
_SCALARS = ("alpha", "scale")

LORA, LOHA, LOKR, FULL = "LoRA", "LoHa", "LoKr", "full diff"
SUPPORTED_KINDS = frozenset({LORA, LOHA, LOKR, FULL})
_SHOWN_UNMATCHED = 5


class _DoesNotFit(ValueError):
    """The module's delta cannot be added to its layer's weight."""


# ----------------------------------------------------------------------------- the file


@dataclass(frozen=True, eq=False)
class NetworkModule:
    """One module of a network file: the tensors that patch one layer."""

    name: str  # as the file writes it, e.g. "lora_unet_down_blocks_0_attentions_0_proj_in"
    kind: str  # LORA, LOHA, LOKR, FULL, or the name of a type this app does not apply
    tensors: Mapping[str, torch.Tensor]  # role ("lora_down.weight", "hada_w1_a", ...) -> tensor, on the CPU
    alpha: float | None = None
    scale: float | None = None  # a "scale" tensor overrides alpha / rank, as in A1111

    @property
    def supported(self) -> bool:
        return self.kind in SUPPORTED_KINDS

    def delta(self, weight: torch.Tensor) -> torch.Tensor:
        """The change this module makes to ``weight`` at multiplier 1: fp32, on the weight's device, its shape.

        ``weight`` is the layer's current value (DoRA depends on it). Raises ``ValueError`` when the
        delta does not fit the weight.
        """
        orig = weight.detach().to(torch.float32)
        parts = {role: t.to(device=orig.device, dtype=torch.float32) for role, t in self.tensors.items()}
        try:
            updown, output_shape, rank = _UPDOWN[self.kind](parts, orig)
            return _finalize(updown, orig, output_shape, self._scale(rank), parts.get("dora_scale"))
        except (RuntimeError, IndexError) as error:  # torch's shape errors (matmul, einsum, reshape), odd ranks
            raise _DoesNotFit(str(error)) from error

    def add_to(self, merged: torch.Tensor, multiplier: float) -> None:
        """``merged += multiplier * delta`` in place (``merged``: the layer's fp32 weight so far).

        A plain LoRA (no Tucker middle, no DoRA) goes through one ``addmm_`` into the weight instead
        of forming the delta first: the same sum, and twice as fast on a full-size model.
        """
        up, down = self.tensors.get("lora_up.weight"), self.tensors.get("lora_down.weight")
        plain = (
            self.kind == LORA
            and not {"lora_mid.weight", "dora_scale"} & set(self.tensors)
            and up is not None and down is not None
            and up.shape[0] == merged.shape[0] and up[0].numel() == down.shape[0] and down[0].numel() == merged[0].numel()
            and merged.is_contiguous()
        )  # fmt: skip
        if not plain:
            merged.add_(self.delta(merged).mul_(multiplier))
            return
        up = up.to(device=merged.device, dtype=torch.float32).reshape(up.shape[0], -1)
        down = down.to(device=merged.device, dtype=torch.float32).reshape(down.shape[0], -1)
        merged.view(merged.shape[0], -1).addmm_(up, down, alpha=self._scale(down.shape[0]) * multiplier)

    def bias_delta(self) -> torch.Tensor | None:
        """A full diff's bias change (``diff_b``) at multiplier 1, fp32 on the CPU; no scale, as A1111."""
        bias = self.tensors.get("diff_b") if self.kind == FULL else None
        return None if bias is None else bias.to(torch.float32)

    def fits(self, layer: torch.nn.Module) -> bool:
        """Whether the delta has the layer's weight shape (and a ``diff_b`` its bias size), on the meta device."""
        meta = NetworkModule(self.name, self.kind, {r: t.to("meta") for r, t in self.tensors.items()}, self.alpha, self.scale)
        try:
            meta.delta(torch.empty(layer.weight.shape, device="meta"))
        except ValueError:
            return False
        bias, bias_delta = getattr(layer, "bias", None), self.tensors.get("diff_b")
        return bias is None or bias_delta is None or bias_delta.numel() == bias.numel()

    def _scale(self, rank: int | None) -> float:
        if self.scale is not None:
            return self.scale
        if rank and self.alpha is not None:
            return self.alpha / rank
        return 1.0


@dataclass(frozen=True, eq=False)
class LoadedNetwork:
    """A network file read into modules. Compared by identity: the patcher's "same list" test."""

    path: Path
    name: str  # the file name without extension: what <lora:name:…> says
    modules: Mapping[str, NetworkModule]
    metadata: Mapping[str, str]
    tensor_count: int
    ignored_keys: tuple[str, ...] = ()  # tensors of no module (e.g. "bundle_emb.*" embeddings)


def load_network(path: str | Path) -> LoadedNetwork:
    """Read a LoRA/LyCORIS ``.safetensors`` file (kohya or diffusers/PEFT names).

    Tensors stay views of the memory-mapped file (no copy). Raises :class:`ModelFileError` for a
    damaged file and :class:`UnsupportedModel` for a pickle or a file that holds no network.
    """
    path = Path(path)
    if path.is_dir():
        raise UnsupportedModel(f"{path.name} is a folder, not a LoRA file", path=str(path))
    probe = probe_model(path)  # refuses pickles unopened; strict header checks (BAD_INPUTS 1-6)
    header = probe.header
    if header is None:  # only folders have no header, and those were refused above
        raise UnsupportedModel(f"{path.name} is not a safetensors file", path=str(path))
    tensors = map_tensors(path, header)
    grouped, ignored = _group(tensors)
    if not grouped:
        raise UnsupportedModel(f"{path.name} holds no LoRA or LyCORIS modules: it is {probe.describe()}", path=str(path))
    modules = {name: _module(path, name, parts) for name, parts in grouped.items()}
    return LoadedNetwork(path, path.stem, modules, dict(header.metadata), len(tensors), tuple(ignored))


def _group(tensors: Mapping[str, torch.Tensor]) -> tuple[dict[str, dict[str, torch.Tensor]], list[str]]:
    grouped: dict[str, dict[str, torch.Tensor]] = {}
    ignored = []
    for key, tensor in tensors.items():
        split = _split_key(key)
        if split is None:
            ignored.append(key)
            continue
        module, role = split
        grouped.setdefault(module, {})[role] = tensor
    return grouped, ignored


def _split_key(key: str) -> tuple[str, str] | None:
    """``(module, role)`` for a network tensor's key, None for anything else."""
    if key.startswith(KOHYA_PREFIXES):
        module, _, role = key.partition(".")  # A1111's split: kohya module names have no dots
        return (module, _ROLE_ALIASES.get(role, role)) if role else None
    for ending, role in _DIFFUSERS_ROLES:
        if key.endswith(ending) and len(key) > len(ending):
            return key[: -len(ending)].removesuffix("_lora"), role
    return None


def _module(path: Path, name: str, parts: dict[str, torch.Tensor]) -> NetworkModule:
    scalars = {}
    for role in _SCALARS:
        if role in parts:
            tensor = parts.pop(role)
            if tensor.numel() != 1:
                raise ModelFileError(f"{path.name}: {name}.{role} should hold one number but has shape {tuple(tensor.shape)}", path=str(path))
            scalars[role] = float(tensor.reshape(()).item())
    return NetworkModule(name, _kind(parts), parts, scalars.get("alpha"), scalars.get("scale"))


def _kind(parts: Mapping[str, torch.Tensor]) -> str:
    """The module type, tried in A1111's order (lora, hada, ia3, lokr, full, norm, glora, oft)."""
    roles = set(parts)
    if "lora_magnitude_vector" in roles:
        return "DoRA (PEFT format)"
    if {"lora_up.weight", "lora_down.weight"} <= roles:
        return LORA
    if {"hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b"} <= roles:
        return LOHA
    if {"weight", "on_input"} <= roles:
        return "(IA)³"
    if ("lokr_w1" in roles or {"lokr_w1_a", "lokr_w1_b"} <= roles) and ("lokr_w2" in roles or {"lokr_w2_a", "lokr_w2_b"} <= roles):
        return LOKR
    if "diff" in roles:
        return FULL
    if roles & {"w_norm", "b_norm"}:
        return "LyCORIS norm"
    if "a1.weight" in roles:
        return "GLoRA"
    if roles & {"oft_blocks", "oft_diag"}:
        return "OFT"
    return "incomplete module (" + (", ".join(sorted(roles)) or "alpha only") + ")"


# ----------------------------------------------------------------------------- the deltas

_Updown = tuple[torch.Tensor, list[int], "int | None"]


def _rebuild_conventional(up: torch.Tensor, down: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    return (up.reshape(up.shape[0], -1) @ down.reshape(down.shape[0], -1)).reshape(shape)


def _make_weight_cp(t: torch.Tensor, wa: torch.Tensor, wb: torch.Tensor) -> torch.Tensor:
    temp = torch.einsum("i j k l, j r -> i r k l", t, wb)
    return torch.einsum("i j k l, i r -> r j k l", temp, wa)


def _lora_updown(w: Mapping[str, torch.Tensor], orig: torch.Tensor) -> _Updown:
    up, down, mid = w["lora_up.weight"], w["lora_down.weight"], w.get("lora_mid.weight")
    rank = down.shape[0]
    if orig.dim() == 4:  # A1111 builds Conv2d modules: a 2-d down becomes 1x1, up is always 1x1
        if down.dim() == 2:
            down = down.reshape(*down.shape, 1, 1)
        up = up.reshape(up.shape[0], up.shape[1], 1, 1)
    else:  # Linear modules: everything flattened to 2-d
        up, down = up.reshape(up.shape[0], -1), down.reshape(down.shape[0], -1)
        if mid is not None:
            raise _DoesNotFit("a Tucker (lora_mid) LoRA needs a convolution")
    output_shape = [up.shape[0], down.shape[1]]
    if mid is not None:
        updown = torch.einsum("n m k l, i n, m j -> i j k l", mid, up.reshape(up.shape[0], -1), down.reshape(down.shape[0], -1))
        output_shape += list(mid.shape[2:])
    else:
        if down.dim() == 4:
            output_shape += list(down.shape[2:])
        updown = _rebuild_conventional(up, down, output_shape)
    return updown, output_shape, rank


def _loha_updown(w: Mapping[str, torch.Tensor], orig: torch.Tensor) -> _Updown:
    w1a, w1b, w2a, w2b = w["hada_w1_a"], w["hada_w1_b"], w["hada_w2_a"], w["hada_w2_b"]
    t1, t2 = w.get("hada_t1"), w.get("hada_t2")
    if t1 is not None:
        output_shape = [w1a.shape[1], w1b.shape[1], *t1.shape[2:]]
        updown1 = _make_weight_cp(t1, w1a, w1b)
    else:
        output_shape = [w1a.shape[0], w1b.shape[1], *(w1b.shape[2:] if w1b.dim() == 4 else ())]
        updown1 = _rebuild_conventional(w1a, w1b, output_shape)
    updown2 = _make_weight_cp(t2, w2a, w2b) if t2 is not None else _rebuild_conventional(w2a, w2b, output_shape)
    return updown1 * updown2, output_shape, w1b.shape[0]


def _lokr_updown(w: Mapping[str, torch.Tensor], orig: torch.Tensor) -> _Updown:
    rank = None
    if "lokr_w1" in w:
        w1 = w["lokr_w1"]
    else:
        w1, rank = w["lokr_w1_a"] @ w["lokr_w1_b"], w["lokr_w1_b"].shape[0]
    if "lokr_w2" in w:
        w2 = w["lokr_w2"]
    else:
        rank = w["lokr_w2_b"].shape[0]
        t2 = w.get("lokr_t2")
        w2 = _make_weight_cp(t2, w["lokr_w2_a"], w["lokr_w2_b"]) if t2 is not None else w["lokr_w2_a"] @ w["lokr_w2_b"]
    output_shape = list(orig.shape) if orig.dim() == 4 else [w1.shape[0] * w2.shape[0], w1.shape[1] * w2.shape[1]]
    if w2.dim() == 4:
        w1 = w1[:, :, None, None]
    return torch.kron(w1, w2.contiguous()).reshape(output_shape), output_shape, rank


def _full_updown(w: Mapping[str, torch.Tensor], orig: torch.Tensor) -> _Updown:
    return w["diff"], list(w["diff"].shape), None


_UPDOWN = {LORA: _lora_updown, LOHA: _loha_updown, LOKR: _lokr_updown, FULL: _full_updown}


def _finalize(updown: torch.Tensor, orig: torch.Tensor, output_shape: Sequence[int], scale: float, dora_scale: torch.Tensor | None) -> torch.Tensor:
    """A1111's ``finalize_updown`` without the multiplier, then the check that the result fits."""
    if len(output_shape) == 4:
        updown = updown.reshape(output_shape)
    if updown.numel() == orig.numel():
        updown = updown.reshape(orig.shape)
    updown = updown * scale
    if dora_scale is not None:
        updown = _weight_decompose(updown, orig, dora_scale)
    if orig.dim() == 4 and orig.shape[1] == 9 and updown.dim() == 4 and updown.shape[1] == 4:
        updown = torch.nn.functional.pad(updown, (0, 0, 0, 0, 0, 5))  # inpainting conv_in: mask channels untouched
    if updown.shape != orig.shape:
        raise _DoesNotFit(f"a delta of shape {tuple(updown.shape)} for a weight of shape {tuple(orig.shape)}")
    return updown


def _weight_decompose(updown: torch.Tensor, orig: torch.Tensor, dora_scale: torch.Tensor) -> torch.Tensor:
    """A1111's DoRA: rescale ``W + delta`` column-wise to the stored magnitudes; return the change."""
    merged = updown + orig
    columns = merged.shape[1]
    norm = merged.transpose(0, 1).reshape(columns, -1).norm(dim=1, keepdim=True)
    norm = norm.reshape(columns, *[1] * (orig.dim() - 1)).transpose(0, 1)
    return merged * (dora_scale / norm) - orig


# ----------------------------------------------------------------------------- the patcher


@dataclass(frozen=True)
class NetworkMatch:
    """How much of a network found a layer in the model; the UI warns unless ``complete``."""

    name: str
    path: Path
    matched: int  # modules applied (counted also at weight 0)
    total: int  # modules in the file
    unmatched: tuple[str, ...] = ()  # the first few module names that were not applied
    wrong_base: bool = False  # made for another base model: nothing was applied
    misfits: int = 0  # modules whose layer exists but has another shape
    unsupported: tuple[str, ...] = ()  # module types this app does not apply, e.g. "OFT"

    @property
    def complete(self) -> bool:
        return self.matched == self.total

    def warning(self) -> str | None:
        """A plain English line naming the file, or None when every module was applied."""
        if self.complete:
            return None
        file = self.path.name
        if self.wrong_base:
            if self.misfits:
                why = f"{self.misfits} of its {self.total} modules have another shape than this model's layers"
            else:
                why = f"none of its {self.total} modules names a layer of this model"
            return f"LoRA {file} was made for another base model ({why}); it was not applied"
        parts = [f"LoRA {file}: {self.matched} of {self.total} modules applied"]
        if self.unsupported:
            parts.append("not supported: " + ", ".join(self.unsupported))
        if self.unmatched:
            parts.append("no layer for e.g. " + ", ".join(self.unmatched[:3]))
        return "; ".join(parts)


@dataclass(frozen=True)
class _Plan:
    match: NetworkMatch
    fits: tuple[tuple[LayerTarget, NetworkModule], ...]


# (component, parameter name) -> the parameter's base value, e.g. re-read from the memory-mapped
# checkpoint; None where it cannot be had. Component: "unet", "text_encoder", "text_encoder_2".
OriginalWeights = Callable[[str, str], "torch.Tensor | None"]


class NetworkPatcher:
    """Applies networks to one loaded model in place, and takes them off again exactly.

    Backups: the first time a layer is patched its weight is copied, in its own dtype, to its
    own device (``cpu`` for CUDA weights, where device memory is the scarce one). On a Mac the
    CPU and the GPU share one memory, so a CPU copy would cost the same RAM and add a transfer
    to every restore; a same-device copy restores with one device-local ``copy_``. Only the
    layers the current networks touch are kept, but that is a lot: a LoRA on every transformer
    and text-encoder layer touches 352 M weights of SD1.5 (700 MB of backups in fp16) and 2.9 G
    of SDXL (5.8 GB), too much beside SDXL on a 16 GB Mac. Hence ``originals``: when it gives
    a layer's base value (bit-identical to the live weight, checked once), nothing is copied
    and ``restore`` copies from it instead. ``restore()`` frees all backups.
    """

    def __init__(self, model: Any, *, originals: OriginalWeights | None = None) -> None:
        self._layers = ModelLayers.of(model)
        self._originals = originals
        # id(param) -> (param, its base value: a copy, or the (component, name) to ask ``originals`` for)
        self._backups: dict[int, tuple[torch.Tensor, torch.Tensor | tuple[str, str]]] = {}
        self._applied: tuple[tuple[LoadedNetwork, float, float], ...] = ()
        self._matches: list[NetworkMatch] = []

    @property
    def backup_bytes(self) -> int:
        """Memory held by weight copies now (re-readable originals cost none)."""
        return sum(b.numel() * b.element_size() for _, b in self._backups.values() if isinstance(b, torch.Tensor))

    @property
    def applied(self) -> tuple[tuple[LoadedNetwork, float, float], ...]:
        """The networks now merged into the weights, with their (te, unet) multipliers."""
        return self._applied

    def match(self, network: LoadedNetwork) -> NetworkMatch:
        """How ``network`` would fit this model, without touching a weight."""
        return self._plan(network).match

    def apply(self, networks: Sequence[tuple[LoadedNetwork, float, float]]) -> list[NetworkMatch]:
        """Merge ``networks`` ((network, te weight, unet weight) each) into the weights; one match per network.

        The same list again (same network objects, same weights) is a no-op; another list first
        restores the base weights. A network that does not fit is reported, never raised.
        """
        wanted = tuple((network, float(te), float(unet)) for network, te, unet in networks)
        if self._is_applied(wanted):
            return list(self._matches)
        self._put_back()
        self._applied, self._matches = (), []
        try:
            plans = [self._plan(network) for network, _, _ in wanted]
            layers = _contributions(wanted, plans)
            needed = {id(p) for target, _ in layers.values() for p in (target.module.weight, getattr(target.module, "bias", None)) if p is not None}
            for key in [key for key in self._backups if key not in needed]:
                del self._backups[key]  # already restored, and not needed by the new list
            with torch.no_grad():
                for target, contributions in layers.values():
                    self._patch(target, contributions)
        except BaseException:
            self.restore()
            raise
        self._applied, self._matches = wanted, [plan.match for plan in plans]
        return list(self._matches)

    def restore(self) -> None:
        """Put the base weights back, bit for bit, and free the backups."""
        self._put_back()
        self._backups.clear()
        self._applied, self._matches = (), []

    # --- internals ---

    def _is_applied(self, wanted: tuple[tuple[LoadedNetwork, float, float], ...]) -> bool:
        return len(wanted) == len(self._applied) and all(
            a is b and te_a == te_b and unet_a == unet_b for (a, te_a, unet_a), (b, te_b, unet_b) in zip(wanted, self._applied)
        )

    def _put_back(self) -> None:
        with torch.no_grad():
            for parameter, backup in self._backups.values():
                if not isinstance(backup, torch.Tensor):
                    component, name = backup
                    backup = self._original(parameter, component, name)
                    if backup is None:
                        raise GenerationError(f"the base value of {component}.{name} could not be read again to take the LoRA off")
                parameter.copy_(backup)

    def _plan(self, network: LoadedNetwork) -> _Plan:
        fits: list[tuple[LayerTarget, NetworkModule]] = []
        taken: set[int] = set()
        unmatched: list[str] = []
        unsupported: dict[str, int] = {}
        misfits = 0
        for module in network.modules.values():
            if not module.supported:
                unsupported[module.kind] = unsupported.get(module.kind, 0) + 1
                unmatched.append(module.name)
                continue
            target = self._layers.find(module.name)
            if target is None or id(target.module) in taken:  # a second spelling of a layer already patched
                unmatched.append(module.name)
                continue
            if not module.fits(target.module):
                misfits += 1
                unmatched.append(module.name)
                continue
            taken.add(id(target.module))
            fits.append((target, module))
        supported = len(network.modules) - sum(unsupported.values())
        wrong_base = misfits > 0 or (supported > 0 and not fits)
        match = NetworkMatch(
            name=network.name,
            path=network.path,
            matched=0 if wrong_base else len(fits),
            total=len(network.modules),
            unmatched=tuple(unmatched[:_SHOWN_UNMATCHED]),
            wrong_base=wrong_base,
            misfits=misfits,
            unsupported=tuple(f"{kind} ({count} modules)" for kind, count in unsupported.items()),
        )
        return _Plan(match, () if wrong_base else tuple(fits))

    def _patch(self, target: LayerTarget, contributions: list[tuple[NetworkModule, float]]) -> None:
        layer = target.module
        weight = layer.weight
        self._keep_backup(weight, target.component, f"{target.path}.weight")
        merged = weight.detach().to(torch.float32, copy=True)
        bias = getattr(layer, "bias", None)
        merged_bias = None
        for module, multiplier in contributions:
            module.add_to(merged, multiplier)
            bias_delta = module.bias_delta()
            if bias_delta is not None and bias is not None:
                if merged_bias is None:
                    self._keep_backup(bias, target.component, f"{target.path}.bias")
                    merged_bias = bias.detach().to(torch.float32, copy=True)
                merged_bias.add_(bias_delta.to(bias.device).reshape(bias.shape) * multiplier)
        weight.copy_(merged)
        if merged_bias is not None:
            bias.copy_(merged_bias)

    def _keep_backup(self, parameter: torch.Tensor, component: str, name: str) -> None:
        if id(parameter) in self._backups:
            return
        original = self._original(parameter, component, name)
        if original is not None and torch.equal(original, parameter):
            self._backups[id(parameter)] = (parameter, (component, name))
            return
        device = torch.device("cpu") if parameter.device.type == "cuda" else parameter.device
        self._backups[id(parameter)] = (parameter, parameter.detach().to(device, copy=True))


    def _original(self, parameter: torch.Tensor, component: str, name: str) -> torch.Tensor | None:
        """The parameter's base value from ``originals``, in its dtype and on its device; None if not given."""
        original = None if self._originals is None else self._originals(component, name)
        if original is None or original.shape != parameter.shape:
            return None
        return original.to(device=parameter.device, dtype=parameter.dtype)


def _contributions(
    wanted: Sequence[tuple[LoadedNetwork, float, float]], plans: Sequence[_Plan]
) -> dict[int, tuple[LayerTarget, list[tuple[NetworkModule, float]]]]:
    """Per layer (by id), the modules that change it and their multipliers, in the networks' order."""
    layers: dict[int, tuple[LayerTarget, list[tuple[NetworkModule, float]]]] = {}
    for (_, te_weight, unet_weight), plan in zip(wanted, plans):
        for target, module in plan.fits:
            multiplier = te_weight if target.part == TEXT_ENCODER else unet_weight
            if multiplier == 0:
                continue  # adds exactly nothing: skip the arithmetic (and the backup)
            layers.setdefault(id(target.module), (target, []))[1].append((module, multiplier))
    return layers
