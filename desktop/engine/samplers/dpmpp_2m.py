"""DPM++ 2M (k-diffusion ``sample_dpmpp_2m``): second-order multistep, one model call per step."""

from __future__ import annotations

import torch

from desktop.engine.denoiser import Denoiser
from desktop.engine.samplers.common import NoiseSource, StepCallback, sigma_from_t, t_from_sigma



@torch.no_grad()
def sample_dpmpp_2m(model: Denoiser, x: torch.Tensor, sigmas: torch.Tensor, *, callback: StepCallback, noise: NoiseSource) -> torch.Tensor:
    old_denoised = None
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i])
        t, t_next = t_from_sigma(sigmas[i]), t_from_sigma(sigmas[i + 1])
        h = t_next - t
        if old_denoised is None or sigmas[i + 1] == 0:
            x = (sigma_from_t(t_next) / sigma_from_t(t)) * x - (-h).expm1() * denoised
        else:
            h_last = t - t_from_sigma(sigmas[i - 1])
            r = h_last / h
            denoised_d = (1 + 1 / (2 * r)) * denoised - (1 / (2 * r)) * old_denoised
            x = (sigma_from_t(t_next) / sigma_from_t(t)) * x - (-h).expm1() * denoised_d
        old_denoised = denoised
        callback(i, denoised)
    return x
