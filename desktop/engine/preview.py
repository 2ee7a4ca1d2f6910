"""Live previews: A1111's "Approx cheap" latent-to-RGB projection, a 4x3 matrix per model family.

It costs one tiny matrix product per step (no VAE), so previews every step do not slow sampling.
"""

from __future__ import annotations

import torch

from desktop.core.events import PreviewImage
from desktop.library.taxonomy import ModelFamily

# A1111 sd_vae_approx.cheap_approximation: latent channel (row) -> RGB contribution (column).
_SD_COEFFICIENTS = (
    (0.298, 0.207, 0.208),
    (0.187, 0.286, 0.173),
    (-0.158, 0.189, 0.264),
    (-0.184, -0.271, -0.473),
)
_SDXL_COEFFICIENTS = (
    (0.3448, 0.4168, 0.4395),
    (-0.1953, -0.0290, 0.0250),
    (0.1074, 0.0886, -0.0163),
    (-0.3730, -0.2499, -0.2088),
)


def cheap_preview(latent: torch.Tensor, family: ModelFamily, *, image_index: int = 0, step: int = 0) -> PreviewImage:
    """One image's latent (4, h, w), any device or dtype, as an 8-bit RGB preview of size w x h."""
    coefficients = _SDXL_COEFFICIENTS if family is ModelFamily.SDXL else _SD_COEFFICIENTS
    matrix = torch.tensor(coefficients, dtype=torch.float32)
    latent = latent.detach().to("cpu", torch.float32)
    rgb = torch.einsum("lxy,lr->xyr", latent, matrix) * 0.5 + 0.5
    pixels = (rgb.clamp(0, 1) * 255).to(torch.uint8).contiguous()
    height, width = pixels.shape[:2]
    return PreviewImage(image_index, step, width, height, pixels.numpy().tobytes())
