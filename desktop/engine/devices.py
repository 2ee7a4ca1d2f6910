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


def plan_devices(device: str = "auto", precision: str = "auto", *, vae_needs_fp32: bool = False) -> DevicePlan:
    """Pick the device and dtypes.

    ``auto`` precision is fp16 on MPS and CUDA and fp32 on the CPU (half-precision matmuls on a
    CPU are slow and some ops are missing). The VAE follows the UNet except where the model says
    it overflows in fp16 (SDXL's VAE: ``force_upcast``); a NaN decode is retried in fp32 anyway.
    """
    if precision not in PRECISION_CHOICES:
        raise InvalidRequest(f"unknown precision {precision!r}; choose one of {', '.join(PRECISION_CHOICES)}")
    target = select_device(device)
    if precision == "auto":
        dtype = torch.float32 if target.type == "cpu" else torch.float16
    else:
        dtype = _DTYPES[precision]
    vae_dtype = torch.float32 if vae_needs_fp32 else dtype
    return DevicePlan(target, dtype, vae_dtype)
