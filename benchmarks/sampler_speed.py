"""Per-step time of every sampler in our txt2img engine against the plain diffusers scheduler loop.

For each sampler in the registry (``desktop.engine.samplers.sampler_names()``, so new samplers are
measured as soon as they are registered) the script runs our ``Txt2ImgPipeline`` and a
hand-written diffusers loop::

    for t in scheduler.timesteps:
        x_in = scheduler.scale_model_input(cat([latents] * 2), t)
        eps = unet(x_in, t, encoder_hidden_states=cat([cond, uncond])).sample   # CFG batch 2
        latents = scheduler.step(uncond + cfg * (cond - uncond), t, latents).prev_sample

with the diffusers scheduler that corresponds to the sampler (``EulerDiscreteScheduler`` where
none does), on the SAME loaded UNet. Per step means the sampling time divided by the number of
model (UNet) calls, so second-order samplers (two calls a step) and the adaptive ones compare
with the rest; the calls per step are printed too.

Run by hand (not part of the test suite)::

    .venv/bin/python benchmarks/sampler_speed.py --size tiny --steps 10
    .venv/bin/python benchmarks/sampler_speed.py --size mid --steps 6 --device cuda

Checkpoints are the synthetic ones of ``engine_overhead.py`` (cached under ``/tmp/dd-bench/``).
See benchmarks/README.md for how to read the table.
"""

from __future__ import annotations

import argparse
import inspect
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import torch  # noqa: E402

from benchmarks.engine_overhead import (  # noqa: E402
    CFG,
    DEFAULT_LATENT_SIDE,
    NEGATIVE,
    PROMPT,
    SEED,
    build_checkpoint,
    our_latent_factor,
    synchronizer,
)

SD_SCHEDULE = {"num_train_timesteps": 1000, "beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear"}


@dataclass(frozen=True)
class Counterpart:
    """The diffusers scheduler that stands in for one of our samplers, and how close it is."""

    scheduler: str  # class name in ``diffusers``
    settings: dict[str, Any] = field(default_factory=dict)
    match: str = "same"  # "same" maths, "near" (same family, differs in a detail), or "none" (Euler stand-in)


EULER_STAND_IN = Counterpart("EulerDiscreteScheduler", {"timestep_spacing": "linspace"}, "none")

# Keyed by A1111 sampler name. The schedule settings follow A1111's defaults ("Automatic") where
# diffusers can express them; they change which sigmas are visited, not the cost of a step.
COUNTERPARTS: dict[str, Counterpart] = {
    "Euler a": Counterpart("EulerAncestralDiscreteScheduler", {"timestep_spacing": "linspace"}),
    "Euler": Counterpart("EulerDiscreteScheduler", {"timestep_spacing": "linspace"}),
    "LMS": Counterpart("LMSDiscreteScheduler", {"timestep_spacing": "linspace"}),
    "Heun": Counterpart("HeunDiscreteScheduler", {"timestep_spacing": "linspace"}),
    # A1111 drops the next-to-last sigma; diffusers cannot.
    "DPM2": Counterpart("KDPM2DiscreteScheduler", {"use_karras_sigmas": True}, "near"),
    "DPM2 a": Counterpart("KDPM2AncestralDiscreteScheduler", {"use_karras_sigmas": True}, "near"),
    # diffusers' single-step DPM-Solver++(2S) without the ancestral noise.
    "DPM++ 2S a": Counterpart(
        "DPMSolverSinglestepScheduler", {"solver_order": 2, "algorithm_type": "dpmsolver++", "use_karras_sigmas": True}, "near"
    ),
    # diffusers rounds the Karras timesteps (see tests/engine/test_diffusers_agreement.py).
    "DPM++ 2M": Counterpart(
        "DPMSolverMultistepScheduler",
        {"algorithm_type": "dpmsolver++", "solver_order": 2, "use_karras_sigmas": True, "final_sigmas_type": "zero"},
        "near",
    ),
    # Brownian-tree noise from torchsde's tree, not from the image seed.
    "DPM++ SDE": Counterpart("DPMSolverSDEScheduler", {"use_karras_sigmas": True}, "near"),
    # Gaussian noise per step instead of a Brownian tree.
    "DPM++ 2M SDE": Counterpart(
        "DPMSolverMultistepScheduler",
        {"algorithm_type": "sde-dpmsolver++", "solver_order": 2, "use_exponential_sigmas": True, "final_sigmas_type": "zero"},
        "near",
    ),
    "DPM++ 2M SDE Heun": Counterpart(
        "DPMSolverMultistepScheduler",
        {
            "algorithm_type": "sde-dpmsolver++",
            "solver_order": 2,
            "solver_type": "heun",
            "use_exponential_sigmas": True,
            "final_sigmas_type": "zero",
        },
        "near",
    ),
    "DPM++ 3M SDE": Counterpart(
        "DPMSolverMultistepScheduler",
        {"algorithm_type": "sde-dpmsolver++", "solver_order": 3, "use_exponential_sigmas": True, "final_sigmas_type": "zero"},
        "near",
    ),
    # A1111's timestep samplers: diffusers' originals of the same methods.
    "DDIM": Counterpart("DDIMScheduler", {"timestep_spacing": "leading", "steps_offset": 1, "set_alpha_to_one": False}, "near"),
    "DDIM CFG++": Counterpart("DDIMScheduler", {"timestep_spacing": "leading", "steps_offset": 1, "set_alpha_to_one": False}, "near"),
    "PLMS": Counterpart("PNDMScheduler", {"skip_prk_steps": True, "steps_offset": 1, "set_alpha_to_one": False}, "near"),
    "UniPC": Counterpart("UniPCMultistepScheduler", {"solver_order": 2, "predict_x0": True}, "near"),
    "LCM": Counterpart("LCMScheduler", {"timestep_spacing": "leading", "steps_offset": 1}, "near"),
    # DPM fast, DPM adaptive and Restart have no diffusers scheduler: Euler stands in.
}


def counterpart_for(sampler: str) -> tuple[Counterpart, str | None]:
    """The counterpart to run and, when it had to fall back to the Euler stand-in, why."""
    import diffusers
    from diffusers.utils import is_torchsde_available

    wanted = COUNTERPARTS.get(sampler, EULER_STAND_IN)
    if not hasattr(diffusers, wanted.scheduler):
        return EULER_STAND_IN, f"{wanted.scheduler} is not in diffusers {diffusers.__version__}"
    if wanted.scheduler == "DPMSolverSDEScheduler" and not is_torchsde_available():
        return EULER_STAND_IN, "DPMSolverSDEScheduler needs torchsde, which is not installed"
    return wanted, None


def make_scheduler(counterpart: Counterpart) -> Any:
    import diffusers

    cls = getattr(diffusers, counterpart.scheduler)
    accepted = inspect.signature(cls.__init__).parameters
    settings = {k: v for k, v in {**SD_SCHEDULE, **counterpart.settings}.items() if k in accepted}
    return cls(**settings)


# ----------------------------------------------------------------------------- timing


@dataclass
class SamplingTiming:
    """One sampling run: when the UNet was first called, when sampling ended, how many calls."""

    first_call: float | None = None
    end: float = 0.0
    calls: int = 0
    inputs: set[tuple[tuple[int, ...], str]] = field(default_factory=set)  # (shape, dtype) of the UNet samples

    @property
    def seconds(self) -> float:
        return self.end - (self.first_call if self.first_call is not None else self.end)


class UNetWatch:
    """A pre-hook on the shared UNet: the time of its first call, the call count, the input shapes.

    The sampling window runs from the start of the first UNet call to the end of the last step,
    so prompt encoding, initial noise and decoding are left out for both pipelines alike.
    """

    def __init__(self, unet: torch.nn.Module, sync: Callable[[], None]) -> None:
        self.unet, self.sync = unet, sync
        self.timing = SamplingTiming()

    def __enter__(self) -> SamplingTiming:
        self.handle = self.unet.register_forward_pre_hook(self._on_call, with_kwargs=True)
        return self.timing

    def __exit__(self, *_exc: object) -> None:
        self.handle.remove()

    def _on_call(self, _module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        if self.timing.first_call is None:
            self.sync()
            self.timing.first_call = time.perf_counter()
        self.timing.calls += 1
        sample = args[0] if args else kwargs.get("sample")
        if isinstance(sample, torch.Tensor):
            self.timing.inputs.add((tuple(sample.shape), str(sample.dtype).removeprefix("torch.")))


class NoDecode:
    """A VAE backend that skips decoding: decoding is outside the measured window and slow on a CPU."""

    def __init__(self, factor: int) -> None:
        self.factor = factor

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        batch, _, height, width = latents.shape
        return torch.zeros(batch, 3, height * self.factor, width * self.factor)


def run_ours(pipeline: Any, sampler: str, steps: int, resolution: int, sync: Callable[[], None]) -> SamplingTiming:
    from desktop.core.requests import GenerationRequest

    request = GenerationRequest(
        prompt=PROMPT,
        negative_prompt=NEGATIVE,
        steps=steps,
        cfg_scale=CFG,
        sampler=sampler,
        schedule="Automatic",
        seed=SEED,
        width=resolution,
        height=resolution,
    )
    last_step = [0.0]

    def on_step(_progress: Any) -> None:
        sync()
        last_step[0] = time.perf_counter()

    with UNetWatch(pipeline.model.unet, sync) as timing:
        pipeline(request, on_step=on_step)
    timing.end = last_step[0]
    return timing


def encode_for_diffusers(model: Any) -> torch.Tensor:
    """cond and uncond text embeddings, stacked as the SD pipeline batches them for CFG."""
    tokenizer, encoder = model.tokenizers[0], model.text_encoders[0]
    device = next(encoder.parameters()).device
    ids = tokenizer(
        [PROMPT, NEGATIVE], padding="max_length", max_length=tokenizer.model_max_length, truncation=True, return_tensors="pt"
    ).input_ids
    with torch.no_grad():
        return encoder(ids.to(device))[0]


def run_diffusers(
    model: Any, counterpart: Counterpart, context: torch.Tensor, steps: int, latent_side: int, sync: Callable[[], None]
) -> SamplingTiming:
    unet = model.unet
    parameter = next(unet.parameters())
    device, dtype = parameter.device, parameter.dtype
    scheduler = make_scheduler(counterpart)
    scheduler.set_timesteps(steps, device=device)
    # CPU-seeded noise, as the SD pipeline (and our engine) draws it.
    generator = torch.Generator("cpu").manual_seed(SEED)
    shape = (1, unet.config.in_channels, latent_side, latent_side)
    latents = (torch.randn(shape, generator=generator) * scheduler.init_noise_sigma).to(device, dtype)
    step_kwargs = {"generator": generator} if "generator" in inspect.signature(scheduler.step).parameters else {}
    context = context.to(device, dtype)
    with UNetWatch(unet, sync) as timing, torch.no_grad():
        for t in scheduler.timesteps:
            x_in = scheduler.scale_model_input(torch.cat([latents] * 2), t)
            eps = unet(x_in, t, encoder_hidden_states=context).sample
            eps_cond, eps_uncond = eps.chunk(2)
            latents = scheduler.step(eps_uncond + CFG * (eps_cond - eps_uncond), t, latents, **step_kwargs).prev_sample
        sync()
        timing.end = time.perf_counter()
    return timing


# ----------------------------------------------------------------------------- main


@dataclass
class Row:
    sampler: str
    counterpart: Counterpart
    ours: list[SamplingTiming]
    theirs: list[SamplingTiming]
    note: str | None = None
    error: str | None = None

    @staticmethod
    def per_call_ms(runs: list[SamplingTiming]) -> float:
        return 1000.0 * statistics.median(r.seconds / r.calls for r in runs) if runs else float("nan")

    @staticmethod
    def calls_per_step(runs: list[SamplingTiming], steps: int) -> float:
        return statistics.median(r.calls for r in runs) / steps if runs else float("nan")


def print_table(rows: list[Row], steps: int) -> None:
    header = (
        f"{'sampler':<18}{'diffusers scheduler':<34}{'match':<6}{'calls/step':>11}{'':>6}"
        f"{'ms per call':>13}{'':>11}{'ours/diff':>10}"
    )
    print(header)
    print(f"{'':<18}{'':<34}{'':<6}{'ours':>11}{'diff':>6}{'ours':>13}{'diffusers':>11}{'':>10}")
    print("-" * len(header))
    for row in rows:
        if row.error:
            print(f"{row.sampler:<18}{row.counterpart.scheduler:<34}{row.counterpart.match:<6}  failed: {row.error}")
            continue
        mine, other = Row.per_call_ms(row.ours), Row.per_call_ms(row.theirs)
        print(
            f"{row.sampler:<18}{row.counterpart.scheduler:<34}{row.counterpart.match:<6}"
            f"{Row.calls_per_step(row.ours, steps):>11.2f}{Row.calls_per_step(row.theirs, steps):>6.2f}"
            f"{mine:>13.2f}{other:>11.2f}{mine / other:>9.2f}x"
        )
    notes = [row for row in rows if row.note]
    if notes:
        print()
        for row in notes:
            print(f"note: {row.sampler}: {row.note}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=("tiny", "mid"), default="tiny",
                        help="synthetic SD1 checkpoint of engine_overhead.py: tiny (test-suite sizes) or mid (small UNet)")
    parser.add_argument("--steps", type=int, default=10, help="sampling steps per image (default 10)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda", "mps"), default="auto")
    parser.add_argument("--precision", choices=("auto", "fp32", "fp16", "bf16"), default="auto",
                        help="auto: fp32 on the CPU, fp16 on CUDA/MPS")
    parser.add_argument("--runs", type=int, default=1,
                        help="timed runs per sampler and pipeline, interleaved (default 1); the median is reported")
    parser.add_argument("--samplers", default=None,
                        help="comma-separated subset of sampler names (default: every registered sampler)")
    args = parser.parse_args(argv)
    if args.steps < 2:
        parser.error("--steps must be at least 2")

    import diffusers

    # Keep the table readable: diffusers notes that it adjusts a setting, torchsde that the
    # Brownian tree is queried at the end of its interval; neither changes the timing.
    diffusers.utils.logging.set_verbosity_error()
    warnings.filterwarnings("ignore", module="torchsde")

    from desktop.engine.devices import plan_devices
    from desktop.engine.loading import load_model
    from desktop.engine.samplers import sampler_names
    from desktop.engine.txt2img import Txt2ImgPipeline

    started = time.perf_counter()
    plan = plan_devices(args.device, args.precision)
    sync = synchronizer(plan.device)
    path, params, _ = build_checkpoint(args.size)
    model = load_model(path, plan)
    factor = our_latent_factor(model)
    latent_side = DEFAULT_LATENT_SIDE[args.size]
    resolution = latent_side * factor
    pipeline = Txt2ImgPipeline(model, vae=NoDecode(factor))
    context = encode_for_diffusers(model)

    names = sampler_names()
    if args.samplers:
        wanted = [name.strip() for name in args.samplers.split(",")]
        unknown = [name for name in wanted if name not in names]
        if unknown:
            parser.error(f"unknown sampler(s) {unknown}; registered: {names}")
        names = wanted

    unet_params = sum(p.numel() for p in model.unet.parameters())
    device_name = torch.cuda.get_device_name() if plan.device.type == "cuda" else (platform.processor() or platform.machine())
    print(f"device:   {plan.description} ({device_name}, {torch.get_num_threads()} CPU threads)")
    print(f"versions: torch {torch.__version__}, diffusers {diffusers.__version__}, python {platform.python_version()}")
    print(f"model:    SD1 {args.size} ({params / 1e6:.0f} M parameters, UNet {unet_params / 1e6:.1f} M), {path.name}")
    print(f"job:      {args.steps} steps, schedule Automatic, CFG {CFG:g}, {resolution}x{resolution} "
          f"({latent_side}x{latent_side} latents), seed {SEED}, {args.runs} timed run(s) after a warm-up")
    print(flush=True)

    # Warm-up (kernel selection, allocator, lazy imports) on the cheapest pair.
    run_ours(pipeline, "Euler", args.steps, resolution, sync)
    run_diffusers(model, COUNTERPARTS["Euler"], context, args.steps, latent_side, sync)

    rows: list[Row] = []
    for name in names:
        counterpart, note = counterpart_for(name)
        row = Row(name, counterpart, [], [], note)
        try:
            for run in range(args.runs):
                # Alternate which loop goes first, so a machine that speeds up or slows down during a
                # row (a busy shared CPU, a GPU changing clocks) does not always favour the same side.
                for side in ((0, 1) if run % 2 == 0 else (1, 0)):
                    if side == 0:
                        row.ours.append(run_ours(pipeline, name, args.steps, resolution, sync))
                    else:
                        row.theirs.append(run_diffusers(model, counterpart, context, args.steps, latent_side, sync))
        except Exception as error:  # one broken sampler must not hide the others' numbers
            row.error = f"{type(error).__name__}: {error}"
        if not row.error:
            inputs = {r for run in row.ours + row.theirs for r in run.inputs}
            if len({shape for shape, _ in inputs}) != 1 or len({dtype for _, dtype in inputs}) != 1:
                row.error = f"the two loops fed the UNet different inputs: {sorted(inputs)}"
        rows.append(row)
        print(f"  measured {name}", file=sys.stderr, flush=True)

    print_table(rows, args.steps)
    print()
    print("match: same = the diffusers scheduler does the same maths (tests/engine/test_diffusers_agreement.py);")
    print("       near = same method, different detail (sigmas, timestep rounding, noise source); none = Euler stand-in")
    print(f"wall time: {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
