"""Training settings under kohya's names (TOML in and out) and the child-process event protocol."""

from __future__ import annotations

import math
import tomllib
from dataclasses import fields, replace

import pytest

from desktop.training import events
from desktop.training.config import (
    PRESETS,
    ConfigError,
    TrainingConfig,
    apply_preset,
    config_from_mapping,
    load_config,
    save_config,
    to_toml,
)

# A config as kohya_ss's GUI writes it (sections, strings for numbers, options that mean nothing here).
KOHYA_TOML = """
[model]
pretrained_model_name_or_path = "/models/Stable-diffusion/v1-5-pruned-emaonly.safetensors"
v2 = false

[dataset]
train_data_dir = "img"
resolution = "768,512"
enable_bucket = true
caption_extension = ".caption"
shuffle_caption = true
keep_tokens = 1
flip_aug = false

[network]
network_module = "networks.lora"
network_dim = 16
network_alpha = "8"
network_args = ["conv_dim=4", "conv_alpha=1"]

[training]
output_dir = "out"
output_name = "my-lora"
max_train_epochs = 6
learning_rate = "1e-4"
unet_lr = 0.0002
text_encoder_lr = 5e-5
train_batch_size = 2
seed = 1234
lr_scheduler = "cosine_with_restarts"
lr_scheduler_num_cycles = 3
save_every_n_epochs = 2
mixed_precision = "bf16"
xformers = true
max_data_loader_n_workers = 0
colour_jitter = 0.3
"""


def test_a_kohya_gui_config_with_sections_reads_with_relative_paths_and_reports_unused_keys(tmp_path):
    path = tmp_path / "kohya.toml"
    path.write_text(KOHYA_TOML, encoding="utf-8")
    loaded = load_config(path)
    config = loaded.config
    assert config.resolution == (768, 512)
    assert (config.network_dim, config.network_alpha) == (16, 8.0)
    assert config.network_arguments() == {"conv_dim": "4", "conv_alpha": "1"}
    assert (config.unet_learning_rate, config.text_encoder_learning_rate) == (2e-4, 5e-5)
    assert config.train_data_dir == str((tmp_path / "img").resolve())
    assert config.output_dir == str((tmp_path / "out").resolve())
    assert config.pretrained_model_name_or_path.startswith("/models/")  # absolute paths are kept
    assert loaded.unknown_keys == ("colour_jitter",)
    assert loaded.ignored_keys == ("max_data_loader_n_workers", "v2", "xformers")
    notes = "\n".join(loaded.notes())
    assert "colour_jitter" in notes and "xformers" in notes


def test_every_setting_survives_a_toml_round_trip_including_hostile_strings(tmp_path):
    config = TrainingConfig(
        pretrained_model_name_or_path="/m/模型 \"q\" 🎨.safetensors", train_data_dir="/d/data\\set", output_dir="/o",
        trigger_word='sks "person"', sample_prompts=("a photo of sks --n blurry --w 512", "第二 \t tab"),
        network_args=("conv_dim=8",), unet_lr=3e-4, resolution=(640, 448), v_parameterization=True, seed=99,
    )  # fmt: skip
    path = save_config(config, tmp_path / "run.toml")
    assert tomllib.loads(path.read_text(encoding="utf-8"))  # valid TOML
    again = load_config(path)
    assert again.config == config
    assert again.unknown_keys == again.ignored_keys == ()
    # Every field is written, so a run's TOML says exactly what was used.
    written = to_toml(replace(config, text_encoder_lr=None))
    for item in fields(TrainingConfig):
        if item.name not in ("text_encoder_lr",):
            assert f"\n{item.name} = " in written, item.name


@pytest.mark.parametrize(
    "values, key",
    [
        ({"network_dim": 0}, "network_dim"),
        ({"network_dim": 4.5}, "network_dim"),
        ({"learning_rate": "fast"}, "learning_rate"),
        ({"resolution": "512x"}, "resolution"),
        ({"resolution": 100}, "resolution"),
        ({"lr_scheduler": "exponential"}, "lr_scheduler"),
        ({"optimizer_type": "AdamW8bit"}, "optimizer_type"),
        ({"shuffle_caption": "maybe"}, "shuffle_caption"),
        ({"network_args": ["conv_dim"]}, "network_args"),
        ({"output_name": "../escape"}, "output_name"),
        ({"learning_rate": float("nan")}, "learning_rate"),
        ({"pretrained_model_name_or_path": ""}, "pretrained_model_name_or_path"),
    ],
)
def test_a_wrong_setting_is_refused_naming_its_key(values, key):
    base = {"pretrained_model_name_or_path": "m.safetensors", "train_data_dir": "img"}
    with pytest.raises(ConfigError) as caught:
        config_from_mapping({**base, **values})
    assert key in caught.value.message


def test_broken_toml_and_missing_file_are_clear_errors(tmp_path):
    broken = tmp_path / "broken.toml"
    broken.write_text("network_dim = = 4\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="not a valid TOML"):
        load_config(broken)
    with pytest.raises(ConfigError, match="Cannot read"):
        load_config(tmp_path / "missing.toml")


def test_kohya_sample_prompt_file_is_read_skipping_comments(tmp_path):
    (tmp_path / "prompts.txt").write_text("# comment\nsks cat --d 3\n\nsks dog\n", encoding="utf-8")
    config = config_from_mapping(
        {"pretrained_model_name_or_path": "m", "train_data_dir": "i", "sample_prompts": "prompts.txt"}, base=tmp_path
    ).config
    assert config.sample_prompts == ("sks cat --d 3", "sks dog")


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_presets_are_valid_and_keep_the_users_model_dataset_and_output(preset):
    mine = TrainingConfig(pretrained_model_name_or_path="m", train_data_dir="d", output_dir="o", output_name="x")
    chosen = apply_preset(mine, preset)
    config_from_mapping({f.name: getattr(chosen, f.name) for f in fields(TrainingConfig) if getattr(chosen, f.name) is not None})
    assert (chosen.pretrained_model_name_or_path, chosen.train_data_dir, chosen.output_dir, chosen.output_name) == ("m", "d", "o", "x")
    assert chosen != mine
    # every preset key is reset first: a preset never inherits another preset's choices
    for other in PRESETS:
        assert apply_preset(apply_preset(mine, other), preset) == chosen


def test_every_event_round_trips_and_nan_loss_survives_as_nan():
    samples = [
        events.Started(100, 10, 10, 20, 0, "cpu", "/o"),
        events.Progress("caching_latents", 3, 20, "a.png"),
        events.StepDone(1, 1, 0.1, 0.2, 1e-4, 2.5, 247.5, 2**33),
        events.Saved("/o/x.safetensors", 10, 1, "epoch"),
        events.StateSaved("/o/x-state", 10),
        events.SampleSaved("/o/s.png", 10, 1, "猫"),
        events.Verified("/o/x.safetensors", 264, 264, "/a.png", "/b.png", True),
        events.Warning("3 images have no caption"),
        events.Paused(4),
        events.Resumed(4),
        events.Finished("completed", "/o/x.safetensors", 100, 360.0, 2**34),
        events.Failed("nan_loss", "NaN at step 7", 7),
    ]
    for event in samples:
        line = events.encode(event)
        assert "\n" not in line
        assert events.decode(line) == event
    nan_line = events.encode(events.StepDone(2, 1, math.nan, math.nan, 1e-4))
    assert "NaN" not in nan_line  # JSON has no NaN
    assert math.isnan(events.decode(nan_line).loss)


@pytest.mark.parametrize("line", ["", "hello", "[1, 2]", '{"event": "launch"}', '{"event": "step", "step": 1}', '{"event": "saved"'])
def test_lines_that_are_not_events_raise_a_format_error(line):
    with pytest.raises(events.EventFormatError):
        events.decode(line)


def test_a_newer_child_with_extra_fields_still_decodes():
    assert events.decode('{"event": "paused", "step": 3, "reason": "thermal"}') == events.Paused(3)


def test_control_commands_and_stdin_feed():
    import io

    from desktop.training.control import TrainingControl, feed_from_stream

    control = TrainingControl()
    thread = feed_from_stream(io.StringIO("pause\nnonsense\n  SAVE \nresume\n"), control)
    thread.join(timeout=5)
    assert control.pending() == ["pause", "save", "resume", "cancel"]  # end of stream cancels
    assert control.cancelled
