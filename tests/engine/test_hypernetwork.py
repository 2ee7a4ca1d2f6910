"""A1111 hypernetworks: files written as A1111's ``Hypernetwork.save`` writes them, loaded and applied to a UNet.

The reference side of these tests is written here from plain ``torch.nn`` layers, following
A1111 v1.10 ``modules/hypernetworks/hypernetwork.py`` (``HypernetworkModule.__init__``/``forward``,
``apply_hypernetworks``) and its attention forward (``context = default(context, x)``, then
``k = to_k(context_k)``, ``v = to_v(context_v)``), independently of the module under test.
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
import zipfile
from collections.abc import Sequence
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from desktop.core.errors import ModelFileError, UnsupportedModel
from desktop.engine.devices import plan_devices
from desktop.engine.loading import load_model
from desktop.engine.networks.hypernetwork import (
    HYPERNETWORK_FORMAT,
    HypernetworkPatch,
    cached_conversion_path,
    load_hypernetwork,
)
from desktop.library.pickle_reader import UnsafePickle

ACTIVATIONS = {"relu": torch.nn.ReLU, "tanh": torch.nn.Tanh, "swish": torch.nn.Hardswish}


class ReferenceModule(torch.nn.Module):
    """A1111's HypernetworkModule layout, built from torch.nn: ``x + linear(x) * multiplier``."""

    def __init__(
        self,
        dim: int,
        layer_structure: Sequence[float],
        activation: str | None,
        layer_norm: bool,
        activate_output: bool,
        dropout: Sequence[float],
        seed: int,
    ) -> None:
        super().__init__()
        layers: list[torch.nn.Module] = []
        for i in range(len(layer_structure) - 1):
            layers.append(torch.nn.Linear(int(dim * layer_structure[i]), int(dim * layer_structure[i + 1])))
            last = i >= len(layer_structure) - 2
            if activation not in (None, "linear") and not (last and not activate_output):
                layers.append(ACTIVATIONS[activation]())
            if layer_norm:
                layers.append(torch.nn.LayerNorm(int(dim * layer_structure[i + 1])))
            if dropout[i + 1] > 0:
                layers.append(torch.nn.Dropout(p=dropout[i + 1]))
        self.linear = torch.nn.Sequential(*layers)
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():  # big enough to change the image clearly; LayerNorm weights too
            for parameter in self.parameters():
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.3)
        self.eval()

    def forward(self, x: torch.Tensor, multiplier: float) -> torch.Tensor:
        return x + self.linear(x) * multiplier


def save_a1111_hypernetwork(
    path: Path,
    dims: Sequence[int],
    *,
    layer_structure: Sequence[float] = (1, 2, 1),
    activation: str | None = "relu",
    layer_norm: bool = False,
    activate_output: bool = False,
    dropout: Sequence[float] | None = None,
    seed: int = 0,
) -> dict[int, tuple[ReferenceModule, ReferenceModule]]:
    """Write ``path`` the way A1111's ``Hypernetwork.save`` does; return the reference module pairs."""
    dropout = tuple(dropout) if dropout is not None else (0.0,) * len(layer_structure)
    modules = {
        dim: tuple(
            ReferenceModule(dim, layer_structure, activation, layer_norm, activate_output, dropout, seed=seed + 2 * n + i)
            for i in (0, 1)
        )
        for n, dim in enumerate(dims)
    }
    # Integer keys -> (key module's state dict, value module's), then the options.
    state: dict[object, object] = {dim: (k.state_dict(), v.state_dict()) for dim, (k, v) in modules.items()}
    state.update(
        step=1200,
        name="anime-style",
        layer_structure=list(layer_structure),
        activation_func=activation,
        is_layer_norm=layer_norm,
        weight_initialization="Normal",
        sd_checkpoint="7460a6fa",
        sd_checkpoint_name="v1-5-pruned-emaonly",
        activate_output=activate_output,
        use_dropout=any(dropout),
        dropout_structure=list(dropout),
        last_layer_dropout=dropout[-2] != 0,
        optional_info=None,
    )
    torch.save(state, path)
    return modules  # type: ignore[return-value]


class A1111AttentionProcessor:
    """A1111's attention forward with hypernetworks, as a diffusers processor: the test's reference."""

    def __init__(self, hypernetworks: Sequence[tuple[dict[int, tuple[ReferenceModule, ...]], float]]) -> None:
        self.hypernetworks = hypernetworks

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, **kwargs):
        context = hidden_states if encoder_hidden_states is None else encoder_hidden_states  # default(context, x)
        context_k = context_v = context
        for layers, multiplier in self.hypernetworks:  # apply_hypernetworks: chained, chosen by shape[2]
            pair = layers.get(context_k.shape[2])
            if pair is not None:
                context_k, context_v = pair[0](context_k, multiplier), pair[1](context_v, multiplier)
        q, k, v = attn.to_q(hidden_states), attn.to_k(context_k), attn.to_v(context_v)
        batch, heads = q.shape[0], attn.heads
        q, k, v = (t.view(batch, -1, heads, t.shape[-1] // heads).transpose(1, 2) for t in (q, k, v))
        out = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(batch, -1, q.shape[1] * q.shape[3])
        return attn.to_out[1](attn.to_out[0](out))


@pytest.fixture(scope="module")
def sd1(tiny_sd1):
    return load_model(tiny_sd1, plan_devices("cpu", "fp32"))


def unet_output(unet, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    config = unet.config
    x = torch.randn(1, config.in_channels, 8, 8, generator=generator)
    context = torch.randn(1, 77, config.cross_attention_dim, generator=generator)
    kwargs = {}
    if config.addition_embed_type == "text_time":
        pooled = config.projection_class_embeddings_input_dim - 6 * config.addition_time_embed_dim
        text_embeds = torch.randn(1, pooled, generator=generator)
        kwargs["added_cond_kwargs"] = {"text_embeds": text_embeds, "time_ids": torch.ones(1, 6)}
    with torch.no_grad():
        return unet(x, torch.tensor([500.5]), encoder_hidden_states=context, **kwargs).sample


def attention_dims(unet) -> set[int]:
    return {module.to_k.in_features for name, module in unet.named_modules() if name.endswith(("attn1", "attn2"))}


def hooks_left(unet) -> int:
    return sum(len(module._forward_pre_hooks) for module in unet.modules())


# --- loading ------------------------------------------------------------------------------------


def test_a1111_pt_is_converted_once_and_its_modules_compute_what_a1111s_do(tmp_path):
    """Dropout and LayerNorm shift the Sequential's indices: the file's names must still land right."""
    source = tmp_path / "anime-style.pt"
    structure, dropout = (1, 2, 2, 1), (0, 0.3, 0.3, 0)
    reference = save_a1111_hypernetwork(
        source, (768, 320), layer_structure=structure, layer_norm=True, activate_output=False, dropout=dropout
    )
    cache = tmp_path / "cache"

    hypernetwork = load_hypernetwork(source, cache)

    assert (hypernetwork.name, hypernetwork.path, hypernetwork.dims) == ("anime-style", source, (320, 768))
    assert hypernetwork.options.layer_structure == structure
    assert hypernetwork.options.dropout_structure == dropout
    assert hypernetwork.metadata["format"] == HYPERNETWORK_FORMAT
    assert hypernetwork.metadata["sd_checkpoint_name"] == '"v1-5-pruned-emaonly"'
    for dim in (768, 320):
        x = torch.randn(2, 5, dim)
        for index in (0, 1):
            ours, theirs = hypernetwork.layers[dim][index], reference[dim][index]
            assert [type(m) for m in ours.linear] == [type(m) for m in theirs.linear]
            with torch.no_grad():
                torch.testing.assert_close(ours(x, 0.6), theirs(x, 0.6))
    # key and value modules are different modules (a swap would go unnoticed otherwise)
    key, value = hypernetwork.layers[768]
    assert not torch.equal(key.linear[0].weight, value.linear[0].weight)

    converted = cached_conversion_path(source, cache)
    assert list(cache.iterdir()) == [converted]
    modified = converted.stat().st_mtime_ns
    load_hypernetwork(source, cache)
    assert converted.stat().st_mtime_ns == modified  # the second load used the cached conversion

    save_a1111_hypernetwork(source, (768,), seed=5)  # the user replaces the file
    os.utime(source, ns=(modified + 10**9, modified + 10**9))
    replaced = load_hypernetwork(source, cache)
    assert replaced.dims == (768,)
    assert list(cache.iterdir()) == [cached_conversion_path(source, cache)]  # the stale conversion is gone


def test_original_novelai_layout_loads_with_a1111s_defaults(tmp_path):
    """linear1/linear2 names and no options: layer_structure [1, 2, 1], no activation (fix_old_state_dict)."""
    source = tmp_path / "old.pt"
    first, second = torch.nn.Linear(32, 64), torch.nn.Linear(64, 32)
    layers = {"linear1": first, "linear2": second}
    state = {f"{name}.{p}": getattr(layer, p).detach().clone() for name, layer in layers.items() for p in ("weight", "bias")}
    torch.save({32: [state, state]}, source)

    hypernetwork = load_hypernetwork(source)  # no cache folder: converted through a temporary one

    module = hypernetwork.layers[32][0]
    assert [type(m) for m in module.linear] == [torch.nn.Linear, torch.nn.Linear]
    x = torch.randn(3, 32)
    with torch.no_grad():
        torch.testing.assert_close(module(x, 0.5), x + second(first(x)) * 0.5)


def test_a_file_without_activate_output_activates_the_output_as_a1111_does(tmp_path):
    """Hypernetwork.load defaults activate_output to True (a new one defaults to False)."""
    path = tmp_path / "hn.safetensors"
    tensors = {f"32.{kv}.linear.{i}.{p}": torch.zeros(shape) for kv in (0, 1) for i, p, shape in (
        (0, "weight", (64, 32)), (0, "bias", (64,)), (2, "weight", (32, 64)), (2, "bias", (32,)))}
    save_file(tensors, path, metadata={"format": HYPERNETWORK_FORMAT, "activation_func": '"tanh"'})

    module = load_hypernetwork(path).layers[32][0]

    assert [type(m) for m in module.linear] == [torch.nn.Linear, torch.nn.Tanh, torch.nn.Linear, torch.nn.Tanh]


def test_item7_malicious_pt_is_refused_and_its_payload_never_runs(tmp_path):
    sentinel = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return os.system, (f"touch '{sentinel}'",)

    source = tmp_path / "evil.pt"
    torch.save({"name": Payload(), 768: [{"linear.0.weight": torch.ones(2)}, {}]}, source)
    # The file really is hostile: a plain unpickle runs the payload (in a throwaway process).
    with zipfile.ZipFile(source) as archive:
        data_pkl = archive.read(next(name for name in archive.namelist() if name.endswith("/data.pkl")))
    plain_load = "import pickle, sys; pickle.loads(sys.stdin.buffer.read())"
    subprocess.run([sys.executable, "-c", plain_load], input=data_pkl, capture_output=True)
    assert sentinel.exists()
    sentinel.unlink()
    cache = tmp_path / "cache"

    with pytest.raises(UnsafePickle) as refused:
        load_hypernetwork(source, cache)

    assert "evil.pt" in str(refused.value)
    assert not sentinel.exists()
    assert not cache.exists() or list(cache.iterdir()) == []


def test_item12_an_embedding_pt_is_not_a_hypernetwork_and_leaves_nothing_in_the_cache(tmp_path):
    source = tmp_path / "easynegative.pt"
    torch.save({"string_to_param": {"*": torch.randn(2, 768)}, "name": "easynegative"}, source)
    cache = tmp_path / "cache"

    with pytest.raises(UnsupportedModel, match="easynegative.pt is not an A1111 hypernetwork"):
        load_hypernetwork(source, cache)

    assert list(cache.iterdir()) == []


def test_item12_a_lora_safetensors_is_not_a_hypernetwork(tmp_path):
    path = tmp_path / "lora.safetensors"
    tensors = {"lora_unet_x.lora_down.weight": torch.zeros(4, 8)}
    save_file(tensors, path, metadata={"ss_network_module": "networks.lora"})

    with pytest.raises(UnsupportedModel, match="lora.safetensors is not an A1111 hypernetwork"):
        load_hypernetwork(path)


def test_tensors_that_do_not_fit_the_options_are_a_model_file_error(tmp_path):
    path = tmp_path / "broken.safetensors"
    tensors = {f"32.{kv}.linear.{i}.{p}": torch.zeros(shape) for kv in (0, 1) for i, p, shape in (
        (0, "weight", (96, 32)), (0, "bias", (96,)), (1, "weight", (32, 96)), (1, "bias", (32,)))}
    save_file(tensors, path, metadata={"format": HYPERNETWORK_FORMAT, "layer_structure": "[1, 2, 1]"})

    with pytest.raises(ModelFileError, match="broken.safetensors: the key module for size 32 does not fit") as error:
        load_hypernetwork(path)
    assert "linear.0.weight has shape [96, 32], expected [64, 32]" in str(error.value)


@pytest.mark.parametrize(
    ("metadata", "error", "message"),
    [
        ({"activation_func": '"threshold"'}, UnsupportedModel, "cannot be built"),  # needs arguments
        ({"activation_func": '"gelu2"'}, UnsupportedModel, "A1111 does not support either"),
        ({"layer_structure": "[2, 1]"}, ModelFileError, "must start and end with 1"),
        ({"layer_structure": "[1, 2, 1"}, ModelFileError, "not JSON"),
        ({"is_layer_norm": '"yes"'}, ModelFileError, "should be bool"),
        ({"dropout_structure": "[0, 1.5, 0]"}, ModelFileError, "below 1"),
    ],
)
def test_bad_options_are_refused_naming_the_file_and_option(tmp_path, metadata, error, message):
    path = tmp_path / "odd.safetensors"
    tensors = {"32.0.linear.0.weight": torch.zeros(64, 32)}
    save_file(tensors, path, metadata={"format": HYPERNETWORK_FORMAT, **metadata})

    with pytest.raises(error, match=message) as raised:
        load_hypernetwork(path)
    assert "odd.safetensors" in str(raised.value)


def test_a_missing_value_module_is_a_model_file_error(tmp_path):
    path = tmp_path / "half.safetensors"
    save_file({"32.0.linear.0.weight": torch.zeros(32, 32), "32.0.linear.0.bias": torch.zeros(32)}, path,
              metadata={"format": HYPERNETWORK_FORMAT, "layer_structure": "[1, 1]"})

    with pytest.raises(ModelFileError, match="half.safetensors: the value module for size 32 is missing"):
        load_hypernetwork(path)


# --- applying -----------------------------------------------------------------------------------


def test_applying_changes_the_output_strength_zero_is_the_base_and_restore_is_exact(sd1, tmp_path):
    unet = sd1.unet
    assert attention_dims(unet) == {32, 64}  # tiny SD1: context 32; self-attention 32 and 64
    source = tmp_path / "hn.pt"
    save_a1111_hypernetwork(source, (32, 64), layer_norm=True)
    hypernetwork = load_hypernetwork(source, tmp_path / "cache")
    processors = dict(unet.attn_processors)
    base = unet_output(unet)

    with HypernetworkPatch.apply(unet, [(hypernetwork, 1.0)]) as patch:
        changed = unet_output(unet)
        assert patch.warnings == ()
        (use,) = patch.uses
        assert (use.used_dims, use.unused_dims, use.attention_layers) == ((32, 64), (), 14)  # 7 attn1 + 7 attn2
    restored = unet_output(unet)
    with HypernetworkPatch.apply(unet, [(hypernetwork, 0.0)]):
        at_zero = unet_output(unet)

    assert (changed - base).abs().max() > 1e-3
    assert torch.equal(at_zero, base)
    assert torch.equal(restored, unet_output(unet))
    assert torch.equal(restored, base)
    assert hooks_left(unet) == 0
    assert all(unet.attn_processors[name] is processor for name, processor in processors.items())


def test_patched_unet_equals_a1111s_attention_with_two_chained_hypernetworks(sd1, tmp_path):
    """Self-attention is transformed too where its width has layers, as A1111's attention forward does."""
    first = save_a1111_hypernetwork(tmp_path / "a.pt", (32, 64), activation="swish", seed=1)
    second = save_a1111_hypernetwork(tmp_path / "b.pt", (32,), activation="tanh", layer_norm=True, seed=7)
    cache = tmp_path / "cache"
    ours = [(load_hypernetwork(tmp_path / "a.pt", cache), 0.7), (load_hypernetwork(tmp_path / "b.pt", cache), -0.4)]
    reference = A1111AttentionProcessor([(first, 0.7), (second, -0.4)])
    reference_unet = copy.deepcopy(sd1.unet)
    reference_unet.set_attn_processor(reference)
    only_cross = copy.deepcopy(sd1.unet)  # what the result would be if self-attention were left alone
    processors = only_cross.attn_processors
    only_cross.set_attn_processor({name: reference if "attn2" in name else p for name, p in processors.items()})

    with HypernetworkPatch.apply(sd1.unet, ours):
        patched = unet_output(sd1.unet, seed=3)
    expected = unet_output(reference_unet, seed=3)

    torch.testing.assert_close(patched, expected)
    assert (patched - unet_output(only_cross, seed=3)).abs().max() > 1e-4
    assert (patched - unet_output(sd1.unet, seed=3)).abs().max() > 1e-3


def test_attention_module_sees_transformed_key_and_value_context(sd1, tmp_path):
    """One cross-attention by hand: k = to_k(hn.k(context)), v = to_v(hn.v(context)), q from x untouched."""
    reference = save_a1111_hypernetwork(tmp_path / "hn.pt", (32,), seed=4)
    hypernetwork = load_hypernetwork(tmp_path / "hn.pt")
    attn = sd1.unet.down_blocks[1].attentions[0].transformer_blocks[0].attn2  # query 64, context 32
    x, context = torch.randn(1, 16, 64), torch.randn(1, 77, 32)
    seen: dict[str, torch.Tensor] = {}
    for name in ("to_q", "to_k", "to_v"):
        getattr(attn, name).register_forward_hook(lambda m, args, out, name=name: seen.__setitem__(name, args[0]))

    try:
        with torch.no_grad(), HypernetworkPatch.apply(sd1.unet, [(hypernetwork, 0.6)]):
            attn(x, encoder_hidden_states=context)
            torch.testing.assert_close(seen["to_k"], reference[32][0](context, 0.6))
            torch.testing.assert_close(seen["to_v"], reference[32][1](context, 0.6))
            assert torch.equal(seen["to_q"], x)
    finally:
        for name in ("to_q", "to_k", "to_v"):
            getattr(attn, name)._forward_hooks.clear()


def test_fp16_context_comes_back_as_fp16(tmp_path, sd1):
    save_a1111_hypernetwork(tmp_path / "hn.pt", (32,))
    hypernetwork = load_hypernetwork(tmp_path / "hn.pt")
    unet = copy.deepcopy(sd1.unet).half()
    attn = unet.down_blocks[0].attentions[0].transformer_blocks[0].attn2
    seen = []
    attn.to_k.register_forward_hook(lambda m, args, out: seen.append(args[0].dtype))

    with HypernetworkPatch.apply(unet, [(hypernetwork, 1.0)]):
        attn.to_k(torch.randn(1, 4, 32, dtype=torch.float16))

    assert seen == [torch.float16]
    assert hypernetwork.layers[32][0].linear[0].weight.dtype == torch.float32


def test_item12_sd1_hypernetwork_on_sdxl_warns_naming_the_file_and_changes_nothing(tiny_sdxl, tmp_path):
    sdxl = load_model(tiny_sdxl, plan_devices("cpu", "fp32"))
    assert attention_dims(sdxl.unet) == {128, 96}  # tiny SDXL: self-attention 128, context 96
    save_a1111_hypernetwork(tmp_path / "sd15-style.pt", (32,))
    hypernetwork = load_hypernetwork(tmp_path / "sd15-style.pt")
    base = unet_output(sdxl.unet)

    with HypernetworkPatch.apply(sdxl.unet, [(hypernetwork, 1.0)]) as patch:
        output = unet_output(sdxl.unet)

    assert torch.equal(output, base)
    (warning,) = patch.warnings
    assert warning.startswith("sd15-style.pt has no effect on this model")
    assert "size 32" in warning
    assert patch.uses[0].attention_layers == 0


def test_item12_partly_matching_hypernetwork_applies_what_fits_and_warns(sd1, tmp_path):
    save_a1111_hypernetwork(tmp_path / "sd2-style.pt", (1024, 64))  # SD2 context 1024; 64 fits self-attention
    hypernetwork = load_hypernetwork(tmp_path / "sd2-style.pt")
    base = unet_output(sd1.unet)

    with HypernetworkPatch.apply(sd1.unet, [(hypernetwork, 1.0)]) as patch:
        output = unet_output(sd1.unet)

    assert (output - base).abs().max() > 1e-4
    (use,) = patch.uses
    assert (use.used_dims, use.unused_dims, use.attention_layers) == ((64,), (1024,), 4)
    assert patch.warnings == (use.warning,)
    assert "sd2-style.pt only partly fits this model" in use.warning and "size 1024" in use.warning


def test_restore_is_idempotent_and_an_empty_patch_changes_nothing(sd1):
    base = unet_output(sd1.unet)
    patch = HypernetworkPatch.apply(sd1.unet, [])
    assert not patch.active and patch.uses == () and patch.warnings == ()
    patch.restore()
    patch.restore()
    assert torch.equal(unet_output(sd1.unet), base)
