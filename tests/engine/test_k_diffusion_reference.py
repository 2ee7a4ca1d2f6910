"""Our samplers against k-diffusion 0.1.1.post1's own output (what A1111 1.10 runs).

tests/data/k_diffusion_reference.safetensors was written by scripts/make_k_diffusion_reference.py,
which ran k-diffusion's ``sampling.py`` on a non-linear toy denoiser (tests/fixtures/toy_denoiser.py)
with a batch of two seeds, Karras sigmas of the SD schedule, per-image CPU generators for the
ancestral noise and k-diffusion's BrownianTreeNoiseSampler (torchsde) for the SDE samplers. Here
the same inputs go through our samplers, with our ImageNoise and our Brownian trees: the outputs
and the sigma of every model call must match.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from desktop.engine.denoiser import DiscreteSchedule
from desktop.engine.loading import alphas_cumprod_from_config
from desktop.engine.noise import ImageNoise
from desktop.engine.samplers.brownian import BrownianTreeNoise, brownian_sigma_range
from desktop.engine.samplers.dpm2 import sample_dpm_2
from desktop.engine.samplers.dpm2_ancestral import sample_dpm_2_ancestral
from desktop.engine.samplers.dpm_solver import sample_dpm_adaptive, sample_dpm_fast
from desktop.engine.samplers.dpmpp_2m import sample_dpmpp_2m
from desktop.engine.samplers.dpmpp_2m_sde import sample_dpmpp_2m_sde, sample_dpmpp_2m_sde_heun
from desktop.engine.samplers.dpmpp_2s_ancestral import sample_dpmpp_2s_ancestral
from desktop.engine.samplers.dpmpp_3m_sde import sample_dpmpp_3m_sde
from desktop.engine.samplers.dpmpp_sde import sample_dpmpp_sde
from desktop.engine.samplers.euler import sample_euler
from desktop.engine.samplers.euler_ancestral import sample_euler_ancestral
from desktop.engine.samplers.heun import sample_heun
from desktop.engine.samplers.lms import sample_lms
from desktop.engine.schedules import karras_sigmas
from tests.fixtures.toy_denoiser import ToyDenoiser, toy_weights

REFERENCE = Path(__file__).resolve().parents[1] / "data" / "k_diffusion_reference.safetensors"
SD_CONFIG = {"beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012, "num_train_timesteps": 1000}
SHAPE = (4, 8, 8)

# reference name -> (our sampler, noise kind, extra keyword arguments)
CASES = {
    "euler": (sample_euler, None, {}),
    "euler_ancestral": (sample_euler_ancestral, "ancestral", {}),
    "heun": (sample_heun, None, {}),
    "dpm_2": (sample_dpm_2, None, {}),
    "dpm_2_ancestral": (sample_dpm_2_ancestral, "ancestral", {}),
    "lms": (sample_lms, None, {}),
    "dpmpp_2s_ancestral": (sample_dpmpp_2s_ancestral, "ancestral", {}),
    "dpmpp_2m": (sample_dpmpp_2m, None, {}),
    "dpmpp_sde": (sample_dpmpp_sde, "brownian", {}),
    "dpmpp_2m_sde": (sample_dpmpp_2m_sde, "brownian", {}),
    "dpmpp_2m_sde_heun": (sample_dpmpp_2m_sde_heun, "brownian", {}),
    "dpmpp_3m_sde": (sample_dpmpp_3m_sde, "brownian", {}),
    "dpm_fast": (sample_dpm_fast, "ancestral", {}),
    "dpm_fast_model_range": (sample_dpm_fast, "ancestral", {"model_range": True}),
    "dpm_adaptive": (sample_dpm_adaptive, "ancestral", {}),
    "dpm_adaptive_model_range": (sample_dpm_adaptive, "ancestral", {"model_range": True}),
}


@pytest.fixture(scope="module")
def reference() -> dict:
    with safe_open(str(REFERENCE), framework="pt") as f:
        tensors = {key: f.get_tensor(key) for key in f.keys()}
        metadata = f.metadata()
    tensors["seeds"] = [int(s) for s in metadata["seeds"].split(",")]
    return tensors


def test_the_reference_inputs_are_ours(reference):
    """Same toy weights, Karras sigmas of the SD schedule, and x_T = our seeds' first draw * sigma_max."""
    weight, bias = toy_weights()
    assert torch.equal(reference["weight"], weight) and torch.equal(reference["bias"], bias)
    schedule = DiscreteSchedule(alphas_cumprod_from_config(SD_CONFIG))
    assert reference["model_sigma_range"].tolist() == [schedule.sigma_min, schedule.sigma_max]
    assert torch.equal(reference["sigmas"], karras_sigmas(len(reference["sigmas"]) - 1, schedule.sigma_min, schedule.sigma_max))
    first = ImageNoise(reference["seeds"], SHAPE).next()
    assert torch.equal(first * reference["sigmas"][0], reference["x_T"])


def _run_ours(name: str, reference: dict) -> tuple[torch.Tensor, list[float]]:
    function, noise_kind, options = CASES[name]
    sigmas, x_T, seeds = reference["sigmas"], reference["x_T"], reference["seeds"]
    kwargs = {}
    if options.get("model_range"):
        sigma_min, sigma_max = reference["model_sigma_range"].tolist()
        kwargs = {"sigma_min": sigma_min, "sigma_max": sigma_max}  # what txt2img passes (Python floats, as A1111)
    if noise_kind == "ancestral":
        image_noise = ImageNoise(seeds, SHAPE)
        image_noise.next()  # the initial noise

        def noise(sigma, sigma_next):
            return image_noise.next()
    elif noise_kind == "brownian":
        noise = BrownianTreeNoise(x_T, *brownian_sigma_range(sigmas), seeds)
    else:

        def noise(sigma, sigma_next):
            raise AssertionError(f"{name} is deterministic but asked for noise")

    model = ToyDenoiser(reference["weight"], reference["bias"])
    out = function(model, x_T.clone(), sigmas, callback=lambda i, denoised: None, noise=noise, **kwargs)
    return out, model.calls


@pytest.mark.filterwarnings("ignore:Should have:UserWarning")  # torchsde: sigma -> t -> sigma round-off, as in A1111
@pytest.mark.parametrize("name", list(CASES))
def test_matches_k_diffusion(name, reference):
    out, calls = _run_ours(name, reference)
    assert calls == pytest.approx(reference[f"calls.{name}"].tolist(), rel=1e-6)  # the same model calls, in order
    expected = reference[f"out.{name}"]
    assert torch.allclose(out, expected, rtol=0, atol=1e-5), f"max |diff| {float((out - expected).abs().max()):.3g}"


def test_the_reference_is_sensitive_to_the_noise(reference):
    """A sanity check on the reference itself: the stochastic samplers differ from each other and from ODE ones."""
    outs = {name: reference[f"out.{name}"] for name in ("euler", "euler_ancestral", "dpmpp_sde", "dpmpp_2m_sde", "dpmpp_2m_sde_heun")}
    names = list(outs)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            assert not torch.allclose(outs[a], outs[b], atol=1e-3), (a, b)
