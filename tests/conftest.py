"""Shared fixtures: checkpoints in the original LDM/SGM layout, built once per test session."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the app ships everything it needs; a test must never fetch


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if sys.platform == "darwin":
        return
    skip_mac = pytest.mark.skip(reason="needs macOS (MPS / Core ML)")
    for item in items:
        if "mac" in item.keywords:
            item.add_marker(skip_mac)


def _write(folder: Path, name: str, shapes: dict, **kwargs: object) -> Path:
    import torch

    from tests.fixtures.ldm_layout import write_checkpoint

    path = folder / name
    kwargs.setdefault("dtype", torch.float16)
    write_checkpoint(path, shapes, **kwargs)
    return path


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny random-weight single-file checkpoints (fp16, like most civitai files), keyed by family."""
    from tests.fixtures.ldm_layout import sd1_checkpoint_shapes, sd2_checkpoint_shapes, sdxl_checkpoint_shapes

    folder = tmp_path_factory.mktemp("checkpoints")
    return {
        "sd1": _write(folder, "tiny_sd1.safetensors", sd1_checkpoint_shapes(tiny=True)),
        "sd2": _write(folder, "tiny_sd2.safetensors", sd2_checkpoint_shapes(tiny=True)),
        "sdxl": _write(folder, "tiny_sdxl.safetensors", sdxl_checkpoint_shapes(tiny=True)),
    }


@pytest.fixture(scope="session")
def tiny_sd1(checkpoints: dict[str, Path]) -> Path:
    return checkpoints["sd1"]


@pytest.fixture(scope="session")
def tiny_sdxl(checkpoints: dict[str, Path]) -> Path:
    return checkpoints["sdxl"]


@pytest.fixture(scope="session")
def cpu_plan():
    from desktop.engine.devices import plan_devices

    return plan_devices("cpu", "fp32")
