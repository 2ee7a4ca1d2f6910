"""Training > Train LoRA… in the real app: the real trainer child, the app freeing its models, the result listed.

The window is built exactly as the app builds it (``desktop.app.create_window``: the real command line
and the real dataset scan); the child trains the tiny SD1 checkpoint from the app's models folder.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from desktop.app import EngineLauncher, create_window
from desktop.training.config import load_config
from desktop.ui.settings_store import SettingsStore
from tests.qt.test_main_window import close_window, paths, small_job_settings  # noqa: F401 - the fixture
from tests.training.test_trainer import make_dataset

TRAINING_TIMEOUT_MS = 240_000


def test_a_lora_trained_from_the_menu_is_verified_listed_and_the_models_come_back(qtbot, paths, tmp_path):  # noqa: F811
    store = SettingsStore(paths.settings_file)
    small_job_settings(store)
    window = create_window(paths, store, EngineLauncher())
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    unloads, preloads = [], []
    window.unload_engine_requested.connect(lambda: unloads.append(window.queue.paused))
    window.preload_requested.connect(preloads.append)

    window.train_lora_action.trigger()
    training = window.training_window
    assert training is not None and training.isVisible()
    checkpoint = paths.models_dir / "Stable-diffusion" / "tiny-sd1.safetensors"
    data = make_dataset(tmp_path / "dataset", count=2, repeats=1)
    config = replace(
        training.config(), pretrained_model_name_or_path=str(checkpoint), train_data_dir=str(data), output_name="menu-lora",
        resolution=(64, 64), enable_bucket=False, min_bucket_reso=64, max_bucket_reso=256, network_dim=2,
        network_alpha=1.0, max_train_steps=3, max_train_epochs=1, train_batch_size=1, device="cpu", mixed_precision="no",
        gradient_checkpointing=False, save_every_n_epochs=0, sample_every_n_epochs=0, sample_prompts=(), sample_steps=1, seed=3,
    )  # fmt: skip
    training.set_config(config)
    assert Path(training.config().output_dir) == paths.models_dir / "Lora"  # the app's own LoRA folder

    with qtbot.waitSignal(training.training_stopped, timeout=TRAINING_TIMEOUT_MS):
        assert training.start()
        assert training.is_training()
    assert unloads == [True]  # the queue was held before the models were freed
    assert not window.queue.paused
    assert len(preloads) == 1 and Path(preloads[0].model_path).name == "tiny-sd1.safetensors"

    lora = paths.models_dir / "Lora" / "menu-lora.safetensors"
    assert lora.exists()
    saved = load_config(paths.models_dir / "Lora" / "menu-lora.toml").config
    assert saved.max_train_steps == 3 and saved.network_dim == 2
    log = "\n".join(training.monitor.log_lines())
    assert "menu-lora.safetensors" in log
    # the browser lists the new LoRA (the window refreshed on lora_saved)
    qtbot.waitUntil(lambda: window.model_browser.model.entry(lora) is not None, timeout=30_000)
    training.close()
    close_window(window)
