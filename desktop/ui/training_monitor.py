"""The training window's live pane: progress, speed, memory, the loss plot, samples, the final check.

Everything here is driven by the child's events (:mod:`desktop.training.events`); it sends nothing.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

from PySide6.QtCore import QCoreApplication, QEvent, QSize, Qt, Slot
from PySide6.QtGui import QIcon, QImage, QPixmap
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QStyle,
    QVBoxLayout,
    QWidget,
)

from desktop.training.events import (
    OUTCOME_CANCELLED,
    Finished,
    Paused,
    Progress,
    Resumed,
    SampleSaved,
    Saved,
    Started,
    StateSaved,
    StepDone,
    TrainingEvent,
    Verified,
    Warning,
)
from desktop.ui.i18n import format_number, format_size
from desktop.ui.image_detail import QuickLook
from desktop.ui.image_view import ImageView
from desktop.ui.loss_plot import LossPlot
from desktop.ui.thumbnails import ThumbnailLoader



SAMPLE_ICON = 112
LOG_LIMIT = 2000


def duration_text(seconds: float) -> str:
    """The precision a person wants for a run's length.

    >>> duration_text(40), duration_text(96), duration_text(754), duration_text(7500)
    ('40 s', '1 min 36 s', '13 min', '2 h 05 min')
    """
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return QCoreApplication.translate("TrainingWindow", "{s} s").replace("{s}", str(seconds))
    if seconds < 600:
        text = QCoreApplication.translate("TrainingWindow", "{m} min {s} s")
        return text.replace("{m}", str(seconds // 60)).replace("{s}", str(seconds % 60))
    minutes = int(round(seconds / 60))
    if minutes < 60:
        return QCoreApplication.translate("TrainingWindow", "{m} min").replace("{m}", str(minutes))
    text = QCoreApplication.translate("TrainingWindow", "{h} h {m} min")
    return text.replace("{h}", str(minutes // 60)).replace("{m}", f"{minutes % 60:02d}")


def step_time_text(seconds_per_step: float) -> str:
    """kohya's way: "2.35 s/it" for slow steps, "3.1 it/s" for fast ones."""
    if seconds_per_step <= 0 or not math.isfinite(seconds_per_step):
        return "–"
    if seconds_per_step < 1:
        return f"{1 / seconds_per_step:.2f} it/s"
    return f"{seconds_per_step:.2f} s/it"


# --- what the running child reports -------------------------------------------------------------------


class RunMonitor(QWidget):
    """Progress, speed, memory, the loss plot, sample images, the final check, failures and a log.

    Only shows what it is told (:meth:`show_event`); the window owns the run's state.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._total = 0
        self._epochs = 0
        self._last_epoch = 0
        self._samples: dict[str, QListWidgetItem] = {}
        self._verification_paths: dict[str, ImageView] = {}
        self.loader = ThumbnailLoader(self, threads=1)
        self.loader.loaded.connect(self._on_image)
        self.quick_look: QuickLook | None = None

        self.status = QLabel()
        self.status.setObjectName("run_status")
        self.status.setTextFormat(Qt.TextFormat.PlainText)
        font = self.status.font()
        font.setPointSizeF(font.pointSizeF() * 1.15)
        font.setBold(True)
        self.status.setFont(font)
        self.progress = QProgressBar()
        self.progress.setObjectName("run_progress")
        self.progress.setTextVisible(True)
        self.epoch_label, self.speed_label, self.eta_label, self.memory_label = (QLabel() for _ in range(4))
        for name, label in (("epoch", self.epoch_label), ("speed", self.speed_label), ("eta", self.eta_label), ("memory", self.memory_label)):
            label.setObjectName(f"run_{name}")
            label.setTextFormat(Qt.TextFormat.PlainText)
        self.pause_button, self.save_button, self.sample_button, self.cancel_button = (QPushButton() for _ in range(4))
        self.pause_button.setObjectName("pause")
        self.cancel_button.setObjectName("cancel")

        self.failure = QFrame()
        self.failure.setObjectName("failure_banner")
        self.failure.setStyleSheet(
            "QFrame#failure_banner { background: rgba(220, 60, 50, 0.13); border: 1px solid rgba(220, 60, 50, 0.55); border-radius: 6px; }"
        )
        self.failure_title = QLabel()
        self.failure_title.setObjectName("failure_title")
        self.failure_title.setTextFormat(Qt.TextFormat.PlainText)
        bold = self.failure_title.font()
        bold.setBold(True)
        self.failure_title.setFont(bold)
        self.failure_text = QLabel()
        self.failure_text.setObjectName("failure_text")
        self.failure_text.setTextFormat(Qt.TextFormat.PlainText)
        self.failure_text.setWordWrap(True)
        self.failure_text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        failure_layout = QVBoxLayout(self.failure)
        failure_layout.addWidget(self.failure_title)
        failure_layout.addWidget(self.failure_text)
        self.failure.hide()

        self.plot = LossPlot()
        self.samples = QListWidget()
        self.samples.setObjectName("samples")
        self.samples.setViewMode(QListWidget.ViewMode.IconMode)
        self.samples.setFlow(QListWidget.Flow.LeftToRight)
        self.samples.setWrapping(False)
        self.samples.setMovement(QListWidget.Movement.Static)
        self.samples.setIconSize(QSize(SAMPLE_ICON, SAMPLE_ICON))
        self.samples.setGridSize(QSize(SAMPLE_ICON + 14, SAMPLE_ICON + 28))
        self.samples.setFixedHeight(SAMPLE_ICON + 48)
        self.samples.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        self.samples_title = QLabel()

        self.verification = QFrame()
        self.verification.setObjectName("verification")
        self.verification_text = QLabel()
        self.verification_text.setObjectName("verification_text")
        self.verification_text.setTextFormat(Qt.TextFormat.PlainText)
        self.verification_text.setWordWrap(True)
        self.without_view, self.with_view = ImageView(), ImageView()
        self.without_caption, self.with_caption = QLabel(), QLabel()
        pair = QHBoxLayout()
        pair.addStretch(1)
        for view, caption in ((self.without_view, self.without_caption), (self.with_view, self.with_caption)):
            view.setMinimumSize(150, 150)
            view.setMaximumSize(220, 150)
            column = QVBoxLayout()
            column.addWidget(view)
            column.addWidget(caption, 0, Qt.AlignmentFlag.AlignHCenter)
            pair.addLayout(column)
            pair.addSpacing(12)
        pair.addStretch(1)
        verification_layout = QVBoxLayout(self.verification)
        verification_layout.setContentsMargins(0, 0, 0, 0)
        verification_layout.addWidget(self.verification_text)
        verification_layout.addLayout(pair)
        self.verification.hide()

        self.log = QListWidget()
        self.log.setObjectName("training_log")
        self.log.setWordWrap(True)
        self.log.setMinimumHeight(90)
        self.log.setIconSize(QSize(16, 16))
        self.log_title = QLabel()

        stats = QHBoxLayout()
        for label in (self.epoch_label, self.speed_label, self.eta_label, self.memory_label):
            stats.addWidget(label)
            stats.addSpacing(14)
        stats.addStretch(1)
        controls = QHBoxLayout()
        for button in (self.pause_button, self.save_button, self.sample_button):
            controls.addWidget(button)
        controls.addStretch(1)
        controls.addWidget(self.cancel_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.status)
        layout.addWidget(self.progress)
        layout.addLayout(stats)
        layout.addLayout(controls)
        layout.addWidget(self.failure)
        layout.addWidget(self.plot, 3)
        layout.addWidget(self.samples_title)
        layout.addWidget(self.samples)
        layout.addWidget(self.verification)
        layout.addWidget(self.log_title)
        layout.addWidget(self.log, 1)
        self.samples.itemClicked.connect(self._open_sample)
        self.samples.itemActivated.connect(self._open_sample)
        self.retranslate()
        self.reset()

    def retranslate(self) -> None:
        self.pause_button.setText(self.tr("Pause"))
        self.pause_button.setToolTip(self.tr("Pause after the current step; the memory stays in use"))
        self.save_button.setText(self.tr("Save Now"))
        self.save_button.setToolTip(self.tr("Save a LoRA of the steps so far, then go on"))
        self.sample_button.setText(self.tr("Sample Now"))
        self.sample_button.setToolTip(self.tr("Generate the sample images now, then go on"))
        self.cancel_button.setText(self.tr("Cancel…"))
        self.cancel_button.setToolTip(self.tr("Stop training; a LoRA of the steps so far is saved (⌘.)"))
        self.samples_title.setText(self.tr("Samples"))
        self.log_title.setText(self.tr("Log"))
        self.without_caption.setText(self.tr("Without the LoRA"))
        self.with_caption.setText(self.tr("With the LoRA"))
        self.plot.set_placeholder(self.tr("The loss appears here once training starts.\nIt is noisy; the line is its moving average."))
        if not getattr(self, "_total", 0):  # nothing started yet: the status is ours, not the child's
            self.status.setText(self.tr("Not started"))

    def changeEvent(self, event: QEvent) -> None:  # noqa: N802
        if event.type() == QEvent.Type.LanguageChange:
            self.retranslate()
        super().changeEvent(event)

    def reset(self) -> None:
        """Before a run: empty plot, samples and log; nothing failed."""
        self._total = self._epochs = self._last_epoch = 0
        self.plot.clear()
        self.samples.clear()
        self._samples.clear()
        self.log.clear()
        self.failure.hide()
        self.verification.hide()
        self.without_view.set_image(None)
        self.with_view.set_image(None)
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setFormat("")
        self.status.setText(self.tr("Not started"))
        for label in (self.epoch_label, self.speed_label, self.eta_label, self.memory_label):
            label.setText("")

    def set_status(self, text: str) -> None:
        self.status.setText(text)

    # --- events ---

    def show_event(self, event: TrainingEvent) -> None:
        handler = getattr(self, f"_on_{event.name}", None)
        if handler is not None:
            handler(event)

    def _on_started(self, event: Started) -> None:
        self._total, self._epochs = event.total_steps, event.epochs
        self.plot.set_total_steps(event.total_steps)
        if event.steps_per_epoch > 0:
            self.plot.set_epoch_boundaries(range(event.steps_per_epoch, event.total_steps, event.steps_per_epoch))
        self.progress.setRange(0, max(1, event.total_steps))
        self.progress.setValue(event.resumed_from_step)
        self.progress.setFormat(self.tr("%v of %m steps"))
        text = self.tr("Training {images} images on {device}: {steps} steps in {epochs} epochs")
        self.add_log(text.replace("{images}", format_number(event.images)).replace("{device}", event.device or "?")
                     .replace("{steps}", format_number(event.total_steps)).replace("{epochs}", format_number(event.epochs)))  # fmt: skip
        if event.resumed_from_step:
            self.add_log(self.tr("Resumed from step {step}").replace("{step}", format_number(event.resumed_from_step)))

    def _on_progress(self, event: Progress) -> None:
        names = {"loading": self.tr("Loading the model…"), "caching_latents": self.tr("Preparing the images…")}
        text = names.get(event.stage, event.message or event.stage)
        if event.total > 0:
            self.progress.setRange(0, event.total)
            self.progress.setValue(event.current)
            self.progress.setFormat("%v / %m")
            text += f" {event.current} / {event.total}"
        else:
            self.progress.setRange(0, 0)  # busy
        self.status.setText(text)

    def _on_step(self, event: StepDone) -> None:
        if self.progress.maximum() != max(1, self._total) and self._total:
            self.progress.setRange(0, self._total)
            self.progress.setFormat(self.tr("%v of %m steps"))
        self.progress.setValue(min(event.step, self.progress.maximum()))
        self.plot.add(event.step, event.loss, event.average_loss)
        if self._last_epoch and event.epoch > self._last_epoch:
            self.plot.add_epoch_boundary(event.step - 1)
        self._last_epoch = event.epoch
        epochs = f" / {self._epochs}" if self._epochs else ""
        self.epoch_label.setText(self.tr("Epoch {epoch}").replace("{epoch}", f"{event.epoch}{epochs}"))
        self.speed_label.setText(step_time_text(event.seconds_per_step))
        self.eta_label.setText(self.tr("{time} left").replace("{time}", duration_text(event.eta_seconds)) if event.eta_seconds > 0 else "")
        self.memory_label.setText(self.tr("Memory {size}").replace("{size}", format_size(event.memory_bytes, 1)) if event.memory_bytes else "")
        loss = f"{event.loss:.4f}" if math.isfinite(event.loss) else "NaN"
        self.status.setText(self.tr("Training · step {step} · loss {loss}").replace("{step}", format_number(event.step)).replace("{loss}", loss))

    def _on_saved(self, event: Saved) -> None:
        reasons = {"epoch": self.tr("after epoch {epoch}"), "final": self.tr("final"), "manual": self.tr("on request"),
                   "cancelled": self.tr("of the steps so far")}  # fmt: skip
        reason = reasons.get(event.reason, event.reason).replace("{epoch}", str(event.epoch))
        self.add_log(self.tr("Saved {file} ({reason}, step {step})").replace("{file}", event.path).replace("{reason}", reason)
                     .replace("{step}", format_number(event.step)), icon=QStyle.StandardPixmap.SP_DialogSaveButton)  # fmt: skip

    def _on_state_saved(self, event: StateSaved) -> None:
        self.add_log(self.tr("Resume point saved at step {step}").replace("{step}", format_number(event.step)))

    def _on_sample(self, event: SampleSaved) -> None:
        item = QListWidgetItem(self.tr("step {step}").replace("{step}", format_number(event.step)))
        item.setData(Qt.ItemDataRole.UserRole, event.path)
        item.setToolTip(event.prompt)
        item.setIcon(self._placeholder())
        item.setTextAlignment(Qt.AlignmentFlag.AlignHCenter)
        self.samples.addItem(item)
        self.samples.scrollToItem(item)
        self._samples[event.path] = item
        self.loader.request(event.path, SAMPLE_ICON * 2)

    def _on_verified(self, event: Verified) -> None:
        ok = event.total > 0 and event.matched == event.total
        text = self.tr("Checked: {matched} of {total} layers of the LoRA load into the model.")
        text = text.replace("{matched}", format_number(event.matched)).replace("{total}", format_number(event.total))
        if event.with_lora:
            text += " " + (self.tr("It changes the image.") if event.differs else self.tr("It did not change the sample image: it may have learned too little."))
        if not ok:
            text += " " + self.tr("Some layers did not match: other apps may not load this file fully.")
        self.verification_text.setText(("✓ " if ok and (event.differs or not event.with_lora) else "⚠ ") + text)
        self._verification_paths = {}
        for path, view in ((event.without_lora, self.without_view), (event.with_lora, self.with_view)):
            view.setVisible(bool(path))
            if path:
                self._verification_paths[path] = view
                self.loader.request(path, 512)
        for caption, path in ((self.without_caption, event.without_lora), (self.with_caption, event.with_lora)):
            caption.setVisible(bool(path))
        self.verification.show()

    def _on_warning(self, event: Warning) -> None:
        self.add_log(event.message, icon=QStyle.StandardPixmap.SP_MessageBoxWarning)

    def _on_paused(self, event: Paused) -> None:
        self.status.setText(self.tr("Paused at step {step}").replace("{step}", format_number(event.step)))

    def _on_resumed(self, event: Resumed) -> None:
        self.status.setText(self.tr("Training · step {step}").replace("{step}", format_number(event.step)))

    def _on_finished(self, event: Finished) -> None:
        if event.outcome == OUTCOME_CANCELLED:
            text = self.tr("Cancelled after {steps} steps. The LoRA of the steps so far: {file}")
        else:
            text = self.tr("Finished: {steps} steps in {time}. The LoRA: {file}")
            self.progress.setValue(self.progress.maximum())
        text = text.replace("{steps}", format_number(event.steps)).replace("{time}", duration_text(event.seconds))
        text = text.replace("{file}", Path(event.lora_path).name if event.lora_path else "–")
        self.status.setText(text)
        self.add_log(text, icon=QStyle.StandardPixmap.SP_DialogApplyButton)
        self.eta_label.setText("")

    def show_failure(self, title: str, text: str) -> None:
        self.failure_title.setText(title)
        self.failure_text.setText(text)
        self.failure.show()
        self.status.setText(title)

    # --- log ---

    def add_log(self, text: str, *, icon: QStyle.StandardPixmap | None = None) -> None:
        item = QListWidgetItem(f"{time.strftime('%H:%M:%S')}  {text}")
        item.setIcon(self.style().standardIcon(icon) if icon is not None else self._blank_icon())  # rows stay aligned
        self.log.addItem(item)
        while self.log.count() > LOG_LIMIT:
            self.log.takeItem(0)
        self.log.scrollToBottom()

    def log_lines(self) -> list[str]:
        return [self.log.item(row).text() for row in range(self.log.count())]

    # --- images ---

    @Slot(str, QImage)
    def _on_image(self, key: str, image: QImage) -> None:
        if image.isNull():
            return
        item = self._samples.get(key)
        if item is not None:
            item.setIcon(QIcon(QPixmap.fromImage(image)))
        view = self._verification_paths.get(key)
        if view is not None:
            view.set_image(image)

    def _open_sample(self, item: QListWidgetItem) -> None:
        if self.quick_look is None:
            self.quick_look = QuickLook(self.window())
        path = item.data(Qt.ItemDataRole.UserRole)
        icon = item.icon()
        self.quick_look.show_image(path, f"{item.text()} · {item.toolTip()}", icon.pixmap(SAMPLE_ICON * 2) if not icon.isNull() else None)

    def _blank_icon(self) -> QIcon:
        pixmap = QPixmap(16, 16)
        pixmap.fill(Qt.GlobalColor.transparent)
        return QIcon(pixmap)

    def _placeholder(self) -> QIcon:
        pixmap = QPixmap(SAMPLE_ICON * 2, SAMPLE_ICON * 2)
        pixmap.fill(self.palette().mid().color())
        return QIcon(pixmap)
