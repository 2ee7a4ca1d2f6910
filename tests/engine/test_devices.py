"""Device and precision choice, and the real accelerators where this machine has one."""

from __future__ import annotations

import pytest
import torch

from desktop.core.errors import InvalidRequest
from desktop.engine.devices import mps_available, plan_devices, select_device


def test_cpu_runs_in_fp32_by_default():
    plan = plan_devices("cpu")
    assert (plan.device.type, plan.unet_dtype, plan.vae_dtype) == ("cpu", torch.float32, torch.float32)


def test_explicit_precision_applies_to_unet_and_vae():
    plan = plan_devices("cpu", "bf16")
    assert (plan.unet_dtype, plan.vae_dtype) == (torch.bfloat16, torch.bfloat16)


def test_auto_prefers_mps_then_cuda_then_cpu():
    expected = "mps" if mps_available() else "cuda" if torch.cuda.is_available() else "cpu"
    assert select_device("auto").type == expected


@pytest.mark.parametrize(("device", "precision"), [("tpu", "auto"), ("cpu", "fp8")])
def test_unknown_choices_are_rejected(device, precision):
    with pytest.raises(InvalidRequest):
        plan_devices(device, precision)


@pytest.mark.skipif(mps_available() or torch.cuda.is_available(), reason="this machine has an accelerator")
@pytest.mark.parametrize("device", ["mps", "cuda"])
def test_missing_accelerator_is_a_clear_error(device):
    with pytest.raises(InvalidRequest, match=device):
        select_device(device)


def _generate_on(device: str, tiny_sd1, tmp_path):
    from desktop.cli import main

    import io

    out, err = io.StringIO(), io.StringIO()
    code = main(
        ["generate", "--model", str(tiny_sd1), "--prompt", "a cat", "--steps", "3", "--width", "32",
         "--height", "32", "--seed", "5", "--device", device, "--out", str(tmp_path / device)],
        stdout=out, stderr=err,
    )
    assert code == 0, err.getvalue()
    assert f"Device: {device}, UNet fp16, VAE fp32" in err.getvalue()
    return out.getvalue().strip()


@pytest.mark.mac
def test_generates_on_mps_in_half_precision(tiny_sd1, tmp_path):
    assert _generate_on("mps", tiny_sd1, tmp_path)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_generates_on_cuda_in_half_precision(tiny_sd1, tmp_path):
    assert _generate_on("cuda", tiny_sd1, tmp_path)
