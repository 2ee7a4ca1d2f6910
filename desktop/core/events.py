"""What a running job reports. Plain frozen data: safe to send across threads."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StepProgress:
    """One sampling step finished."""

    image_index: int  # 0-based index of the batch being sampled (batch count)
    batch_count: int
    step: int  # 1-based
    total_steps: int
    elapsed_s: float  # since this batch started sampling

    @property
    def fraction(self) -> float:
        done = self.image_index * self.total_steps + self.step
        return done / (self.batch_count * self.total_steps)

    @property
    def iterations_per_second(self) -> float:
        return self.step / self.elapsed_s if self.elapsed_s > 0 else 0.0
