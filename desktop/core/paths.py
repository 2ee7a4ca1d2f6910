"""Where the app's bundled files and default folders are."""

from __future__ import annotations

from pathlib import Path

_REPO_ROOT = Path(__file__).resolve().parent.parent.parent


def resources_dir() -> Path:
    """Bundled configs and tokenizer files (``resources/`` next to the package)."""
    return _REPO_ROOT / "resources"


def default_models_dir() -> Path:
    """The app's own model folders, in A1111 layout (``models/Stable-diffusion``, ``models/Lora``...)."""
    return _REPO_ROOT / "models"


def default_output_dir() -> Path:
    """Where generated images go unless the user chooses otherwise."""
    return _REPO_ROOT / "outputs" / "txt2img"
