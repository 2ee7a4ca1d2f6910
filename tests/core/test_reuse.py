"""Reusing an image's infotext values on the current request."""

from __future__ import annotations

import pytest

from desktop.core.infotext import parse_infotext
from desktop.core.requests import GenerationRequest
from desktop.core.reuse import reuse_parameters

BASE = GenerationRequest(prompt="old", steps=20, sampler="Euler a", cfg_scale=7.0, seed=-1, width=512, height=512)


def test_a_civitai_infotext_sets_every_field():
    text = (
        "masterpiece, 1girl, <lora:add_detail:0.6>\nNegative prompt: easynegative, (worst quality:1.4)\n"
        "Steps: 28, Sampler: DPM++ 2M SDE, Schedule type: Exponential, CFG scale: 5.5, Seed: 3954401247, "
        "Size: 512x768, Model hash: 879db523c3, Model: dreamshaper_8, VAE: vae-ft-mse-840000, Clip skip: 2, "
        "Variation seed: 7, Variation seed strength: 0.3, Seed resize from: 512x512, Version: v1.10.1"
    )
    reused = reuse_parameters(*parse_infotext(text), BASE)
    request = reused.request
    assert request.prompt == "masterpiece, 1girl, <lora:add_detail:0.6>"
    assert request.negative_prompt == "easynegative, (worst quality:1.4)"
    assert (request.steps, request.sampler, request.schedule, request.cfg_scale) == (28, "DPM++ 2M SDE", "Exponential", 5.5)
    assert (request.seed, request.width, request.height, request.clip_skip) == (3954401247, 512, 768, 2)
    assert (request.variation_seed, request.variation_strength, request.resize_seed_from) == (7, 0.3, (512, 512))
    assert (reused.model_name, reused.model_hash, reused.vae_name) == ("dreamshaper_8", "879db523c3", "vae-ft-mse-840000")
    assert reused.warnings == ()
    request.validate()


@pytest.mark.parametrize(
    ("sampler", "expected"),
    [("DPM++ 2M Karras", ("DPM++ 2M", "Karras")), ("Euler a", ("Euler a", "Automatic")), ("euler  A", ("Euler a", "Automatic")),
     ("DPM++ SDE Karras", ("DPM++ SDE", "Karras")), ("Euler SGM Uniform", ("Euler", "SGM Uniform"))],
)
def test_old_combined_sampler_names(sampler: str, expected: tuple[str, str]):
    request = reuse_parameters("p", "", {"Sampler": sampler}, BASE).request
    assert (request.sampler, request.schedule) == expected


def test_unusable_values_keep_the_current_ones_and_are_named():
    reused = reuse_parameters(
        "p", "", {"Steps": "many", "Sampler": "euler_ancestral_cfg_pp", "Size": "513x512", "Seed": "-5", "Schedule type": "Wobbly"}, BASE
    )
    request = reused.request
    assert (request.steps, request.sampler, request.width, request.seed, request.schedule) == (20, "Euler a", 512, -1, "Automatic")
    assert len(reused.warnings) == 5
    request.validate()
