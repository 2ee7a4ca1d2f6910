"""Pieces shared by the k-diffusion-style samplers."""

from __future__ import annotations

from collections.abc import Callable

import torch

StepCallback = Callable[[int, torch.Tensor], None]  # (step index, denoised) after each step
# k-diffusion's ``noise_sampler(sigma, sigma_next)``: the noise for the step from sigma to sigma_next,
# shaped like x. The ImageNoise stream ignores the sigmas; the Brownian tree (SDE samplers) needs them.
NoiseSource = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def to_d(x: torch.Tensor, sigma: torch.Tensor, denoised: torch.Tensor) -> torch.Tensor:
    """The ODE derivative dx/dsigma for the Karras et al. formulation."""
    return (x - denoised) / sigma


def ancestral_step(sigma_from: torch.Tensor, sigma_to: torch.Tensor, eta: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Split a step into a deterministic part down to ``sigma_down`` and fresh noise ``sigma_up``."""
    if not eta:
        return sigma_to, torch.zeros_like(sigma_to)
    sigma_up = torch.minimum(sigma_to, eta * (sigma_to**2 * (sigma_from**2 - sigma_to**2) / sigma_from**2) ** 0.5)
    sigma_down = (sigma_to**2 - sigma_up**2) ** 0.5
    return sigma_down, sigma_up


def t_from_sigma(sigma: torch.Tensor) -> torch.Tensor:
    """DPM-Solver's time variable: t = -log(sigma) (k-diffusion's ``t_fn``)."""
    return sigma.log().neg()


def sigma_from_t(t: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`t_from_sigma` (k-diffusion's ``sigma_fn``)."""
    return t.neg().exp()
