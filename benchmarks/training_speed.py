"""Seconds per training step and peak memory of a LoRA run, on a tiny and a full-size SD1.5 architecture.

Run by hand (not part of the test suite)::

    .venv/bin/python benchmarks/training_speed.py --sizes tiny full --resolution 512 --steps 4
    .venv/bin/python benchmarks/training_speed.py --sizes full --device cuda --precision bf16   # on a GPU

Each run is a real ``python -m desktop train CONFIG --events`` child on a random-weight checkpoint in
the original LDM layout (the full-size one is SD1.5's real shapes, about 2 GB in fp16), with kohya's
default module set at dim 16. It prints the steady-state s/it (first step excluded), the child's
peak memory (resident memory on the CPU, allocated memory on CUDA) and the ratio of full to tiny.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))


def make_checkpoint(folder: Path, size: str) -> Path:
    import torch

    from tests.fixtures.ldm_layout import sd1_checkpoint_shapes, write_checkpoint

    path = folder / f"{size}_sd15.safetensors"
    if not path.exists():
        write_checkpoint(path, sd1_checkpoint_shapes(tiny=size == "tiny"), dtype=torch.float16)
    return path


def make_dataset(folder: Path, resolution: int, count: int = 4) -> Path:
    from PIL import Image

    images = folder / "10_sks cat"
    images.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        Image.new("RGB", (resolution, resolution), (60 * index % 255, 120, 200)).save(images / f"{index}.png")
        (images / f"{index}.txt").write_text(f"sks cat, photo {index}", encoding="utf-8")
    return folder


def run(checkpoint: Path, data: Path, out: Path, args: argparse.Namespace, resolution: int) -> dict[str, float]:
    from desktop.training import events
    from desktop.training.config import TrainingConfig, save_config

    config = TrainingConfig(
        pretrained_model_name_or_path=str(checkpoint), train_data_dir=str(data), output_dir=str(out),
        output_name="bench", resolution=(resolution, resolution), enable_bucket=False, min_bucket_reso=64,
        network_dim=16, network_alpha=8.0, max_train_steps=args.steps, train_batch_size=1, seed=1,
        device=args.device, mixed_precision=args.precision, gradient_checkpointing=args.checkpointing,
        save_every_n_epochs=0, save_state=False, sample_steps=1, cache_latents_to_disk=False,
    )  # fmt: skip
    path = save_config(config, out / "bench.toml")
    started = time.perf_counter()
    # stdin stays open: the child cancels when it closes (that is how it notices the app is gone)
    child = subprocess.Popen(
        [sys.executable, "-m", "desktop", "train", str(path), "--events"], cwd=REPO_ROOT, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, stdin=subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    stdout, stderr = _read_all(child)
    received = [events.decode(line) for line in stdout.splitlines() if line.strip()]
    steps = [e for e in received if isinstance(e, events.StepDone)]
    finished = [e for e in received if isinstance(e, (events.Finished, events.Failed))]
    if not finished or not isinstance(finished[-1], events.Finished):
        raise SystemExit(f"run failed: {finished[-1] if finished else stderr[-2000:]}")
    return {
        "seconds_per_step": steps[-1].seconds_per_step,  # the trainer's smoothed figure, first step excluded
        "peak_memory_gib": finished[-1].peak_memory_bytes / 2**30,
        "wall_seconds": time.perf_counter() - started,
    }


def _read_all(child: subprocess.Popen) -> tuple[str, str]:
    """Both pipes to the end without closing stdin first (stderr drained by a thread: no deadlock)."""
    import threading

    chunks: list[str] = []
    reader = threading.Thread(target=lambda: chunks.append(child.stderr.read()), daemon=True)
    reader.start()
    stdout = child.stdout.read()
    child.wait()
    reader.join()
    child.stdin.close()
    return stdout, "".join(chunks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=["tiny", "full"], choices=["tiny", "full"])
    parser.add_argument("--resolution", type=int, default=512)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="no", choices=["no", "fp16", "bf16"])
    parser.add_argument("--checkpointing", action="store_true", help="gradient checkpointing")
    parser.add_argument("--workdir", type=Path, default=None, help="keep checkpoints here between runs")
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="training-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    results = {}
    for size in args.sizes:
        resolution = 64 if size == "tiny" else args.resolution
        checkpoint = make_checkpoint(workdir, size)
        data = make_dataset(workdir / f"data-{resolution}", resolution)
        out = Path(tempfile.mkdtemp(prefix=f"{size}-", dir=workdir))
        results[size] = run(checkpoint, data, out, args, resolution)
        r = results[size]
        print(
            f"{size:5s} SD1.5 {resolution}px on {args.device} ({args.precision}, checkpointing {args.checkpointing}): "
            f"{r['seconds_per_step']:.3f} s/it, peak memory {r['peak_memory_gib']:.2f} GiB, run {r['wall_seconds']:.0f} s",
            flush=True,
        )
    if "tiny" in results and "full" in results:
        print(f"ratio full/tiny s/it: {results['full']['seconds_per_step'] / results['tiny']['seconds_per_step']:.1f}")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
