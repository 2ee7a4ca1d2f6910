"""A1111's sampler names, their default schedules, and the old combined names found in metadata."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from desktop.core.errors import InvalidRequest
from desktop.core.sampling_names import COMBINED_SCHEDULE_SUFFIXES
from desktop.engine.samplers.ddim import sample_ddim
from desktop.engine.samplers.ddim_cfgpp import sample_ddim_cfgpp
from desktop.engine.samplers.dpm2 import sample_dpm_2
from desktop.engine.samplers.dpm2_ancestral import sample_dpm_2_ancestral
from desktop.engine.samplers.dpm_solver import sample_dpm_adaptive, sample_dpm_fast
from desktop.engine.samplers.dpmpp_2m import sample_dpmpp_2m
from desktop.engine.samplers.dpmpp_2m_sde import sample_dpmpp_2m_sde, sample_dpmpp_2m_sde_heun
from desktop.engine.samplers.dpmpp_2s_ancestral import sample_dpmpp_2s_ancestral
from desktop.engine.samplers.dpmpp_3m_sde import sample_dpmpp_3m_sde
from desktop.engine.samplers.dpmpp_sde import sample_dpmpp_sde
from desktop.engine.samplers.euler import sample_euler
from desktop.engine.samplers.euler_ancestral import sample_euler_ancestral
from desktop.engine.samplers.heun import sample_heun
from desktop.engine.samplers.lcm import sample_lcm
from desktop.engine.samplers.lms import sample_lms
from desktop.engine.samplers.plms import sample_plms
from desktop.engine.samplers.restart import sample_restart
from desktop.engine.samplers.unipc import sample_unipc


class SamplerKind(Enum):
    """Which of A1111's sampler classes runs it: how the model is asked and what the loop walks."""

    SIGMAS = "k-diffusion"  # KDiffusionSampler: sigmas, denoised outputs, x starts at noise * sigmas[0]
    TIMESTEPS = "timesteps"  # CompVisSampler: integer timesteps, eps outputs, x starts at the unscaled noise
    LCM = "lcm"  # LCMSampler: the k-diffusion loop over LCM's 50-timestep model wrapper


@dataclass(frozen=True)
class SamplerSpec:
    name: str  # as A1111 writes it in infotext ("Sampler: DPM++ 2M")
    function: Callable[..., object]
    default_schedule: str | None = None  # what "Automatic" means; None: k-diffusion's own (uniform) sigmas
    aliases: tuple[str, ...] = ()  # A1111's internal names (k_euler_a, ...)
    second_order: bool = False  # two model calls a step: prompt schedules count twice the steps
    discard_next_to_last_sigma: bool = False  # A1111: schedule for steps + 1, then drop the next-to-last sigma
    brownian_noise: bool = False  # SDE noise from Brownian trees seeded with the image seeds (A1111's create_noise_sampler)
    model_sigma_range: bool = False  # DPM fast / adaptive: A1111's txt2img gives them the model's whole sigma range
    kind: SamplerKind = SamplerKind.SIGMAS


SAMPLERS: dict[str, SamplerSpec] = {
    s.name: s
    for s in (
        SamplerSpec("Euler a", sample_euler_ancestral, aliases=("k_euler_a", "k_euler_ancestral")),
        SamplerSpec("Euler", sample_euler, aliases=("k_euler",)),
        SamplerSpec("LMS", sample_lms, aliases=("k_lms",)),
        SamplerSpec("Heun", sample_heun, aliases=("k_heun",), second_order=True),
        SamplerSpec(
            "DPM2", sample_dpm_2, default_schedule="Karras", aliases=("k_dpm_2",), second_order=True,
            discard_next_to_last_sigma=True,
        ),
        SamplerSpec(
            "DPM2 a", sample_dpm_2_ancestral, default_schedule="Karras", aliases=("k_dpm_2_a",), second_order=True,
            discard_next_to_last_sigma=True,
        ),
        SamplerSpec(
            "DPM++ 2S a", sample_dpmpp_2s_ancestral, default_schedule="Karras", aliases=("k_dpmpp_2s_a",), second_order=True
        ),
        SamplerSpec("DPM++ 2M", sample_dpmpp_2m, default_schedule="Karras", aliases=("k_dpmpp_2m",)),
        SamplerSpec(
            "DPM++ SDE", sample_dpmpp_sde, default_schedule="Karras", aliases=("k_dpmpp_sde",), second_order=True,
            brownian_noise=True,
        ),
        SamplerSpec(
            "DPM++ 2M SDE", sample_dpmpp_2m_sde, default_schedule="Exponential", aliases=("k_dpmpp_2m_sde",),
            brownian_noise=True,
        ),
        SamplerSpec(
            "DPM++ 2M SDE Heun", sample_dpmpp_2m_sde_heun, default_schedule="Exponential", aliases=("k_dpmpp_2m_sde_heun",),
            brownian_noise=True,
        ),
        SamplerSpec(
            "DPM++ 3M SDE", sample_dpmpp_3m_sde, default_schedule="Exponential", aliases=("k_dpmpp_3m_sde",),
            discard_next_to_last_sigma=True, brownian_noise=True,
        ),
        SamplerSpec("DPM fast", sample_dpm_fast, aliases=("k_dpm_fast",), model_sigma_range=True),
        SamplerSpec("DPM adaptive", sample_dpm_adaptive, aliases=("k_dpm_ad",), model_sigma_range=True),
        SamplerSpec("Restart", sample_restart, default_schedule="Karras", aliases=("restart",), second_order=True),
        SamplerSpec("DDIM", sample_ddim, aliases=("ddim",), kind=SamplerKind.TIMESTEPS),
        SamplerSpec("DDIM CFG++", sample_ddim_cfgpp, aliases=("ddim_cfgpp",), kind=SamplerKind.TIMESTEPS),
        SamplerSpec("PLMS", sample_plms, aliases=("plms",), kind=SamplerKind.TIMESTEPS),
        SamplerSpec("UniPC", sample_unipc, aliases=("unipc",), kind=SamplerKind.TIMESTEPS),
        SamplerSpec("LCM", sample_lcm, aliases=("k_lcm",), kind=SamplerKind.LCM),
    )
}



def sampler_names() -> list[str]:
    return list(SAMPLERS)


def find_sampler(name: str) -> tuple[SamplerSpec, str | None]:
    """The sampler for an A1111 name (case-insensitive) and the schedule an old combined name implies."""
    wanted = " ".join(name.split()).lower()
    for spec in SAMPLERS.values():
        if wanted == spec.name.lower() or wanted in spec.aliases:
            return spec, None
    for suffix in COMBINED_SCHEDULE_SUFFIXES:
        if wanted.endswith(" " + suffix.lower()):
            base = wanted[: -len(suffix) - 1]
            for spec in SAMPLERS.values():
                if base == spec.name.lower():
                    return spec, suffix
    raise InvalidRequest(f"unknown sampler {name!r}; choose one of {', '.join(sampler_names())}", field="sampler")
