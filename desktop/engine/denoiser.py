"""The model wrappers A1111 puts between a sampler and the UNet, and A1111's classifier-free guidance.

k-diffusion samplers work in sigma space and call ``CFGDenoiser(x, sigma) -> denoised`` over
:class:`CompVisDenoiser`: the model sees the input scaled by ``c_in`` and the fractional timestep for
sigma (no rounding), exactly as A1111's ``CompVisDenoiser`` / ``CompVisVDenoiser`` with quantization off.
A1111's timestep samplers (DDIM, PLMS, UniPC) call ``CFGDenoiser(x, t) -> eps`` over
:class:`CompVisTimestepsDenoiser`: the unscaled latent and the timestep go to the UNet as they are.
The guidance is one piece of code for every wrapper, as in A1111, whose ``CFGDenoiserTimesteps`` and
``CFGDenoiserLCM`` only swap ``CFGDenoiser``'s inner model.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import torch

from desktop.backends.base import AddedConditioning, UNetBackend
from desktop.core.cancel import CancelToken
from desktop.engine.prompt_conditioning import EncodedText, PromptConditioning
from desktop.library.taxonomy import PredictionType


class DiscreteSchedule:
    """Sigmas of the 1000 training timesteps and the maps between sigma and fractional t.

    k-diffusion's ``DiscreteSchedule``; the schedule types take any object with this interface,
    so LCM's 50-timestep table (``samplers.lcm.LCMSchedule``) plugs in where A1111 passes its inner model.
    """

    def __init__(self, alphas_cumprod: torch.Tensor) -> None:
        self.alphas_cumprod = alphas_cumprod.to(torch.float32)
        self.sigmas = ((1 - self.alphas_cumprod) / self.alphas_cumprod) ** 0.5
        self.log_sigmas = self.sigmas.log()

    @property
    def sigma_min(self) -> float:
        return float(self.sigmas[0])

    @property
    def sigma_max(self) -> float:
        return float(self.sigmas[-1])

    def get_sigmas(self, n: int) -> torch.Tensor:
        """k-diffusion's ``get_sigmas(n)``: n timesteps evenly spaced from the last to 0, as sigmas, then 0."""
        t = torch.linspace(len(self.sigmas) - 1, 0, n)
        return torch.cat([self.t_to_sigma(t), torch.zeros(1)])

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


class ModelWrapper(Protocol):
    """A1111's inner model: the output the sampler works with, for a batch of rows at ``level``
    (one sigma or one timestep per row) with their text ``context``."""

    def __call__(
        self, x: torch.Tensor, level: torch.Tensor, context: torch.Tensor, added: AddedConditioning | None
    ) -> torch.Tensor: ...


class CompVisDenoiser:
    """k-diffusion's ``CompVisDenoiser`` / ``CompVisVDenoiser``: the denoised latent at sigma."""

    def __init__(self, unet: UNetBackend, schedule: DiscreteSchedule, prediction: PredictionType) -> None:
        self.unet = unet
        self.schedule = schedule
        self.v_prediction = prediction is PredictionType.V_PREDICTION

    def __call__(
        self, x: torch.Tensor, sigma: torch.Tensor, context: torch.Tensor, added: AddedConditioning | None
    ) -> torch.Tensor:
        sigma_b = sigma[:, None, None, None]
        t = self.schedule.sigma_to_t(sigma)
        c_in = 1.0 / (sigma_b**2 + 1.0) ** 0.5
        if self.v_prediction:
            c_skip = 1.0 / (sigma_b**2 + 1.0)
            c_out = -sigma_b / (sigma_b**2 + 1.0) ** 0.5
            return x * c_skip + self.unet.predict(x * c_in, t, context, added) * c_out
        eps = self.unet.predict(x * c_in, t, context, added)
        return x + eps * -sigma_b


class CompVisTimestepsDenoiser:
    """A1111's ``CompVisTimestepsDenoiser`` / ``CompVisTimestepsVDenoiser``: eps at timestep t.

    The latent is in variance-preserving space and goes to the UNet unscaled. A v model's output
    becomes eps with ``alphas_cumprod`` at the timestep truncated to an integer (A1111's
    ``predict_eps_from_z_and_v``), also for UniPC's fractional timesteps.
    """

    def __init__(self, unet: UNetBackend, schedule: DiscreteSchedule, prediction: PredictionType) -> None:
        self.unet = unet
        self.alphas_cumprod = schedule.alphas_cumprod
        self.v_prediction = prediction is PredictionType.V_PREDICTION

    def __call__(
        self, x: torch.Tensor, t: torch.Tensor, context: torch.Tensor, added: AddedConditioning | None
    ) -> torch.Tensor:
        out = self.unet.predict(x, t, context, added)
        if not self.v_prediction:
            return out
        a_t = self.alphas_cumprod[t.to(torch.int)][:, None, None, None]
        return torch.sqrt(a_t) * out + torch.sqrt(1 - a_t) * x


WrapperFactory = Callable[[UNetBackend, DiscreteSchedule, PredictionType], ModelWrapper]


class CFGDenoiser:
    """The wrapper's output with classifier-free guidance, as A1111's ``CFGDenoiser`` computes it.

    Each call asks the prompt conditioning for the current step (the call counter), so scheduled
    and alternating prompts switch where A1111 switches them; AND parts are guided with their
    weights. The cancel token is checked before every model call. ``wrapper`` picks A1111's inner
    model (default: k-diffusion's, so calls take sigmas and return denoised latents).
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
        wrapper: WrapperFactory = CompVisDenoiser,
    ) -> None:
        self.unet = unet
        self.schedule = schedule
        self.inner_model = wrapper(unet, schedule, prediction)
        self.conditioning = conditioning
        self.cfg_scale = cfg_scale
        self.cancel = cancel
        self.time_ids = time_ids  # SDXL: (1, 6) original size, crop, target size
        self.model_calls = 0
        # DDIM CFG++ sets these (A1111's ``cond_scale_miltiplier`` and ``last_noise_uncond``).
        self.cond_scale_multiplier = 1.0
        self.last_noise_uncond: torch.Tensor | None = None

    def __call__(self, x: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
        """Guided output for ``x`` at ``level``: a sigma (k-diffusion samplers) or a timestep (timestep samplers)."""
        if self.cancel is not None:
            self.cancel.raise_if_cancelled()
        step = self.conditioning.at_step(self.model_calls)
        self.model_calls += 1
        batch, parts = x.shape[0], len(step.weights)
        levels = level.expand(batch) if level.ndim == 0 else level.reshape(-1).expand(batch)
        # A1111's row order: each image's AND parts in turn, then one unconditional row per image.
        x_cond, level_cond = x.repeat_interleave(parts, dim=0), levels.repeat_interleave(parts)
        cond = step.cond.context.repeat(batch, 1, 1)
        uncond = step.uncond.context.repeat(batch, 1, 1)
        cond_added, uncond_added = self._added(step.cond, batch), self._added(step.uncond, batch)
        if cond.shape[1] == uncond.shape[1]:
            added = None if cond_added is None else AddedConditioning(
                torch.cat([cond_added.text_embeds, uncond_added.text_embeds]),
                torch.cat([cond_added.time_ids, uncond_added.time_ids]),
            )
            out = self.inner_model(torch.cat([x_cond, x]), torch.cat([level_cond, levels]), torch.cat([cond, uncond]), added)
        else:
            # Prompts of different chunk counts cannot share a batch; A1111 runs them separately.
            out = torch.cat(
                [self.inner_model(x_cond, level_cond, cond, cond_added), self.inner_model(x, levels, uncond, uncond_added)]
            )
        out_cond, out_uncond = out[: batch * parts], out[batch * parts :]
        self.last_noise_uncond = out_uncond
        cond_scale = self.cfg_scale * self.cond_scale_multiplier
        guided = out_uncond.clone()
        for part, weight in enumerate(step.weights):
            guided += (out_cond[part::parts] - out_uncond) * (weight * cond_scale)
        return guided

    def _added(self, encoded: EncodedText, batch: int) -> AddedConditioning | None:
        if self.time_ids is None or encoded.pooled is None:
            return None
        rows = encoded.pooled.shape[0]
        return AddedConditioning(encoded.pooled.repeat(batch, 1), self.time_ids.repeat(batch * rows, 1))


Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
