"""A1111's schedule types (sd_schedulers.py, v1.10) on the SD noise schedule: known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from desktop.core.errors import InvalidRequest
from desktop.engine import schedules
from desktop.engine.denoiser import DiscreteSchedule
from desktop.engine.loading import alphas_cumprod_from_config

SD = DiscreteSchedule(alphas_cumprod_from_config({"beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012}))
TRAINING_SIGMAS = SD.sigmas


@pytest.mark.parametrize("name", [n for n in schedules.schedule_names() if n != "Automatic"])
@pytest.mark.parametrize("steps", [1, 4, 10, 25])
def test_every_schedule_has_steps_plus_one_decreasing_sigmas(name, steps):
    sigmas = schedules.SCHEDULE_TYPES[name].sigmas(steps, SD)
    assert sigmas.shape == (steps + 1,)
    assert sigmas.dtype == torch.float32
    assert torch.all(sigmas[:-1] > sigmas[1:]) or steps == 1
    assert float(sigmas[0]) <= SD.sigma_max + 1e-3


def test_simple_takes_every_nth_training_sigma_from_the_top():
    sigmas = schedules.simple(10, SD)
    expected = [float(TRAINING_SIGMAS[t]) for t in (999, 899, 799, 699, 599, 499, 399, 299, 199, 99)]
    assert sigmas[:-1].tolist() == expected and float(sigmas[-1]) == 0.0


def test_ddim_uses_timesteps_1_plus_k_times_stride():
    sigmas = schedules.ddim(10, SD)
    assert sigmas[:-1].tolist() == [float(TRAINING_SIGMAS[t]) for t in (901, 801, 701, 601, 501, 401, 301, 201, 101, 1)]


def test_normal_is_uniform_in_timesteps_like_k_diffusion_get_sigmas():
    assert torch.allclose(schedules.normal(20, SD), schedules.uniform(20, SD), rtol=1e-5)


def test_sgm_uniform_drops_the_last_of_steps_plus_one_timesteps():
    sigmas = schedules.sgm_uniform(4, SD)
    # timesteps 999, 749.25, 499.5, 249.75 (linspace(999, 0, 5) without its end)
    expected = SD.t_to_sigma(torch.tensor([999.0, 749.25, 499.5, 249.75]))
    assert torch.allclose(sigmas[:-1], expected, rtol=1e-5)


def test_polyexponential_with_rho_1_is_exponential():
    assert torch.allclose(schedules.polyexponential(12, SD), schedules.exponential(12, SD), rtol=1e-5)
    curved = schedules.polyexponential(12, SD, rho=2.0)
    assert float(curved[0]) == pytest.approx(SD.sigma_max, rel=1e-5) and float(curved[-2]) == pytest.approx(SD.sigma_min, rel=1e-5)


def test_kl_optimal_is_even_in_arctan_sigma_and_ends_at_sigma_min():
    sigmas = schedules.kl_optimal(8, SD)
    angles = torch.arctan(sigmas.double())
    assert torch.allclose(angles[1:] - angles[:-1], torch.full((8,), (angles[-1] - angles[0]).item() / 8, dtype=torch.float64), rtol=1e-4)
    assert float(sigmas[0]) == pytest.approx(SD.sigma_max, rel=1e-5)
    assert float(sigmas[-1]) == pytest.approx(SD.sigma_min, rel=1e-5)  # A1111's version: no final zero


@pytest.mark.parametrize(("sdxl", "table"), [(False, schedules._AYS_SD1), (True, schedules._AYS_SDXL)])
def test_align_your_steps_uses_nvidias_table_and_interpolates_log_linearly(sdxl, table):
    exact = schedules.align_your_steps(len(table), SD, sdxl=sdxl)  # 11 sigmas: A1111 uses the table as is
    assert exact.tolist() == pytest.approx([*table, 0.0], rel=1e-6)
    twenty = schedules.align_your_steps(20, SD, sdxl=sdxl)
    assert float(twenty[0]) == pytest.approx(table[0], rel=1e-6) and float(twenty[-2]) == pytest.approx(table[-1], rel=1e-6)
    # 21 points on the 11-point table: every other one is the log-midpoint of a table segment
    midpoint = math.exp((math.log(table[0]) + math.log(table[1])) / 2)
    assert float(schedules.align_your_steps(21, SD, sdxl=sdxl)[1]) == pytest.approx(midpoint, rel=1e-5)


def test_beta_follows_the_beta_distribution_quantiles():
    sigmas = schedules.beta(6, SD)
    quantiles = [stats.beta.ppf(x, 0.6, 0.6) for x in 1 - np.linspace(0, 1, 6)]
    expected = [SD.sigma_min + q * (SD.sigma_max - SD.sigma_min) for q in quantiles]
    assert sigmas[:-1].tolist() == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize(
    ("given", "label"),
    [("karras", "Karras"), ("SGM Uniform", "SGM Uniform"), ("sgm_uniform", "SGM Uniform"), ("SGMUniform", "SGM Uniform"),
     ("kl_optimal", "KL Optimal"), ("align your steps", "Align Your Steps"), ("BETA", "Beta"), ("automatic", "Automatic")],
)
def test_schedule_names_and_a1111_ids_are_accepted(given, label):
    assert schedules.find_schedule(given) == label


def test_unknown_schedule_lists_the_choices():
    with pytest.raises(InvalidRequest, match="Align Your Steps"):
        schedules.find_schedule("zigzag")
