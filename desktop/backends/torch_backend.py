"""Run the UNet and VAE with PyTorch (MPS, CUDA or CPU)."""

from __future__ import annotations

from typing import Any

import torch

from desktop.backends.base import AddedConditioning
from desktop.core.errors import GenerationError


class TorchUNet:
    def __init__(self, unet: Any) -> None:
        self.unet = unet
        parameter = next(unet.parameters())
        self.device, self.dtype = parameter.device, parameter.dtype

    @torch.no_grad()
    def predict(
        self,
        latents: torch.Tensor,
        timesteps: torch.Tensor,
        context: torch.Tensor,
        added: AddedConditioning | None = None,
    ) -> torch.Tensor:
        kwargs: dict[str, Any] = {}
        if added is not None:
            kwargs["added_cond_kwargs"] = {
                "text_embeds": added.text_embeds.to(self.device, self.dtype),
                "time_ids": added.time_ids.to(self.device, self.dtype),
            }
        out = self.unet(
            latents.to(self.device, self.dtype),
            timesteps.to(self.device, torch.float32),
            encoder_hidden_states=context.to(self.device, self.dtype),
            **kwargs,
        ).sample
        return out.to(latents.device, torch.float32)


class TorchVAE:
    """Decodes latents; a half-precision VAE that produces NaNs is retried once in fp32 (A1111's fallback)."""

    def __init__(self, vae: Any, scaling_factor: float) -> None:
        self.vae = vae
        self.scaling_factor = scaling_factor
        self.upcast_after_nan = False

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        images = self._decode(latents)
        if torch.isnan(images).any() and next(self.vae.parameters()).dtype != torch.float32:
            self.vae.to(torch.float32)
            self.upcast_after_nan = True
            images = self._decode(latents)
        if torch.isnan(images).any():
            raise GenerationError("the VAE produced NaN values (a black image); try another VAE or --precision fp32")
        return images

    def _decode(self, latents: torch.Tensor) -> torch.Tensor:
        parameter = next(self.vae.parameters())
        scaled = (latents / self.scaling_factor).to(parameter.device, parameter.dtype)
        return self.vae.decode(scaled).sample.to("cpu", torch.float32)
