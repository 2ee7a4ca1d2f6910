"""Headless commands: ``generate`` (txt2img), ``info`` (what a model file is, or how an image was
made) and ``convert`` (pickle to safetensors).

Contract: ``generate`` prints one saved path per line on stdout and progress on stderr; exit
status 0 on success, 2 on bad input (with a one-line error naming the problem), 1 on any other
failure, 130 when cancelled with Ctrl+C. ``info IMAGE`` prints exactly the A1111 infotext on
stdout (for other tools, the A1111 text their settings amount to) and the tool's name on stderr,
or "no generation parameters found"; exit 2 when the file is not an image or is damaged.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn, TextIO

from desktop.core.cancel import Cancelled, CancelToken
from desktop.core.errors import DesktopError, UserInputError
from desktop.core.paths import default_models_dir, default_output_dir

EXIT_OK, EXIT_FAILURE, EXIT_BAD_INPUT, EXIT_CANCELLED = 0, 1, 2, 130
VAE_AUTO, VAE_NONE = "auto", "none"  # --vae keywords: the checkpoint's preferred VAE (A1111's Automatic), its own VAE


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One line, naming the problem: scripts read this.
        self.exit(EXIT_BAD_INPUT, f"error: {message} (see '{self.prog} --help')\n")

    def _print_message(self, message: str, file: TextIO | None = None) -> None:
        # argparse writes to sys.stderr directly; send it where main() was told to write.
        super()._print_message(message, _current_stderr[-1] if _current_stderr else file)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m desktop", description="Diffusion Desktop, headless.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    generate = commands.add_parser("generate", help="text to image, saved as PNG with A1111 metadata")
    generate.add_argument(
        "--model", required=True, type=Path, help="checkpoint .safetensors or diffusers folder (or a name in models/Stable-diffusion)"
    )
    generate.add_argument("--prompt", required=True)
    generate.add_argument("--negative", default="", help="negative prompt")
    generate.add_argument("--steps", type=int, default=20)
    generate.add_argument("--cfg", type=float, default=7.0, help="CFG scale")
    generate.add_argument("--sampler", default="Euler a", help="A1111 sampler name, e.g. 'Euler a', 'DPM++ 2M'")
    generate.add_argument(
        "--schedule",
        default="automatic",
        help=(
            "A1111 schedule type: Automatic (the sampler's default), Uniform, Karras, Exponential, Polyexponential, "
            "SGM Uniform, KL Optimal, Align Your Steps, Simple, Normal, DDIM, Beta"
        ),
    )
    generate.add_argument("--seed", type=int, default=-1, help="-1 picks a random seed (recorded in the image)")
    generate.add_argument("--variation-seed", type=int, default=-1, help="A1111's variation seed (-1: random)")
    generate.add_argument("--variation-strength", type=float, default=0.0, help="0..1: how far towards the variation seed")
    generate.add_argument("--resize-seed-from", type=_size, default=None, metavar="WxH", help="reuse the noise of this size, centred")
    generate.add_argument("--width", type=int, default=512)
    generate.add_argument("--height", type=int, default=512)
    generate.add_argument("--batch-size", type=int, default=1)
    generate.add_argument("--batch-count", type=int, default=1)
    generate.add_argument("--clip-skip", type=int, default=1)
    generate.add_argument("--novelai-emphasis", action="store_true", help="treat {word} as x1.05 emphasis (NovelAI style)")
    generate.add_argument(
        "--vae",
        default=VAE_AUTO,
        metavar="auto|none|PATH",
        help=(
            "VAE .safetensors to use instead of the checkpoint's own (or a name in models/VAE); 'auto' (the default): "
            "the checkpoint's preferred VAE from its A1111 name.json (\"vae\"), looked up in models/VAE, else its own; "
            "'none': always the checkpoint's own"
        ),
    )
    generate.add_argument("--device", default="auto", choices=["auto", "cpu", "mps", "cuda"])
    generate.add_argument("--precision", default="auto", choices=["auto", "fp32", "fp16", "bf16"])
    generate.add_argument("--out", type=Path, default=None, help=f"output folder (default {default_output_dir()})")
    generate.add_argument(
        "--models-dir",
        type=Path,
        default=None,
        help=(
            "an A1111-layout root (models/Lora, models/VAE, embeddings, models/hypernetworks, or those folders "
            f"directly inside) where names in the prompt and --model/--vae names are looked up (default {default_models_dir()})"
        ),
    )

    info = commands.add_parser(
        "info", help="what a model file is, without loading it; or, for an image, the generation parameters it carries"
    )
    info.add_argument("path", type=Path)
    info.add_argument("--json", action="store_true", help="machine-readable output")
    info.add_argument("--no-hash", action="store_true", help="skip hashing (fast on huge files; models only)")

    convert = commands.add_parser(
        "convert", help="convert a .ckpt/.pt/.bin pickle file to .safetensors (read safely, in a separate process)"
    )
    convert.add_argument("path", type=Path)
    convert.add_argument("--out", type=Path, default=None, help="output file (default: beside the input, .safetensors)")

    train = commands.add_parser(
        "train",
        help="train a LoRA from a TOML file of kohya sd-scripts options (pretrained_model_name_or_path, train_data_dir, ...)",
    )
    train.add_argument("config", type=Path, help="the run's settings (.toml); unknown keys are reported")
    train.add_argument(
        "--events", action="store_true", help="JSON-lines events on stdout and commands on stdin (the app's training window)"
    )
    return parser


_current_stderr: list[TextIO] = []


def main(argv: list[str] | None = None, *, stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    out, err = stdout or sys.stdout, stderr or sys.stderr
    _current_stderr.append(err)
    try:
        return _run(argv, out, err)
    finally:
        _current_stderr.pop()


def _run(argv: list[str] | None, out: TextIO, err: TextIO) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_request:  # --help, or a malformed command line (already reported)
        return int(exit_request.code or 0)
    try:
        if args.command == "generate":
            return _generate(args, out, err)
        if args.command == "convert":
            return _convert(args, out, err)
        if args.command == "train":
            from desktop.training.headless import run_training_command

            return run_training_command(args.config, emit_events=args.events, stdout=out, stderr=err)
        return _info(args, out, err)
    except UserInputError as error:
        print(f"error: {error}", file=err)
        return EXIT_BAD_INPUT
    except DesktopError as error:
        print(f"error: {error}", file=err)
        return EXIT_FAILURE
    except MemoryError:
        print("error: out of memory; try a smaller size or batch, or --precision fp16", file=err)
        return EXIT_FAILURE


def _request_from(args: argparse.Namespace):
    from desktop.core.requests import GenerationRequest

    return GenerationRequest(
        prompt=args.prompt,
        negative_prompt=args.negative,
        steps=args.steps,
        cfg_scale=args.cfg,
        sampler=args.sampler,
        schedule=args.schedule,
        seed=args.seed,
        width=args.width,
        height=args.height,
        batch_size=args.batch_size,
        batch_count=args.batch_count,
        clip_skip=args.clip_skip,
        vae_path=args.vae,
        model_path=args.model,
        novelai_emphasis=args.novelai_emphasis,
        variation_seed=args.variation_seed,
        variation_strength=args.variation_strength,
        resize_seed_from=args.resize_seed_from,
    )


def _size(text: str) -> tuple[int, int]:
    """``"512x768"`` -> (512, 768), as A1111 writes sizes."""
    width, sep, height = text.lower().partition("x")
    if not sep or not width.strip().isdigit() or not height.strip().isdigit():
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT such as 512x768, got {text!r}")
    return int(width), int(height)


def _models_root(given: Path | None) -> Path | None:
    """An A1111 webui folder has its models in ``models/``; a models folder is used as it is."""
    if given is None:
        return None
    if not given.is_dir():
        raise UserInputError(f"--models-dir {given} is not a folder")
    return given / "models" if (given / "models").is_dir() and not (given / "Lora").is_dir() else given


def resolve_model_path(given: Path, folder: str, models_dir: Path | None = None) -> Path:
    """``given`` as typed, or else a file of that name in the A1111 folder (``models/<folder>``).

    Lets users write ``--model anything-v5`` for ``models/Stable-diffusion/anything-v5.safetensors``.
    An existing path always wins; a name that matches nothing is returned unchanged, so the
    error names what the user typed.
    """
    if given.exists() or given.parent != Path("."):
        return given
    folder_path = (models_dir or default_models_dir()) / folder
    for candidate in (folder_path / given.name, folder_path / f"{given.name}.safetensors"):
        if candidate.exists():
            return candidate
    return given


def resolve_vae(given: str, model: Path, models_dir: Path | None = None) -> tuple[Path | None, str]:
    """The VAE for ``--vae``, and a line for stderr saying where it came from ("" when there is nothing to say).

    ``auto`` is A1111's "Automatic": the checkpoint's preferred VAE (``"vae"`` in its ``name.json``,
    set in A1111's checkpoint metadata editor or in this app's model browser) when it is installed
    in ``models/VAE``, else the checkpoint's own; a preferred VAE that is not installed is a warning.
    ``none`` is always the checkpoint's own. Anything else is a path or a name in ``models/VAE``.
    """
    keyword = given.strip().lower()
    if keyword == VAE_NONE:
        return None, ""
    if keyword != VAE_AUTO:
        return resolve_model_path(Path(given), "VAE", models_dir), ""
    from desktop.library.model_folders import list_models
    from desktop.library.sidecars import preferred_vae

    root = models_dir or default_models_dir()
    preferred = preferred_vae(model, [entry.path for entry in list_models([root], "vae")])
    sidecar = f"{model.name if model.is_dir() else model.stem}.json"
    if preferred.path is not None:
        return preferred.path, f"VAE: {preferred.path.name} (preferred in {sidecar})"
    if preferred.missing:
        return None, (
            f"warning: {sidecar} prefers the VAE {preferred.name}, which is not in {root / 'VAE'}; "
            "using the checkpoint's own VAE"
        )
    return None, ""


def _generate(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    args.model = resolve_model_path(args.model, "Stable-diffusion", _models_root(args.models_dir))
    args.vae, vae_note = resolve_vae(args.vae, args.model, _models_root(args.models_dir))
    request = _request_from(args)
    request.validate()  # bad sizes and counts fail before torch is even imported

    from desktop.engine.samplers import find_sampler
    from desktop.engine.schedules import find_schedule
    from desktop.engine.service import EngineOptions, EngineService
    from desktop.library.probe import probe_model, require_generation_checkpoint

    find_sampler(request.sampler)
    find_schedule(request.schedule)
    require_generation_checkpoint(probe_model(args.model))
    if args.vae is not None:
        probe_model(args.vae)  # unreadable VAE files fail now, not after the checkpoint loaded
    if vae_note:
        print(vae_note, file=err)

    roots = (_models_root(args.models_dir),) if args.models_dir else (default_models_dir(),)
    service = EngineService(
        EngineOptions(output_dir=args.out or default_output_dir(), device=args.device, precision=args.precision, model_roots=roots)
    )
    progress = _ProgressPrinter(err)
    cancel = CancelToken()
    try:
        with _cancel_on_ctrl_c(cancel):
            report = service.run(
                request,
                on_progress=progress,
                on_image=lambda saved: print(saved.path, file=out, flush=True),
                on_status=lambda message: print(message, file=err),
                cancel=cancel,
            )
    finally:
        progress.finish()
        service.close()
    for warning in report.warnings:
        print(f"warning: {warning}", file=err)
    if report.outcome == "failed":
        failure = report.failure
        print(f"error: {failure.message}" + (f" ({failure.hint})" if failure.hint else ""), file=err)
        return EXIT_BAD_INPUT if failure.user_error else EXIT_FAILURE
    if report.outcome == "cancelled":
        print(f"cancelled after {len(report.images)} image(s)", file=err)
        return EXIT_CANCELLED
    print(f"Done: {len(report.images)} image(s) in {report.seconds:.1f} s", file=err)
    return EXIT_OK


@contextlib.contextmanager
def _cancel_on_ctrl_c(cancel: CancelToken) -> Iterator[None]:
    """Ctrl+C cancels at the next sampling step instead of killing the process mid-write."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, lambda *_: cancel.cancel())
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


class _ProgressPrinter:
    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.interactive = stream.isatty()

    def __call__(self, progress) -> None:
        line = (
            f"image {progress.image_index + 1}/{progress.batch_count} "
            f"step {progress.step}/{progress.total_steps} ({progress.iterations_per_second:.2f} it/s)"
        )
        if self.interactive:
            print("\r" + line, end="", file=self.stream, flush=True)
        else:
            print(line, file=self.stream)

    def finish(self) -> None:
        if self.interactive:
            print(file=self.stream)


def _convert(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from desktop.library.pickle_convert import convert_pickle_file
    from desktop.library.probe import probe_model

    target = args.out or args.path.with_suffix(".safetensors")
    if target.exists():
        raise UserInputError(f"{target} already exists; choose another name with --out")
    cancel = CancelToken()
    try:
        with _cancel_on_ctrl_c(cancel):
            convert_pickle_file(args.path, target, cancel=cancel)
    except Cancelled:
        print("cancelled", file=err)
        return EXIT_CANCELLED
    print(f"{probe_model(target).describe()}", file=err)
    print(target, file=out)
    return EXIT_OK


def _info(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    if _is_image(args.path):
        return _image_info(args.path, args.json, out, err)
    from desktop.library.hashes import autov2_hash, legacy_model_hash, safetensors_tensor_hash, sha256_file, short_network_hash
    from desktop.library.probe import probe_model

    probe = probe_model(args.path)
    facts: dict[str, object] = {
        "path": str(args.path),
        "what": probe.describe(),
        "kind": probe.kind.value,
        "family": probe.family.value,
        "variant": probe.variant.value,
        "prediction": probe.prediction.value,
        "layout": probe.layout.value,
        "precision": probe.precision,
        "baked-in VAE": probe.has_vae,
        "EMA weights": probe.has_ema,
        "tensors": len(probe.header.tensors) if probe.header else None,
    }
    if args.path.is_file() and not args.no_hash:
        print("hashing...", file=err)
        full = sha256_file(args.path)
        facts["sha256"] = full
        facts["model hash (AutoV2)"] = autov2_hash(full)
        facts["legacy hash"] = legacy_model_hash(args.path)
        if probe.header is not None:
            facts["network hash (Lora/TI hashes)"] = short_network_hash(safetensors_tensor_hash(args.path))
    facts["why"] = list(probe.reasons)
    if args.json:
        print(json.dumps(facts, ensure_ascii=False, indent=2), file=out)
    else:
        for key, value in facts.items():
            if isinstance(value, list):
                value = "; ".join(value)
            print(f"{key}: {value}", file=out)
    return EXIT_OK


def _is_image(path: Path) -> bool:
    """An image by its content; a file named like an image that is not one is reported as such too."""
    from desktop.library.image_metadata import IMAGE_SUFFIXES, image_format

    if path.is_dir():
        return False
    return image_format(path) is not None or path.suffix.lower() in IMAGE_SUFFIXES


def _image_info(path: Path, as_json: bool, out: TextIO, err: TextIO) -> int:
    from desktop.library.image_metadata import SOURCE_NAMES, read_image_metadata

    metadata = read_image_metadata(path)
    if as_json:
        facts = {
            "source": metadata.source,
            "prompt": metadata.prompt,
            "negative_prompt": metadata.negative_prompt,
            "params": dict(metadata.params),
            "width": metadata.width,
            "height": metadata.height,
        }
        print(json.dumps(facts, ensure_ascii=False, indent=2), file=out)
        return EXIT_OK
    if not metadata.found:
        print("no generation parameters found", file=out)
        return EXIT_OK
    # stdout is exactly the infotext, for scripts; which tool wrote it goes to stderr.
    print(f"source: {SOURCE_NAMES.get(metadata.source, metadata.source)}", file=err)
    print(_for_terminal(metadata.infotext(), out), file=out)
    return EXIT_OK


# Control characters and bidirectional overrides: in text from a stranger's image they could
# recolour, retitle or reorder a terminal. Newlines and tabs are the infotext's own.
_TERMINAL_UNSAFE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _for_terminal(text: str, stream: TextIO) -> str:
    """``text`` with control characters shown as escapes when ``stream`` is a terminal; as is for pipes."""
    if not stream.isatty():
        return text
    return _TERMINAL_UNSAFE.sub(lambda match: f"\\u{ord(match.group()):04x}", text)
