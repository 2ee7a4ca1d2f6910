"""Decoding training images (orientation, colour modes, huge files) and the on-disk latent cache.

Real files written with Pillow and a tiny random-weight diffusers ``AutoencoderKL``; no mocks.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path

import pytest
import torch
from PIL import Image, ImageOps

from desktop.training.buckets import crop_plan
from desktop.training.dataset import DatasetError, DatasetOptions, scan_dataset
from desktop.training.images import load_training_image
from desktop.training.latent_cache import LatentCache, LatentKey, encode_latents

REPO = Path(__file__).resolve().parents[2]
RED, BLUE, WHITE = (255, 0, 0), (0, 0, 255), (255, 255, 255)


def two_halves(size: tuple[int, int], left=RED, right=BLUE) -> Image.Image:
    """Left half one colour, right half another: shows orientation and flips at a glance."""
    image = Image.new("RGB", size, right)
    image.paste(left, (0, 0, size[0] // 2, size[1]))
    return image


def as_rgb255(pixels: torch.Tensor, y: int, x: int) -> tuple[int, ...]:
    return tuple(round(float(value)) for value in (pixels[:, y, x] + 1) * 127.5)


def close_to(color: tuple[int, ...], expected: tuple[int, ...], tolerance: int = 12) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(color, expected, strict=True))


# --- decoding ------------------------------------------------------------------------------------


def test_an_image_is_resized_to_cover_its_bucket_and_centre_cropped(tmp_path):
    path = tmp_path / "wide.png"
    two_halves((768, 512)).save(path)

    image = load_training_image(path, (640, 384))

    assert image.pixels.shape == (3, 384, 640) and image.pixels.dtype == torch.float32
    assert -1.0 <= float(image.pixels.min()) and float(image.pixels.max()) <= 1.0
    assert image.crop_top_left == (21, 0) and image.original_size == (512, 768)
    assert close_to(as_rgb255(image.pixels, 10, 10), RED) and close_to(as_rgb255(image.pixels, 10, 630), BLUE)


def test_a_flip_mirrors_the_crop(tmp_path):
    path = tmp_path / "wide.png"
    two_halves((768, 512)).save(path)

    plain = load_training_image(path, (640, 384))
    flipped = load_training_image(path, (640, 384), flip=True)

    assert torch.equal(flipped.pixels, torch.flip(plain.pixels, dims=[2]))
    assert flipped.crop_top_left == crop_plan((768, 512), (640, 384), flip=True).crop_top_left


def test_exif_rotated_jpeg_is_scanned_and_loaded_upright(tmp_path):
    """A phone photo stored landscape with orientation 6 (turn 90 degrees clockwise) is a portrait."""
    path = tmp_path / "phone.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6
    two_halves((640, 480)).save(path, exif=exif.tobytes(), quality=95)
    with Image.open(path) as reference:  # the fixture itself: Pillow's upright view has red on top
        upright = ImageOps.exif_transpose(reference)
        assert upright.size == (480, 640) and close_to(upright.getpixel((240, 10)), RED)

    item = scan_dataset(DatasetOptions(train_data_dir=tmp_path)).items[0]
    image = load_training_image(path, item.bucket)

    assert (item.width, item.height, item.bucket) == (480, 640, (448, 576))
    assert image.original_size == (640, 480)
    assert close_to(as_rgb255(image.pixels, 10, 224), RED) and close_to(as_rgb255(image.pixels, 560, 224), BLUE)


def test_cmyk_jpeg_comes_out_in_the_right_colours(tmp_path):
    path = tmp_path / "print.jpg"
    Image.new("RGB", (512, 512), RED).convert("CMYK").save(path, quality=95)
    assert Image.open(path).mode == "CMYK"

    image = load_training_image(path, (512, 512))

    assert close_to(as_rgb255(image.pixels, 256, 256), RED, tolerance=20)


def test_palette_png_transparency_becomes_white(tmp_path):
    path = tmp_path / "sprite.png"
    sprite = Image.new("P", (512, 512), 0)
    sprite.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    sprite.paste(1, (256, 0, 512, 512))
    sprite.save(path, transparency=0)

    image = load_training_image(path, (512, 512))

    assert as_rgb255(image.pixels, 100, 10) == WHITE  # transparent black -> white, not black
    assert as_rgb255(image.pixels, 100, 500) == RED


def test_half_transparent_rgba_is_composited_on_white(tmp_path):
    path = tmp_path / "glass.png"
    Image.new("RGBA", (512, 512), (0, 0, 255, 128)).save(path)

    image = load_training_image(path, (512, 512))

    assert close_to(as_rgb255(image.pixels, 5, 5), (127, 127, 255), tolerance=2)


def test_sixteen_bit_greyscale_is_scaled_not_clipped_to_white(tmp_path):
    path = tmp_path / "scan16.png"
    Image.new("I;16", (512, 512), 32768).save(path)

    image = load_training_image(path, (512, 512))

    assert close_to(as_rgb255(image.pixels, 5, 5), (128, 128, 128), tolerance=2)


def test_a_file_broken_after_the_scan_raises_a_dataset_error_naming_it(tmp_path):
    path = tmp_path / "later.jpg"
    Image.new("RGB", (512, 512), RED).save(path)
    path.write_bytes(path.read_bytes()[:300])

    with pytest.raises(DatasetError, match="later.jpg"):
        load_training_image(path, (512, 512))


def write_huge_grey_png(path: Path, width: int, height: int) -> Path:
    """A width x height 8-bit greyscale PNG (dark left, bright right) written row by row, never held in memory."""
    row = b"\x00" + bytes(column * 256 // width for column in range(width))
    compressor = zlib.compressobj(1)
    data = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return len(payload).to_bytes(4, "big") + kind + payload + zlib.crc32(kind + payload).to_bytes(4, "big")

    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 0, 0, 0, 0])
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b""))
    return path


def test_a_huge_image_is_scanned_and_loaded_with_bounded_memory(tmp_path):
    """BAD_INPUTS (training): 12000x12000 (144 megapixels) decodes once at 1 byte/pixel, is reduced, then converted.

    Loading it naively as RGB float would take 1.7 GB; the peak here must stay well under half of that.
    Measured in a fresh process because the peak RSS is a high-water mark.
    """
    path = write_huge_grey_png(tmp_path / "huge.png", 12000, 12000)
    item = scan_dataset(DatasetOptions(train_data_dir=tmp_path)).items[0]
    assert (item.width, item.height, item.bucket) == (12000, 12000, (512, 512))

    code = textwrap.dedent(
        """
        import json, resource, sys
        from pathlib import Path
        from desktop.training.images import load_training_image
        scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale
        image = load_training_image(Path(sys.argv[1]), (512, 512))
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale
        left, right = float(image.pixels[:, :, :32].mean()), float(image.pixels[:, :, -32:].mean())
        print(json.dumps({"growth": after - before, "shape": list(image.pixels.shape), "left": left, "right": right}))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(path)], cwd=REPO, capture_output=True, text=True, timeout=120,
        env=os.environ | {"PYTHONPATH": str(REPO)},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    measured = json.loads(result.stdout)
    assert measured["growth"] < 400 * 2**20, f"peak memory grew by {measured['growth'] / 2**20:.0f} MiB"
    assert measured["shape"] == [3, 512, 512]
    assert measured["left"] < -0.8 and measured["right"] > 0.8  # the gradient survived


# --- latent cache --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_vae():
    from diffusers import AutoencoderKL

    torch.manual_seed(0)
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(8, 8, 8, 8),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=4,
        sample_size=64,
        scaling_factor=0.18215,
    )
    return vae.eval()


def _images(folder: Path, count: int) -> list[Path]:
    paths = []
    for index in range(count):
        path = folder / f"img{index}.png"
        two_halves((96, 64), left=(40 * index, 100, 200), right=(200, 40 * index, 30)).save(path)
        paths.append(path)
    return paths


def test_latents_are_deterministic_per_image_whatever_the_batch(tmp_path, tiny_vae):
    paths = _images(tmp_path, 2)
    cache = LatentCache(tmp_path / "cache", vae_id="tiny-vae")
    keys = [cache.key(path, (64, 64)) for path in paths]
    pixels = torch.stack([load_training_image(path, (64, 64)).pixels for path in paths])
    seeds = [cache.seed_for(key) for key in keys]

    batch = encode_latents(tiny_vae, pixels, seeds)
    alone = encode_latents(tiny_vae, pixels[1:], seeds[1:])

    assert batch.shape == (2, 4, 8, 8)
    torch.testing.assert_close(batch[1:], alone)
    distribution = tiny_vae.encode(pixels[:1]).latent_dist
    noise = torch.randn(distribution.mean.shape[1:], generator=torch.Generator().manual_seed(seeds[0]))
    torch.testing.assert_close(batch[0], (distribution.mean[0] + distribution.std[0] * noise) * 0.18215)
    assert not torch.allclose(batch[0], distribution.mean[0] * 0.18215)  # a sample, not the mean


def test_cache_round_trip_and_what_invalidates_it(tmp_path, tiny_vae):
    path = _images(tmp_path, 1)[0]
    cache = LatentCache(tmp_path / "cache", vae_id="tiny-vae")
    key = cache.key(path, (64, 64))
    latent = encode_latents(tiny_vae, load_training_image(path, (64, 64)).pixels[None], [cache.seed_for(key)])[0]

    assert cache.get(key) is None
    stored = cache.put(key, latent)
    assert stored.parent == tmp_path / "cache" and stored.suffix == ".safetensors"
    assert torch.equal(cache.get(key), latent)
    assert [p.name for p in stored.parent.iterdir()] == [stored.name]  # no temporary file left behind

    assert cache.get(cache.key(path, (64, 64), flip=True)) is None
    assert cache.get(cache.key(path, (128, 64))) is None
    assert LatentCache(tmp_path / "cache", vae_id="other-vae").get(key) is None
    os.utime(path, ns=(key.mtime_ns + 10**9, key.mtime_ns + 10**9))
    assert cache.get(cache.key(path, (64, 64))) is None  # the image was edited


def test_a_corrupt_cache_file_is_a_miss_and_is_rewritten(tmp_path, tiny_vae):
    path = _images(tmp_path, 1)[0]
    cache = LatentCache(tmp_path / "cache", vae_id="tiny-vae")
    key = cache.key(path, (64, 64))
    latent = torch.randn(4, 8, 8)
    stored = cache.put(key, latent)

    stored.write_bytes(stored.read_bytes()[:40])
    assert cache.get(key) is None
    stored.write_bytes(b"\xff" * 200)
    assert cache.get(key) is None

    cache.put(key, latent)
    assert torch.equal(cache.get(key), latent)


def test_a_cache_file_written_for_another_key_is_not_trusted(tmp_path):
    paths = _images(tmp_path, 2)
    cache = LatentCache(tmp_path / "cache", vae_id="tiny-vae")
    first, second = (cache.key(path, (64, 64)) for path in paths)
    cache.put(first, torch.ones(4, 8, 8))
    cache.path_for(first).replace(cache.path_for(second))  # e.g. a file copied between caches by hand

    assert cache.get(second) is None


def test_latent_keys_are_stable_and_their_seeds_fit_a_generator(tmp_path):
    path = _images(tmp_path, 1)[0]
    key = LatentKey.for_image(path, (64, 64))

    assert key == LatentKey.for_image(path, (64, 64))
    assert key.path == str(path.resolve())
    assert 0 <= key.seed("vae") < 2**63 and key.seed("vae") != key.seed("other")
    with pytest.raises(ValueError, match="vae_id"):
        LatentCache(tmp_path, vae_id="")
