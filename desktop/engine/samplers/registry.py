"""A1111's sampler names, their default schedules, and the old combined names found in metadata."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from desktop.core.errors import InvalidRequest
from desktop.engine.samplers.dpm2 import sample_dpm_2
from desktop.engine.samplers.dpm2_ancestral import sample_dpm_2_ancestral
from desktop.engine.samplers.dpmpp_2m import sample_dpmpp_2m
from desktop.engine.samplers.dpmpp_2s_ancestral import sample_dpmpp_2s_ancestral
from desktop.engine.samplers.euler import sample_euler
from desktop.engine.samplers.euler_ancestral import sample_euler_ancestral
from desktop.engine.samplers.heun import sample_heun
from desktop.engine.samplers.lms import sample_lms


@dataclass(frozen=True)
class SamplerSpec:
    name: str  # as A1111 writes it in infotext ("Sampler: DPM++ 2M")
    function: Callable[..., object]
    default_schedule: str | None = None  # what "Automatic" means; None: k-diffusion's own (uniform) sigmas
    aliases: tuple[str, ...] = ()  # A1111's internal names (k_euler_a, ...)
    second_order: bool = False  # two model calls a step: prompt schedules count twice the steps
    discard_next_to_last_sigma: bool = False  # A1111: schedule for steps + 1, then drop the next-to-last sigma


SAMPLERS: dict[str, SamplerSpec] = {
    s.name: s
    for s in (
        SamplerSpec("Euler a", sample_euler_ancestral, aliases=("k_euler_a", "k_euler_ancestral")),
        SamplerSpec("Euler", sample_euler, aliases=("k_euler",)),
        SamplerSpec("LMS", sample_lms, aliases=("k_lms",)),
        SamplerSpec("Heun", sample_heun, aliases=("k_heun",), second_order=True),
        SamplerSpec("DPM2", sample_dpm_2, aliases=("k_dpm_2",), second_order=True, discard_next_to_last_sigma=True),
        SamplerSpec(
            "DPM2 a", sample_dpm_2_ancestral, aliases=("k_dpm_2_a",), second_order=True, discard_next_to_last_sigma=True
        ),
        SamplerSpec("DPM++ 2S a", sample_dpmpp_2s_ancestral, aliases=("k_dpmpp_2s_a",), second_order=True),
        SamplerSpec("DPM++ 2M", sample_dpmpp_2m, default_schedule="Karras", aliases=("k_dpmpp_2m",)),
    )
}

# Before A1111 1.9 the schedule was part of the sampler name ("DPM++ 2M Karras").
_COMBINED_SUFFIXES = ("Karras", "Exponential", "Uniform")


def sampler_names() -> list[str]:
    return list(SAMPLERS)


def find_sampler(name: str) -> tuple[SamplerSpec, str | None]:
    """The sampler for an A1111 name (case-insensitive) and the schedule an old combined name implies."""
    wanted = " ".join(name.split()).lower()
    for spec in SAMPLERS.values():
        if wanted == spec.name.lower() or wanted in spec.aliases:
            return spec, None
    for suffix in _COMBINED_SUFFIXES:
        if wanted.endswith(" " + suffix.lower()):
            base = wanted[: -len(suffix) - 1]
            for spec in SAMPLERS.values():
                if base == spec.name.lower():
                    return spec, suffix
    raise InvalidRequest(f"unknown sampler {name!r}; choose one of {', '.join(sampler_names())}", field="sampler")
