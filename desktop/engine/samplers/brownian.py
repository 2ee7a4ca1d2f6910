"""Brownian-tree noise for the SDE samplers, as A1111 builds it: one tree per image, seeded with its seed.

Reproduces k-diffusion 0.1.1.post1's ``BrownianTreeNoiseSampler`` / ``BatchedBrownianTree`` with the
arguments of A1111's ``KDiffusionSampler.create_noise_sampler``: the tree spans the schedule's
smallest nonzero sigma to its largest, and image i's tree uses image i's seed as its entropy. Each
image owns its tree, so an image comes out the same alone or in a batch.

The trees live on the CPU in float32. A1111 (RNG source "CPU", what it uses on a Mac) replaces
torchsde's ``_randn`` with a CPU generator too, so the random draws are the same; keeping the tree's
few additions on the CPU as well makes the noise independent of the device the UNet runs on.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torchsde


class BrownianTreeNoise:
    """``noise(sigma, sigma_next)``: the normalised Brownian increment between two sigmas, one tree per image."""

    def __init__(self, x: torch.Tensor, sigma_min: torch.Tensor | float, sigma_max: torch.Tensor | float, seeds: Sequence[int]) -> None:
        if len(seeds) != x.shape[0]:
            raise ValueError(f"one seed per image: {len(seeds)} seeds for a batch of {x.shape[0]}")
        self.device, self.dtype = x.device, x.dtype
        t0, t1 = _as_cpu_tensor(sigma_min), _as_cpu_tensor(sigma_max)
        t0, t1, self.sign = _sort(t0, t1)
        w0 = torch.zeros(x.shape[1:], dtype=torch.float32)  # one image's shape (BatchedBrownianTree: w0[0])
        self.trees = [torchsde.BrownianTree(t0, w0, t1, entropy=int(seed)) for seed in seeds]

    def __call__(self, sigma: torch.Tensor | float, sigma_next: torch.Tensor | float) -> torch.Tensor:
        t0, t1 = _as_cpu_tensor(sigma), _as_cpu_tensor(sigma_next)
        # BatchedBrownianTree.__call__: the increment over the sorted interval, signed as asked ...
        low, high, sign = _sort(t0, t1)
        w = torch.stack([tree(low, high) for tree in self.trees]) * (self.sign * sign)
        # ... and BrownianTreeNoiseSampler.__call__: scaled to unit variance.
        noise = w / (t1 - t0).abs().sqrt()
        return noise.to(self.device, self.dtype)


def brownian_sigma_range(sigmas: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A1111's ``create_noise_sampler`` range: the smallest nonzero sigma and the largest."""
    return sigmas[sigmas > 0].min(), sigmas.max()


def _as_cpu_tensor(value: torch.Tensor | float) -> torch.Tensor:
    # k-diffusion passes ``torch.as_tensor(sigma)``: float32 sigmas stay float32, so the tree's
    # interval arithmetic (midpoints, lengths) happens in the same precision as A1111's.
    return torch.as_tensor(value).detach().to("cpu")


def _sort(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int]:
    """BatchedBrownianTree.sort: (low, high, +1) or (low, high, -1) when the interval runs backwards."""
    return (a, b, 1) if a < b else (b, a, -1)
