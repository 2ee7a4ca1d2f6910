"""Loading single-file checkpoints (original LDM/SGM layout) and diffusers folders, offline."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
import torch

from desktop.core.errors import ModelFileError, UnsupportedModel
from desktop.engine import architecture
from desktop.engine.devices import plan_devices
from desktop.engine.loading import load_model
from desktop.library.taxonomy import ModelFamily, PredictionType
from tests.fixtures import ldm_layout


def _load(path: Path, **kwargs):
    return load_model(path, plan_devices("cpu", "fp32"), **kwargs)


def _unet_output(model, seed: int = 0) -> torch.Tensor:
    """The UNet's output on a fixed input: equal outputs mean equal weights and architecture."""
    generator = torch.Generator().manual_seed(seed)
    config = model.unet.config
    x = torch.randn(1, config.in_channels, 8, 8, generator=generator)
    context = torch.randn(1, 77, config.cross_attention_dim, generator=generator)
    kwargs = {}
    if config.addition_embed_type == "text_time":
        pooled = config.projection_class_embeddings_input_dim - 6 * config.addition_time_embed_dim
        kwargs["added_cond_kwargs"] = {"text_embeds": torch.randn(1, pooled, generator=generator), "time_ids": torch.ones(1, 6)}
    with torch.no_grad():
        return model.unet(x, torch.tensor([500.5]), encoder_hidden_states=context, **kwargs).sample


@pytest.mark.parametrize("family", ["sd1", "sd2", "sdxl"])
def test_tiny_checkpoint_loads_with_every_tensor_used(checkpoints, family):
    model = _load(checkpoints[family])
    assert model.family is ModelFamily(family)
    assert model.unused_keys == []
    assert len(model.text_encoders) == (2 if family == "sdxl" else 1)
    assert all(p.dtype == torch.float32 for p in model.unet.parameters())  # fp16 file, fp32 plan
    assert model.load_seconds > 0
    # the file's values arrived: a conv weight equals the file's tensor
    from safetensors import safe_open

    with safe_open(str(checkpoints[family]), "pt") as handle:
        conv_in = handle.get_tensor("model.diffusion_model.input_blocks.0.0.weight")
    assert torch.equal(model.unet.conv_in.weight, conv_in.float())


def test_sd1_text_encoder_weights_land_in_the_right_places(tiny_sd1):
    from safetensors import safe_open

    model = _load(tiny_sd1)
    encoder = model.text_encoders[0]
    with safe_open(str(tiny_sd1), "pt") as handle:
        q = handle.get_tensor("cond_stage_model.transformer.text_model.encoder.layers.1.self_attn.q_proj.weight")
        norm = handle.get_tensor("cond_stage_model.transformer.text_model.final_layer_norm.bias")
    assert torch.equal(encoder.encoder.layers[1].self_attn.q_proj.weight, q.float())
    assert torch.equal(encoder.final_layer_norm.bias, norm.float())


def test_sdxl_open_clip_in_proj_is_split_into_q_k_v(tiny_sdxl):
    from safetensors import safe_open

    model = _load(tiny_sdxl)
    big_g = model.text_encoders[1]
    with safe_open(str(tiny_sdxl), "pt") as handle:
        in_proj = handle.get_tensor("conditioner.embedders.1.model.transformer.resblocks.0.attn.in_proj_weight").float()
        projection = handle.get_tensor("conditioner.embedders.1.model.text_projection").float()
    width = in_proj.shape[1]
    attention = big_g.text_model.encoder.layers[0].self_attn
    assert torch.equal(attention.q_proj.weight, in_proj[:width])
    assert torch.equal(attention.k_proj.weight, in_proj[width : 2 * width])
    assert torch.equal(attention.v_proj.weight, in_proj[2 * width :])
    assert torch.equal(big_g.text_projection.weight, projection.T)  # OpenCLIP stores it transposed


def test_sd2_keeps_penultimate_layer_only_and_detects_prediction(checkpoints):
    model = _load(checkpoints["sd2"])
    layers = ldm_layout.TINY["sd2"]["open_clip"]["layers"]
    assert model.text_encoders[0].config.num_hidden_layers == layers - 1
    assert model.prediction in (PredictionType.EPSILON, PredictionType.V_PREDICTION)


def test_sd2_prediction_from_metadata_skips_the_test_run(tmp_path):
    path = tmp_path / "sd2v.safetensors"
    ldm_layout.write_checkpoint(
        path, ldm_layout.sd2_checkpoint_shapes(tiny=True), metadata={"modelspec.prediction_type": "v"}
    )
    assert _load(path).prediction is PredictionType.V_PREDICTION


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
def test_any_stored_precision_loads(tmp_path, dtype):
    path = tmp_path / f"sd1-{dtype}.safetensors"
    ldm_layout.write_checkpoint(path, ldm_layout.sd1_checkpoint_shapes(tiny=True), dtype=dtype)
    model = _load(path)
    assert next(model.unet.parameters()).dtype == torch.float32


def test_ema_copy_is_ignored_and_the_live_weights_are_used(tmp_path):
    path = tmp_path / "sd1-ema.safetensors"
    ldm_layout.write_checkpoint(path, ldm_layout.sd1_checkpoint_shapes(tiny=True, with_ema=True), seed=3)
    model = _load(path)
    assert model.unused_keys == []
    from safetensors import safe_open

    with safe_open(str(path), "pt") as handle:
        live = handle.get_tensor("model.diffusion_model.out.2.weight")
    assert torch.equal(model.unet.conv_out.weight, live.float())


def test_checkpoint_without_vae_needs_a_vae_file(tmp_path):
    bare = tmp_path / "no-vae.safetensors"
    ldm_layout.write_checkpoint(bare, ldm_layout.sd1_checkpoint_shapes(tiny=True, with_vae=False))
    with pytest.raises(UnsupportedModel, match="no VAE"):
        _load(bare)

    vae_file = tmp_path / "tiny-vae.safetensors"
    vae_shapes = ldm_layout.vae_shapes(**ldm_layout.TINY["sd1"]["vae"], prefix="")
    ldm_layout.write_checkpoint(vae_file, vae_shapes, seed=7)
    model = _load(bare, vae_path=vae_file)
    assert model.vae_source == vae_file
    from safetensors import safe_open

    with safe_open(str(vae_file), "pt") as handle:
        post_quant = handle.get_tensor("post_quant_conv.weight")
    assert torch.equal(model.vae.post_quant_conv.weight, post_quant.float())


def test_vae_override_replaces_the_baked_in_vae(tiny_sd1, tmp_path):
    vae_file = tmp_path / "other-vae.safetensors"
    ldm_layout.write_checkpoint(vae_file, ldm_layout.vae_shapes(**ldm_layout.TINY["sd1"]["vae"], prefix="first_stage_model."), seed=11)
    baked = _load(tiny_sd1)
    swapped = _load(tiny_sd1, vae_path=vae_file)
    assert not torch.equal(baked.vae.decoder.conv_out.weight, swapped.vae.decoder.conv_out.weight)


def test_lora_given_as_vae_is_refused(tiny_sd1, tmp_path):
    lora = tmp_path / "lora.safetensors"
    from safetensors.torch import save_file

    save_file(
        {
            "lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight": torch.zeros(4, 32),
            "lora_unet_down_blocks_0_attentions_0_proj_in.lora_up.weight": torch.zeros(32, 4),
            "lora_unet_down_blocks_0_attentions_0_proj_in.alpha": torch.tensor(4.0),
        },
        str(lora),
    )
    with pytest.raises(UnsupportedModel, match="not a VAE"):
        _load(tiny_sd1, vae_path=lora)


def test_inconsistent_shapes_are_a_clear_error(tmp_path):
    shapes = ldm_layout.sd1_checkpoint_shapes(tiny=True)
    key = "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn1.to_q.weight"
    shapes[key] = (shapes[key][0], shapes[key][1] + 1)
    path = tmp_path / "broken.safetensors"
    ldm_layout.write_checkpoint(path, shapes)
    with pytest.raises(ModelFileError, match="UNet"):
        _load(path)


def test_diffusers_folder_gives_the_same_model_as_the_single_file(tiny_sd1, tmp_path):
    single = _load(tiny_sd1)
    folder = tmp_path / "tiny-sd1-diffusers"
    single.unet.save_pretrained(folder / "unet")
    single.vae.save_pretrained(folder / "vae")
    single.text_encoders[0].save_pretrained(folder / "text_encoder")
    (folder / "scheduler").mkdir()
    (folder / "scheduler" / "scheduler_config.json").write_text(
        json.dumps(architecture.bundled_config(ModelFamily.SD1, "scheduler"))
    )
    (folder / "model_index.json").write_text(
        json.dumps(
            {
                "_class_name": "StableDiffusionPipeline",
                "unet": ["diffusers", "UNet2DConditionModel"],
                "vae": ["diffusers", "AutoencoderKL"],
                "text_encoder": ["transformers", "CLIPTextModel"],
                "tokenizer": ["transformers", "CLIPTokenizer"],
                "scheduler": ["diffusers", "EulerDiscreteScheduler"],
            }
        )
    )
    from_folder = _load(folder)
    assert from_folder.family is ModelFamily.SD1
    assert torch.equal(_unet_output(single), _unet_output(from_folder))
    ids = torch.tensor([[49406, 320, 2368, 49407] + [49407] * 73])
    with torch.no_grad():
        a = single.text_encoders[0](input_ids=ids).last_hidden_state
        b = from_folder.text_encoders[0](input_ids=ids).last_hidden_state
    assert torch.equal(a, b)


def test_loading_works_with_the_network_blocked(tiny_sd1, monkeypatch):
    """BAD_INPUTS 26: bundled configs and tokenizer are used; nothing is fetched."""

    def refuse(*args, **kwargs):
        raise OSError("network access attempted during model loading")

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    model = _load(tiny_sd1)
    assert model.tokenizers[0]("a photo of a cat").input_ids == [49406, 320, 1125, 539, 320, 2368, 49407]


def test_bundled_tokenizer_matches_openai_bpe_for_both_sdxl_encoders(tiny_sdxl):
    model = _load(tiny_sdxl)
    clip_l, big_g = model.tokenizers
    text = "A Photo, of a CAT!! 猫 ((masterpiece:1.2)) café  don't <lora:x:1>"
    # reference ids from OpenAI/open_clip's own BPE tokenizer on the same text
    expected = [49406, 320, 1125, 267, 539, 320, 2368, 748, 163, 234, 360, 13796, 12066, 281, 272, 269, 273, 5167,
                15304, 847, 713, 283, 2179, 320, 281, 343, 281, 272, 285, 49407]
    assert clip_l(text).input_ids == expected
    assert big_g(text).input_ids == expected


class _FakeUNet(torch.nn.Module):
    """Answers like an epsilon model (noise-like output) or a v model (about -x at t=999)."""

    def __init__(self, v_model: bool) -> None:
        super().__init__()
        self.scale = torch.nn.Parameter(torch.tensor(1.0))
        self.v_model = v_model
        self.config = type("Config", (), {"in_channels": 4})()

    def forward(self, x, t, encoder_hidden_states):
        assert t.tolist() == [999] and encoder_hidden_states.shape == (1, 2, 1024)
        sample = -3.0 * x * self.scale if self.v_model else torch.zeros_like(x) * self.scale
        return type("Out", (), {"sample": sample})()


@pytest.mark.parametrize(("v_model", "expected"), [(True, PredictionType.V_PREDICTION), (False, PredictionType.EPSILON)])
def test_sd2_prediction_type_is_detected_like_a1111(v_model, expected):
    from desktop.engine.loading import detect_v_prediction

    assert detect_v_prediction(_FakeUNet(v_model), 1024) is expected
