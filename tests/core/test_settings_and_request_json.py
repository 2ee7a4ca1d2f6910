"""Settings declared once (types from defaults, choices enforced) and requests saved as JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from desktop.core import settings as keys
from desktop.core.errors import InvalidRequest
from desktop.core.requests import GenerationRequest
from desktop.core.settings import Setting


def test_stored_strings_come_back_typed_and_bad_values_give_the_default():
    assert keys.STEPS.coerce("30") == 30
    assert keys.CFG_SCALE.coerce("6.5") == 6.5
    assert keys.ATTENTION_SLICING.coerce("true") is True and keys.ATTENTION_SLICING.coerce("false") is False
    assert keys.STEPS.coerce("many") == keys.STEPS.default
    assert keys.DEVICE.coerce("tpu") == "auto"  # not one of the choices
    assert keys.MODEL_FOLDERS.coerce("/one") == ("/one",)  # ini files return a lone item as a string
    assert keys.MODEL_FOLDERS.coerce(["/a", "", "/b"]) == ("/a", "/b")


def test_every_setting_key_is_unique_and_its_default_is_a_valid_choice():
    declared = [value for value in vars(keys).values() if isinstance(value, Setting)]
    assert len({setting.key for setting in declared}) == len(declared)
    for setting in declared:
        assert not setting.choices or setting.default in setting.choices


def test_a_request_round_trips_through_json():
    request = GenerationRequest(
        prompt="猫 🐱 (cat:1.2)",
        negative_prompt="blurry",
        steps=31,
        cfg_scale=6.5,
        sampler="DPM++ 2M",
        schedule="Karras",
        seed=4294967295,
        width=768,
        height=512,
        clip_skip=2,
        model_path=Path("/Models/ａ model.safetensors"),
        vae_path=Path("/vae.safetensors"),
        variation_seed=3,
        variation_strength=0.25,
        resize_seed_from=(512, 512),
    )
    assert GenerationRequest.from_json(json.loads(json.dumps(request.to_json()))) == request


@pytest.mark.parametrize(
    "damage",
    [
        {"prompt": 5},
        {"steps": "20"},
        {"steps": True},
        {"width": 65},
        {"model_path": ["x"]},
        {"resize_seed_from": [512, "x"]},
    ],
)
def test_a_damaged_saved_request_is_refused_not_half_loaded(damage):
    data = GenerationRequest(prompt="a cat").to_json() | damage
    with pytest.raises(InvalidRequest):
        GenerationRequest.from_json(data)


def test_unknown_keys_from_a_newer_version_are_ignored():
    data = GenerationRequest(prompt="a cat").to_json() | {"hires_fix": True}
    assert GenerationRequest.from_json(data) == GenerationRequest(prompt="a cat")
