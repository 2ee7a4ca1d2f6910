"""Training > Train LoRA…: pick a folder of images, choose settings, press Start, watch it learn.

The window is the trainer's remote control. It never trains itself: Start writes the run's settings
as a kohya-style TOML into the output folder and runs the trainer in a child process on it
(:class:`TrainingProcess`), so that an out-of-memory kill takes the trainer down, not the app. The
child's events drive the progress, the loss plot, the samples and the final check; the buttons
send it one-word commands (pause, resume, cancel, save, sample).

Three parts, each small: :class:`TrainingForm` (presets and every setting, with help texts),
:class:`RunMonitor` (what the running child reports), and :class:`TrainingWindow`, which owns the
run's state and the signals the app listens to (it unloads its own models while a run lasts).
"""

from __future__ import annotations

import platform
import re
import sys
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from PySide6.QtCore import QEvent, Qt, QTimer, QUrl, Signal, Slot
from PySide6.QtGui import QAction, QCloseEvent, QDesktopServices, QDragEnterEvent, QDropEvent, QKeySequence
from PySide6.QtWidgets import (
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QMessageBox,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QSplitter,
    QStyle,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from desktop.core.settings import Setting
from desktop.training.config import (
    ConfigError,
    LoadedConfig,
    TrainingConfig,
    config_from_mapping,
    load_config,
    save_config,
    to_toml,
    validate,
)
from desktop.training.estimate import (
    NOTE_CPU,
    NOTE_HALF_ON_CPU,
    NOTE_MAX_STEPS,
    NOTE_NO_DATASET,
    NOTE_OVER_NATIVE,
    NOTE_UNKNOWN_FAMILY,
    DatasetSummary,
    Estimate,
    estimate_run,
    steps_per_epoch,
    total_steps,
)
from desktop.training.events import (
    FAILURE_CONFIG,
    FAILURE_DATASET,
    FAILURE_INTERNAL,
    FAILURE_NAN_LOSS,
    FAILURE_OUT_OF_MEMORY,
    Failed,
    Finished,
    Paused,
    Resumed,
    Saved,
    StateSaved,
    StepDone,
    TrainingEvent,
)
from desktop.ui.i18n import format_number, format_size
from desktop.ui.settings_store import SettingsStore
from desktop.ui.training_dataset_view import DatasetScanner, DatasetView, ScanDataset
from desktop.ui.training_process import CANCEL_GRACE_MS, FAILURE_CRASHED, FAILURE_NOT_STARTED, CommandFor, TrainingProcess

# (name, path) or (name, path, family) of each checkpoint the app can load; family as ModelFamily values.
CheckpointList = Callable[[], Sequence[tuple]]

# Remembered between sessions (declared here: only this window reads them).
LAST_CONFIG = Setting[str]("training/last_config", "")  # the form as TOML
_GEOMETRY_KEY = "training/geometry"
_SPLITTER_KEY = "training/splitter"

_OUTPUT_NAME = re.compile(r"[^\w\-. ]+", re.UNICODE)
from desktop.ui.training_form import TrainingForm
from desktop.ui.training_monitor import RunMonitor, duration_text, step_time_text


def likely_device(device: str) -> str:
    """The device kind a run will use, for the estimate: "auto" is the Apple GPU on an Apple-silicon
    Mac; elsewhere the UI cannot tell without torch, so it assumes the CPU (the slow, safe guess)."""
    if device and device != "auto":
        return device
    return "mps" if sys.platform == "darwin" and platform.machine() == "arm64" else "cpu"


# --- the window ----------------------------------------------------------------------------------------

IDLE, RUNNING, PAUSED, STOPPING = "idle", "running", "paused", "stopping"


class TrainingWindow(QMainWindow):
    """Train LoRA…: dataset and settings on the left, the run on the right, Start at the bottom.

    ``training_started`` just before the child starts (the app unloads its inference models),
    ``training_stopped`` when it has exited (the app may reload them), ``lora_saved(str)`` for every
    LoRA file written (the model browser refreshes).
    """

    training_started = Signal()
    training_stopped = Signal()
    lora_saved = Signal(str)

    def __init__(
        self,
        checkpoints: CheckpointList,
        default_output_dir: Path,
        command_for: CommandFor,
        scan_dataset: ScanDataset,
        *,
        store: SettingsStore | None = None,
        device: str = "cpu",
        parent: QWidget | None = None,
        cancel_grace_ms: int = CANCEL_GRACE_MS,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("TrainingWindow")
        self.setAcceptDrops(True)
        self._checkpoints = checkpoints
        self._store = store
        self._device = device  # "mps", "cuda", "cpu" (or "auto": guessed, see likely_device)
        self.state = IDLE
        self._last_lora = ""
        self._last_state = ""
        self._last_step = 0
        self._config_path: Path | None = None
        self._scanned_key: tuple | None = None
        self._auto_name = ""  # the LoRA name taken from the dataset folder (replaced when the folder changes)
        self.estimate: Estimate | None = None

        self.form = TrainingForm(default_output_dir)
        self.dataset = DatasetView()
        self.monitor = RunMonitor()
        self.process = TrainingProcess(command_for, self, cancel_grace_ms=cancel_grace_ms)
        self.scanner = DatasetScanner(scan_dataset, self)
        self._build()
        self._build_menus()
        self._connect()
        self.retranslate()
        self._restore()
        self.refresh_checkpoints()
        self._update_controls()

    # --- construction ---

    def _build(self) -> None:
        settings_scroll = QScrollArea()
        settings_scroll.setObjectName("settings_scroll")
        settings_scroll.setWidgetResizable(True)
        settings_scroll.setFrameShape(QFrame.Shape.NoFrame)
        settings_scroll.setWidget(self.form)
        self.tabs = QTabWidget()
        self.tabs.setObjectName("training_tabs")
        self.tabs.addTab(self.dataset, "")
        self.tabs.addTab(settings_scroll, "")
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(self.tabs)
        self.splitter.addWidget(self.monitor)
        self.splitter.setStretchFactor(0, 2)
        self.splitter.setStretchFactor(1, 3)
        self.splitter.setChildrenCollapsible(False)

        self.estimate_label = QLabel()
        self.estimate_label.setObjectName("estimate")
        self.estimate_label.setWordWrap(True)
        self.estimate_label.setTextFormat(Qt.TextFormat.PlainText)
        self.estimate_label.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self.resume_button = QPushButton()
        self.resume_button.setObjectName("resume")
        self.start_button = QPushButton()
        self.start_button.setObjectName("start")
        self.start_button.setDefault(True)
        self.start_button.setMinimumHeight(38)
        font = self.start_button.font()
        font.setBold(True)
        self.start_button.setFont(font)
        bottom = QHBoxLayout()
        bottom.addWidget(self.estimate_label, 1)
        bottom.addWidget(self.resume_button)
        bottom.addWidget(self.start_button)
        central = QWidget()
        layout = QVBoxLayout(central)
        layout.addWidget(self.splitter, 1)
        layout.addLayout(bottom)
        self.setCentralWidget(central)
        self.resize(1280, 820)

        self._estimate_timer = QTimer(self)
        self._estimate_timer.setSingleShot(True)
        self._estimate_timer.setInterval(120)
        self._scan_timer = QTimer(self)
        self._scan_timer.setSingleShot(True)
        self._scan_timer.setInterval(400)  # typing a trigger word rescans once, when the typing pauses

    def _build_menus(self) -> None:
        def action(shortcut: QKeySequence | str | None = None) -> QAction:
            item = QAction(self)
            if shortcut is not None:
                item.setShortcut(QKeySequence(shortcut))
            return item

        self.open_action = action(QKeySequence.StandardKey.Open)
        self.save_config_action = action("Ctrl+Shift+S")
        self.save_caption_action = action(QKeySequence.StandardKey.Save)
        self.choose_folder_action = action("Ctrl+Shift+O")
        self.reveal_output_action = action()
        self.close_action = action(QKeySequence.StandardKey.Close)
        self.start_action = action()
        self.start_action.setShortcuts([QKeySequence("Ctrl+Return"), QKeySequence("Ctrl+Enter")])
        self.resume_action = action()
        self.pause_action = action()
        self.save_now_action = action()
        self.sample_now_action = action()
        self.cancel_action = action("Ctrl+.")
        bar = self.menuBar()
        self.file_menu = bar.addMenu("")
        for item in (self.open_action, self.save_config_action, None, self.choose_folder_action, self.save_caption_action, None,
                     self.reveal_output_action, None, self.close_action):  # fmt: skip
            self.file_menu.addSeparator() if item is None else self.file_menu.addAction(item)
        self.training_menu = bar.addMenu("")
        for item in (self.start_action, self.resume_action, None, self.pause_action, self.save_now_action, self.sample_now_action, None,
                     self.cancel_action):  # fmt: skip
            self.training_menu.addSeparator() if item is None else self.training_menu.addAction(item)

    def _connect(self) -> None:
        self.form.changed.connect(self._on_form_change)
        self.dataset.folder_chosen.connect(self._on_folder_chosen)
        self.dataset.problem.connect(self.show_error)
        self.dataset.caption_saved.connect(self._on_caption_saved)
        self.scanner.scanned.connect(self._on_scanned)
        self.scanner.failed.connect(self._on_scan_failed)
        self._estimate_timer.timeout.connect(self._update_estimate)
        self._scan_timer.timeout.connect(self.rescan)
        self.process.event_received.connect(self._on_training_event)
        self.process.log_line.connect(lambda line: self.monitor.add_log(line))
        self.process.process_ended.connect(self._on_process_ended)
        self.start_button.clicked.connect(self.start)
        self.start_action.triggered.connect(self.start)
        self.resume_button.clicked.connect(lambda: self.start(resume=True))
        self.resume_action.triggered.connect(lambda: self.start(resume=True))
        for button, action in ((self.monitor.pause_button, self.pause_action),):
            button.clicked.connect(self.toggle_pause)
            action.triggered.connect(self.toggle_pause)
        self.monitor.save_button.clicked.connect(lambda: self.process.send("save"))
        self.save_now_action.triggered.connect(lambda: self.process.send("save"))
        self.monitor.sample_button.clicked.connect(lambda: self.process.send("sample"))
        self.sample_now_action.triggered.connect(lambda: self.process.send("sample"))
        self.monitor.cancel_button.clicked.connect(self.ask_cancel)
        self.cancel_action.triggered.connect(self.ask_cancel)
        self.open_action.triggered.connect(self._open_config_dialog)
        self.save_config_action.triggered.connect(self._save_config_dialog)
        self.save_caption_action.triggered.connect(self.dataset.save_caption)
        self.choose_folder_action.triggered.connect(self.dataset.choose_folder)
        self.reveal_output_action.triggered.connect(self._reveal_output)
        self.close_action.triggered.connect(self.close)

    def retranslate(self) -> None:
        self.setWindowTitle(self.tr("Train LoRA"))
        self.tabs.setTabText(0, self.tr("Dataset"))
        self.tabs.setTabText(1, self.tr("Settings"))
        self.start_button.setText(self.tr("Start Training"))
        self.start_button.setToolTip(self.tr("Save the settings next to the LoRA and start (⌘↩)"))
        self.resume_button.setText(self.tr("Resume"))
        self.resume_button.setToolTip(self.tr("Continue the last run of this LoRA from its last resume point"))
        self.file_menu.setTitle(self.tr("File"))
        self.training_menu.setTitle(self.tr("Training"))
        for item, text in (
            (self.open_action, self.tr("Open Settings…")),
            (self.save_config_action, self.tr("Save Settings As…")),
            (self.choose_folder_action, self.tr("Choose Image Folder…")),
            (self.save_caption_action, self.tr("Save Caption")),
            (self.reveal_output_action, self.tr("Reveal Output Folder")),
            (self.close_action, self.tr("Close Window")),
            (self.start_action, self.tr("Start Training")),
            (self.resume_action, self.tr("Resume Training")),
            (self.save_now_action, self.tr("Save Now")),
            (self.sample_now_action, self.tr("Sample Now")),
            (self.cancel_action, self.tr("Cancel Training…")),
        ):
            item.setText(text)
        self._update_pause_text()
        self._update_counts()
        self._update_estimate()

    def changeEvent(self, event: QEvent) -> None:  # noqa: N802
        if event.type() == QEvent.Type.LanguageChange:
            self.retranslate()
        super().changeEvent(event)

    # --- public ---

    def config(self) -> TrainingConfig:
        """The run the form describes (dataset folder from the dataset pane); not yet validated."""
        return replace(self.form.config(), train_data_dir=self.dataset.folder.text().strip())

    def set_config(self, config: TrainingConfig) -> None:
        self.form.set_config(config)
        self.dataset.set_folder(config.train_data_dir)
        self.rescan()

    def open_config(self, path: Path) -> LoadedConfig:
        """Load a TOML (ours or kohya's) into the form; the keys it could not use are in the log and returned."""
        loaded = load_config(path)
        self.form.preset.setCurrentIndex(0)  # "Custom": the file's values, not a preset's
        self.set_config(replace(loaded.config, resume=""))
        for note in loaded.notes():
            self.monitor.add_log(note, icon=QStyle.StandardPixmap.SP_MessageBoxWarning)
        return loaded

    def set_dataset_folder(self, folder: str | Path) -> None:
        """Use ``folder`` as the training images (the picker, a drop, a test)."""
        self.dataset.set_folder(str(folder))
        self._on_folder_chosen(str(folder))

    def refresh_checkpoints(self) -> None:
        self.form.set_checkpoints(list(self._checkpoints()))

    def is_training(self) -> bool:
        return self.process.is_running()

    def state_folder(self, config: TrainingConfig | None = None) -> Path:
        """Where the trainer keeps a run's resume state: ``<output_dir>/<output_name>-state``."""
        config = config or self.config()
        return config.output_folder() / f"{config.output_name}-state"

    def config_path(self) -> Path | None:
        """The TOML the running (or last) run was started with."""
        return self._config_path

    def start(self, *, resume: bool = False) -> bool:
        """Validate, save the settings as ``<output_dir>/<output_name>.toml`` and start the trainer on it."""
        if self.process.is_running():
            return False
        if not self.dataset.save_caption_if_changed():
            return False
        for key, text in self.form.problems():
            self.show_error(self.tr("“{text}” is not a number.").replace("{text}", text))
            self.tabs.setCurrentIndex(1)
            self.form.focus_field(key)
            return False
        if not self.scanner.is_scanning() and self.config().train_data_dir and self.dataset.summary().image_count == 0:
            self.show_error(self.tr("There are no images to train on in {folder}.").replace("{folder}", self.config().train_data_dir))
            self.tabs.setCurrentIndex(0)
            return False
        try:
            config = validate(self.config())
        except ConfigError as error:
            self.show_error(str(error))
            key = str(error.details.get("key", ""))
            if key == "train_data_dir":
                self.tabs.setCurrentIndex(0)
                self.dataset.folder.setFocus()
            else:
                self.tabs.setCurrentIndex(1)
                self.form.focus_field(key)
            return False
        state = self.state_folder(config)
        if resume:
            if not state.is_dir():
                self.show_error(self.tr("There is no resume point for this LoRA in {folder}.").replace("{folder}", str(state)))
                return False
            config = replace(config, resume=str(state))
        else:
            config = replace(config, resume="")
            lora = config.output_folder() / f"{config.output_name}.safetensors"
            if lora.exists() and not self._ask(
                self.tr("Replace the LoRA?"),
                self.tr("{file} already exists. Training replaces it (and its resume point).").replace("{file}", str(lora)),
                self.tr("Replace"),
            ):
                return False
        path = config.output_folder() / f"{config.output_name}.toml"
        try:
            save_config(config, path)
        except OSError as error:
            self.show_error(self.tr("Cannot save the settings to {file}: {error}").replace("{file}", str(path)).replace("{error}", error.strerror or str(error)))
            return False
        self._config_path = path
        self._remember(config)
        self.monitor.reset()
        self._last_lora, self._last_state, self._last_step = "", "", 0
        self.monitor.set_status(self.tr("Starting…"))
        self.monitor.add_log(self.tr("Settings saved to {file}").replace("{file}", str(path)))
        self.state = RUNNING
        self._update_controls()
        self.training_started.emit()
        try:
            self.process.start(path)
        except Exception as error:  # noqa: BLE001 - the app's command_for failed: say so, and give the models back
            self.state = IDLE
            self._update_controls()
            self.training_stopped.emit()
            self.show_error(self.tr("The trainer could not be started: {error}").replace("{error}", str(error)))
            return False
        return True

    def toggle_pause(self) -> None:
        if self.state == RUNNING:
            self.process.send("pause")
        elif self.state == PAUSED:
            self.process.send("resume")

    def ask_cancel(self) -> bool:
        """Cancel after the user agrees: the trainer saves a LoRA of the steps so far, then stops."""
        if not self.process.is_running() or self.state == STOPPING:
            return False
        text = self.tr(
            "Stop training now? A LoRA of the {steps} steps done so far is saved, and you can resume the run later."
        ).replace("{steps}", format_number(self._last_step))
        if not self._ask(self.tr("Cancel training?"), text, self.tr("Cancel Training"), keep=self.tr("Keep Training")):
            return False
        self.cancel()
        return True

    def cancel(self) -> None:
        """Cancel without asking (the window closing, the app quitting)."""
        if not self.process.is_running():
            return
        self.state = STOPPING
        self.process.cancel()
        self.monitor.set_status(self.tr("Stopping: saving the steps so far…"))
        self._update_controls()

    def shutdown(self, timeout_ms: int = CANCEL_GRACE_MS) -> None:
        """At app quit: cancel a running training and wait a bounded time for its save."""
        self.scanner.wait(2000)
        self.process.shutdown(timeout_ms)

    def show_error(self, message: str) -> None:
        box = QMessageBox(QMessageBox.Icon.Warning, self.tr("Train LoRA"), "", QMessageBox.StandardButton.Ok, self)
        box.setTextFormat(Qt.TextFormat.PlainText)
        box.setText(message)
        box.open()  # not exec(): a training event may arrive while it is up
        self.monitor.add_log(message, icon=QStyle.StandardPixmap.SP_MessageBoxWarning)

    # --- events from the child ---

    @Slot(object)
    def _on_training_event(self, event: TrainingEvent) -> None:
        self.monitor.show_event(event)
        if isinstance(event, StepDone):
            self._last_step = event.step
            return  # the common case, many times a second on a GPU: nothing else changes
        if isinstance(event, Saved):
            self._last_lora = event.path
            self.lora_saved.emit(event.path)
        elif isinstance(event, StateSaved):
            self._last_state = event.path
        elif isinstance(event, Paused):
            self.state = PAUSED
        elif isinstance(event, Resumed):
            self.state = RUNNING
        elif isinstance(event, Finished):
            if event.lora_path and event.lora_path != self._last_lora:
                self._last_lora = event.lora_path
                self.lora_saved.emit(event.lora_path)
        elif isinstance(event, Failed):
            self._show_failure(event)
        self._update_controls()

    def _show_failure(self, event: Failed) -> None:
        step = format_number(event.step) if event.step is not None else "?"
        titles = {
            FAILURE_NAN_LOSS: self.tr("The loss became NaN at step {step}"),
            FAILURE_OUT_OF_MEMORY: self.tr("Out of memory at step {step}"),
            FAILURE_DATASET: self.tr("The dataset cannot be used"),
            FAILURE_CONFIG: self.tr("A setting cannot be used"),
            FAILURE_INTERNAL: self.tr("The trainer stopped with an error"),
            FAILURE_CRASHED: self.tr("The training process ended unexpectedly"),
            FAILURE_NOT_STARTED: self.tr("The trainer could not be started"),
        }
        hints = {
            FAILURE_NAN_LOSS: self.tr("Lower the learning rate (halve it), or set the base model precision to fp32 (Settings > Advanced)."),
            FAILURE_OUT_OF_MEMORY: self.tr("Use a smaller batch size or resolution, or turn on gradient checkpointing; closing other apps helps too."),
            FAILURE_DATASET: self.tr("Check the image folder: it needs readable images, and captions next to them."),
            FAILURE_CONFIG: self.tr("Correct the setting named below and start again."),
            FAILURE_CRASHED: self.tr("This is usually the system running out of memory: use a smaller batch size or resolution, or turn on gradient checkpointing."),
        }  # fmt: skip
        title = titles.get(event.kind, self.tr("Training failed ({kind})").replace("{kind}", event.kind)).replace("{step}", step)
        parts = [hints[event.kind]] if event.kind in hints else []
        parts.append(event.message.strip())
        if self._last_lora:
            parts.append(self.tr("The last LoRA saved before this: {file}").replace("{file}", self._last_lora))
        if self._last_state:
            parts.append(self.tr("Resume continues from the last resume point."))
        self.monitor.show_failure(title, "\n\n".join(part for part in parts if part))
        self.monitor.add_log(f"{title}: {event.message.strip()}", icon=QStyle.StandardPixmap.SP_MessageBoxCritical)

    @Slot(int, bool)
    def _on_process_ended(self, _exit_code: int, _crashed: bool) -> None:
        self.state = IDLE
        self._update_controls()
        self.training_stopped.emit()

    # --- dataset ---

    def rescan(self) -> None:
        config = self.config()
        self._scanned_key = _scan_key(config)
        if not config.train_data_dir:
            self.dataset.set_summary(DatasetSummary())
            self._after_summary()
            return
        self.dataset.counts.setText(self.tr("Reading the folder…"))
        self.scanner.scan(config)

    def _on_folder_chosen(self, folder: str) -> None:
        config = self.form.config()
        if folder and config.output_name in ("", TrainingConfig().output_name, self._auto_name):
            # A new dataset names its LoRA, until the user types a name of their own.
            self._auto_name = _OUTPUT_NAME.sub("_", Path(folder).name).strip(" .") or TrainingConfig().output_name
            self.form.field("output_name").setText(self._auto_name)
        self.rescan()

    @Slot(object)
    def _on_scanned(self, summary: DatasetSummary) -> None:
        self.dataset.set_summary(summary)
        self._after_summary()

    @Slot(str)
    def _on_scan_failed(self, message: str) -> None:
        self.dataset.set_scan_error(message)
        self._after_summary()

    @Slot(str)
    def _on_caption_saved(self, path: str) -> None:
        self.monitor.add_log(self.tr("Caption saved: {file}").replace("{file}", Path(path).name))
        self._update_counts()  # one fewer image without a caption

    def _after_summary(self) -> None:
        self._update_counts()
        self._update_estimate()

    def _update_counts(self) -> None:
        summary = self.dataset.summary()
        config = self.config()
        if summary.image_count == 0:
            self.dataset.counts.setText(self.tr("No images yet: choose a folder, or drop one on this window.") if not config.train_data_dir
                                        else self.tr("No images found in this folder."))  # fmt: skip
            return
        text = self.tr("{images} images × repeats = {repeated} steps per epoch").replace("{images}", format_number(summary.image_count))
        text = text.replace("{repeated}", format_number(summary.steps_per_epoch or summary.repeated_count))
        per_epoch = steps_per_epoch(summary, config.train_batch_size, config.gradient_accumulation_steps)
        text += "\n" + self.tr("Batch size {batch}: {per_epoch} steps per epoch, {total} steps in all").replace(
            "{batch}", str(config.train_batch_size)).replace("{per_epoch}", format_number(per_epoch)).replace(
            "{total}", format_number(total_steps(config, summary)))  # fmt: skip
        missing = summary.uncaptioned_count
        if missing:
            text += "\n" + self.tr("{count} without a caption (marked !)").replace("{count}", format_number(missing))
        self.dataset.counts.setText(text)

    # --- estimate ---

    def _update_estimate(self) -> None:
        config = self.config()
        family = self.form.family() or "unknown"
        device = likely_device(config.device if config.device != "auto" else self._device)
        try:
            estimate = estimate_run(family, config, self.dataset.summary(), device)
        except (ValueError, ZeroDivisionError):
            self.estimate_label.setText("")
            return
        self.estimate = estimate
        notes = {
            NOTE_CPU: self.tr("On the CPU a full-size model takes hours."),
            NOTE_UNKNOWN_FAMILY: self.tr("The base model's type is not known: estimated as SD1.5."),
            NOTE_MAX_STEPS: self.tr("Max steps overrides the epochs."),
            NOTE_OVER_NATIVE: self.tr("Above the model's native resolution: slower and more memory."),
            NOTE_HALF_ON_CPU: self.tr("fp16/bf16 does not speed up the CPU."),
        }
        if estimate.total_steps == 0:
            head = self.tr("Choose a folder of images to see how long training takes.")
        else:
            head = self.tr("About {time}: {steps} steps at {speed} · memory about {memory} · LoRA file {size}")
            head = head.replace("{time}", duration_text(estimate.total_seconds)).replace("{steps}", format_number(estimate.total_steps))
            head = head.replace("{speed}", step_time_text(estimate.seconds_per_step)).replace("{memory}", format_size(estimate.peak_memory_bytes, 1))
            head = head.replace("{size}", format_size(estimate.lora_file_bytes, 0))
        shown = [notes[note] for note in estimate.notes if note in notes and note != NOTE_NO_DATASET]
        self.estimate_label.setText(head + ("\n" + " ".join(shown) if shown else ""))
        self.estimate_label.setToolTip(self.tr("A rough estimate from the model's size and the device; the first steps show the real speed."))

    # --- reactions ---

    def _on_form_change(self) -> None:
        self._estimate_timer.start()
        self._update_counts()
        self._update_controls()
        self.dataset.caption_extension = self.form.config().caption_extension
        if self._scanned_key is not None and _scan_key(self.config()) != self._scanned_key:
            self._scan_timer.start()

    def _update_controls(self) -> None:
        running = self.process.is_running()
        busy = running or self.state != IDLE
        self.start_button.setEnabled(not busy)
        self.start_action.setEnabled(not busy)
        has_state = not busy and self.state_folder().is_dir()
        self.resume_button.setVisible(has_state)
        self.resume_action.setEnabled(has_state)
        controls = running and self.state in (RUNNING, PAUSED)
        for widget in (self.monitor.pause_button, self.pause_action, self.monitor.save_button, self.save_now_action,
                       self.monitor.sample_button, self.sample_now_action, self.monitor.cancel_button, self.cancel_action):  # fmt: skip
            widget.setEnabled(controls)
        self.form.setEnabled(not busy)
        self.dataset.folder.setEnabled(not busy)
        self.dataset.choose_button.setEnabled(not busy)
        self.choose_folder_action.setEnabled(not busy)
        self.open_action.setEnabled(not busy)
        self._update_pause_text()

    def _update_pause_text(self) -> None:
        text = self.tr("Continue") if self.state == PAUSED else self.tr("Pause")
        self.monitor.pause_button.setText(text)
        self.pause_action.setText(text)

    def _ask(self, title: str, text: str, yes: str, *, keep: str | None = None) -> bool:
        box = QMessageBox(QMessageBox.Icon.Question, title, "", QMessageBox.StandardButton.NoButton, self)
        box.setTextFormat(Qt.TextFormat.PlainText)
        box.setText(text)
        accept = box.addButton(yes, QMessageBox.ButtonRole.DestructiveRole)
        stay = box.addButton(keep or self.tr("Cancel"), QMessageBox.ButtonRole.RejectRole)
        box.setDefaultButton(stay)
        box.setEscapeButton(stay)
        box.exec()
        return box.clickedButton() is accept

    def _open_config_dialog(self) -> None:
        path, _filter = QFileDialog.getOpenFileName(self, self.tr("Open training settings"), str(self.form.default_output_dir),
                                                    self.tr("Training settings (*.toml)"))  # fmt: skip
        if not path:
            return
        try:
            loaded = self.open_config(Path(path))
        except ConfigError as error:
            self.show_error(str(error))
            return
        if loaded.notes():
            self.show_error("\n".join(loaded.notes()))

    def _save_config_dialog(self) -> None:
        config = self.config()
        suggested = str(config.output_folder() / f"{config.output_name}.toml")
        path, _filter = QFileDialog.getSaveFileName(self, self.tr("Save training settings"), suggested, self.tr("Training settings (*.toml)"))
        if not path:
            return
        try:
            save_config(config, Path(path))
        except OSError as error:
            self.show_error(self.tr("Cannot save the settings to {file}: {error}").replace("{file}", path).replace("{error}", error.strerror or str(error)))

    def _reveal_output(self) -> None:
        folder = self.config().output_folder()
        folder.mkdir(parents=True, exist_ok=True)
        QDesktopServices.openUrl(QUrl.fromLocalFile(str(folder)))

    # --- persistence ---

    def _remember(self, config: TrainingConfig) -> None:
        if self._store is None:
            return
        self._store.set(LAST_CONFIG, to_toml(replace(config, resume="")))
        self._store.set_bytes(_GEOMETRY_KEY, self.saveGeometry())
        self._store.set_bytes(_SPLITTER_KEY, self.splitter.saveState())
        self._store.sync()

    def _restore(self) -> None:
        if self._store is None:
            return
        text = self._store.get(LAST_CONFIG)
        if text:
            try:
                config = config_from_mapping(tomllib.loads(text)).config
            except (tomllib.TOMLDecodeError, ConfigError):
                config = None  # an old or damaged entry: the defaults
            if config is not None:
                self.form.preset.setCurrentIndex(0)
                self.form.set_config(config)
                self.dataset.set_folder(config.train_data_dir)
                if config.train_data_dir:
                    self.rescan()
        geometry = self._store.get_bytes(_GEOMETRY_KEY)
        if geometry is not None:
            self.restoreGeometry(geometry)
        splitter = self._store.get_bytes(_SPLITTER_KEY)
        if splitter is not None:
            self.splitter.restoreState(splitter)

    # --- Qt events ---

    def showEvent(self, event) -> None:  # noqa: N802
        if not self.is_training():
            self.refresh_checkpoints()
        super().showEvent(event)

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802
        """While training: keep it running in the background, cancel it, or stay."""
        if self.process.is_running() and self.state != STOPPING:
            choice = self._ask_close()
            if choice == "stay":
                event.ignore()
                return
            if choice == "cancel":
                self.cancel()
        self.dataset.save_caption_if_changed()
        self._remember(self.config())
        super().closeEvent(event)

    def _ask_close(self) -> str:
        box = QMessageBox(QMessageBox.Icon.Question, self.tr("Training is running"), "", QMessageBox.StandardButton.NoButton, self)
        box.setTextFormat(Qt.TextFormat.PlainText)
        box.setText(self.tr("Training goes on in the background when this window closes. Open it again from Training > Train LoRA… to watch it."))
        background = box.addButton(self.tr("Keep Training in Background"), QMessageBox.ButtonRole.AcceptRole)
        cancel = box.addButton(self.tr("Cancel Training"), QMessageBox.ButtonRole.DestructiveRole)
        stay = box.addButton(self.tr("Stay"), QMessageBox.ButtonRole.RejectRole)
        box.setDefaultButton(background)
        box.setEscapeButton(stay)
        box.exec()
        clicked = box.clickedButton()
        return "background" if clicked is background else "cancel" if clicked is cancel else "stay"

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802
        if self.state == IDLE and _dropped_folder(event.mimeData()) is not None:
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802
        folder = _dropped_folder(event.mimeData())
        if folder is None or self.state != IDLE:
            return
        event.acceptProposedAction()
        self.tabs.setCurrentIndex(0)
        self.set_dataset_folder(folder)


def _dropped_folder(mime) -> Path | None:
    """The first local folder among dropped URLs (image files are not a dataset)."""
    if not mime.hasUrls():
        return None
    for url in mime.urls():
        if url.isLocalFile() and Path(url.toLocalFile()).is_dir():
            return Path(url.toLocalFile())
    return None


def _scan_key(config: TrainingConfig) -> tuple:
    """The settings a dataset scan depends on: a change to any of them rescans."""
    return (config.train_data_dir, config.reg_data_dir, config.caption_extension, config.trigger_word, config.resolution,
            config.enable_bucket, config.min_bucket_reso, config.max_bucket_reso, config.bucket_reso_steps)  # fmt: skip


__all__ = ["LAST_CONFIG", "RunMonitor", "TrainingForm", "TrainingWindow", "duration_text", "step_time_text"]
