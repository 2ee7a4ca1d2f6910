"""``python -m desktop train CONFIG.toml``: a real child process, as the app's training window runs it."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

from desktop.cli import main
from desktop.training import events
from desktop.training.config import TrainingConfig, save_config
from tests.training.test_trainer import make_dataset

REPO = Path(__file__).resolve().parents[2]


def write_config(tmp_path: Path, checkpoint: Path, **changes) -> Path:
    config = TrainingConfig(
        pretrained_model_name_or_path=str(checkpoint), train_data_dir=str(make_dataset(tmp_path / "data", count=2, repeats=1)),
        output_dir=str(tmp_path / "out"), output_name="cli", resolution=(64, 64), enable_bucket=False, min_bucket_reso=64,
        network_dim=2, network_alpha=1.0, max_train_steps=2, seed=5, device="cpu", save_every_n_epochs=0,
        save_state_every_n_steps=0, sample_steps=1,
    )  # fmt: skip
    path = save_config(config.__class__(**{**config.__dict__, **changes}), tmp_path / "run.toml")
    with open(path, "a", encoding="utf-8") as stream:
        stream.write("xformers = true\nmy_typo_key = 3\n")  # a kohya-only key and an unknown one
    return path


def test_the_child_speaks_only_events_on_stdout_and_takes_commands_on_stdin(tmp_path, tiny_sd1):
    path = write_config(tmp_path, tiny_sd1, max_train_steps=50)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    child = subprocess.Popen(
        [sys.executable, "-m", "desktop", "train", str(path), "--events"], cwd=REPO, env=env,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, encoding="utf-8",
    )  # fmt: skip
    received = []
    assert child.stdout is not None and child.stdin is not None
    for line in child.stdout:
        event = events.decode(line)  # every line is an event: library output went to stderr
        received.append(event)
        if isinstance(event, events.StepDone) and event.step == 2:
            child.stdin.write("cancel\n")
            child.stdin.flush()
    child.wait(timeout=120)
    assert child.returncode == 130  # cancelled
    warnings = " ".join(e.message for e in received if isinstance(e, events.Warning))
    assert "my_typo_key" in warnings and "xformers" in warnings
    finished = received[-1]
    assert isinstance(finished, events.Finished) and finished.outcome == "cancelled"
    assert 2 <= finished.steps < 50
    assert Path(finished.lora_path).exists()


def test_in_the_terminal_progress_goes_to_stderr_and_a_run_completes(tmp_path, tiny_sd1):
    path = write_config(tmp_path, tiny_sd1)
    out, err = io.StringIO(), io.StringIO()
    assert main(["train", str(path)], stdout=out, stderr=err) == 0
    text = err.getvalue()
    assert "Training on cpu: 2 images" in text
    assert "step 2 epoch" in text and "s/it" in text
    assert "Verified cli.safetensors" in text
    assert "Unknown settings (not used): my_typo_key" in text
    assert (tmp_path / "out" / "cli.safetensors").exists()


def test_a_bad_config_exits_2_with_the_key_named(tmp_path, tiny_sd1):
    path = tmp_path / "bad.toml"
    path.write_text(f'pretrained_model_name_or_path = "{tiny_sd1}"\ntrain_data_dir = "x"\nnetwork_dim = "big"\n', encoding="utf-8")
    err = io.StringIO()
    assert main(["train", str(path)], stdout=io.StringIO(), stderr=err) == 2
    assert "network_dim" in err.getvalue()
    empty = tmp_path / "empty"
    empty.mkdir()
    path.write_text(f'pretrained_model_name_or_path = "{tiny_sd1}"\ntrain_data_dir = "empty"\noutput_dir = "o"\n', encoding="utf-8")
    err = io.StringIO()
    assert main(["train", str(path)], stdout=io.StringIO(), stderr=err) == 2
    assert "empty" in err.getvalue()
