"""What A1111's timestep samplers (DDIM, DDIM CFG++, PLMS, UniPC) share: their timesteps and alphas.

These are A1111's ``CompVisSampler`` family (``sd_samplers_timesteps.py``): they walk integer
training timesteps in variance-preserving space, where x = sqrt(a) * x0 + sqrt(1 - a) * eps, and the
model (``CFGDenoiser`` over ``CompVisTimestepsDenoiser``) returns eps.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

TRAINING_STEPS = 1000  # A1111 hard-codes it in get_timesteps, whatever the model's table length


def compvis_timesteps(steps: int) -> torch.Tensor:
    """A1111's ``CompVisSampler.get_timesteps``: ``clip(range(0, 1000, 1000 // steps) + 1, 0, 999)``.

    20 steps give 1, 51, ..., 951 (20 values) but 30 steps give 31 values (stride 33); DDIM and
    PLMS take ``len - 1`` steps through them, so A1111's DDIM at 20 steps calls the model 19 times.
    """
    return torch.clip(torch.arange(0, TRAINING_STEPS, TRAINING_STEPS // steps) + 1, 0, TRAINING_STEPS - 1)


@dataclass(frozen=True)
class DDIMAlphas:
    """The per-timestep coefficients of A1111's ``ddim`` and ``plms`` (same names as there)."""

    alphas: torch.Tensor  # alphas_cumprod at each timestep
    alphas_prev: torch.Tensor  # alphas_cumprod at the timestep before it (the first: at t = 0)
    sqrt_one_minus_alphas: torch.Tensor

    @classmethod
    def at(cls, alphas_cumprod: torch.Tensor, timesteps: torch.Tensor) -> DDIMAlphas:
        alphas = alphas_cumprod[timesteps]
        # A1111 casts alphas_prev to float64 except on MPS, where it stays float32: the Mac's numbers.
        # (Only eta > 0 can tell them apart: the steps use .item() of float32 values either way.)
        alphas_prev = alphas_cumprod[torch.nn.functional.pad(timesteps[:-1], pad=(1, 0))].to(torch.float32)
        return cls(alphas, alphas_prev, torch.sqrt(1 - alphas))


def vp_sigma(alpha_cumprod: float) -> torch.Tensor:
    """The k-diffusion sigma of a VP noise level, sqrt((1 - a) / a): what a noise source is told."""
    return torch.tensor(((1 - alpha_cumprod) / alpha_cumprod) ** 0.5)
