"""The engine as the app and the CLI use it: keep one model loaded, run jobs, save their images.

No Qt here. The app's engine thread calls :meth:`EngineService.run` for each queued request and
forwards the callbacks as signals; the CLI calls the same method and prints them. A job never
raises: every failure comes back as a :class:`JobReport` with a typed reason and a suggestion,
so the caller (and its thread) survives anything.
"""

from __future__ import annotations

import gc
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

from desktop.core.cancel import CancelToken, Cancelled
from desktop.core.errors import DesktopError, InvalidRequest, UserInputError
from desktop.core.events import ImageSaved, JobFailure, JobReport, PreviewImage, StepProgress
from desktop.core.generation_params import ModelInfo
from desktop.core.prompt_syntax import extract_networks
from desktop.core.requests import GenerationRequest

ProgressHandler = Callable[[StepProgress], None]
PreviewHandler = Callable[[PreviewImage], None]
ImageHandler = Callable[[ImageSaved], None]
StatusHandler = Callable[[str], None]


@dataclass
class EngineOptions:
    """What Preferences control. Changing device or precision reloads the model on the next job."""

    output_dir: Path
    device: str = "auto"
    precision: str = "auto"
    attention_slicing: bool = False
    preview: bool = True  # a preview every step: TAESD when installed, else the cheap projection
    model_roots: tuple[Path, ...] = ()  # A1111 model roots: LoRAs, embeddings, hypernetworks and TAESD are looked up here
    cache_dir: Path | None = None  # converted hypernetworks (.pt -> .safetensors); a temporary folder when None


class _EitherToken(CancelToken):
    """Set when the job is cancelled or the current batch is skipped; the sampler checks one token."""

    def __init__(self, *tokens: CancelToken | None) -> None:
        super().__init__()
        self._tokens = [token for token in tokens if token is not None]

    def is_set(self) -> bool:
        return any(token.is_set() for token in self._tokens)

    def raise_if_cancelled(self) -> None:
        if self.is_set():
            raise Cancelled()


@dataclass
class _Loaded:
    key: tuple[object, ...]
    model: object  # LoadedModel
    info: ModelInfo


@dataclass
class EngineService:
    options: EngineOptions
    _loaded: _Loaded | None = None
    _taesd: object | None = None  # TaesdPreview, kept between jobs
    _hashes: dict[tuple[str, int, int], Future[str]] = field(default_factory=dict)
    _hash_pool: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(1, thread_name_prefix="model-hash"))
    _networks: object | None = None  # ExtraNetworks: loaded networks and the current LoRA patch
    _network_hashes: dict[tuple[str, int, int], str] = field(default_factory=dict)

    def run(
        self,
        request: GenerationRequest,
        *,
        on_progress: ProgressHandler | None = None,
        on_preview: PreviewHandler | None = None,
        on_image: ImageHandler | None = None,
        on_status: StatusHandler | None = None,
        cancel: CancelToken | None = None,
        skip: Callable[[], CancelToken] | None = None,
    ) -> JobReport:
        """Run one job to its end: finished, cancelled (finished images kept) or failed.

        ``skip`` returns the token that abandons the current batch (A1111's Skip); the job goes on
        with the next one. It is asked for a fresh token before each batch.
        """
        started = time.perf_counter()
        images: list[ImageSaved] = []
        try:
            outcome, warnings = self._run(request, on_progress, on_preview, on_image, on_status, cancel, skip, images)
            return JobReport(outcome, tuple(images), warnings=warnings, seconds=time.perf_counter() - started)
        except Exception as error:  # noqa: BLE001 - the engine thread must survive anything
            failure = describe_failure(error)
            return JobReport("failed", tuple(images), failure=failure, seconds=time.perf_counter() - started)

    def _run(self, request, on_progress, on_preview, on_image, on_status, cancel, skip, images) -> tuple[str, tuple[str, ...]]:
        from desktop.engine.txt2img import Txt2ImgPipeline

        status = on_status or (lambda _message: None)
        if request.model_path is None:
            raise InvalidRequest("choose a checkpoint first", field="model")
        request.validate()
        if cancel is not None and cancel.is_set():
            return "cancelled", ()
        model, info = self._model_for(request, status)
        request = request.with_resolved_seed()
        warnings: list[str] = []
        with self._extra_networks().activated(model, extract_networks(request.prompt)[1], self._network_files()) as networks:
            pipeline = Txt2ImgPipeline(model, info, networks=networks)
            return self._run_batches(request, pipeline, model, networks, warnings, on_progress, on_preview, on_image, cancel, skip, images)

    def _run_batches(self, request, pipeline, model, networks, warnings, on_progress, on_preview, on_image, cancel, skip, images):
        """One batch at a time (so Skip can abandon one), each image saved as soon as it is decoded."""
        from desktop.engine.txt2img import GeneratedImage
        from desktop.library.outputs import save_png

        output_dir = self.options.output_dir
        previewer = self._previewer(model) if on_preview is not None and self.options.preview else None

        for batch_index in range(request.batch_count):
            offset = batch_index * request.batch_size
            batch = replace(
                request, seed=request.seed + offset, variation_seed=request.variation_seed + offset, batch_count=1
            )
            token = _EitherToken(cancel, skip() if skip else None)

            def progress(step: StepProgress, batch_index: int = batch_index) -> None:
                if on_progress is not None:
                    on_progress(replace(step, image_index=batch_index, batch_count=request.batch_count))

            def denoised(step: int, latents, batch_index: int = batch_index) -> None:
                if on_preview is not None and self.options.preview:
                    on_preview(previewer(latents[0], image_index=batch_index, step=step))

            def save(generated: GeneratedImage, offset: int = offset) -> None:
                path = save_png(generated.image, generated.infotext, output_dir, generated.seed)
                saved = ImageSaved(str(path), generated.seed, offset + generated.index, generated.infotext)
                images.append(saved)
                if on_image is not None:
                    on_image(saved)

            result = pipeline(batch, on_step=progress, on_image=save, cancel=token, on_denoised=denoised)
            messages = list(networks.warnings)
            if result.vae_upcast:
                messages.append("the VAE produced NaNs in half precision and was rerun in fp32")
            warnings.extend(message for message in messages if message not in warnings)
            if cancel is not None and cancel.is_set():
                return "cancelled", tuple(warnings)
        return "finished", tuple(warnings)

    def _model_for(self, request: GenerationRequest, status: StatusHandler):
        """The loaded model for the request, loading it (and dropping the previous one) if needed."""
        from desktop.engine.devices import plan_devices
        from desktop.engine.loading import load_model
        from desktop.library.hashes import autov2_hash

        path = Path(request.model_path)
        vae = Path(request.vae_path) if request.vae_path else None
        key = (str(path), _stamp(path), str(vae), _stamp(vae), self.options.device, self.options.precision)
        if self._loaded is None or self._loaded.key != key:
            self._loaded = None  # a 16 GB Mac cannot hold two checkpoints: free the old one first
            if self._networks is not None:
                self._networks.forget_model()
            gc.collect()
            plan = plan_devices(self.options.device, self.options.precision)
            status(f"Device: {plan.description}")
            model_hash = self._hash(path) if path.is_file() else None
            vae_hash = self._hash(vae) if vae else None
            model = load_model(path, plan, vae_path=vae, progress=status)
            if self.options.attention_slicing and hasattr(model.unet, "set_attention_slice"):
                model.unet.set_attention_slice("auto")
            status(f"Loaded {model.family.label} ({model.prediction.value}) in {model.load_seconds:.1f} s")
            info = ModelInfo(
                name=path.stem if path.is_file() else path.name,
                hash=autov2_hash(model_hash.result()) if model_hash else None,
                vae_name=vae.name if vae else None,
                vae_hash=autov2_hash(vae_hash.result()) if vae_hash else None,
            )
            self._loaded = _Loaded(key, model, info)
        return self._loaded.model, self._loaded.info

    def _extra_networks(self):
        from desktop.engine.networks.activation import ExtraNetworks

        if self._networks is None:
            cache = self.options.cache_dir or Path(tempfile.gettempdir()) / "diffusion-desktop-cache"
            self._networks = ExtraNetworks(cache, self._network_hash)
        return self._networks

    def _network_files(self):
        from desktop.engine.networks.activation import NetworkFiles

        return NetworkFiles.scan(self.options.model_roots)  # a directory listing per job: files added meanwhile are found

    def _network_hash(self, path: Path) -> str:
        """The 12 hex chars A1111 writes in "Lora hashes"/"TI hashes": the tensor-data hash of a safetensors file."""
        from desktop.library.hashes import safetensors_tensor_hash, sha256_file, short_network_hash

        stat = path.stat()
        key = (str(path), stat.st_size, stat.st_mtime_ns)
        if key not in self._network_hashes:
            full = safetensors_tensor_hash(path) if path.suffix.lower() == ".safetensors" else sha256_file(path)
            self._network_hashes[key] = short_network_hash(full)
        return self._network_hashes[key]

    def _previewer(self, model):
        """TAESD for the model's family when installed (loaded once), else A1111's cheap projection."""
        from desktop.engine.preview import TaesdPreview, cheap_preview, find_taesd

        folder = find_taesd(self.options.model_roots, model.family)
        if folder is not None:
            if self._taesd is None or self._taesd.folder != folder:
                self._taesd = TaesdPreview(folder, model.plan.device, model.plan.vae_dtype)
            return self._taesd
        return lambda latent, **where: cheap_preview(latent, model.family, **where)

    def _hash(self, path: Path) -> Future[str]:
        """sha256 of a model file, computed once per (path, size, mtime) while the model loads."""
        from desktop.library.hashes import sha256_file

        stat = path.stat()
        key = (str(path), stat.st_size, stat.st_mtime_ns)
        if key not in self._hashes:
            self._hashes[key] = self._hash_pool.submit(sha256_file, path)
        return self._hashes[key]

    def configure(self, **options: object) -> None:
        """Change options between jobs; a new device or precision reloads the model on the next job."""
        for name, value in options.items():
            if not hasattr(self.options, name):
                raise TypeError(f"unknown engine option {name!r}")
            if name == "output_dir":
                value = Path(value)
            elif name == "model_roots":
                value = tuple(Path(root) for root in value)
            elif name == "cache_dir" and value is not None:
                value = Path(value)
            setattr(self.options, name, value)

    def unload(self) -> None:
        """Free the loaded model, including the accelerator's cached blocks (a training needs the memory)."""
        self._loaded = None
        if self._networks is not None:
            self._networks.forget_model()
        gc.collect()
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            torch.mps.empty_cache()

    def preload(self, request: GenerationRequest, on_status: StatusHandler | None = None) -> None:
        """Load the request's checkpoint (and VAE) now, so the next job starts at once."""
        if request.model_path is not None:
            self._model_for(request, on_status or (lambda _message: None))

    def close(self) -> None:
        self.unload()
        self._hash_pool.shutdown(wait=False, cancel_futures=True)


def _stamp(path: Path | None) -> tuple[int, int] | None:
    """Size and mtime: a file replaced under the same name is loaded again."""
    if path is None or not path.exists():
        return None
    stat = path.stat()
    return stat.st_size, stat.st_mtime_ns


def describe_failure(error: BaseException) -> JobFailure:
    """The user-facing reason and a suggestion; never a traceback."""
    if isinstance(error, MemoryError) or _is_out_of_memory(error):
        return JobFailure(
            "out_of_memory",
            "Not enough memory for this image.",
            "Try a smaller size or batch, or turn on attention slicing in Preferences.",
        )
    if isinstance(error, DesktopError):
        hint = ""
        if error.details.get("hint") == "precision":
            hint = "Try fp32 precision in Preferences, or another checkpoint."
        return JobFailure(error.code, error.message, hint, user_error=isinstance(error, UserInputError))
    return JobFailure("internal", f"Unexpected error: {type(error).__name__}: {error}", "Please report this with the log.")


def _is_out_of_memory(error: BaseException) -> bool:
    text = str(error).lower()
    return isinstance(error, RuntimeError) and ("out of memory" in text or "mps backend out of memory" in text)
