"""What the gallery index costs with a big output folder: indexing, startup, search, memory.

Run by hand (not part of the test suite)::

    .venv/bin/python benchmarks/gallery_index.py --images 10000

It writes ``--images`` small PNGs (64x64) with realistic A1111 infotext (varied prompts, models,
samplers, sizes, seeds) in A1111's ``txt2img-images/DATE/`` layout, spread over 30 days, and
measures:

- first index: ``reconcile`` on an empty index (every file's parameters read);
- unchanged reconcile: the same again (no file opened, one stat per file);
- first page at startup: open the indexed database, ``count()`` and ``page(0, 200)``, newest first
  (what the gallery shows when the app starts, before the background reconcile);
- a search page: ``count`` + ``page(0, 200)`` for two words, and a filtered one (model + sampler);
- memory: the Python heap peak (tracemalloc) of the startup path and of the first index, and the
  process's peak resident size.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

from PIL import Image, PngImagePlugin

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from desktop.core.infotext import format_infotext  # noqa: E402
from desktop.library.gallery_store import GalleryQuery, GalleryStore  # noqa: E402

SUBJECTS = ["a girl with red hair", "a knight in armour", "a cat on a windowsill", "a castle at dusk",
            "portrait of an old man", "a cyberpunk street", "一只猫在窗台上睡觉", "a bowl of ramen"]
STYLES = ["masterpiece, best quality", "oil painting", "(photorealistic:1.3), 8k", "anime style",
          "watercolor, soft light", "<lora:add_detail:0.8>, highly detailed"]
NEGATIVES = ["lowres, bad anatomy, bad hands", "blurry, jpeg artifacts", "EasyNegative, worst quality", ""]
MODELS = [("dreamshaper_8", "879db523c3"), ("realisticVision_v51", "15012c538f"),
          ("sd_xl_base_1.0", "31e35c80fc"), ("anything-v5", "7f96a1a9ca")]
SAMPLERS = ["Euler a", "DPM++ 2M", "DPM++ SDE", "UniPC", "DDIM"]
SIZES = ["512x512", "512x768", "768x512", "1024x1024"]
DAY_NS = 86_400 * 10**9


def write_images(root: Path, count: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    pixels = Image.new("RGB", (64, 64), (120, 80, 200))
    now = time.time_ns()
    for number in range(count):
        model, model_hash = rng.choice(MODELS)
        prompt = f"{rng.choice(SUBJECTS)}, {rng.choice(STYLES)}, {rng.choice(STYLES)}"
        image_seed = rng.randrange(2**32)
        params = {
            "Steps": rng.choice([20, 25, 30]),
            "Sampler": rng.choice(SAMPLERS),
            "Schedule type": rng.choice(["Automatic", "Karras"]),
            "CFG scale": rng.choice([5, 6.5, 7]),
            "Seed": image_seed,
            "Size": rng.choice(SIZES),
            "Model hash": model_hash,
            "Model": model,
            "Lora hashes": "add_detail: 7c6bad76eb54",
            "Version": "v1.10.1",
        }
        info = PngImagePlugin.PngInfo()
        info.add_text("parameters", format_infotext(prompt, rng.choice(NEGATIVES), params))
        mtime_ns = now - rng.randrange(30 * DAY_NS)
        folder = root / "txt2img-images" / time.strftime("%Y-%m-%d", time.localtime(mtime_ns / 1e9))
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{number:05d}-{image_seed}.png"
        pixels.save(path, format="PNG", pnginfo=info, compress_level=1)
        os.utime(path, ns=(mtime_ns, mtime_ns))


def timed(function):
    start = time.perf_counter()
    result = function()
    return result, time.perf_counter() - start


def first_page(store: GalleryStore, query: GalleryQuery) -> tuple[int, int]:
    return store.count(query), len(store.page(query, 0, 200))


def peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1 << 20) if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB on Linux


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=10_000)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch) / "outputs"
        _, seconds = timed(lambda: write_images(root, args.images))
        print(f"wrote {args.images} PNGs in {seconds:.1f} s")
        database = Path(scratch) / "state" / "gallery.sqlite"
        thumbnails = Path(scratch) / "state" / "thumbnails"

        with GalleryStore(database, thumbnails) as store:
            report, first = timed(lambda: store.reconcile([root]))
            _, again = timed(lambda: store.reconcile([root]))
        print(f"first index: {first:.2f} s ({report.added} images, {1000 * first / max(1, report.added):.2f} ms each)")
        print(f"unchanged reconcile: {again * 1000:.0f} ms")

        def startup() -> tuple[int, int]:
            with GalleryStore(database, thumbnails) as store:
                return first_page(store, GalleryQuery())

        (total, shown), opened = timed(startup)
        print(f"startup, open + count + first page: {opened * 1000:.1f} ms ({shown} of {total} images)")

        with GalleryStore(database, thumbnails) as store:
            first_page(store, GalleryQuery())  # warm, as the app is once the gallery is shown
            for label, query in (
                ("search 'red hair'", GalleryQuery(search="red hair")),
                ("search '猫 窗台'", GalleryQuery(search="猫 窗台")),
                ("search 'ramen' oldest", GalleryQuery(search="ramen", sort="oldest")),
                ("filter model + sampler", GalleryQuery(model="dreamshaper_8", sampler="DPM++ 2M")),
                ("favourites only", GalleryQuery(favourites_only=True)),
                ("by name, page 40", GalleryQuery(sort="name")),
            ):
                offset = 40 * 200 if "page 40" in label else 0
                runs = []
                for _ in range(5):
                    start = time.perf_counter()
                    found = store.count(query)
                    store.page(query, offset, 200)
                    runs.append(time.perf_counter() - start)
                print(f"{label}: {sorted(runs)[2] * 1000:.1f} ms for count + page ({found} found)")
            image = store.page(GalleryQuery(), 0, 1)[0]
            _, made = timed(lambda: store.thumbnail(image.path))
            _, cached = timed(lambda: store.thumbnail(image.path))
            print(f"thumbnail: made in {made * 1000:.1f} ms, cached lookup {cached * 1000:.2f} ms")

        tracemalloc.start()
        startup()
        _, startup_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        with GalleryStore(Path(scratch) / "state2" / "gallery.sqlite", thumbnails) as store:
            store.reconcile([root])
        _, index_peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        print(
            f"memory: Python heap peak {startup_peak / 1e6:.1f} MB at startup (first page), "
            f"{index_peak / 1e6:.1f} MB during a first index; process peak RSS {peak_rss_mb():.0f} MB"
        )
        on_disk = sum(file.stat().st_size for file in database.parent.glob("gallery.sqlite*"))
        print(f"index size on disk: {on_disk / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
