"""Brownian-tree noise (k-diffusion's BrownianTreeNoiseSampler with A1111's per-image seeds).

Agreement with k-diffusion's own class, through the SDE samplers, is in test_k_diffusion_reference.
"""

from __future__ import annotations

import pytest
import torch

from desktop.engine.samplers.brownian import BrownianTreeNoise, brownian_sigma_range

pytestmark = pytest.mark.filterwarnings("ignore:Should have:UserWarning")  # torchsde's end-of-interval round-off

LOW, HIGH = torch.tensor(0.0292), torch.tensor(14.6146)
SHAPE = (4, 16, 16)


def _noise(seeds, dtype=torch.float32):
    return BrownianTreeNoise(torch.zeros((len(seeds), *SHAPE), dtype=dtype), LOW, HIGH, seeds)


def test_each_image_has_its_own_tree_so_a_batch_equals_single_runs():
    a, b = torch.tensor(3.0), torch.tensor(2.5)
    batch = _noise([100, 101])(a, b)
    assert torch.equal(batch[0], _noise([100])(a, b)[0])
    assert torch.equal(batch[1], _noise([101])(a, b)[0])
    assert not torch.allclose(batch[0], batch[1])


def test_the_same_seed_gives_the_same_path_whatever_the_query_order():
    first, second = _noise([7]), _noise([7])
    q1, q2 = (torch.tensor(5.0), torch.tensor(4.0)), (torch.tensor(1.0), torch.tensor(0.5))
    a1, a2 = first(*q1), first(*q2)
    b2, b1 = second(*q2), second(*q1)  # asked in the other order
    assert torch.equal(a1, b1) and torch.equal(a2, b2)


def test_increments_add_up_like_brownian_motion():
    """W(a, c) = W(a, b) + W(b, c); the sampler sees each divided by the square root of its length."""
    noise = _noise([42])
    a, b, c = torch.tensor(8.0), torch.tensor(3.0), torch.tensor(1.0)  # descending, as samplers ask
    whole = noise(a, c) * (a - c).sqrt()
    parts = noise(a, b) * (a - b).sqrt() + noise(b, c) * (b - c).sqrt()
    assert torch.allclose(whole, parts, atol=1e-4)


def test_direction_flips_the_sign_and_the_scale_is_unit_variance():
    noise = _noise([5])
    down = noise(torch.tensor(6.0), torch.tensor(2.0))
    assert torch.equal(noise(torch.tensor(2.0), torch.tensor(6.0)), -down)
    assert abs(float(down.std()) - 1.0) < 0.1 and abs(float(down.mean())) < 0.1  # 1024 samples


def test_noise_comes_in_the_latents_dtype_and_needs_one_seed_per_image():
    assert _noise([1], dtype=torch.float16)(torch.tensor(2.0), torch.tensor(1.0)).dtype == torch.float16
    with pytest.raises(ValueError, match="one seed per image"):
        BrownianTreeNoise(torch.zeros((2, *SHAPE)), LOW, HIGH, [1])


def test_range_is_the_smallest_nonzero_sigma_to_the_largest():
    low, high = brownian_sigma_range(torch.tensor([14.6, 3.0, 0.5, 0.03, 0.0]))
    assert (float(low), float(high)) == (pytest.approx(0.03), pytest.approx(14.6))
