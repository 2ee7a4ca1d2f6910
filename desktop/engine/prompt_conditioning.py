"""Prompts as A1111 conditions on them: AND parts with weights, each scheduled over the steps.

A1111's order: extra networks are removed from the text first, then the prompt is split on AND,
each part gets its step schedule, and each scheduled text is encoded (emphasis, chunks). While
sampling, the denoiser's call counter picks the entry of each schedule: the first whose end step
is >= the counter (``reconstruct_cond_batch``), so a prompt "ends at step N" after call N.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from desktop.core.prompt_syntax import prompt_schedule, split_and


@dataclass(frozen=True)
class EncodedText:
    context: torch.Tensor  # (1, 77*k, dim)
    pooled: torch.Tensor | None = None  # (1, dim) for SDXL


@dataclass(frozen=True)
class ScheduledText:
    end_at_step: int
    text: str
    encoded: EncodedText


Schedule = Sequence[ScheduledText]


@dataclass(frozen=True)
class WeightedSchedule:
    """One AND part of the positive prompt."""

    weight: float
    schedule: Schedule


def entry_at(schedule: Schedule, step: int) -> ScheduledText:
    """A1111's pick: the first entry still running at ``step``; past the end it falls back to the first."""
    for entry in schedule:
        if step <= entry.end_at_step:
            return entry
    return schedule[0]


@dataclass(frozen=True)
class StepConditioning:
    """What one denoiser call needs for one image: AND parts (stacked) with weights, and the negative."""

    cond: EncodedText  # context (parts, 77*k, dim), pooled (parts, dim)
    weights: tuple[float, ...]
    uncond: EncodedText  # context (1, 77*k, dim)


@dataclass(frozen=True)
class PromptConditioning:
    positive: tuple[WeightedSchedule, ...]
    negative: Schedule

    @classmethod
    def fixed(cls, cond: EncodedText, uncond: EncodedText) -> PromptConditioning:
        """One unscheduled prompt pair with weight 1 (for benchmarks and tests)."""
        return cls((WeightedSchedule(1.0, (ScheduledText(1, "", cond),)),), (ScheduledText(1, "", uncond),))

    def at_step(self, step: int) -> StepConditioning:
        parts = [entry_at(part.schedule, step).encoded for part in self.positive]
        return StepConditioning(
            cond=_stack(parts),
            weights=tuple(part.weight for part in self.positive),
            uncond=entry_at(self.negative, step).encoded,
        )

    def switch_steps(self) -> list[int]:
        """Denoiser calls after which some prompt text changes (for the UI and for tests)."""
        ends = {entry.end_at_step for part in self.positive for entry in part.schedule[:-1]}
        ends.update(entry.end_at_step for entry in self.negative[:-1])
        return sorted(ends)


def _stack(parts: Sequence[EncodedText]) -> EncodedText:
    """Stack AND parts; parts of different chunk counts are padded with their last vector (A1111)."""
    length = max(part.context.shape[1] for part in parts)
    contexts = []
    for part in parts:
        context = part.context
        if context.shape[1] < length:
            last = context[:, -1:].repeat(1, length - context.shape[1], 1)
            context = torch.cat([context, last], dim=1)
        contexts.append(context)
    pooled = [part.pooled for part in parts]
    return EncodedText(
        context=torch.cat(contexts),
        pooled=torch.cat(pooled) if all(p is not None for p in pooled) else None,
    )


def build_prompt_conditioning(
    prompt: str,
    negative_prompt: str,
    steps: int,
    encode: Callable[[str], EncodedText],
) -> PromptConditioning:
    """Schedule and encode both prompts; identical texts are encoded once.

    ``steps`` is the number of denoiser calls the schedule spans: twice the sampling steps for
    second-order samplers, as A1111 counts them. The negative prompt is scheduled but, as in
    A1111, not split on AND.
    """
    cache: dict[str, EncodedText] = {}

    def encoded(text: str) -> EncodedText:
        if text not in cache:
            cache[text] = encode(text)
        return cache[text]

    def scheduled(text: str) -> tuple[ScheduledText, ...]:
        return tuple(ScheduledText(end, part, encoded(part)) for end, part in prompt_schedule(text, steps))

    positive = tuple(WeightedSchedule(weight, scheduled(text)) for text, weight in split_and(prompt))
    return PromptConditioning(positive=positive, negative=scheduled(negative_prompt))
