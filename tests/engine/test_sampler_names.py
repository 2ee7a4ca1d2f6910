"""The torch-free name lists the UI shows are exactly the engine's registries (same names, same order)."""

from __future__ import annotations

from desktop.core.sampling_names import SAMPLER_NAMES, SCHEDULE_NAMES
from desktop.engine.samplers import sampler_names
from desktop.engine.schedules import schedule_names


def test_sampler_names_match_the_registry_in_a1111_order():
    assert list(SAMPLER_NAMES) == sampler_names()
    assert len(SAMPLER_NAMES) == 20


def test_schedule_names_match_the_registry():
    assert list(SCHEDULE_NAMES) == schedule_names()
