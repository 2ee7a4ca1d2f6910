"""The main window end to end on a tiny real model: Cmd+Return to an image file, progress, a GUI
that never stalls, cancel, failures, restart with settings and queue, and a screenshot."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image
from PySide6.QtCore import QElapsedTimer, QObject, Qt, QTimer, Slot
from PySide6.QtWidgets import QApplication

from desktop.app import EngineLauncher
from desktop.core import settings as keys
from desktop.ui.job_queue import CANCELLED, FAILED, FINISHED, QUEUED
from desktop.ui.main_window import AppPaths, MainWindow
from desktop.ui.settings_store import SettingsStore

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
JOB_TIMEOUT_MS = 180_000


@pytest.fixture
def paths(tmp_path: Path, tiny_sd1: Path) -> AppPaths:
    models = tmp_path / "models"
    (models / "Stable-diffusion").mkdir(parents=True)
    shutil.copy(tiny_sd1, models / "Stable-diffusion" / "tiny-sd1.safetensors")
    return AppPaths(
        settings_file=tmp_path / "config" / "settings.ini",
        queue_file=tmp_path / "data" / "queue.json",
        styles_file=tmp_path / "data" / "styles.csv",
        default_output_dir=tmp_path / "outputs",
        models_dir=models,
    )


def small_job_settings(store: SettingsStore, steps: int = 4) -> None:
    store.set(keys.WIDTH, 64)
    store.set(keys.HEIGHT, 64)
    store.set(keys.STEPS, steps)
    store.set(keys.SAMPLER, "Euler a")
    store.set(keys.DEVICE, "cpu")
    store.set(keys.PRECISION, "fp32")


def open_window(qtbot, paths: AppPaths, *, steps: int = 4, count_tokens=None) -> MainWindow:
    store = SettingsStore(paths.settings_file)
    if store.get(keys.STEPS) == keys.STEPS.default:
        small_job_settings(store, steps)
    launcher = EngineLauncher()
    window = MainWindow(paths, store, launcher.create_engine, count_tokens=launcher.count_tokens if count_tokens else None)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow)
    return window


class GuiThreadRecorder(QObject):
    """Receives worker signals in the GUI thread (a bound slot is queued; a lambda would run in the worker)."""

    def __init__(self, on_progress=None) -> None:
        super().__init__()
        self.steps: list[int] = []
        self._on_progress = on_progress

    @Slot(str, object)
    def progress(self, job_id: str, step) -> None:
        self.steps.append(step.step)
        if self._on_progress is not None:
            self._on_progress(step)


def close_window(window: MainWindow) -> None:
    window.close()
    assert not window.engine_thread.isRunning()


def outputs(paths: AppPaths) -> list[Path]:
    return sorted(paths.default_output_dir.glob("*.png")) if paths.default_output_dir.exists() else []


def test_cmd_return_makes_an_image_with_metadata_and_the_gui_never_stalls(qtbot, paths: AppPaths):
    window = open_window(qtbot, paths, count_tokens=True)
    with qtbot.waitSignal(window.engine_ready, timeout=JOB_TIMEOUT_MS):
        window.start_engine()  # the app does this at startup: torch and diffusers load while the user types
    window.prompt.set_text("a red (apple:1.2) on a table")
    window.prompt.setFocus()
    recorder = GuiThreadRecorder()
    window.worker.progress.connect(recorder.progress)

    # A 10 ms heartbeat on the GUI thread: the largest gap is the worst stall a user would feel.
    gaps: list[float] = []
    clock = QElapsedTimer()
    clock.start()
    heartbeat = QTimer()
    heartbeat.setInterval(10)
    last = [clock.elapsed()]

    def beat() -> None:
        now = clock.elapsed()
        gaps.append(now - last[0])
        last[0] = now

    heartbeat.timeout.connect(beat)
    with qtbot.waitSignal(window.job_done, timeout=JOB_TIMEOUT_MS) as finished:
        heartbeat.start()
        qtbot.keyClick(QApplication.focusWidget(), Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
        assert len(window.queue.jobs) == 1  # the shortcut queued the job (else fail now, not after a timeout)
    heartbeat.stop()

    job_id, report = finished.args
    assert report.outcome == "finished", report.failure
    assert recorder.steps == [1, 2, 3, 4]  # the progress signal arrives once per step
    files = outputs(paths)
    assert len(files) == 1
    parameters = Image.open(files[0]).text["parameters"]
    assert parameters.startswith("a red (apple:1.2) on a table\n")
    assert "Steps: 4, Sampler: Euler a" in parameters and "Size: 64x64" in parameters
    assert window.image_view.has_image()
    qtbot.waitUntil(lambda: window.gallery.model.total() == 1, timeout=10_000)  # indexed by the gallery thread
    assert window.gallery.model.image_at(0).path == files[0].resolve()
    assert window.queue.job(job_id).state == FINISHED
    worst = max(gaps)
    print(f"worst GUI stall while generating: {worst:.0f} ms over {len(gaps)} heartbeats")
    # The target is 100 ms; CI machines are shared, so fail only on a real block (seconds).
    assert worst < 500

    ARTIFACTS.mkdir(exist_ok=True)
    window.resize(1280, 820)
    qtbot.wait(50)
    assert window.grab().save(str(ARTIFACTS / "main_window.png"))
    close_window(window)


def test_cancel_stops_within_a_step_writes_nothing_and_the_next_job_runs(qtbot, paths: AppPaths):
    window = open_window(qtbot, paths, steps=40)
    window.prompt.set_text("a long job")
    latest = [0]  # the worker's step right now (a direct connection: updated in the worker thread)
    window.worker.progress.connect(lambda _job, step: latest.__setitem__(0, step.step), Qt.ConnectionType.DirectConnection)
    cancelled_at: list[int] = []

    def press_cancel(step) -> None:
        if step.step >= 2 and not cancelled_at:
            cancelled_at.append(latest[0])
            window.cancel_button.click()

    recorder = GuiThreadRecorder(press_cancel)
    window.worker.progress.connect(recorder.progress)
    with qtbot.waitSignal(window.job_done, timeout=JOB_TIMEOUT_MS) as finished:
        window.generate()
    assert finished.args[1].outcome == "cancelled"
    assert latest[0] <= cancelled_at[0] + 1  # at most the step already under way when Cancel was pressed
    assert outputs(paths) == []
    assert window.queue.job(finished.args[0]).state == CANCELLED

    window.parameters.steps.setValue(2)
    with qtbot.waitSignal(window.job_done, timeout=JOB_TIMEOUT_MS) as second:
        window.generate()
    assert second.args[1].outcome == "finished"
    assert len(outputs(paths)) == 1
    close_window(window)


def test_a_failing_job_shows_the_reason_and_the_next_job_still_runs(qtbot, paths: AppPaths):
    broken = paths.models_dir / "Stable-diffusion" / "broken.safetensors"
    broken.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
    window = open_window(qtbot, paths)
    window.prompt.set_text("a cat")
    window.parameters.select_checkpoint(str(broken))
    with qtbot.waitSignal(window.job_done, timeout=JOB_TIMEOUT_MS) as failed:
        window.generate()
    report = failed.args[1]
    assert report.outcome == "failed" and report.failure.kind == "model_file"
    assert window.queue.job(failed.args[0]).state == FAILED
    assert window.error_banner.isVisible() and "broken.safetensors" in window.error_banner.text()
    assert "Traceback" not in window.error_banner.text()

    window.parameters.select_checkpoint(str(paths.models_dir / "Stable-diffusion" / "tiny-sd1.safetensors"))
    with qtbot.waitSignal(window.job_done, timeout=JOB_TIMEOUT_MS) as ok:
        window.generate()
    assert ok.args[1].outcome == "finished"
    close_window(window)


def test_settings_and_queue_survive_a_restart(qtbot, paths: AppPaths):
    window = open_window(qtbot, paths)
    window.queue.set_paused(True)
    window.prompt.set_text("first prompt")
    window.negative_prompt.set_text("blurry")
    window.parameters.steps.setValue(7)
    window.parameters.sampler.setCurrentText("DPM++ 2M")
    window.parameters.seed.setText("1234")
    window.generate()
    window.prompt.set_text("second prompt")
    window.generate()
    assert [job.state for job in window.queue.jobs] == [QUEUED, QUEUED]
    close_window(window)

    saved = json.loads(paths.queue_file.read_text(encoding="utf-8"))
    assert [job["request"]["prompt"] for job in saved["jobs"]] == ["first prompt", "second prompt"]

    again = open_window(qtbot, paths)
    assert again.prompt.text() == "second prompt" and again.negative_prompt.text() == "blurry"
    assert again.parameters.steps.value() == 7 and again.parameters.sampler.currentText() == "DPM++ 2M"
    assert again.parameters.seed.text() == "1234"
    restored = again.queue.jobs
    assert [job.request.prompt for job in restored] == ["first prompt", "second prompt"]
    assert restored[0].request.seed == 1234 and restored[0].request.steps == 7
    assert again.queue.paused  # restored jobs wait for the user
    close_window(again)


def test_a_corrupt_settings_file_is_set_aside_and_defaults_load(qtbot, paths: AppPaths):
    paths.settings_file.parent.mkdir(parents=True)
    paths.settings_file.write_bytes(b"\x00\xff garbage [[[\n=\n")
    store = SettingsStore(paths.settings_file)
    assert store.set_aside is not None and store.set_aside.read_bytes().startswith(b"\x00\xff")
    assert store.get(keys.STEPS) == keys.STEPS.default
    window = MainWindow(paths, store, EngineLauncher().create_engine)
    qtbot.addWidget(window)
    assert window.error_banner.isVisibleTo(window) and store.set_aside.name in window.error_banner.text()
    assert window.parameters.steps.value() == keys.STEPS.default
    close_window(window)


def test_a_corrupt_queue_file_is_set_aside(qtbot, paths: AppPaths):
    paths.queue_file.parent.mkdir(parents=True)
    paths.queue_file.write_text('{"version": 1, "jobs": [{"id": "x", "request": {"prompt": 5}}]}')
    window = open_window(qtbot, paths)
    assert window.queue.jobs == []
    assert list(paths.queue_file.parent.glob("queue.json.corrupt-*"))
    assert window.error_banner.isVisible()
    close_window(window)


def test_welcome_screen_when_no_model_is_installed(qtbot, paths: AppPaths):
    shutil.rmtree(paths.models_dir / "Stable-diffusion")
    window = open_window(qtbot, paths)
    assert window.pages.currentIndex() == 0
    assert "civitai" in window.welcome.text()
    window.generate()  # nothing to run: a clear message, no job
    assert window.queue.jobs == [] and window.error_banner.isVisible()
    close_window(window)


def test_dropping_a_checkpoint_installs_it_and_leaves_the_welcome_screen(qtbot, paths: AppPaths, tiny_sd1: Path, tmp_path: Path):
    shutil.rmtree(paths.models_dir / "Stable-diffusion")
    window = open_window(qtbot, paths)
    downloaded = tmp_path / "downloads" / "我的模型 🎨.safetensors"
    downloaded.parent.mkdir()
    shutil.copy(tiny_sd1, downloaded)
    window.install([downloaded])
    qtbot.waitUntil(lambda: window.pages.currentIndex() == 1, timeout=20_000)
    assert (paths.models_dir / "Stable-diffusion" / downloaded.name).read_bytes() == downloaded.read_bytes()
    assert window.parameters.checkpoint.currentText() == "我的模型 🎨"
    close_window(window)


def test_menus_follow_mac_conventions(qtbot, paths: AppPaths):
    window = open_window(qtbot, paths)
    titles = [action.text() for action in window.menuBar().actions()]
    assert titles == ["Diffusion Desktop", "File", "Edit", "View", "Generate", "Training", "Window", "Help"]
    assert window.preferences_action.menuRole() == window.preferences_action.MenuRole.PreferencesRole
    assert window.generate_action.shortcut().toString() == "Ctrl+Return"  # Cmd+Return on a Mac
    assert window.cancel_action.shortcut().toString() == "Ctrl+."
    assert window.train_lora_action.text() == "Train LoRA…"
    assert window.train_lora_action.shortcut().toString() == "Ctrl+Shift+T"
    assert window.preferences_action.shortcut().toString() in ("Ctrl+,", "Ctrl+;")
    close_window(window)


def test_the_window_opens_quickly_before_torch_is_imported(tmp_path: Path):
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", HOME=str(tmp_path), XDG_CONFIG_HOME=str(tmp_path / "config"))
    env["XDG_DATA_HOME"] = str(tmp_path / "data")
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "desktop", "--time-to-window"], capture_output=True, text=True, env=env, timeout=120
    )
    total = time.perf_counter() - started
    assert result.returncode == 0, result.stderr
    assert "torch loaded: False" in result.stdout
    shown_after = float(result.stdout.split("window shown after ")[1].split(" s")[0])
    print(f"time to window: {shown_after:.3f} s (whole process {total:.2f} s)")
    assert shown_after < 5  # target well under 1 s on a Mac; generous for shared CI machines


# --- a checkpoint's preferred VAE (A1111's name.json "vae") ----------------------------------------


def test_automatic_vae_uses_the_checkpoints_preferred_vae_and_records_it(qtbot, paths: AppPaths):
    import hashlib

    from desktop.core.infotext import parse_infotext
    from tests.fixtures import ldm_layout

    vae = paths.models_dir / "VAE" / "my-vae.safetensors"
    vae.parent.mkdir()
    ldm_layout.write_checkpoint(vae, ldm_layout.vae_shapes(**ldm_layout.TINY["sd1"]["vae"], prefix=""), seed=5)
    checkpoint = paths.models_dir / "Stable-diffusion" / "tiny-sd1.safetensors"
    window = open_window(qtbot, paths)
    browser = window.model_browser
    qtbot.waitUntil(lambda: browser.model.entry(checkpoint) is not None, timeout=20_000)
    assert window.parameters.vae.itemText(0) == "Automatic (baked in)"

    assert browser.set_preferred_vae(browser.model.entry(checkpoint), vae.name)  # the context menu's action
    assert json.loads(checkpoint.with_suffix(".json").read_text(encoding="utf-8")) == {"vae": "my-vae.safetensors"}
    assert window.parameters.vae.itemText(0) == "Automatic (my-vae)" and window.parameters.vae.currentIndex() == 0
    assert "tiny-sd1 now prefers the VAE my-vae.safetensors" in window.statusBar().currentMessage()
    with qtbot.waitSignal(window.job_done, timeout=JOB_TIMEOUT_MS) as done:
        window.generate()
    assert done.args[1].outcome == "finished", done.args[1].failure
    params = parse_infotext(Image.open(outputs(paths)[-1]).text["parameters"])[2]
    assert params["VAE"] == "my-vae.safetensors"  # as when chosen by hand
    assert params["VAE hash"] == hashlib.sha256(vae.read_bytes()).hexdigest()[:10]
    assert window.store.get(keys.VAE) == ""  # the field stays "Automatic"

    # The preferred file is gone: a warning, and the job runs with the checkpoint's own VAE.
    checkpoint.with_suffix(".json").write_text('{"vae": "gone.safetensors"}', encoding="utf-8")
    window.parameters.refresh_preferred_vae()
    with qtbot.waitSignal(window.job_done, timeout=JOB_TIMEOUT_MS) as done:
        window.generate()
    assert done.args[1].outcome == "finished", done.args[1].failure
    assert "gone.safetensors, is not installed" in window.error_banner.text() and window.error_banner.isVisible()
    params = parse_infotext(Image.open(outputs(paths)[-1]).text["parameters"])[2]
    assert "VAE" not in params and "VAE hash" not in params
    close_window(window)


# --- the token counter knows the app's embeddings ---------------------------------------------------


def embedding_file(path: Path, **vectors: int) -> Path:
    """A textual-inversion file as A1111 saves it: ``emb_params`` [n, 768], or SDXL ``clip_l``/``clip_g``."""
    import torch
    from safetensors.torch import save_file

    widths = {"emb_params": 768, "clip_l": 768, "clip_g": 1280}
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({key: torch.randn(count, widths[key]).half() for key, count in vectors.items()}, str(path))
    return path


def test_the_token_counter_counts_an_embedding_as_its_vectors(qtbot, paths: AppPaths, tiny_sdxl: Path):
    from desktop.app import create_window
    from desktop.engine.conditioning import count_tokens
    from desktop.engine.loading import load_tokenizers
    from desktop.library.taxonomy import ModelFamily

    embedding_file(paths.models_dir.parent / "embeddings" / "easynegative.safetensors", emb_params=8)  # A1111's place
    store = SettingsStore(paths.settings_file)
    small_job_settings(store)
    window = create_window(paths, store, EngineLauncher())
    qtbot.addWidget(window)
    window.show()
    label = window.prompt.token_label

    def counted(text: str, expected: str) -> None:
        window.prompt.set_text(text)
        qtbot.waitUntil(lambda: label.isVisible() and label.text() == expected, timeout=120_000)

    counted("easynegative, a cat", "11/75")  # 8 vectors + 3 tokens, as A1111 counts
    tokenizer = load_tokenizers(ModelFamily.SD1)[0]
    as_text = {name: count_tokens(name, tokenizer).tokens for name in ("badhand", "xlneg")}
    counted("badhand xlneg", f"{as_text['badhand'] + as_text['xlneg']}/75")  # no such files yet: text

    # Files added in Finder are found (the folders are listed again when they change) and the
    # prompt is counted again by itself. An SDXL embedding is text for an SD1 checkpoint.
    embedding_file(paths.models_dir / "embeddings" / "badhand.safetensors", emb_params=3)
    embedding_file(paths.models_dir / "embeddings" / "xlneg.safetensors", clip_l=4, clip_g=4)
    qtbot.waitUntil(lambda: label.text() == f"{3 + as_text['xlneg']}/75", timeout=30_000)

    # With an SDXL checkpoint it is the other way round; the count follows the checkpoint by itself.
    shutil.copy(tiny_sdxl, paths.models_dir / "Stable-diffusion" / "tiny-sdxl.safetensors")
    window.refresh_models()
    window.parameters.select_checkpoint(str(paths.models_dir / "Stable-diffusion" / "tiny-sdxl.safetensors"))
    assert window.parameters.family() == "sdxl"
    qtbot.waitUntil(lambda: label.text() == f"{as_text['badhand'] + 4}/75", timeout=30_000)
    close_window(window)


def test_the_launchers_counter_lists_the_embedding_folders_only_when_told(tmp_path: Path):
    """set_token_context is what the window calls when its folders change; counting alone never lists them."""
    models = tmp_path / "models"
    embedding_file(models / "embeddings" / "easynegative.safetensors", emb_params=8)
    launcher = EngineLauncher()
    assert launcher.count_tokens("easynegative") == (2, 75)  # no folders yet: two words of text
    launcher.set_token_context([str(models)], "sd1")
    assert launcher.count_tokens("easynegative") == (8, 75)
    assert launcher.count_tokens("cat " * 70 + "easynegative") == (83, 150)  # moved whole to the next chunk
    embedding_file(models / "embeddings" / "other.safetensors", emb_params=8)
    assert launcher.count_tokens("other") == (1, 75)  # not listed again: a new file is not known...
    launcher.set_token_context([str(models)], "sd1")
    assert launcher.count_tokens("other") == (8, 75)  # ...until the window says the folders changed
    (models / "embeddings" / "easynegative.safetensors").unlink()
    assert launcher.count_tokens("easynegative") == (2, 75)  # a file gone is text even before that
    launcher.set_token_context([str(models)], "sdxl")
    assert launcher.count_tokens("other") == (1, 75)  # an SD1 embedding is text for SDXL
    launcher.set_token_context([str(models)], "unknown")
    assert launcher.count_tokens("other") == (8, 75)  # unknown base: any readable embedding counts
