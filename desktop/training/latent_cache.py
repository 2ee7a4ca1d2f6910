"""Latents cached on disk, one ``.safetensors`` per image visit kind, so the VAE runs once per image.

A cache file's name is a hash of everything that changes the latent: the image (resolved path,
size and modification time), its bucket, the flip and the VAE. Editing an image, changing the
bucket settings or the model therefore misses the cache instead of training on stale latents.
Each file also records its key; a file that cannot be read or holds another key is treated as a
miss and rewritten. Files are written to a temporary name and renamed, so a crash leaves either
the old file or the new one.

The latent is the VAE's sample (``latent_dist.sample()``, as kohya caches it) with noise from a
generator seeded by the key, so caching is deterministic and independent of batch composition.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save

from desktop.library.atomic_write import write_bytes_atomically
from desktop.training.buckets import Size

_TENSOR_NAME = "latent"
_FORMAT = "diffusion-desktop.latent.1"


@dataclass(frozen=True)
class LatentKey:
    """What a cached latent depends on, besides the VAE (the cache holds that)."""

    path: str  # resolved
    file_size: int
    mtime_ns: int
    bucket: Size
    flip: bool

    @classmethod
    def for_image(cls, path: Path, bucket: Size, flip: bool = False) -> LatentKey:
        """The key of ``path`` as it is on disk now (stats the file)."""
        resolved = Path(path).resolve()
        stat = resolved.stat()
        return cls(str(resolved), stat.st_size, stat.st_mtime_ns, (int(bucket[0]), int(bucket[1])), bool(flip))

    def describe(self, vae_id: str) -> str:
        """The key and VAE as canonical JSON: hashed into the file name and stored in the file."""
        fields = asdict(self) | {"bucket": list(self.bucket), "vae_id": vae_id}
        return json.dumps(fields, sort_keys=True, ensure_ascii=False, separators=(",", ":"))

    def digest(self, vae_id: str) -> str:
        return hashlib.sha256(self.describe(vae_id).encode("utf-8")).hexdigest()

    def seed(self, vae_id: str) -> int:
        """The seed of this latent's sampling noise (63 bits of the digest)."""
        return int(self.digest(vae_id)[:16], 16) >> 1


class LatentCache:
    """Latents of one VAE in ``folder`` (the training's ``output_dir/.cache/latents``)."""

    def __init__(self, folder: Path, vae_id: str) -> None:
        if not vae_id:
            raise ValueError("vae_id must name the VAE (e.g. the model's hash), or the cache could mix models")
        self.folder = Path(folder)
        self.vae_id = vae_id

    def key(self, path: Path, bucket: Size, flip: bool = False) -> LatentKey:
        return LatentKey.for_image(path, bucket, flip)

    def path_for(self, key: LatentKey) -> Path:
        return self.folder / f"{key.digest(self.vae_id)[:40]}.safetensors"

    def seed_for(self, key: LatentKey) -> int:
        return key.seed(self.vae_id)

    def get(self, key: LatentKey) -> torch.Tensor | None:
        """The cached latent (CPU, as stored), or None when missing, unreadable or written for another key."""
        path = self.path_for(key)
        try:
            with safe_open(str(path), framework="pt") as cached:
                metadata = cached.metadata() or {}
                if metadata.get("format") != _FORMAT or metadata.get("key") != key.describe(self.vae_id):
                    return None
                latent = cached.get_tensor(_TENSOR_NAME)
        except FileNotFoundError:
            return None
        except Exception:  # a truncated or garbled file is a miss; put() replaces it
            return None
        return latent if torch.isfinite(latent).all() else None

    def put(self, key: LatentKey, latent: torch.Tensor) -> Path:
        """Store ``latent`` (moved to the CPU, contiguous) for ``key``, atomically; returns the file."""
        data = save(
            {_TENSOR_NAME: latent.detach().to("cpu").contiguous()},
            metadata={"format": _FORMAT, "key": key.describe(self.vae_id)},
        )
        path = self.path_for(key)
        write_bytes_atomically(path, data, durable=False)  # a torn cache file is a miss, recomputed
        return path


@torch.no_grad()
def encode_latents(vae: torch.nn.Module, pixels: torch.Tensor, seeds: Sequence[int]) -> torch.Tensor:
    """Encode NCHW ``pixels`` in [-1, 1] into scaled latents: ``(sample - shift_factor) * scaling_factor``.

    The sample is ``mean + std * noise`` (diffusers' ``latent_dist.sample()``) with each image's noise
    drawn from a CPU generator seeded with its entry in ``seeds``, so an image's latent does not
    depend on the batch it was encoded in. Returns float32 on the VAE's device.
    """
    if pixels.ndim != 4 or pixels.shape[0] != len(seeds):
        raise ValueError(f"pixels must be NCHW with one seed per image; got {tuple(pixels.shape)} and {len(seeds)} seeds")
    parameter = next(vae.parameters())
    distribution = vae.encode(pixels.to(parameter.device, parameter.dtype)).latent_dist
    mean = distribution.mean.float()
    std = distribution.std.float()
    noise = torch.stack(
        [torch.randn(mean.shape[1:], generator=torch.Generator("cpu").manual_seed(int(seed))) for seed in seeds]
    ).to(mean.device)
    latents = mean + std * noise
    config = vae.config
    shift = getattr(config, "shift_factor", None)
    if shift is not None:
        latents = latents - shift
    return latents * config.scaling_factor
