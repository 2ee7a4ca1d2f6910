"""The parameters panel's VAE "Automatic" entry: the checkpoint's preferred VAE from its A1111
``name.json`` (real sidecar files in tmp_path), what it shows, what the request carries, and the
warning when the preferred file is not installed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from desktop.library.model_folders import list_models
from desktop.ui.parameters import ParametersPanel


@pytest.fixture
def models(tmp_path: Path) -> Path:
    root = tmp_path / "models"
    for name in ("dreamshaper_8", "anything-v5", "no-notes"):
        path = root / "Stable-diffusion" / f"{name}.safetensors"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"not read by the panel's VAE logic")
    (root / "VAE").mkdir()
    for name in ("vae-ft-mse-840000-ema-pruned", "kl-f8-anime2"):
        (root / "VAE" / f"{name}.safetensors").write_bytes(b"vae")
    notes = {"description": "", "sd version": "SD1", "notes": "", "vae": "vae-ft-mse-840000-ema-pruned.safetensors"}
    (root / "Stable-diffusion" / "dreamshaper_8.json").write_text(json.dumps(notes, indent=4), encoding="utf-8")
    (root / "Stable-diffusion" / "anything-v5.json").write_text(json.dumps({"vae": "orangemix.vae.pt"}), encoding="utf-8")
    return root


@pytest.fixture
def panel(qtbot, models: Path) -> ParametersPanel:
    widget = ParametersPanel()
    qtbot.addWidget(widget)
    widget.set_checkpoints(list_models([models], "checkpoint"))
    widget.set_vaes(list_models([models], "vae"))
    return widget


def choose(panel: ParametersPanel, models: Path, name: str) -> None:
    panel.select_checkpoint(str(models / "Stable-diffusion" / f"{name}.safetensors"))


def test_automatic_shows_and_uses_the_checkpoints_preferred_vae(panel: ParametersPanel, models: Path):
    choose(panel, models, "dreamshaper_8")
    assert panel.vae.currentIndex() == 0
    assert panel.vae.itemText(0) == "Automatic (vae-ft-mse-840000-ema-pruned)"
    assert "Preferred VAE" in panel.vae.itemData(0, Qt.ItemDataRole.ToolTipRole)
    request = panel.request("a cat", "")
    assert request.vae_path == models / "VAE" / "vae-ft-mse-840000-ema-pruned.safetensors"
    assert panel.vae_warning() == ""
    # Reusing the fields keeps "Automatic" as the field says.
    assert panel.request("a cat", "", resolve_automatic_vae=False).vae_path is None

    choose(panel, models, "no-notes")
    assert panel.vae.itemText(0) == "Automatic (baked in)"
    assert panel.request("a cat", "").vae_path is None


def test_an_explicit_vae_always_wins(panel: ParametersPanel, models: Path):
    choose(panel, models, "dreamshaper_8")
    panel.vae.setCurrentIndex(panel.vae.findText("kl-f8-anime2"))
    assert panel.request("a cat", "").vae_path == models / "VAE" / "kl-f8-anime2.safetensors"
    choose(panel, models, "anything-v5")
    assert panel.request("a cat", "").vae_path == models / "VAE" / "kl-f8-anime2.safetensors"
    assert panel.vae_warning() == ""  # the missing preference does not matter: a VAE was chosen


def test_a_preferred_vae_that_is_not_installed_warns_and_the_baked_in_vae_is_used(panel: ParametersPanel, models: Path):
    choose(panel, models, "anything-v5")
    assert panel.vae.itemText(0) == "Automatic (baked in; orangemix.vae.pt not found)"
    assert panel.request("a cat", "").vae_path is None
    assert panel.automatic_vae().missing
    assert panel.vae_warning() == (
        "The preferred VAE of anything-v5, orangemix.vae.pt, is not installed; the checkpoint's own VAE is used."
    )


def test_the_entry_follows_a_changed_sidecar_and_the_vae_list(panel: ParametersPanel, models: Path):
    choose(panel, models, "no-notes")
    (models / "Stable-diffusion" / "no-notes.json").write_text('{"vae": "kl-f8-anime2.safetensors"}', encoding="utf-8")
    panel.refresh_preferred_vae()
    assert panel.vae.itemText(0) == "Automatic (kl-f8-anime2)"
    (models / "VAE" / "kl-f8-anime2.safetensors").unlink()
    panel.set_vaes(list_models([models], "vae"))
    assert panel.vae.itemText(0) == "Automatic (baked in; kl-f8-anime2.safetensors not found)"
    panel.retranslate()  # the language switch keeps what the entry says
    assert panel.vae.itemText(0) == "Automatic (baked in; kl-f8-anime2.safetensors not found)"
