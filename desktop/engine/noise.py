"""A1111's seeds: one CPU generator per image, so a seed gives the same picture on any device.

Also A1111's variation seed (a spherical blend of the seed's noise with a second seed's) and
"resize seed from" (the noise of another image size, centred, so a composition survives a
change of size), reproduced with A1111's exact arithmetic, quirks included.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class SeedVariation:
    """A1111's "Variation seed" settings. ``subseeds[i]`` is image i's variation seed."""

    subseeds: Sequence[int] = ()
    strength: float = 0.0
    resize_from: tuple[int, int] | None = None  # (width, height) whose noise is reused, centred


def _randn(seed: int, shape: tuple[int, ...]) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator(device="cpu").manual_seed(int(seed)), dtype=torch.float32)


def slerp(val: float, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """A1111's slerp between two noises, normalising over dim 1 as A1111 does (for (C, H, W) noise: H)."""
    low_norm = low / torch.norm(low, dim=1, keepdim=True)
    high_norm = high / torch.norm(high, dim=1, keepdim=True)
    dot = (low_norm * high_norm).sum(1)
    if dot.mean() > 0.9995:
        return low * val + high * (1 - val)
    omega = torch.acos(dot)
    so = torch.sin(omega)
    return (torch.sin((1.0 - val) * omega) / so).unsqueeze(1) * low + (torch.sin(val * omega) / so).unsqueeze(1) * high


class ImageNoise:
    """Per-image generators. The first draw is the initial latent noise; ancestral samplers take the next ones."""

    def __init__(self, seeds: Sequence[int], shape: tuple[int, int, int], variation: SeedVariation | None = None) -> None:
        self.shape = shape
        self.seeds = list(seeds)
        self.variation = variation or SeedVariation()
        self.generators = [torch.Generator(device="cpu").manual_seed(int(seed)) for seed in seeds]
        self._first = True

    def next(self) -> torch.Tensor:
        """(batch, C, H/8, W/8) float32 on the CPU: one draw from each image's generator."""
        if self._first:
            self._first = False
            return self._first_noise()
        return torch.stack([torch.randn(self.shape, generator=g, dtype=torch.float32) for g in self.generators])

    def _first_noise(self) -> torch.Tensor:
        """A1111's ``ImageRNG.first``."""
        variation = self.variation
        channels, height, width = self.shape
        noise_shape = self.shape
        if variation.resize_from is not None:
            from_width, from_height = variation.resize_from
            noise_shape = (channels, from_height // 8, from_width // 8)
        images = []
        for index, (seed, generator) in enumerate(zip(self.seeds, self.generators)):
            subnoise = None
            if variation.strength != 0 and variation.subseeds:
                subseed = variation.subseeds[index] if index < len(variation.subseeds) else 0
                subnoise = _randn(subseed, noise_shape)
            if noise_shape != self.shape:
                noise = _randn(seed, noise_shape)
            else:
                noise = torch.randn(self.shape, generator=generator, dtype=torch.float32)
            if subnoise is not None:
                noise = slerp(variation.strength, noise, subnoise)
            if noise_shape != self.shape:
                noise = _paste_centred(torch.randn(self.shape, generator=generator, dtype=torch.float32), noise)
            images.append(noise)
        return torch.stack(images)


def _paste_centred(canvas: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """Put ``noise`` in the middle of ``canvas``, cropping whichever is larger (A1111's arithmetic)."""
    dx = (canvas.shape[2] - noise.shape[2]) // 2
    dy = (canvas.shape[1] - noise.shape[1]) // 2
    w = noise.shape[2] if dx >= 0 else noise.shape[2] + 2 * dx
    h = noise.shape[1] if dy >= 0 else noise.shape[1] + 2 * dy
    tx, ty = max(dx, 0), max(dy, 0)
    dx, dy = max(-dx, 0), max(-dy, 0)
    canvas[:, ty : ty + h, tx : tx + w] = noise[:, dy : dy + h, dx : dx + w]
    return canvas
