"""A training run's settings, under kohya sd-scripts' option names, read from and written to TOML.

Existing kohya configs mostly just work: a key kohya has means the same here. Keys that kohya has but
that change nothing here (``xformers``, data-loader workers...) are accepted and listed as ignored;
keys nobody knows are listed as unknown. Neither is dropped silently: the CLI and the window show
both lists. Pure Python (the UI imports it).

>>> config = config_from_mapping({"pretrained_model_name_or_path": "m.safetensors",
...                                "train_data_dir": "img", "resolution": "768,512", "xformers": True, "colour": 1})
>>> config.config.resolution, config.ignored_keys, config.unknown_keys
((768, 512), ('xformers',), ('colour',))
"""

from __future__ import annotations

import json
import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from desktop.core.errors import UserInputError
from desktop.library.atomic_write import write_text_atomically

LR_SCHEDULERS = ("constant", "constant_with_warmup", "cosine", "cosine_with_restarts", "linear", "polynomial")
MIXED_PRECISION = ("no", "fp16", "bf16")
SAVE_PRECISION = ("fp16", "bf16", "float")
OPTIMIZERS = ("AdamW",)
NETWORK_MODULES = ("networks.lora",)


class ConfigError(UserInputError):
    """A setting has a wrong type or value; the message names the key."""

    code = "training_config"


@dataclass(frozen=True)
class TrainingConfig:
    """Every setting of one run. Field names are kohya's where kohya has the option."""

    # model
    pretrained_model_name_or_path: str = ""
    vae: str = ""  # a separate VAE file for encoding the images ("" = the checkpoint's)
    v_parameterization: bool | None = None  # None: detected from the model
    clip_skip: int = 1
    # dataset
    train_data_dir: str = ""
    reg_data_dir: str = ""
    resolution: tuple[int, int] = (512, 512)  # (width, height)
    enable_bucket: bool = True
    min_bucket_reso: int = 256
    max_bucket_reso: int = 1024
    bucket_reso_steps: int = 64
    bucket_no_upscale: bool = False
    caption_extension: str = ".txt"
    trigger_word: str = ""
    shuffle_caption: bool = False
    keep_tokens: int = 0
    caption_separator: str = ","
    caption_dropout_rate: float = 0.0
    caption_tag_dropout_rate: float = 0.0
    flip_aug: bool = False
    prior_loss_weight: float = 1.0
    cache_latents: bool = True
    cache_latents_to_disk: bool = True
    # network
    network_module: str = "networks.lora"
    network_dim: int = 32
    network_alpha: float = 16.0
    network_args: tuple[str, ...] = ()  # "conv_dim=8", "conv_alpha=4" (LoCon)
    network_train_unet_only: bool = False
    network_train_text_encoder_only: bool = False
    network_weights: str = ""  # start from an existing LoRA of the same shape
    # optimisation
    max_train_steps: int = 0  # 0: from max_train_epochs
    max_train_epochs: int = 10
    train_batch_size: int = 1
    gradient_accumulation_steps: int = 1
    gradient_checkpointing: bool = False
    learning_rate: float = 1e-4
    unet_lr: float | None = None  # None: learning_rate
    text_encoder_lr: float | None = None
    lr_scheduler: str = "constant"
    lr_warmup_steps: int = 0
    lr_scheduler_num_cycles: int = 1
    lr_scheduler_power: float = 1.0
    optimizer_type: str = "AdamW"
    optimizer_args: tuple[str, ...] = ()  # "weight_decay=0.01", "betas=0.9,0.999"
    max_grad_norm: float = 1.0
    mixed_precision: str = "no"  # the frozen base weights: "fp16"/"bf16" halve their memory
    min_snr_gamma: float = 0.0  # 0: off
    noise_offset: float = 0.0
    seed: int = 0  # 0 would be a valid seed for kohya; here it means "pick one and record it"
    max_token_length: int = 75
    # output
    output_dir: str = ""
    output_name: str = "lora"
    save_precision: str = "fp16"
    save_every_n_epochs: int = 1
    save_every_n_steps: int = 0
    save_state: bool = True
    save_state_every_n_steps: int = 50
    resume: str = ""  # a state folder written by a previous run
    training_comment: str = ""
    # samples
    sample_prompts: tuple[str, ...] = ()  # prompts, A1111 syntax; kohya's prompt file also accepted
    sample_every_n_epochs: int = 0
    sample_every_n_steps: int = 0
    sample_sampler: str = "euler_a"
    sample_steps: int = 20
    # where it runs
    device: str = "auto"

    @property
    def unet_learning_rate(self) -> float:
        return self.learning_rate if self.unet_lr is None else self.unet_lr

    @property
    def text_encoder_learning_rate(self) -> float:
        return self.learning_rate if self.text_encoder_lr is None else self.text_encoder_lr

    @property
    def train_unet(self) -> bool:
        return not self.network_train_text_encoder_only

    @property
    def train_text_encoder(self) -> bool:
        return not self.network_train_unet_only and self.text_encoder_learning_rate > 0

    def network_arguments(self) -> dict[str, str]:
        """``network_args`` as a dict (kohya writes them as ``key=value`` strings)."""
        return _key_values(self.network_args, "network_args")

    def optimizer_arguments(self) -> dict[str, str]:
        return _key_values(self.optimizer_args, "optimizer_args")

    def output_folder(self) -> Path:
        return Path(self.output_dir).expanduser()


# kohya options that do nothing here (another platform's switches, logging, loaders); accepted, reported.
IGNORED_KOHYA_KEYS = frozenset(
    {
        "xformers", "sdpa", "mem_eff_attn", "max_data_loader_n_workers", "persistent_data_loader_workers",
        "logging_dir", "log_prefix", "log_with", "log_tracker_name", "lowram", "highvram", "save_model_as",
        "full_fp16", "full_bf16", "fp8_base", "no_half_vae", "cache_text_encoder_outputs", "v2", "sdxl",
        "vae_batch_size", "ddp_timeout", "console_log_simple", "wandb_api_key", "dataset_config",
        "huggingface_repo_id", "huggingface_token", "save_last_n_epochs", "save_last_n_steps", "mixed_precision_dtype",
        "save_state_on_train_end", "shuffle_caption_tags", "debiased_estimation_loss", "scale_weight_norms",
    }
)  # fmt: skip


@dataclass(frozen=True)
class LoadedConfig:
    config: TrainingConfig
    unknown_keys: tuple[str, ...] = ()  # nobody knows them (a typo?)
    ignored_keys: tuple[str, ...] = ()  # kohya's, but meaningless here

    def notes(self) -> list[str]:
        """What to tell the user about the keys that were not used."""
        lines = []
        if self.unknown_keys:
            lines.append("Unknown settings (not used): " + ", ".join(self.unknown_keys))
        if self.ignored_keys:
            lines.append("kohya settings with no effect here: " + ", ".join(self.ignored_keys))
        return lines


def load_config(path: Path) -> LoadedConfig:
    """Read a TOML file (flat, or kohya's sections, which are flattened as sd-scripts does)."""
    try:
        raw = Path(path).read_bytes()
    except OSError as error:
        raise ConfigError(f"Cannot read the training settings {path}: {error.strerror or error}", path=str(path)) from error
    try:
        document = tomllib.loads(raw.decode("utf-8-sig"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise ConfigError(f"{Path(path).name} is not a valid TOML file: {error}", path=str(path)) from error
    return config_from_mapping(_flatten(document), base=Path(path).parent)


def config_from_mapping(values: Mapping[str, Any], *, base: Path | None = None) -> LoadedConfig:
    """Settings from plain values (TOML, the window's form); relative paths are taken from ``base``."""
    known = {item.name: item for item in fields(TrainingConfig)}
    chosen: dict[str, Any] = {}
    unknown, ignored = [], []
    for key, value in values.items():
        if key in known:
            chosen[key] = _coerce(key, value, known[key].default)
        elif key in IGNORED_KOHYA_KEYS:
            ignored.append(key)
        else:
            unknown.append(key)
    chosen = _read_prompt_file(chosen, base)
    config = validate(_absolute_paths(TrainingConfig(**chosen), base))
    return LoadedConfig(config, tuple(sorted(unknown)), tuple(sorted(ignored)))


def validate(config: TrainingConfig) -> TrainingConfig:
    """The same config, or ``ConfigError`` naming the first wrong setting."""
    checks = [
        (config.pretrained_model_name_or_path != "", "pretrained_model_name_or_path", "choose the checkpoint to train on"),
        (config.train_data_dir != "", "train_data_dir", "choose the folder of training images"),
        (config.network_module in NETWORK_MODULES, "network_module", "only networks.lora is supported (LoCon: network_args conv_dim)"),
        (config.network_dim >= 1, "network_dim", "must be at least 1"),
        (config.network_alpha > 0, "network_alpha", "must be above 0"),
        (config.max_train_steps > 0 or config.max_train_epochs > 0, "max_train_steps", "set max_train_steps or max_train_epochs"),
        (config.train_batch_size >= 1, "train_batch_size", "must be at least 1"),
        (config.gradient_accumulation_steps >= 1, "gradient_accumulation_steps", "must be at least 1"),
        (config.learning_rate > 0, "learning_rate", "must be above 0"),
        (config.lr_scheduler in LR_SCHEDULERS, "lr_scheduler", "one of " + ", ".join(LR_SCHEDULERS)),
        (config.optimizer_type in OPTIMIZERS, "optimizer_type", "only AdamW is available (bitsandbytes does not run on a Mac)"),
        (config.mixed_precision in MIXED_PRECISION, "mixed_precision", "one of no, fp16, bf16"),
        (config.save_precision in SAVE_PRECISION, "save_precision", "one of fp16, bf16, float"),
        (all(64 <= side <= 4096 and side % 8 == 0 for side in config.resolution), "resolution", "sides from 64 to 4096, multiples of 8"),
        (config.bucket_reso_steps >= 8 and config.bucket_reso_steps % 8 == 0, "bucket_reso_steps", "a multiple of 8"),
        (0 < config.min_bucket_reso <= config.max_bucket_reso, "min_bucket_reso", "must be positive and not above max_bucket_reso"),
        (0 <= config.caption_dropout_rate <= 1 and 0 <= config.caption_tag_dropout_rate <= 1, "caption_dropout_rate", "between 0 and 1"),
        (config.keep_tokens >= 0, "keep_tokens", "must not be negative"),
        (config.clip_skip >= 1, "clip_skip", "must be at least 1"),
        (config.max_token_length == 75, "max_token_length", "only 75 is supported"),
        (not (config.network_train_unet_only and config.network_train_text_encoder_only), "network_train_unet_only",
         "cannot be combined with network_train_text_encoder_only"),
        (config.min_snr_gamma >= 0 and config.noise_offset >= 0, "min_snr_gamma", "must not be negative"),
        (config.output_name.strip() not in ("", ".", "..") and not any(c in config.output_name for c in '/\\:\0'),
         "output_name", "a file name without / \\ or :"),
    ]  # fmt: skip
    for ok, key, why in checks:
        if not ok:
            raise ConfigError(f"Training setting {key}: {why}", key=key)
    config.network_arguments()
    config.optimizer_arguments()
    return config


def to_toml(config: TrainingConfig) -> str:
    """The whole config as TOML (every key, so a run's file says exactly what was used)."""
    lines = ["# Diffusion Desktop LoRA training (kohya sd-scripts option names)"]
    for item in fields(TrainingConfig):
        value = getattr(config, item.name)
        if value is None:
            continue
        lines.append(f"{item.name} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"


def save_config(config: TrainingConfig, path: Path) -> Path:
    write_text_atomically(Path(path), to_toml(config))
    return Path(path)


# --------------------------------------------------------------------------- presets

PRESETS: dict[str, dict[str, Any]] = {
    # A person or character: keep the trigger word first, no flips (faces and outfits are not symmetric).
    "sd15_character": {
        "resolution": (512, 512), "network_dim": 32, "network_alpha": 16.0, "learning_rate": 1e-4,
        "unet_lr": 1e-4, "text_encoder_lr": 5e-5, "max_train_epochs": 10, "train_batch_size": 2,
        "lr_scheduler": "cosine_with_restarts", "lr_warmup_steps": 0, "shuffle_caption": True, "keep_tokens": 1,
        "flip_aug": False, "min_snr_gamma": 5.0, "noise_offset": 0.0, "save_every_n_epochs": 2,
        "max_bucket_reso": 768, "gradient_checkpointing": True,
    },
    # A style: more capacity, flips are fine, the text encoder learns less.
    "sd15_style": {
        "resolution": (512, 512), "network_dim": 64, "network_alpha": 32.0, "learning_rate": 1e-4,
        "unet_lr": 1e-4, "text_encoder_lr": 2e-5, "max_train_epochs": 12, "train_batch_size": 2,
        "lr_scheduler": "cosine", "lr_warmup_steps": 0, "shuffle_caption": True, "keep_tokens": 0,
        "flip_aug": True, "min_snr_gamma": 5.0, "noise_offset": 0.05, "save_every_n_epochs": 2,
        "max_bucket_reso": 768, "gradient_checkpointing": True,
    },
    # SDXL on 16 GB: UNet only, 1024 px buckets, half-precision base, checkpointing.
    "sdxl": {
        "resolution": (1024, 1024), "network_dim": 16, "network_alpha": 8.0, "learning_rate": 1e-4,
        "unet_lr": 1e-4, "network_train_unet_only": True, "max_train_epochs": 10, "train_batch_size": 1,
        "lr_scheduler": "constant_with_warmup", "lr_warmup_steps": 50, "shuffle_caption": True, "keep_tokens": 1,
        "flip_aug": False, "min_snr_gamma": 5.0, "mixed_precision": "bf16", "gradient_checkpointing": True,
        "min_bucket_reso": 512, "max_bucket_reso": 2048, "save_every_n_epochs": 2,
    },
}  # fmt: skip


_PRESET_KEYS = frozenset(key for values in PRESETS.values() for key in values)


def apply_preset(config: TrainingConfig, preset: str) -> TrainingConfig:
    """The config with a preset's values; the model, dataset and output stay the user's.

    Every key any preset sets goes back to its default first, so SD1.5 after SDXL does not keep
    SDXL's UNet-only training.
    """
    try:
        values = PRESETS[preset]
    except KeyError:
        raise ConfigError(f"Unknown preset {preset!r}; presets: {', '.join(PRESETS)}", key="preset") from None
    defaults = {item.name: item.default for item in fields(TrainingConfig) if item.name in _PRESET_KEYS}
    return replace(config, **{**defaults, **values})


# --------------------------------------------------------------------------- conversions


def _flatten(document: Mapping[str, Any]) -> dict[str, Any]:
    """sd-scripts ignores section names: ``[training] seed = 1`` is ``seed = 1``."""
    flat: dict[str, Any] = {}
    for key, value in document.items():
        if isinstance(value, dict):
            flat.update(value)
        else:
            flat[key] = value
    return flat


def _coerce(key: str, value: Any, default: Any) -> Any:
    def wrong(expected: str) -> ConfigError:
        return ConfigError(f"Training setting {key}: expected {expected}, got {value!r}", key=key)

    if key == "resolution":
        return _resolution(key, value)
    if isinstance(default, bool) or (default is None and key == "v_parameterization"):
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        raise wrong("true or false")
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise wrong("a whole number")
        try:
            number = float(value)
        except ValueError:
            raise wrong("a whole number") from None
        if not number.is_integer():
            raise wrong("a whole number")
        return int(number)
    if isinstance(default, float) or key in ("unet_lr", "text_encoder_lr"):
        if isinstance(value, bool):
            raise wrong("a number")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise wrong("a number") from None
        if not math.isfinite(number):
            raise wrong("a finite number")
        return number
    if isinstance(default, tuple):
        items = value.split() if isinstance(value, str) and key != "sample_prompts" else value
        if isinstance(items, str):
            items = [items]
        if not isinstance(items, (list, tuple)) or not all(isinstance(item, (str, int, float)) for item in items):
            raise wrong("a list of strings")
        return tuple(str(item) for item in items)
    if value is None:
        return default
    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
        raise wrong("text")
    return str(value)


def _resolution(key: str, value: Any) -> tuple[int, int]:
    """kohya: ``512``, ``"512"``, ``"768,512"`` (width,height) or a two-item list."""
    try:
        if isinstance(value, (list, tuple)):
            parts = [int(v) for v in value]
        elif isinstance(value, int) and not isinstance(value, bool):
            parts = [value]
        else:
            parts = [int(v) for v in str(value).replace("x", ",").split(",")]
    except (TypeError, ValueError):
        raise ConfigError(f"Training setting {key}: expected 512 or \"width,height\", got {value!r}", key=key) from None
    if len(parts) == 1:
        parts *= 2
    if len(parts) != 2:
        raise ConfigError(f"Training setting {key}: expected 512 or \"width,height\", got {value!r}", key=key)
    return parts[0], parts[1]


def _key_values(items: tuple[str, ...], key: str) -> dict[str, str]:
    result = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise ConfigError(f"Training setting {key}: {item!r} is not name=value", key=key)
        result[name.strip()] = value.strip()
    return result


def _absolute_paths(config: TrainingConfig, base: Path | None) -> TrainingConfig:
    if base is None:
        return config
    changes = {}
    for key in ("pretrained_model_name_or_path", "vae", "train_data_dir", "reg_data_dir", "output_dir", "network_weights", "resume"):
        value = getattr(config, key)
        if value and not Path(value).expanduser().is_absolute():
            changes[key] = str((base / Path(value)).resolve())
    return replace(config, **changes)


def _read_prompt_file(chosen: dict[str, Any], base: Path | None) -> dict[str, Any]:
    """kohya's ``sample_prompts`` is a file of prompts (one per line, ``#`` comments); ours may list them."""
    prompts = chosen.get("sample_prompts")
    if not prompts or len(prompts) != 1:
        return chosen
    candidate = Path(prompts[0]).expanduser()
    if candidate.suffix.lower() not in (".txt", ".toml") or len(prompts[0]) > 1024:
        return chosen
    if not candidate.is_absolute() and base is not None:
        candidate = base / candidate
    try:
        text = candidate.read_text(encoding="utf-8-sig")
    except OSError as error:
        raise ConfigError(f"Cannot read the sample prompt file {candidate}: {error.strerror or error}", key="sample_prompts") from error
    lines = tuple(line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#"))
    return {**chosen, "sample_prompts": lines}


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, tuple):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    return json.dumps(str(value), ensure_ascii=False)  # a JSON string is a valid TOML basic string
