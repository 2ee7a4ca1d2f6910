"""Device and precision choice: mps > cuda > cpu, fp16 on accelerators, fp32 on the CPU."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from desktop.core.errors import InvalidRequest

DEVICE_CHOICES = ("auto", "cpu", "mps", "cuda")
PRECISION_CHOICES = ("auto", "fp32", "fp16", "bf16")
_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


@dataclass(frozen=True)
class DevicePlan:
    device: torch.device
    unet_dtype: torch.dtype  # UNet and text encoders
    vae_dtype: torch.dtype

    @property
    def description(self) -> str:
        return f"{self.device.type}, UNet {_name(self.unet_dtype)}, VAE {_name(self.vae_dtype)}"


def _name(dtype: torch.dtype) -> str:
    return {v: k for k, v in _DTYPES.items()}[dtype]


def mps_available() -> bool:
    return bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())


def select_device(preference: str = "auto") -> torch.device:
    if preference not in DEVICE_CHOICES:
        raise InvalidRequest(f"unknown device {preference!r}; choose one of {', '.join(DEVICE_CHOICES)}")
    if preference == "auto":
        if mps_available():
            return torch.device("mps")
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("cpu")
    if preference == "mps" and not mps_available():
        raise InvalidRequest("device mps was asked for, but this machine has no Metal (MPS) device")
    if preference == "cuda" and not torch.cuda.is_available():
        raise InvalidRequest("device cuda was asked for, but this machine has no CUDA device")
    return torch.device(preference)


def plan_devices(device: str = "auto", precision: str = "auto") -> DevicePlan:
    """Pick the device and dtypes.

    ``auto`` precision is what A1111 runs on a Mac (``--upcast-sampling --no-half-vae``): the
    UNet and text encoders in fp16 on MPS and CUDA with the sampling math in fp32, the VAE in
    fp32 (fp16 VAEs overflow into black images); fp32 everywhere on the CPU, where half-precision
    kernels are slow or missing. An explicit precision applies to the VAE too; a VAE that then
    produces NaNs is rerun in fp32.
    """
    if precision not in PRECISION_CHOICES:
        raise InvalidRequest(f"unknown precision {precision!r}; choose one of {', '.join(PRECISION_CHOICES)}")
    target = select_device(device)
    if precision == "auto":
        dtype = torch.float32 if target.type == "cpu" else torch.float16
        return DevicePlan(target, dtype, torch.float32)
    return DevicePlan(target, _DTYPES[precision], _DTYPES[precision])
