"""Noise schedules (sigma sequences) by A1111 name, computed as k-diffusion computes them.

Every function returns ``steps`` sigmas from high to low followed by a final 0.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from desktop.core.errors import InvalidRequest
from desktop.engine.denoiser import DiscreteSchedule


def _append_zero(sigmas: torch.Tensor) -> torch.Tensor:
    return torch.cat([sigmas, sigmas.new_zeros([1])])


def uniform(steps: int, schedule: DiscreteSchedule) -> torch.Tensor:
    """k-diffusion's ``get_sigmas(n)``: timesteps evenly spaced from 999 to 0, interpolated in log-sigma."""
    t_max = len(schedule.sigmas) - 1
    t = torch.linspace(t_max, 0, steps)
    return _append_zero(schedule.t_to_sigma(t))


def karras(steps: int, schedule: DiscreteSchedule, rho: float = 7.0) -> torch.Tensor:
    """Karras et al. (2022), with the model's own sigma range, as A1111 passes it."""
    ramp = torch.linspace(0, 1, steps)
    min_inv_rho = schedule.sigma_min ** (1 / rho)
    max_inv_rho = schedule.sigma_max ** (1 / rho)
    return _append_zero((max_inv_rho + ramp * (min_inv_rho - max_inv_rho)) ** rho)


def exponential(steps: int, schedule: DiscreteSchedule) -> torch.Tensor:
    """Evenly spaced in log-sigma between the model's sigma range."""
    return _append_zero(torch.linspace(math.log(schedule.sigma_max), math.log(schedule.sigma_min), steps).exp())


@dataclass(frozen=True)
class ScheduleType:
    name: str  # A1111's label, as written in infotext ("Schedule type: Karras")
    function: Callable[[int, DiscreteSchedule], torch.Tensor]


SCHEDULE_TYPES = {
    s.name: s
    for s in (
        ScheduleType("Uniform", uniform),
        ScheduleType("Karras", karras),
        ScheduleType("Exponential", exponential),
    )
}
AUTOMATIC = "Automatic"


def schedule_names() -> list[str]:
    return [AUTOMATIC, *SCHEDULE_TYPES]


def find_schedule(name: str) -> str:
    """The canonical label for ``name`` (case-insensitive); ``Automatic`` means the sampler's default."""
    for label in schedule_names():
        if label.lower() == name.strip().lower():
            return label
    raise InvalidRequest(f"unknown schedule type {name!r}; choose one of {', '.join(schedule_names())}", field="schedule")
