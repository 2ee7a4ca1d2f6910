"""How long a training run will take and how much memory it needs, before it starts (rough, pure Python).

The window shows this next to the Start button, so it must be instant and must not import torch:
it works from parameter counts of each architecture, the run's settings and the dataset summary,
and a small table of seconds per step per device kind. Every number here is a rough guide, not
a promise: a real step's time depends on the exact chip, thermal state, attention kernels and
bucket shapes. The table lives in one place (:data:`SECONDS_PER_STEP`) so measured numbers can
replace the guesses.

>>> summary = DatasetSummary(image_count=20, repeated_count=200, steps_per_epoch=200)
>>> config = TrainingConfig(max_train_epochs=10, train_batch_size=2, mixed_precision="fp16")
>>> estimate = estimate_run("sd1", config, summary, "cuda")
>>> estimate.total_steps, round(estimate.seconds_per_step, 2)
(1000, 0.6)
>>> steps_per_epoch(summary, batch_size=3)
67
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from desktop.training.config import ConfigError, TrainingConfig

# --------------------------------------------------------------------------- the dataset, as the window sees it


class DatasetImage(NamedTuple):
    """One training image: its caption file's text (None when it has none), its folder's repeats."""

    path: Path
    caption: str | None
    repeats: int
    folder: str  # the folder's name as written ("10_alice"), for grouping and display


@dataclass(frozen=True)
class DatasetSummary:
    """What a dataset scan found; made by ``desktop.training.dataset`` off the GUI thread.

    ``steps_per_epoch`` is for batch size 1 (one step per repeated image, doubled with
    regularisation images as kohya does); :func:`steps_per_epoch` gives it for other batch sizes.
    ``bucket_sizes`` (repeated images per aspect-ratio bucket), when the scan knows them, make
    that exact: kohya never mixes buckets in a batch, so each bucket rounds up on its own.
    """

    image_count: int = 0
    repeated_count: int = 0
    steps_per_epoch: int = 0
    images: tuple[DatasetImage, ...] = ()
    warnings: tuple[str, ...] = ()
    bucket_sizes: tuple[int, ...] = ()
    regularisation_count: int = 0  # regularisation images found (they double an epoch's steps)

    @property
    def uncaptioned_count(self) -> int:
        return sum(1 for image in self.images if image.caption is None)


def steps_per_epoch(summary: DatasetSummary, batch_size: int = 1, gradient_accumulation_steps: int = 1) -> int:
    """Optimizer steps in one epoch, as kohya counts them (a partial batch is a step).

    >>> steps_per_epoch(DatasetSummary(repeated_count=10, steps_per_epoch=10, bucket_sizes=(7, 3)), 4)
    3
    >>> steps_per_epoch(DatasetSummary(repeated_count=10, steps_per_epoch=20, regularisation_count=5), 4)
    5
    """
    batch_size = max(1, batch_size)
    factor = 2 if summary.regularisation_count else 1
    if summary.bucket_sizes:
        batches = sum(math.ceil(size / batch_size) for size in summary.bucket_sizes) * factor
    else:
        images = summary.steps_per_epoch or summary.repeated_count * factor
        batches = math.ceil(images / batch_size)
    return math.ceil(batches / max(1, gradient_accumulation_steps))


def total_steps(config: TrainingConfig, summary: DatasetSummary) -> int:
    """``max_train_steps`` when set, else epochs x steps per epoch (kohya's rule)."""
    if config.max_train_steps > 0:
        return config.max_train_steps
    return max(0, config.max_train_epochs) * steps_per_epoch(summary, config.train_batch_size, config.gradient_accumulation_steps)


# --------------------------------------------------------------------------- architectures


@dataclass(frozen=True)
class Architecture:
    """Parameter counts of one model family (counted from the bundled configs on the meta device).

    ``*_lora_per_rank``: parameters a kohya LoRA adds per unit of ``network_dim`` (in + out
    features of every targeted layer); ``conv_lora_per_rank`` the same for LoCon's 3x3 convolutions.
    """

    unet: int
    text_encoders: tuple[int, ...]
    vae: int
    native_side: int  # the resolution the family was trained at; the step table is for this size
    unet_lora_per_rank: int
    text_encoder_lora_per_rank: int
    conv_lora_per_rank: int
    activation_bytes: int  # activations of one image at native size, half precision, without checkpointing

    @property
    def base_parameters(self) -> int:
        return self.unet + sum(self.text_encoders) + self.vae


ARCHITECTURES: dict[str, Architecture] = {
    # SD1.5: UNet 860M, CLIP ViT-L 123M, VAE 84M.
    "sd1": Architecture(859_520_964, (123_060_480,), 83_653_863, 512, 423_936, 165_888, 544_000, 3_500_000_000),
    # SD2.x: UNet 866M, OpenCLIP ViT-H text tower 340M, same VAE; 768 px (v-prediction) models.
    "sd2": Architecture(865_910_724, (340_387_840,), 83_653_863, 768, 432_128, 423_936, 544_000, 7_000_000_000),
    # SDXL: UNet 2.57B, CLIP ViT-L 123M + OpenCLIP ViT-bigG 695M, VAE 84M.
    "sdxl": Architecture(2_567_463_684, (123_060_480, 694_659_840), 83_653_863, 1024, 2_659_840, 903_168, 355_840, 14_000_000_000),
}  # fmt: skip

# Seconds per optimizer step at the family's native resolution, batch size 1, base in half precision
# on a GPU and fp32 on the CPU, without gradient checkpointing. ROUGH guesses from published kohya
# numbers (an RTX 3090 / 4090 class card, an M2 Pro / M3 Max class Mac, a recent 8-16 core CPU);
# they are here, in one table, to be replaced by measurements.
SECONDS_PER_STEP: dict[str, dict[str, float]] = {
    "cuda": {"sd1": 0.30, "sd2": 0.55, "sdxl": 1.2},
    "mps": {"sd1": 1.6, "sd2": 3.2, "sdxl": 8.0},
    # Measured for SD1 (benchmarks/training_speed.py, 2 x86 cores, fp32 base: 13.6 s/it at 512 px; with a
    # bf16 base 8.2 s/it); SD2 and SDXL scaled from it by pixels and UNet size.
    "cpu": {"sd1": 13.6, "sd2": 32.0, "sdxl": 160.0},
}

CHECKPOINTING_TIME = 1.3  # recomputing the forward pass during the backward pass costs about a third more
CHECKPOINTING_MEMORY = 0.3  # ...and keeps about a third of the activations
FP32_ON_GPU_TIME = 2.0  # a full-precision base on a GPU: about half the speed of fp16/bf16
SAMPLE_STEP_FRACTION = 0.7  # one sampling step (two forward passes with CFG) against one training step
RUNTIME_OVERHEAD_BYTES = 800_000_000  # torch, the allocator's slack, the cached latents of a batch
ADAM_COPIES = 4  # trained weights, gradients and AdamW's two moments, all fp32

# Notes (codes, so the window can say them in the user's language).
NOTE_CPU = "cpu"  # training on the CPU: hours for a full-size model
NOTE_UNKNOWN_FAMILY = "unknown_family"  # the base model's family is not known: estimated as SD1
NOTE_NO_DATASET = "no_dataset"  # no images yet: no step count
NOTE_MAX_STEPS = "max_steps"  # max_train_steps overrides the epochs
NOTE_OVER_NATIVE = "over_native"  # training above the model's native size: slow and memory-hungry
NOTE_HALF_ON_CPU = "half_on_cpu"  # fp16/bf16 base on the CPU: not faster there
NOTE_ROUGH = "rough"  # always: the numbers are rough


@dataclass(frozen=True)
class Estimate:
    total_steps: int
    seconds_per_step: float
    total_seconds: float  # the steps plus sampling (not model loading or latent caching)
    peak_memory_bytes: int
    notes: tuple[str, ...] = field(default=())  # NOTE_* codes
    lora_parameters: int = 0
    lora_file_bytes: int = 0


def device_kind(device: str) -> str:
    """"cuda:1" -> "cuda"; anything unknown is treated as the CPU (the slowest guess)."""
    kind = device.split(":", 1)[0].strip().lower()
    return kind if kind in SECONDS_PER_STEP else "cpu"


def lora_parameters(family: str, config: TrainingConfig) -> int:
    """Trainable parameters: LoRA on the UNet (and text encoders unless UNet-only), LoCon convs when set."""
    arch = ARCHITECTURES.get(family, ARCHITECTURES["sd1"])
    count = 0
    if config.train_unet:
        count += arch.unet_lora_per_rank * config.network_dim
        conv_dim = _conv_dim(config)
        count += arch.conv_lora_per_rank * conv_dim
    if config.train_text_encoder:
        count += arch.text_encoder_lora_per_rank * config.network_dim
    return count


def estimate_run(family: str, config: TrainingConfig, summary: DatasetSummary, device: str) -> Estimate:
    """Steps, seconds per step, total time and peak memory for ``config`` on ``device`` (rough)."""
    notes: list[str] = []
    if family not in ARCHITECTURES:
        notes.append(NOTE_UNKNOWN_FAMILY)
        family = "sd1"
    arch = ARCHITECTURES[family]
    kind = device_kind(device)
    steps = total_steps(config, summary)
    if config.max_train_steps > 0:
        notes.append(NOTE_MAX_STEPS)
    elif summary.repeated_count == 0:
        notes.append(NOTE_NO_DATASET)

    pixels = config.resolution[0] * config.resolution[1]
    scale = pixels / arch.native_side**2
    if scale > 1.01:
        notes.append(NOTE_OVER_NATIVE)
    half = config.mixed_precision in ("fp16", "bf16")
    images_per_step = max(1, config.train_batch_size) * max(1, config.gradient_accumulation_steps)
    per_step = SECONDS_PER_STEP[kind][family] * scale * images_per_step
    if config.gradient_checkpointing:
        per_step *= CHECKPOINTING_TIME
    if kind != "cpu" and not half:
        per_step *= FP32_ON_GPU_TIME
    if kind == "cpu":
        notes.append(NOTE_CPU)
        if half:
            notes.append(NOTE_HALF_ON_CPU)

    sampling = _sampling_seconds(config, steps, summary, SECONDS_PER_STEP[kind][family] * scale)
    trained = lora_parameters(family, config)
    notes.append(NOTE_ROUGH)
    return Estimate(
        total_steps=steps,
        seconds_per_step=per_step,
        total_seconds=steps * per_step + sampling,
        peak_memory_bytes=_peak_memory(arch, config, trained, scale, half),
        notes=tuple(notes),
        lora_parameters=trained,
        lora_file_bytes=trained * (4 if config.save_precision == "float" else 2),
    )


def _peak_memory(arch: Architecture, config: TrainingConfig, trained: int, scale: float, half: bool) -> int:
    """Frozen base weights + LoRA weights with gradients and AdamW moments + activations of a batch."""
    base = arch.base_parameters * (2 if half else 4)
    lora = trained * 4 * ADAM_COPIES
    activations = arch.activation_bytes * scale * max(1, config.train_batch_size) * (1 if half else 2)
    if config.gradient_checkpointing:
        activations *= CHECKPOINTING_MEMORY
    if not config.train_text_encoder:
        activations *= 0.95  # the text encoders' activations are small next to the UNet's
    return int(base + lora + activations + RUNTIME_OVERHEAD_BYTES)


def _sampling_seconds(config: TrainingConfig, steps: int, summary: DatasetSummary, training_step: float) -> float:
    """Sample images every N epochs (or steps), plus the check after the final save (with and without)."""
    prompts = len(config.sample_prompts)
    rounds = 0
    if prompts and config.sample_every_n_steps > 0:
        rounds = steps // config.sample_every_n_steps
    elif prompts and config.sample_every_n_epochs > 0:
        per_epoch = steps_per_epoch(summary, config.train_batch_size, config.gradient_accumulation_steps)
        epochs = math.ceil(steps / per_epoch) if per_epoch else 0
        rounds = epochs // config.sample_every_n_epochs
    images = rounds * prompts + 2
    return images * config.sample_steps * training_step * SAMPLE_STEP_FRACTION


def _conv_dim(config: TrainingConfig) -> int:
    try:
        return max(0, int(config.network_arguments().get("conv_dim", "0")))
    except (ConfigError, ValueError):  # a malformed network_args: the form reports it on Start
        return 0
