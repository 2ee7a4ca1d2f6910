"""What a training run reports, and the commands it takes, as JSON lines between two processes.

The app runs a training in a child process (``python -m desktop train CONFIG --events``) so that an
out-of-memory crash cannot take the window down. The child writes one JSON object per line on
stdout; the app writes one command word per line on its stdin. Pure Python: the UI imports this.

>>> decode(encode(StepDone(step=3, epoch=1, loss=0.25, average_loss=0.3, lr=1e-4)))
StepDone(step=3, epoch=1, loss=0.25, average_loss=0.3, lr=0.0001, seconds_per_step=0.0, eta_seconds=0.0, memory_bytes=0)
>>> decode('{"event": "warning", "message": "3 images have no caption"}').message
'3 images have no caption'
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar

COMMANDS = ("pause", "resume", "cancel", "save", "sample")

OUTCOME_COMPLETED = "completed"
OUTCOME_CANCELLED = "cancelled"

FAILURE_NAN_LOSS = "nan_loss"
FAILURE_OUT_OF_MEMORY = "out_of_memory"
FAILURE_DATASET = "dataset"
FAILURE_CONFIG = "config"
FAILURE_INTERNAL = "internal"


class EventFormatError(ValueError):
    """A line that is not a training event (a stray print, a truncated line)."""


@dataclass(frozen=True)
class Started:
    name: ClassVar[str] = "started"
    total_steps: int
    steps_per_epoch: int
    epochs: int
    images: int
    resumed_from_step: int = 0
    device: str = ""
    output_dir: str = ""


@dataclass(frozen=True)
class Progress:
    """Preparation before the first step: loading the model, caching latents."""

    name: ClassVar[str] = "progress"
    stage: str  # "loading", "caching_latents"
    current: int = 0
    total: int = 0
    message: str = ""


@dataclass(frozen=True)
class StepDone:
    name: ClassVar[str] = "step"
    step: int  # optimizer steps done so far (1-based)
    epoch: int  # 1-based
    loss: float
    average_loss: float  # moving average over the last epoch's worth of steps, as kohya shows it
    lr: float
    seconds_per_step: float = 0.0
    eta_seconds: float = 0.0
    memory_bytes: int = 0


@dataclass(frozen=True)
class Saved:
    name: ClassVar[str] = "saved"
    path: str
    step: int
    epoch: int
    reason: str  # "epoch", "final", "manual", "cancelled"


@dataclass(frozen=True)
class StateSaved:
    name: ClassVar[str] = "state_saved"
    path: str
    step: int


@dataclass(frozen=True)
class SampleSaved:
    name: ClassVar[str] = "sample"
    path: str
    step: int
    epoch: int
    prompt: str


@dataclass(frozen=True)
class Verified:
    """The finished file, loaded back through the inference code, and one sample with and without it."""

    name: ClassVar[str] = "verified"
    path: str
    matched: int
    total: int
    with_lora: str = ""  # sample image paths ("" when sampling was skipped)
    without_lora: str = ""
    differs: bool = False


@dataclass(frozen=True)
class Warning:  # noqa: A001 - the event's name on the wire
    name: ClassVar[str] = "warning"
    message: str


@dataclass(frozen=True)
class Paused:
    name: ClassVar[str] = "paused"
    step: int


@dataclass(frozen=True)
class Resumed:
    name: ClassVar[str] = "resumed"
    step: int


@dataclass(frozen=True)
class Finished:
    name: ClassVar[str] = "finished"
    outcome: str  # OUTCOME_COMPLETED or OUTCOME_CANCELLED
    lora_path: str
    steps: int
    seconds: float
    peak_memory_bytes: int = 0


@dataclass(frozen=True)
class Failed:
    name: ClassVar[str] = "failed"
    kind: str  # FAILURE_*
    message: str
    step: int | None = None


TrainingEvent = Started | Progress | StepDone | Saved | StateSaved | SampleSaved | Verified | Warning | Paused | Resumed | Finished | Failed
_EVENT_TYPES: dict[str, type] = {
    cls.name: cls
    for cls in (Started, Progress, StepDone, Saved, StateSaved, SampleSaved, Verified, Warning, Paused, Resumed, Finished, Failed)
}


def encode(event: TrainingEvent) -> str:
    """One line of JSON (no newline). Non-finite floats are written as null: JSON has no NaN."""
    payload: dict[str, Any] = {"event": event.name}
    for key, value in asdict(event).items():
        payload[key] = None if isinstance(value, float) and not math.isfinite(value) else value
    return json.dumps(payload, ensure_ascii=False)


def decode(line: str) -> TrainingEvent:
    """The event on one line; ``EventFormatError`` for anything else. Unknown fields are ignored (newer child)."""
    try:
        payload = json.loads(line)
    except ValueError as error:
        raise EventFormatError(f"not a training event: {line[:200]!r}") from error
    if not isinstance(payload, dict) or payload.get("event") not in _EVENT_TYPES:
        raise EventFormatError(f"not a training event: {line[:200]!r}")
    cls = _EVENT_TYPES[payload["event"]]
    known = {field.name for field in fields(cls)}
    values = {key: (math.nan if value is None and key in ("loss", "average_loss") else value) for key, value in payload.items() if key in known}
    try:
        return cls(**values)
    except TypeError as error:
        raise EventFormatError(f"incomplete {payload['event']} event: {line[:200]!r}") from error


def parse_command(line: str) -> str | None:
    """The command on a control line, or None for an empty or unknown one.

    >>> parse_command(" Pause\\n"), parse_command("reboot")
    ('pause', None)
    """
    word = line.strip().lower()
    return word if word in COMMANDS else None
