"""A1111's LCM sampler: its 50-timestep model wrapper, boundary condition, sigmas and loop.

Known answers: the 50 timesteps LCM was distilled on (19, 39, ..., 999; diffusers' ``LCMScheduler``
uses the same ``original_inference_steps=50``), the boundary-condition coefficients of the LCM paper
as diffusers computes them, and diffusers' ``LCMScheduler`` walking the same timesteps (A1111's
sigmas land on valid timesteps when ``steps - 1`` divides 49). A1111's c_skip multiplies the
k-diffusion latent where diffusers' multiplies the VP sample; c_skip is below 7e-6, so the two
agree far inside 1e-4.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from desktop.core.infotext import parse_infotext
from desktop.core.requests import GenerationRequest
from desktop.engine import schedules
from desktop.engine.denoiser import CFGDenoiser, DiscreteSchedule
from desktop.engine.devices import plan_devices
from desktop.engine.loading import alphas_cumprod_from_config, load_model
from desktop.engine.prompt_conditioning import EncodedText, PromptConditioning
from desktop.engine.samplers import SamplerKind, find_sampler
from desktop.engine.samplers.lcm import LCMDenoiser, LCMSchedule, sample_lcm
from desktop.engine.txt2img import Txt2ImgPipeline, resolve_sampling
from desktop.library.taxonomy import PredictionType

SD_CONFIG = {"beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012, "num_train_timesteps": 1000}
ALPHAS = alphas_cumprod_from_config(SD_CONFIG)
SCHEDULE = DiscreteSchedule(ALPHAS)
LCM = LCMSchedule(ALPHAS)
VALID_TIMESTEPS = [20 * k + 19 for k in range(50)]


def _sigma(t: int) -> float:
    a = float(ALPHAS[t])
    return math.sqrt((1 - a) / a)


# --------------------------------------------------------------------------------------------
# 1. The 50-timestep table and its maps
# --------------------------------------------------------------------------------------------


def test_the_table_holds_lcms_50_timesteps():
    assert LCM.alphas_cumprod.shape == (50,)
    assert torch.equal(LCM.alphas_cumprod, ALPHAS[VALID_TIMESTEPS])
    assert LCM.sigmas.tolist() == pytest.approx([_sigma(t) for t in VALID_TIMESTEPS], rel=1e-6)
    assert LCM.sigma_to_t(LCM.sigmas).tolist() == VALID_TIMESTEPS
    assert (LCM.sigma_min, LCM.sigma_max) == (pytest.approx(_sigma(19), rel=1e-6), pytest.approx(_sigma(999), rel=1e-6))


def test_sigma_to_t_rounds_to_the_nearest_valid_timestep_in_log_sigma():
    low, high = math.log(_sigma(499)), math.log(_sigma(519))
    just_below = torch.tensor([math.exp(low + 0.49 * (high - low)), math.exp(low + 0.51 * (high - low))])
    assert LCM.sigma_to_t(just_below).tolist() == [499, 519]
    assert LCM.sigma_to_t(torch.tensor(0.01)).item() == 19  # below the table: its first timestep
    assert LCM.sigma_to_t(torch.tensor(100.0)).item() == 999
    assert LCM.sigma_to_t(torch.tensor(_sigma(999))).dtype == torch.int64


def test_t_to_sigma_interpolates_log_sigma_between_valid_timesteps_and_clamps():
    assert LCM.t_to_sigma(torch.tensor([19.0, 519.0, 999.0])).tolist() == pytest.approx(
        [_sigma(19), _sigma(519), _sigma(999)], rel=1e-6
    )
    assert float(LCM.t_to_sigma(torch.tensor(29.0))) == pytest.approx(math.sqrt(_sigma(19) * _sigma(39)), rel=1e-6)
    assert LCM.t_to_sigma(torch.tensor([0.0, 5000.0])).tolist() == pytest.approx([_sigma(19), _sigma(999)], rel=1e-6)


@pytest.mark.parametrize("n", [2, 4, 8, 50])
def test_get_sigmas_spaces_timesteps_from_999_to_19(n):
    sigmas = LCM.get_sigmas(n)
    assert sigmas.shape == (n + 1,) and float(sigmas[-1]) == 0.0
    # index (t - 19) / 20 evenly from 49 to 0, log-sigma interpolated between table entries
    log_table = np.log([_sigma(t) for t in VALID_TIMESTEPS])
    expected = np.exp(np.interp(np.linspace(49, 0, n), np.arange(50), log_table))
    assert sigmas[:-1].tolist() == pytest.approx(expected.tolist(), rel=1e-5)


# --------------------------------------------------------------------------------------------
# 2. Sigmas by schedule type: LCM's table wherever A1111 passes its inner model
# --------------------------------------------------------------------------------------------


def _plan(steps: int, schedule: str = "Automatic"):
    return resolve_sampling(GenerationRequest(prompt="a", steps=steps, sampler="LCM", schedule=schedule), SCHEDULE)


def test_automatic_and_uniform_are_the_wrappers_get_sigmas():
    plan = _plan(6)
    assert plan.sampler.kind is SamplerKind.LCM and plan.schedule_label == "Automatic"
    assert torch.equal(plan.sigmas, LCM.get_sigmas(6))
    assert torch.equal(_plan(6, "Uniform").sigmas, LCM.get_sigmas(6))
    assert not torch.equal(LCM.get_sigmas(6), schedules.uniform(6, SCHEDULE))


def test_other_schedule_types_use_lcms_sigma_range():
    karras = _plan(6, "Karras").sigmas
    assert float(karras[0]) == pytest.approx(_sigma(999), rel=1e-5)
    assert float(karras[-2]) == pytest.approx(_sigma(19), rel=1e-5)  # not the model's sigma at t = 0
    assert torch.equal(karras, schedules.karras(6, LCM))
    assert torch.equal(_plan(5, "Simple").sigmas, schedules.simple(5, LCM))


# --------------------------------------------------------------------------------------------
# 3. The wrapper: eps at the valid timestep, x0, then the consistency boundary condition
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("t", [19, 499, 999])
def test_boundary_coefficients_match_diffusers(t):
    from diffusers import LCMScheduler

    c_skip, c_out = LCMScheduler().get_scalings_for_boundary_condition_discrete(t)
    unet = FakeUNet(lambda latents, timesteps: torch.zeros_like(latents))
    wrapper = LCMDenoiser(unet, SCHEDULE, PredictionType.EPSILON)
    x = torch.ones((1, 4, 2, 2))
    # with eps = 0 the output is c_out * x + c_skip * x
    out = wrapper(x, torch.tensor([_sigma(t)]), torch.zeros(1, 77, 8), None)
    assert torch.allclose(out, x * (c_out + c_skip), rtol=1e-6)
    assert c_skip == pytest.approx(0.25 / ((10 * t) ** 2 + 0.25)) and c_out == pytest.approx(10 * t / math.sqrt((10 * t) ** 2 + 0.25))


class FakeUNet:
    def __init__(self, output) -> None:
        self.output = output
        self.calls: list[tuple[torch.Tensor, torch.Tensor]] = []

    def predict(self, latents, timesteps, context, added=None):
        self.calls.append((latents.clone(), timesteps.clone()))
        return self.output(latents, timesteps)


def test_wrapper_asks_the_unet_at_the_nearest_valid_timestep_with_scaled_input():
    eps = torch.randn((1, 4, 2, 2), generator=torch.Generator().manual_seed(1))
    unet = FakeUNet(lambda latents, timesteps: eps.expand_as(latents))
    x = torch.randn((1, 4, 2, 2), generator=torch.Generator().manual_seed(2)) * 3
    sigma = 0.98 * _sigma(619)  # nearer 619 than 599 in log-sigma
    out = LCMDenoiser(unet, SCHEDULE, PredictionType.EPSILON)(x, torch.tensor([sigma]), torch.zeros(1, 77, 8), None)
    latents, timesteps = unet.calls[0]
    assert timesteps.tolist() == [619]
    assert torch.allclose(latents, x / math.sqrt(sigma**2 + 1), rtol=1e-6)
    s = 6190.0
    c_skip, c_out = 0.25 / (s**2 + 0.25), s / math.sqrt(s**2 + 0.25)
    assert torch.allclose(out, c_out * (x - sigma * eps) + c_skip * x, rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------------------------
# 4. The loop, against diffusers' LCMScheduler
# --------------------------------------------------------------------------------------------


def nonlinear_eps(latents: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
    return torch.tanh(latents) * 0.8 + 0.05 * torch.sin(timesteps.float().reshape(-1, 1, 1, 1) / 50.0)


def _same_prompt() -> PromptConditioning:
    context = EncodedText(torch.ones(1, 77, 8))
    return PromptConditioning.fixed(context, context)  # cond = uncond: CFG returns the wrapper's output


def test_sample_lcm_calls_once_per_step_and_renoises_with_fresh_draws():
    sigmas = LCM.get_sigmas(4)
    calls, draws, seen = [], [], []

    def model(x, sigma):
        calls.append(float(sigma))
        return torch.full_like(x, 0.5)

    def noise(sigma, sigma_next):
        draws.append((float(sigma), float(sigma_next)))
        return torch.ones(1, 4, 2, 2)

    out = sample_lcm(model, torch.zeros(1, 4, 2, 2), sigmas, callback=lambda i, d: seen.append(i), noise=noise)
    assert calls == pytest.approx(sigmas[:-1].tolist()) and seen == [0, 1, 2, 3]
    assert [value for pair in draws for value in pair] == pytest.approx([float(sigmas[i + j]) for i in range(3) for j in (0, 1)])
    assert torch.equal(out, torch.full((1, 4, 2, 2), 0.5))  # the last step keeps the model's x0


@pytest.mark.parametrize("n", [2, 8])
def test_lcm_follows_diffusers_lcm_scheduler_on_the_same_timesteps(n):
    from diffusers import LCMScheduler

    sigmas = LCM.get_sigmas(n)
    timesteps = LCM.sigma_to_t(sigmas[:-1]).tolist()
    assert timesteps == [999 - (49 // (n - 1)) * 20 * k for k in range(n)]  # on the table: 999, ..., 19
    # ... and exactly the table's sigmas, so both walk the same noise levels
    assert sigmas[:-1].tolist() == pytest.approx([_sigma(t) for t in timesteps], rel=1e-6)

    scheduler = LCMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012)
    scheduler.alphas_cumprod = ALPHAS.clone()
    scheduler.set_timesteps(timesteps=timesteps)
    x_T = torch.randn((2, 4, 4, 4), generator=torch.Generator().manual_seed(4))

    model = CFGDenoiser(FakeUNet(nonlinear_eps), SCHEDULE, PredictionType.EPSILON, _same_prompt(), 7.0, wrapper=LCMDenoiser)
    ours_generator = torch.Generator().manual_seed(9)
    ours = sample_lcm(
        model, x_T * sigmas[0], sigmas, callback=lambda i, d: None,
        noise=lambda sigma, sigma_next: torch.randn(x_T.shape, generator=ours_generator),
    )

    theirs_generator = torch.Generator().manual_seed(9)
    sample = x_T * sigmas[0] / math.sqrt(float(sigmas[0]) ** 2 + 1)  # the same start in VP terms
    for t in scheduler.timesteps:
        eps = nonlinear_eps(sample, torch.full((2,), int(t)))
        sample, denoised = scheduler.step(eps, t, sample, generator=theirs_generator, return_dict=False)
    assert torch.allclose(ours, denoised, atol=1e-4, rtol=1e-4)


# --------------------------------------------------------------------------------------------
# 5. End to end on the tiny checkpoints
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pipeline(tiny_sd1):
    return Txt2ImgPipeline(load_model(tiny_sd1, plan_devices("cpu", "fp32")))


def _run(pipeline, seed: int, **overrides):
    values = dict(prompt="a cat", steps=3, width=32, height=32, seed=seed, sampler="LCM", cfg_scale=1.5)
    values.update(overrides)
    return pipeline(GenerationRequest(**values))


def _pixels(result, index: int = 0) -> np.ndarray:
    return np.asarray(result.images[index].image, dtype=np.int16)


def test_lcm_is_reproducible_seed_dependent_and_batches_like_single_runs(pipeline):
    first, other = _run(pipeline, 51), _run(pipeline, 52)
    params = parse_infotext(first.images[0].infotext)[2]
    assert (params["Sampler"], params["Schedule type"]) == ("LCM", "Automatic")
    assert np.array_equal(_pixels(_run(pipeline, 51)), _pixels(first))
    assert not np.array_equal(_pixels(other), _pixels(first))
    batch = _run(pipeline, 51, batch_size=2)  # seeds 51 and 52; batched CPU kernels round a little differently
    assert np.abs(_pixels(batch, 0) - _pixels(first)).max() <= 1
    assert np.abs(_pixels(batch, 1) - _pixels(other)).max() <= 1


def test_lcm_unet_sees_only_valid_timesteps(pipeline):
    seen = []
    original = pipeline.unet.predict

    def spy(latents, timesteps, context, added=None):
        seen.append(timesteps.tolist())
        return original(latents, timesteps, context, added)

    pipeline.unet.predict = spy
    try:
        result = _run(pipeline, 53, steps=4, schedule="Karras")
    finally:
        del pipeline.unet.predict
    assert parse_infotext(result.images[0].infotext)[2]["Schedule type"] == "Karras"
    assert len(seen) == 4 and all(set(rows) <= set(VALID_TIMESTEPS) and len(set(rows)) == 1 for rows in seen)
    assert seen[0][0] == 999 and seen[-1][0] == 19


def test_lcm_runs_a_v_prediction_checkpoint_as_a1111_does(tmp_path):
    # A1111's LCM wrapper is an eps denoiser whatever the checkpoint predicts; it still runs.
    from tests.fixtures import ldm_layout

    path = tmp_path / "tiny_sd2_v.safetensors"
    ldm_layout.write_checkpoint(path, ldm_layout.sd2_checkpoint_shapes(tiny=True), metadata={"modelspec.prediction_type": "v"})
    v_pipeline = Txt2ImgPipeline(load_model(path, plan_devices("cpu", "fp32")))
    assert v_pipeline.model.prediction is PredictionType.V_PREDICTION
    result = _run(v_pipeline, 54)
    assert result.images and find_sampler("LCM")[0].kind is SamplerKind.LCM
