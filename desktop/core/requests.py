"""The immutable request for one txt2img job: everything needed to reproduce its images."""

from __future__ import annotations

import random
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from desktop.core.errors import InvalidRequest

MAX_SEED = 2**32 - 1  # A1111 seeds are unsigned 32-bit; torch accepts larger but A1111 users never see them
MAX_SIDE = 4096
MAX_STEPS = 150
MAX_BATCH_SIZE = 8
MAX_BATCH_COUNT = 100
MAX_CLIP_SKIP = 12


@dataclass(frozen=True)
class GenerationRequest:
    prompt: str
    negative_prompt: str = ""
    steps: int = 20
    cfg_scale: float = 7.0
    sampler: str = "Euler a"
    schedule: str = "Automatic"
    seed: int = -1
    width: int = 512
    height: int = 512
    batch_size: int = 1
    batch_count: int = 1
    clip_skip: int = 1
    vae_path: Path | None = None
    model_path: Path | None = None  # the checkpoint; the CLI passes it beside the request, the app inside it
    novelai_emphasis: bool = False  # opt-in {word} x1.05; A1111 treats braces as plain text
    variation_seed: int = -1  # A1111's "Variation seed" (subseed); -1 picks one
    variation_strength: float = 0.0  # 0 = the seed's own noise, 1 = the variation seed's
    resize_seed_from: tuple[int, int] | None = None  # (width, height) whose noise is reused, centred

    def validate(self) -> None:
        """Raise :class:`InvalidRequest` naming the first bad parameter."""
        for name, value in (("width", self.width), ("height", self.height)):
            if not isinstance(value, int) or value <= 0 or value % 8:
                raise InvalidRequest(f"{name} must be a positive multiple of 8, got {value}", field=name)
            if value > MAX_SIDE:
                raise InvalidRequest(f"{name} must be at most {MAX_SIDE}, got {value}", field=name)
        _check_range("steps", self.steps, 1, MAX_STEPS)
        _check_range("batch size", self.batch_size, 1, MAX_BATCH_SIZE)
        _check_range("batch count", self.batch_count, 1, MAX_BATCH_COUNT)
        _check_range("clip skip", self.clip_skip, 1, MAX_CLIP_SKIP)
        if not (0.0 <= self.cfg_scale <= 30.0) or self.cfg_scale != self.cfg_scale:
            raise InvalidRequest(f"CFG scale must be between 0 and 30, got {self.cfg_scale}", field="cfg_scale")
        if self.seed != -1 and not (0 <= self.seed <= MAX_SEED):
            raise InvalidRequest(f"seed must be -1 (random) or between 0 and {MAX_SEED}, got {self.seed}", field="seed")
        if self.variation_seed != -1 and not (0 <= self.variation_seed <= MAX_SEED):
            raise InvalidRequest(
                f"variation seed must be -1 (random) or between 0 and {MAX_SEED}, got {self.variation_seed}",
                field="variation_seed",
            )
        if not (0.0 <= self.variation_strength <= 1.0):
            raise InvalidRequest(
                f"variation strength must be between 0 and 1, got {self.variation_strength}", field="variation_strength"
            )
        if self.resize_seed_from is not None:
            for name, value in zip(("width", "height"), self.resize_seed_from):
                if not isinstance(value, int) or value <= 0 or value % 8 or value > MAX_SIDE:
                    raise InvalidRequest(
                        f"resize seed from {name} must be a positive multiple of 8 up to {MAX_SIDE}, got {value}",
                        field="resize_seed_from",
                    )

    def to_json(self) -> dict[str, Any]:
        """Plain JSON-safe values (paths as strings, sizes as lists), for the persistent queue."""
        data: dict[str, Any] = {}
        for field in fields(self):
            value = getattr(self, field.name)
            if isinstance(value, Path):
                value = str(value)
            elif isinstance(value, tuple):
                value = list(value)
            data[field.name] = value
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> GenerationRequest:
        """The inverse of :meth:`to_json`; unknown keys (from a newer version) are ignored.

        Raises :class:`InvalidRequest` when a value has the wrong type or is out of range, so a
        damaged queue file is reported instead of producing a half-valid job.
        """
        if not isinstance(data, dict) or not isinstance(data.get("prompt"), str):
            raise InvalidRequest("a saved request needs at least a prompt", field="prompt")
        values: dict[str, Any] = {}
        for field in fields(cls):
            if field.name not in data:
                continue
            value = data[field.name]
            if field.name in ("vae_path", "model_path"):
                value = None if value is None else Path(_expect(field.name, value, str))
            elif field.name == "resize_seed_from":
                value = None if value is None else tuple(int(_expect(field.name, v, int)) for v in value)
            elif isinstance(field.default, bool):
                value = _expect(field.name, value, bool)
            elif isinstance(field.default, float):
                value = float(_expect(field.name, value, (int, float)))
            elif isinstance(field.default, int):
                value = _expect(field.name, value, int)
            else:
                value = _expect(field.name, value, str)
            values[field.name] = value
        request = cls(**values)
        request.validate()
        return request

    def with_resolved_seed(self, rng: random.Random | None = None) -> GenerationRequest:
        """Replace seeds of -1 by concrete random seeds, so the job (and its metadata) records them."""
        rng = rng or random.SystemRandom()
        seed = self.seed if self.seed != -1 else rng.randrange(0, MAX_SEED + 1)
        variation_seed = self.variation_seed if self.variation_seed != -1 else rng.randrange(0, MAX_SEED + 1)
        return replace(self, seed=seed, variation_seed=variation_seed)

    def image_seeds(self, batch_index: int) -> list[int]:
        """Seeds of the images of one batch: A1111 gives image i of the job the seed ``seed + i``."""
        if self.seed == -1:
            raise ValueError("resolve the seed first (with_resolved_seed)")
        return self._consecutive(self.seed, batch_index)

    def image_variation_seeds(self, batch_index: int) -> list[int]:
        """Variation seeds of one batch's images: A1111 numbers them like the seeds (subseed + i)."""
        if self.variation_seed == -1:
            raise ValueError("resolve the seed first (with_resolved_seed)")
        return self._consecutive(self.variation_seed, batch_index)

    def _consecutive(self, start: int, batch_index: int) -> list[int]:
        first = start + batch_index * self.batch_size
        return [first + i for i in range(self.batch_size)]


def _check_range(name: str, value: int, low: int, high: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not (low <= value <= high):
        raise InvalidRequest(f"{name} must be a whole number from {low} to {high}, got {value}", field=name)


def _expect(name: str, value: Any, kind: type | tuple[type, ...]) -> Any:
    if isinstance(value, bool) and kind is not bool:
        raise InvalidRequest(f"{name} has the wrong type in the saved request", field=name)
    if not isinstance(value, kind):
        raise InvalidRequest(f"{name} has the wrong type in the saved request", field=name)
    return value
