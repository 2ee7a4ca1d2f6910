"""A1111's seeds: one CPU generator per image, so a seed gives the same picture on any device."""

from __future__ import annotations

from collections.abc import Sequence

import torch


class ImageNoise:
    """Per-image generators. The first draw is the initial latent noise; ancestral samplers take the next ones."""

    def __init__(self, seeds: Sequence[int], shape: tuple[int, int, int]) -> None:
        self.shape = shape
        self.generators = [torch.Generator(device="cpu").manual_seed(int(seed)) for seed in seeds]

    def next(self) -> torch.Tensor:
        """(batch, C, H/8, W/8) float32 on the CPU: one draw from each image's generator."""
        return torch.stack([torch.randn(self.shape, generator=g, dtype=torch.float32) for g in self.generators])
