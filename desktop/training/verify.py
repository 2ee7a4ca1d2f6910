"""Checking a trained LoRA the way its users will use it: through the inference code, not the trainer's.

A file that loads in our trainer proves little; what matters is that the networks code (the same
path ``<lora:name:1>`` takes, modelled on A1111) finds a layer for every module, that the metadata
and ``sshs_model_hash`` are there and right, and that the LoRA visibly changes an image. The
sample comparison merges the file with :class:`NetworkPatcher` and takes it off again, which
restores the base weights bit for bit. Run it on a model the training network is not installed on
(``LoRANetwork.remove()`` first), or the LoRA would count twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from PIL import Image

from desktop.core.requests import GenerationRequest
from desktop.engine.networks.lora import NetworkPatcher, load_network
from desktop.engine.txt2img import Txt2ImgPipeline
from desktop.library.hashes import safetensors_tensor_hash
from desktop.training.kohya_export import REQUIRED_KEYS


@dataclass(frozen=True)
class LoraVerification:
    """How a saved LoRA fits a model, as the inference code sees it."""

    path: Path
    matched: int  # modules the networks code would apply
    total: int  # modules in the file
    unmatched: tuple[str, ...]  # the first few module names that found no (fitting) layer
    wrong_base: bool  # made for another base model: the networks code would apply nothing
    warning: str | None  # the networks code's own message, None when every module matched
    missing_metadata: tuple[str, ...]  # required ss_*/modelspec.* keys the file lacks
    hash_matches: bool | None  # sshs_model_hash == the file's tensor hash; None when it has none

    @property
    def complete(self) -> bool:
        return self.total > 0 and self.matched == self.total

    @property
    def ok(self) -> bool:
        return self.complete and not self.missing_metadata and self.hash_matches is True


class SampleComparison(NamedTuple):
    with_lora: Image.Image
    without_lora: Image.Image
    differs: bool


def verify_lora(path: str | Path, model: Any) -> LoraVerification:
    """Load ``path`` with the networks code and match it against ``model`` (no weight is touched).

    A file that cannot be read at all raises what ``load_network`` raises (``ModelFileError``,
    ``UnsupportedModel``).
    """
    path = Path(path)
    network = load_network(path)
    match = NetworkPatcher(model).match(network)
    stored = network.metadata.get("sshs_model_hash")
    return LoraVerification(
        path=path,
        matched=match.matched,
        total=match.total,
        unmatched=match.unmatched,
        wrong_base=match.wrong_base,
        warning=match.warning(),
        missing_metadata=tuple(key for key in REQUIRED_KEYS if key not in network.metadata),
        hash_matches=None if stored is None else stored == safetensors_tensor_hash(path),
    )


def sample_with_and_without(
    path: str | Path,
    model: Any,
    prompt: str,
    *,
    seed: int = 0,
    steps: int = 20,
    size: tuple[int, int] = (512, 512),
    negative_prompt: str = "",
    sampler: str = "Euler a",
    cfg_scale: float = 7.0,
    clip_skip: int = 1,
    multiplier: float = 1.0,
) -> SampleComparison:
    """One image without the LoRA and one with it (same seed and settings), and whether they differ.

    ``model`` is a ``LoadedModel``; ``size`` is (width, height). The LoRA is merged at
    ``multiplier`` for the text encoders and the UNet, and taken off afterwards, also on errors:
    the model's weights are bit-identical to what they were.
    """
    width, height = size
    request = GenerationRequest(
        prompt=prompt, negative_prompt=negative_prompt, steps=steps, cfg_scale=cfg_scale, sampler=sampler,
        seed=seed, width=width, height=height, clip_skip=clip_skip,
    )  # fmt: skip
    pipeline = Txt2ImgPipeline(model)
    without = _one_image(pipeline, request)
    patcher = NetworkPatcher(model)
    try:
        patcher.apply([(load_network(path), multiplier, multiplier)])
        with_lora = _one_image(pipeline, request)
    finally:
        patcher.restore()
    return SampleComparison(with_lora, without, not np.array_equal(np.asarray(with_lora), np.asarray(without)))


def _one_image(pipeline: Txt2ImgPipeline, request: GenerationRequest) -> Image.Image:
    return pipeline(request).images[0].image
