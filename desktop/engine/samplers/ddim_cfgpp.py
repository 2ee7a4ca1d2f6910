"""DDIM CFG++ (Chung et al. 2024, "CFG++: Manifold-constrained Classifier Free Guidance") as A1111 1.10
runs it: ``sd_samplers_timesteps_impl.ddim_cfgpp``.

The same DDIM step, except that the guidance scale is divided by 12.5 (A1111 maps CFG 0..12.5 onto
CFG++'s 0..1) and x_t is re-noised along the unconditional eps of the call instead of the guided one.
"""

from __future__ import annotations

import torch

from desktop.engine.denoiser import CFGDenoiser
from desktop.engine.samplers.common import NoiseSource, StepCallback
from desktop.engine.samplers.ddim import ddim_loop

CFG_SCALE_MULTIPLIER = 1 / 12.5


@torch.no_grad()
def sample_ddim_cfgpp(
    model: CFGDenoiser,
    x: torch.Tensor,
    timesteps: torch.Tensor,
    *,
    alphas_cumprod: torch.Tensor,
    callback: StepCallback,
    noise: NoiseSource,
    eta: float = 0.0,
) -> torch.Tensor:
    """``model`` is a guided eps model exposing ``cond_scale_multiplier`` and ``last_noise_uncond``."""
    model.cond_scale_multiplier = CFG_SCALE_MULTIPLIER
    return ddim_loop(model, x, timesteps, alphas_cumprod, callback, noise, eta, direction="uncond")
