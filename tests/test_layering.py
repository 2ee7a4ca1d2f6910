"""The layering rule: nothing below the UI imports Qt, and core/library do not import torch."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BELOW_UI_PACKAGES = ("core", "library", "engine", "backends", "training")
BELOW_UI = sorted(
    ["desktop.cli"]
    + [
        "desktop." + ".".join(path.relative_to(REPO / "desktop").with_suffix("").parts).removesuffix(".__init__")
        for package in BELOW_UI_PACKAGES
        for path in (REPO / "desktop" / package).rglob("*.py")
    ]
)


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=REPO, capture_output=True, text=True, timeout=300)


def test_everything_below_the_ui_imports_with_pyside6_unavailable():
    result = _run(
        f"""
        import importlib, sys

        class BlockQt:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("PySide6", "shiboken6"):
                    raise ImportError("PySide6 is blocked in this test")
                return None

        sys.meta_path.insert(0, BlockQt())
        for name in {BELOW_UI!r}:
            importlib.import_module(name)
        import desktop.engine.loading as loading, desktop.engine.txt2img, diffusers, transformers  # the heavy ones too
        from diffusers import UNet2DConditionModel, AutoencoderKL
        from transformers import CLIPTextModel
        assert not any(m.split(".")[0] in ("PySide6", "shiboken6") for m in sys.modules)
        print("ok")
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_core_and_library_do_not_load_torch():
    result = _run(
        """
        import sys
        import desktop.core.requests, desktop.core.infotext, desktop.core.generation_params
        import desktop.library.probe, desktop.library.hashes, desktop.library.outputs
        heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "diffusers", "transformers", "numpy"))
        print(heavy)
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_import_contracts_hold():
    """import-linter checks every module against the contracts in pyproject.toml."""
    linter = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(linter)], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_ui_and_the_app_start_without_torch():
    """The window must open before torch loads: the UI gets the engine only through factories."""
    result = _run(
        """
        import pkgutil, importlib, sys
        import desktop.ui, desktop.app
        for module in pkgutil.walk_packages(desktop.ui.__path__, "desktop.ui."):
            importlib.import_module(module.name)
        heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "diffusers", "transformers", "numpy"))
        print(heavy)
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
