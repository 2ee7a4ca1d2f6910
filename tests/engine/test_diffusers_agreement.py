"""Our k-diffusion-style samplers against the diffusers schedulers that do the same maths.

Both sides drive the same deterministic model (an analytic eps(x_in, t, context), so the test
is fast and the model is not linear in x or constant in t) with classifier-free guidance
(CFG 7, cond and uncond in one batch), from the same starting latent. Our side is the real
``CFGDenoiser`` (input scaling ``c_in = 1 / sqrt(sigma^2 + 1)``, fractional timestep from
sigma) and the sampler from the registry; the diffusers side is the plain loop
``scale_model_input -> model (batch 2) -> CFG -> step``. Every model call records its input
(scaled latent and timestep), so the two runs are compared call by call, not just at the end.
Latents must agree within 1e-4; timesteps within 1e-3 (out of 999: the two sides compute
sigma -> t in float32 and float64, observed <= 3e-4).

What agrees, and with which diffusers settings (diffusers 0.42; SD's ``scaled_linear`` betas
0.00085..0.012, 1000 steps, ``timestep_spacing="linspace"``, ``final_sigmas_type="zero"``):

* Euler / ``EulerDiscreteScheduler``; Heun / ``HeunDiscreteScheduler``; LMS /
  ``LMSDiscreteScheduler``; Euler a / ``EulerAncestralDiscreteScheduler`` fed the same CPU
  generator stream (our ImageNoise: first draw = initial noise, the next draws = ancestral
  noise; diffusers draws from the generator it is given in ``step``, in the same order; its
  extra draw at the last step, where sigma_up = 0, comes after everything we use).
  The uniform sigmas are EQUAL only when the timesteps are whole numbers, i.e. when steps - 1
  divides 999 (steps 2, 4, 10, 28, 38, 112, ...). A1111 (k-diffusion ``get_sigmas``)
  interpolates the training sigmas linearly in log-sigma at fractional timesteps; diffusers
  (``interpolation_type="linear"``) interpolates sigma itself linearly, which gives slightly
  larger sigmas: at 20 steps up to 1.7e-5 relative. That moves the latents by about 1e-5, so
  the runs still agree within 1e-4 (tested at 20 steps), but they are not the same numbers.
  ``interpolation_type="log_linear"`` is not the fix: it is a different (exponential) schedule.
* Karras sigmas (``use_karras_sigmas=True``) match at any step count: the same formula with
  the model's own sigma_min / sigma_max and rho 7. Euler, Heun and LMS then pass fractional
  timesteps, as A1111 does.
* DPM++ 2M Karras / ``DPMSolverMultistepScheduler(algorithm_type="dpmsolver++",
  solver_order=2, solver_type="midpoint", use_karras_sigmas=True, final_sigmas_type="zero",
  lower_order_final=True, euler_at_final=False)``: the same sigmas and the same update
  (diffusers works on the variance-preserving sample x / sqrt(sigma^2 + 1), which is exactly
  our scaled model input, and at sigma = 0 both are x; ``final_sigmas_type="zero"`` makes the
  last step first order at any step count, like k-diffusion's ``sigmas[i + 1] == 0`` branch).
  One difference remains: with Karras sigmas diffusers ROUNDS the timesteps it gives the model
  to integers (``timesteps.round()`` for every beta schedule but ``squaredcos_cap_v2``), while
  A1111 passes the fractional t. The test therefore feeds the model the unrounded t of each
  diffusers sigma and checks separately that diffusers' own timesteps are the rounded ones.
* DPM2 / ``KDPM2DiscreteScheduler``: the step (midpoint in log-sigma, second call at the
  fractional t of the midpoint, Euler to sigma = 0) is the same, but the sigmas are not: A1111
  schedules steps + 1 sigmas for DPM2 and drops the next-to-last one
  (``discard_next_to_last_sigma``), diffusers has no such option, and ``set_timesteps`` takes
  no custom sigmas. So our ``sample_dpm_2`` is compared on diffusers' sigmas, and the test
  pins that A1111's DPM2 sigmas differ from them. A1111 1.10 runs DPM2 with Karras sigmas by
  default ("Automatic"), and there KDPM2 differs once more: it rounds the whole-step timesteps
  (not the midpoints) it gives the model. Neither default DPM2 run can be reproduced with
  diffusers, so only the step itself is compared.

* DPM2 a / ``KDPM2AncestralDiscreteScheduler``: likewise, the same step (noise drawn after the
  second call of each step but the last, in the same order from the generator) on diffusers'
  sigmas; A1111's drop the next-to-last sigma.

Not compared here (no diffusers scheduler does the same maths): DPM++ 2S a (diffusers'
single-step solver has no ancestral noise), and the SDE family, whose Brownian-tree noise
diffusers draws from its own torchsde tree rather than from the image seed.
"""

from __future__ import annotations

import pytest
import torch
from diffusers import (
    DPMSolverMultistepScheduler,
    KDPM2AncestralDiscreteScheduler,
    EulerAncestralDiscreteScheduler,
    EulerDiscreteScheduler,
    HeunDiscreteScheduler,
    KDPM2DiscreteScheduler,
    LMSDiscreteScheduler,
)
from diffusers.utils.torch_utils import randn_tensor

from desktop.core.requests import GenerationRequest
from desktop.engine import schedules
from desktop.engine.denoiser import CFGDenoiser, DiscreteSchedule
from desktop.engine.loading import alphas_cumprod_from_config
from desktop.engine.noise import ImageNoise
from desktop.engine.prompt_conditioning import EncodedText, PromptConditioning
from desktop.engine.samplers import find_sampler
from desktop.engine.txt2img import resolve_sampling
from desktop.library.taxonomy import PredictionType

SD_CONFIG = {"beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012, "num_train_timesteps": 1000}
SCHEDULE = DiscreteSchedule(alphas_cumprod_from_config(SD_CONFIG))
DIFFUSERS_CONFIG = {**SD_CONFIG, "timestep_spacing": "linspace", "prediction_type": "epsilon"}

CFG_SCALE = 7.0
SHAPE = (4, 8, 8)  # one image's latent (C, H, W)
CONTEXT_TOKENS, CONTEXT_DIM = 77, 8
LATENT_TOLERANCE = 1e-4
TIMESTEP_TOLERANCE = 1e-3


def eps_model(latents: torch.Tensor, timesteps: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
    """A smooth stand-in for a UNet: nonlinear in the input, varying with t, and with the prompt."""
    t = timesteps.to(torch.float32).reshape(-1, 1, 1, 1)
    prompt = context.mean(dim=(1, 2)).reshape(-1, 1, 1, 1)
    return latents * (0.8 + 0.15 * torch.cos(t / 160)) + 0.25 * torch.sin(1.3 * latents + t / 70) + 0.05 * prompt


class RecordingUNet:
    """A UNet backend for ``CFGDenoiser`` (and the diffusers loop) that records every call's inputs."""

    def __init__(self) -> None:
        self.calls: list[tuple[torch.Tensor, torch.Tensor]] = []

    def predict(self, latents, timesteps, context, added=None) -> torch.Tensor:
        timesteps = torch.as_tensor(timesteps, dtype=torch.float32).reshape(-1).expand(latents.shape[0])
        self.calls.append((latents.clone(), timesteps.clone()))
        return eps_model(latents, timesteps, context)


def contexts(batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    cond = torch.ones(batch, CONTEXT_TOKENS, CONTEXT_DIM)
    return cond, torch.zeros(batch, CONTEXT_TOKENS, CONTEXT_DIM)


def run_ours(sampler: str, x: torch.Tensor, sigmas: torch.Tensor, noise=None) -> tuple[torch.Tensor, RecordingUNet]:
    unet = RecordingUNet()
    cond, uncond = contexts(1)
    conditioning = PromptConditioning.fixed(EncodedText(cond), EncodedText(uncond))
    denoiser = CFGDenoiser(unet, SCHEDULE, PredictionType.EPSILON, conditioning, CFG_SCALE)
    spec, _ = find_sampler(sampler)

    def no_noise(*_sigmas):
        raise AssertionError(f"{sampler} asked for noise")

    out = spec.function(denoiser, x.clone(), sigmas, callback=lambda i, denoised: None, noise=noise or no_noise)
    return out, unet


def run_diffusers(scheduler, steps: int, x: torch.Tensor, *, generator=None, model_timestep=None) -> tuple[torch.Tensor, RecordingUNet]:
    """The plain diffusers loop, with CFG on a batch of 2 as the SD pipeline does it.

    ``model_timestep(i, t)``, when given, replaces the timestep the model sees (not the one the
    scheduler indexes by).
    """
    unet = RecordingUNet()
    scheduler.set_timesteps(steps)  # also resets the step index and a multistep solver's history
    batch = x.shape[0]
    cond, uncond = contexts(batch)
    for i, t in enumerate(scheduler.timesteps):
        x_in = scheduler.scale_model_input(x, t)
        t_model = t if model_timestep is None else model_timestep(i, t)
        eps = unet.predict(torch.cat([x_in, x_in]), t_model, torch.cat([cond, uncond]))
        eps_cond, eps_uncond = eps.chunk(2)
        guided = eps_uncond + CFG_SCALE * (eps_cond - eps_uncond)
        extra = {} if generator is None else {"generator": generator}  # only stochastic schedulers take one
        x = scheduler.step(guided, t, x, **extra).prev_sample
    return x, unet


def assert_same_run(
    ours: tuple[torch.Tensor, RecordingUNet], theirs: tuple[torch.Tensor, RecordingUNet], start: torch.Tensor
) -> None:
    (x_ours, unet_ours), (x_theirs, unet_theirs) = ours, theirs
    assert len(unet_ours.calls) == len(unet_theirs.calls), "different number of model calls"
    for call, ((in_ours, t_ours), (in_theirs, t_theirs)) in enumerate(zip(unet_ours.calls, unet_theirs.calls)):
        t_error = (t_ours - t_theirs).abs().max().item()
        x_error = (in_ours - in_theirs).abs().max().item()
        assert t_error <= TIMESTEP_TOLERANCE, f"model call {call}: timesteps differ by {t_error}"
        assert x_error <= LATENT_TOLERANCE, f"model call {call}: model inputs differ by {x_error}"
    final_error = (x_ours - x_theirs).abs().max().item()
    assert final_error <= LATENT_TOLERANCE, f"final latents differ by {final_error}"
    # The comparison means something only if the run went somewhere: far from the start (sigma_max ~ 14.6).
    assert (x_ours - start).abs().max() > 1.0


def a1111_sigmas(sampler: str, steps: int, schedule: str = "Automatic") -> torch.Tensor:
    request = GenerationRequest(prompt="x", steps=steps, sampler=sampler, schedule=schedule)
    return resolve_sampling(request, SCHEDULE).sigmas


def start_latent(sigma_max: torch.Tensor, seed: int = 42) -> torch.Tensor:
    return torch.randn((1, *SHAPE), generator=torch.Generator().manual_seed(seed)) * sigma_max


def relative_difference(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).abs() / b.abs().clamp(min=1e-12)).max().item()


# --------------------------------------------------------------------------------------------
# The sigmas first
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("steps", [4, 10, 28])
def test_uniform_sigmas_match_diffusers_when_the_timesteps_are_whole(steps):
    scheduler = EulerDiscreteScheduler(**DIFFUSERS_CONFIG)
    scheduler.set_timesteps(steps)
    ours = a1111_sigmas("Euler", steps)
    assert relative_difference(scheduler.sigmas, ours) < 1e-5
    assert torch.equal(scheduler.timesteps, scheduler.timesteps.round())
    assert torch.allclose(SCHEDULE.sigma_to_t(ours[:-1]), scheduler.timesteps, atol=TIMESTEP_TOLERANCE, rtol=0)


def test_uniform_sigmas_differ_from_diffusers_at_fractional_timesteps():
    """Documented difference: diffusers interpolates sigma linearly between table entries, A1111 log-sigma."""
    scheduler = EulerDiscreteScheduler(**DIFFUSERS_CONFIG)
    scheduler.set_timesteps(20)  # 999 / 19 is not whole: timesteps 946.42, 893.84, ...
    ours = a1111_sigmas("Euler", 20)
    # The timesteps are the same; only the interpolation differs. Sigma is convex in t between
    # table entries on a log scale, so the linear interpolation lies above the log-linear one.
    assert torch.allclose(SCHEDULE.sigma_to_t(ours[:-1]), scheduler.timesteps, atol=TIMESTEP_TOLERANCE, rtol=0)
    fractional = scheduler.timesteps != scheduler.timesteps.round()
    assert fractional.any()
    assert (scheduler.sigmas[:-1][fractional] > ours[:-1][fractional]).all()
    assert 1e-6 < relative_difference(scheduler.sigmas, ours) < 1e-4


@pytest.mark.parametrize("scheduler_class", [EulerDiscreteScheduler, HeunDiscreteScheduler, LMSDiscreteScheduler])
@pytest.mark.parametrize("steps", [7, 20])
def test_karras_sigmas_match_diffusers(scheduler_class, steps):
    scheduler = scheduler_class(**DIFFUSERS_CONFIG, use_karras_sigmas=True)
    scheduler.set_timesteps(steps)
    ours = a1111_sigmas("Euler", steps, "Karras")
    sigmas, timesteps = scheduler.sigmas, scheduler.timesteps
    if scheduler_class is HeunDiscreteScheduler:  # every sigma but the first and last appears twice
        sigmas, timesteps = torch.cat([sigmas[::2], sigmas[-1:]]), timesteps[::2]
    assert relative_difference(sigmas, ours) < 1e-5
    # fractional timesteps, as A1111 passes them
    assert torch.allclose(SCHEDULE.sigma_to_t(ours[:-1]), timesteps, atol=TIMESTEP_TOLERANCE, rtol=0)


def dpmpp_2m_karras_scheduler() -> DPMSolverMultistepScheduler:
    """The DPMSolverMultistepScheduler settings that make it k-diffusion's DPM++ 2M (see the module docstring)."""
    return DPMSolverMultistepScheduler(
        **DIFFUSERS_CONFIG,
        algorithm_type="dpmsolver++",
        solver_order=2,
        solver_type="midpoint",
        use_karras_sigmas=True,
        final_sigmas_type="zero",
        lower_order_final=True,
        euler_at_final=False,
    )


def test_dpmpp_2m_karras_sigmas_match_but_diffusers_rounds_the_timesteps():
    scheduler = dpmpp_2m_karras_scheduler()
    scheduler.set_timesteps(20)
    ours = a1111_sigmas("DPM++ 2M", 20)  # Automatic means Karras for DPM++ 2M
    assert relative_difference(scheduler.sigmas, ours) < 1e-5
    fractional_t = SCHEDULE.sigma_to_t(ours[:-1])
    assert (fractional_t != fractional_t.round()).any()
    assert torch.equal(scheduler.timesteps.float(), fractional_t.round())


def kdpm2_step_sigmas(scheduler: KDPM2DiscreteScheduler) -> torch.Tensor:
    """The sigmas of whole steps: KDPM2 lists each one twice (first and second call) and a final 0 three times."""
    return torch.cat([scheduler.sigmas[:1], scheduler.sigmas[1:-1:2]])


def test_a1111_dpm2_sigmas_drop_the_next_to_last_sigma_and_diffusers_does_not():
    scheduler = KDPM2DiscreteScheduler(**DIFFUSERS_CONFIG)
    scheduler.set_timesteps(10)
    theirs = kdpm2_step_sigmas(scheduler)
    ours = a1111_sigmas("DPM2", 10, "Uniform")  # A1111 1.10's default for DPM2 is Karras; see the docstring
    assert len(ours) == len(theirs) == 11
    assert relative_difference(theirs, schedules.uniform(10, SCHEDULE)) < 1e-5
    assert relative_difference(ours, schedules.uniform(11, SCHEDULE)[torch.tensor([*range(10), 11])]) < 1e-7
    assert relative_difference(ours[1:-1], theirs[1:-1]) > 1e-2


# --------------------------------------------------------------------------------------------
# The sampling runs, call by call
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sampler", "scheduler_class", "steps", "schedule"),
    [
        ("Euler", EulerDiscreteScheduler, 10, "Automatic"),
        ("Euler", EulerDiscreteScheduler, 20, "Automatic"),  # fractional timesteps: sigmas ~2e-5 apart
        ("Euler", EulerDiscreteScheduler, 12, "Karras"),
        ("Heun", HeunDiscreteScheduler, 10, "Automatic"),
        ("Heun", HeunDiscreteScheduler, 8, "Karras"),
        ("LMS", LMSDiscreteScheduler, 10, "Automatic"),
        ("LMS", LMSDiscreteScheduler, 12, "Karras"),
    ],
)
def test_deterministic_sampler_agrees_with_diffusers(sampler, scheduler_class, steps, schedule):
    scheduler = scheduler_class(**DIFFUSERS_CONFIG, use_karras_sigmas=schedule == "Karras")
    scheduler.set_timesteps(steps)
    sigmas = a1111_sigmas(sampler, steps, schedule)
    x = start_latent(sigmas[0])
    assert_same_run(run_ours(sampler, x, sigmas), run_diffusers(scheduler, steps, x), x)


def test_dpm2_step_agrees_with_kdpm2_on_diffusers_sigmas():
    scheduler = KDPM2DiscreteScheduler(**DIFFUSERS_CONFIG)
    scheduler.set_timesteps(10)
    sigmas = kdpm2_step_sigmas(scheduler)  # the uniform sigmas, no sigma dropped
    x = start_latent(sigmas[0])
    assert_same_run(run_ours("DPM2", x, sigmas), run_diffusers(scheduler, 10, x), x)


def test_dpm2_ancestral_step_agrees_with_kdpm2_ancestral_on_the_same_generator_stream():
    scheduler = KDPM2AncestralDiscreteScheduler(**DIFFUSERS_CONFIG)
    scheduler.set_timesteps(10)
    sigmas = kdpm2_step_sigmas(scheduler)
    noise = ImageNoise([5], SHAPE)
    x = noise.next() * sigmas[0]
    ours = run_ours("DPM2 a", x, sigmas, noise=lambda *_sigmas: noise.next())
    generator = torch.Generator().manual_seed(5)
    x_theirs = randn_tensor((1, *SHAPE), generator=generator) * scheduler.init_noise_sigma
    assert_same_run(ours, run_diffusers(scheduler, 10, x_theirs, generator=generator), x)


@pytest.mark.parametrize("steps", [6, 20])
def test_dpmpp_2m_karras_agrees_with_dpm_solver_multistep(steps):
    scheduler = dpmpp_2m_karras_scheduler()
    scheduler.set_timesteps(steps)
    sigmas = a1111_sigmas("DPM++ 2M", steps)
    x = start_latent(sigmas[0])
    # diffusers' sample is variance preserving: the VE latent times 1 / sqrt(sigma_max^2 + 1).
    x_vp = x / (sigmas[0] ** 2 + 1) ** 0.5
    unrounded = SCHEDULE.sigma_to_t(scheduler.sigmas[:-1])  # A1111's fractional t (see the docstring)
    theirs = run_diffusers(scheduler, steps, x_vp, model_timestep=lambda i, t: unrounded[i])
    ours = run_ours("DPM++ 2M", x, sigmas)
    assert_same_run(ours, theirs, x)

    # With diffusers' own rounded timesteps the model sees t off by up to 0.5, and that shows.
    rounded, _ = run_diffusers(scheduler, steps, x_vp)
    assert (rounded - ours[0]).abs().max() > 10 * LATENT_TOLERANCE


@pytest.mark.parametrize("seeds", [[1234], [77, 78]])
def test_euler_ancestral_agrees_with_diffusers_on_the_same_generator_stream(seeds):
    steps = 10
    scheduler = EulerAncestralDiscreteScheduler(**DIFFUSERS_CONFIG)
    scheduler.set_timesteps(steps)
    sigmas = a1111_sigmas("Euler a", steps)
    assert relative_difference(scheduler.sigmas, sigmas) < 1e-5

    noise = ImageNoise(seeds, SHAPE)
    initial = noise.next()
    x = initial * sigmas[0]
    ours = run_ours("Euler a", x, sigmas, noise=lambda *_sigmas: noise.next())

    generators = [torch.Generator().manual_seed(seed) for seed in seeds]
    generator = generators if len(seeds) > 1 else generators[0]
    initial_theirs = randn_tensor((len(seeds), *SHAPE), generator=generator)  # as the SD pipeline draws it
    assert torch.equal(initial_theirs, initial)
    x_theirs = initial_theirs * scheduler.init_noise_sigma
    theirs = run_diffusers(scheduler, steps, x_theirs, generator=generator)
    assert_same_run(ours, theirs, x)

    # The ancestral noise matters: another stream gives another image.
    other = [torch.Generator().manual_seed(seed + 1000) for seed in seeds]
    different, _ = run_diffusers(scheduler, steps, x_theirs, generator=other if len(seeds) > 1 else other[0])
    assert (different - ours[0]).abs().max() > 0.1
