"""The diffusion training objective: noising, targets (epsilon or v) and per-sample loss weights.

kohya sd-scripts' formulas (``library/custom_train_functions.py``), on the DDPM schedule the model
was trained with (``alphas_cumprod``, 1000 steps).
"""

from __future__ import annotations

import torch


def add_noise(latents: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor, alphas_cumprod: torch.Tensor) -> torch.Tensor:
    """x_t = sqrt(a_t) x_0 + sqrt(1 - a_t) eps (diffusers' ``DDPMScheduler.add_noise``)."""
    alpha = _per_sample(alphas_cumprod, timesteps, latents)
    return alpha.sqrt() * latents + (1 - alpha).sqrt() * noise


def target(latents: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor, alphas_cumprod: torch.Tensor, *, v_prediction: bool) -> torch.Tensor:
    """What the UNet should predict: the noise, or v = sqrt(a_t) eps - sqrt(1 - a_t) x_0."""
    if not v_prediction:
        return noise
    alpha = _per_sample(alphas_cumprod, timesteps, latents)
    return alpha.sqrt() * noise - (1 - alpha).sqrt() * latents


def offset_noise(noise: torch.Tensor, strength: float, generator: torch.Generator) -> torch.Tensor:
    """Noise offset (crosslabs): a per-channel constant added to the noise, so the model learns dark and bright."""
    if strength <= 0:
        return noise
    shift = torch.randn((noise.shape[0], noise.shape[1], 1, 1), generator=generator, dtype=noise.dtype)
    return noise + strength * shift.to(noise.device)


def min_snr_weights(timesteps: torch.Tensor, alphas_cumprod: torch.Tensor, gamma: float, *, v_prediction: bool) -> torch.Tensor:
    """Min-SNR-gamma loss weights (Hang et al. 2023): min(SNR, gamma) / SNR, or / (SNR + 1) for v.

    >>> acp = torch.linspace(0.99, 0.01, 1000)
    >>> w = min_snr_weights(torch.tensor([0, 999]), acp, 5.0, v_prediction=False)
    >>> [round(x, 4) for x in w.tolist()]  # high-SNR (early) steps are weighted down, noisy ones kept
    [0.0505, 1.0]
    """
    alpha = alphas_cumprod.to(timesteps.device)[timesteps].float()
    snr = alpha / (1 - alpha)
    clipped = torch.clamp(snr, max=gamma)
    return clipped / (snr + 1) if v_prediction else clipped / snr


def per_sample_mse(prediction: torch.Tensor, wanted: torch.Tensor) -> torch.Tensor:
    """Mean squared error of each sample of the batch, in fp32 (half-precision squares overflow)."""
    return torch.nn.functional.mse_loss(prediction.float(), wanted.float(), reduction="none").mean(dim=(1, 2, 3))


def _per_sample(alphas_cumprod: torch.Tensor, timesteps: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    values = alphas_cumprod.to(device=like.device, dtype=torch.float32)[timesteps.to(like.device)]
    return values.reshape(-1, *([1] * (like.dim() - 1))).to(like.dtype)
