"""Restart (A1111's ``sd_samplers_extra.restart_sampler``): its step list, model calls and noise draws.

A1111's source is not vendored here and k-diffusion does not have this sampler, so the reference
is ``a1111_restart_sampler`` below: A1111 1.10's function transcribed as plainly as possible
(k-diffusion's ``get_sigmas_karras`` and ``to_d`` written out), with ``torch.randn_like`` - which
A1111 redirects to the image's generator - replaced by the same noise stream ours gets.
"""

from __future__ import annotations

import pytest
import torch

from desktop.engine import schedules
from desktop.engine.denoiser import DiscreteSchedule
from desktop.engine.loading import alphas_cumprod_from_config
from desktop.engine.samplers.restart import default_restart, restart_step_list, sample_restart
from tests.fixtures.toy_denoiser import ToyDenoiser, toy_weights

SD_CONFIG = {"beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012, "num_train_timesteps": 1000}
SCHEDULE = DiscreteSchedule(alphas_cumprod_from_config(SD_CONFIG))


def _get_sigmas_karras(n, sigma_min, sigma_max, rho=7.0, device="cpu"):
    ramp = torch.linspace(0, 1, n)
    min_inv_rho = sigma_min ** (1 / rho)
    max_inv_rho = sigma_max ** (1 / rho)
    sigmas = (max_inv_rho + ramp * (min_inv_rho - max_inv_rho)) ** rho
    return torch.cat([sigmas, sigmas.new_zeros([1])]).to(device)


def _to_d(x, sigma, denoised):
    return (x - denoised) / sigma.reshape(-1, *([1] * (x.ndim - 1)))


def a1111_restart_sampler(model, x, sigmas, randn_like, extra_args=None, callback=None, s_noise=1.0, restart_list=None):
    """A1111 1.10 ``restart_sampler``, as recalled; returns x and the step list it walked."""
    extra_args = {} if extra_args is None else extra_args
    s_in = x.new_ones([x.shape[0]])
    step_id = 0

    def heun_step(x, old_sigma, new_sigma, second_order=True):
        nonlocal step_id
        denoised = model(x, old_sigma * s_in, **extra_args)
        d = _to_d(x, old_sigma, denoised)
        if callback is not None:
            callback({"x": x, "i": step_id, "sigma": new_sigma, "sigma_hat": old_sigma, "denoised": denoised})
        dt = new_sigma - old_sigma
        if new_sigma == 0 or not second_order:
            x = x + d * dt
        else:
            x_2 = x + d * dt
            denoised_2 = model(x_2, new_sigma * s_in, **extra_args)
            d_2 = _to_d(x_2, new_sigma, denoised_2)
            d_prime = (d + d_2) / 2
            x = x + d_prime * dt
        step_id += 1
        return x

    steps = sigmas.shape[0] - 1
    if restart_list is None:
        if steps >= 20:
            restart_steps = 9
            restart_times = 1
            if steps >= 36:
                restart_steps = steps // 4
                restart_times = 2
            sigmas = _get_sigmas_karras(steps - restart_steps * restart_times, sigmas[-2].item(), sigmas[0].item(), device=sigmas.device)
            restart_list = {0.1: [restart_steps + 1, restart_times, 2]}
        else:
            restart_list = {}
    restart_list = {int(torch.argmin(abs(sigmas - key), dim=0)): value for key, value in restart_list.items()}
    step_list = []
    for i in range(len(sigmas) - 1):
        step_list.append((sigmas[i], sigmas[i + 1]))
        if i + 1 in restart_list:
            restart_steps, restart_times, restart_max = restart_list[i + 1]
            min_idx = i + 1
            max_idx = int(torch.argmin(abs(sigmas - restart_max), dim=0))
            if max_idx < min_idx:
                sigma_restart = _get_sigmas_karras(restart_steps, sigmas[min_idx].item(), sigmas[max_idx].item(), device=sigmas.device)[:-1]
                while restart_times > 0:
                    restart_times -= 1
                    step_list.extend(zip(sigma_restart[:-1], sigma_restart[1:]))
    last_sigma = None
    for old_sigma, new_sigma in step_list:
        if last_sigma is None:
            last_sigma = old_sigma
        elif last_sigma < old_sigma:
            x = x + randn_like(x) * s_noise * (old_sigma**2 - last_sigma**2) ** 0.5
        x = heun_step(x, old_sigma, new_sigma)
        last_sigma = new_sigma
    return x, step_list


class Stream:
    """A seeded noise stream that counts its draws and remembers the sigmas it was asked for."""

    def __init__(self, seed: int) -> None:
        self.generator = torch.Generator().manual_seed(seed)
        self.asked: list[tuple[float, float]] = []

    def __call__(self, sigma, sigma_next):
        self.asked.append((float(sigma), float(sigma_next)))
        return torch.randn((2, 4, 8, 8), generator=self.generator)

    def randn_like(self, x):
        return self(0.0, 0.0)


def _pairs(step_list):
    return [(float(a), float(b)) for a, b in step_list]


# steps -> (Heun steps walked, model calls, restart noise draws), worked out from the algorithm:
# below 20 steps no restart (steps Heun steps, the last one Euler); at 20 the schedule shrinks to
# 11 steps and one restart of 10 sigmas adds 9 steps; from 36 on, two restarts of steps // 4 + 1.
EXPECTED_COUNTS = {10: (10, 19, 0), 20: (20, 39, 1), 40: (40, 79, 2)}


@pytest.mark.parametrize("steps", sorted(EXPECTED_COUNTS))
def test_matches_the_a1111_function(steps):
    sigmas = schedules.karras(steps, SCHEDULE)
    weight, bias = toy_weights()
    x = torch.randn((2, 4, 8, 8), generator=torch.Generator().manual_seed(3)) * sigmas[0]

    ours_model, ours_noise, reported = ToyDenoiser(weight, bias), Stream(9), []
    ours = sample_restart(ours_model, x.clone(), sigmas, callback=lambda i, d: reported.append(i), noise=ours_noise)
    theirs_model, theirs_noise = ToyDenoiser(weight, bias), Stream(9)
    theirs, step_list = a1111_restart_sampler(theirs_model, x.clone(), sigmas, theirs_noise.randn_like)

    walked, model_calls, draws = EXPECTED_COUNTS[steps]
    assert _pairs(restart_step_list(sigmas)) == _pairs(step_list)
    assert len(step_list) == walked
    assert ours_model.calls == theirs_model.calls and len(ours_model.calls) == model_calls
    assert len(ours_noise.asked) == len(theirs_noise.asked) == draws
    assert reported == list(range(walked))  # one callback per Heun step
    assert torch.allclose(ours, theirs, rtol=0, atol=1e-6)


@pytest.mark.parametrize("steps", [20, 40])
def test_restarts_jump_from_about_0_1_back_up_to_about_2(steps):
    sigmas = schedules.karras(steps, SCHEDULE)
    descent, restart_list = default_restart(sigmas)
    restart_steps, restart_times, restart_max = restart_list[0.1]
    assert (restart_steps, restart_times) == ((10, 1) if steps == 20 else (11, 2))
    # the shortened schedule keeps the original ends (Karras between them)
    assert len(descent) == steps - (restart_steps - 1) * restart_times + 1
    assert float(descent[0]) == float(sigmas[0]) and float(descent[-2]) == pytest.approx(float(sigmas[-2]), rel=1e-5)
    pairs = _pairs(restart_step_list(sigmas))
    jumps = [(a_next, b_prev) for (_, b_prev), (a_next, _) in zip(pairs, pairs[1:]) if a_next > b_prev]
    assert len(jumps) == restart_times
    low = min(descent.tolist()[:-1], key=lambda s: abs(s - 0.1))
    high = min(descent.tolist(), key=lambda s: abs(s - 2))
    for top, bottom in jumps:
        assert bottom == pytest.approx(low, rel=1e-5)
        assert top == pytest.approx(high, rel=1e-5)


def test_noise_is_asked_for_the_climb_it_adds():
    sigmas = schedules.karras(20, SCHEDULE)
    stream = Stream(1)
    sample_restart(ToyDenoiser(*toy_weights()), torch.zeros((2, 4, 8, 8)), sigmas, callback=lambda i, d: None, noise=stream)
    ((frm, to),) = stream.asked
    assert frm < to  # from the sigma reached (~0.1) up to the restart's top (~2)
    assert frm == pytest.approx(0.1, abs=0.05) and to == pytest.approx(2, abs=0.5)


def test_below_20_steps_it_is_heun_on_the_given_sigmas():
    sigmas = schedules.uniform(8, SCHEDULE)
    assert _pairs(restart_step_list(sigmas)) == _pairs(zip(sigmas[:-1], sigmas[1:]))
