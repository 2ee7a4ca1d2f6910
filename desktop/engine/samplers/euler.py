"""Euler (k-diffusion ``sample_euler`` with s_churn = 0, as A1111 runs it)."""

from __future__ import annotations

import torch

from desktop.engine.denoiser import Denoiser
from desktop.engine.samplers.common import NoiseSource, StepCallback, to_d


@torch.no_grad()
def sample_euler(model: Denoiser, x: torch.Tensor, sigmas: torch.Tensor, *, callback: StepCallback, noise: NoiseSource) -> torch.Tensor:
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i])
        x = x + to_d(x, sigmas[i], denoised) * (sigmas[i + 1] - sigmas[i])
        callback(i, denoised)
    return x
