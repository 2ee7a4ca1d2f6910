"""LCM (Luo et al. 2023, latent consistency models) as A1111 1.10 runs it: ``sd_samplers_lcm.py``.

A1111's LCM sampler is a k-diffusion loop over its own model wrapper, ``LCMCompVisDenoiser``:
a discrete eps denoiser over the 50 timesteps LCM was distilled on (19, 39, ..., 999), whose
output goes through LCM's consistency boundary condition. Every schedule type gets this
wrapper's 50-sigma table (A1111 passes it as the inner model), and "Automatic" / "Uniform" use
its ``get_sigmas``.
"""

from __future__ import annotations

import torch

from desktop.backends.base import AddedConditioning, UNetBackend
from desktop.engine.denoiser import Denoiser, DiscreteSchedule
from desktop.engine.samplers.common import NoiseSource, StepCallback
from desktop.library.taxonomy import PredictionType

ORIGINAL_STEPS = 50  # LCM's "original inference steps" (A1111: LCM Original Timesteps, fixed at 50)
SIGMA_DATA = 0.5  # the consistency boundary condition's sigma_data
TIMESTEP_SCALING = 10.0  # LCM scales the timestep by 10 in c_skip / c_out


class LCMSchedule(DiscreteSchedule):
    """``LCMCompVisDenoiser``'s sigma table and maps: 50 valid timesteps, t = 20 k + 19.

    ``alphas_cumprod`` here are the 50 valid ones: index 49 - k holds the model's value at 999 - 20 k.
    """

    def __init__(self, alphas_cumprod: torch.Tensor) -> None:
        timesteps = len(alphas_cumprod)
        self.skip_steps = timesteps // ORIGINAL_STEPS
        valid = torch.zeros(ORIGINAL_STEPS, dtype=torch.float32)
        for k in range(ORIGINAL_STEPS):
            valid[ORIGINAL_STEPS - 1 - k] = alphas_cumprod[timesteps - 1 - k * self.skip_steps]
        super().__init__(valid)

    def sigma_to_t(self, sigma: torch.Tensor) -> torch.Tensor:
        """The nearest valid timestep in log-sigma, as an integer (no interpolation)."""
        dists = sigma.log() - self.log_sigmas[:, None]
        return dists.abs().argmin(dim=0).view(sigma.shape) * self.skip_steps + (self.skip_steps - 1)

    def t_to_sigma(self, t: torch.Tensor) -> torch.Tensor:
        index = torch.clamp(((t - (self.skip_steps - 1)) / self.skip_steps).float(), min=0, max=len(self.sigmas) - 1)
        return super().t_to_sigma(index)

    def get_sigmas(self, n: int) -> torch.Tensor:
        """``LCMCompVisDenoiser.get_sigmas(n)``: timesteps evenly spaced from 999 down to 19, as sigmas, then 0."""
        start = self.sigma_to_t(torch.tensor(self.sigma_max))
        end = self.sigma_to_t(torch.tensor(self.sigma_min))
        t = torch.linspace(float(start), float(end), n)
        return torch.cat([self.t_to_sigma(t), torch.zeros(1)])


class LCMDenoiser:
    """``LCMCompVisDenoiser.forward``: eps at the nearest valid timestep, x0 = x - sigma * eps, then
    out = c_out * x0 + c_skip * x with s = 10 t, c_skip = sd^2 / (s^2 + sd^2), c_out = s / sqrt(s^2 + sd^2).

    A1111's wrapper is an eps denoiser whatever the checkpoint predicts (``prediction`` is ignored).
    """

    def __init__(self, unet: UNetBackend, schedule: DiscreteSchedule, prediction: PredictionType) -> None:
        if not isinstance(schedule, LCMSchedule):
            schedule = LCMSchedule(schedule.alphas_cumprod)
        self.unet = unet
        self.schedule = schedule

    def __call__(
        self, x: torch.Tensor, sigma: torch.Tensor, context: torch.Tensor, added: AddedConditioning | None
    ) -> torch.Tensor:
        sigma_b = sigma[:, None, None, None]
        c_in = 1.0 / (sigma_b**2 + 1.0) ** 0.5
        t = self.schedule.sigma_to_t(sigma)
        eps = self.unet.predict(x * c_in, t, context, added)
        x0 = x + eps * -sigma_b
        scaled_t = t[:, None, None, None] * TIMESTEP_SCALING
        c_skip = SIGMA_DATA**2 / (scaled_t**2 + SIGMA_DATA**2)
        c_out = scaled_t / (scaled_t**2 + SIGMA_DATA**2) ** 0.5
        return c_out * x0 + c_skip * x


@torch.no_grad()
def sample_lcm(model: Denoiser, x: torch.Tensor, sigmas: torch.Tensor, *, callback: StepCallback, noise: NoiseSource) -> torch.Tensor:
    """``sample_lcm``: jump to the model's x0, then re-noise it to the next sigma with a fresh draw."""
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i])
        callback(i, denoised)
        x = denoised
        if sigmas[i + 1] > 0:
            x = x + sigmas[i + 1] * noise(sigmas[i], sigmas[i + 1])
    return x
