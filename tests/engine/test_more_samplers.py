"""Heun, DPM2, DPM2 a, DPM++ 2S a and LMS: numerics on the analytic Gaussian model, model-call and
noise-draw counts (k-diffusion's), A1111's discarded next-to-last sigma, and end-to-end runs."""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
import torch

from desktop.core.requests import GenerationRequest
from desktop.engine import schedules
from desktop.engine.denoiser import DiscreteSchedule
from desktop.engine.devices import plan_devices
from desktop.engine.loading import alphas_cumprod_from_config, load_model
from desktop.engine.samplers import find_sampler, sampler_names
from desktop.engine.samplers.dpm2 import sample_dpm_2
from desktop.engine.samplers.dpm2_ancestral import sample_dpm_2_ancestral
from desktop.engine.samplers.dpmpp_2m import sample_dpmpp_2m
from desktop.engine.samplers.dpmpp_2s_ancestral import sample_dpmpp_2s_ancestral
from desktop.engine.samplers.euler import sample_euler
from desktop.engine.samplers.heun import sample_heun
from desktop.engine.samplers.lms import linear_multistep_coeff, sample_lms
from desktop.engine.txt2img import Txt2ImgPipeline, resolve_sampling

SD_CONFIG = {"beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012, "num_train_timesteps": 1000}
SCHEDULE = DiscreteSchedule(alphas_cumprod_from_config(SD_CONFIG))
DATA_STD = 1.0

NEW_SAMPLERS = ["LMS", "Heun", "DPM2", "DPM2 a", "DPM++ 2S a"]


def _no_callback(i: int, denoised: torch.Tensor) -> None:
    pass


def _no_noise(sigma: torch.Tensor, sigma_next: torch.Tensor) -> torch.Tensor:
    raise AssertionError("a deterministic sampler asked for noise")


def gaussian_denoiser(s: float = DATA_STD):
    """The exact E[x0 | x] for x0 ~ N(0, s^2 I), x = x0 + sigma * n."""

    def model(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        return x * (s**2 / (s**2 + sigma**2))

    return model


def _zero_noise_like(shape):
    return lambda sigma, sigma_next: torch.zeros(shape)


def ode_relative_error(sampler, steps: int, schedule_fn, s: float = DATA_STD, noise=None) -> float:
    """|x_sampled(0) - x_exact(0)| / |x_exact(0)| for the probability-flow ODE from sigma_max."""
    sigmas = schedule_fn(steps, SCHEDULE)
    sigma_T = float(sigmas[0])
    generator = torch.Generator().manual_seed(7)
    x_T = torch.randn((2, 4, 8, 8), generator=generator) * math.sqrt(s**2 + sigma_T**2)
    exact = x_T * s / math.sqrt(s**2 + sigma_T**2)
    out = sampler(gaussian_denoiser(s), x_T.clone(), sigmas, callback=_no_callback, noise=noise or _no_noise)
    return float((out - exact).abs().max() / exact.abs().max())


# --------------------------------------------------------------------------------------------
# 1. Convergence to the exact ODE solution
# --------------------------------------------------------------------------------------------

# With eta = 0 the ancestral samplers are their deterministic ODE solvers (sigma_down = sigma_next,
# sigma_up = 0); they still draw noise (times 0) like k-diffusion, so give them zeros.
SECOND_ORDER = {
    "Heun": (sample_heun, 10),
    "DPM2": (sample_dpm_2, 10),
    "DPM2 a (eta 0)": (functools.partial(sample_dpm_2_ancestral, eta=0.0), 10),
    "DPM++ 2S a (eta 0)": (functools.partial(sample_dpmpp_2s_ancestral, eta=0.0), 8),
}


@pytest.mark.parametrize("schedule_fn", [schedules.karras, schedules.exponential], ids=["karras", "exponential"])
@pytest.mark.parametrize("name", list(SECOND_ORDER))
def test_second_order_samplers_converge_to_the_ode_solution(name, schedule_fn):
    sampler, min_ratio = SECOND_ORDER[name]
    noise = _zero_noise_like((2, 4, 8, 8))
    err_10 = ode_relative_error(sampler, 10, schedule_fn, noise=noise)
    err_40 = ode_relative_error(sampler, 40, schedule_fn, noise=noise)
    # Second order: 4x the steps -> ~16x less error (observed 24-28 for Heun / DPM2, ~13 for 2S a,
    # whose last step to sigma = 0 is a first-order Euler step); first order would give ~4.
    assert err_40 < 0.005
    assert err_10 / err_40 > min_ratio


def test_dpm2_ancestral_with_eta_zero_is_dpm2():
    sigmas = schedules.karras(8, SCHEDULE)
    x = torch.randn((1, 4, 4, 4), generator=torch.Generator().manual_seed(1)) * sigmas[0]
    plain = sample_dpm_2(gaussian_denoiser(), x.clone(), sigmas, callback=_no_callback, noise=_no_noise)
    zero = _zero_noise_like(x.shape)
    ancestral = sample_dpm_2_ancestral(gaussian_denoiser(), x.clone(), sigmas, callback=_no_callback, noise=zero, eta=0.0)
    assert torch.allclose(plain, ancestral, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("schedule_fn", [schedules.karras, schedules.exponential], ids=["karras", "exponential"])
def test_lms_converges_and_beats_euler_at_equal_steps(schedule_fn):
    err_10 = ode_relative_error(sample_lms, 10, schedule_fn)
    err_40 = ode_relative_error(sample_lms, 40, schedule_fn)
    assert err_40 < 0.002
    assert err_10 / err_40 > 16  # higher than first order (observed 75-100)
    for steps in (10, 20, 40):
        assert ode_relative_error(sample_lms, steps, schedule_fn) < ode_relative_error(sample_euler, steps, schedule_fn)


def test_lms_coefficients_integrate_the_lagrange_basis():
    t = schedules.karras(12, SCHEDULE).numpy().astype(np.float64)
    with pytest.raises(ValueError):
        linear_multistep_coeff(4, t, 2, 0)
    assert linear_multistep_coeff(1, t, 0, 0) == pytest.approx(t[1] - t[0])  # first step: Euler
    for i in (3, 7, 10):
        coeffs = [linear_multistep_coeff(4, t, i, j) for j in range(4)]
        # The basis polynomials sum to 1, so the coefficients sum to the step length.
        assert sum(coeffs) == pytest.approx(t[i + 1] - t[i], rel=1e-6)


# --------------------------------------------------------------------------------------------
# 2. Model calls and ancestral noise draws (k-diffusion's counts and order)
# --------------------------------------------------------------------------------------------


def _count(sampler, sigmas: torch.Tensor, **kwargs) -> tuple[list[float], int, list[int]]:
    calls: list[float] = []
    draws = 0
    steps: list[int] = []
    model = gaussian_denoiser()

    def counting_model(x, sigma):
        assert sigma.dim() == 0
        calls.append(float(sigma))
        return model(x, sigma)

    def noise(sigma, sigma_next):
        nonlocal draws
        draws += 1
        return torch.randn((1, 4, 4, 4), generator=generator)

    generator = torch.Generator().manual_seed(5)
    x = torch.randn((1, 4, 4, 4), generator=generator) * sigmas[0]
    out = sampler(counting_model, x, sigmas, callback=lambda i, d: steps.append(i), noise=noise, **kwargs)
    assert torch.isfinite(out).all()
    return calls, draws, steps


@pytest.mark.parametrize("sampler", [sample_heun, sample_dpm_2, sample_dpm_2_ancestral, sample_dpmpp_2s_ancestral])
@pytest.mark.parametrize("steps", [1, 2, 7])
def test_second_order_samplers_call_the_model_twice_except_on_the_last_step(sampler, steps):
    sigmas = schedules.karras(steps, SCHEDULE)
    calls, _, seen = _count(sampler, sigmas)
    assert len(calls) == 2 * steps - 1
    assert seen == list(range(steps))  # one callback per step
    # each step starts with a call at its own sigma
    starts = [calls[2 * i] for i in range(steps)]
    assert starts == pytest.approx([float(v) for v in sigmas[:-1]])


def test_heun_and_dpm2_evaluate_at_the_next_sigma_and_the_log_midpoint():
    sigmas = schedules.karras(3, SCHEDULE)
    heun_calls, _, _ = _count(sample_heun, sigmas)
    assert heun_calls[1] == pytest.approx(float(sigmas[1]), rel=1e-6)
    dpm2_calls, _, _ = _count(sample_dpm_2, sigmas)
    assert dpm2_calls[1] == pytest.approx(math.sqrt(float(sigmas[0]) * float(sigmas[1])), rel=1e-5)


@pytest.mark.parametrize("sampler", [sample_lms, sample_dpmpp_2m, sample_euler])
@pytest.mark.parametrize("steps", [1, 3, 9])
def test_single_step_samplers_call_the_model_once_per_step(sampler, steps):
    calls, draws, seen = _count(sampler, schedules.karras(steps, SCHEDULE))
    assert len(calls) == steps and draws == 0 and seen == list(range(steps))


@pytest.mark.parametrize("sampler", [sample_dpm_2_ancestral, sample_dpmpp_2s_ancestral])
@pytest.mark.parametrize("steps", [1, 2, 10])
def test_ancestral_samplers_draw_noise_once_per_step_with_a_nonzero_target(sampler, steps):
    sigmas = schedules.karras(steps, SCHEDULE)
    _, draws, _ = _count(sampler, sigmas)
    assert draws == int((sigmas[1:] > 0).sum()) == steps - 1


def test_deterministic_new_samplers_never_ask_for_noise():
    sigmas = schedules.karras(6, SCHEDULE)
    x = torch.randn((1, 4, 4, 4), generator=torch.Generator().manual_seed(3)) * sigmas[0]
    for sampler in (sample_heun, sample_dpm_2, sample_lms):
        out = sampler(gaussian_denoiser(), x.clone(), sigmas, callback=_no_callback, noise=_no_noise)
        assert torch.isfinite(out).all()


def test_ancestral_samples_depend_on_the_noise():
    sigmas = schedules.karras(6, SCHEDULE)
    x = torch.randn((1, 4, 4, 4), generator=torch.Generator().manual_seed(3)) * sigmas[0]
    for sampler in (sample_dpm_2_ancestral, sample_dpmpp_2s_ancestral):
        a = sampler(gaussian_denoiser(), x.clone(), sigmas, callback=_no_callback, noise=lambda sigma, sigma_next: torch.ones_like(x))
        b = sampler(gaussian_denoiser(), x.clone(), sigmas, callback=_no_callback, noise=lambda sigma, sigma_next: -torch.ones_like(x))
        assert not torch.allclose(a, b)


# --------------------------------------------------------------------------------------------
# 3. Names and sigmas (A1111's sampler table and get_sigmas)
# --------------------------------------------------------------------------------------------


def _plan(sampler: str, steps: int, schedule: str = "Automatic"):
    return resolve_sampling(GenerationRequest(prompt="a cat", steps=steps, sampler=sampler, schedule=schedule), SCHEDULE)


def test_samplers_are_listed_in_a1111_order():
    assert sampler_names()[:8] == ["Euler a", "Euler", "LMS", "Heun", "DPM2", "DPM2 a", "DPM++ 2S a", "DPM++ 2M"]


@pytest.mark.parametrize(
    "alias, name, function",
    [
        ("k_lms", "LMS", sample_lms),
        ("k_heun", "Heun", sample_heun),
        ("k_dpm_2", "DPM2", sample_dpm_2),
        ("k_dpm_2_a", "DPM2 a", sample_dpm_2_ancestral),
        ("k_dpmpp_2s_a", "DPM++ 2S a", sample_dpmpp_2s_ancestral),
        ("dpm++ 2s A", "DPM++ 2S a", sample_dpmpp_2s_ancestral),
    ],
)
def test_aliases_resolve(alias, name, function):
    spec, implied = find_sampler(alias)
    assert (spec.name, spec.function, implied) == (name, function, None)


def test_flags_follow_a1111():
    """A1111 1.10's samplers_k_diffusion table: (default schedule, second order, discard next-to-last sigma)."""
    flags = {}
    for name in NEW_SAMPLERS:
        spec = find_sampler(name)[0]
        flags[name] = (spec.default_schedule, spec.second_order, spec.discard_next_to_last_sigma)
    assert flags == {
        "LMS": (None, False, False),
        "Heun": (None, True, False),
        "DPM2": ("Karras", True, True),
        "DPM2 a": ("Karras", True, True),
        "DPM++ 2S a": ("Karras", True, False),
    }


@pytest.mark.parametrize("sampler", ["DPM2", "DPM2 a", "k_dpm_2"])
@pytest.mark.parametrize("schedule", ["Automatic", "Karras", "Uniform"])
def test_dpm2_discards_the_next_to_last_sigma(sampler, schedule):
    plan = _plan(sampler, 10, schedule)
    fn = schedules.uniform if schedule == "Uniform" else schedules.karras  # Automatic is Karras for DPM2 (A1111)
    eleven = fn(11, SCHEDULE)
    assert plan.sigmas.shape == (11,)  # 10 sigmas + the final 0: still 10 steps
    assert float(plan.sigmas[-1]) == 0.0
    assert torch.equal(plan.sigmas[:-1], eleven[:10])  # index 10 (the next-to-last, sigma_min) dropped
    assert float(plan.sigmas[-2]) == float(eleven[9]) > float(eleven[10])


def test_heun_and_lms_use_the_plain_schedule():
    assert torch.equal(_plan("Heun", 10).sigmas, schedules.uniform(10, SCHEDULE))
    assert torch.equal(_plan("LMS", 10).sigmas, schedules.uniform(10, SCHEDULE))
    assert torch.equal(_plan("DPM++ 2S a", 10, "Karras").sigmas, schedules.karras(10, SCHEDULE))
    assert torch.equal(_plan("DPM++ 2S a", 10).sigmas, schedules.karras(10, SCHEDULE))  # its A1111 default


# --------------------------------------------------------------------------------------------
# 4. End to end on the tiny SD1 checkpoint
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pipeline(tiny_sd1):
    return Txt2ImgPipeline(load_model(tiny_sd1, plan_devices("cpu", "fp32")))


def _image_bytes(pipeline, sampler: str, seed: int) -> bytes:
    steps = []
    result = pipeline(
        GenerationRequest(prompt="a cat", steps=3, width=32, height=32, seed=seed, sampler=sampler),
        on_step=steps.append,
    )
    assert result.sampler_name == sampler and not result.cancelled
    assert [p.step for p in steps] == [1, 2, 3]
    return result.images[0].image.tobytes()


@pytest.mark.parametrize("sampler", NEW_SAMPLERS)
def test_new_samplers_run_reproducibly_through_the_pipeline(pipeline, sampler):
    first = _image_bytes(pipeline, sampler, 21)
    assert _image_bytes(pipeline, sampler, 21) == first
    assert _image_bytes(pipeline, sampler, 22) != first
