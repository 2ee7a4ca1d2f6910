"""Full-size SD1.5, SD2 and SDXL checkpoints in the original key layout load completely.

The files are sparse (zeros) except that the first element of every tensor holds a unique tag,
so after loading each diffusers parameter tells which source tensor it came from: every source
tensor must arrive exactly once, except the ones inference does not use by design.
"""

from __future__ import annotations

import pytest
import torch

from desktop.engine import architecture
from desktop.engine.devices import DevicePlan
from desktop.engine.loading import load_model
from desktop.library.taxonomy import ModelFamily
from tests.fixtures import ldm_layout

pytestmark = pytest.mark.slow

FP16_CPU = DevicePlan(torch.device("cpu"), torch.float16, torch.float16)  # no conversion: zero-copy views
LAYOUTS = {
    "sd1": lambda: ldm_layout.sd1_checkpoint_shapes(with_ema=True),
    "sd2": lambda: ldm_layout.sd2_checkpoint_shapes(),
    "sdxl": lambda: ldm_layout.sdxl_checkpoint_shapes(),
}


@pytest.fixture(scope="module", params=list(LAYOUTS))
def full_size(request, tmp_path_factory):
    family = request.param
    path = tmp_path_factory.mktemp("full") / f"full_{family}.safetensors"
    tags = ldm_layout.write_checkpoint(path, LAYOUTS[family](), dtype=torch.float16, fill="tagged")
    model = load_model(path, FP16_CPU)
    yield family, tags, model
    del model


def _not_used_by_design(family: str, key: str) -> bool:
    if key.startswith("model_ema."):
        return True  # A1111 samples with the live weights unless told otherwise
    if family == "sd2" and (".resblocks.23." in key or key.endswith("text_projection")):
        return True  # SD2 conditions on the penultimate layer's hidden states
    return key.endswith(("logit_scale", "position_ids"))


def test_every_tensor_lands_once_and_none_is_left_over(full_size):
    family, tags, model = full_size
    expected = {value: key for key, value in tags.items() if not _not_used_by_design(family, key)}
    modules = {"unet": model.unet, "vae": model.vae}
    modules.update({f"text_encoder_{i}": encoder for i, encoder in enumerate(model.text_encoders)})
    seen: dict[float, str] = {}
    for module_name, module in modules.items():
        for name, tensor in module.state_dict().items():
            if not tensor.is_floating_point() or tensor.numel() == 0:
                continue
            value = float(tensor.reshape(-1)[0])
            if value == 0.0:
                continue  # k and v of a split OpenCLIP in_proj: the tag sits in q
            assert value in expected, f"{module_name}.{name} holds {value}, which is no source tensor's tag"
            assert value not in seen, f"{expected[value]} was loaded twice ({seen[value]} and {module_name}.{name})"
            seen[value] = f"{module_name}.{name}"
    missing = sorted(expected[v] for v in set(expected) - set(seen))
    assert missing == [], f"{len(missing)} source tensors were not loaded, e.g. {missing[:5]}"
    assert model.unused_keys == []


def test_configs_read_from_shapes_equal_the_bundled_ones(full_size):
    family, _, model = full_size
    bundled = architecture.bundled_config(ModelFamily(family), "unet")
    for key in ("block_out_channels", "layers_per_block", "cross_attention_dim", "use_linear_projection",
                "down_block_types", "up_block_types", "in_channels", "attention_head_dim"):
        actual = model.unet.config[key]
        assert list(actual) if isinstance(actual, (list, tuple)) else actual == (
            list(bundled[key]) if isinstance(bundled[key], list) else bundled[key]
        ), key
    if family == "sdxl":
        assert list(model.unet.config.transformer_layers_per_block) == [1, 2, 10]
        assert model.unet.config.projection_class_embeddings_input_dim == 2816
    expected_params = {"sd1": 859_520_964, "sd2": 865_910_724, "sdxl": 2_567_463_684}[family]
    assert sum(p.numel() for p in model.unet.parameters()) == expected_params
    assert sum(p.numel() for p in model.vae.parameters()) == 83_653_863
    widths = [encoder.config.hidden_size for encoder in model.text_encoders]
    assert widths == {"sd1": [768], "sd2": [1024], "sdxl": [768, 1280]}[family]


def test_weights_stay_memory_mapped_when_no_conversion_is_needed(full_size):
    """fp16 file, fp16 plan: parameters are views of the file mapping, not copies (RAM stays free)."""
    from desktop.library.safetensors_file import read_safetensors_header

    _, _, model = full_size
    tensors = read_safetensors_header(model.path).tensors
    conv_in = tensors["model.diffusion_model.input_blocks.0.0.weight"]
    conv_out = tensors["model.diffusion_model.out.2.weight"]
    # Both parameters sit in memory exactly as far apart as their bytes sit in the file.
    distance = model.unet.conv_out.weight.data_ptr() - model.unet.conv_in.weight.data_ptr()
    assert distance == conv_out.begin - conv_in.begin
