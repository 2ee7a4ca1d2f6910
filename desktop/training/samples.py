"""Sample images during training, from kohya-style prompt lines, with the app's own txt2img pipeline.

A kohya prompt line carries its options after the prompt: ``a cat --n blurry --w 512 --h 768
--d 42 --l 7 --s 20`` (negative prompt, width, height, seed, CFG scale, steps).

>>> parse_prompt_line("1girl, smile --n lowres, bad hands --w 640 --d 7", width=512, height=512, seed=1, steps=20)
SamplePrompt(prompt='1girl, smile', negative='lowres, bad hands', width=640, height=512, seed=7, cfg_scale=7.0, steps=20)
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from desktop.core.requests import GenerationRequest

# kohya's --sample_sampler names -> A1111's; A1111 names are accepted as they are.
KOHYA_SAMPLERS = {
    "ddim": "DDIM", "pndm": "PLMS", "plms": "PLMS", "lms": "LMS", "k_lms": "LMS", "euler": "Euler",
    "k_euler": "Euler", "euler_a": "Euler a", "k_euler_a": "Euler a", "dpmsolver": "DPM++ 2M",
    "dpmsolver++": "DPM++ 2M", "dpmsingle": "DPM++ 2S a", "heun": "Heun", "dpm_2": "DPM2", "k_dpm_2": "DPM2",
    "dpm_2_a": "DPM2 a", "k_dpm_2_a": "DPM2 a",
}  # fmt: skip
_OPTION = re.compile(r"\s--([a-z])\s+")


@dataclass(frozen=True)
class SamplePrompt:
    prompt: str
    negative: str = ""
    width: int = 512
    height: int = 512
    seed: int = 0
    cfg_scale: float = 7.0
    steps: int = 20


def parse_prompt_line(line: str, *, width: int, height: int, seed: int, steps: int) -> SamplePrompt:
    """One prompt line; unknown or malformed options are left in the prompt text rather than lost."""
    parts = _OPTION.split(" " + line.strip())
    sample = SamplePrompt(parts[0].strip(), width=width, height=height, seed=seed, steps=steps)
    for key, value in zip(parts[1::2], parts[2::2]):
        value = value.strip()
        try:
            if key == "n":
                sample = replace(sample, negative=value)
            elif key == "w":
                sample = replace(sample, width=_multiple_of_8(value))
            elif key == "h":
                sample = replace(sample, height=_multiple_of_8(value))
            elif key == "d":
                sample = replace(sample, seed=int(value))
            elif key == "l":
                sample = replace(sample, cfg_scale=float(value))
            elif key == "s":
                sample = replace(sample, steps=max(1, min(150, int(value))))
            else:
                sample = replace(sample, prompt=f"{sample.prompt} --{key} {value}")
        except ValueError:
            sample = replace(sample, prompt=f"{sample.prompt} --{key} {value}")
    return sample


def sampler_name(name: str) -> str:
    """A1111's name for kohya's ``sample_sampler`` value."""
    return KOHYA_SAMPLERS.get(name.strip().lower(), name.strip() or "Euler a")


def render_sample(model: Any, sample: SamplePrompt, sampler: str, clip_skip: int) -> Any:
    """One image (PIL) with whatever networks are live on ``model`` (the LoRA being trained)."""
    import torch

    from desktop.engine.txt2img import Txt2ImgPipeline

    request = GenerationRequest(
        prompt=sample.prompt, negative_prompt=sample.negative, steps=sample.steps, cfg_scale=sample.cfg_scale,
        sampler=sampler_name(sampler), seed=sample.seed, width=sample.width, height=sample.height, clip_skip=clip_skip,
        model_path=Path(model.path),
    )  # fmt: skip
    with torch.no_grad():
        result = Txt2ImgPipeline(model)(request)
    return result.images[0].image, result.images[0].infotext


def _multiple_of_8(value: str) -> int:
    return max(64, min(2048, int(value) // 8 * 8))
