"""LMS (k-diffusion ``sample_lms``, order 4): linear multistep on dx/dsigma, one model call a step."""

from __future__ import annotations

import numpy as np
import torch
from scipy import integrate

from desktop.engine.denoiser import Denoiser
from desktop.engine.samplers.common import NoiseSource, StepCallback, to_d


def linear_multistep_coeff(order: int, t: np.ndarray, i: int, j: int) -> float:
    """k-diffusion's coefficient: the integral of the j-th Lagrange basis polynomial over [t_i, t_i+1]."""
    if order - 1 > i:
        raise ValueError(f"Order {order} too high for step {i}")

    def fn(tau: float) -> float:
        prod = 1.0
        for k in range(order):
            if j == k:
                continue
            prod *= (tau - t[i - k]) / (t[i - j] - t[i - k])
        return prod

    return integrate.quad(fn, t[i], t[i + 1], epsrel=1e-4)[0]


@torch.no_grad()
def sample_lms(
    model: Denoiser,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    *,
    callback: StepCallback,
    noise: NoiseSource,
    order: int = 4,
) -> torch.Tensor:
    # k-diffusion uses sigmas.cpu().numpy() (float32); under NumPy 1.x (A1111's) the Python-float
    # arithmetic in ``fn`` promoted to float64, which float64 copies of the float32 values reproduce.
    sigmas_cpu = sigmas.detach().cpu().numpy().astype(np.float64)
    ds: list[torch.Tensor] = []
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i])
        ds.append(to_d(x, sigmas[i], denoised))
        if len(ds) > order:
            ds.pop(0)
        cur_order = min(i + 1, order)
        coeffs = [linear_multistep_coeff(cur_order, sigmas_cpu, i, j) for j in range(cur_order)]
        x = x + sum(coeff * d for coeff, d in zip(coeffs, reversed(ds)))
        callback(i, denoised)
    return x
