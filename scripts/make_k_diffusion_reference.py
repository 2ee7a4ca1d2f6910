"""Write tests/data/k_diffusion_reference.safetensors: k-diffusion's own samplers on a toy denoiser.

The product never imports k-diffusion (its package pulls torchvision, clean-fid and more); this
script runs the reference implementation once so tests/engine/test_k_diffusion_reference.py can
hold our samplers to it. It needs k-diffusion 0.1.1.post1 (the version A1111 1.10 pins) unpacked
somewhere, and torchsde 0.2.6 (a dependency of ours anyway):

    pip download --no-deps k-diffusion==0.1.1.post1 -d /tmp/kd
    python -m zipfile -e /tmp/kd/k_diffusion-0.1.1.post1-py3-none-any.whl /tmp/ref/src
    .venv/bin/python scripts/make_k_diffusion_reference.py --k-diffusion /tmp/ref/src

Only ``k_diffusion/sampling.py`` is loaded, under a stub ``k_diffusion`` package: its ``__init__``
imports the training code, and ``sampling`` itself needs only ``utils.append_dims`` (given here)
and ``torchdiffeq.odeint`` (used by ``log_likelihood`` alone; a stub that refuses to run).

What is recorded (float32, batch of 2, 4x8x8 latents): the toy denoiser's weights, the initial
noise of seeds SEED and SEED + 1, Karras sigmas of the SD schedule for STEPS steps, and the output
of every k-diffusion sampler we reproduce. Ancestral noise comes from one CPU generator per image
continuing after the initial noise (A1111's ImageRNG, written out here independently of ours);
the SDE samplers get k-diffusion's BrownianTreeNoiseSampler with seeds [SEED, SEED + 1], as A1111
builds it. Restart is not here: it is A1111's, not k-diffusion's (tested on its own).
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import types
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.fixtures.toy_denoiser import ToyDenoiser, toy_weights  # noqa: E402

OUTPUT = REPO / "tests" / "data" / "k_diffusion_reference.safetensors"
SEED = 31337
STEPS = 8
SHAPE = (4, 8, 8)
# The SD 1.x/2.x training schedule (scaled_linear betas 0.00085 .. 0.012 over 1000 steps).
BETA_START, BETA_END, TRAIN_STEPS = 0.00085, 0.012, 1000


def load_k_diffusion_sampling(root: Path) -> types.ModuleType:
    """``k_diffusion.sampling`` from ``root``, without running ``k_diffusion/__init__``."""
    package = types.ModuleType("k_diffusion")
    package.__path__ = [str(root / "k_diffusion")]
    utils = types.ModuleType("k_diffusion.utils")

    def append_dims(x: torch.Tensor, target_dims: int) -> torch.Tensor:  # k_diffusion.utils.append_dims
        dims_to_append = target_dims - x.ndim
        if dims_to_append < 0:
            raise ValueError(f"input has {x.ndim} dims but target_dims is {target_dims}, which is less")
        return x[(...,) + (None,) * dims_to_append]

    utils.append_dims = append_dims
    package.utils = utils
    torchdiffeq = types.ModuleType("torchdiffeq")

    def odeint(*args: object, **kwargs: object) -> None:
        raise RuntimeError("torchdiffeq is stubbed: log_likelihood is not part of the reference")

    torchdiffeq.odeint = odeint
    sys.modules.update({"k_diffusion": package, "k_diffusion.utils": utils, "torchdiffeq": torchdiffeq})
    spec = importlib.util.spec_from_file_location("k_diffusion.sampling", root / "k_diffusion" / "sampling.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["k_diffusion.sampling"] = module
    spec.loader.exec_module(module)
    _numpy1_lms_coefficients(module)
    return module


def _numpy1_lms_coefficients(sampling: types.ModuleType) -> None:
    """Run LMS's coefficient integrals in float64, as they ran under A1111's NumPy 1.

    ``linear_multistep_coeff`` gets ``sigmas.cpu().numpy()`` (float32). NumPy 1 promoted
    ``python float - np.float32`` to float64; NumPy 2 (NEP 50) keeps float32. Feeding float64
    copies of the same float32 values restores the NumPy 1 arithmetic.
    """
    original = sampling.linear_multistep_coeff

    def coeff(order: int, t: np.ndarray, i: int, j: int) -> float:
        return original(order, np.asarray(t, dtype=np.float64), i, j)

    sampling.linear_multistep_coeff = coeff


def sd_model_sigmas() -> torch.Tensor:
    """The 1000 training sigmas as A1111 has them: ldm's betas in float64, alphas_cumprod stored as float32,
    and k-diffusion's CompVisDenoiser taking sigma = sqrt((1 - a) / a) of those."""
    betas = torch.linspace(BETA_START**0.5, BETA_END**0.5, TRAIN_STEPS, dtype=torch.float64) ** 2
    alphas_cumprod = torch.cumprod(1.0 - betas, dim=0).to(torch.float32)
    return ((1 - alphas_cumprod) / alphas_cumprod) ** 0.5


class ImageStream:
    """One CPU generator per image: the first draw is the initial noise, later ones the ancestral noise."""

    def __init__(self, seeds: list[int]) -> None:
        self.generators = [torch.Generator().manual_seed(seed) for seed in seeds]

    def next(self) -> torch.Tensor:
        return torch.stack([torch.randn(SHAPE, generator=g, dtype=torch.float32) for g in self.generators])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--k-diffusion", type=Path, default=Path("/tmp/ref/src"), help="folder holding k_diffusion/sampling.py")
    parser.add_argument("--out", type=Path, default=OUTPUT)
    args = parser.parse_args()
    sampling = load_k_diffusion_sampling(args.k_diffusion)
    seeds = [SEED, SEED + 1]

    model_sigmas = sd_model_sigmas()
    sigma_min, sigma_max = model_sigmas[0].item(), model_sigmas[-1].item()
    sigmas = sampling.get_sigmas_karras(STEPS, sigma_min, sigma_max)
    weight, bias = toy_weights()
    x_T = ImageStream(seeds).next() * sigmas[0]

    def ancestral_noise():
        stream = ImageStream(seeds)
        stream.next()  # the initial noise
        return lambda sigma, sigma_next: stream.next()

    def brownian_noise():
        low, high = sigmas[sigmas > 0].min(), sigmas.max()
        return sampling.BrownianTreeNoiseSampler(x_T, low, high, seed=seeds)

    runs = {
        "euler": lambda m: sampling.sample_euler(m, x_T.clone(), sigmas),
        "euler_ancestral": lambda m: sampling.sample_euler_ancestral(m, x_T.clone(), sigmas, noise_sampler=ancestral_noise()),
        "heun": lambda m: sampling.sample_heun(m, x_T.clone(), sigmas),
        "dpm_2": lambda m: sampling.sample_dpm_2(m, x_T.clone(), sigmas),
        "dpm_2_ancestral": lambda m: sampling.sample_dpm_2_ancestral(m, x_T.clone(), sigmas, noise_sampler=ancestral_noise()),
        "lms": lambda m: sampling.sample_lms(m, x_T.clone(), sigmas),
        "dpmpp_2s_ancestral": lambda m: sampling.sample_dpmpp_2s_ancestral(m, x_T.clone(), sigmas, noise_sampler=ancestral_noise()),
        "dpmpp_2m": lambda m: sampling.sample_dpmpp_2m(m, x_T.clone(), sigmas),
        "dpmpp_sde": lambda m: sampling.sample_dpmpp_sde(m, x_T.clone(), sigmas, noise_sampler=brownian_noise()),
        "dpmpp_2m_sde": lambda m: sampling.sample_dpmpp_2m_sde(m, x_T.clone(), sigmas, noise_sampler=brownian_noise()),
        "dpmpp_2m_sde_heun": lambda m: sampling.sample_dpmpp_2m_sde(
            m, x_T.clone(), sigmas, noise_sampler=brownian_noise(), solver_type="heun"
        ),
        "dpmpp_3m_sde": lambda m: sampling.sample_dpmpp_3m_sde(m, x_T.clone(), sigmas, noise_sampler=brownian_noise()),
        # A1111's img2img arguments (the ends of the sigmas, n = steps) and its txt2img ones (the
        # model's whole sigma range as Python floats); eta = 1 is A1111's "eta_ancestral" default.
        "dpm_fast": lambda m: sampling.sample_dpm_fast(
            m, x_T.clone(), sigmas[-2], sigmas[0], len(sigmas) - 1, eta=1.0, noise_sampler=ancestral_noise()
        ),
        "dpm_fast_model_range": lambda m: sampling.sample_dpm_fast(
            m, x_T.clone(), sigma_min, sigma_max, len(sigmas) - 1, eta=1.0, noise_sampler=ancestral_noise()
        ),
        "dpm_adaptive": lambda m: sampling.sample_dpm_adaptive(
            m, x_T.clone(), sigmas[-2], sigmas[0], eta=1.0, noise_sampler=ancestral_noise()
        ),
        "dpm_adaptive_model_range": lambda m: sampling.sample_dpm_adaptive(
            m, x_T.clone(), sigma_min, sigma_max, eta=1.0, noise_sampler=ancestral_noise()
        ),
    }
    tensors = {"weight": weight, "bias": bias, "sigmas": sigmas, "x_T": x_T, "model_sigma_range": torch.tensor([sigma_min, sigma_max])}
    for name, run in runs.items():
        model = ToyDenoiser(weight, bias)
        with torch.no_grad():
            out = run(model)
        tensors[f"out.{name}"] = out.contiguous()
        tensors[f"calls.{name}"] = torch.tensor(model.calls, dtype=torch.float32)  # the sigma of every model call
        print(f"{name:26s} {len(model.calls):3d} model calls  |out| = {out.abs().mean():.6f}")
    metadata = {"k_diffusion": "0.1.1.post1", "seeds": f"{SEED},{SEED + 1}", "steps": str(STEPS)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(args.out), metadata=metadata)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
