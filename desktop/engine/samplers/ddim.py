"""DDIM (Song et al. 2020) as A1111 1.10 runs it: ``sd_samplers_timesteps_impl.ddim``.

Eta defaults to 0 (A1111's ``eta_ddim``). A1111 draws a noise tensor every step even then
(and multiplies it by 0), so later images of the per-image streams match A1111's only if we do too.
"""

from __future__ import annotations

from typing import Literal

import torch

from desktop.engine.denoiser import Denoiser
from desktop.engine.samplers.common import NoiseSource, StepCallback
from desktop.engine.samplers.timesteps import DDIMAlphas, vp_sigma


@torch.no_grad()
def sample_ddim(
    model: Denoiser,
    x: torch.Tensor,
    timesteps: torch.Tensor,
    *,
    alphas_cumprod: torch.Tensor,
    callback: StepCallback,
    noise: NoiseSource,
    eta: float = 0.0,
) -> torch.Tensor:
    """``model(x, t)`` returns eps; ``x`` starts as unscaled noise; ``timesteps`` ascend (A1111's list)."""
    return ddim_loop(model, x, timesteps, alphas_cumprod, callback, noise, eta, direction="eps")


def ddim_loop(
    model: Denoiser,
    x: torch.Tensor,
    timesteps: torch.Tensor,
    alphas_cumprod: torch.Tensor,
    callback: StepCallback,
    noise: NoiseSource,
    eta: float,
    *,
    direction: Literal["eps", "uncond"],
) -> torch.Tensor:
    """The DDIM update; ``direction="uncond"`` points x_t along the unconditional eps (DDIM CFG++)."""
    table = DDIMAlphas.at(alphas_cumprod, timesteps)
    sigmas = eta * torch.sqrt((1 - table.alphas_prev) / (1 - table.alphas) * (1 - table.alphas / table.alphas_prev))
    # A1111 multiplies Python floats (.item()) by ones in x's dtype; doing the same keeps its rounding.
    s_in = x.new_ones([x.shape[0]])
    s_x = x.new_ones((x.shape[0], 1, 1, 1))
    for i in range(len(timesteps) - 1):
        index = len(timesteps) - 1 - i
        e_t = model(x, timesteps[index].item() * s_in)
        towards = e_t if direction == "eps" else model.last_noise_uncond  # type: ignore[attr-defined]

        a_t = table.alphas[index].item() * s_x
        a_prev = table.alphas_prev[index].item() * s_x
        sigma_t = sigmas[index].item() * s_x
        sqrt_one_minus_at = table.sqrt_one_minus_alphas[index].item() * s_x

        pred_x0 = (x - sqrt_one_minus_at * e_t) / a_t.sqrt()
        dir_xt = (1.0 - a_prev - sigma_t**2).sqrt() * towards
        fresh = sigma_t * noise(vp_sigma(table.alphas[index].item()), vp_sigma(table.alphas_prev[index].item()))
        x = a_prev.sqrt() * pred_x0 + dir_xt + fresh
        callback(i, pred_x0)
    return x
