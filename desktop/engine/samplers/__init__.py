"""Samplers by A1111 name. Each algorithm lives in its own module, written after k-diffusion."""

from __future__ import annotations

from desktop.engine.samplers.registry import SAMPLERS, SamplerKind, SamplerSpec, find_sampler, sampler_names

__all__ = ["SAMPLERS", "SamplerKind", "SamplerSpec", "find_sampler", "sampler_names"]
