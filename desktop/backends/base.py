"""The two executors a pipeline needs, as small protocols, so Core ML can replace torch for them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch


@dataclass(frozen=True)
class AddedConditioning:
    """SDXL's extra inputs: pooled text embedding and the size/crop "time ids"."""

    text_embeds: torch.Tensor
    time_ids: torch.Tensor


class UNetBackend(Protocol):
    def predict(
        self,
        latents: torch.Tensor,
        timesteps: torch.Tensor,
        context: torch.Tensor,
        added: AddedConditioning | None = None,
    ) -> torch.Tensor:
        """The model output (noise or velocity) for scaled ``latents`` at fractional ``timesteps``, in float32."""
        ...


class VAEBackend(Protocol):
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Images in [-1, 1] (float32, NCHW) from unscaled latents."""
        ...
