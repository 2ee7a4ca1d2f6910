"""DPM++ SDE (k-diffusion ``sample_dpmpp_sde``, eta = 1, s_noise = 1, r = 1/2: A1111's defaults).

DPM-Solver++ with a stochastic midpoint step: two model calls a step, and two noise draws (to the
midpoint and to the next sigma) from the Brownian tree A1111 builds from the image seeds.
"""

from __future__ import annotations

import torch

from desktop.engine.denoiser import Denoiser
from desktop.engine.samplers.common import NoiseSource, StepCallback, ancestral_step, sigma_from_t, t_from_sigma, to_d


@torch.no_grad()
def sample_dpmpp_sde(
    model: Denoiser,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    *,
    callback: StepCallback,
    noise: NoiseSource,
    eta: float = 1.0,
    s_noise: float = 1.0,
    r: float = 1 / 2,
) -> torch.Tensor:
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i])
        if sigmas[i + 1] == 0:
            x = x + to_d(x, sigmas[i], denoised) * (sigmas[i + 1] - sigmas[i])  # Euler on the step to sigma = 0
        else:
            t, t_next = t_from_sigma(sigmas[i]), t_from_sigma(sigmas[i + 1])
            h = t_next - t
            s = t + h * r
            fac = 1 / (2 * r)

            # Step 1: an ancestral step to the midpoint s.
            sd, su = ancestral_step(sigma_from_t(t), sigma_from_t(s), eta)
            s_ = t_from_sigma(sd)
            x_2 = (sigma_from_t(s_) / sigma_from_t(t)) * x - (t - s_).expm1() * denoised
            x_2 = x_2 + noise(sigma_from_t(t), sigma_from_t(s)) * s_noise * su
            denoised_2 = model(x_2, sigma_from_t(s))

            # Step 2: the full step with the blend of both predictions.
            sd, su = ancestral_step(sigma_from_t(t), sigma_from_t(t_next), eta)
            t_next_ = t_from_sigma(sd)
            denoised_d = (1 - fac) * denoised + fac * denoised_2
            x = (sigma_from_t(t_next_) / sigma_from_t(t)) * x - (t - t_next_).expm1() * denoised_d
            x = x + noise(sigma_from_t(t), sigma_from_t(t_next)) * s_noise * su
        callback(i, denoised)
    return x
