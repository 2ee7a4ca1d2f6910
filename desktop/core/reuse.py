"""Reuse an image's parameters: A1111 infotext values onto a generation request, as "Send to txt2img" does.

Values that cannot be used (an unknown sampler, a size that is not a multiple of 8, a seed that is
not a number) leave the current setting alone and are named in ``warnings``; nothing raises.
The model is reported by name and hash, because finding the file is the catalogue's job.

>>> reused = reuse_parameters("a cat", "blurry", {"Steps": "30", "Sampler": "DPM++ 2M Karras",
...     "CFG scale": "6.5", "Seed": "42", "Size": "512x768", "Model hash": "abcdef1234", "Model": "dreamshaper_8"},
...     GenerationRequest(prompt=""))
>>> r = reused.request
>>> (r.prompt, r.steps, r.sampler, r.schedule, r.cfg_scale, r.seed, r.width, r.height)
('a cat', 30, 'DPM++ 2M', 'Karras', 6.5, 42, 512, 768)
>>> reused.model_name, reused.model_hash, reused.warnings
('dreamshaper_8', 'abcdef1234', ())
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass

from desktop.core.requests import MAX_SEED, GenerationRequest
from desktop.core.sampling_names import COMBINED_SCHEDULE_SUFFIXES, SAMPLER_NAMES, SCHEDULE_NAMES

_SIZE = re.compile(r"^\s*(\d+)\s*x\s*(\d+)\s*$")


@dataclass(frozen=True)
class ReusedParameters:
    request: GenerationRequest
    model_name: str = ""  # "Model" (the file stem on the machine that made it)
    model_hash: str = ""  # "Model hash" (AutoV2, or the legacy 8-char hash)
    vae_name: str = ""
    warnings: tuple[str, ...] = ()


def reuse_parameters(prompt: str, negative_prompt: str, params: Mapping[str, str], base: GenerationRequest) -> ReusedParameters:
    """``base`` (the current fields) with every value the image records that this app can use."""
    values: dict[str, object] = {"prompt": prompt, "negative_prompt": negative_prompt}
    warnings: list[str] = []

    def number(key: str, field: str, kind: type, low: float, high: float) -> None:
        text = params.get(key)
        if text is None:
            return
        try:
            value = kind(float(text)) if kind is int else kind(text)
        except (TypeError, ValueError):
            warnings.append(f"{key} {text!r} is not a number")
            return
        if not (low <= value <= high):
            warnings.append(f"{key} {text} is out of range")
            return
        values[field] = value

    number("Steps", "steps", int, 1, 150)
    number("CFG scale", "cfg_scale", float, 0, 30)
    number("Seed", "seed", int, 0, MAX_SEED)
    number("Clip skip", "clip_skip", int, 1, 12)
    number("Variation seed", "variation_seed", int, 0, MAX_SEED)
    number("Variation seed strength", "variation_strength", float, 0, 1)
    for key, field in (("Size", None), ("Seed resize from", "resize_seed_from")):
        text = params.get(key)
        if text is None:
            continue
        size = _parse_size(text)
        if size is None:
            warnings.append(f"{key} {text!r} is not a size like 512x768")
        elif field is None:
            values["width"], values["height"] = size
        elif size != (-1, -1):
            values[field] = size
    if "Sampler" in params:
        sampler, implied_schedule = _sampler(params["Sampler"])
        if sampler is None:
            warnings.append(f"the sampler {params['Sampler']!r} is not available; the current one is kept")
        else:
            values["sampler"] = sampler
            if implied_schedule:
                values["schedule"] = implied_schedule
    schedule = params.get("Schedule type")
    if schedule is not None:
        match = next((name for name in SCHEDULE_NAMES if name.lower() == schedule.strip().lower()), None)
        if match is None:
            warnings.append(f"the schedule type {schedule!r} is not available; the current one is kept")
        else:
            values["schedule"] = match
    return ReusedParameters(
        dataclasses.replace(base, **values),
        model_name=params.get("Model", "").strip(),
        model_hash=params.get("Model hash", "").strip().lower(),
        vae_name=params.get("VAE", "").strip(),
        warnings=tuple(warnings),
    )


def _parse_size(text: str) -> tuple[int, int] | None:
    match = _SIZE.match(text)
    if match:
        width, height = int(match.group(1)), int(match.group(2))
        if width % 8 == 0 and height % 8 == 0 and 0 < width <= 8192 and 0 < height <= 8192:
            return width, height
    if text.strip() in ("-1x-1", "0x0"):  # A1111 writes these for "no seed resize"
        return -1, -1
    return None


def _sampler(name: str) -> tuple[str | None, str | None]:
    wanted = " ".join(name.split()).lower()
    for known in SAMPLER_NAMES:
        if known.lower() == wanted:
            return known, None
    for suffix in COMBINED_SCHEDULE_SUFFIXES:
        if wanted.endswith(" " + suffix.lower()):
            base = wanted[: -len(suffix) - 1]
            for known in SAMPLER_NAMES:
                if known.lower() == base:
                    return known, suffix
    return None, None
