"""Saving a trained LoRA as kohya's ``train_network.py`` does: tensors, ``ss_*`` and ``modelspec.*`` metadata, hashes.

Why kohya's exact spelling: civitai reads ``ss_tag_frequency``, ``ss_base_model_version`` and the
training facts from it; A1111's and ComfyUI's LoRA browsers show ``ss_*`` keys and use
``sshs_model_hash`` so they need not hash the file; the SAI model spec (``modelspec.*``) is what
newer tools read. Values are written as kohya writes them: ``str()`` of the Python value
(``"None"``, ``"True"``, ``"0.0001"``, ``"(512, 512)"``), JSON for the nested ones (with kohya's
``json.dumps`` defaults, so non-ASCII text is escaped and survives any reader).

``sshs_model_hash`` / ``sshs_legacy_hash`` follow kohya's ``precalculate_safetensors_hashes``: the
file is serialised in memory with only the ``ss_*`` metadata, the model hash is the sha256 of the
bytes after the header (the same for the final file, whose tensor bytes are identical: this is
``desktop.library.hashes.safetensors_tensor_hash``), the legacy hash addnet's 64 KiB at 1 MiB.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import save as save_to_bytes

from desktop.core.errors import UnsupportedModel
from desktop.library.atomic_write import write_bytes_atomically
from desktop.library.taxonomy import ModelFamily

SAI_MODEL_SPEC = "1.0.1"
NETWORK_MODULE = "networks.lora"
KEY_PATTERN = re.compile(r"^(lora_unet|lora_te|lora_te1|lora_te2)_[A-Za-z0-9_]+\.(lora_down\.weight|lora_up\.weight|alpha)$")

# What every file we write holds (the CONTRACTS minimum plus the facts the brief asks for).
REQUIRED_KEYS = (
    "ss_v2", "ss_base_model_version", "ss_network_module", "ss_network_dim", "ss_network_alpha",
    "ss_network_args", "ss_output_name", "ss_learning_rate", "ss_unet_lr", "ss_text_encoder_lr",
    "ss_num_epochs", "ss_epoch", "ss_steps", "ss_resolution", "ss_tag_frequency", "ss_num_train_images",
    "ss_batch_size_per_device", "ss_clip_skip", "ss_seed", "ss_lr_scheduler", "ss_optimizer",
    "ss_noise_offset", "ss_min_snr_gamma", "ss_mixed_precision", "ss_sd_model_name", "ss_new_sd_model_hash",
    "ss_training_started_at", "ss_training_finished_at", "ss_session_id",
    "modelspec.sai_model_spec", "modelspec.architecture", "modelspec.implementation", "modelspec.title",
    "modelspec.resolution", "modelspec.date", "modelspec.prediction_type",
)  # fmt: skip
HASH_KEYS = ("sshs_model_hash", "sshs_legacy_hash")

_BASE_VERSIONS = {ModelFamily.SD1: "sd_v1", ModelFamily.SD2: "sd_v2", ModelFamily.SDXL: "sdxl_base_v1-0"}
_IMPL_STABILITY = "https://github.com/Stability-AI/generative-models"
_IMPL_DIFFUSERS = "diffusers"
_LEGACY_OFFSET, _LEGACY_LENGTH = 0x100000, 0x10000


def _session_id() -> int:
    return secrets.randbelow(2**32)  # kohya: random.randint(0, 2**32), one per training run


@dataclass
class TrainingFacts:
    """What a LoRA's metadata says about its training; defaults are kohya's.

    ``epoch``/``steps``/``training_finished_at`` describe the save being written (kohya updates
    them at every save); ``num_train_images`` counts images times repeats, as kohya does.
    """

    family: ModelFamily
    network_dim: int = 4
    network_alpha: float = 1.0
    output_name: str = "last"
    v_prediction: bool = False
    network_args: dict[str, str] = field(default_factory=dict)  # {"conv_dim": "4", "conv_alpha": "1"}
    learning_rate: float = 1e-4
    unet_lr: float | None = None
    text_encoder_lr: float | None = None
    epochs: int = 1
    epoch: int = 0
    steps: int = 0
    max_train_steps: int | None = None
    resolution: tuple[int, int] = (512, 512)  # (width, height)
    batch_size: int = 1
    gradient_accumulation_steps: int = 1
    gradient_checkpointing: bool = False
    clip_skip: int | None = None
    seed: int | None = None
    lr_scheduler: str = "constant"
    lr_warmup_steps: int = 0
    optimizer: str = "torch.optim.adamw.AdamW"
    optimizer_args: dict[str, str] = field(default_factory=dict)
    max_grad_norm: float = 1.0
    noise_offset: float | None = None
    min_snr_gamma: float | None = None
    mixed_precision: str = "no"  # "no", "fp16", "bf16" (accelerate's names, as kohya records them)
    cache_latents: bool = True
    shuffle_caption: bool = False
    keep_tokens: int = 0
    caption_dropout_rate: float = 0.0
    flip_aug: bool = False
    enable_bucket: bool = True
    min_bucket_reso: int = 256
    max_bucket_reso: int = 1024
    tag_frequency: dict[str, dict[str, int]] = field(default_factory=dict)  # {folder: {tag: count}}
    dataset_dirs: dict[str, dict[str, int]] = field(default_factory=dict)  # {"10_cat": {"n_repeats": 10, "img_count": 20}}
    reg_dataset_dirs: dict[str, dict[str, int]] = field(default_factory=dict)
    num_train_images: int = 0
    num_reg_images: int = 0
    num_batches_per_epoch: int | None = None
    base_model_name: str = ""  # the checkpoint's file name
    base_model_sha256: str | None = None  # of the whole checkpoint file (kohya's ss_new_sd_model_hash)
    base_model_legacy_hash: str | None = None  # A1111's old 8-char hash (kohya's ss_sd_model_hash)
    training_started_at: float = field(default_factory=time.time)
    training_finished_at: float | None = None  # None: now
    session_id: int = field(default_factory=_session_id)
    trigger_word: str = ""
    comment: str = ""
    extra: dict[str, str] = field(default_factory=dict)  # more keys, written last (they win)


def lora_metadata(facts: TrainingFacts) -> dict[str, str]:
    """The ``ss_*`` and ``modelspec.*`` metadata of a save, every value a string."""
    family = ModelFamily(facts.family)
    if family not in _BASE_VERSIONS:
        raise UnsupportedModel(f"no kohya LoRA format for {family.label}", family=family.value)
    finished = time.time() if facts.training_finished_at is None else facts.training_finished_at
    metadata = {**_ss_metadata(facts, family, finished), **_modelspec(facts, family, finished)}
    metadata.update(facts.extra)
    return {_text(key): _text(value) for key, value in metadata.items()}


def _ss_metadata(facts: TrainingFacts, family: ModelFamily, finished: float) -> dict[str, object]:
    width, height = facts.resolution
    optimizer_args = ",".join(f"{key}={value}" for key, value in facts.optimizer_args.items())
    values: dict[str, object] = {
        "ss_session_id": facts.session_id,
        "ss_training_started_at": facts.training_started_at,
        "ss_training_finished_at": finished,
        "ss_output_name": facts.output_name,
        "ss_learning_rate": facts.learning_rate,
        "ss_text_encoder_lr": facts.text_encoder_lr,
        "ss_unet_lr": facts.unet_lr,
        "ss_num_train_images": facts.num_train_images,
        "ss_num_reg_images": facts.num_reg_images,
        "ss_num_batches_per_epoch": facts.num_batches_per_epoch,
        "ss_num_epochs": facts.epochs,
        "ss_epoch": facts.epoch,
        "ss_steps": facts.steps,
        "ss_max_train_steps": facts.max_train_steps,
        "ss_gradient_checkpointing": facts.gradient_checkpointing,
        "ss_gradient_accumulation_steps": facts.gradient_accumulation_steps,
        "ss_lr_warmup_steps": facts.lr_warmup_steps,
        "ss_lr_scheduler": facts.lr_scheduler,
        "ss_network_module": NETWORK_MODULE,
        "ss_network_dim": facts.network_dim,
        "ss_network_alpha": float(facts.network_alpha),
        "ss_network_args": json.dumps(facts.network_args),
        "ss_mixed_precision": facts.mixed_precision,
        "ss_full_fp16": False,
        "ss_v2": family is ModelFamily.SD2,
        "ss_base_model_version": base_model_version(family, facts.v_prediction),
        "ss_clip_skip": facts.clip_skip,
        "ss_cache_latents": facts.cache_latents,
        "ss_seed": facts.seed,
        "ss_noise_offset": facts.noise_offset,
        "ss_min_snr_gamma": facts.min_snr_gamma,
        "ss_training_comment": facts.comment or None,
        "ss_optimizer": facts.optimizer + (f"({optimizer_args})" if optimizer_args else ""),
        "ss_max_grad_norm": facts.max_grad_norm,
        "ss_caption_dropout_rate": facts.caption_dropout_rate,
        "ss_batch_size_per_device": facts.batch_size,
        "ss_total_batch_size": facts.batch_size * facts.gradient_accumulation_steps,
        "ss_resolution": (width, height),
        "ss_flip_aug": facts.flip_aug,
        "ss_shuffle_caption": facts.shuffle_caption,
        "ss_keep_tokens": facts.keep_tokens,
        "ss_enable_bucket": facts.enable_bucket,
        "ss_min_bucket_reso": facts.min_bucket_reso,
        "ss_max_bucket_reso": facts.max_bucket_reso,
        "ss_dataset_dirs": json.dumps(facts.dataset_dirs),
        "ss_reg_dataset_dirs": json.dumps(facts.reg_dataset_dirs),
        "ss_tag_frequency": json.dumps(facts.tag_frequency),
        "ss_sd_model_name": facts.base_model_name,
        "ss_new_sd_model_hash": facts.base_model_sha256,
    }
    if facts.base_model_legacy_hash:
        values["ss_sd_model_hash"] = facts.base_model_legacy_hash
    return values


def base_model_version(family: ModelFamily, v_prediction: bool = False) -> str:
    """kohya's ``ss_base_model_version``: only SD2 records v-prediction in it (``sd_v2_v``)."""
    version = _BASE_VERSIONS[ModelFamily(family)]
    return version + "_v" if family is ModelFamily.SD2 and v_prediction else version


def _modelspec(facts: TrainingFacts, family: ModelFamily, finished: float) -> dict[str, str]:
    """kohya's ``sai_model_spec.build_metadata`` for a LoRA (spec 1.0.1, which adds the trigger phrase)."""
    if family is ModelFamily.SDXL:
        architecture = "stable-diffusion-xl-v1-base"
    elif family is ModelFamily.SD2:
        architecture = "stable-diffusion-v2-768-v" if facts.v_prediction else "stable-diffusion-v2-512"
    else:
        architecture = "stable-diffusion-v1"
    width, height = facts.resolution
    spec = {
        "modelspec.sai_model_spec": SAI_MODEL_SPEC,
        "modelspec.architecture": f"{architecture}/lora",
        "modelspec.implementation": _IMPL_STABILITY if family is ModelFamily.SDXL else _IMPL_DIFFUSERS,
        "modelspec.title": facts.output_name,
        "modelspec.date": datetime.datetime.fromtimestamp(int(finished)).isoformat(),
        "modelspec.resolution": f"{width}x{height}",
        "modelspec.prediction_type": "v" if facts.v_prediction else "epsilon",
    }
    if facts.clip_skip is not None and facts.clip_skip > 1:
        spec["modelspec.encoder_layer"] = str(facts.clip_skip)
    if facts.trigger_word:
        spec["modelspec.trigger_phrase"] = facts.trigger_word
    if facts.comment:
        spec["modelspec.description"] = facts.comment
    return spec


def _text(value: object) -> str:
    """``str(value)`` that UTF-8 can encode: a lone surrogate (e.g. from an undecodable file name) becomes U+FFFD."""
    text = str(value)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


# ----------------------------------------------------------------------------- the file


def precalculate_hashes(tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str]) -> tuple[str, str]:
    """kohya's ``precalculate_safetensors_hashes``: (model hash, legacy hash) of the file saved with its ``ss_*`` keys only."""
    data = save_to_bytes(dict(tensors), {key: value for key, value in metadata.items() if key.startswith("ss_")})
    header_length = int.from_bytes(data[:8], "little")
    model_hash = hashlib.sha256(memoryview(data)[8 + header_length :]).hexdigest()
    legacy_hash = hashlib.sha256(memoryview(data)[_LEGACY_OFFSET : _LEGACY_OFFSET + _LEGACY_LENGTH]).hexdigest()[:8]
    return model_hash, legacy_hash


def save_kohya_lora(
    path: str | Path,
    tensors: Mapping[str, torch.Tensor],
    metadata: Mapping[str, str],
    *,
    dtype: torch.dtype | None = torch.float16,
) -> Path:
    """Write a kohya LoRA file with ``sshs_model_hash``/``sshs_legacy_hash`` added; returns its path.

    Tensors go to the CPU, contiguous, floating ones in ``dtype`` (None keeps theirs). The write
    is atomic: a temporary file in the same folder, fsync, rename; a crash leaves the old file
    or the new one. Raises ``ValueError`` for a key outside kohya's pattern and ``TypeError``
    for metadata that is not all strings.
    """
    path = Path(path)
    wrong = [key for key in tensors if not KEY_PATTERN.match(key)]
    if wrong:
        raise ValueError(f"not kohya LoRA tensor names: {', '.join(wrong[:5])}")
    odd = [key for key, value in metadata.items() if not isinstance(key, str) or not isinstance(value, str)]
    if odd:
        raise TypeError(f"safetensors metadata must be strings; not so for {', '.join(map(str, odd[:5]))}")
    prepared = {key: _prepared(tensor, dtype) for key, tensor in tensors.items()}
    model_hash, legacy_hash = precalculate_hashes(prepared, metadata)
    full = {**metadata, "sshs_model_hash": model_hash, "sshs_legacy_hash": legacy_hash}
    # Python writes the bytes: safetensors' save_file would create the file owner-only (0600).
    write_bytes_atomically(path, save_to_bytes(prepared, full))
    return path


def _prepared(tensor: torch.Tensor, dtype: torch.dtype | None) -> torch.Tensor:
    tensor = tensor.detach().to("cpu")
    if dtype is not None and tensor.is_floating_point():
        tensor = tensor.to(dtype)
    return tensor.contiguous()
