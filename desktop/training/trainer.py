"""The LoRA training loop: one run from a :class:`TrainingConfig` to kohya-format files.

Linear and headless: load the checkpoint, scan the dataset, cache latents, build the network, then
step. Everything it has to say goes out as events (:mod:`desktop.training.events`); commands come in
through a :class:`TrainingControl`, polled between steps. Every random draw is seeded from the run's
seed and the step, so a run resumed from its state folder ends with the same weights as one that was
never interrupted.
"""

from __future__ import annotations

import csv
import math
import random
import resource
import secrets
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from desktop.core.errors import DesktopError
from desktop.training import events
from desktop.training.config import ConfigError, TrainingConfig, save_config
from desktop.training.control import TrainingControl
from desktop.training.distributed import Distributed, from_environment
from desktop.training.dataset import Dataset, make_caption, options_from_config, scan_dataset
from desktop.training.buckets import crop_plan, epoch_batches
from desktop.training.images import load_training_image
from desktop.training.kohya_export import TrainingFacts, lora_metadata, save_kohya_lora
from desktop.training.latent_cache import LatentCache, encode_latents
from desktop.training.loss import add_noise, min_snr_weights, offset_noise, per_sample_mse, target
from desktop.training.lora_network import LoRANetwork
from desktop.training.samples import parse_prompt_line, render_sample, sampler_name
from desktop.training.state import TrainingState, load_state, mismatches, save_state
from desktop.training.text_encoding import encode_captions, sdxl_time_ids

Emit = Callable[[events.TrainingEvent], None]
_SEED_LIMIT = 2**32 - 1


class NaNLoss(DesktopError):
    code = "nan_loss"


@dataclass(frozen=True)
class RunPaths:
    """Where a run writes: LoRA files in ``output_dir`` (models/Lora), the rest beside them."""

    output_dir: Path
    name: str

    def lora(self, suffix: str = "") -> Path:
        return self.output_dir / f"{self.name}{suffix}.safetensors"

    @property
    def run_folder(self) -> Path:  # config.toml, loss.csv, samples/
        return self.output_dir / f"{self.name}-training"

    @property
    def state_folder(self) -> Path:
        return self.output_dir / f"{self.name}-state"

    @property
    def latent_folder(self) -> Path:  # hidden: model browsers skip it
        return self.output_dir / f".{self.name}-latents"


def run_paths(config: TrainingConfig) -> RunPaths:
    return RunPaths(config.output_folder(), config.output_name)


def train(
    config: TrainingConfig, emit: Emit, control: TrainingControl | None = None, *, distributed: Distributed | None = None
) -> events.TrainingEvent:
    """Run a whole training; returns the last event (``Finished`` or ``Failed``), which was also emitted.

    Under ``accelerate launch`` every process runs this; only the main one emits and writes files.
    """
    distributed = distributed or from_environment()
    if not distributed.is_main:
        emit = _silent
    run = _Run(config, emit, control or TrainingControl(), distributed)
    try:
        outcome: events.TrainingEvent = run.execute()
    except InterruptedError:  # cancelled while preparing (hashing the checkpoint): nothing to save yet
        outcome = events.Finished(events.OUTCOME_CANCELLED, "", run.step, time.time() - run.started_at, 0)
    except NaNLoss as error:
        outcome = events.Failed(events.FAILURE_NAN_LOSS, error.message, int(error.details.get("step", run.step)))
    except DesktopError as error:
        kind = events.FAILURE_CONFIG if error.code in ("training_config", "training_state", "invalid_request") else events.FAILURE_DATASET
        if error.code in ("model_file", "unsupported_model"):
            kind = events.FAILURE_CONFIG
        outcome = events.Failed(kind, error.message, run.step or None)
    except (torch.OutOfMemoryError, MemoryError) as error:
        outcome = events.Failed(events.FAILURE_OUT_OF_MEMORY, f"Out of memory: {error}".strip(), run.step or None)
    except Exception as error:  # noqa: BLE001 - reported with its traceback on stderr, never swallowed
        import traceback

        traceback.print_exc(file=sys.stderr)
        outcome = events.Failed(events.FAILURE_INTERNAL, f"{type(error).__name__}: {error}", run.step or None)
    emit(outcome)
    return outcome


class _Run:
    def __init__(self, config: TrainingConfig, emit: Emit, control: TrainingControl, distributed: Distributed) -> None:
        if distributed.active and not config.seed:
            raise ConfigError("Training setting seed: set a seed for a multi-process run (every process must draw alike)", key="seed")
        seed = config.seed or secrets.randbelow(_SEED_LIMIT) + 1
        self.distributed = distributed
        self.config = replace(config, seed=seed)
        self.emit = emit
        self.control = control
        self.paths = run_paths(self.config)
        self.step = 0
        self.started_at = time.time()
        self.losses: deque[float] = deque()
        self.peak_memory = 0
        self.session_id = secrets.randbelow(2**31)  # kohya's ss_session_id: the same for every save of a run
        self.base_hashes: tuple[str | None, str | None] = (None, None)

    # ------------------------------------------------------------------ the run

    def execute(self) -> events.TrainingEvent:
        config = self.config
        if self.distributed.is_main:
            self.paths.run_folder.mkdir(parents=True, exist_ok=True)
            save_config(config, self.paths.run_folder / "config.toml")
        self.device_name, self.model = self._load_model()
        self.dataset = self._scan_dataset()
        self.batches_per_epoch = len(epoch_batches(self.dataset, 1, config.train_batch_size, config.seed))
        self.batches_per_step = config.gradient_accumulation_steps * self.distributed.world
        self.steps_per_epoch = max(1, math.ceil(self.batches_per_epoch / self.batches_per_step))
        self.total_steps = config.max_train_steps or config.max_train_epochs * self.steps_per_epoch
        self.epochs = math.ceil(self.total_steps / self.steps_per_epoch)
        self.losses = deque(maxlen=self.steps_per_epoch)
        self.network = self._build_network()
        self.optimizer, self.scheduler = self._optimizer()
        resumed_from = self._resume()
        self.latent_cache = LatentCache(self.paths.latent_folder, vae_id=_vae_id(self.model))
        self.latent_memory: dict[tuple[str, bool], torch.Tensor] = {}
        if config.cache_latents:
            self._cache_latents()
        self.emit(
            events.Started(
                total_steps=self.total_steps, steps_per_epoch=self.steps_per_epoch, epochs=self.epochs,
                images=self.dataset.image_count, resumed_from_step=resumed_from, device=self.device_name,
                output_dir=str(self.paths.output_dir),
            )
        )  # fmt: skip
        outcome = self._loop()
        return outcome

    def _loop(self) -> events.TrainingEvent:
        config = self.config
        self.loss_log = _LossLog(self.paths.run_folder / "loss.csv", self.step) if self.distributed.is_main else None
        timer = _StepTimer()
        while self.step < self.total_steps:
            epoch = self.step // self.steps_per_epoch + 1
            batches = epoch_batches(self.dataset, epoch, config.train_batch_size, config.seed)
            first = (self.step % self.steps_per_epoch) * self.batches_per_step
            groups = _groups(batches[first:], self.batches_per_step)
            for group in groups:
                if self.step >= self.total_steps:
                    break
                stop = self._obey_commands()
                if stop is not None:
                    return stop
                loss = self._optimizer_step(group, epoch)
                self.step += 1
                self.losses.append(loss)
                seconds = timer.lap()
                average = sum(self.losses) / len(self.losses)
                lr = float(self.scheduler.get_last_lr()[0])
                if self.loss_log is not None:
                    self.loss_log.write(self.step, epoch, loss, average, lr)
                memory = self._memory()
                self.emit(
                    events.StepDone(
                        step=self.step, epoch=epoch, loss=loss, average_loss=average, lr=lr, seconds_per_step=seconds,
                        eta_seconds=seconds * (self.total_steps - self.step), memory_bytes=memory,
                    )
                )  # fmt: skip
                self._periodic_saves(epoch)
            if self.step % self.steps_per_epoch == 0 or self.step >= self.total_steps:
                self._end_of_epoch(epoch)
        return self._finish()

    def _obey_commands(self) -> events.TrainingEvent | None:
        if self.distributed.active:  # only cancel is collective; the app's other commands are single-process
            if self.distributed.any(self.control.cancelled, self.plan.device):
                return self._cancelled()
            return None
        for command in self.control.pending():
            outcome = self._command(command)
            if outcome is not None:
                return outcome
        return None

    def _command(self, command: str) -> events.TrainingEvent | None:
        epoch = self.step // self.steps_per_epoch + 1
        if command == "cancel":
            return self._cancelled()
        if command == "save":
            self._save_lora(self.paths.lora(f"-step{self.step:08d}"), "manual", epoch)
        elif command == "sample":
            self._samples(epoch)
        elif command == "pause":
            self.emit(events.Paused(self.step))
            while True:
                waited = self.control.wait(timeout=1.0)
                if waited in (None, "pause"):
                    continue
                if waited == "resume":
                    self.emit(events.Resumed(self.step))
                    return None
                outcome = self._command(waited)
                if outcome is not None:
                    return outcome
        return None

    def _cancelled(self) -> events.TrainingEvent:
        epoch = max(1, math.ceil(self.step / self.steps_per_epoch))
        path = self._save_lora(self.paths.lora(f"-step{self.step:08d}"), "cancelled", epoch) if self.step else None
        if self.step and self.config.save_state:
            self._save_state()
        return events.Finished(
            events.OUTCOME_CANCELLED, str(path or ""), self.step, time.time() - self.started_at, self._peak_memory()
        )

    def _finish(self) -> events.TrainingEvent:
        path = self._save_lora(self.paths.lora(), "final", self.epochs)
        if self.config.save_state:
            self._save_state()
        self._verify(path)
        return events.Finished(
            events.OUTCOME_COMPLETED, str(path), self.step, time.time() - self.started_at, self._peak_memory()
        )

    # ------------------------------------------------------------------ one step

    def _optimizer_step(self, group: list[list[Any]], epoch: int) -> float:
        """One optimizer step over ``group``'s batches (gradient accumulation, and processes if launched).

        Each batch's loss is divided by the group's size, so the summed gradients are the group's
        mean whatever the split. A NaN anywhere stops every process before the weights change.
        """
        config, device = self.config, self.plan.device
        total = 0.0
        for position, batch in self.distributed.my_batches(group):
            loss = self._batch_loss(batch, epoch, position) / len(group)
            if torch.isfinite(loss):
                loss.backward()
            total += float(loss.detach())
        total = self.distributed.sum(total, device)
        if not math.isfinite(total):
            self.optimizer.zero_grad(set_to_none=True)
            raise NaNLoss(
                f"The loss became NaN at step {self.step + 1}; nothing was saved from this step. "
                "Lower the learning rate, or train with mixed_precision = \"no\" (fp32).",
                step=self.step + 1,
            )
        parameters = [p for group_ in self.optimizer.param_groups for p in group_["params"]]
        self.distributed.sum_gradients(parameters)
        if config.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(parameters, config.max_grad_norm)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return total

    def _batch_loss(self, batch: list[Any], epoch: int, micro: int) -> torch.Tensor:
        config, model = self.config, self.model
        generator = torch.Generator().manual_seed(_mix(config.seed, self.step, micro))
        caption_rng = random.Random(_mix(config.seed, self.step, micro, 1))
        items = [self.dataset.items[ref.item] for ref in batch]
        captions = [make_caption(item.caption, self.dataset_options, caption_rng) for item in items]
        latents, originals, crops = self._latents_for(batch)
        device, dtype = self.plan.device, self.plan.unet_dtype
        latents = latents.to(device, torch.float32)
        noise = offset_noise(torch.randn(latents.shape, generator=generator), config.noise_offset, generator).to(device)
        timesteps = torch.randint(0, len(model.alphas_cumprod), (latents.shape[0],), generator=generator).to(device)
        acp = model.alphas_cumprod
        noisy = add_noise(latents, noise, timesteps, acp)
        hidden, pooled = encode_captions(
            captions, model, clip_skip=config.clip_skip, with_grad=self.trains_text_encoder
        )
        extra = {}
        if pooled is not None:
            target_hw = (latents.shape[-2] * 8, latents.shape[-1] * 8)
            time_ids = sdxl_time_ids(originals, crops, target_hw).to(device, dtype)
            extra["added_cond_kwargs"] = {"text_embeds": pooled.to(dtype), "time_ids": time_ids}
        prediction = model.unet(noisy.to(dtype), timesteps, encoder_hidden_states=hidden.to(dtype), **extra).sample
        wanted = target(latents, noise, timesteps, acp, v_prediction=self.v_prediction)
        per_sample = per_sample_mse(prediction, wanted)
        weights = torch.tensor([item.loss_weight for item in items], device=device, dtype=torch.float32)
        if config.min_snr_gamma > 0:
            weights = weights * min_snr_weights(timesteps, acp, config.min_snr_gamma, v_prediction=self.v_prediction)
        return (per_sample * weights).mean()

    def _latents_for(self, batch: list[Any]) -> tuple[torch.Tensor, list[tuple[int, int]], list[tuple[int, int]]]:
        """The batch's latents, with SDXL's size facts: original (height, width) and crop (top, left)."""
        latents, originals, crops = [], [], []
        for ref in batch:
            item = self.dataset.items[ref.item]
            latents.append(self._latent(item, ref.flip))
            plan = crop_plan((item.width, item.height), item.bucket, ref.flip)
            originals.append((item.height, item.width))
            crops.append(plan.crop_top_left)
        return torch.stack(latents), originals, crops

    def _latent(self, item: Any, flip: bool) -> torch.Tensor:
        """From memory, else the disk cache, else the VAE (then remembered); CPU float32."""
        memory_key = (str(item.path), flip)
        if memory_key in self.latent_memory:
            return self.latent_memory[memory_key]
        key = self.latent_cache.key(item.path, item.bucket, flip)
        latent = self.latent_cache.get(key) if self.config.cache_latents_to_disk else None
        if latent is None:
            image = load_training_image(item.path, item.bucket, flip)
            latent = encode_latents(self.model.vae, image.pixels.unsqueeze(0), [self.latent_cache.seed_for(key)])[0]
            latent = latent.to("cpu", torch.float32)
            if self.config.cache_latents_to_disk:
                self.latent_cache.put(key, latent)
        if self.config.cache_latents:
            self.latent_memory[memory_key] = latent
        return latent

    # ------------------------------------------------------------------ preparation

    def _load_model(self) -> tuple[str, Any]:
        from desktop.engine.devices import DevicePlan, select_device
        from desktop.engine.loading import load_model

        config = self.config
        device = self.distributed.device or select_device(config.device)
        base = {"no": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[config.mixed_precision]
        if device.type == "cpu" and base is torch.float16:
            self.emit(events.Warning("fp16 is slow or missing on the CPU; the base model is kept in bf16 instead"))
            base = torch.bfloat16
        self.plan = DevicePlan(device, base, torch.float32)
        self.emit(events.Progress("loading", 0, 1, f"Loading {Path(config.pretrained_model_name_or_path).name}"))
        model = load_model(
            Path(config.pretrained_model_name_or_path), self.plan, vae_path=Path(config.vae) if config.vae else None
        )
        for module in [model.unet, model.vae, *model.text_encoders]:
            module.requires_grad_(False)
        self.v_prediction = (
            config.v_parameterization if config.v_parameterization is not None else model.prediction.value == "v"
        )
        self.base_hashes = self._base_model_hashes(Path(config.pretrained_model_name_or_path))
        self.emit(events.Progress("loading", 1, 1, f"Loaded {model.family.value} ({self.plan.description})"))
        return device.type, model

    def _base_model_hashes(self, path: Path) -> tuple[str | None, str | None]:
        """The checkpoint's sha256 and A1111 legacy hash, for ``ss_new_sd_model_hash`` / ``ss_sd_model_hash``."""
        from desktop.library.hashes import file_hashes

        if not path.is_file():
            return None, None  # a diffusers folder has no single-file hash
        self.emit(events.Progress("hashing", 0, 1, f"Hashing {path.name}"))
        hashes = file_hashes(path, None, cancel=_CancelAdapter(self.control))
        return hashes.sha256, hashes.legacy

    def _scan_dataset(self) -> Dataset:
        config = self.config
        self.dataset_options = options_from_config(config)
        dataset = scan_dataset(self.dataset_options)
        for warning in dataset.warnings:
            self.emit(events.Warning(warning))
        return dataset

    def _build_network(self) -> LoRANetwork:
        from safetensors.torch import load_file

        config = self.config
        arguments = config.network_arguments()
        conv_dim = int(arguments.get("conv_dim", 0) or 0)
        conv_alpha = float(arguments["conv_alpha"]) if arguments.get("conv_alpha") else None
        network = LoRANetwork(
            self.model, self.model.family, network_dim=config.network_dim, network_alpha=config.network_alpha,
            conv_dim=conv_dim, conv_alpha=conv_alpha, train_unet=config.train_unet,
            train_text_encoder=config.train_text_encoder, device=self.plan.device,
            generator=torch.Generator().manual_seed(_mix(config.seed, 0x1017)),
        )  # fmt: skip
        self.trains_text_encoder = bool(network.text_encoder_loras)
        if config.network_weights:
            network.load_kohya_state_dict(load_file(config.network_weights))
        network.apply()
        if config.gradient_checkpointing:
            self.model.unet.enable_gradient_checkpointing()
            self.model.unet.train()
            if self.trains_text_encoder:
                for encoder in self.model.text_encoders:
                    encoder.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
                    encoder.train()
        return network

    def _optimizer(self) -> tuple[torch.optim.Optimizer, Any]:
        from diffusers.optimization import get_scheduler

        config = self.config
        options = _optimizer_options(config.optimizer_arguments())
        groups = []
        if self.network.unet_parameters():
            groups.append({"params": self.network.unet_parameters(), "lr": config.unet_learning_rate})
        if self.trains_text_encoder:
            groups.append({"params": self.network.text_encoder_parameters(), "lr": config.text_encoder_learning_rate})
        optimizer = torch.optim.AdamW(groups, **options)
        scheduler = get_scheduler(
            config.lr_scheduler, optimizer, num_warmup_steps=config.lr_warmup_steps, num_training_steps=self.total_steps,
            num_cycles=config.lr_scheduler_num_cycles, power=config.lr_scheduler_power,
        )  # fmt: skip
        return optimizer, scheduler

    def _resume(self) -> int:
        if not self.config.resume:
            return 0
        state = load_state(Path(self.config.resume))
        differences = mismatches(state.facts, self._facts())
        blocking = [line for line in differences if line.split(":")[0] in ("network_shape", "family", "seed")]
        if blocking:
            from desktop.training.state import StateError

            raise StateError("This state folder belongs to a different run: " + "; ".join(blocking))
        for line in differences:
            self.emit(events.Warning(f"Changed since the state was saved: {line}"))
        self.network.load_kohya_state_dict(state.network)
        self.optimizer.load_state_dict(state.optimizer)
        self.scheduler.load_state_dict(state.scheduler)
        self.step = state.step
        self.losses.extend(state.losses[-self.steps_per_epoch:])
        return state.step

    def _facts(self) -> dict[str, Any]:
        """What must match to resume, as it reads back from JSON (tuples become lists)."""
        config = self.config
        return _as_json({
            "seed": config.seed, "family": self.model.family.value,
            "network_shape": [config.network_dim, config.network_alpha, config.network_args, config.train_unet, config.train_text_encoder],
            "steps_per_epoch": self.steps_per_epoch, "batch_size": config.train_batch_size, "total_steps": self.total_steps,
        })  # fmt: skip

    def _cache_latents(self) -> None:
        """Encode every image (and its flip) once, before the first step; kohya's ``cache_latents``."""
        wanted = [(item, flip) for item in self.dataset.items for flip in ((False, True) if self.config.flip_aug else (False,))]
        for index, (item, flip) in enumerate(wanted):
            if self.control.cancelled:
                return
            self.emit(events.Progress("caching_latents", index, len(wanted), Path(item.path).name))
            self._latent(item, flip)
        self.emit(events.Progress("caching_latents", len(wanted), len(wanted), ""))

    # ------------------------------------------------------------------ saving

    def _periodic_saves(self, epoch: int) -> None:
        config = self.config
        if config.save_every_n_steps and self.step % config.save_every_n_steps == 0 and self.step < self.total_steps:
            self._save_lora(self.paths.lora(f"-step{self.step:08d}"), "step", epoch)
        if config.save_state and config.save_state_every_n_steps and self.step % config.save_state_every_n_steps == 0:
            self._save_state()
        if config.sample_every_n_steps and self.step % config.sample_every_n_steps == 0:
            self._samples(epoch)

    def _end_of_epoch(self, epoch: int) -> None:
        config = self.config
        last = self.step >= self.total_steps
        if config.save_every_n_epochs and epoch % config.save_every_n_epochs == 0 and not last:
            self._save_lora(self.paths.lora(f"-{epoch:06d}"), "epoch", epoch)
        if config.sample_every_n_epochs and epoch % config.sample_every_n_epochs == 0:
            self._samples(epoch)

    def _save_lora(self, path: Path, reason: str, epoch: int) -> Path:
        if not self.distributed.is_main:
            return path
        tensors = self.network.kohya_state_dict(dtype=_SAVE_DTYPES[self.config.save_precision])
        if not all(torch.isfinite(tensor).all() for tensor in tensors.values()):
            raise NaNLoss(f"The LoRA weights are not finite at step {self.step}; the file was not written", step=self.step)
        metadata = lora_metadata(training_facts(self, epoch))
        save_kohya_lora(path, tensors, metadata, dtype=_SAVE_DTYPES[self.config.save_precision])
        self.emit(events.Saved(str(path), self.step, epoch, reason))
        return path

    def _save_state(self) -> None:
        if not self.distributed.is_main:
            return
        state = TrainingState(
            step=self.step,
            network=self.network.kohya_state_dict(dtype=torch.float32),
            optimizer=self.optimizer.state_dict(),
            scheduler=self.scheduler.state_dict(),
            facts=self._facts(),
            losses=list(self.losses),
        )
        folder = save_state(self.paths.state_folder, state)
        self.emit(events.StateSaved(str(folder), self.step))

    def _samples(self, epoch: int) -> None:
        config = self.config
        if not config.sample_prompts or not self.distributed.is_main:
            return
        folder = self.paths.run_folder / "samples"
        folder.mkdir(parents=True, exist_ok=True)
        width, height = config.resolution
        with _inference(self.model):
            for index, line in enumerate(config.sample_prompts):
                sample = parse_prompt_line(line, width=width, height=height, seed=config.seed + index, steps=config.sample_steps)
                image, infotext = render_sample(self.model, sample, config.sample_sampler, config.clip_skip)
                path = folder / f"{config.output_name}_{self.step:06d}_{index:02d}.png"
                _save_png(path, image, infotext)
                self.emit(events.SampleSaved(str(path), self.step, epoch, sample.prompt))

    def _verify(self, path: Path) -> None:
        """Load the file back through the inference code and draw one sample with and without it."""
        from desktop.training.verify import sample_with_and_without, verify_lora

        self.network.remove()
        if not self.distributed.is_main:
            return
        report = verify_lora(path, self.model)
        if not report.complete:
            self.emit(events.Warning(report.warning or f"only {report.matched} of {report.total} modules of {path.name} matched"))
        config = self.config
        line = config.sample_prompts[0] if config.sample_prompts else (config.trigger_word or "a photo")
        width, height = (min(side, 512) for side in config.resolution)
        sample = parse_prompt_line(line, width=width, height=height, seed=config.seed, steps=config.sample_steps)
        with _inference(self.model):
            comparison = sample_with_and_without(
                path, self.model, sample.prompt, seed=sample.seed, steps=sample.steps, size=(sample.width, sample.height),
                negative_prompt=sample.negative, sampler=sampler_name(config.sample_sampler), clip_skip=config.clip_skip,
            )  # fmt: skip
        folder = self.paths.run_folder / "samples"
        folder.mkdir(parents=True, exist_ok=True)
        with_path, without_path = folder / "verify_with_lora.png", folder / "verify_without_lora.png"
        _save_png(with_path, comparison.with_lora)
        _save_png(without_path, comparison.without_lora)
        preview = path.with_name(path.stem + ".preview.png")
        if not preview.exists():
            _save_png(preview, comparison.with_lora)  # the model browser shows it
        self.emit(events.Verified(str(path), report.matched, report.total, str(with_path), str(without_path), comparison.differs))

    # ------------------------------------------------------------------ measurements

    def _memory(self) -> int:
        memory = current_memory(self.plan.device)
        self.peak_memory = max(self.peak_memory, memory)
        return memory

    def _peak_memory(self) -> int:
        return max(self.peak_memory, peak_memory(self.plan.device))


# ---------------------------------------------------------------------- helpers

_SAVE_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "float": torch.float32}


def training_facts(run: _Run, epoch: int) -> TrainingFacts:
    """What the saved file's ``ss_*`` metadata says about this run (kohya's keys)."""
    config, dataset = run.config, run.dataset
    return TrainingFacts(
        family=run.model.family, v_prediction=run.v_prediction, network_dim=config.network_dim,
        network_alpha=config.network_alpha, network_args=run.network.network_args, output_name=config.output_name,
        learning_rate=config.learning_rate, unet_lr=config.unet_learning_rate,
        text_encoder_lr=config.text_encoder_learning_rate if run.trains_text_encoder else 0.0,
        epochs=run.epochs, epoch=epoch, steps=run.step, max_train_steps=run.total_steps, resolution=config.resolution,
        batch_size=config.train_batch_size, gradient_accumulation_steps=config.gradient_accumulation_steps,
        gradient_checkpointing=config.gradient_checkpointing, clip_skip=config.clip_skip, seed=config.seed,
        lr_scheduler=config.lr_scheduler, lr_warmup_steps=config.lr_warmup_steps, optimizer="torch.optim.adamw.AdamW",
        optimizer_args=config.optimizer_arguments(), max_grad_norm=config.max_grad_norm,
        noise_offset=config.noise_offset or None, min_snr_gamma=config.min_snr_gamma or None,
        mixed_precision=config.mixed_precision, cache_latents=config.cache_latents,
        shuffle_caption=config.shuffle_caption, keep_tokens=config.keep_tokens,
        caption_dropout_rate=config.caption_dropout_rate, flip_aug=config.flip_aug, enable_bucket=config.enable_bucket,
        min_bucket_reso=config.min_bucket_reso, max_bucket_reso=config.max_bucket_reso,
        tag_frequency=dataset.tag_frequency, dataset_dirs=dataset.dataset_dirs(),
        reg_dataset_dirs=dataset.dataset_dirs(is_reg=True), num_train_images=dataset.repeated_count,
        num_reg_images=dataset.reg_image_count, num_batches_per_epoch=run.batches_per_epoch,
        base_model_name=Path(config.pretrained_model_name_or_path).name, base_model_sha256=run.base_hashes[0],
        base_model_legacy_hash=run.base_hashes[1], training_started_at=run.started_at, training_finished_at=time.time(),
        session_id=run.session_id, trigger_word=config.trigger_word, comment=config.training_comment,
    )  # fmt: skip


class _CancelAdapter:
    def __init__(self, control: TrainingControl) -> None:
        self.control = control

    def is_set(self) -> bool:
        return self.control.cancelled


def _save_png(path: Path, image: Any, infotext: str | None = None) -> None:
    """Whole or not at all: the model browser and the training window watch these folders."""
    from desktop.library.atomic_write import write_bytes_atomically
    from desktop.library.outputs import png_bytes

    write_bytes_atomically(path, png_bytes(image, infotext), durable=False)


def _as_json(value: Any) -> Any:
    import json

    return json.loads(json.dumps(value))


def _silent(_event: events.TrainingEvent) -> None:
    pass


def _groups(batches: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(batches), size):
        yield batches[start : start + size]


def _mix(*numbers: int) -> int:
    """One 63-bit seed from several integers (a generator per step, not one shared stream)."""
    value = 0x9E3779B97F4A7C15
    for number in numbers:
        value = (value ^ (number & 0xFFFFFFFFFFFFFFFF)) * 0xBF58476D1CE4E5B9 & 0xFFFFFFFFFFFFFFFF
        value ^= value >> 31
    return value & 0x7FFFFFFFFFFFFFFF


def _optimizer_options(arguments: dict[str, str]) -> dict[str, Any]:
    options: dict[str, Any] = {"weight_decay": 0.01}
    for key, value in arguments.items():
        if key == "betas":
            options["betas"] = tuple(float(v) for v in value.strip("()[] ").split(","))
        elif key in ("weight_decay", "eps"):
            options[key] = float(value)
    return options


def _vae_id(model: Any) -> str:
    source = model.vae_source or model.path
    stat = Path(source).stat()
    return f"{Path(source).name}:{stat.st_size}:{stat.st_mtime_ns}"


class _inference:
    """Samples are drawn with the UNet in eval mode and without gradients; training mode comes back after."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def __enter__(self) -> None:
        self.modes = [(m, m.training) for m in (self.model.unet, *self.model.text_encoders)]
        for module, _ in self.modes:
            module.eval()

    def __exit__(self, *_exc: object) -> None:
        for module, mode in self.modes:
            module.train(mode)


class _StepTimer:
    """Seconds per step, smoothed; the first step (warm-up, allocations) is not counted in the average."""

    def __init__(self) -> None:
        self.last = time.perf_counter()
        self.average = 0.0
        self.count = 0

    def lap(self) -> float:
        now = time.perf_counter()
        seconds, self.last = now - self.last, now
        self.count += 1
        if self.count <= 2:
            self.average = seconds
        else:
            self.average = 0.9 * self.average + 0.1 * seconds
        return self.average


class _LossLog:
    """``loss.csv``: one row per step; a resumed run drops rows after its resume point and appends."""

    HEADER = ["step", "epoch", "loss", "average_loss", "lr"]

    def __init__(self, path: Path, resumed_step: int) -> None:
        self.path = path
        rows = []
        if resumed_step and path.exists():
            with open(path, newline="", encoding="utf-8") as stream:
                rows = [row for row in csv.reader(stream)][1:]
            rows = [row for row in rows if row and row[0].isdigit() and int(row[0]) <= resumed_step]
        with open(path, "w", newline="", encoding="utf-8") as stream:
            writer = csv.writer(stream)
            writer.writerow(self.HEADER)
            writer.writerows(rows)

    def write(self, step: int, epoch: int, loss: float, average: float, lr: float) -> None:
        with open(self.path, "a", newline="", encoding="utf-8") as stream:
            csv.writer(stream).writerow([step, epoch, f"{loss:.6f}", f"{average:.6f}", f"{lr:.3e}"])


def current_memory(device: torch.device) -> int:
    """Bytes in use now: the accelerator's allocations, or this process's resident memory on the CPU."""
    if device.type == "cuda":
        return int(torch.cuda.memory_allocated(device))
    if device.type == "mps":
        return int(torch.mps.driver_allocated_memory())
    try:
        with open("/proc/self/statm") as stream:
            return int(stream.read().split()[1]) * resource.getpagesize()
    except OSError:
        return peak_memory(device)


def peak_memory(device: torch.device) -> int:
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)
