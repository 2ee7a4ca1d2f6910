"""k-diffusion's view of a discrete-time (CompVis) model, and A1111's classifier-free guidance.

Samplers work in sigma space and call ``CFGDenoiser(x, sigma) -> denoised``. The model sees the
input scaled by ``c_in`` and the fractional timestep for sigma (no rounding), exactly as A1111's
``CompVisDenoiser`` / ``CompVisVDenoiser`` with quantization off.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from desktop.backends.base import AddedConditioning, UNetBackend
from desktop.core.cancel import CancelToken
from desktop.library.taxonomy import PredictionType


class DiscreteSchedule:
    """Sigmas of the 1000 training timesteps and the maps between sigma and fractional t."""

    def __init__(self, alphas_cumprod: torch.Tensor) -> None:
        alphas_cumprod = alphas_cumprod.to(torch.float32)
        self.sigmas = ((1 - alphas_cumprod) / alphas_cumprod) ** 0.5
        self.log_sigmas = self.sigmas.log()

    @property
    def sigma_min(self) -> float:
        return float(self.sigmas[0])

    @property
    def sigma_max(self) -> float:
        return float(self.sigmas[-1])

    def sigma_to_t(self, sigma: torch.Tensor) -> torch.Tensor:
        log_sigma = sigma.log()
        dists = log_sigma - self.log_sigmas[:, None]
        low_idx = dists.ge(0).cumsum(dim=0).argmax(dim=0).clamp(max=self.log_sigmas.shape[0] - 2)
        high_idx = low_idx + 1
        low, high = self.log_sigmas[low_idx], self.log_sigmas[high_idx]
        w = ((low - log_sigma) / (low - high)).clamp(0, 1)
        return ((1 - w) * low_idx + w * high_idx).view(sigma.shape)

    def t_to_sigma(self, t: torch.Tensor) -> torch.Tensor:
        t = t.float()
        low_idx, high_idx, w = t.floor().long(), t.ceil().long(), t.frac()
        return ((1 - w) * self.log_sigmas[low_idx] + w * self.log_sigmas[high_idx]).exp()


@dataclass(frozen=True)
class Conditioning:
    """Encoded prompts for a batch: ``cond`` and ``uncond`` are (batch, 77*k, dim)."""

    cond: torch.Tensor
    uncond: torch.Tensor
    cond_added: AddedConditioning | None = None
    uncond_added: AddedConditioning | None = None


class CFGDenoiser:
    """Denoised prediction with classifier-free guidance; checks the cancel token on every model call."""

    def __init__(
        self,
        unet: UNetBackend,
        schedule: DiscreteSchedule,
        prediction: PredictionType,
        conditioning: Conditioning,
        cfg_scale: float,
        cancel: CancelToken | None = None,
    ) -> None:
        self.unet = unet
        self.schedule = schedule
        self.v_prediction = prediction is PredictionType.V_PREDICTION
        self.conditioning = conditioning
        self.cfg_scale = cfg_scale
        self.cancel = cancel
        self.model_calls = 0

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        if self.cancel is not None:
            self.cancel.raise_if_cancelled()
        self.model_calls += 1
        batch = x.shape[0]
        sigmas = sigma.expand(batch) if sigma.ndim == 0 else sigma
        cond, uncond = self.conditioning.cond, self.conditioning.uncond
        # A1111 order: all conditional rows first, then all unconditional ones.
        x_in = torch.cat([x, x])
        sigma_in = torch.cat([sigmas, sigmas])
        if cond.shape[1] == uncond.shape[1]:
            out = self._denoise(x_in, sigma_in, torch.cat([cond, uncond]), _cat_added(self.conditioning))
        else:
            # Prompts of different chunk counts cannot share a batch; A1111 runs them separately.
            out = torch.cat(
                [
                    self._denoise(x, sigmas, cond, self.conditioning.cond_added),
                    self._denoise(x, sigmas, uncond, self.conditioning.uncond_added),
                ]
            )
        denoised_cond, denoised_uncond = out[:batch], out[batch:]
        denoised = denoised_uncond.clone()
        denoised += (denoised_cond - denoised_uncond) * self.cfg_scale
        return denoised

    def _denoise(self, x: torch.Tensor, sigma: torch.Tensor, context: torch.Tensor, added: AddedConditioning | None) -> torch.Tensor:
        sigma_b = sigma[:, None, None, None]
        t = self.schedule.sigma_to_t(sigma)
        if self.v_prediction:
            c_skip = 1.0 / (sigma_b**2 + 1.0)
            c_out = -sigma_b / (sigma_b**2 + 1.0) ** 0.5
            c_in = 1.0 / (sigma_b**2 + 1.0) ** 0.5
            return x * c_skip + self.unet.predict(x * c_in, t, context, added) * c_out
        c_in = 1.0 / (sigma_b**2 + 1.0) ** 0.5
        eps = self.unet.predict(x * c_in, t, context, added)
        return x + eps * -sigma_b


def _cat_added(conditioning: Conditioning) -> AddedConditioning | None:
    if conditioning.cond_added is None or conditioning.uncond_added is None:
        return None
    return AddedConditioning(
        text_embeds=torch.cat([conditioning.cond_added.text_embeds, conditioning.uncond_added.text_embeds]),
        time_ids=torch.cat([conditioning.cond_added.time_ids, conditioning.uncond_added.time_ids]),
    )


Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
