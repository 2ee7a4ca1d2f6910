"""A1111 hypernetworks (``<hypernet:name:strength>``): load them and apply them to a diffusers UNet.

The maths is A1111 v1.10's ``modules/hypernetworks/hypernetwork.py``:

- A hypernetwork holds, for each of some context widths ``dim`` (768, 1024, 320, 640, 1280...),
  a pair of :class:`HypernetworkModule`: index 0 transforms the context the attention's key
  projection reads, index 1 the context its value projection reads.
- A module is ``x + linear(x) * strength``, where ``linear`` is a ``Sequential`` of ``Linear``
  layers sized ``dim * layer_structure[i] -> dim * layer_structure[i + 1]``, each followed by the
  activation (not after the last one unless ``activate_output``), a ``LayerNorm``
  (``is_layer_norm``) and a ``Dropout`` where ``dropout_structure`` says so (inactive here, but it
  takes a place in the ``Sequential``, so the parameter names depend on it).
- A1111's every attention forward does ``context = default(context, x)`` and then
  ``context_k, context_v = apply_hypernetworks(loaded_hypernetworks, context)``, which picks the
  pair by ``context.shape[2]`` and chains the hypernetworks in prompt order:
  ``k = to_k(hn2.k(hn1.k(context)))``, ``v = to_v(hn2.v(hn1.v(context)))``; ``q`` is untouched.
  That includes SELF-attention (attn1), where the context is the block's own input: a
  hypernetwork trained with A1111's default sizes (768, 320, 640, 1280) changes attn2 of SD1 via
  768 and attn1 at every level via 320/640/1280. This module does exactly that.

How it is applied: a forward pre-hook on ``to_k`` and ``to_v`` of every attention module whose
input width has layers in a hypernetwork. The hook replaces the projection's input with the
transformed context, which is the same as A1111's ``to_k(context_k)`` whatever attention
processor the engine chose (SDPA, sliced attention for memory...): processors are never
replaced, and removing the hooks leaves the UNet exactly as it was.

The modules compute in float32 and hand back the context's dtype (A1111 computes them in float32
too and casts back under ``--upcast-sampling``; under fp16 autocast it rounds more).

Files: ``.safetensors`` as :mod:`desktop.library.pickle_reader` writes a hypernetwork (tensors
``"{dim}.{0|1}.{param}"``, metadata ``format`` = ``"a1111-hypernetwork"`` and each option as JSON
text). A1111's own ``.pt`` is converted to that form first, in a child process with a restricted
unpickler (:func:`desktop.library.pickle_convert.convert_pickle_file`): never unpickled here.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import math
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from desktop.core.cancel import CancelToken
from desktop.core.errors import ModelFileError, UnsupportedModel
from desktop.engine.tensor_file import map_tensors
from desktop.library.file_errors import reading
from desktop.library.pickle_convert import convert_pickle_file
from desktop.library.pickle_reader import HYPERNETWORK_FORMAT
from desktop.library.safetensors_file import read_safetensors_header

KEY, VALUE = 0, 1  # index of the module transforming the context of to_k / to_v
CACHE_PREFIX = "hypernetwork-"
COMPUTE_DTYPE = torch.float32

# A1111's defaults for options a file does not carry (Hypernetwork.load). Note activate_output:
# a newly created hypernetwork defaults to False, but a loaded file without the key gets True.
_DEFAULT_LAYER_STRUCTURE = (1.0, 2.0, 1.0)
_DEFAULT_ACTIVATE_OUTPUT = True
_OLD_DROPOUT_RATE = 0.3  # parse_dropout_structure's fixed rate for files with only use_dropout
# The first hypernetworks (NovelAI's) named the two layers of a [1, 2, 1] structure this way.
_OLD_PARAMETER_NAMES = {
    "linear1.weight": "linear.0.weight",
    "linear1.bias": "linear.0.bias",
    "linear2.weight": "linear.1.weight",
    "linear2.bias": "linear.1.bias",
}


# --- the module ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class HypernetworkOptions:
    """The options that shape every module of a hypernetwork, as A1111 reads them from the file."""

    layer_structure: tuple[float, ...] = _DEFAULT_LAYER_STRUCTURE
    activation_func: str | None = None
    add_layer_norm: bool = False
    activate_output: bool = _DEFAULT_ACTIVATE_OUTPUT
    dropout_structure: tuple[float, ...] = (0.0, 0.0, 0.0)


def activation_classes() -> dict[str, type[torch.nn.Module]]:
    """``HypernetworkModule.activation_dict``: A1111's names, then every torch activation by lower-case name."""
    classes: dict[str, type[torch.nn.Module]] = {
        "linear": torch.nn.Identity,
        "relu": torch.nn.ReLU,
        "leakyrelu": torch.nn.LeakyReLU,
        "elu": torch.nn.ELU,
        "swish": torch.nn.Hardswish,  # sic: A1111's "swish" is Hardswish
        "tanh": torch.nn.Tanh,
        "sigmoid": torch.nn.Sigmoid,
    }
    activation = torch.nn.modules.activation
    classes.update(
        {
            name.lower(): cls
            for name, cls in inspect.getmembers(activation, inspect.isclass)
            if cls.__module__ == activation.__name__ and issubclass(cls, torch.nn.Module)
        }
    )
    return classes


class HypernetworkModule(torch.nn.Module):
    """One of a pair: ``forward(x, strength) = x + linear(x) * strength`` (A1111, in eval mode).

    The strength is an argument rather than A1111's ``multiplier`` attribute, so one loaded
    hypernetwork can be used at different strengths without shared mutable state.
    """

    def __init__(self, dim: int, options: HypernetworkOptions) -> None:
        super().__init__()
        structure = options.layer_structure
        activation = activation_classes().get(options.activation_func or "linear")
        if activation is None:
            raise ValueError(f"unsupported activation function {options.activation_func!r}")
        layers: list[torch.nn.Module] = []
        for i in range(len(structure) - 1):
            width = int(dim * structure[i + 1])
            layers.append(torch.nn.Linear(int(dim * structure[i]), width))
            is_last = i >= len(structure) - 2
            if options.activation_func not in (None, "linear") and (options.activate_output or not is_last):
                layers.append(activation())
            if options.add_layer_norm:
                layers.append(torch.nn.LayerNorm(width))
            if options.dropout_structure[i + 1] > 0:
                layers.append(torch.nn.Dropout(p=options.dropout_structure[i + 1]))
        self.linear = torch.nn.Sequential(*layers)
        self.eval()

    def forward(self, x: torch.Tensor, strength: float = 1.0) -> torch.Tensor:
        return x + self.linear(x) * strength


@dataclass(eq=False)
class Hypernetwork:
    """A loaded hypernetwork: its key/value module pairs by context width, on one device, float32."""

    name: str  # the file's stem: what <hypernet:name> refers to
    path: Path  # the file the user has (the .pt, not its converted copy)
    options: HypernetworkOptions
    layers: Mapping[int, tuple[HypernetworkModule, HypernetworkModule]]
    metadata: Mapping[str, str]  # every option as the file had it (JSON text), plus "format"

    @property
    def dims(self) -> tuple[int, ...]:
        """The context widths it has modules for, smallest first."""
        return tuple(self.layers)

    def to(self, device: torch.device | str) -> Hypernetwork:
        """Move every module to ``device`` (in place; the dtype stays float32) and return self."""
        for pair in self.layers.values():
            for module in pair:
                module.to(device)
        return self


# --- loading ------------------------------------------------------------------------------------


def load_hypernetwork(
    path: str | Path,
    cache_dir: str | Path | None = None,
    *,
    device: torch.device | str = "cpu",
    cancel: CancelToken | None = None,
) -> Hypernetwork:
    """Load an A1111 hypernetwork from ``.safetensors`` (our converted form) or A1111's ``.pt``.

    A pickle (``.pt``, ``.ckpt``, ...) is converted once, in a child process, into ``cache_dir``
    (named after the file's path, size and modification time, so an edited file is converted
    again and its older conversion removed); without ``cache_dir`` it goes through a temporary
    folder. Raises :class:`UnsafePickle` for a pickle that asks for code, :class:`UnsupportedModel`
    for a file that is not a hypernetwork or uses an option A1111 cannot load either, and
    :class:`ModelFileError` for a broken file; each names the file.
    """
    path = Path(path)
    if path.suffix.lower() == ".safetensors":
        return _load_safetensors(path, path, device)
    if cache_dir is not None:
        converted = _convert_cached(path, Path(cache_dir), cancel)
        return _load_safetensors(converted, path, device)
    with tempfile.TemporaryDirectory(prefix="hypernetwork-") as scratch:
        converted = _convert(path, Path(scratch) / "converted.safetensors", cancel)
        return _load_safetensors(converted, path, device)


def cached_conversion_path(source: Path, cache_dir: Path) -> Path:
    """Where the converted copy of pickle ``source`` lives; it changes when the file does."""
    with reading(source):
        stat = source.stat()
    version = hashlib.sha256(f"{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    return cache_dir / f"{_cache_stem(source)}-{version}.safetensors"


def _cache_stem(source: Path) -> str:
    """The part of the cached name that depends on the file's place only (not on the user's file name)."""
    place = hashlib.sha256(str(source.resolve()).encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return f"{CACHE_PREFIX}{place}"


def _convert_cached(source: Path, cache_dir: Path, cancel: CancelToken | None) -> Path:
    target = cached_conversion_path(source, cache_dir)
    if target.is_file():
        return target
    _convert(source, target, cancel)
    for older in cache_dir.glob(f"{_cache_stem(source)}-*.safetensors"):  # conversions of its earlier versions
        if older != target:
            older.unlink(missing_ok=True)
    return target


def _convert(source: Path, target: Path, cancel: CancelToken | None) -> Path:
    convert_pickle_file(source, target, cancel=cancel)
    if read_safetensors_header(target).metadata.get("format") != HYPERNETWORK_FORMAT:
        target.unlink(missing_ok=True)  # a LoRA or an embedding .pt: not worth keeping in the cache
        raise _not_a_hypernetwork(source)
    return target


def _not_a_hypernetwork(path: Path) -> UnsupportedModel:
    return UnsupportedModel(
        f"{path.name} is not an A1111 hypernetwork (it has no layers keyed by context size)",
        path=str(path),
        reason="not_a_hypernetwork",
    )


def _load_safetensors(file: Path, source: Path, device: torch.device | str) -> Hypernetwork:
    header = read_safetensors_header(file)
    metadata = dict(header.metadata)
    if metadata.get("format") != HYPERNETWORK_FORMAT:
        raise _not_a_hypernetwork(source)
    options = _options(source, metadata)
    tensors = map_tensors(file, header)
    layers: dict[int, tuple[HypernetworkModule, HypernetworkModule]] = {}
    for dim, pair in _group_by_dim(source, tensors).items():
        key = _module(source, dim, KEY, pair.get(KEY), options)
        value = _module(source, dim, VALUE, pair.get(VALUE), options)
        layers[dim] = (key.to(device), value.to(device))
    if not layers:
        raise _not_a_hypernetwork(source)
    return Hypernetwork(source.stem, source, options, layers, metadata)


def _options(path: Path, metadata: Mapping[str, str]) -> HypernetworkOptions:
    """A1111's ``Hypernetwork.load`` reading of the options, with its defaults, checked."""
    read = _OptionReader(path, metadata)
    structure = read.numbers("layer_structure", _DEFAULT_LAYER_STRUCTURE)
    if len(structure) < 2 or structure[0] != 1 or structure[-1] != 1 or min(structure) <= 0:
        raise read.error("layer_structure", "it must start and end with 1 and hold only positive sizes")
    activation = read.value("activation_func", None, (str, type(None)))
    if activation is not None and activation not in activation_classes():
        raise UnsupportedModel(
            f"{path.name} uses the activation function {activation!r}, which A1111 does not support either",
            path=str(path),
            reason="unsupported_activation",
        )
    dropout = read.numbers("dropout_structure", None)
    use_dropout = bool(dropout and any(dropout)) or read.value("use_dropout", False, (bool,))
    if dropout is None:
        last_layer_dropout = read.value("last_layer_dropout", False, (bool,))
        dropout = _parse_dropout_structure(structure, use_dropout, last_layer_dropout)
    # A1111 reads one rate per layer size and asserts every positive one is below 1.
    if len(dropout) < len(structure) or any(p >= 1 for p in dropout):
        raise read.error("dropout_structure", "it must give one rate below 1 per layer size")
    options = HypernetworkOptions(
        layer_structure=structure,
        activation_func=activation,
        add_layer_norm=read.value("is_layer_norm", False, (bool,)),
        activate_output=read.value("activate_output", _DEFAULT_ACTIVATE_OUTPUT, (bool,)),
        dropout_structure=dropout,
    )
    try:
        with torch.device("meta"):  # builds nothing real: checks the activation can be made without arguments
            HypernetworkModule(1, options)
    except (TypeError, ValueError) as exc:
        raise UnsupportedModel(
            f"{path.name} uses the activation function {activation!r}, which cannot be built ({exc})",
            path=str(path),
            reason="unsupported_activation",
        ) from exc
    return options


def _parse_dropout_structure(
    structure: tuple[float, ...], use_dropout: bool, last_layer_dropout: bool
) -> tuple[float, ...]:
    """A1111's ``parse_dropout_structure`` for files that only say ``use_dropout``."""
    if not use_dropout:
        return (0.0,) * len(structure)
    middle = (_OLD_DROPOUT_RATE,) * (len(structure) - 3)
    return (0.0, *middle, _OLD_DROPOUT_RATE if last_layer_dropout else 0.0, 0.0)


class _OptionReader:
    """Reads the JSON-text options of a converted hypernetwork; a wrong one is a ModelFileError naming it."""

    def __init__(self, path: Path, metadata: Mapping[str, str]) -> None:
        self.path = path
        self.metadata = metadata

    def error(self, option: str, problem: str) -> ModelFileError:
        shown = self.metadata.get(option, "")
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        return ModelFileError(
            f"{self.path.name} has an invalid hypernetwork option {option} = {shown}: {problem}",
            path=str(self.path),
            reason="bad_option",
            option=option,
        )

    def value(self, option: str, default: Any, types: tuple[type, ...]) -> Any:
        text = self.metadata.get(option)
        if text is None:
            return default
        try:
            value = json.loads(text)
        except ValueError:
            raise self.error(option, "it is not JSON") from None
        if value is None and type(None) not in types:
            return default  # A1111 saves None for options it did not set
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            names = " or ".join("null" if t is type(None) else t.__name__ for t in types)
            raise self.error(option, f"it should be {names}")
        return value

    def numbers(self, option: str, default: tuple[float, ...] | None) -> tuple[float, ...] | None:
        value = self.value(option, default, (list, tuple))
        if value is None:
            return None
        numbers = []
        for item in value:
            if isinstance(item, bool) or not isinstance(item, (int, float)) or not math.isfinite(item):
                raise self.error(option, "it should be a list of numbers")
            numbers.append(float(item))
        return tuple(numbers)


def _group_by_dim(path: Path, tensors: Mapping[str, torch.Tensor]) -> dict[int, dict[int, dict[str, torch.Tensor]]]:
    """``{"768.0.linear.0.weight": t}`` -> ``{768: {0: {"linear.0.weight": t}}}``, smallest size first."""
    grouped: dict[int, dict[int, dict[str, torch.Tensor]]] = {}
    for name, tensor in tensors.items():
        dim_text, _, rest = name.partition(".")
        index_text, _, parameter = rest.partition(".")
        is_size = dim_text.isascii() and dim_text.isdecimal() and int(dim_text) > 0
        if not is_size or index_text not in ("0", "1") or not parameter:
            raise ModelFileError(
                f"{path.name} has a tensor named {name[:80]!r}, which is not a hypernetwork layer "
                "(expected size.0|1.parameter)",
                path=str(path),
                reason="bad_tensor_name",
            )
        if not tensor.is_floating_point():
            raise ModelFileError(
                f"{path.name} has a non-float tensor {name[:80]!r}", path=str(path), reason="bad_dtype"
            )
        parameter = _OLD_PARAMETER_NAMES.get(parameter, parameter)
        grouped.setdefault(int(dim_text), {}).setdefault(int(index_text), {})[parameter] = tensor
    return dict(sorted(grouped.items()))


def _module(
    path: Path, dim: int, index: int, state: Mapping[str, torch.Tensor] | None, options: HypernetworkOptions
) -> HypernetworkModule:
    """Build the module on the meta device, check the file's tensors fit it exactly, then fill it."""
    which = "key" if index == KEY else "value"
    where = f"{path.name}: the {which} module for size {dim}"
    if state is None:
        raise ModelFileError(f"{where} is missing", path=str(path), reason="missing_module", dim=dim)
    with torch.device("meta"):
        module = HypernetworkModule(dim, options)
    expected = {name: tuple(t.shape) for name, t in module.state_dict().items()}
    found = {name: tuple(t.shape) for name, t in state.items()}
    if expected != found:
        raise ModelFileError(
            f"{where} does not fit its options (layer_structure {list(options.layer_structure)}, "
            f"activation {options.activation_func}, layer norm {options.add_layer_norm}): "
            f"{_difference(expected, found)}",
            path=str(path),
            reason="layer_mismatch",
            dim=dim,
        )
    # Copies in float32, as A1111 keeps its modules: nothing keeps the file mapped afterwards.
    module.load_state_dict({name: t.to(COMPUTE_DTYPE, copy=True) for name, t in state.items()}, assign=True)
    module.requires_grad_(False)
    return module.eval()


def _difference(expected: Mapping[str, tuple[int, ...]], found: Mapping[str, tuple[int, ...]]) -> str:
    missing = [name for name in expected if name not in found]
    if missing:
        return f"{missing[0]} is missing"
    unexpected = [name for name in found if name not in expected]
    if unexpected:
        return f"{unexpected[0][:80]} is unexpected"
    name = next(name for name in expected if expected[name] != found[name])
    return f"{name} has shape {list(found[name])}, expected {list(expected[name])}"


# --- applying -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class HypernetworkUse:
    """What applying one hypernetwork did; ``warning`` is set when some or all of it does nothing."""

    name: str
    path: Path
    strength: float
    used_dims: tuple[int, ...]  # its sizes that some attention layer of the model has
    unused_dims: tuple[int, ...]  # its sizes no attention layer has: those modules do nothing
    attention_layers: int  # how many attention modules it transforms (attn1 and attn2)
    model_dims: tuple[int, ...]  # the context widths of the model's attention layers

    @property
    def warning(self) -> str | None:
        if not self.unused_dims:
            return None
        unused = ", ".join(map(str, self.unused_dims))
        if not self.used_dims:
            return (
                f"{self.path.name} has no effect on this model: its layers are for attention inputs of size "
                f"{unused}, but this model's attention layers take {', '.join(map(str, self.model_dims))} "
                "(it was made for another Stable Diffusion version)"
            )
        return (
            f"{self.path.name} only partly fits this model: its layers for size {unused} match no "
            f"attention layer and do nothing (those for {', '.join(map(str, self.used_dims))} are applied); "
            "it was probably made for another Stable Diffusion version"
        )


class _ContextTransform:
    """Forward pre-hook of ``to_k`` or ``to_v``: the projection reads the hypernetworks' context instead."""

    def __init__(self, chain: Sequence[tuple[HypernetworkModule, float]]) -> None:
        self.chain = tuple(chain)

    def __call__(
        self, projection: torch.nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        if args:
            return (self.transform(args[0]), *args[1:]), kwargs
        return args, {**kwargs, "input": self.transform(kwargs["input"])}

    def transform(self, context: torch.Tensor) -> torch.Tensor:
        hidden = context.to(COMPUTE_DTYPE)
        for module, strength in self.chain:
            hidden = module(hidden, strength)
        return hidden.to(context.dtype)


class HypernetworkPatch:
    """Hypernetworks applied to a UNet's attention layers until :meth:`restore` (or the ``with`` block ends).

    Usage::

        with HypernetworkPatch.apply(unet, [(hypernetwork, 0.6)]) as patch:
            report(patch.warnings)
            sample(...)
    """

    def __init__(self, handles: Sequence[torch.utils.hooks.RemovableHandle], uses: Sequence[HypernetworkUse]) -> None:
        self._handles = list(handles)
        self.uses = tuple(uses)

    @classmethod
    def apply(cls, unet: torch.nn.Module, hypernetworks: Sequence[tuple[Hypernetwork, float]]) -> HypernetworkPatch:
        """Transform the context of ``to_k``/``to_v`` in every attention layer whose width a hypernetwork has.

        Hypernetworks chain in the given order, as A1111 chains them in prompt order. Each is
        moved to the UNet's device. Nothing is applied where no size matches; :attr:`warnings`
        say so, naming the file.
        """
        attentions = list(_attention_modules(unet))
        model_dims = tuple(dict.fromkeys(attention.to_k.in_features for _name, attention in attentions))
        device = next(unet.parameters()).device
        for hypernetwork, _strength in hypernetworks:
            hypernetwork.to(device)
        handles: list[torch.utils.hooks.RemovableHandle] = []
        try:
            for _name, attention in attentions:
                width = attention.to_k.in_features
                for index, projection in ((KEY, attention.to_k), (VALUE, attention.to_v)):
                    chain = [(hn.layers[width][index], float(s)) for hn, s in hypernetworks if width in hn.layers]
                    if chain:
                        hook = _ContextTransform(chain)
                        handles.append(projection.register_forward_pre_hook(hook, with_kwargs=True))
        except BaseException:
            for handle in handles:
                handle.remove()
            raise
        uses = [_use(hn, strength, attentions, model_dims) for hn, strength in hypernetworks]
        return cls(handles, uses)

    @property
    def warnings(self) -> tuple[str, ...]:
        return tuple(use.warning for use in self.uses if use.warning)

    @property
    def active(self) -> bool:
        return bool(self._handles)

    def restore(self) -> None:
        """Remove every hook: the UNet computes exactly what it did before. Safe to call twice."""
        while self._handles:
            self._handles.pop().remove()

    def __enter__(self) -> HypernetworkPatch:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.restore()


def _attention_modules(unet: torch.nn.Module) -> Iterator[tuple[str, Any]]:
    """Every attention layer of the UNet (A1111 patches every CrossAttention: attn1 and attn2)."""
    from diffusers.models.attention_processor import Attention

    for name, module in unet.named_modules():
        if isinstance(module, Attention):
            if getattr(module, "fused_projections", False):
                # Fused to_qkv/to_kv bypass to_k/to_v, so the hooks would silently do nothing.
                raise RuntimeError(f"attention {name} has fused projections: unfuse them before applying hypernetworks")
            yield name, module


def _use(
    hypernetwork: Hypernetwork, strength: float, attentions: Sequence[tuple[str, Any]], model_dims: tuple[int, ...]
) -> HypernetworkUse:
    used = tuple(dim for dim in hypernetwork.dims if dim in model_dims)
    return HypernetworkUse(
        name=hypernetwork.name,
        path=hypernetwork.path,
        strength=float(strength),
        used_dims=used,
        unused_dims=tuple(dim for dim in hypernetwork.dims if dim not in model_dims),
        attention_layers=sum(1 for _name, attention in attentions if attention.to_k.in_features in used),
        model_dims=model_dims,
    )
