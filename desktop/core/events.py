"""What a running job reports. Plain frozen data: safe to send across threads."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StepProgress:
    """One sampling step finished."""

    image_index: int  # 0-based index of the batch being sampled (batch count)
    batch_count: int
    step: int  # 1-based
    total_steps: int
    elapsed_s: float  # since this batch started sampling

    @property
    def fraction(self) -> float:
        done = self.image_index * self.total_steps + self.step
        return done / (self.batch_count * self.total_steps)

    @property
    def iterations_per_second(self) -> float:
        return self.step / self.elapsed_s if self.elapsed_s > 0 else 0.0


@dataclass(frozen=True)
class PreviewImage:
    """A cheap RGB preview of the image being sampled (latent resolution, 8-bit RGB rows)."""

    image_index: int  # which batch of the job
    step: int
    width: int
    height: int
    rgb: bytes  # width * height * 3 bytes, row-major

    def __post_init__(self) -> None:
        if len(self.rgb) != self.width * self.height * 3:
            raise ValueError("preview size does not match its pixel data")


@dataclass(frozen=True)
class ImageSaved:
    """A finished image is on disk (with its A1111 metadata)."""

    path: str
    seed: int
    index: int  # position in the job
    infotext: str


@dataclass(frozen=True)
class JobFailure:
    """Why a job failed, for the user: an error kind (for translation and hints) and the message."""

    kind: str  # DesktopError.code, or "out_of_memory" / "internal"
    message: str
    hint: str = ""  # a suggestion ("try a smaller size") in plain English
    user_error: bool = False  # fixing the input fixes it (the CLI exits 2)


@dataclass(frozen=True)
class JobReport:
    """How a job ended."""

    outcome: str  # "finished", "cancelled" or "failed"
    images: tuple[ImageSaved, ...] = ()
    failure: JobFailure | None = None
    warnings: tuple[str, ...] = ()
    seconds: float = 0.0
