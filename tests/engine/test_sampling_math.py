"""Numerics of sampling, checked against facts that do not depend on this code.

* The SD noise schedule (scaled_linear betas 0.00085..0.012, 1000 steps): the well-known
  k-diffusion / A1111 sigma range, the sigma <-> fractional-t maps, and the uniform, Karras and
  exponential sigma sequences (Karras also against diffusers, which computes the same formula).
* The samplers on an analytic model: for data ~ N(0, s^2 I) the exact denoiser is
  D(x, sigma) = x * s^2 / (s^2 + sigma^2) and the probability-flow ODE has the closed-form
  solution x(sigma) = x_T * sqrt(s^2 + sigma^2) / sqrt(s^2 + sigma_T^2), so convergence orders
  and the variance of ancestral samples can be measured.
* Step callbacks and cancellation, CFG and the eps / v parameterisations of ``CFGDenoiser``,
  A1111's per-image CPU seeds, and how sampler / schedule names resolve.
"""

from __future__ import annotations

import math

import pytest
import torch

from desktop.backends.base import AddedConditioning
from desktop.core.cancel import CancelToken, Cancelled
from desktop.core.errors import InvalidRequest
from desktop.core.requests import GenerationRequest
from desktop.engine import schedules
from desktop.engine.denoiser import CFGDenoiser, DiscreteSchedule
from desktop.engine.prompt_conditioning import EncodedText, PromptConditioning, ScheduledText, WeightedSchedule
from desktop.engine.loading import alphas_cumprod_from_config
from desktop.engine.noise import ImageNoise
from desktop.engine.samplers import find_sampler, sampler_names
from desktop.engine.samplers.common import ancestral_step
from desktop.engine.samplers.dpmpp_2m import sample_dpmpp_2m
from desktop.engine.samplers.euler import sample_euler
from desktop.engine.samplers.euler_ancestral import sample_euler_ancestral
from desktop.engine.txt2img import resolve_sampling
from desktop.library.taxonomy import PredictionType

SD_CONFIG = {"beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012, "num_train_timesteps": 1000}
SCHEDULE = DiscreteSchedule(alphas_cumprod_from_config(SD_CONFIG))

SAMPLER_FUNCTIONS = {
    "Euler": sample_euler,
    "Euler a": sample_euler_ancestral,
    "DPM++ 2M": sample_dpmpp_2m,
}


def _no_callback(i: int, denoised: torch.Tensor) -> None:
    pass


def _no_noise(sigma: torch.Tensor, sigma_next: torch.Tensor) -> torch.Tensor:
    raise AssertionError("a deterministic sampler asked for noise")


# --------------------------------------------------------------------------------------------
# 1. The SD noise schedule and the sigma sequences built from it
# --------------------------------------------------------------------------------------------


def test_sd_schedule_has_the_known_k_diffusion_sigma_range():
    # k-diffusion / A1111 print these for every SD1/SD2 model: sigma_min 0.0292, sigma_max 14.6146.
    assert len(SCHEDULE.sigmas) == 1000
    assert SCHEDULE.sigma_min == pytest.approx(0.0292, abs=5e-5)
    assert SCHEDULE.sigma_max == pytest.approx(14.6146, abs=5e-5)
    assert torch.all(SCHEDULE.sigmas[1:] > SCHEDULE.sigmas[:-1])


def test_sigma_to_t_inverts_t_to_sigma_for_fractional_timesteps():
    generator = torch.Generator().manual_seed(0)
    t = torch.cat([torch.rand(2000, generator=generator) * 999, torch.tensor([0.0, 0.5, 998.5, 999.0])])
    round_trip = SCHEDULE.sigma_to_t(SCHEDULE.t_to_sigma(t))
    # Both maps interpolate linearly in log-sigma between the same table entries, so they are exact
    # inverses up to float32 rounding of log/exp (observed ~6e-5 timesteps); 1e-3 leaves headroom
    # while any mismatch in the interpolation (e.g. linear instead of log) is off by far more.
    assert torch.allclose(round_trip, t, atol=1e-3, rtol=0)
    assert (round_trip.frac() != 0).any()  # fractional, not rounded


def test_t_to_sigma_interpolates_in_log_sigma():
    # Halfway between two timesteps is the geometric mean of their sigmas.
    sigma = SCHEDULE.t_to_sigma(torch.tensor([10.5, 500.5]))
    expected = torch.stack(
        [(SCHEDULE.sigmas[10] * SCHEDULE.sigmas[11]).sqrt(), (SCHEDULE.sigmas[500] * SCHEDULE.sigmas[501]).sqrt()]
    )
    assert torch.allclose(sigma, expected, rtol=1e-6)


def test_sigma_to_t_of_training_sigmas_is_the_integer_timestep():
    t = SCHEDULE.sigma_to_t(SCHEDULE.sigmas)
    assert torch.equal(t, torch.arange(1000, dtype=t.dtype))


def test_sigma_to_t_clamps_outside_the_training_range():
    t = SCHEDULE.sigma_to_t(torch.tensor([SCHEDULE.sigma_min / 2, SCHEDULE.sigma_max * 2]))
    assert t.tolist() == [0.0, 999.0]


@pytest.mark.parametrize("steps", [1, 2, 10, 20, 37])
def test_uniform_schedule_shape_and_endpoints(steps):
    sigmas = schedules.uniform(steps, SCHEDULE)
    assert sigmas.shape == (steps + 1,)
    assert float(sigmas[0]) == pytest.approx(SCHEDULE.sigma_max, rel=1e-6)
    assert float(sigmas[-1]) == 0.0
    assert torch.all(sigmas[1:] < sigmas[:-1])
    if steps > 1:
        assert float(sigmas[-2]) == pytest.approx(SCHEDULE.sigma_min, rel=1e-5)
    # k-diffusion's get_sigmas(n): t evenly spaced from 999 to 0, mapped through t_to_sigma.
    expected = SCHEDULE.t_to_sigma(torch.linspace(999, 0, steps))
    assert torch.allclose(sigmas[:-1], expected, rtol=1e-6)


def test_uniform_schedule_with_1000_steps_visits_every_training_sigma():
    sigmas = schedules.uniform(1000, SCHEDULE)
    assert torch.allclose(sigmas[:-1], SCHEDULE.sigmas.flip(0), rtol=1e-5)


def _karras_closed_form(steps: int, sigma_min: float, sigma_max: float, rho: float = 7.0) -> torch.Tensor:
    ramp = torch.linspace(0, 1, steps, dtype=torch.float64)
    sigmas = (sigma_max ** (1 / rho) + ramp * (sigma_min ** (1 / rho) - sigma_max ** (1 / rho))) ** rho
    return torch.cat([sigmas, sigmas.new_zeros(1)])


@pytest.mark.parametrize("steps", [1, 2, 10, 20, 50])
def test_karras_schedule_matches_the_closed_form(steps):
    sigmas = schedules.karras(steps, SCHEDULE)
    expected = _karras_closed_form(steps, SCHEDULE.sigma_min, SCHEDULE.sigma_max)
    assert sigmas.shape == (steps + 1,)
    assert float(sigmas[0]) == pytest.approx(SCHEDULE.sigma_max, rel=1e-6)
    assert float(sigmas[-1]) == 0.0
    if steps > 1:
        assert float(sigmas[-2]) == pytest.approx(SCHEDULE.sigma_min, rel=1e-5)
    assert torch.allclose(sigmas.double(), expected, rtol=1e-5, atol=0)


def test_karras_schedule_with_one_step_is_sigma_max_like_k_diffusion():
    # k-diffusion: ramp = linspace(0, 1, 1) = [0] -> the single sigma is sigma_max.
    # (diffusers differs here, see the next test.)
    assert schedules.karras(1, SCHEDULE).tolist() == pytest.approx([SCHEDULE.sigma_max, 0.0], rel=1e-6)


@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")  # inside diffusers
@pytest.mark.parametrize("steps", [2, 10, 20, 50])
def test_karras_schedule_matches_diffusers(steps):
    from diffusers import EulerDiscreteScheduler

    scheduler = EulerDiscreteScheduler(
        use_karras_sigmas=True, beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012
    )
    scheduler.set_timesteps(steps)
    theirs = scheduler.sigmas.to(torch.float64)
    ours = schedules.karras(steps, SCHEDULE).to(torch.float64)
    assert theirs.shape == ours.shape
    assert float(theirs[-1]) == float(ours[-1]) == 0.0
    # Same formula, same sigma range (diffusers' timestep grid linspace(0, 999, n) hits t = 999 and
    # t = 0 exactly for n >= 2). Remaining differences are float rounding only: diffusers squares a
    # float32 linspace of sqrt(betas) where we use float64, and evaluates the formula in float64 where
    # we use float32; the 7th power amplifies the base's rounding error 7x. Observed max relative
    # difference ~6e-7; 1e-5 keeps a wide margin while a wrong rho, range or ramp direction is off
    # by more than 1e-2. (With n = 1 diffusers' grid is the single timestep 0, so its range collapses
    # to sigma_min and it returns [0.0292, 0]; k-diffusion/A1111 return [sigma_max, 0].)
    assert torch.allclose(ours[:-1], theirs[:-1], rtol=1e-5, atol=0)


@pytest.mark.parametrize("steps", [1, 2, 10, 25])
def test_exponential_schedule_is_geometric_between_sigma_max_and_sigma_min(steps):
    sigmas = schedules.exponential(steps, SCHEDULE)
    assert sigmas.shape == (steps + 1,)
    assert float(sigmas[0]) == pytest.approx(SCHEDULE.sigma_max, rel=1e-5)
    assert float(sigmas[-1]) == 0.0
    if steps == 1:
        return
    assert float(sigmas[-2]) == pytest.approx(SCHEDULE.sigma_min, rel=1e-5)
    ratios = (sigmas[1:-1] / sigmas[:-2]).double()
    expected_ratio = (SCHEDULE.sigma_min / SCHEDULE.sigma_max) ** (1 / (steps - 1))
    assert torch.allclose(ratios, torch.full_like(ratios, expected_ratio), rtol=1e-5)


# --------------------------------------------------------------------------------------------
# 2. Samplers on an analytic model: Gaussian data with a known exact denoiser
# --------------------------------------------------------------------------------------------

DATA_STD = 1.0  # s: latents of SD are roughly unit-variance


def gaussian_denoiser(s: float = DATA_STD):
    """The exact E[x0 | x] for x0 ~ N(0, s^2 I), x = x0 + sigma * n."""

    def model(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        return x * (s**2 / (s**2 + sigma**2))

    return model


def ode_relative_error(sampler, steps: int, schedule_fn, s: float = DATA_STD) -> float:
    """|x_sampled(0) - x_exact(0)| / |x_exact(0)| for the probability-flow ODE from sigma_max."""
    sigmas = schedule_fn(steps, SCHEDULE)
    sigma_T = float(sigmas[0])
    generator = torch.Generator().manual_seed(7)
    x_T = torch.randn((2, 4, 8, 8), generator=generator) * math.sqrt(s**2 + sigma_T**2)
    exact = x_T * s / math.sqrt(s**2 + sigma_T**2)
    out = sampler(gaussian_denoiser(s), x_T.clone(), sigmas, callback=_no_callback, noise=_no_noise)
    return float((out - exact).abs().max() / exact.abs().max())


@pytest.mark.parametrize("schedule_fn", [schedules.karras, schedules.exponential], ids=["karras", "exponential"])
def test_euler_converges_to_the_ode_solution_at_first_order(schedule_fn):
    err_10 = ode_relative_error(sample_euler, 10, schedule_fn)
    err_40 = ode_relative_error(sample_euler, 40, schedule_fn)
    # First order: 4x the steps -> ~4x less error (observed 4.0). Bounds allow for the pre-asymptotic
    # regime but exclude a zeroth-order (no improvement) or accidentally higher-order method.
    assert err_40 < 0.06
    assert 2.5 < err_10 / err_40 < 6.5


@pytest.mark.parametrize("schedule_fn", [schedules.karras, schedules.exponential], ids=["karras", "exponential"])
def test_dpmpp_2m_converges_to_the_ode_solution_at_second_order(schedule_fn):
    err_10 = ode_relative_error(sample_dpmpp_2m, 10, schedule_fn)
    err_40 = ode_relative_error(sample_dpmpp_2m, 40, schedule_fn)
    # Second order: 4x the steps -> ~16x less error (observed ~20); first order would give ~4.
    assert err_40 < 0.005
    assert err_10 / err_40 > 10


@pytest.mark.parametrize("steps, factor", [(20, 4), (40, 10)])
def test_dpmpp_2m_is_much_more_accurate_than_euler_at_equal_steps(steps, factor):
    euler = ode_relative_error(sample_euler, steps, schedules.karras)
    dpmpp = ode_relative_error(sample_dpmpp_2m, steps, schedules.karras)
    # Observed ratios: ~6.4x at 20 steps, ~16x at 40 steps (the gap grows with steps: orders 1 vs 2).
    assert dpmpp * factor < euler


def test_deterministic_samplers_end_exactly_on_the_last_denoised_value():
    # The last step goes to sigma = 0, where both Euler and DPM++ 2M return the denoised prediction.
    sigmas = schedules.karras(5, SCHEDULE)
    x = torch.randn((1, 4, 4, 4), generator=torch.Generator().manual_seed(3)) * float(sigmas[0])
    for sampler in (sample_euler, sample_dpmpp_2m):
        seen = []
        out = sampler(gaussian_denoiser(), x.clone(), sigmas, callback=lambda i, d: seen.append(d), noise=_no_noise)
        assert torch.allclose(out, seen[-1], rtol=1e-6, atol=1e-7)


def _euler_ancestral_variance(sigmas: torch.Tensor, s: float) -> float:
    """Var(x) after k-diffusion's Euler a (eta=1) on Gaussian data, by the exact linear recursion.

    One step: x' = D + (x - D) * sigma_down / sigma + sigma_up * z with D = x * s^2 / (s^2 + sigma^2),
    sigma_up = min(sigma', sqrt(sigma'^2 (sigma^2 - sigma'^2) / sigma^2)), sigma_down^2 = sigma'^2 - sigma_up^2.
    """
    sig = [float(v) for v in sigmas.double()]
    var = sig[0] ** 2  # x_T = noise * sigma_max
    for a, b in zip(sig[:-1], sig[1:]):
        up = min(b, math.sqrt(b**2 * (a**2 - b**2) / a**2))
        down = math.sqrt(b**2 - up**2)
        gain = s**2 / (s**2 + a**2) + (a**2 / (s**2 + a**2)) * down / a
        var = gain**2 * var + (up**2 if b > 0 else 0.0)
    return var


def _run_euler_ancestral(steps: int, s: float, seed: int = 11) -> tuple[torch.Tensor, int]:
    sigmas = schedules.karras(steps, SCHEDULE)
    generator = torch.Generator().manual_seed(seed)
    shape = (5, 4, 32, 32)  # 20480 elements
    draws = 0

    def noise(sigma, sigma_next) -> torch.Tensor:
        nonlocal draws
        draws += 1
        return torch.randn(shape, generator=generator)

    x = torch.randn(shape, generator=generator) * sigmas[0]
    out = sample_euler_ancestral(gaussian_denoiser(s), x, sigmas, callback=_no_callback, noise=noise)
    return out, draws


@pytest.mark.parametrize("s", [0.5, 1.0])
def test_euler_ancestral_samples_have_the_data_variance(s):
    out, draws = _run_euler_ancestral(400, s)
    assert draws == 399  # fresh noise on every step except the last one (to sigma = 0)
    # Euler a loses s^2 (sigma - sigma_down)^2 / (s^2 + sigma^2) of variance per step (O(h) overall):
    # with 400 Karras steps the exact recursion predicts Var = 0.98-0.99 s^2. The sample variance of
    # 20480 Gaussian elements has a relative standard error sqrt(2 / 20480) = 1%; 6% is that bias
    # plus ~4 standard errors. A wrong noise scale (e.g. sigma_up^2, or no noise) misses by far more.
    assert _euler_ancestral_variance(schedules.karras(400, SCHEDULE), s) == pytest.approx(s**2, rel=0.025)
    assert float(out.var()) == pytest.approx(s**2, rel=0.06)
    assert abs(float(out.mean())) < 0.05 * s


def test_euler_ancestral_variance_at_few_steps_matches_k_diffusion_recursion():
    # At 20 steps Euler a is visibly under-dispersed (~0.73 s^2): check the sampler against the exact
    # variance of k-diffusion's update rule rather than against s^2. Tolerance: 4 standard errors (4%).
    s = 1.0
    out, draws = _run_euler_ancestral(20, s)
    assert draws == 19
    predicted = _euler_ancestral_variance(schedules.karras(20, SCHEDULE), s)
    assert 0.6 < predicted < 0.85
    assert float(out.var()) == pytest.approx(predicted, rel=0.04)


def test_ancestral_step_splits_the_target_sigma():
    sigma_down, sigma_up = ancestral_step(torch.tensor(5.0), torch.tensor(3.0))
    assert float(sigma_up) == pytest.approx(math.sqrt(9 * (25 - 9) / 25))
    assert float(sigma_down**2 + sigma_up**2) == pytest.approx(9.0)
    sigma_down, sigma_up = ancestral_step(torch.tensor(5.0), torch.tensor(3.0), eta=0.0)
    assert (float(sigma_down), float(sigma_up)) == (3.0, 0.0)


# --------------------------------------------------------------------------------------------
# 3. Callbacks and cancellation
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(SAMPLER_FUNCTIONS))
def test_callback_runs_once_per_step_with_zero_based_indices(name):
    steps = 7
    sigmas = schedules.karras(steps, SCHEDULE)
    generator = torch.Generator().manual_seed(0)
    x = torch.randn((1, 4, 4, 4), generator=generator) * sigmas[0]
    calls: list[tuple[int, torch.Tensor]] = []
    model_calls = 0

    def model(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        nonlocal model_calls
        model_calls += 1
        return gaussian_denoiser()(x, sigma)

    SAMPLER_FUNCTIONS[name](
        model,
        x,
        sigmas,
        callback=lambda i, denoised: calls.append((i, denoised)),
        noise=lambda sigma, sigma_next: torch.randn((1, 4, 4, 4), generator=generator),
    )
    assert [i for i, _ in calls] == list(range(steps))
    assert all(d.shape == x.shape for _, d in calls)
    assert model_calls == steps  # all three are one model call per step
    assert torch.allclose(calls[0][1], gaussian_denoiser()(x, sigmas[0]))


class FakeUNet:
    """A UNet backend: records every call and returns ``output(latents, timesteps, context)``."""

    def __init__(self, output=None, on_call=None) -> None:
        self.calls: list[dict] = []
        self.output = output or (lambda latents, timesteps, context: torch.zeros_like(latents))
        self.on_call = on_call

    def predict(self, latents, timesteps, context, added=None):
        self.calls.append(
            {"latents": latents.clone(), "timesteps": timesteps.clone(), "context": context.clone(), "added": added}
        )
        if self.on_call is not None:
            self.on_call(len(self.calls))
        return self.output(latents, timesteps, context)


def _conditioning(cond_tokens: int = 77, uncond_tokens: int = 77, dim: int = 8) -> PromptConditioning:
    return PromptConditioning.fixed(
        EncodedText(torch.ones(1, cond_tokens, dim)), EncodedText(torch.zeros(1, uncond_tokens, dim))
    )


@pytest.mark.parametrize("name", list(SAMPLER_FUNCTIONS))
def test_cancel_in_a_callback_stops_before_the_next_unet_call(name):
    token = CancelToken()
    unet = FakeUNet()
    denoiser = CFGDenoiser(unet, SCHEDULE, PredictionType.EPSILON, _conditioning(), 7.0, token)
    calls_at_cancel = None

    def callback(i: int, denoised: torch.Tensor) -> None:
        nonlocal calls_at_cancel
        if i == 2:
            token.cancel()
            calls_at_cancel = len(unet.calls)

    sigmas = schedules.karras(10, SCHEDULE)
    x = torch.randn((1, 4, 4, 4), generator=torch.Generator().manual_seed(0)) * sigmas[0]
    with pytest.raises(Cancelled):
        SAMPLER_FUNCTIONS[name](denoiser, x, sigmas, callback=callback, noise=lambda sigma, sigma_next: torch.zeros_like(x))
    assert calls_at_cancel == 3
    assert len(unet.calls) - calls_at_cancel <= 1
    assert denoiser.model_calls == 3


def test_cancel_during_a_unet_call_lets_it_finish_and_stops_at_the_next():
    token = CancelToken()
    unet = FakeUNet(on_call=lambda n: token.cancel() if n == 4 else None)  # as if the UI cancels mid-step
    denoiser = CFGDenoiser(unet, SCHEDULE, PredictionType.EPSILON, _conditioning(), 7.0, token)
    sigmas = schedules.uniform(10, SCHEDULE)
    x = torch.zeros((1, 4, 4, 4))
    with pytest.raises(Cancelled):
        sample_euler(denoiser, x, sigmas, callback=_no_callback, noise=_no_noise)
    assert len(unet.calls) == 4


def test_without_a_cancel_token_all_steps_run():
    unet = FakeUNet()
    denoiser = CFGDenoiser(unet, SCHEDULE, PredictionType.EPSILON, _conditioning(), 7.0)
    sample_euler(denoiser, torch.zeros((1, 4, 4, 4)), schedules.uniform(6, SCHEDULE), callback=_no_callback, noise=_no_noise)
    assert len(unet.calls) == 6


# --------------------------------------------------------------------------------------------
# 4. CFGDenoiser: guidance, parameterisations, what the UNet receives
# --------------------------------------------------------------------------------------------


def eps_from_context(latents, timesteps, context):
    """eps of each row = the row's context value (constant), so cond and uncond rows differ."""
    return context[:, 0, 0].reshape(-1, 1, 1, 1).expand_as(latents).clone()


def _row_conditioning(cond_value, uncond_value, cond_tokens=77, uncond_tokens=77, dim=8) -> PromptConditioning:
    """Constant contexts, so the fake UNet's output tells cond rows from uncond rows."""
    return PromptConditioning.fixed(
        EncodedText(torch.full((1, cond_tokens, dim), float(cond_value))),
        EncodedText(torch.full((1, uncond_tokens, dim), float(uncond_value))),
    )


@pytest.mark.parametrize("cfg_scale", [1.0, 7.5, 0.0])
def test_cfg_combines_cond_and_uncond_in_x0_space_for_eps_models(cfg_scale):
    unet = FakeUNet(eps_from_context)
    denoiser = CFGDenoiser(unet, SCHEDULE, PredictionType.EPSILON, _row_conditioning(1.0, -0.5), cfg_scale)
    x = torch.randn((2, 4, 4, 4), generator=torch.Generator().manual_seed(0))
    out = denoiser(x, torch.tensor(3.3))
    denoised_cond, denoised_uncond = x - 3.3 * 1.0, x - 3.3 * -0.5  # eps models: x0 = x - sigma * eps
    expected = denoised_uncond + (denoised_cond - denoised_uncond) * cfg_scale
    assert torch.allclose(out, expected, rtol=1e-5, atol=1e-5)


def test_eps_model_with_the_true_noise_recovers_the_clean_latent():
    generator = torch.Generator().manual_seed(1)
    x0, n = torch.randn((1, 4, 4, 4), generator=generator), torch.randn((1, 4, 4, 4), generator=generator)
    sigma = 2.0
    unet = FakeUNet(lambda latents, timesteps, context: n.repeat(latents.shape[0], 1, 1, 1))
    denoiser = CFGDenoiser(unet, SCHEDULE, PredictionType.EPSILON, _conditioning(), 7.0)
    assert torch.allclose(denoiser(x0 + sigma * n, torch.tensor(sigma)), x0, atol=1e-5)


def test_v_prediction_uses_k_diffusion_compvis_v_scalings():
    generator = torch.Generator().manual_seed(2)
    x = torch.randn((2, 4, 4, 4), generator=generator)
    sigma = 1.7
    c_skip = 1 / (sigma**2 + 1)
    c_out = -sigma / math.sqrt(sigma**2 + 1)
    c_in = 1 / math.sqrt(sigma**2 + 1)

    def v_model(latents, timesteps, context):
        return 0.3 * latents + eps_from_context(latents, timesteps, context)

    unet = FakeUNet(v_model)
    denoiser = CFGDenoiser(unet, SCHEDULE, PredictionType.V_PREDICTION, _row_conditioning(0.4, 0.1), 5.0)
    out = denoiser(x, torch.tensor(sigma))
    x_d = x.double()
    d_cond = x_d * c_skip + (0.3 * x_d * c_in + 0.4) * c_out
    d_uncond = x_d * c_skip + (0.3 * x_d * c_in + 0.1) * c_out
    expected = d_uncond + (d_cond - d_uncond) * 5.0
    assert torch.allclose(out.double(), expected, rtol=1e-5, atol=1e-5)
    assert torch.allclose(unet.calls[0]["latents"], torch.cat([x, x]) * c_in, rtol=1e-6)


def test_v_model_with_the_true_velocity_recovers_the_clean_latent():
    # In VP terms x * c_in = alpha x0 + sigma_vp n, and the target is v = alpha n - sigma_vp x0.
    generator = torch.Generator().manual_seed(3)
    x0, n = torch.randn((1, 4, 4, 4), generator=generator), torch.randn((1, 4, 4, 4), generator=generator)
    sigma = 4.0
    alpha, sigma_vp = 1 / math.sqrt(1 + sigma**2), sigma / math.sqrt(1 + sigma**2)
    v = alpha * n - sigma_vp * x0
    unet = FakeUNet(lambda latents, timesteps, context: v.repeat(latents.shape[0], 1, 1, 1))
    denoiser = CFGDenoiser(unet, SCHEDULE, PredictionType.V_PREDICTION, _conditioning(), 7.0)
    assert torch.allclose(denoiser(x0 + sigma * n, torch.tensor(sigma)), x0, atol=1e-5)


def test_unet_gets_scaled_input_and_fractional_timestep_in_one_cond_then_uncond_batch():
    unet = FakeUNet(eps_from_context)
    denoiser = CFGDenoiser(unet, SCHEDULE, PredictionType.EPSILON, _row_conditioning(1.0, 3.0), 7.0)
    x = torch.randn((2, 4, 4, 4), generator=torch.Generator().manual_seed(4))
    sigma = torch.tensor(3.3)  # between two training sigmas
    denoiser(x, sigma)

    assert len(unet.calls) == 1
    call = unet.calls[0]
    assert call["context"].shape == (4, 77, 8)
    assert call["context"][:, 0, 0].tolist() == [1.0, 1.0, 3.0, 3.0]  # all cond rows, then all uncond
    assert torch.allclose(call["latents"], torch.cat([x, x]) / math.sqrt(3.3**2 + 1), rtol=1e-6)
    t = call["timesteps"]
    assert t.shape == (4,)
    assert torch.all(t == t[0])
    assert float(t[0]) == pytest.approx(float(SCHEDULE.sigma_to_t(sigma)), abs=1e-6)
    assert float(t[0].frac()) != 0.0  # no rounding to an integer timestep
    assert float(SCHEDULE.t_to_sigma(t[:1])) == pytest.approx(3.3, rel=1e-5)


def test_each_row_uses_its_own_sigma():
    unet = FakeUNet(eps_from_context)
    denoiser = CFGDenoiser(unet, SCHEDULE, PredictionType.EPSILON, _row_conditioning(1.0, 0.0), 1.0)
    x = torch.ones((2, 4, 4, 4))
    sigmas = torch.tensor([0.5, 8.0])
    out = denoiser(x, sigmas)
    assert torch.allclose(out[0], torch.full((4, 4, 4), 0.5))
    assert torch.allclose(out[1], torch.full((4, 4, 4), -7.0))
    t = unet.calls[0]["timesteps"]
    assert torch.allclose(t, SCHEDULE.sigma_to_t(torch.cat([sigmas, sigmas])))
    scale = 1 / torch.sqrt(torch.cat([sigmas, sigmas]) ** 2 + 1)
    assert torch.allclose(unet.calls[0]["latents"], torch.ones((4, 4, 4, 4)) * scale.reshape(-1, 1, 1, 1))


@pytest.mark.parametrize("cond_tokens, uncond_tokens", [(77, 154), (154, 77)])
def test_contexts_of_different_lengths_run_as_two_calls(cond_tokens, uncond_tokens):
    unet = FakeUNet(eps_from_context)
    conditioning = _row_conditioning(1.0, 3.0, cond_tokens=cond_tokens, uncond_tokens=uncond_tokens)
    denoiser = CFGDenoiser(unet, SCHEDULE, PredictionType.EPSILON, conditioning, 2.0)
    x = torch.randn((2, 4, 4, 4), generator=torch.Generator().manual_seed(5))
    out = denoiser(x, torch.tensor(1.5))

    assert len(unet.calls) == 2
    first, second = unet.calls
    assert first["context"].shape == (2, cond_tokens, 8) and first["context"][:, 0, 0].tolist() == [1.0, 1.0]
    assert second["context"].shape == (2, uncond_tokens, 8) and second["context"][:, 0, 0].tolist() == [3.0, 3.0]
    for call in (first, second):
        assert torch.allclose(call["latents"], x / math.sqrt(1.5**2 + 1), rtol=1e-6)
        assert call["timesteps"].shape == (2,)
    expected = (x - 1.5 * 3.0) + ((x - 1.5 * 1.0) - (x - 1.5 * 3.0)) * 2.0
    assert torch.allclose(out, expected, rtol=1e-5, atol=1e-5)


def test_sdxl_added_conditioning_follows_the_cond_then_uncond_order():
    conditioning = PromptConditioning.fixed(
        EncodedText(torch.ones(1, 77, 8), torch.full((1, 6), 1.0)),
        EncodedText(torch.zeros(1, 77, 8), torch.full((1, 6), 2.0)),
    )
    time_ids = torch.full((1, 6), 10.0)
    unet = FakeUNet()
    denoiser = CFGDenoiser(unet, SCHEDULE, PredictionType.EPSILON, conditioning, 7.0, time_ids=time_ids)
    denoiser(torch.zeros((1, 4, 4, 4)), torch.tensor(1.0))
    added = unet.calls[0]["added"]
    assert added.text_embeds[:, 0].tolist() == [1.0, 2.0]
    assert added.time_ids[:, 0].tolist() == [10.0, 10.0]

    split_conditioning = PromptConditioning.fixed(
        EncodedText(torch.ones(1, 77, 8), torch.full((1, 6), 1.0)),
        EncodedText(torch.zeros(1, 154, 8), torch.full((1, 6), 2.0)),
    )
    split_unet = FakeUNet()
    split = CFGDenoiser(split_unet, SCHEDULE, PredictionType.EPSILON, split_conditioning, 7.0, time_ids=time_ids)
    split(torch.zeros((1, 4, 4, 4)), torch.tensor(1.0))
    assert [call["added"].text_embeds[0, 0].item() for call in split_unet.calls] == [1.0, 2.0]


def _schedule(*entries: tuple[int, float, int]) -> tuple[ScheduledText, ...]:
    """(end step, context value, tokens) -> schedule entries with constant contexts."""
    return tuple(ScheduledText(end, str(value), EncodedText(torch.full((1, tokens, 8), value))) for end, value, tokens in entries)


def test_and_parts_are_guided_with_their_weights_in_a1111_row_order():
    conditioning = PromptConditioning(
        positive=(WeightedSchedule(1.0, _schedule((10, 1.0, 77))), WeightedSchedule(-0.5, _schedule((10, 2.0, 154)))),
        negative=_schedule((10, 5.0, 154)),
    )
    unet = FakeUNet(eps_from_context)
    denoiser = CFGDenoiser(unet, SCHEDULE, PredictionType.EPSILON, conditioning, 3.0)
    x = torch.randn((2, 4, 4, 4), generator=torch.Generator().manual_seed(6))
    out = denoiser(x, torch.tensor(2.0))
    (call,) = unet.calls  # parts padded to 154 tokens (last vector repeated), same as the negative
    assert call["context"][:, 0, 0].tolist() == [1.0, 2.0, 1.0, 2.0, 5.0, 5.0]  # image 0's parts, image 1's, uncond
    assert torch.equal(call["context"][0, 77:], torch.ones(77, 8))
    u = x - 2.0 * 5.0
    expected = u + ((x - 2.0 * 1.0) - u) * (1.0 * 3.0) + ((x - 2.0 * 2.0) - u) * (-0.5 * 3.0)
    assert torch.allclose(out, expected, rtol=1e-5, atol=1e-5)


def test_scheduled_prompts_switch_on_the_call_counter_like_a1111():
    # "a [b:2]" over 4 steps: calls 0, 1 and 2 see the first text (current_step <= end), then the second.
    conditioning = PromptConditioning(
        positive=(WeightedSchedule(1.0, _schedule((2, 1.0, 77), (4, 2.0, 77))),),
        negative=_schedule((1, 7.0, 77), (4, 8.0, 77)),
    )
    unet = FakeUNet(eps_from_context)
    denoiser = CFGDenoiser(unet, SCHEDULE, PredictionType.EPSILON, conditioning, 7.0)
    for _ in range(4):
        denoiser(torch.zeros((1, 4, 4, 4)), torch.tensor(1.0))
    seen = [call["context"][:, 0, 0].tolist() for call in unet.calls]
    assert seen == [[1.0, 7.0], [1.0, 7.0], [1.0, 8.0], [2.0, 8.0]]
    assert conditioning.switch_steps() == [1, 2]


# --------------------------------------------------------------------------------------------
# 5. Seeds (A1111: one CPU generator per image)
# --------------------------------------------------------------------------------------------

LATENT_SHAPE = (4, 8, 8)


@pytest.mark.parametrize("seed", [0, 1234, 2**32 - 1])
def test_first_noise_is_the_first_draw_of_a_cpu_generator_seeded_with_the_seed(seed):
    noise = ImageNoise([seed], LATENT_SHAPE)
    expected = torch.randn(LATENT_SHAPE, generator=torch.Generator("cpu").manual_seed(seed))
    first = noise.next()
    assert first.shape == (1, *LATENT_SHAPE)
    assert first.dtype == torch.float32
    assert torch.equal(first[0], expected)


def test_later_noise_continues_the_same_generator():
    noise = ImageNoise([42], LATENT_SHAPE)
    generator = torch.Generator("cpu").manual_seed(42)
    first_draw = torch.randn(LATENT_SHAPE, generator=generator)
    second_draw = torch.randn(LATENT_SHAPE, generator=generator)
    assert torch.equal(noise.next()[0], first_draw)
    assert torch.equal(noise.next()[0], second_draw)


def test_batch_rows_equal_separate_single_seed_draws():
    seed = 987654
    batch = ImageNoise([seed, seed + 1], LATENT_SHAPE)
    single_0, single_1 = ImageNoise([seed], LATENT_SHAPE), ImageNoise([seed + 1], LATENT_SHAPE)
    for _ in range(3):  # initial noise and two ancestral draws
        rows = batch.next()
        assert rows.shape == (2, *LATENT_SHAPE)
        assert torch.equal(rows[0], single_0.next()[0])
        assert torch.equal(rows[1], single_1.next()[0])
    assert not torch.equal(ImageNoise([seed], LATENT_SHAPE).next(), ImageNoise([seed + 1], LATENT_SHAPE).next())


# --------------------------------------------------------------------------------------------
# 6. Resolving sampler and schedule names (A1111's sampler table)
# --------------------------------------------------------------------------------------------


def _plan(sampler: str, schedule: str = "Automatic", steps: int = 12):
    return resolve_sampling(GenerationRequest(prompt="a cat", steps=steps, sampler=sampler, schedule=schedule), SCHEDULE)


@pytest.mark.parametrize("sampler", ["Euler a", "Euler", "euler A", "k_euler_a"])
def test_automatic_schedule_for_euler_samplers_is_uniform(sampler):
    plan = _plan(sampler)
    assert plan.schedule_label == "Automatic"
    assert torch.equal(plan.sigmas, schedules.uniform(12, SCHEDULE))


def test_euler_a_name_resolves_to_the_ancestral_sampler():
    assert _plan("Euler a").sampler.name == "Euler a"
    assert _plan("Euler a").sampler.function is sample_euler_ancestral
    assert _plan("Euler").sampler.function is sample_euler


def test_automatic_schedule_for_dpmpp_2m_is_karras():
    plan = _plan("DPM++ 2M")
    assert plan.sampler.name == "DPM++ 2M"
    assert plan.sampler.function is sample_dpmpp_2m
    assert plan.schedule_label == "Karras"
    assert torch.equal(plan.sigmas, schedules.karras(12, SCHEDULE))


def test_old_combined_name_implies_its_schedule():
    plan = _plan("DPM++ 2M Karras")
    assert plan.sampler.name == "DPM++ 2M"
    assert plan.schedule_label == "Karras"
    assert torch.equal(plan.sigmas, schedules.karras(12, SCHEDULE))
    assert find_sampler("Euler Exponential")[1] == "Exponential"


@pytest.mark.parametrize("written", ["exponential", "Exponential", " EXPONENTIAL "])
def test_explicit_schedule_is_case_insensitive(written):
    plan = _plan("Euler a", written, steps=9)
    assert plan.schedule_label == "Exponential"
    assert torch.equal(plan.sigmas, schedules.exponential(9, SCHEDULE))


def test_explicit_schedule_overrides_the_sampler_default():
    plan = _plan("DPM++ 2M", "Uniform", steps=9)
    assert plan.schedule_label == "Uniform"
    assert torch.equal(plan.sigmas, schedules.uniform(9, SCHEDULE))


def test_sigmas_have_one_entry_per_step_plus_the_final_zero():
    for steps in (1, 20, 150):
        assert _plan("DPM++ 2M", steps=steps).sigmas.shape == (steps + 1,)


def test_unknown_sampler_is_rejected_with_the_valid_choices():
    with pytest.raises(InvalidRequest) as caught:
        _plan("DDIM Fancy")
    message = str(caught.value)
    assert "DDIM Fancy" in message
    for name in sampler_names():
        assert name in message
    assert caught.value.details.get("field") == "sampler"


def test_unknown_schedule_is_rejected_with_the_valid_choices():
    with pytest.raises(InvalidRequest) as caught:
        _plan("Euler", "Polyexponential-ish")
    message = str(caught.value)
    for label in ("Automatic", "Uniform", "Karras", "Exponential"):
        assert label in message
    assert caught.value.details.get("field") == "schedule"
