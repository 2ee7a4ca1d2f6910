"""PLMS (Liu et al. 2022, pseudo linear multistep) as A1111 1.10 runs it: ``sd_samplers_timesteps_impl.plms``.

Adams-Bashforth on eps, up to fourth order. The first step has no history, so it is a pseudo
improved Euler step that calls the model a second time (at the next timestep); A1111 does not count
PLMS as a second-order sampler, so prompt schedules see that extra call as one more step.
"""

from __future__ import annotations

import torch

from desktop.engine.denoiser import Denoiser
from desktop.engine.samplers.common import NoiseSource, StepCallback
from desktop.engine.samplers.timesteps import DDIMAlphas


@torch.no_grad()
def sample_plms(
    model: Denoiser,
    x: torch.Tensor,
    timesteps: torch.Tensor,
    *,
    alphas_cumprod: torch.Tensor,
    callback: StepCallback,
    noise: NoiseSource,
) -> torch.Tensor:
    """``model(x, t)`` returns eps; ``x`` starts as unscaled noise; ``timesteps`` ascend (A1111's list)."""
    table = DDIMAlphas.at(alphas_cumprod, timesteps)
    s_in = x.new_ones([x.shape[0]])
    s_x = x.new_ones((x.shape[0], 1, 1, 1))
    old_eps: list[torch.Tensor] = []

    def x_prev_and_pred_x0(e_t: torch.Tensor, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        a_t = table.alphas[index].item() * s_x
        a_prev = table.alphas_prev[index].item() * s_x
        sqrt_one_minus_at = table.sqrt_one_minus_alphas[index].item() * s_x
        pred_x0 = (x - sqrt_one_minus_at * e_t) / a_t.sqrt()
        dir_xt = (1.0 - a_prev).sqrt() * e_t
        return a_prev.sqrt() * pred_x0 + dir_xt, pred_x0

    for i in range(len(timesteps) - 1):
        index = len(timesteps) - 1 - i
        ts = timesteps[index].item() * s_in
        t_next = timesteps[max(index - 1, 0)].item() * s_in

        e_t = model(x, ts)
        if len(old_eps) == 0:  # pseudo improved Euler (second order)
            x_prev, pred_x0 = x_prev_and_pred_x0(e_t, index)
            e_t_next = model(x_prev, t_next)
            e_t_prime = (e_t + e_t_next) / 2
        elif len(old_eps) == 1:  # Adams-Bashforth, second order
            e_t_prime = (3 * e_t - old_eps[-1]) / 2
        elif len(old_eps) == 2:  # third order
            e_t_prime = (23 * e_t - 16 * old_eps[-1] + 5 * old_eps[-2]) / 12
        else:  # fourth order
            e_t_prime = (55 * e_t - 59 * old_eps[-1] + 37 * old_eps[-2] - 9 * old_eps[-3]) / 24

        x_prev, pred_x0 = x_prev_and_pred_x0(e_t_prime, index)
        old_eps.append(e_t)
        if len(old_eps) >= 4:
            old_eps.pop(0)
        x = x_prev
        callback(i, pred_x0)
    return x
