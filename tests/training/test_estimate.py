"""The time and memory estimate: step counts as kohya counts them, LoRA sizes from the architectures'
widths, and the directions every setting must move the numbers in. Pure Python: no torch here."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from desktop.training.config import TrainingConfig, apply_preset
from desktop.training.estimate import (
    ARCHITECTURES,
    NOTE_CPU,
    NOTE_MAX_STEPS,
    NOTE_NO_DATASET,
    NOTE_OVER_NATIVE,
    NOTE_UNKNOWN_FAMILY,
    SECONDS_PER_STEP,
    DatasetImage,
    DatasetSummary,
    device_kind,
    estimate_run,
    lora_parameters,
    steps_per_epoch,
    total_steps,
)

REPO = Path(__file__).resolve().parents[2]
GB = 1_000_000_000


def summary(images: int = 20, repeats: int = 10, **fields) -> DatasetSummary:
    return DatasetSummary(image_count=images, repeated_count=images * repeats, steps_per_epoch=images * repeats, **fields)


def sd15_transformer_lora_per_rank() -> int:
    """In + out features of kohya's 192 UNet modules, from SD1.5's block widths (not from a model).

    Each of the 16 transformer blocks of width c (context 768) has proj_in, attn1 q/k/v/out, attn2 q
    (c), k/v (from 768), out, ff.net.0.proj (c -> 8c, GEGLU), ff.net.2 (4c -> c) and proj_out.
    """
    blocks = {320: 2 + 3, 640: 2 + 3, 1280: 2 + 1 + 3}  # down, (mid), up
    per_block = {c: 2 * c + 4 * 2 * c + 2 * c + 2 * (768 + c) + 2 * c + (c + 8 * c) + (4 * c + c) + 2 * c for c in blocks}
    assert sum(blocks.values()) * 12 == 192
    return sum(count * per_block[c] for c, count in blocks.items())


def test_kohya_step_counts_round_each_bucket_up_and_double_with_regularisation_images():
    plain = summary(images=25, repeats=4)  # 100 repeated images
    assert steps_per_epoch(plain, 1) == 100
    assert steps_per_epoch(plain, 3) == 34  # a partial batch is a step
    assert steps_per_epoch(plain, 3, gradient_accumulation_steps=4) == 9  # optimizer steps
    buckets = replace(plain, bucket_sizes=(50, 30, 20))
    assert steps_per_epoch(buckets, 3) == 17 + 10 + 7  # batches never mix buckets
    with_reg = replace(plain, steps_per_epoch=200, regularisation_count=40)
    assert steps_per_epoch(with_reg, 4) == 50
    assert steps_per_epoch(replace(buckets, regularisation_count=40), 3) == 2 * 34


def test_total_steps_are_epochs_times_steps_unless_max_steps_is_set():
    data = summary(images=20, repeats=10)
    config = TrainingConfig(max_train_epochs=10, train_batch_size=2)
    assert total_steps(config, data) == 1000
    assert total_steps(replace(config, max_train_steps=1500), data) == 1500
    assert total_steps(config, DatasetSummary()) == 0


def test_lora_sizes_come_from_the_architectures_widths():
    assert ARCHITECTURES["sd1"].unet_lora_per_rank == sd15_transformer_lora_per_rank() == 423_936
    te = 12 * (4 * (768 + 768) + (768 + 3072) + (3072 + 768))  # CLIP ViT-L: 12 layers, q/k/v/out, fc1, fc2
    assert ARCHITECTURES["sd1"].text_encoder_lora_per_rank == te
    config = TrainingConfig(network_dim=32)
    # A kohya SD1.5 LoRA at dim 32 is a 37.7 MB fp16 file (plus alphas and metadata).
    estimate = estimate_run("sd1", config, summary(), "cuda")
    assert estimate.lora_parameters == 32 * (423_936 + te)
    assert estimate.lora_file_bytes == pytest.approx(37.7e6, rel=0.01)
    unet_only = replace(config, network_train_unet_only=True)
    assert lora_parameters("sd1", unet_only) == 32 * 423_936
    locon = replace(config, network_args=("conv_dim=8", "conv_alpha=4"))
    assert lora_parameters("sd1", locon) == lora_parameters("sd1", config) + 8 * ARCHITECTURES["sd1"].conv_lora_per_rank
    sdxl = replace(config, network_train_unet_only=True)
    assert lora_parameters("sdxl", sdxl) > 6 * lora_parameters("sd1", sdxl)  # SDXL has 70 transformer blocks, 10 deep


def test_every_setting_moves_time_and_memory_the_right_way():
    data = summary()
    base = apply_preset(TrainingConfig(), "sd15_character")
    reference = estimate_run("sd1", base, data, "mps")

    def compare(**changes):
        return estimate_run("sd1", replace(base, **changes), data, "mps")

    bigger_batch = compare(train_batch_size=4)
    assert bigger_batch.seconds_per_step > reference.seconds_per_step
    assert bigger_batch.peak_memory_bytes > reference.peak_memory_bytes
    assert bigger_batch.total_steps < reference.total_steps
    no_checkpointing = compare(gradient_checkpointing=False)
    assert no_checkpointing.peak_memory_bytes > reference.peak_memory_bytes
    assert no_checkpointing.seconds_per_step < reference.seconds_per_step
    fp32 = compare(mixed_precision="no")
    half = compare(mixed_precision="fp16")
    assert fp32.peak_memory_bytes > half.peak_memory_bytes and fp32.seconds_per_step > half.seconds_per_step
    larger = compare(resolution=(768, 768))
    assert larger.seconds_per_step == pytest.approx(reference.seconds_per_step * 2.25)
    assert NOTE_OVER_NATIVE in larger.notes and NOTE_OVER_NATIVE not in reference.notes
    assert compare(network_dim=128).peak_memory_bytes > reference.peak_memory_bytes
    with_samples = compare(sample_prompts=("a photo of sks",), sample_every_n_epochs=2)
    assert with_samples.total_seconds > reference.total_seconds
    assert with_samples.total_steps == reference.total_steps


def test_families_and_devices_scale_as_expected_and_unknowns_are_said():
    data = summary()
    config = TrainingConfig(mixed_precision="bf16", resolution=(1024, 1024), network_train_unet_only=True)
    sdxl = estimate_run("sdxl", config, data, "cuda")
    sd1 = estimate_run("sd1", replace(config, resolution=(512, 512)), data, "cuda")
    assert sdxl.peak_memory_bytes > 2 * sd1.peak_memory_bytes
    assert 8 * GB < sdxl.peak_memory_bytes < 24 * GB  # kohya's SDXL LoRA needs a 12-24 GB card
    assert 2 * GB < sd1.peak_memory_bytes < 8 * GB  # ...SD1.5 runs on 6-8 GB
    cpu = estimate_run("sd1", replace(config, resolution=(512, 512)), data, "cpu")
    assert cpu.seconds_per_step > 10 * sd1.seconds_per_step and NOTE_CPU in cpu.notes
    unknown = estimate_run("flux", config, data, "cuda:1")
    assert NOTE_UNKNOWN_FAMILY in unknown.notes and unknown.seconds_per_step > 0
    assert device_kind("cuda:1") == "cuda" and device_kind("xpu") == "cpu" and device_kind("MPS") == "mps"
    assert set(SECONDS_PER_STEP) == {"cpu", "mps", "cuda"}
    assert all(set(table) == set(ARCHITECTURES) for table in SECONDS_PER_STEP.values())


def test_no_dataset_means_no_steps_and_max_steps_is_noted():
    empty = estimate_run("sd1", TrainingConfig(), DatasetSummary(), "cuda")
    assert empty.total_steps == 0 and NOTE_NO_DATASET in empty.notes
    assert empty.total_seconds > 0  # the final check's two samples still take time
    fixed = estimate_run("sd1", TrainingConfig(max_train_steps=300), DatasetSummary(), "cuda")
    assert fixed.total_steps == 300 and NOTE_MAX_STEPS in fixed.notes


def test_a_malformed_network_argument_does_not_break_the_estimate():
    config = TrainingConfig(network_args=("conv_dim",))
    assert estimate_run("sd1", config, summary(), "cuda").lora_parameters == lora_parameters("sd1", TrainingConfig())


def test_the_summary_counts_images_without_captions():
    images = (
        DatasetImage(Path("a.png"), "sks, smiling", 10, "10_sks"),
        DatasetImage(Path("b.png"), None, 10, "10_sks"),
        DatasetImage(Path("c.png"), "", 10, "10_sks"),  # an empty caption file is still a caption
    )
    assert DatasetSummary(image_count=3, repeated_count=30, steps_per_epoch=30, images=images).uncaptioned_count == 1


def test_the_estimate_imports_no_torch_numpy_or_qt():
    code = (
        "import sys, desktop.training.estimate;"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'numpy', 'PySide6', 'diffusers', 'transformers')))"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
