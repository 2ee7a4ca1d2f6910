"""The training loop end to end on a tiny SD1 checkpoint: it learns, saves kohya files, resumes exactly.

Real files throughout: a dataset folder of PNGs with captions, the tiny random-weight LDM checkpoint
from ``tests/conftest.py``, real safetensors outputs loaded back through the inference code.
"""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file

from desktop.engine.networks.lora import NetworkPatcher, load_network
from desktop.library.hashes import safetensors_tensor_hash
from desktop.training import events
from desktop.training.config import TrainingConfig
from desktop.training.control import TrainingControl
from desktop.training.trainer import train


def make_dataset(folder: Path, count: int = 4, repeats: int = 2) -> Path:
    images = folder / f"{repeats}_sks cat"
    images.mkdir(parents=True)
    for index in range(count):
        colour = (40 * index % 255, 200 - 30 * index, 90)
        image = Image.new("RGB", (96, 96), colour)
        for x in range(0, 96, 12):  # some structure, so images differ in more than colour
            image.paste((255 - colour[0], 20 * index, 255), (x, x, x + 6, x + 6))
        image.save(images / f"img{index}.png")
        if index % 2 == 0:
            (images / f"img{index}.txt").write_text(f"sks cat, photo {index}, red", encoding="utf-8")
    return folder


@pytest.fixture
def config(tmp_path, tiny_sd1) -> TrainingConfig:
    return TrainingConfig(
        pretrained_model_name_or_path=str(tiny_sd1),
        train_data_dir=str(make_dataset(tmp_path / "data")),
        output_dir=str(tmp_path / "out"),
        output_name="tiny",
        resolution=(64, 64),
        enable_bucket=False,
        min_bucket_reso=64,
        max_bucket_reso=256,
        network_dim=4,
        network_alpha=2.0,
        learning_rate=1e-3,
        max_train_steps=6,
        train_batch_size=2,
        seed=1234,
        device="cpu",
        save_every_n_epochs=1,
        save_state_every_n_steps=0,
        sample_steps=2,
    )


class Recorder:
    """Collects events; optionally sends commands when a given step is reached."""

    def __init__(self, control: TrainingControl | None = None, at_step: dict[int, str] | None = None) -> None:
        self.events: list[events.TrainingEvent] = []
        self.control = control
        self.at_step = at_step or {}

    def __call__(self, event: events.TrainingEvent) -> None:
        self.events.append(events.decode(events.encode(event)))  # everything must survive the wire
        if isinstance(event, events.StepDone) and event.step in self.at_step and self.control is not None:
            self.control.send(self.at_step[event.step])

    def of(self, kind: type) -> list:
        return [event for event in self.events if isinstance(event, kind)]


def test_a_run_learns_saves_kohya_files_each_epoch_and_verifies_the_final_one(config, tmp_path):
    recorder = Recorder()
    config = replace(config, max_train_steps=0, max_train_epochs=3, sample_prompts=("sks cat --d 5",), sample_every_n_epochs=3)
    outcome = train(config, recorder)

    assert isinstance(outcome, events.Finished), outcome
    assert outcome.outcome == "completed"
    started = recorder.of(events.Started)[0]
    # 4 images x 2 repeats = 8 visits, batch 2 -> 4 steps per epoch, 3 epochs.
    assert (started.images, started.steps_per_epoch, started.total_steps, started.epochs) == (4, 4, 12, 3)
    steps = recorder.of(events.StepDone)
    assert [s.step for s in steps] == list(range(1, 13))
    assert all(s.loss > 0 and s.lr == pytest.approx(1e-3) for s in steps)

    out = Path(config.output_dir)
    saved = recorder.of(events.Saved)
    assert [(Path(s.path).name, s.reason) for s in saved] == [
        ("tiny-000001.safetensors", "epoch"), ("tiny-000002.safetensors", "epoch"), ("tiny.safetensors", "final"),
    ]  # fmt: skip
    final = out / "tiny.safetensors"
    with safe_open(str(final), framework="pt") as handle:
        metadata = handle.metadata()
        keys = list(handle.keys())
        dtypes = {handle.get_tensor(k).dtype for k in keys}
    assert dtypes == {torch.float16}
    assert metadata["ss_network_dim"] == "4" and metadata["ss_network_alpha"] == "2.0"
    assert metadata["ss_steps"] == "12" and metadata["ss_seed"] == "1234"
    assert metadata["sshs_model_hash"] == safetensors_tensor_hash(final)
    assert json.loads(metadata["ss_tag_frequency"])  # captions counted per folder
    assert metadata["ss_sd_model_name"] == Path(config.pretrained_model_name_or_path).name
    alphas = {k: v for k, v in load_file(str(final)).items() if k.endswith(".alpha")}
    assert alphas and all(float(v) == 2.0 for v in alphas.values())

    # the inference code loads it, every module matched, and it changes the output
    verified = recorder.of(events.Verified)[0]
    assert verified.matched == verified.total == len(alphas)
    assert verified.differs
    assert Path(verified.with_lora).exists() and (out / "tiny.preview.png").exists()
    assert len(recorder.of(events.SampleSaved)) == 1

    rows = list(csv.DictReader((out / "tiny-training" / "loss.csv").open(encoding="utf-8")))
    assert [int(r["step"]) for r in rows] == list(range(1, 13))
    assert (out / "tiny-training" / "config.toml").exists()
    assert (out / "tiny-state" / "state.json").exists()  # save_state at the end


def denoising_loss(model, latents, hidden, *, seed: int = 7, draws: int = 24) -> float:
    """The training objective on fixed noise and timesteps: the same numbers before and after training."""
    from desktop.training.loss import add_noise, per_sample_mse

    generator = torch.Generator().manual_seed(seed)
    total = 0.0
    with torch.no_grad():
        for _ in range(draws):
            noise = torch.randn(latents.shape, generator=generator)
            t = torch.randint(0, 1000, (1,), generator=generator)
            noisy = add_noise(latents, noise, t, model.alphas_cumprod)
            total += float(per_sample_mse(model.unet(noisy, t, encoder_hidden_states=hidden).sample, noise))
    return total / draws


def test_training_lowers_the_loss_on_its_image_with_fixed_noise(config, tiny_sd1):
    """One image, a few dozen steps: the saved LoRA denoises that image better than the base model."""
    from desktop.engine.devices import plan_devices
    from desktop.engine.loading import load_model
    from desktop.training.images import load_training_image
    from desktop.training.latent_cache import encode_latents
    from desktop.training.text_encoding import encode_captions

    data = Path(config.train_data_dir) / "2_sks cat"
    for extra in list(data.glob("img[123].*")):
        extra.unlink()
    config = replace(config, max_train_steps=40, train_batch_size=1, learning_rate=2e-2, network_dim=8, save_every_n_epochs=0)
    outcome = train(config, Recorder())
    assert isinstance(outcome, events.Finished)

    model = load_model(tiny_sd1, plan_devices("cpu", "fp32"))
    latents = encode_latents(model.vae, load_training_image(data / "img0.png", (64, 64)).pixels[None], [0])
    hidden, _ = encode_captions(["sks cat, photo 0, red"], model, clip_skip=1, with_grad=False)
    base = denoising_loss(model, latents, hidden)
    patcher = NetworkPatcher(model)
    patcher.apply([(load_network(outcome.lora_path), 1.0, 1.0)])
    hidden_lora, _ = encode_captions(["sks cat, photo 0, red"], model, clip_skip=1, with_grad=False)
    trained = denoising_loss(model, latents, hidden_lora)
    patcher.restore()
    assert trained < 0.9 * base, (base, trained)


def test_a_cancelled_run_leaves_a_loadable_lora_and_resuming_gives_the_same_weights(config, tmp_path, tiny_sd1):
    uninterrupted = Recorder()
    reference = train(replace(config, output_dir=str(tmp_path / "a")), uninterrupted)
    assert isinstance(reference, events.Finished) and reference.outcome == "completed"

    control = TrainingControl()
    first_part = Recorder(control, at_step={3: "cancel"})
    cancelled = train(replace(config, output_dir=str(tmp_path / "b")), first_part, control)
    assert isinstance(cancelled, events.Finished) and cancelled.outcome == "cancelled"
    assert cancelled.steps == 3
    cancelled_lora = Path(cancelled.lora_path)
    assert cancelled_lora.name == "tiny-step00000003.safetensors"
    from desktop.engine.devices import plan_devices
    from desktop.engine.loading import load_model

    model = load_model(tiny_sd1, plan_devices("cpu", "fp32"))
    match = NetworkPatcher(model).match(load_network(cancelled_lora))
    assert match.matched == match.total > 0

    resumed = Recorder()
    state = tmp_path / "b" / "tiny-state"
    outcome = train(replace(config, output_dir=str(tmp_path / "b"), resume=str(state)), resumed)
    assert isinstance(outcome, events.Finished) and outcome.outcome == "completed"
    assert resumed.of(events.Started)[0].resumed_from_step == 3
    assert [s.step for s in resumed.of(events.StepDone)] == [4, 5, 6]
    a = load_file(str(tmp_path / "a" / "tiny.safetensors"))
    b = load_file(str(tmp_path / "b" / "tiny.safetensors"))
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), "resumed weights differ from the uninterrupted run"
    rows = list(csv.DictReader((tmp_path / "b" / "tiny-training" / "loss.csv").open(encoding="utf-8")))
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4, 5, 6]


def test_pause_save_and_sample_commands_take_effect_between_steps(config):
    control = TrainingControl()
    recorder = Recorder(control, at_step={1: "pause", 2: "save"})
    config = replace(config, sample_prompts=("sks cat",))

    def resume_when_paused(event: events.TrainingEvent) -> None:
        recorder(event)
        if isinstance(event, events.Paused):
            control.send("sample")
            control.send("resume")

    outcome = train(config, resume_when_paused, control)
    assert isinstance(outcome, events.Finished)
    kinds = [type(e).__name__ for e in recorder.events if not isinstance(e, (events.Progress, events.Warning))]
    paused_at = kinds.index("Paused")
    assert kinds[paused_at - 1] == "StepDone" and kinds[paused_at + 1 : paused_at + 3] == ["SampleSaved", "Resumed"]
    manual = [s for s in recorder.of(events.Saved) if s.reason == "manual"]
    assert [Path(s.path).name for s in manual] == ["tiny-step00000002.safetensors"]


def test_a_nan_loss_is_reported_with_its_step_and_no_broken_file_is_written(config):
    recorder = Recorder()
    outcome = train(replace(config, learning_rate=1e20, max_grad_norm=0.0, save_every_n_epochs=0), recorder)
    assert isinstance(outcome, events.Failed), outcome
    assert outcome.kind == events.FAILURE_NAN_LOSS
    assert outcome.step is not None and f"step {outcome.step}" in outcome.message
    assert not (Path(config.output_dir) / "tiny.safetensors").exists()


@pytest.mark.parametrize(
    "change, kind, words",
    [
        (dict(train_data_dir="missing-folder"), events.FAILURE_DATASET, "missing-folder"),
        (dict(pretrained_model_name_or_path="nope.safetensors"), events.FAILURE_CONFIG, "nope.safetensors"),
    ],
)
def test_bad_inputs_fail_with_a_clear_kind(config, tmp_path, change, kind, words):
    values = {key: str(tmp_path / value) for key, value in change.items()}
    outcome = train(replace(config, **values), Recorder())
    assert isinstance(outcome, events.Failed) and outcome.kind == kind
    assert words in outcome.message


def test_sdxl_trains_with_size_conditioning_and_writes_te1_te2_and_sgm_names(tmp_path, checkpoints):
    """SDXL's extra inputs (pooled bigG vector, time ids from crop and size) reach the UNet; buckets differ."""
    data = tmp_path / "data" / "1_sks"
    data.mkdir(parents=True)
    Image.new("RGB", (160, 96), (200, 30, 30)).save(data / "wide.png")
    Image.new("RGB", (96, 160), (30, 30, 200)).save(data / "tall.png")
    config = TrainingConfig(
        pretrained_model_name_or_path=str(checkpoints["sdxl"]), train_data_dir=str(tmp_path / "data"),
        output_dir=str(tmp_path / "out"), output_name="xl", resolution=(128, 128), min_bucket_reso=64, max_bucket_reso=256,
        bucket_reso_steps=64, network_dim=2, network_alpha=1.0, max_train_steps=2, seed=5, device="cpu",
        save_every_n_epochs=0, sample_steps=1, save_state=False,
    )  # fmt: skip
    recorder = Recorder()
    outcome = train(config, recorder)
    assert isinstance(outcome, events.Finished) and outcome.outcome == "completed", outcome
    tensors = load_file(str(Path(config.output_dir) / "xl.safetensors"))
    prefixes = {key.split("_")[1] for key in tensors if key.startswith("lora_te")}
    assert prefixes == {"te1", "te2"}
    assert any(key.startswith("lora_unet_input_blocks_") or key.startswith("lora_unet_middle_block_") for key in tensors)
    with safe_open(str(Path(config.output_dir) / "xl.safetensors"), framework="pt") as handle:
        assert handle.metadata()["ss_base_model_version"] == "sdxl_base_v1-0"
    verified = recorder.of(events.Verified)[0]
    assert verified.matched == verified.total


def test_a_v_prediction_sd2_model_trains_on_the_v_target_and_says_so(tmp_path, checkpoints):
    config = TrainingConfig(
        pretrained_model_name_or_path=str(checkpoints["sd2"]), train_data_dir=str(make_dataset(tmp_path / "data", count=2)),
        output_dir=str(tmp_path / "out"), output_name="v", resolution=(64, 64), enable_bucket=False, min_bucket_reso=64,
        network_dim=2, network_alpha=1.0, max_train_steps=2, seed=5, device="cpu", v_parameterization=True,
        save_every_n_epochs=0, sample_steps=1, save_state=False, train_batch_size=2,
    )  # fmt: skip
    outcome = train(config, Recorder())
    assert isinstance(outcome, events.Finished), outcome
    with safe_open(str(Path(config.output_dir) / "v.safetensors"), framework="pt") as handle:
        metadata = handle.metadata()
    assert metadata["ss_v2"] == "True" and metadata["ss_base_model_version"] == "sd_v2_v"
    assert metadata["modelspec.prediction_type"] == "v"


def test_the_v_target_and_min_snr_weights_follow_kohyas_formulas():
    from desktop.training.loss import add_noise, min_snr_weights, target

    acp = torch.linspace(0.999, 0.001, 1000)
    x0, noise = torch.randn(3, 4, 8, 8), torch.randn(3, 4, 8, 8)
    t = torch.tensor([0, 500, 999])
    a = acp[t].reshape(-1, 1, 1, 1)
    assert torch.allclose(add_noise(x0, noise, t, acp), a.sqrt() * x0 + (1 - a).sqrt() * noise)
    assert torch.allclose(target(x0, noise, t, acp, v_prediction=True), a.sqrt() * noise - (1 - a).sqrt() * x0)
    assert torch.equal(target(x0, noise, t, acp, v_prediction=False), noise)
    snr = acp[t] / (1 - acp[t])
    assert torch.allclose(min_snr_weights(t, acp, 5.0, v_prediction=False), torch.clamp(snr, max=5) / snr)
    assert torch.allclose(min_snr_weights(t, acp, 5.0, v_prediction=True), torch.clamp(snr, max=5) / (snr + 1))
