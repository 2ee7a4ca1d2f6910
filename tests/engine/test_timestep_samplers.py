"""A1111's timestep samplers: DDIM, DDIM CFG++, PLMS and UniPC.

Known answers that do not come from this code:
* the timestep lists of A1111's ``CompVisSampler.get_timesteps`` for 20, 30 and 50 steps;
* DDIM with eta 0 is Euler on the probability-flow ODE in k-diffusion's variables
  (x / sqrt(a), sigma = sqrt((1 - a) / a)): checked against our ``sample_euler``;
* diffusers' ``DDIMScheduler`` (``timestep_spacing="leading"``, ``steps_offset=1``,
  ``set_alpha_to_one=False``) takes the same DDIM steps on the same timesteps: compared step by step,
  with eta 0 and eta 0.5;
* diffusers' ``UniPCMultistepScheduler`` (order 3, bh1, data prediction, lower-order final steps)
  takes the same steps where its integer timesteps coincide with UniPC's time-uniform ones;
* for data ~ N(0, s^2 I) the exact eps is E[n | x_t] = sqrt(1 - a) x / (a s^2 + 1 - a) and the
  probability-flow ODE just rescales x by the marginal std sqrt(a s^2 + 1 - a): UniPC converges to
  that solution and beats DDIM at equal model calls; PLMS beats DDIM too.
diffusers' ``PNDMScheduler(skip_prk_steps=True)`` is NOT A1111's PLMS (its first steps differ: A1111
takes a pseudo improved Euler step with an extra model call), so PLMS is not compared with it.
End to end on the tiny checkpoints: reproducible, seed-dependent, batch = single runs, v-prediction.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from desktop.core.errors import InvalidRequest
from desktop.core.infotext import parse_infotext
from desktop.core.requests import GenerationRequest
from desktop.engine.denoiser import CFGDenoiser, CompVisTimestepsDenoiser, DiscreteSchedule
from desktop.engine.devices import plan_devices
from desktop.engine.loading import alphas_cumprod_from_config, load_model
from desktop.engine.prompt_conditioning import EncodedText, PromptConditioning
from desktop.engine.samplers import SamplerKind, find_sampler, sampler_names
from desktop.engine.samplers.ddim import sample_ddim
from desktop.engine.samplers.ddim_cfgpp import sample_ddim_cfgpp
from desktop.engine.samplers.euler import sample_euler
from desktop.engine.samplers.plms import sample_plms
from desktop.engine.samplers.timesteps import compvis_timesteps
from desktop.engine.samplers.unipc import NoiseScheduleVP, interpolate_fn, sample_unipc
from desktop.engine.txt2img import Txt2ImgPipeline, resolve_sampling
from desktop.library.taxonomy import PredictionType

SD_CONFIG = {"beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012, "num_train_timesteps": 1000}
ALPHAS = alphas_cumprod_from_config(SD_CONFIG)
SCHEDULE = DiscreteSchedule(ALPHAS)
LOG_ALPHAS = np.log(ALPHAS.double().numpy())
TIMESTEP_SAMPLERS = ["DDIM", "DDIM CFG++", "PLMS", "UniPC"]


def _no_callback(i: int, denoised: torch.Tensor) -> None:
    pass


def _zero_noise(sigma, sigma_next):
    return torch.zeros(1)


def alpha_at(t: torch.Tensor) -> torch.Tensor:
    """alphas_cumprod at a (fractional) timestep, log-linear between training steps, in float64.

    UniPC's continuous schedule interpolates log(alpha) the same way, so this analytic model and the
    sampler agree on the noise level of every fractional timestep.
    """
    return torch.from_numpy(np.exp(np.interp(t.double().numpy(), np.arange(1000), LOG_ALPHAS)))


def gaussian_eps_model(s: float, calls: list | None = None):
    """The exact eps prediction for x0 ~ N(0, s^2 I) in VP space: sqrt(1 - a) x / (a s^2 + 1 - a)."""

    def model(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if calls is not None:
            calls.append(t.clone())
        a = alpha_at(t.reshape(-1)).reshape(-1, 1, 1, 1)
        return (torch.sqrt(1 - a) * x.double() / (a * s**2 + 1 - a)).to(x.dtype)

    return model


def exact_flow(x_T: torch.Tensor, a_T: float, a_end: float, s: float) -> torch.Tensor:
    """The probability-flow ODE solution for Gaussian data: x scales with the marginal std."""
    return x_T * math.sqrt(a_end * s**2 + 1 - a_end) / math.sqrt(a_T * s**2 + 1 - a_T)


def _start(s: float, a_T: float, seed: int = 7) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn((2, 4, 8, 8), generator=generator) * math.sqrt(a_T * s**2 + 1 - a_T)


# --------------------------------------------------------------------------------------------
# 1. A1111's timesteps, and what the plan records
# --------------------------------------------------------------------------------------------


def test_timesteps_follow_a1111_get_timesteps():
    assert compvis_timesteps(20).tolist() == [1 + 50 * k for k in range(20)]
    thirty = compvis_timesteps(30).tolist()  # stride 1000 // 30 = 33 leaves room for a 31st value
    assert thirty == [1 + 33 * k for k in range(31)] and thirty[-1] == 991
    assert compvis_timesteps(50).tolist() == [1 + 20 * k for k in range(50)]
    assert compvis_timesteps(1).tolist() == [1]
    assert compvis_timesteps(150).tolist() == [1 + 6 * k for k in range(167)]
    assert compvis_timesteps(7).dtype == torch.int64


@pytest.mark.parametrize("sampler", TIMESTEP_SAMPLERS + ["ddim", "ddim_cfgpp", "plms", "unipc"])
def test_timestep_samplers_ignore_the_schedule_type_and_record_the_choice(sampler):
    for schedule in ("Automatic", "Karras", "Exponential"):
        plan = resolve_sampling(GenerationRequest(prompt="a", steps=20, sampler=sampler, schedule=schedule), SCHEDULE)
        assert plan.sampler.kind is SamplerKind.TIMESTEPS
        assert plan.schedule_label == schedule  # A1111's infotext writes p.scheduler as chosen
        assert plan.timesteps.tolist() == compvis_timesteps(20).tolist()
        assert torch.equal(plan.steps_input, plan.timesteps)
        # for the record: the training sigmas of those timesteps, high to low
        assert float(plan.sigmas[0]) == pytest.approx(math.sqrt((1 - ALPHAS[951]) / ALPHAS[951]), rel=1e-6)


def test_names_order_and_aliases_follow_a1111():
    names = sampler_names()
    assert names[names.index("DDIM") :] == ["DDIM", "DDIM CFG++", "PLMS", "UniPC", "LCM"]
    for alias, name in [("ddim", "DDIM"), ("ddim_cfgpp", "DDIM CFG++"), ("plms", "PLMS"), ("unipc", "UniPC"), ("k_lcm", "LCM")]:
        spec, implied = find_sampler(alias)
        assert (spec.name, implied) == (name, None)
    # PLMS's extra first-step call does not make it second order in A1111's prompt-schedule count
    assert not any(find_sampler(name)[0].second_order for name in TIMESTEP_SAMPLERS + ["LCM"])


# --------------------------------------------------------------------------------------------
# 2. DDIM
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("steps", [10, 20, 50])
def test_ddim_with_eta_zero_is_euler_on_the_probability_flow_ode(steps):
    s = 0.5
    timesteps = compvis_timesteps(steps)
    a = ALPHAS[timesteps].double()
    x_T = _start(s, float(a[-1])).double()
    out = sample_ddim(
        gaussian_eps_model(s), x_T.clone(), timesteps, alphas_cumprod=ALPHAS, callback=_no_callback, noise=_zero_noise
    )

    # The same walk in k-diffusion's variables: x_k = x / sqrt(a), sigma = sqrt((1 - a) / a).
    sigmas = torch.sqrt((1 - a) / a).flip(0)

    def denoiser(x_k, sigma):
        return x_k * (s**2 / (s**2 + sigma**2))

    euler = sample_euler(denoiser, x_T / torch.sqrt(a[-1]), sigmas, callback=_no_callback, noise=_zero_noise)
    assert torch.allclose(out / torch.sqrt(a[0]), euler, rtol=1e-4, atol=1e-4)
    # and it lands near the exact solution at timestep 1, first order: the error falls like 1 / steps
    exact = exact_flow(x_T, float(a[-1]), float(a[0]), s)
    assert float((out - exact).abs().max() / exact.abs().max()) < 2.5 / steps


def test_ddim_steps_model_calls_noise_draws_and_callbacks():
    timesteps = compvis_timesteps(20)
    calls, draws, seen = [], [], []
    x = torch.randn((1, 4, 4, 4), generator=torch.Generator().manual_seed(1))

    def noise(sigma, sigma_next):
        draws.append((float(sigma), float(sigma_next)))
        return torch.randn(x.shape, generator=generator)

    generator = torch.Generator().manual_seed(2)
    out = sample_ddim(gaussian_eps_model(1.0, calls), x.clone(), timesteps, alphas_cumprod=ALPHAS, callback=lambda i, d: seen.append(i), noise=noise)
    # A1111 walks len - 1 steps (951 -> 1): 19 model calls at 20 steps, never at timestep 1.
    assert [float(t[0]) for t in calls] == [951.0 - 50 * k for k in range(19)]
    assert seen == list(range(19))
    # eta = 0 still draws one noise per step from the images' stream (times 0), as A1111 does
    assert len(draws) == 19
    assert draws[0] == pytest.approx((float(SCHEDULE.sigmas[951]), float(SCHEDULE.sigmas[901])), rel=1e-5)
    silent = sample_ddim(gaussian_eps_model(1.0), x.clone(), timesteps, alphas_cumprod=ALPHAS, callback=_no_callback, noise=_zero_noise)
    assert torch.equal(out, silent)


def _diffusers_ddim():
    from diffusers import DDIMScheduler

    scheduler = DDIMScheduler(
        beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, timestep_spacing="leading",
        steps_offset=1, set_alpha_to_one=False, clip_sample=False,
    )
    scheduler.alphas_cumprod = ALPHAS.clone()  # the same float32 table (diffusers builds its betas in float32)
    scheduler.final_alpha_cumprod = ALPHAS[0].clone()
    scheduler.set_timesteps(20)
    return scheduler


def nonlinear_eps(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Any deterministic eps model will do for comparing two implementations of the same update."""
    return torch.tanh(x) * 0.7 + 0.1 * torch.cos(t.reshape(-1, 1, 1, 1) / 97.0) * x


@pytest.mark.parametrize("eta", [0.0, 0.5])
def test_ddim_matches_diffusers_ddim_scheduler_step_by_step(eta):
    scheduler = _diffusers_ddim()
    timesteps = compvis_timesteps(20)
    assert scheduler.timesteps.tolist() == timesteps.flip(0).tolist()  # the same 20 timesteps
    x = torch.randn((2, 4, 8, 8), generator=torch.Generator().manual_seed(3))
    draws = [torch.randn((2, 4, 8, 8), generator=torch.Generator().manual_seed(100 + k)) for k in range(19)]
    ours: list[torch.Tensor] = []
    feed = iter(draws)
    sample_ddim(
        nonlinear_eps, x.clone(), timesteps, alphas_cumprod=ALPHAS, eta=eta,
        callback=lambda i, pred_x0: ours.append(pred_x0), noise=lambda sigma, sigma_next: next(feed),
    )

    sample = x.clone()
    for k, t in enumerate(scheduler.timesteps[:19]):  # A1111 stops before diffusers' last step (1 -> 0)
        eps = nonlinear_eps(sample, torch.full((2,), float(t)))
        step = scheduler.step(eps, int(t), sample, eta=eta, variance_noise=draws[k])
        assert torch.allclose(ours[k], step.pred_original_sample, atol=1e-4, rtol=1e-4)
        sample = step.prev_sample
    final = sample_ddim(
        nonlinear_eps, x.clone(), timesteps, alphas_cumprod=ALPHAS, eta=eta,
        callback=_no_callback, noise=lambda sigma, sigma_next, feed=iter(draws): next(feed),
    )
    assert torch.allclose(final, sample, atol=1e-4, rtol=1e-4)


# --------------------------------------------------------------------------------------------
# 3. DDIM CFG++
# --------------------------------------------------------------------------------------------


class FakeUNet:
    """A UNet backend computing ``output(latents, timesteps, context)``; records the timesteps."""

    def __init__(self, output) -> None:
        self.output = output
        self.timesteps: list[torch.Tensor] = []

    def predict(self, latents, timesteps, context, added=None):
        self.timesteps.append(timesteps.clone())
        return self.output(latents, timesteps, context)


def _constant_conditioning(cond: float, uncond: float) -> PromptConditioning:
    return PromptConditioning.fixed(EncodedText(torch.full((1, 77, 8), cond)), EncodedText(torch.full((1, 77, 8), uncond)))


def context_eps(latents, timesteps, context):
    """eps = 0.5 x + the row's context value: conditional and unconditional rows differ by a constant."""
    return 0.5 * latents + context[:, 0, 0].reshape(-1, 1, 1, 1)


def test_cfgpp_divides_the_scale_by_12_5_and_renoises_along_the_unconditional_eps():
    x = torch.randn((2, 4, 4, 4), generator=torch.Generator().manual_seed(5))
    timesteps = compvis_timesteps(5)  # 1, 201, ..., 801: four steps
    steps: list[torch.Tensor] = []
    guided = CFGDenoiser(
        FakeUNet(context_eps), SCHEDULE, PredictionType.EPSILON, _constant_conditioning(0.3, -0.2), 7.0,
        wrapper=CompVisTimestepsDenoiser,
    )
    out = sample_ddim_cfgpp(guided, x.clone(), timesteps, alphas_cumprod=ALPHAS, callback=lambda i, d: steps.append(d), noise=_zero_noise)
    assert guided.cond_scale_multiplier == pytest.approx(0.08)

    # CFG++ (Chung et al. 2024): x0 from the guided eps with lambda = cfg / 12.5, then back to the
    # previous timestep along the unconditional eps.
    expected, lam = x.clone().double(), 7.0 / 12.5
    for index in range(len(timesteps) - 1, 0, -1):
        a_t, a_prev = float(ALPHAS[timesteps[index]]), float(ALPHAS[timesteps[index - 1]])
        eps_c, eps_u = 0.5 * expected + 0.3, 0.5 * expected - 0.2
        eps = eps_u + lam * (eps_c - eps_u)
        x0 = (expected - math.sqrt(1 - a_t) * eps) / math.sqrt(a_t)
        expected = math.sqrt(a_prev) * x0 + math.sqrt(1 - a_prev) * eps_u
    assert torch.allclose(out.double(), expected, atol=1e-5, rtol=1e-5)
    assert len(steps) == 4


def test_cfgpp_equals_ddim_when_the_prompts_agree_and_differs_otherwise():
    x = torch.randn((1, 4, 4, 4), generator=torch.Generator().manual_seed(6))
    timesteps = compvis_timesteps(8)

    def run(sampler, cond, cfg):
        model = CFGDenoiser(
            FakeUNet(context_eps), SCHEDULE, PredictionType.EPSILON, _constant_conditioning(cond, -0.2), cfg,
            wrapper=CompVisTimestepsDenoiser,
        )
        return sampler(model, x.clone(), timesteps, alphas_cumprod=ALPHAS, callback=_no_callback, noise=_zero_noise)

    # with cond = uncond the guidance and the re-noising direction are the same eps
    assert torch.allclose(run(sample_ddim_cfgpp, -0.2, 7.0), run(sample_ddim, -0.2, 7.0), atol=1e-6)
    # at CFG 12.5 the guided eps is the conditional one; only the re-noising direction differs from DDIM at CFG 1
    assert not torch.allclose(run(sample_ddim_cfgpp, 0.3, 12.5), run(sample_ddim, 0.3, 1.0), atol=1e-3)


# --------------------------------------------------------------------------------------------
# 4. PLMS
# --------------------------------------------------------------------------------------------


def test_plms_first_step_is_pseudo_improved_euler_with_one_extra_call():
    timesteps = compvis_timesteps(10)
    calls: list[torch.Tensor] = []
    x = torch.randn((1, 4, 4, 4), generator=torch.Generator().manual_seed(8))
    seen: list[int] = []
    sample_plms(gaussian_eps_model(0.7, calls), x.clone(), timesteps, alphas_cumprod=ALPHAS, callback=lambda i, d: seen.append(i), noise=_zero_noise)
    # 9 steps (901 -> 1), 10 calls: the first step also asks the model at the next timestep
    assert [float(t[0]) for t in calls] == [901.0, 801.0] + [801.0 - 100 * k for k in range(8)]
    assert seen == list(range(9))

    one_step = compvis_timesteps(10)[-2:]  # 801, 901: a single step from 901 to 801
    model = gaussian_eps_model(0.7)
    out = sample_plms(model, x.clone(), one_step, alphas_cumprod=ALPHAS, callback=_no_callback, noise=_zero_noise)
    a_t, a_prev = ALPHAS[901].double(), ALPHAS[801].double()
    xd = x.double()

    def ddim_step(eps):
        return torch.sqrt(a_prev) * (xd - torch.sqrt(1 - a_t) * eps) / torch.sqrt(a_t) + torch.sqrt(1 - a_prev) * eps

    e_t = model(xd, torch.tensor([901.0]))
    e_next = model(ddim_step(e_t), torch.tensor([801.0]))
    assert torch.allclose(out.double(), ddim_step((e_t + e_next) / 2), atol=1e-5)


@pytest.mark.parametrize("steps", [10, 20, 50])
def test_plms_is_closer_to_the_exact_flow_than_ddim(steps):
    s = 0.5
    timesteps = compvis_timesteps(steps)
    a_T, a_end = float(ALPHAS[timesteps[-1]]), float(ALPHAS[timesteps[0]])
    x_T = _start(s, a_T).double()
    exact = exact_flow(x_T, a_T, a_end, s)
    errors = {}
    for name, sampler in (("ddim", sample_ddim), ("plms", sample_plms)):
        out = sampler(gaussian_eps_model(s), x_T.clone(), timesteps, alphas_cumprod=ALPHAS, callback=_no_callback, noise=_zero_noise)
        errors[name] = float((out - exact).abs().max())
    assert errors["plms"] < errors["ddim"] / 3


# --------------------------------------------------------------------------------------------
# 5. UniPC
# --------------------------------------------------------------------------------------------


def test_noise_schedule_vp_interpolates_log_alpha_between_training_steps():
    ns = NoiseScheduleVP(ALPHAS)
    knots = torch.tensor([0.001, 0.5, 0.251, 1.0])  # t = (n + 1) / 1000 is training step n
    expected = 0.5 * torch.log(ALPHAS[[0, 499, 250, 999]])
    assert torch.allclose(ns.marginal_log_mean_coeff(knots), expected, atol=1e-6)
    between = torch.tensor([0.1005])  # halfway between steps 99 and 100
    halfway = 0.25 * (torch.log(ALPHAS[99]) + torch.log(ALPHAS[100]))
    assert float(ns.marginal_log_mean_coeff(between)) == pytest.approx(float(halfway), rel=1e-5)
    t = torch.tensor([0.3, 0.7])
    alpha, std = ns.marginal_alpha(t), ns.marginal_std(t)
    assert torch.allclose(alpha**2 + std**2, torch.ones(2), atol=1e-6)
    assert torch.allclose(ns.marginal_lambda(t), torch.log(alpha / std), atol=1e-5)
    # outside the knots the line through the end segment continues
    xp, yp = torch.tensor([[0.0, 1.0, 2.0]]), torch.tensor([[0.0, 10.0, 30.0]])
    assert interpolate_fn(torch.tensor([[-1.0], [0.5], [3.0]]), xp, yp).flatten().tolist() == [-10.0, 5.0, 50.0]


@pytest.mark.parametrize("steps", [3, 5, 20, 30])
def test_unipc_calls_the_model_once_per_step_at_a1111s_fractional_timesteps(steps):
    timesteps = compvis_timesteps(steps)
    n = len(timesteps)  # A1111 passes the length of its list: 31 for 30 steps
    calls: list[torch.Tensor] = []
    seen: list[int] = []
    x = torch.randn((1, 4, 4, 4), generator=torch.Generator().manual_seed(9))
    sample_unipc(gaussian_eps_model(1.0, calls), x, timesteps, alphas_cumprod=ALPHAS, callback=lambda i, d: seen.append(i), noise=_zero_noise)
    assert len(calls) == n and seen == list(range(n))
    # time_uniform: t = linspace(1, 1/1000, n + 1), given to the model as (t - 1/1000) * 1000
    expected = [(t - 0.001) * 1000 for t in np.linspace(1.0, 0.001, n + 1)[:-1]]
    assert [float(t[0]) for t in calls] == pytest.approx(expected, abs=1e-3)


def test_unipc_needs_as_many_steps_as_its_order():
    x = torch.zeros((1, 4, 4, 4))
    with pytest.raises(InvalidRequest):
        sample_unipc(gaussian_eps_model(1.0), x, compvis_timesteps(2), alphas_cumprod=ALPHAS, callback=_no_callback, noise=_zero_noise)


def _unipc_error(n: int, s: float) -> float:
    a_T, a_end = float(ALPHAS[999]), float(ALPHAS[0])  # UniPC runs from t = 1 to t = 1/1000
    x_T = _start(s, a_T).double()
    out = sample_unipc(gaussian_eps_model(s), x_T.clone(), torch.arange(n), alphas_cumprod=ALPHAS.double(), callback=_no_callback, noise=_zero_noise)
    exact = exact_flow(x_T, a_T, a_end, s)
    return float((out - exact).abs().max() / exact.abs().max())


def _ddim_error(nfe: int, s: float) -> float:
    timesteps = torch.linspace(0, 999, nfe + 1).round().long()  # nfe steps from 999 to 0
    a_T, a_end = float(ALPHAS[999]), float(ALPHAS[0])
    x_T = _start(s, a_T).double()
    out = sample_ddim(gaussian_eps_model(s), x_T.clone(), timesteps, alphas_cumprod=ALPHAS, callback=_no_callback, noise=_zero_noise)
    exact = exact_flow(x_T, a_T, a_end, s)
    return float((out - exact).abs().max() / exact.abs().max())


@pytest.mark.parametrize("s", [0.5, 2.0])
def test_unipc_converges_to_the_exact_flow_and_beats_ddim_at_equal_model_calls(s):
    # With A1111's settings the last step is first order without a corrector, and time-uniform
    # steps make it span a wide log-SNR interval near t = 0 (lambda ~ -log(t) / 2): that step
    # dominates the error, which therefore falls slowly. The high-order steps are checked
    # against diffusers below.
    errors = [_unipc_error(n, s) for n in (5, 10, 20, 40)]
    ddim = [_ddim_error(n, s) for n in (5, 10, 20, 40)]
    assert errors == sorted(errors, reverse=True) and errors[-1] < 0.03
    assert all(ours < theirs for ours, theirs in zip(errors, ddim))
    assert errors[-1] < ddim[-1] / 2


@pytest.mark.parametrize("n", [3, 9])
def test_unipc_matches_diffusers_unipc_where_their_times_coincide(n):
    # For n dividing 999, UniPC's time-uniform model times (t - 1/1000) * 1000 = 999, 999 - 999/n,
    # ..., 0 are integers: diffusers' "linspace" timesteps ending at sigma_min. Its lower-order final
    # steps apply only below 15 steps, the original's always, so only short runs coincide.
    from diffusers import UniPCMultistepScheduler

    scheduler = UniPCMultistepScheduler(
        beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, solver_order=3, predict_x0=True,
        solver_type="bh1", lower_order_final=True, timestep_spacing="linspace", final_sigmas_type="sigma_min",
        prediction_type="epsilon",
    )
    scheduler.alphas_cumprod = ALPHAS.clone()
    scheduler.set_timesteps(n)
    assert scheduler.timesteps.tolist() == [999 - 999 // n * k for k in range(n)]
    x = torch.randn((2, 4, 8, 8), generator=torch.Generator().manual_seed(3))
    sample = x.clone()
    for t in scheduler.timesteps:
        sample = scheduler.step(nonlinear_eps(sample, torch.full((2,), float(t))), t, sample).prev_sample
    ours = sample_unipc(nonlinear_eps, x.clone(), compvis_timesteps(n)[:n], alphas_cumprod=ALPHAS, callback=_no_callback, noise=_zero_noise)
    assert torch.allclose(ours, sample, atol=1e-4, rtol=1e-4)


# --------------------------------------------------------------------------------------------
# 6. The timestep wrapper: unscaled input, timesteps as given, eps out (v converted)
# --------------------------------------------------------------------------------------------


def test_timestep_wrapper_gives_the_unet_the_unscaled_latent_and_timestep():
    unet = FakeUNet(context_eps)
    model = CFGDenoiser(unet, SCHEDULE, PredictionType.EPSILON, _constant_conditioning(1.0, 0.0), 3.0, wrapper=CompVisTimestepsDenoiser)
    x = torch.randn((2, 4, 4, 4), generator=torch.Generator().manual_seed(10))
    out = model(x, torch.full((2,), 951.0))
    assert unet.timesteps[0].tolist() == [951.0] * 4
    # eps = 0.5 x + context; guided = uncond + 3 (cond - uncond) = 0.5 x + 3
    assert torch.allclose(out, 0.5 * x + 3.0, atol=1e-6)
    assert torch.allclose(model.last_noise_uncond, 0.5 * x, atol=1e-6)


@pytest.mark.parametrize("t", [1, 500, 999])
def test_v_model_output_becomes_the_true_noise(t):
    generator = torch.Generator().manual_seed(11)
    x0, n = torch.randn((1, 4, 4, 4), generator=generator), torch.randn((1, 4, 4, 4), generator=generator)
    a = ALPHAS[t]
    x_t = a.sqrt() * x0 + (1 - a).sqrt() * n
    v = a.sqrt() * n - (1 - a).sqrt() * x0  # the v-prediction target
    unet = FakeUNet(lambda latents, timesteps, context: v.repeat(latents.shape[0], 1, 1, 1))
    model = CFGDenoiser(unet, SCHEDULE, PredictionType.V_PREDICTION, _constant_conditioning(1.0, 0.0), 7.0, wrapper=CompVisTimestepsDenoiser)
    # fractional timesteps use alphas_cumprod at the truncated integer (A1111's t.to(int))
    assert torch.allclose(model(x_t, torch.tensor([t + 0.6])), n, atol=1e-5)


# --------------------------------------------------------------------------------------------
# 7. End to end on the tiny checkpoints
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pipeline(tiny_sd1):
    return Txt2ImgPipeline(load_model(tiny_sd1, plan_devices("cpu", "fp32")))


def _run(pipeline, sampler: str, seed: int, **overrides):
    values = dict(prompt="a cat", negative_prompt="blurry", steps=3, width=32, height=32, seed=seed, sampler=sampler)
    values.update(overrides)
    return pipeline(GenerationRequest(**values))


def _pixels(result, index: int = 0) -> np.ndarray:
    return np.asarray(result.images[index].image, dtype=np.int16)


@pytest.mark.parametrize("sampler", TIMESTEP_SAMPLERS)
def test_timestep_samplers_are_reproducible_seed_dependent_and_batch_like_single_runs(pipeline, sampler):
    first, other = _run(pipeline, sampler, 31), _run(pipeline, sampler, 32)
    assert first.sampler_name == sampler and first.schedule_label == "Automatic"
    params = parse_infotext(first.images[0].infotext)[2]
    # The schedule type is ignored by these samplers; infotext records the choice, as A1111 does.
    assert (params["Sampler"], params["Schedule type"]) == (sampler, "Automatic")
    karras = _run(pipeline, sampler, 31, schedule="Karras")
    assert parse_infotext(karras.images[0].infotext)[2]["Schedule type"] == "Karras"
    assert np.array_equal(_pixels(karras), _pixels(first))
    assert np.array_equal(_pixels(_run(pipeline, sampler, 31)), _pixels(first))
    assert not np.array_equal(_pixels(other), _pixels(first))
    # Image i of a batch uses seed + i and its own noise stream. The UNet's batched CPU kernels
    # round a little differently from single ones, hence one level of tolerance.
    batch = _run(pipeline, sampler, 31, batch_size=2)
    assert [image.seed for image in batch.images] == [31, 32]
    assert np.abs(_pixels(batch, 0) - _pixels(first)).max() <= 1
    assert np.abs(_pixels(batch, 1) - _pixels(other)).max() <= 1


def test_timestep_samplers_start_from_the_unscaled_noise(pipeline):
    seen = []
    original = pipeline.unet.predict

    def spy(latents, timesteps, context, added=None):
        seen.append((latents.clone(), timesteps.clone()))
        return original(latents, timesteps, context, added)

    pipeline.unet.predict = spy
    try:
        _run(pipeline, "DDIM", 5, steps=5)
    finally:
        del pipeline.unet.predict
    latents, timesteps = seen[0]
    noise = torch.randn(latents.shape[1:], generator=torch.Generator().manual_seed(5))
    assert timesteps.tolist() == [801.0, 801.0]  # timesteps 1, 201, ..., 801
    assert torch.equal(latents[0], noise) and torch.equal(latents[1], noise)
    assert len(seen) == 4  # A1111's DDIM at 5 steps: 801 -> 1


@pytest.fixture(scope="module")
def v_pipeline(tmp_path_factory):
    from tests.fixtures import ldm_layout

    path = tmp_path_factory.mktemp("v") / "tiny_sd2_v.safetensors"
    ldm_layout.write_checkpoint(path, ldm_layout.sd2_checkpoint_shapes(tiny=True), metadata={"modelspec.prediction_type": "v"})
    return Txt2ImgPipeline(load_model(path, plan_devices("cpu", "fp32")))


@pytest.mark.parametrize("sampler", TIMESTEP_SAMPLERS)
def test_timestep_samplers_run_v_prediction_models(v_pipeline, sampler):
    assert v_pipeline.model.prediction is PredictionType.V_PREDICTION
    first = _run(v_pipeline, sampler, 41)
    assert first.images and not first.cancelled
    # the same weights read as an eps model give another picture: the v -> eps conversion is applied
    v_pipeline.model.prediction = PredictionType.EPSILON
    try:
        as_eps = _run(v_pipeline, sampler, 41)
    finally:
        v_pipeline.model.prediction = PredictionType.V_PREDICTION
    assert not np.array_equal(_pixels(as_eps), _pixels(first))
