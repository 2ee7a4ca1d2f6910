"""A1111's sampler and schedule-type names, for menus and validation where torch is not loaded.

The engine's registries (``desktop.engine.samplers``, ``desktop.engine.schedules``) hold the
algorithms; a test keeps them and these lists equal.
"""

from __future__ import annotations

SAMPLER_NAMES: tuple[str, ...] = (
    "Euler a",
    "Euler",
    "LMS",
    "Heun",
    "DPM2",
    "DPM2 a",
    "DPM++ 2S a",
    "DPM++ 2M",
    "DPM++ SDE",
    "DPM++ 2M SDE",
    "DPM++ 2M SDE Heun",
    "DPM++ 3M SDE",
    "DPM fast",
    "DPM adaptive",
    "Restart",
    "DDIM",
    "DDIM CFG++",
    "PLMS",
    "UniPC",
    "LCM",
)

SCHEDULE_NAMES: tuple[str, ...] = (
    "Automatic",
    "Uniform",
    "Karras",
    "Exponential",
    "Polyexponential",
    "SGM Uniform",
    "KL Optimal",
    "Align Your Steps",
    "Simple",
    "Normal",
    "DDIM",
    "Beta",
)

# Before A1111 1.9 the schedule was part of the sampler name ("DPM++ 2M Karras"); civitai still shows
# such names. Longest first, so "SGM Uniform" is not read as "Uniform".
COMBINED_SCHEDULE_SUFFIXES: tuple[str, ...] = ("SGM Uniform", "Karras", "Exponential", "Uniform")
