"""What the live preview costs: txt2img with the per-step "Approx cheap" preview against without.

Run by hand (not part of the test suite)::

    .venv/bin/python benchmarks/preview_overhead.py --size tiny --steps 10
    .venv/bin/python benchmarks/preview_overhead.py --size mid --steps 8 --runs 3

Both runs go through ``EngineService`` (what the app's engine thread runs), on the same loaded
model, interleaved; the preview run also converts each preview to bytes as the UI receives them.
Prints the median seconds per image and the ratio (1.00 = free).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks.engine_overhead import build_checkpoint  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=("tiny", "mid", "full"), default="tiny")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--runs", type=int, default=3, help="timed runs of each kind, interleaved")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda", "mps"), default="auto")
    parser.add_argument("--resolution", type=int, default=None, help="default: 64 for tiny, 512 otherwise")
    args = parser.parse_args(argv)

    from desktop.core.requests import GenerationRequest
    from desktop.engine.service import EngineOptions, EngineService

    path, params, _ = build_checkpoint(args.size)
    resolution = args.resolution or (64 if args.size == "tiny" else 512)
    with tempfile.TemporaryDirectory() as output:
        service = EngineService(EngineOptions(output_dir=Path(output), device=args.device))
        request = GenerationRequest(
            prompt="a lighthouse at dusk", steps=args.steps, width=resolution, height=resolution, seed=1, model_path=path
        )
        previews: list[int] = []
        service.run(request)  # warm-up: load and first run
        times: dict[bool, list[float]] = {False: [], True: []}
        for _ in range(args.runs):
            for preview in (False, True):
                service.configure(preview=preview)
                started = time.perf_counter()
                report = service.run(request, on_preview=lambda image: previews.append(len(image.rgb)))
                times[preview].append(time.perf_counter() - started)
                if report.outcome != "finished":
                    raise SystemExit(f"run failed: {report.failure}")
        service.close()
    without, with_preview = statistics.median(times[False]), statistics.median(times[True])
    print(f"checkpoint {args.size} ({params / 1e6:.0f} M parameters), {resolution} px, {args.steps} steps, {args.runs} runs each")
    print(f"without preview: {without:.3f} s/image")
    print(f"with preview:    {with_preview:.3f} s/image ({len(previews) // args.runs} previews per image)")
    print(f"ratio:           {with_preview / without:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
