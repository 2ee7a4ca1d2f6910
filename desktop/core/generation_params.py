"""The A1111 infotext parameters of a generated image, in A1111's order and spelling."""

from __future__ import annotations

from dataclasses import dataclass

from desktop import APP_NAME, __version__
from desktop.core.requests import GenerationRequest


@dataclass(frozen=True)
class ModelInfo:
    """What infotext says about the model: name (file stem) and AutoV2 hash (10 hex chars)."""

    name: str
    hash: str | None = None
    vae_name: str | None = None
    vae_hash: str | None = None


def generation_parameters(
    request: GenerationRequest,
    *,
    seed: int,
    sampler_name: str,
    schedule_label: str,
    model: ModelInfo,
    variation_seed: int | None = None,
) -> dict[str, object]:
    """Keys and order of A1111 1.10's ``create_infotext``; None values are left out when formatted."""
    return {
        "Steps": request.steps,
        "Sampler": sampler_name,
        "Schedule type": schedule_label,
        "CFG scale": _number(request.cfg_scale),
        "Seed": seed,
        "Size": f"{request.width}x{request.height}",
        "Model hash": model.hash,
        "Model": model.name,
        "VAE hash": model.vae_hash,
        "VAE": model.vae_name,
        "Variation seed": variation_seed if request.variation_strength else None,
        "Variation seed strength": _number(request.variation_strength) if request.variation_strength else None,
        "Seed resize from": "{}x{}".format(*request.resize_seed_from) if request.resize_seed_from else None,
        "Clip skip": request.clip_skip if request.clip_skip > 1 else None,
        # Our noise always comes from per-image CPU generators: this makes A1111 on an NVIDIA
        # card (whose default is GPU noise) reproduce the image too.
        "RNG": "CPU",
        "Version": f"{APP_NAME} {__version__}",
    }


def _number(value: float) -> str:
    """7.0 -> "7", 7.5 -> "7.5", like A1111's UI values."""
    return str(int(value)) if float(value).is_integer() else str(value)
