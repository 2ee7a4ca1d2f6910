"""DPM++ 2S a (k-diffusion ``sample_dpmpp_2s_ancestral``, eta = 1, s_noise = 1: A1111's defaults)."""

from __future__ import annotations

import torch

from desktop.engine.denoiser import Denoiser
from desktop.engine.samplers.common import NoiseSource, StepCallback, ancestral_step, sigma_from_t, t_from_sigma, to_d



@torch.no_grad()
def sample_dpmpp_2s_ancestral(
    model: Denoiser,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    *,
    callback: StepCallback,
    noise: NoiseSource,
    eta: float = 1.0,
    s_noise: float = 1.0,
) -> torch.Tensor:
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i])
        sigma_down, sigma_up = ancestral_step(sigmas[i], sigmas[i + 1], eta)
        if sigma_down == 0:
            d = to_d(x, sigmas[i], denoised)  # Euler on the step to sigma = 0
            x = x + d * (sigma_down - sigmas[i])
        else:
            # DPM-Solver++(2S) with r = 1/2
            t, t_next = t_from_sigma(sigmas[i]), t_from_sigma(sigma_down)
            r = 1 / 2
            h = t_next - t
            s = t + r * h
            x_2 = (sigma_from_t(s) / sigma_from_t(t)) * x - (-h * r).expm1() * denoised
            denoised_2 = model(x_2, sigma_from_t(s))
            x = (sigma_from_t(t_next) / sigma_from_t(t)) * x - (-h).expm1() * denoised_2
        if sigmas[i + 1] > 0:
            x = x + noise(sigmas[i], sigmas[i + 1]) * s_noise * sigma_up
        callback(i, denoised)
    return x
