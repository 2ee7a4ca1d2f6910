"""Load time and per-step overhead of our txt2img engine against a plain diffusers pipeline.

Both pipelines run on the SAME loaded modules (UNet, VAE, CLIP text encoder, tokenizer), so the
only difference measured is the code around them: our k-diffusion style sampler loop, A1111-style
CFG denoiser, CPU-side noise/latents and the device transfers, against diffusers'
``StableDiffusionPipeline`` with ``EulerDiscreteScheduler``.

Run by hand (not part of the test suite)::

    .venv/bin/python benchmarks/engine_overhead.py --size tiny --steps 10
    .venv/bin/python benchmarks/engine_overhead.py --size mid --steps 10 --device cuda

Checkpoints are synthetic (random weights, original LDM single-file layout) and cached under
``/tmp/dd-bench/``. See benchmarks/README.md for what the numbers mean.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import torch  # noqa: E402

from tests.fixtures.ldm_layout import (  # noqa: E402
    FULL,
    SD1_CLIP_PREFIX,
    TINY,
    clip_l_shapes,
    ddpm_buffer_shapes,
    sd1_checkpoint_shapes,
    unet_shapes,
    vae_shapes,
    write_checkpoint,
)

CACHE_DIR = Path("/tmp/dd-bench")
PROMPT = "a photograph of an astronaut riding a horse"
NEGATIVE = ""
CFG = 7.0
SEED = 1234
LOAD_REPEATS = 3

# "mid": real SD1 text encoder (CLIP-L, 12 layers) and real VAE, with a UNet about 1/9 the size of
# SD1.5's (model_channels 128 instead of 320, three levels instead of four).
MID_UNET: dict[str, Any] = {
    "model_channels": 128,
    "channel_mult": (1, 2, 4),
    "num_res_blocks": 2,
    "attention_levels": (0, 1, 2),
    "transformer_depth": (1, 1, 1),
    "middle_transformer_depth": 1,
    "context_dim": 768,
    "in_channels": 4,
    "out_channels": 4,
    "use_linear_in_transformer": False,
    "adm_in_channels": None,
}

# Default image side, as a latent side: the pixel size is this times the VAE's downscale factor
# (8 for the real VAE: 512 px; the tiny 2-level VAE downsamples by 2 in engines that read the factor
# from the VAE, as diffusers does, and by 8 in engines that fix it like A1111).
DEFAULT_LATENT_SIDE = {"tiny": 32, "mid": 64, "full": 64}


# ----------------------------------------------------------------------------- checkpoints


def checkpoint_shapes(size: str) -> dict[str, tuple[int, ...]]:
    if size == "tiny":
        return sd1_checkpoint_shapes(tiny=True)
    if size == "full":
        return sd1_checkpoint_shapes(tiny=False)  # real SD1.5 sizes (about 1.07 B parameters)
    if size == "mid":
        # Same state-dict order as sd1_checkpoint_shapes: DDPM buffers, UNet, VAE, CLIP-L.
        shapes = ddpm_buffer_shapes()
        shapes.update(unet_shapes(**MID_UNET))
        shapes.update(vae_shapes(**FULL["sd1"]["vae"]))
        shapes.update(clip_l_shapes(**FULL["sd1"]["clip_l"], prefix=SD1_CLIP_PREFIX))
        return shapes
    raise SystemExit(f"unknown size {size!r}")


def build_checkpoint(size: str) -> tuple[Path, int, float]:
    """The cached checkpoint for ``size`` (written once): path, parameter count, seconds spent writing."""
    shapes = checkpoint_shapes(size)
    digest = hashlib.sha1(json.dumps(sorted(shapes.items())).encode()).hexdigest()[:10]
    path = CACHE_DIR / f"sd1-{size}-{digest}.safetensors"
    params = sum(int(torch.Size(s).numel()) for s in shapes.values())
    if path.exists():
        return path, params, 0.0
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    partial = path.with_suffix(f".partial-{os.getpid()}.safetensors")
    try:
        write_checkpoint(partial, shapes, dtype=torch.float16, seed=0, fill="random")
        partial.replace(path)  # atomic: a crashed run never leaves a half-written cache entry
    finally:
        partial.unlink(missing_ok=True)
    return path, params, time.perf_counter() - started


# ----------------------------------------------------------------------------- timing helpers


def synchronizer(device: torch.device) -> Callable[[], None]:
    if device.type == "cuda":
        return torch.cuda.synchronize
    if device.type == "mps":
        return torch.mps.synchronize
    return lambda: None


@dataclass
class RunTiming:
    """One generation: the start, the first UNet call, a timestamp after every sampling step, the end."""

    start: float = 0.0
    first_unet: float | None = None
    steps: list[float] = field(default_factory=list)
    end: float = 0.0
    unet_inputs: set[tuple[tuple[int, ...], str]] = field(default_factory=set)  # (shape, dtype) of the samples

    @property
    def intervals(self) -> list[float]:
        """Durations of steps 2..N (step 1 is skipped: its start is mixed with prompt encoding)."""
        return [b - a for a, b in zip(self.steps, self.steps[1:])]

    @property
    def total(self) -> float:
        return self.end - self.start


def timed(run: Callable[[Callable[[], None]], Any], unet: torch.nn.Module, sync: Callable[[], None]) -> tuple[RunTiming, Any]:
    """Call ``run(mark)``; the pipeline calls ``mark()`` after each step.

    A pre-hook on the shared UNet notes when it is first called (the end of prompt encoding and
    setup) and the shape and dtype of every sample it gets, so the two pipelines can be checked to
    do the same work. It costs a set insertion per call, the same for both.
    """
    timing = RunTiming()

    def mark() -> None:
        sync()
        timing.steps.append(time.perf_counter())

    def on_unet_call(_module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        if timing.first_unet is None:
            sync()
            timing.first_unet = time.perf_counter()
        sample = args[0] if args else kwargs.get("sample")
        if isinstance(sample, torch.Tensor):
            timing.unet_inputs.add((tuple(sample.shape), str(sample.dtype).removeprefix("torch.")))

    hook = unet.register_forward_pre_hook(on_unet_call, with_kwargs=True)
    try:
        sync()
        timing.start = time.perf_counter()
        result = run(mark)
        sync()
        timing.end = time.perf_counter()
    finally:
        hook.remove()
    return timing, result


# ----------------------------------------------------------------------------- the two pipelines


def our_latent_factor(model: Any) -> int:
    """How much our engine downscales images to latents for this model."""
    from desktop.engine import txt2img

    pipeline = txt2img.Txt2ImgPipeline(model)
    # Newer engines derive the factor from the VAE depth (like diffusers); older ones fix it at 8.
    return int(getattr(pipeline, "latent_factor", getattr(txt2img, "LATENT_FACTOR", 8)))


def make_ours(model: Any, steps: int, resolution: int) -> Callable[[Callable[[], None]], Any]:
    from desktop.core.requests import GenerationRequest
    from desktop.engine.txt2img import Txt2ImgPipeline

    pipeline = Txt2ImgPipeline(model)
    request = GenerationRequest(
        prompt=PROMPT,
        negative_prompt=NEGATIVE,
        steps=steps,
        cfg_scale=CFG,
        sampler="Euler",
        schedule="Automatic",
        seed=SEED,
        width=resolution,
        height=resolution,
    )

    def run(mark: Callable[[], None]) -> Any:
        result = pipeline(request, on_step=lambda _progress: mark())
        if result.vae_upcast:
            print("  note: our VAE produced NaNs in half precision and was re-run in fp32", file=sys.stderr)
        return result.images[0].image

    return run


def make_diffusers(
    model: Any, steps: int, resolution: int, latent_factor: int
) -> tuple[Callable[[Callable[[], None]], Any], list[str]]:
    from diffusers import EulerDiscreteScheduler, StableDiffusionPipeline

    notes: list[str] = []
    scheduler = EulerDiscreteScheduler(
        beta_schedule="scaled_linear",
        beta_start=0.00085,
        beta_end=0.012,
        timestep_spacing="linspace",
        steps_offset=1,  # as SD1.5's scheduler_config.json; avoids the pipeline's deprecation rewrite
    )
    pipe = StableDiffusionPipeline(
        vae=model.vae,
        text_encoder=model.text_encoders[0],
        tokenizer=model.tokenizers[0],
        unet=model.unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    # diffusers derives the latent downscale from the VAE depth (2 ** (levels - 1)). If our engine
    # uses another factor (a fixed 8, as A1111 does) the two would sample different latent sizes,
    # e.g. 128x128 against 32x32 for the 2-level tiny VAE at 256 px: align diffusers to ours.
    if pipe.vae_scale_factor != latent_factor:
        notes.append(
            f"diffusers' vae_scale_factor forced from {pipe.vae_scale_factor} to {latent_factor} "
            "so both sample the same latent size"
        )
        pipe.vae_scale_factor = latent_factor

    def run(mark: Callable[[], None]) -> Any:
        def on_step_end(_pipe: Any, step: int, _timestep: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
            mark()
            if step == steps - 1 and kwargs["latents"].dtype != model.vae.dtype:
                # Our engine moves a half-precision VAE that decoded NaNs to fp32 for good (A1111's
                # fallback); the modules are shared, and diffusers' SD pipeline does not cast latents.
                kwargs["latents"] = kwargs["latents"].to(model.vae.dtype)
            return kwargs

        generator = torch.Generator(device="cpu").manual_seed(SEED)
        with torch.no_grad():
            output = pipe(
                prompt=PROMPT,
                negative_prompt=NEGATIVE,
                num_inference_steps=steps,
                guidance_scale=CFG,
                height=resolution,
                width=resolution,
                generator=generator,
                output_type="pil",
                callback_on_step_end=on_step_end,
            )
        return output.images[0]

    return run, notes


# ----------------------------------------------------------------------------- main


def median_ms(values: list[float]) -> float:
    return 1000.0 * statistics.median(values) if values else float("nan")


def mean_abs_difference(a: Any, b: Any) -> float | None:
    import numpy as np

    x, y = np.asarray(a, dtype=np.float32), np.asarray(b, dtype=np.float32)
    if x.shape != y.shape:
        return None
    return float(np.abs(x - y).mean())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=("tiny", "mid", "full"), default="tiny",
                        help="synthetic SD1 checkpoint: tiny (test-suite sizes), mid (real CLIP-L and VAE, small UNet), full (SD1.5 sizes)")
    parser.add_argument("--steps", type=int, default=10, help="sampling steps per image (default 10)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda", "mps"), default="auto")
    parser.add_argument("--precision", choices=("auto", "fp32", "fp16", "bf16"), default="auto",
                        help="auto: fp32 on the CPU, fp16 on CUDA/MPS")
    parser.add_argument("--resolution", type=int, default=None,
                        help="image side in pixels (default: 512 for mid/full; tiny: 32x32 latents, 64 or 256 px)")
    parser.add_argument("--runs", type=int, default=1,
                        help="timed runs per pipeline after the warm-up, interleaved (default 1); step times are pooled")
    args = parser.parse_args(argv)
    if args.steps < 3:
        parser.error("--steps must be at least 3 (the first step is not counted)")

    from desktop.engine.devices import plan_devices
    from desktop.engine.loading import load_model

    plan = plan_devices(args.device, args.precision)
    sync = synchronizer(plan.device)
    torch.manual_seed(0)

    path, params, wrote = build_checkpoint(args.size)
    written = f"written in {wrote:.1f} s" if wrote else "cached"
    print(f"checkpoint: {path} ({params / 1e6:.1f} M parameters, {path.stat().st_size / 2**20:.0f} MiB, {written})")

    # Load three times; keep the last model for the pipelines.
    load_times: list[float] = []
    model = None
    for _ in range(LOAD_REPEATS):
        model = None
        gc.collect()
        if plan.device.type == "cuda":
            torch.cuda.empty_cache()
        sync()
        model = load_model(path, plan)
        sync()
        load_times.append(model.load_seconds)
    assert model is not None

    latent_factor = our_latent_factor(model)
    resolution = args.resolution or DEFAULT_LATENT_SIDE[args.size] * latent_factor
    ours = make_ours(model, args.steps, resolution)
    theirs, notes = make_diffusers(model, args.steps, resolution, latent_factor)

    # Warm-up (kernel selection, allocator, lazy imports), then interleaved timed runs.
    timed(ours, model.unet, sync)
    timed(theirs, model.unet, sync)
    our_runs: list[RunTiming] = []
    their_runs: list[RunTiming] = []
    our_image = their_image = None
    for _ in range(args.runs):
        timing, our_image = timed(ours, model.unet, sync)
        our_runs.append(timing)
        timing, their_image = timed(theirs, model.unet, sync)
        their_runs.append(timing)
    unet_inputs = {name: set().union(*(r.unet_inputs for r in runs)) for name, runs in (("ours", our_runs), ("diffusers", their_runs))}
    if unet_inputs["ours"] != unet_inputs["diffusers"]:
        raise SystemExit(
            "the pipelines call the UNet with different inputs, so the comparison would be unfair: "
            f"ours {sorted(unet_inputs['ours'])}, diffusers {sorted(unet_inputs['diffusers'])}"
        )

    for name, runs in (("ours", our_runs), ("diffusers", their_runs)):
        for run in runs:
            if len(run.steps) != args.steps:
                raise SystemExit(f"{name}: expected {args.steps} step callbacks, got {len(run.steps)}")

    our_step = median_ms([d for r in our_runs for d in r.intervals])
    their_step = median_ms([d for r in their_runs for d in r.intervals])
    our_total = statistics.median(r.total for r in our_runs)
    their_total = statistics.median(r.total for r in their_runs)
    # Outside the sampling loop: before it (start to the first UNet call: prompt encoding, noise,
    # schedule) and after it (last step to the end: VAE decode, conversion to PIL).
    our_before = statistics.median(r.first_unet - r.start for r in our_runs if r.first_unet is not None)
    their_before = statistics.median(r.first_unet - r.start for r in their_runs if r.first_unet is not None)
    our_after = statistics.median(r.end - r.steps[-1] for r in our_runs)
    their_after = statistics.median(r.end - r.steps[-1] for r in their_runs)
    difference = mean_abs_difference(our_image, their_image)

    import diffusers
    import transformers

    unet_params = sum(p.numel() for p in model.unet.parameters())
    print(f"device:     {plan.description} ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
          if plan.device.type == "cpu" else f"device:     {plan.description} ({torch.cuda.get_device_name() if plan.device.type == 'cuda' else plan.device.type})")
    print(f"versions:   torch {torch.__version__}, diffusers {diffusers.__version__}, transformers {transformers.__version__}, python {platform.python_version()}")
    print(f"model:      SD1 {args.size}, UNet {unet_params / 1e6:.1f} M parameters")
    print(f"job:        Euler (Automatic), {args.steps} steps, CFG {CFG:g}, {resolution}x{resolution}, seed {SEED}, "
          f"{args.runs} timed run(s) after 1 warm-up")
    print(f"UNet input: {', '.join(f'{list(shape)} {dtype}' for shape, dtype in sorted(unet_inputs['ours']))} (same for both)")
    for note in notes:
        print(f"note:       {note}")
    print()
    print(f"load_model: {statistics.median(load_times):.2f} s median of {LOAD_REPEATS} ({', '.join(f'{t:.2f}' for t in load_times)})")
    print()
    rows = [
        ("per step (median of steps 2..N)", our_step, their_step),
        ("before the loop (encode, noise)", our_before * 1000, their_before * 1000),
        ("after the loop (VAE decode, PIL)", our_after * 1000, their_after * 1000),
        ("total wall time", our_total * 1000, their_total * 1000),
    ]
    print(f"{'':34}{'ours ms':>12}{'diffusers ms':>14}{'ours/diffusers':>16}")
    for label, mine, other in rows:
        ratio = f"{mine / other:.3f}x" if other > 0 else "-"
        print(f"{label:34}{mine:>12.1f}{other:>14.1f}{ratio:>16}")
    if difference is not None:
        print()
        print(f"images: mean |ours - diffusers| = {difference:.2f} / 255 (same modules, seed and sampler family; "
              "schedules and noise handling differ slightly, so only a large value is a warning sign)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
