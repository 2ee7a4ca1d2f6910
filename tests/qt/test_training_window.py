"""The Train LoRA window on real widgets, real files and a real child process.

The dataset is a real folder of PNGs (PIL) with .txt captions, scanned by a small scan function
written here; the trainer is a real Python child (written here) that reads the TOML the window
saved and speaks the real event protocol: steps with a noisy falling loss, samples it draws with
PIL, saves, a final check, and the stdin commands. Dialogs are answered by clicking their buttons.
"""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image, ImageDraw
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QTimer, QUrl
from PySide6.QtGui import QColor, QDragEnterEvent, QDropEvent, QPalette
from PySide6.QtWidgets import QApplication, QMessageBox, QPushButton

from desktop.training.config import TrainingConfig, load_config
from desktop.training.estimate import DatasetImage, DatasetSummary
from desktop.ui.loss_plot import LossPlot
from desktop.ui.settings_store import SettingsStore
from desktop.ui.training_window import TrainingWindow
from tests.qt.test_i18n import qm_dir, switch  # noqa: F401 - fixtures

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "tests" / "artifacts"
TIMEOUT_MS = 30_000
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")

FAKE_TRAINER = f"""
import math, os, random, signal, sys, time
from pathlib import Path
sys.path.insert(0, {str(REPO)!r})
from PIL import Image, ImageDraw
from desktop.training.config import load_config
from desktop.training.events import *

config = load_config(Path(sys.argv[1])).config
mode = os.environ.get("FAKE_TRAINER_MODE", "complete")
per_epoch = int(os.environ.get("FAKE_STEPS_PER_EPOCH", "10"))
total = int(os.environ.get("FAKE_TOTAL_STEPS", "40"))
stop_at = int(os.environ.get("FAKE_STOP_AT", "25"))
out = Path(config.output_dir)
out.mkdir(parents=True, exist_ok=True)
name = config.output_name
rng = random.Random(7)
losses = []

def say(event):
    sys.stdout.write(encode(event) + "\\n")
    sys.stdout.flush()

def sample(step, epoch, index=0):
    prompt = config.sample_prompts[index % len(config.sample_prompts)] if config.sample_prompts else "a photo"
    path = out / "samples" / f"{{name}}-{{step:06d}}-{{index}}.png"
    path.parent.mkdir(exist_ok=True)
    image = Image.new("RGB", (256, 256), (40 + step % 200, 90, 160 - step % 120))
    ImageDraw.Draw(image).ellipse((60, 40, 196, 216), fill=(230, 190, 150))
    image.save(path)
    say(SampleSaved(path=str(path), step=step, epoch=epoch, prompt=prompt))

def save(step, epoch, reason):
    path = out / (f"{{name}}.safetensors" if reason in ("final", "cancelled") else f"{{name}}-{{epoch:06d}}.safetensors")
    path.write_bytes(b"fake lora")
    say(Saved(path=str(path), step=step, epoch=epoch, reason=reason))
    return path

def step_event(step):
    loss = max(0.01, 0.11 + 0.09 * math.exp(-step / 150) + rng.gauss(0, 0.035))
    losses.append(loss)
    window = losses[-per_epoch:]
    say(StepDone(step=step, epoch=1 + (step - 1) // per_epoch, loss=loss, average_loss=sum(window) / len(window),
                 lr=1e-4, seconds_per_step=2.4, eta_seconds=(total - step) * 2.4, memory_bytes=5_234_000_000))
    if step % per_epoch == 0:
        epoch = step // per_epoch
        if config.save_every_n_epochs and epoch % config.save_every_n_epochs == 0 and step < total:
            save(step, epoch, "epoch")
        if config.sample_every_n_epochs and epoch % config.sample_every_n_epochs == 0:
            sample(step, epoch)

say(Progress(stage="loading"))
say(Progress(stage="caching_latents", current=6, total=6))
say(Started(total_steps=total, steps_per_epoch=per_epoch, epochs=math.ceil(total / per_epoch), images=6,
            resumed_from_step=0, device="cpu", output_dir=str(out)))
if config.resume:
    say(Warning(message="resuming from " + config.resume))

if mode == "complete":
    for step in range(1, total + 1):
        step_event(step)
    lora = save(total, total // per_epoch, "final")
    say(StateSaved(path=str(out / f"{{name}}-state"), step=total))
    without, with_ = out / "check-without.png", out / "check-with.png"
    Image.new("RGB", (128, 128), (120, 120, 120)).save(without)
    Image.new("RGB", (128, 128), (200, 80, 60)).save(with_)
    say(Verified(path=str(lora), matched=264, total=264, with_lora=str(with_), without_lora=str(without), differs=True))
    say(Finished(outcome=OUTCOME_COMPLETED, lora_path=str(lora), steps=total, seconds=96.0))
elif mode == "nan":
    for step in range(1, 13):
        step_event(step)
    say(Failed(kind=FAILURE_NAN_LOSS, message="The loss became NaN at step 12.", step=12))
    sys.exit(3)
elif mode == "kill":
    for step in range(1, 5):
        step_event(step)
    print("RuntimeError: out of memory while allocating 2.00 GB", file=sys.stderr, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
else:  # interactive: some steps, then obey commands
    for step in range(1, stop_at + 1):
        step_event(step)
    say(Warning(message="2 images are smaller than the bucket and were upscaled"))
    step = stop_at
    for line in sys.stdin:
        word = parse_command(line)
        if word == "pause":
            say(Paused(step=step))
        elif word == "resume":
            say(Resumed(step=step))
        elif word == "save":
            save(step, 1 + (step - 1) // per_epoch, "manual")
        elif word == "sample":
            sample(step, 1 + (step - 1) // per_epoch, 1)
        elif word == "cancel":
            lora = save(step, 1 + (step - 1) // per_epoch, "cancelled")
            say(Finished(outcome=OUTCOME_CANCELLED, lora_path=str(lora), steps=step, seconds=60.0))
            break
"""


# --- a real dataset and a real scan ------------------------------------------------------------------


def scan_folder(config: TrainingConfig) -> DatasetSummary:
    """kohya's layout: ``N_name`` subfolders repeat their images N times; captions next to images."""
    root = Path(config.train_data_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"There is no folder {root}")
    folders = sorted(path for path in root.iterdir() if path.is_dir()) or [root]
    images = []
    for folder in folders:
        count, _sep, _rest = folder.name.partition("_")
        repeats = int(count) if count.isdigit() else 1
        for path in sorted(folder.iterdir()):
            if path.suffix.lower() in IMAGE_SUFFIXES:
                caption_file = path.with_suffix(config.caption_extension)
                caption = caption_file.read_text(encoding="utf-8") if caption_file.exists() else None
                images.append(DatasetImage(path, caption, repeats, folder.name))
    repeated = sum(image.repeats for image in images)
    missing = sum(image.caption is None for image in images)
    warnings = (f"{missing} image(s) have no caption: they are trained on the trigger word alone",) if missing else ()
    return DatasetSummary(len(images), repeated, repeated, tuple(images), warnings)


def draw_image(path: Path, colour: tuple[int, int, int], size: tuple[int, int] = (320, 400)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.new("RGB", size, colour)
    draw = ImageDraw.Draw(image)
    draw.ellipse((size[0] // 4, size[1] // 6, 3 * size[0] // 4, 5 * size[1] // 6), fill=(240, 200, 170))
    draw.rectangle((0, size[1] - 40, size[0], size[1]), fill=(colour[2], colour[0], colour[1]))
    image.save(path)


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    """alice_photos/10_alice: 4 images (3 captioned), 5_background: 2 captioned: 50 steps per epoch."""
    root = tmp_path / "alice_photos"
    colours = [(200, 60, 60), (60, 160, 90), (70, 90, 200), (220, 180, 40)]
    for index, colour in enumerate(colours):
        image = root / "10_alice" / f"alice_{index}.png"
        draw_image(image, colour)
        if index != 3:
            image.with_suffix(".txt").write_text(f"alice, portrait, pose {index}", encoding="utf-8")
    for index, colour in enumerate([(90, 90, 90), (150, 120, 200)]):
        image = root / "5_background" / f"street_{index}.jpg"
        draw_image(image, colour, (480, 320))
        image.with_suffix(".txt").write_text("city street, night", encoding="utf-8")
    return root


@pytest.fixture
def trainer(tmp_path: Path) -> Path:
    path = tmp_path / "fake_trainer.py"
    path.write_text(textwrap.dedent(FAKE_TRAINER), encoding="utf-8")
    return path


@pytest.fixture
def window(qtbot, tmp_path: Path, trainer: Path):
    checkpoint = tmp_path / "models" / "Stable-diffusion" / "tiny-sd1.safetensors"
    checkpoint.parent.mkdir(parents=True)
    checkpoint.write_bytes(b"not a real model: the fake trainer never loads it")
    started: list[list[str]] = []

    def command_for(config: Path) -> list[str]:
        started.append([str(config)])
        return [sys.executable, str(trainer), str(config)]

    widget = TrainingWindow(
        lambda: [("tiny-sd1", checkpoint, "sd1")],
        tmp_path / "models" / "Lora",
        command_for,
        scan_folder,
        store=SettingsStore(tmp_path / "config" / "settings.ini"),
        device="mps",
    )
    widget.commands = started
    widget.show()
    qtbot.waitExposed(widget)
    yield widget
    # Not qtbot.addWidget: pytest-qt closes its widgets before fixtures end, and closing a window
    # whose training still runs (a failed test) asks a question nobody would answer.
    if widget.process.is_running():
        widget.process.kill()
        widget.process.shutdown(timeout_ms=5000)
    widget.scanner.wait(5000)
    widget.dataset.model.loader.wait(5000)
    widget.monitor.loader.wait(5000)
    widget.close()
    widget.deleteLater()
    QApplication.processEvents()


def choose(window: TrainingWindow, qtbot, folder: Path) -> None:
    window.set_dataset_folder(folder)
    qtbot.waitUntil(lambda: window.dataset.summary().image_count > 0, timeout=TIMEOUT_MS)


def answer_next_dialog(qtbot, button_text: str, seen: list[str] | None = None) -> None:
    """Click ``button_text`` in the next message box that opens (the window uses exec() for questions)."""
    timer = QTimer()
    timer.setInterval(20)

    def click() -> None:
        box = QApplication.activeModalWidget()
        if not isinstance(box, QMessageBox):
            return
        for button in box.findChildren(QPushButton):
            if button.text().replace("&", "") == button_text:
                timer.stop()
                if seen is not None:
                    seen.append(box.text())
                button.click()
                return
        raise AssertionError(f"no {button_text!r} in {[b.text() for b in box.findChildren(QPushButton)]}")

    timer.timeout.connect(click)
    timer.start()
    qtbot._answer_timers = [*getattr(qtbot, "_answer_timers", []), timer]  # alive until the test ends


def all_thumbnails_loaded(window: TrainingWindow) -> bool:
    model = window.dataset.model
    for row in range(model.rowCount()):
        model.index(row).data(Qt.ItemDataRole.DecorationRole)
    return all(model.has_thumbnail(image.path) for image in model.images())


def run_until_stopped(window: TrainingWindow, qtbot, *, start: Callable[[], object] | None = None) -> None:
    with qtbot.waitSignal(window.training_stopped, timeout=TIMEOUT_MS):
        (start or window.start)()


# --- the dataset ------------------------------------------------------------------------------------


def test_a_dropped_folder_shows_thumbnails_counts_and_the_images_without_captions(qtbot, window: TrainingWindow, dataset: Path):
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(dataset))])
    enter = QDragEnterEvent(QPoint(100, 100), Qt.DropAction.CopyAction, mime, Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(window, enter)
    assert enter.isAccepted()
    drop = QDropEvent(QPointF(100, 100), Qt.DropAction.CopyAction, mime, Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(window, drop)
    qtbot.waitUntil(lambda: window.dataset.summary().image_count == 6, timeout=TIMEOUT_MS)

    assert window.dataset.folder.text() == str(dataset)
    counts = window.dataset.counts.text()
    assert "6 images × repeats = 50 steps per epoch" in counts
    assert "Batch size 2: 25 steps per epoch, 250 steps in all" in counts  # SD1.5 character: batch 2, 10 epochs
    assert "1 without a caption" in counts
    assert window.dataset.warnings.isVisible() and "no caption" in window.dataset.warnings.text()
    assert window.form.field("output_name").text() == "alice_photos"  # the dataset names the LoRA
    model = window.dataset.model
    assert [image.path.name for image in model.images()] == [f"alice_{i}.png" for i in range(4)] + ["street_0.jpg", "street_1.jpg"]
    uncaptioned = [model.index(row).data(model.CaptionRole) is None for row in range(model.rowCount())]
    assert uncaptioned == [False, False, False, True, False, False]
    qtbot.waitUntil(lambda: all_thumbnails_loaded(window), timeout=TIMEOUT_MS)

    # the batch size changes the step counts at once; so does the estimate
    before = window.estimate_label.text()
    window.form.field("train_batch_size").setValue(1)
    assert "Batch size 1: 50 steps per epoch, 500 steps in all" in window.dataset.counts.text()
    qtbot.waitUntil(lambda: window.estimate_label.text() != before, timeout=TIMEOUT_MS)
    assert "500 steps" in window.estimate_label.text() and "s/it" in window.estimate_label.text()
    assert window.estimate.total_steps == 500

    # a folder that does not exist says so instead of showing stale images
    window.set_dataset_folder(dataset / "missing")
    qtbot.waitUntil(lambda: window.dataset.summary().image_count == 0, timeout=TIMEOUT_MS)
    assert "There is no folder" in window.dataset.warnings.text()


def test_editing_a_caption_saves_the_txt_file_and_is_undoable(qtbot, window: TrainingWindow, dataset: Path):
    choose(window, qtbot, dataset)
    view = window.dataset
    grid = view.grid
    first = view.model.index(0)
    qtbot.mouseClick(grid.viewport(), Qt.MouseButton.LeftButton, pos=grid.visualRect(first).center())
    assert view.current_path() == dataset / "10_alice" / "alice_0.png"
    assert view.caption_editor.toPlainText() == "alice, portrait, pose 0"
    assert "Caption of alice_0.png" == view.caption_title.text()

    view.caption_editor.setFocus()
    view.caption_editor.moveCursor(view.caption_editor.textCursor().MoveOperation.End)
    qtbot.keyClicks(view.caption_editor, ", smiling")
    assert view.caption_editor.toPlainText() == "alice, portrait, pose 0, smiling"
    assert view.save_caption_button.isEnabled()
    view.caption_editor.undo()
    assert view.caption_editor.toPlainText() != "alice, portrait, pose 0, smiling"  # undo works while editing
    view.caption_editor.redo()
    window.save_caption_action.trigger()  # File > Save Caption (⌘S)
    caption_file = dataset / "10_alice" / "alice_0.txt"
    assert caption_file.read_text(encoding="utf-8") == "alice, portrait, pose 0, smiling"
    assert not view.save_caption_button.isEnabled()
    assert not list(caption_file.parent.glob(".alice_0.txt.*"))  # the atomic write left no temporary file

    # the image without a caption: marked, and switching away saves what was typed
    view.select_path(dataset / "10_alice" / "alice_3.png")
    assert view.caption_editor.toPlainText() == "" and "no caption" in view.caption_title.text()
    qtbot.keyClicks(view.caption_editor, "alice, full body")
    view.select_path(dataset / "5_background" / "street_0.jpg")
    assert (dataset / "10_alice" / "alice_3.txt").read_text(encoding="utf-8") == "alice, full body"
    assert view.model.index(3).data(view.model.CaptionRole) == "alice, full body"
    assert "without a caption" not in view.counts.text()
    assert view.caption_editor.toPlainText() == "city street, night"


def test_presets_set_their_values_and_reset_what_another_preset_changed(qtbot, window: TrainingWindow):
    form = window.form

    def pick(key: str) -> None:
        index = form.preset.findData(key)
        form.preset.setCurrentIndex(index)
        form.preset.activated.emit(index)

    pick("sdxl")
    config = window.config()
    assert (form.width_spin.value(), form.height_spin.value()) == (1024, 1024)
    assert config.network_dim == 16 and config.mixed_precision == "bf16" and config.network_train_unet_only
    assert not form.train_text_encoder.isChecked()
    assert form.field("lr_warmup_steps").value() == 50
    pick("sd15_style")
    config = window.config()
    assert config.resolution == (512, 512) and config.network_dim == 64 and config.flip_aug
    assert not config.network_train_unet_only and config.mixed_precision == "no" and config.lr_warmup_steps == 0
    assert config.text_encoder_lr == 2e-5 and form.field("text_encoder_lr").text() == "2e-05"
    assert config.pretrained_model_name_or_path.endswith("tiny-sd1.safetensors")  # the model stays


def test_start_writes_a_toml_that_reads_back_equal_to_the_form_and_events_drive_the_window(qtbot, window: TrainingWindow, dataset: Path, monkeypatch):
    monkeypatch.setenv("FAKE_TRAINER_MODE", "complete")
    monkeypatch.setenv("FAKE_TOTAL_STEPS", "40")
    choose(window, qtbot, dataset)
    form = window.form
    form.field("trigger_word").setText("alc")
    form.field("output_name").setText("alice v1")
    form.field("train_batch_size").setValue(3)
    form.field("unet_lr").setText("0.0002")
    form.field("text_encoder_lr").setText("5e-5")
    form.conv_dim.setValue(8)
    form.conv_alpha.setValue(4)
    form.sample_prompts.setPlainText("alc, portrait\nalc, full body, city street")
    form.field("sample_every_n_epochs").setValue(1)
    form.field("save_every_n_epochs").setValue(2)
    form.field("seed").setValue(1234)
    form.field("noise_offset").setValue(0.05)
    form.field("mixed_precision").setCurrentIndex(form.field("mixed_precision").findData("fp16"))
    expected = window.config()

    saved: list[str] = []
    started: list[bool] = []
    window.lora_saved.connect(saved.append)
    window.training_started.connect(lambda: started.append(window.process.is_running()))
    run_until_stopped(window, qtbot)
    assert started == [False]  # said before the child starts: the app unloads its models first

    toml = Path(window.config_path())
    assert toml == dataset.parent / "models" / "Lora" / "alice v1.toml"
    loaded = load_config(toml)
    assert loaded.unknown_keys == () and loaded.ignored_keys == ()
    assert loaded.config == expected
    assert loaded.config.network_args == ("conv_dim=8", "conv_alpha=4")
    assert loaded.config.unet_lr == 2e-4 and loaded.config.learning_rate == 2e-4 and loaded.config.text_encoder_lr == 5e-5
    assert loaded.config.train_data_dir == str(dataset) and loaded.config.trigger_word == "alc"

    monitor = window.monitor
    assert monitor.progress.value() == monitor.progress.maximum() == 40
    assert monitor.plot.point_count() == 40
    assert monitor.plot.epoch_boundaries() == [10, 20, 30]
    assert monitor.samples.count() == 4  # every epoch
    qtbot.waitUntil(lambda: not monitor.samples.item(3).icon().isNull(), timeout=TIMEOUT_MS)
    assert "Finished: 40 steps" in monitor.status.text()
    assert monitor.verification.isVisible()
    assert "264 of 264" in monitor.verification_text.text() and monitor.verification_text.text().startswith("✓")
    qtbot.waitUntil(lambda: monitor.with_view.has_image() and monitor.without_view.has_image(), timeout=TIMEOUT_MS)
    assert not monitor.failure.isVisible()
    out = dataset.parent / "models" / "Lora"
    assert saved == [str(out / "alice v1-000002.safetensors"), str(out / "alice v1.safetensors")]
    assert any("Saved" in line and "alice v1.safetensors" in line for line in monitor.log_lines())
    assert "Epoch 4 / 4" == monitor.epoch_label.text() and monitor.speed_label.text() == "2.40 s/it"
    assert "Memory 5.2 GB" == monitor.memory_label.text()
    assert window.start_button.isEnabled() and not monitor.cancel_button.isEnabled()
    assert window.resume_button.isHidden()  # the trainer did not really write a state folder

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    assert window.grab().save(str(ARTIFACTS / "training_window_finished.png"))  # for a person: the final check

    # clicking a sample opens it large
    item = monitor.samples.item(0)
    monitor.samples.itemClicked.emit(item)
    assert monitor.quick_look is not None and monitor.quick_look.isVisible()
    assert monitor.quick_look.path == item.data(Qt.ItemDataRole.UserRole)
    monitor.quick_look.close()


def test_an_existing_lora_is_not_replaced_without_asking_and_resume_uses_the_state_folder(qtbot, window: TrainingWindow, dataset: Path, monkeypatch):
    monkeypatch.setenv("FAKE_TRAINER_MODE", "complete")
    choose(window, qtbot, dataset)
    out = dataset.parent / "models" / "Lora"
    out.mkdir(parents=True)
    (out / "alice_photos.safetensors").write_bytes(b"an earlier run")
    questions: list[str] = []
    answer_next_dialog(qtbot, "Cancel", questions)
    assert not window.start()
    assert "already exists" in questions[0] and not window.process.is_running()
    assert (out / "alice_photos.safetensors").read_bytes() == b"an earlier run"

    (out / "alice_photos-state").mkdir()
    window.form.field("train_batch_size").setValue(1)  # any change re-checks for a resume point
    assert window.resume_button.isVisible()
    run_until_stopped(window, qtbot, start=window.resume_button.click)
    assert load_config(out / "alice_photos.toml").config.resume == str(out / "alice_photos-state")
    assert any("resuming from" in line for line in window.monitor.log_lines())


def test_pause_continue_save_sample_and_a_cancel_that_asks_first(qtbot, window: TrainingWindow, dataset: Path, monkeypatch):
    monkeypatch.setenv("FAKE_TRAINER_MODE", "interactive")
    monkeypatch.setenv("FAKE_STOP_AT", "25")
    choose(window, qtbot, dataset)
    assert window.start()
    monitor = window.monitor
    qtbot.waitUntil(lambda: monitor.plot.point_count() == 25 and monitor.pause_button.isEnabled(), timeout=TIMEOUT_MS)
    assert not window.start_button.isEnabled() and not window.form.isEnabled()

    monitor.pause_button.click()
    qtbot.waitUntil(lambda: monitor.pause_button.text() == "Continue", timeout=TIMEOUT_MS)
    assert "Paused at step 25" == monitor.status.text()
    monitor.pause_button.click()
    qtbot.waitUntil(lambda: monitor.pause_button.text() == "Pause", timeout=TIMEOUT_MS)
    saved: list[str] = []
    window.lora_saved.connect(saved.append)
    monitor.save_button.click()
    qtbot.waitUntil(lambda: bool(saved), timeout=TIMEOUT_MS)
    monitor.sample_button.click()
    qtbot.waitUntil(lambda: monitor.samples.count() == 1, timeout=TIMEOUT_MS)  # no sample prompts: only the one asked for

    questions: list[str] = []
    answer_next_dialog(qtbot, "Keep Training", questions)
    assert not window.ask_cancel()
    assert "25 steps done so far is saved" in questions[0]
    qtbot.wait(200)
    assert window.process.is_running()

    with qtbot.waitSignal(window.training_stopped, timeout=TIMEOUT_MS):
        answer_next_dialog(qtbot, "Cancel Training")
        monitor.cancel_button.click()
    assert "Cancelled after 25 steps" in monitor.status.text()
    assert saved[-1].endswith("alice_photos.safetensors")
    assert not monitor.failure.isVisible() and window.start_button.isEnabled()


@pytest.mark.parametrize(
    ("mode", "title", "hint", "last_saved"),
    [
        ("nan", "The loss became NaN at step 12", "Lower the learning rate", "alice_photos-000004.safetensors"),
        ("kill", "The training process ended unexpectedly", "running out of memory", "alice_photos-000001.safetensors"),
    ],
)
def test_a_failure_is_shown_with_its_kind_a_hint_and_the_last_saved_lora(qtbot, window: TrainingWindow, dataset: Path, monkeypatch, mode, title, hint, last_saved):
    monkeypatch.setenv("FAKE_TRAINER_MODE", mode)
    monkeypatch.setenv("FAKE_STEPS_PER_EPOCH", "3")
    monkeypatch.setenv("FAKE_TOTAL_STEPS", "40")
    choose(window, qtbot, dataset)
    window.form.field("save_every_n_epochs").setValue(1)
    stopped: list[bool] = []
    window.training_stopped.connect(lambda: stopped.append(True))
    run_until_stopped(window, qtbot)
    monitor = window.monitor
    assert monitor.failure.isVisible()
    assert monitor.failure_title.text() == title
    text = monitor.failure_text.text()
    assert hint in text
    assert "The last LoRA saved before this:" in text and text.rstrip().endswith(last_saved)
    if mode == "kill":
        assert "SIGKILL" in text and "out of memory while allocating" in text  # the signal and the child's last words
    assert stopped == [True] and window.start_button.isEnabled()


def test_opening_a_kohya_config_fills_the_form_and_reports_the_keys_not_used(qtbot, window: TrainingWindow, dataset: Path, tmp_path: Path):
    path = tmp_path / "kohya.toml"
    path.write_text(
        textwrap.dedent(
            f"""
            [model]
            pretrained_model_name_or_path = "{tmp_path / 'models' / 'other.safetensors'}"
            [dataset]
            train_data_dir = "{dataset}"
            resolution = "768,512"
            [training]
            network_dim = 48
            network_alpha = 24
            learning_rate = 3e-4
            max_train_steps = 900
            xformers = true
            colour = "blue"
            """
        ),
        encoding="utf-8",
    )
    loaded = window.open_config(path)
    assert loaded.unknown_keys == ("colour",) and loaded.ignored_keys == ("xformers",)
    form = window.form
    assert (form.width_spin.value(), form.height_spin.value()) == (768, 512)
    assert form.field("network_dim").value() == 48 and form.field("max_train_steps").value() == 900
    assert form.field("unet_lr").text() == "0.0003" and form.preset.currentData() == ""
    assert form.checkpoint.currentData() == str(tmp_path / "models" / "other.safetensors")
    assert any("Unknown settings (not used): colour" in line for line in window.monitor.log_lines())
    assert any("no effect here: xformers" in line for line in window.monitor.log_lines())
    qtbot.waitUntil(lambda: window.dataset.summary().image_count == 6, timeout=TIMEOUT_MS)


def test_wrong_settings_are_refused_before_anything_starts(qtbot, window: TrainingWindow, dataset: Path):
    assert not window.start()  # no dataset
    assert window.tabs.currentIndex() == 0 and not window.commands
    choose(window, qtbot, dataset)
    window.form.field("unet_lr").setText("1e")
    assert not window.start()
    assert window.tabs.currentIndex() == 1 and not window.commands
    window.form.field("unet_lr").setText("1e-4")
    window.form.field("output_name").setText("a/b")
    assert not window.start()
    assert any("output_name" in line for line in window.monitor.log_lines()) and not window.commands


def test_a_command_that_cannot_be_made_gives_the_models_back(qtbot, tmp_path: Path, dataset: Path):
    def broken(config: Path) -> list[str]:
        raise FileNotFoundError("the app binary is missing")

    widget = TrainingWindow(lambda: [("tiny", tmp_path / "tiny.safetensors", "sd1")], tmp_path / "Lora", broken, scan_folder)
    qtbot.addWidget(widget)  # never trains: closing it asks nothing
    choose(widget, qtbot, dataset)
    signals: list[str] = []
    widget.training_started.connect(lambda: signals.append("started"))
    widget.training_stopped.connect(lambda: signals.append("stopped"))
    assert not widget.start()
    assert signals == ["started", "stopped"] and widget.state == "idle" and widget.start_button.isEnabled()
    assert any("the app binary is missing" in line for line in widget.monitor.log_lines())


def test_closing_while_training_asks_to_keep_it_in_the_background_cancel_or_stay(qtbot, window: TrainingWindow, dataset: Path, monkeypatch):
    monkeypatch.setenv("FAKE_TRAINER_MODE", "interactive")
    choose(window, qtbot, dataset)
    assert window.start()
    qtbot.waitUntil(lambda: window.monitor.pause_button.isEnabled(), timeout=TIMEOUT_MS)

    answer_next_dialog(qtbot, "Stay")
    window.close()
    assert window.isVisible() and window.process.is_running()
    answer_next_dialog(qtbot, "Keep Training in Background")
    window.close()
    assert not window.isVisible() and window.process.is_running()
    window.show()
    with qtbot.waitSignal(window.training_stopped, timeout=TIMEOUT_MS):
        answer_next_dialog(qtbot, "Cancel Training")
        window.close()
    assert not window.isVisible()
    assert "Cancelled after 25 steps" in window.monitor.status.text()


def test_the_form_is_remembered_for_the_next_window(qtbot, window: TrainingWindow, dataset: Path, tmp_path: Path, trainer: Path):
    choose(window, qtbot, dataset)
    window.form.field("network_dim").setValue(12)
    window.form.field("trigger_word").setText("alc")
    window.close()
    again = TrainingWindow(lambda: [], tmp_path / "models" / "Lora", lambda config: [sys.executable, str(trainer), str(config)], scan_folder,
                           store=SettingsStore(tmp_path / "config" / "settings.ini"))  # fmt: skip
    qtbot.addWidget(again)  # not training: closing it asks nothing
    assert again.form.field("network_dim").value() == 12 and again.form.field("trigger_word").text() == "alc"
    qtbot.waitUntil(lambda: again.dataset.summary().image_count == 6, timeout=TIMEOUT_MS)
    again.scanner.wait(5000)


# --- the loss plot ------------------------------------------------------------------------------------


def painted_pixels(widget, colour: QColor, tolerance: int = 90) -> int:
    """Pixels of about ``colour`` (an antialiased line blends a little into the background)."""
    image = widget.grab().toImage()
    count = 0
    for y in range(image.height()):
        for x in range(image.width()):
            pixel = image.pixelColor(x, y)
            if abs(pixel.red() - colour.red()) + abs(pixel.green() - colour.green()) + abs(pixel.blue() - colour.blue()) < tolerance:
                count += 1
    return count


def test_the_loss_plot_draws_ten_thousand_steps_quickly_skips_nan_and_replaces_repeated_steps(qtbot):
    import math
    import time

    plot = LossPlot()
    qtbot.addWidget(plot)
    plot.resize(600, 260)
    plot.show()
    qtbot.waitExposed(plot)
    highlight = plot.palette().color(QPalette.ColorRole.Highlight)
    assert painted_pixels(plot, highlight) == 0  # empty: the placeholder only
    for step in range(1, 10_001):
        loss = math.nan if step % 997 == 0 else 0.1 + 0.05 * math.sin(step / 50)
        plot.add(step, loss, 0.1 if step % 1500 else math.inf)
    plot.set_total_steps(12_000)
    plot.set_epoch_boundaries(range(1000, 12_000, 1000))
    started = time.perf_counter()
    plot.grab()
    assert time.perf_counter() - started < 2.0  # decimated to one column per pixel
    assert plot.point_count() == 10_000
    assert painted_pixels(plot, highlight) > 100  # the average line is drawn
    plot.add(4001, 0.2, 0.2)  # a resumed run repeats steps: they replace what was shown
    assert plot.point_count() == 4001 and plot.points()[-1] == (4001, 0.2, 0.2)
    plot.clear()
    assert plot.point_count() == 0 and plot.epoch_boundaries() == []
    for step in range(1, 4):
        plot.add(step, math.nan, math.nan)
    assert painted_pixels(plot, highlight) == 0  # only NaN: nothing to draw, no crash
    for step in range(4, 30):  # a short run: dots and a faint line
        plot.add(step, 0.2 - step * 0.002, 0.18)
    assert painted_pixels(plot, highlight) > 50


# --- a picture for a person to look at --------------------------------------------------------------


def test_screenshot_of_the_window_mid_training(qtbot, window: TrainingWindow, dataset: Path, monkeypatch):
    """Saved to tests/artifacts/training_window.png (light) and training_loss_plot_dark.png."""
    monkeypatch.setenv("FAKE_TRAINER_MODE", "interactive")
    monkeypatch.setenv("FAKE_STEPS_PER_EPOCH", "100")
    monkeypatch.setenv("FAKE_TOTAL_STEPS", "1000")
    monkeypatch.setenv("FAKE_STOP_AT", "640")
    choose(window, qtbot, dataset)
    window.form.sample_prompts.setPlainText("alice, portrait, smiling")
    window.form.field("sample_every_n_epochs").setValue(1)
    window.resize(1360, 860)
    assert window.start()
    monitor = window.monitor
    qtbot.waitUntil(lambda: monitor.plot.point_count() == 640 and monitor.samples.count() == 6, timeout=TIMEOUT_MS)
    qtbot.waitUntil(lambda: all(not monitor.samples.item(i).icon().isNull() for i in range(6)), timeout=TIMEOUT_MS)
    window.dataset.select_path(dataset / "10_alice" / "alice_1.png")
    qtbot.waitUntil(lambda: all_thumbnails_loaded(window), timeout=TIMEOUT_MS)
    qtbot.wait(100)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = window.grab()
    assert shot.save(str(ARTIFACTS / "training_window.png"))

    dark = QPalette(monitor.plot.palette())
    for role, value in ((QPalette.ColorRole.Base, "#1e1e1e"), (QPalette.ColorRole.Window, "#2b2b2b"),
                        (QPalette.ColorRole.WindowText, "#e8e8e8"), (QPalette.ColorRole.Text, "#e8e8e8"),
                        (QPalette.ColorRole.Mid, "#5a5a5a"), (QPalette.ColorRole.Highlight, "#4aa3ff")):  # fmt: skip
        dark.setColor(role, QColor(value))
    monitor.plot.setPalette(dark)
    plot_shot = monitor.plot.grab()
    assert plot_shot.save(str(ARTIFACTS / "training_loss_plot_dark.png"))
    assert (ARTIFACTS / "training_window.png").stat().st_size > 30_000

    with qtbot.waitSignal(window.training_stopped, timeout=TIMEOUT_MS):
        window.cancel()


def test_the_window_in_chinese_and_bilingual_is_translated_and_unclipped(qtbot, window: TrainingWindow, dataset: Path, switch):
    """Screenshots tests/artifacts/training_window_zh_CN.png and _bilingual.png (CJK font installed)."""
    choose(window, qtbot, dataset)
    window.resize(1360, 860)
    english = window.start_button.text()
    for choice in ("zh_CN", "bilingual"):
        assert switch(choice) == []
        text = window.start_button.text()
        assert text != english and any("\u4e00" <= ch <= "\u9fff" for ch in text), text
        if choice == "bilingual":
            assert english in text or "Start" in text
        for button in window.findChildren(QPushButton):
            if button.isVisible() and button.text():
                assert button.fontMetrics().horizontalAdvance(button.text()) <= button.width() + 2, button.text()
        qtbot.waitUntil(lambda: all_thumbnails_loaded(window), timeout=TIMEOUT_MS)
        assert window.grab().save(str(ARTIFACTS / f"training_window_{choice}.png"))
    switch("en")
    assert window.start_button.text() == english
