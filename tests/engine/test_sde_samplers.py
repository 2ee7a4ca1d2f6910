"""DPM++ SDE, DPM++ 2M SDE (Heun), DPM++ 3M SDE, DPM fast, DPM adaptive and Restart end to end:
A1111's table entries, and tiny-model runs through txt2img (reproducible, seed-dependent, and a
batch equal to single runs with seeds s and s + 1 - what the per-seed Brownian trees guarantee)."""

from __future__ import annotations

import pytest
import torch

from desktop.core.requests import GenerationRequest
from desktop.engine.devices import plan_devices
from desktop.engine.loading import load_model
from desktop.engine.samplers import find_sampler, sampler_names
from desktop.engine.txt2img import Txt2ImgPipeline

pytestmark = pytest.mark.filterwarnings("ignore:Should have:UserWarning")  # torchsde's end-of-interval round-off

SDE_SAMPLERS = ["DPM++ SDE", "DPM++ 2M SDE", "DPM++ 2M SDE Heun", "DPM++ 3M SDE"]
NEW_SAMPLERS = [*SDE_SAMPLERS, "DPM fast", "DPM adaptive", "Restart"]


def test_table_follows_a1111():
    """A1111 1.10 samplers_k_diffusion: alias, default schedule, second order, discard, Brownian noise."""
    table = {}
    for name in NEW_SAMPLERS:
        spec = find_sampler(name)[0]
        table[name] = (spec.aliases, spec.default_schedule, spec.second_order, spec.discard_next_to_last_sigma, spec.brownian_noise)
    assert table == {
        "DPM++ SDE": (("k_dpmpp_sde",), "Karras", True, False, True),
        "DPM++ 2M SDE": (("k_dpmpp_2m_sde",), "Exponential", False, False, True),
        "DPM++ 2M SDE Heun": (("k_dpmpp_2m_sde_heun",), "Exponential", False, False, True),
        "DPM++ 3M SDE": (("k_dpmpp_3m_sde",), "Exponential", False, True, True),
        "DPM fast": (("k_dpm_fast",), None, False, False, False),
        "DPM adaptive": (("k_dpm_ad",), None, False, False, False),
        "Restart": (("restart",), "Karras", True, False, False),
    }
    assert sampler_names()[:15] == [
        "Euler a", "Euler", "LMS", "Heun", "DPM2", "DPM2 a", "DPM++ 2S a", "DPM++ 2M",
        "DPM++ SDE", "DPM++ 2M SDE", "DPM++ 2M SDE Heun", "DPM++ 3M SDE", "DPM fast", "DPM adaptive", "Restart",
    ]  # fmt: skip
    assert find_sampler("DPM++ 2M SDE Karras") == (find_sampler("DPM++ 2M SDE")[0], "Karras")  # pre-1.9 metadata


class RecordingPipeline(Txt2ImgPipeline):
    """Keeps the sampled latents, so runs can be compared before the VAE and uint8 rounding."""

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        self.latents = latents.clone()
        return super().decode(latents)


@pytest.fixture(scope="module")
def pipeline(tiny_sd1):
    return RecordingPipeline(load_model(tiny_sd1, plan_devices("cpu", "fp32")))


def _latents(pipeline, sampler: str, seed: int, batch_size: int = 1, steps: int = 3, schedule: str = "Automatic", progress=None):
    request = GenerationRequest(
        prompt="a cat", steps=steps, width=16, height=16, seed=seed, sampler=sampler, schedule=schedule, batch_size=batch_size
    )
    result = pipeline(request, on_step=progress)
    assert result.sampler_name == sampler and not result.cancelled
    assert torch.isfinite(pipeline.latents).all()
    return pipeline.latents


@pytest.mark.parametrize("sampler", [s for s in NEW_SAMPLERS if s != "DPM adaptive"])
def test_reproducible_seeded_and_batch_equals_single_runs(pipeline, sampler):
    single = _latents(pipeline, sampler, 40)
    assert torch.equal(_latents(pipeline, sampler, 40), single)  # bit for bit
    following = _latents(pipeline, sampler, 41)
    assert not torch.allclose(following, single, atol=1e-3)
    batch = _latents(pipeline, sampler, 40, batch_size=2)
    # Image i of a batch uses seed + i: its own generator and, for SDE samplers, its own Brownian tree.
    # (The UNet's batched arithmetic differs in the last digits; other noise would differ by whole units.)
    assert torch.allclose(batch[0], single[0], rtol=1e-4, atol=1e-4)
    assert torch.allclose(batch[1], following[0], rtol=1e-4, atol=1e-4)


def test_dpm_adaptive_is_reproducible_and_progress_stays_within_the_steps(pipeline):
    """DPM adaptive takes as many steps as its error control wants; progress never passes steps/steps.

    (No batch test: its step-size controller measures the error over the whole batch, in A1111 too,
    so a batch's images follow a shared step sequence and need not match single runs.)
    """
    progress = []
    first = _latents(pipeline, "DPM adaptive", 40, progress=progress.append)
    assert torch.equal(_latents(pipeline, "DPM adaptive", 40), first)
    assert not torch.allclose(_latents(pipeline, "DPM adaptive", 41), first, atol=1e-3)
    steps = [p.step for p in progress]
    assert len(steps) > 3  # more solver steps than the 3 asked for...
    assert max(steps) == 3 and all(p.total_steps == 3 for p in progress)  # ...reported as at most 3 of 3
    assert steps == sorted(steps)


def test_dpm_fast_runs_over_the_models_sigma_range_whatever_the_schedule(pipeline):
    """A1111's txt2img passes DPM fast the model's sigma_min/sigma_max and n = steps: the schedule type
    only sets the starting sigma, which is sigma_max for both Uniform and Karras."""
    uniform = _latents(pipeline, "DPM fast", 40, steps=4, schedule="Uniform")
    assert torch.equal(_latents(pipeline, "DPM fast", 40, steps=4, schedule="Karras"), uniform)


def test_sde_samplers_use_the_schedules_range_for_their_trees(pipeline):
    """The Brownian trees span the plan's sigmas: a different schedule with the same start changes the noise."""
    karras = _latents(pipeline, "DPM++ 2M SDE", 40, steps=4, schedule="Karras")
    exponential = _latents(pipeline, "DPM++ 2M SDE", 40, steps=4)  # its default
    assert not torch.allclose(karras, exponential, atol=1e-3)
