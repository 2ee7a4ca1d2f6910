"""DPM++ 2M SDE and DPM++ 2M SDE Heun (k-diffusion ``sample_dpmpp_2m_sde``, eta = 1, s_noise = 1).

A1111 runs the same function for both names, with ``solver_type`` "midpoint" (its default) or
"heun"; one model call a step, noise from the Brownian tree A1111 builds from the image seeds.
"""

from __future__ import annotations

import torch

from desktop.engine.denoiser import Denoiser
from desktop.engine.samplers.common import NoiseSource, StepCallback

SOLVER_TYPES = ("midpoint", "heun")


@torch.no_grad()
def sample_dpmpp_2m_sde(
    model: Denoiser,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    *,
    callback: StepCallback,
    noise: NoiseSource,
    eta: float = 1.0,
    s_noise: float = 1.0,
    solver_type: str = "midpoint",
) -> torch.Tensor:
    if solver_type not in SOLVER_TYPES:
        raise ValueError(f"solver_type must be one of {SOLVER_TYPES}, not {solver_type!r}")
    old_denoised = None
    h_last = None
    h = None
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i])
        if sigmas[i + 1] == 0:
            x = denoised  # the last step lands on the prediction itself
        else:
            t, s = -sigmas[i].log(), -sigmas[i + 1].log()
            h = s - t
            eta_h = eta * h
            x = sigmas[i + 1] / sigmas[i] * (-eta_h).exp() * x + (-h - eta_h).expm1().neg() * denoised
            if old_denoised is not None:
                r = h_last / h
                if solver_type == "heun":
                    x = x + ((-h - eta_h).expm1().neg() / (-h - eta_h) + 1) * (1 / r) * (denoised - old_denoised)
                else:
                    x = x + 0.5 * (-h - eta_h).expm1().neg() * (1 / r) * (denoised - old_denoised)
            if eta:
                x = x + noise(sigmas[i], sigmas[i + 1]) * sigmas[i + 1] * (-2 * eta_h).expm1().neg().sqrt() * s_noise
        old_denoised = denoised
        h_last = h  # k-diffusion keeps the previous step's h when this one went to sigma = 0
        callback(i, denoised)
    return x


def sample_dpmpp_2m_sde_heun(
    model: Denoiser,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    *,
    callback: StepCallback,
    noise: NoiseSource,
    eta: float = 1.0,
    s_noise: float = 1.0,
) -> torch.Tensor:
    """A1111's "DPM++ 2M SDE Heun": ``sample_dpmpp_2m_sde`` with ``solver_type="heun"``."""
    return sample_dpmpp_2m_sde(model, x, sigmas, callback=callback, noise=noise, eta=eta, s_noise=s_noise, solver_type="heun")
