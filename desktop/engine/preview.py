"""Live previews: A1111's "Approx cheap" latent-to-RGB projection (a 4x3 matrix per model family),
or TAESD, the tiny autoencoder, when its weights are installed.

The projection costs one tiny matrix product per step. TAESD gives a full-size, recognisable
preview for a few milliseconds a step on a GPU. Its weights are read only from safetensors, in
the diffusers layout that madebyollin publishes: ``models/VAE-approx/taesd`` (SD 1.x/2.x) and
``models/VAE-approx/taesdxl`` (SDXL), each with ``config.json`` and
``diffusion_pytorch_model.safetensors``.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

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


def find_taesd(model_roots: Iterable[Path], family: ModelFamily) -> Path | None:
    """The TAESD folder for ``family`` under any of the A1111 model roots, if installed."""
    name = "taesdxl" if family is ModelFamily.SDXL else "taesd"
    for root in model_roots:
        folder = Path(root) / "VAE-approx" / name
        if (folder / "config.json").is_file() and (folder / "diffusion_pytorch_model.safetensors").is_file():
            return folder
    return None


class TaesdPreview:
    """Decodes the current x0 estimate with TAESD into a full-size 8-bit RGB preview."""

    def __init__(self, folder: Path, device: torch.device, dtype: torch.dtype = torch.float32) -> None:
        from diffusers import AutoencoderTiny

        self.folder = folder
        self.device, self.dtype = device, dtype
        self.model = AutoencoderTiny.from_pretrained(folder, local_files_only=True, use_safetensors=True)
        self.model.to(device=device, dtype=dtype).eval()

    @torch.no_grad()
    def __call__(self, latent: torch.Tensor, *, image_index: int = 0, step: int = 0) -> PreviewImage:
        """One image's latent (4, h, w): SD latents go into TAESD's decoder as they are."""
        pixels = self.model.decode(latent[None].to(self.device, self.dtype)).sample[0]  # (3, H, W) in [-1, 1]
        rgb = ((pixels.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).contiguous().cpu()
        height, width = rgb.shape[:2]
        return PreviewImage(image_index, step, width, height, rgb.numpy().tobytes())
