"""k-diffusion's view of a discrete-time (CompVis) model, and A1111's classifier-free guidance.

Samplers work in sigma space and call ``CFGDenoiser(x, sigma) -> denoised``. The model sees the
input scaled by ``c_in`` and the fractional timestep for sigma (no rounding), exactly as A1111's
``CompVisDenoiser`` / ``CompVisVDenoiser`` with quantization off.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from desktop.backends.base import AddedConditioning, UNetBackend
from desktop.core.cancel import CancelToken
from desktop.engine.prompt_conditioning import EncodedText, PromptConditioning
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


class CFGDenoiser:
    """Denoised prediction with classifier-free guidance, as A1111's ``CFGDenoiser`` computes it.

    Each call asks the prompt conditioning for the current step (the call counter), so scheduled
    and alternating prompts switch where A1111 switches them; AND parts are guided with their
    weights. The cancel token is checked before every model call.
    """

    def __init__(
        self,
        unet: UNetBackend,
        schedule: DiscreteSchedule,
        prediction: PredictionType,
        conditioning: PromptConditioning,
        cfg_scale: float,
        cancel: CancelToken | None = None,
        *,
        time_ids: torch.Tensor | None = None,
    ) -> None:
        self.unet = unet
        self.schedule = schedule
        self.v_prediction = prediction is PredictionType.V_PREDICTION
        self.conditioning = conditioning
        self.cfg_scale = cfg_scale
        self.cancel = cancel
        self.time_ids = time_ids  # SDXL: (1, 6) original size, crop, target size
        self.model_calls = 0

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        if self.cancel is not None:
            self.cancel.raise_if_cancelled()
        step = self.conditioning.at_step(self.model_calls)
        self.model_calls += 1
        batch, parts = x.shape[0], len(step.weights)
        sigmas = sigma.expand(batch) if sigma.ndim == 0 else sigma.reshape(-1).expand(batch)
        # A1111's row order: each image's AND parts in turn, then one unconditional row per image.
        x_cond, sigma_cond = x.repeat_interleave(parts, dim=0), sigmas.repeat_interleave(parts)
        cond = step.cond.context.repeat(batch, 1, 1)
        uncond = step.uncond.context.repeat(batch, 1, 1)
        cond_added, uncond_added = self._added(step.cond, batch), self._added(step.uncond, batch)
        if cond.shape[1] == uncond.shape[1]:
            added = None if cond_added is None else AddedConditioning(
                torch.cat([cond_added.text_embeds, uncond_added.text_embeds]),
                torch.cat([cond_added.time_ids, uncond_added.time_ids]),
            )
            out = self._denoise(torch.cat([x_cond, x]), torch.cat([sigma_cond, sigmas]), torch.cat([cond, uncond]), added)
        else:
            # Prompts of different chunk counts cannot share a batch; A1111 runs them separately.
            out = torch.cat(
                [self._denoise(x_cond, sigma_cond, cond, cond_added), self._denoise(x, sigmas, uncond, uncond_added)]
            )
        denoised_cond, denoised_uncond = out[: batch * parts], out[batch * parts :]
        denoised = denoised_uncond.clone()
        for part, weight in enumerate(step.weights):
            denoised += (denoised_cond[part::parts] - denoised_uncond) * (weight * self.cfg_scale)
        return denoised

    def _added(self, encoded: EncodedText, batch: int) -> AddedConditioning | None:
        if self.time_ids is None or encoded.pooled is None:
            return None
        rows = encoded.pooled.shape[0]
        return AddedConditioning(encoded.pooled.repeat(batch, 1), self.time_ids.repeat(batch * rows, 1))

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


Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
