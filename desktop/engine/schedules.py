"""Noise schedules (sigma sequences) by A1111 name, computed as A1111 1.10 and k-diffusion compute them.

Every function returns ``steps`` sigmas from high to low followed by a final 0.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from desktop.core.errors import InvalidRequest
from desktop.engine.denoiser import DiscreteSchedule


def _append_zero(sigmas: torch.Tensor) -> torch.Tensor:
    return torch.cat([sigmas, sigmas.new_zeros([1])])


def uniform(steps: int, schedule: DiscreteSchedule) -> torch.Tensor:
    """A1111's "Uniform": the model wrapper's own ``get_sigmas(n)``.

    For the 1000-step schedule that is k-diffusion's timesteps evenly spaced from 999 to 0,
    interpolated in log-sigma; LCM's wrapper spaces its own 50 timesteps instead.
    """
    return schedule.get_sigmas(steps)


def karras(steps: int, schedule: DiscreteSchedule, rho: float = 7.0) -> torch.Tensor:
    """Karras et al. (2022), with the model's own sigma range, as A1111 passes it."""
    return karras_sigmas(steps, schedule.sigma_min, schedule.sigma_max, rho)


def karras_sigmas(steps: int, sigma_min: float, sigma_max: float, rho: float = 7.0) -> torch.Tensor:
    """k-diffusion's ``get_sigmas_karras`` for any range (Restart builds its own from the schedule's ends)."""
    ramp = torch.linspace(0, 1, steps)
    min_inv_rho = sigma_min ** (1 / rho)
    max_inv_rho = sigma_max ** (1 / rho)
    return _append_zero((max_inv_rho + ramp * (min_inv_rho - max_inv_rho)) ** rho)


def exponential(steps: int, schedule: DiscreteSchedule) -> torch.Tensor:
    """Evenly spaced in log-sigma between the model's sigma range."""
    return _append_zero(torch.linspace(math.log(schedule.sigma_max), math.log(schedule.sigma_min), steps).exp())


def polyexponential(steps: int, schedule: DiscreteSchedule, rho: float = 1.0) -> torch.Tensor:
    """k-diffusion's polynomial in log-sigma (A1111's default rho 1 makes it exponential)."""
    ramp = torch.linspace(1, 0, steps) ** rho
    log_min, log_max = math.log(schedule.sigma_min), math.log(schedule.sigma_max)
    return _append_zero(torch.exp(ramp * (log_max - log_min) + log_min))


def sgm_uniform(steps: int, schedule: DiscreteSchedule) -> torch.Tensor:
    """Stability's SGM spacing: ``steps`` timesteps of ``steps + 1`` evenly spaced, the last dropped."""
    return normal(steps, schedule, sgm=True)


def kl_optimal(steps: int, schedule: DiscreteSchedule) -> torch.Tensor:
    """Evenly spaced in arctan(sigma) ("KL-optimal", arXiv:2404.14507), ending at sigma_min as A1111's does."""
    alpha_min = torch.arctan(torch.tensor(schedule.sigma_min))
    alpha_max = torch.arctan(torch.tensor(schedule.sigma_max))
    step_indices = torch.arange(steps + 1)
    return torch.tan(step_indices / steps * alpha_min + (1.0 - step_indices / steps) * alpha_max)


# NVIDIA's published 10-step "Align Your Steps" sigmas (the values A1111 ships).
_AYS_SD1 = (14.615, 6.475, 3.861, 2.697, 1.886, 1.396, 0.963, 0.652, 0.399, 0.152, 0.029)
_AYS_SDXL = (14.615, 6.315, 3.771, 2.181, 1.342, 0.862, 0.555, 0.380, 0.234, 0.113, 0.029)


def align_your_steps(steps: int, schedule: DiscreteSchedule, *, sdxl: bool = False) -> torch.Tensor:
    """AYS: the published table, log-linearly interpolated to other step counts (A1111's recipe)."""
    table = _AYS_SDXL if sdxl else _AYS_SD1
    if steps == len(table):
        return torch.tensor([*table, 0.0], dtype=torch.float32)
    xs = np.linspace(0, 1, len(table))
    ys = np.log(np.array(table)[::-1])
    interpolated = np.exp(np.interp(np.linspace(0, 1, steps), xs, ys))[::-1].copy()
    return torch.tensor(np.append(interpolated, [0.0]), dtype=torch.float32)


def simple(steps: int, schedule: DiscreteSchedule) -> torch.Tensor:
    """Every (1000 / steps)-th training sigma from the top, as ComfyUI's and A1111's "Simple"."""
    stride = len(schedule.sigmas) / steps
    sigmas = [float(schedule.sigmas[-(1 + int(x * stride))]) for x in range(steps)]
    return torch.tensor([*sigmas, 0.0], dtype=torch.float32)


def normal(steps: int, schedule: DiscreteSchedule, *, sgm: bool = False) -> torch.Tensor:
    """Timesteps evenly spaced between the model's sigma range, each turned back into a sigma.

    A1111's ``normal_scheduler``; with ``sgm`` it spaces ``steps + 1`` and drops the last (SGM Uniform).
    """
    start = schedule.sigma_to_t(torch.tensor(schedule.sigma_max))
    end = schedule.sigma_to_t(torch.tensor(schedule.sigma_min))
    timesteps = torch.linspace(start, end, steps + 1)[:-1] if sgm else torch.linspace(start, end, steps)
    sigmas = [float(schedule.t_to_sigma(t)) for t in timesteps]
    return torch.tensor([*sigmas, 0.0], dtype=torch.float32)


def ddim(steps: int, schedule: DiscreteSchedule) -> torch.Tensor:
    """DDIM's integer timesteps 1, 1 + k, 1 + 2k, ... (k = 1000 // steps), as sigmas from high to low."""
    stride = max(len(schedule.sigmas) // steps, 1)
    sigmas = [float(schedule.sigmas[t]) for t in range(1, len(schedule.sigmas), stride)]
    return torch.tensor([*sigmas[::-1], 0.0], dtype=torch.float32)


def beta(steps: int, schedule: DiscreteSchedule, alpha: float = 0.6, beta_: float = 0.6) -> torch.Tensor:
    """"Beta Sampling is All You Need" (arXiv:2407.12173) with A1111's default alpha = beta = 0.6."""
    from scipy import stats

    timesteps = [stats.beta.ppf(x, alpha, beta_) for x in 1 - np.linspace(0, 1, steps)]
    sigmas = [schedule.sigma_min + t * (schedule.sigma_max - schedule.sigma_min) for t in timesteps]
    return torch.tensor([*sigmas, 0.0], dtype=torch.float32)


@dataclass(frozen=True)
class ScheduleType:
    name: str  # A1111's label, as written in infotext ("Schedule type: Karras")
    function: Callable[..., torch.Tensor]
    family_specific: bool = False  # takes sdxl=True/False (Align Your Steps has a table per family)
    aliases: tuple[str, ...] = ()

    def sigmas(self, steps: int, schedule: DiscreteSchedule, *, sdxl: bool = False) -> torch.Tensor:
        if self.family_specific:
            return self.function(steps, schedule, sdxl=sdxl)
        return self.function(steps, schedule)


SCHEDULE_TYPES = {
    s.name: s
    for s in (
        ScheduleType("Uniform", uniform),
        ScheduleType("Karras", karras),
        ScheduleType("Exponential", exponential),
        ScheduleType("Polyexponential", polyexponential),
        ScheduleType("SGM Uniform", sgm_uniform, aliases=("SGMUniform", "sgm_uniform")),
        ScheduleType("KL Optimal", kl_optimal, aliases=("kl_optimal",)),
        ScheduleType("Align Your Steps", align_your_steps, family_specific=True, aliases=("align_your_steps", "AYS")),
        ScheduleType("Simple", simple),
        ScheduleType("Normal", normal),
        ScheduleType("DDIM", ddim),
        ScheduleType("Beta", beta),
    )
}
AUTOMATIC = "Automatic"


def schedule_names() -> list[str]:
    return [AUTOMATIC, *SCHEDULE_TYPES]


def find_schedule(name: str) -> str:
    """The canonical label for ``name`` (case-insensitive, A1111's ids too); ``Automatic`` means the sampler's default."""
    wanted = name.strip().lower()
    if wanted == AUTOMATIC.lower():
        return AUTOMATIC
    for label, spec in SCHEDULE_TYPES.items():
        if wanted == label.lower() or wanted in (alias.lower() for alias in spec.aliases):
            return label
    raise InvalidRequest(f"unknown schedule type {name!r}; choose one of {', '.join(schedule_names())}", field="schedule")
