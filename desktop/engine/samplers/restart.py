"""Restart (A1111's ``sd_samplers_extra.restart_sampler``; Xu et al. 2023, arXiv:2306.14878).

Heun steps down the schedule; at sigma ~0.1 the sampler jumps back up to sigma ~2 with fresh
noise and descends again (once, or twice from 36 steps). From 20 steps on, A1111 replaces the
schedule with a shorter Karras one between the schedule's ends, so that the restarts fit in the
step budget. The restart noise is ``k_diffusion.sampling.torch.randn_like``, which A1111 redirects
to the image's generator: here, the next draw of the ``noise`` stream.

A1111's source is not in this repository; this follows the function as the project brief
transcribed it (see the tests of the step list for 10, 20 and 40 steps).
"""

from __future__ import annotations

import torch

from desktop.engine.denoiser import Denoiser
from desktop.engine.samplers.common import NoiseSource, StepCallback, to_d
from desktop.engine.schedules import karras_sigmas

RestartList = dict[float, tuple[int, int, float]]  # min sigma -> (restart steps, restart times, max sigma)
StepList = list[tuple[torch.Tensor, torch.Tensor]]


def default_restart(sigmas: torch.Tensor) -> tuple[torch.Tensor, RestartList]:
    """A1111's automatic choice: the sigmas to descend and where to restart (nothing below 20 steps)."""
    steps = sigmas.shape[0] - 1
    if steps < 20:
        return sigmas, {}
    restart_steps, restart_times = 9, 1
    if steps >= 36:
        restart_steps, restart_times = steps // 4, 2
    sigmas = karras_sigmas(steps - restart_steps * restart_times, sigmas[-2].item(), sigmas[0].item()).to(sigmas.device)
    return sigmas, {0.1: (restart_steps + 1, restart_times, 2)}


def restart_step_list(sigmas: torch.Tensor, restart_list: RestartList | None = None) -> StepList:
    """Every (sigma, next sigma) Heun step in order, the restart segments spliced in after their index."""
    if restart_list is None:
        sigmas, restart_list = default_restart(sigmas)
    # Keyed by the index of the schedule sigma nearest each restart's minimum.
    by_index = {int(torch.argmin(abs(sigmas - key), dim=0)): value for key, value in restart_list.items()}
    step_list: StepList = []
    for i in range(len(sigmas) - 1):
        step_list.append((sigmas[i], sigmas[i + 1]))
        if i + 1 in by_index:
            restart_steps, restart_times, restart_max = by_index[i + 1]
            min_idx = i + 1
            max_idx = int(torch.argmin(abs(sigmas - restart_max), dim=0))
            if max_idx < min_idx:
                # Karras from the restart's top down to this sigma, without the appended zero.
                sigma_restart = karras_sigmas(restart_steps, sigmas[min_idx].item(), sigmas[max_idx].item()).to(sigmas.device)[:-1]
                for _ in range(restart_times):
                    step_list.extend(zip(sigma_restart[:-1], sigma_restart[1:]))
    return step_list


@torch.no_grad()
def sample_restart(
    model: Denoiser,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    *,
    callback: StepCallback,
    noise: NoiseSource,
    s_noise: float = 1.0,
    restart_list: RestartList | None = None,
) -> torch.Tensor:
    step_id = 0

    def heun_step(x: torch.Tensor, old_sigma: torch.Tensor, new_sigma: torch.Tensor) -> torch.Tensor:
        nonlocal step_id
        denoised = model(x, old_sigma)
        d = to_d(x, old_sigma, denoised)
        dt = new_sigma - old_sigma
        if new_sigma == 0:
            x = x + d * dt  # Euler on the step to sigma = 0
        else:
            x_2 = x + d * dt
            denoised_2 = model(x_2, new_sigma)
            d_2 = to_d(x_2, new_sigma, denoised_2)
            x = x + (d + d_2) / 2 * dt
        callback(step_id, denoised)
        step_id += 1
        return x

    last_sigma = None
    for old_sigma, new_sigma in restart_step_list(sigmas, restart_list):
        if last_sigma is None:
            last_sigma = old_sigma
        elif last_sigma < old_sigma:
            # Back up the schedule: add the noise that takes last_sigma to old_sigma.
            x = x + noise(last_sigma, old_sigma) * s_noise * (old_sigma**2 - last_sigma**2) ** 0.5
        x = heun_step(x, old_sigma, new_sigma)
        last_sigma = new_sigma
    return x
