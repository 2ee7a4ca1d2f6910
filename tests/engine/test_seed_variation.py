"""A1111's variation seed (slerp of two noises) and "resize seed from" (centred noise of another size)."""

from __future__ import annotations

import io

import pytest
import torch

from desktop.cli import main
from desktop.core.errors import InvalidRequest
from desktop.core.infotext import parse_infotext
from desktop.core.requests import GenerationRequest
from desktop.engine.noise import ImageNoise, SeedVariation, slerp

SHAPE = (4, 8, 8)


def draws(seed: int, shape=SHAPE, count: int = 2) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(shape, generator=generator) for _ in range(count)]


def test_no_variation_is_the_plain_seed_noise():
    noise = ImageNoise([7], SHAPE, SeedVariation(subseeds=[99], strength=0.0))
    first, second = draws(7)
    assert torch.equal(noise.next()[0], first)
    assert torch.equal(noise.next()[0], second)


def test_strength_one_gives_the_variation_seeds_noise_and_later_draws_stay_on_the_seed():
    noise = ImageNoise([7], SHAPE, SeedVariation(subseeds=[99], strength=1.0))
    assert torch.allclose(noise.next()[0], draws(99)[0], atol=1e-5)
    assert torch.equal(noise.next()[0], draws(7)[1])  # ancestral noise continues the image's own generator


def test_partial_strength_is_a_spherical_not_a_linear_blend():
    low, high = draws(1)[0], draws(2)[0]
    mixed = slerp(0.5, low, high)
    assert not torch.allclose(mixed, (low + high) / 2, atol=1e-3)
    # per (channel, column) the blend keeps the norm of unit vectors on the great circle: compare the
    # blended norms with those of the inputs (A1111 normalises over dim 1 of (C, H, W) noise)
    assert torch.allclose(mixed.norm(dim=1), ((low.norm(dim=1) + high.norm(dim=1)) / 2), rtol=0.35)
    assert torch.allclose(slerp(0.0, low, high), low, atol=1e-5)


def test_batch_images_take_consecutive_variation_seeds():
    request = GenerationRequest(prompt="x", seed=10, variation_seed=50, variation_strength=0.3, batch_size=2)
    assert request.image_variation_seeds(0) == [50, 51]
    assert request.image_variation_seeds(1) == [52, 53]
    batch = ImageNoise([10, 11], SHAPE, SeedVariation(subseeds=[50, 51], strength=0.3)).next()
    single = ImageNoise([11], SHAPE, SeedVariation(subseeds=[51], strength=0.3)).next()
    assert torch.equal(batch[1], single[0])


def test_resize_seed_from_the_same_size_changes_nothing():
    plain = ImageNoise([3], SHAPE).next()
    same = ImageNoise([3], SHAPE, SeedVariation(resize_from=(64, 64))).next()
    assert torch.equal(plain, same)


def test_noise_from_a_smaller_size_sits_in_the_centre():
    big = (4, 12, 16)  # a 128x96 image
    noise = ImageNoise([3], big, SeedVariation(resize_from=(64, 64))).next()[0]
    small = draws(3, SHAPE, 1)[0]  # the noise a 64x64 image of seed 3 would have
    assert torch.equal(noise[:, 2:10, 4:12], small)
    border = draws(3, big, 1)[0]  # the rest is the image's own first draw
    assert torch.equal(noise[:, :2], border[:, :2])


def test_noise_from_a_larger_size_is_cropped_to_its_centre():
    noise = ImageNoise([3], SHAPE, SeedVariation(resize_from=(128, 96))).next()[0]
    large = draws(3, (4, 12, 16), 1)[0]
    assert torch.equal(noise, large[:, 2:10, 4:12])


@pytest.mark.parametrize(
    "bad",
    [dict(variation_strength=1.5), dict(variation_strength=-0.1), dict(variation_seed=-7), dict(resize_seed_from=(60, 64))],
)
def test_bad_variation_settings_are_rejected(bad):
    with pytest.raises(InvalidRequest):
        GenerationRequest(prompt="x", **bad).validate()


def test_generate_records_variation_like_a1111(tiny_sd1, tmp_path):
    def generate(*extra: str) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        code = main(
            ["generate", "--model", str(tiny_sd1), "--prompt", "cat", "--steps", "2", "--width", "32", "--height", "32",
             "--seed", "4", "--device", "cpu", "--out", str(tmp_path), *extra],
            stdout=out, stderr=err,
        )
        return code, out.getvalue().strip(), err.getvalue()

    code, path, err = generate("--variation-seed", "77", "--variation-strength", "0.25", "--resize-seed-from", "64x48")
    assert code == 0, err
    from PIL import Image

    text = Image.open(path).text["parameters"]
    params = parse_infotext(text)[2]
    assert (params["Variation seed"], params["Variation seed strength"], params["Seed resize from"]) == ("77", "0.25", "64x48")
    keys = list(params)
    assert keys.index("Seed") < keys.index("Variation seed") < keys.index("Variation seed strength") < keys.index("Seed resize from")
    plain_code, plain_path, _ = generate()
    assert "Variation seed" not in parse_infotext(Image.open(plain_path).text["parameters"])[2]
    assert generate("--variation-strength", "2")[0] == 2
    assert generate("--resize-seed-from", "big")[0] == 2
