"""The same trainer as a two-process data-parallel job (torchrun/accelerate launch), on the CPU with gloo.

Two processes with one batch each must end where one process ends with gradient accumulation over
the same two batches: each process draws exactly the noise a single process would for its batch.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from desktop.training import events
from desktop.training.config import TrainingConfig, save_config
from tests.training.test_trainer import make_dataset

REPO = Path(__file__).resolve().parents[2]


def _config(tmp_path: Path, checkpoint: Path, name: str, accumulation: int) -> Path:
    config = TrainingConfig(
        pretrained_model_name_or_path=str(checkpoint), train_data_dir=str(tmp_path / "data"), output_dir=str(tmp_path / name),
        output_name="x", resolution=(64, 64), enable_bucket=False, min_bucket_reso=64, network_dim=4, network_alpha=2.0,
        max_train_steps=2, seed=9, gradient_accumulation_steps=accumulation, device="cpu", save_every_n_epochs=0,
        save_state=False, sample_steps=1, cache_latents_to_disk=False,
    )  # fmt: skip
    return save_config(config, tmp_path / f"{name}.toml")


def _run(command: list[str]) -> tuple[int, list[events.TrainingEvent], str]:
    # stdin stays open until the end: the child cancels when it closes
    child = subprocess.Popen(command, cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        stdout = child.stdout.read()  # stderr is small (warnings); read after
        child.wait(timeout=600)
        stderr = child.stderr.read()
    finally:
        child.stdin.close()
    return child.returncode, [events.decode(line) for line in stdout.splitlines() if line.strip()], stderr


@pytest.mark.slow
def test_two_processes_train_like_one_process_accumulating_the_same_batches(tmp_path, tiny_sd1):
    make_dataset(tmp_path / "data", count=4, repeats=1)
    launch = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "desktop", "train"]
    code, received, stderr = _run([*launch, str(_config(tmp_path, tiny_sd1, "two", 1)), "--events"])
    assert code == 0, stderr[-3000:]
    # only the main process reports (one Started, one Finished), and it counts steps across both
    started = [e for e in received if isinstance(e, events.Started)]
    assert len(started) == 1 and started[0].steps_per_epoch == 2
    assert sum(isinstance(e, events.Finished) for e in received) == 1

    code, _, stderr = _run([sys.executable, "-m", "desktop", "train", str(_config(tmp_path, tiny_sd1, "one", 2)), "--events"])
    assert code == 0, stderr[-3000:]
    two, one = load_file(str(tmp_path / "two" / "x.safetensors")), load_file(str(tmp_path / "one" / "x.safetensors"))
    assert two.keys() == one.keys()
    for key in one:  # the same up to the order of float additions (then fp16 rounding)
        assert torch.allclose(two[key].float(), one[key].float(), atol=1e-5), key
    changed = [key for key in one if key.endswith("lora_up.weight") and one[key].abs().max() > 0]
    assert changed  # it did train
