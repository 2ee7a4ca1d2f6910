"""DPM fast and DPM adaptive: k-diffusion's ``DPMSolver`` (DPM-Solver, arXiv:2206.00927).

Reproduces k-diffusion 0.1.1.post1's ``DPMSolver.dpm_solver_fast`` / ``dpm_solver_adaptive`` (with
``PIDStepSizeController``) as ``sample_dpm_fast`` / ``sample_dpm_adaptive`` call them, with
A1111's arguments: eta = 1 (A1111's "eta_ancestral" option), s_noise = 1, and the ancestral noise
drawn from the image's own generator (``torch.randn_like``, which A1111 redirects to its ImageRNG).

Both solvers work on a sigma range rather than a list of sigmas. A1111's txt2img passes the
model's full range (``model_wrap.sigmas[0]`` and ``[-1]``) and n = steps, whatever the schedule
type; its img2img passes ``sigma_sched[-2]``, ``sigma_sched[0]`` and ``len(sigma_sched) - 1``. The
functions below take the sigmas as every sampler does and derive the img2img values from them;
a caller that wants the txt2img values passes ``sigma_min`` / ``sigma_max``.
"""

from __future__ import annotations

import math

import torch

from desktop.core.errors import GenerationError
from desktop.engine.denoiser import Denoiser
from desktop.engine.samplers.common import NoiseSource, StepCallback, ancestral_step, sigma_from_t, t_from_sigma

# k-diffusion's sample_dpm_adaptive defaults (A1111 passes none of them).
ADAPTIVE_DEFAULTS = dict(order=3, rtol=0.05, atol=0.0078, h_init=0.05, pcoeff=0.0, icoeff=1.0, dcoeff=0.0, accept_safety=0.81)


class PIDStepSizeController:
    """k-diffusion's PID controller for the adaptive step size (all in float, as there)."""

    def __init__(self, h: float, pcoeff: float, icoeff: float, dcoeff: float, order: float = 1, accept_safety: float = 0.81, eps: float = 1e-8) -> None:
        self.h = h
        self.b1 = (pcoeff + icoeff + dcoeff) / order
        self.b2 = -(pcoeff + 2 * dcoeff) / order
        self.b3 = dcoeff / order
        self.accept_safety = accept_safety
        self.eps = eps
        self.errs: list[float] = []

    @staticmethod
    def limiter(x: float) -> float:
        return 1 + math.atan(x - 1)

    def propose_step(self, error: torch.Tensor | float) -> bool:
        """Scale ``h`` by the error; True when the step just tried is accepted."""
        inv_error = 1 / (float(error) + self.eps)
        if not self.errs:
            self.errs = [inv_error, inv_error, inv_error]
        self.errs[0] = inv_error
        factor = self.errs[0] ** self.b1 * self.errs[1] ** self.b2 * self.errs[2] ** self.b3
        factor = self.limiter(factor)
        accept = factor >= self.accept_safety
        if accept:
            self.errs[2] = self.errs[1]
            self.errs[1] = self.errs[0]
        self.h *= factor
        return accept


EpsCache = dict[str, torch.Tensor]


class DPMSolver:
    """DPM-Solver-1/2/3 steps in t = -log(sigma), with the eps predictions cached within a step."""

    def __init__(self, model: Denoiser, callback: StepCallback | None = None) -> None:
        self.model = model
        self.callback = callback  # (step index, denoised) once per step (k-diffusion's info_callback)

    def eps(self, cache: EpsCache, key: str, x: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, EpsCache]:
        if key in cache:
            return cache[key], cache
        sigma = sigma_from_t(t)
        eps = (x - self.model(x, sigma)) / sigma
        return eps, {key: eps, **cache}

    def dpm_solver_1_step(self, x: torch.Tensor, t: torch.Tensor, t_next: torch.Tensor, cache: EpsCache) -> tuple[torch.Tensor, EpsCache]:
        h = t_next - t
        eps, cache = self.eps(cache, "eps", x, t)
        return x - sigma_from_t(t_next) * h.expm1() * eps, cache

    def dpm_solver_2_step(
        self, x: torch.Tensor, t: torch.Tensor, t_next: torch.Tensor, cache: EpsCache, r1: float = 1 / 2
    ) -> tuple[torch.Tensor, EpsCache]:
        h = t_next - t
        eps, cache = self.eps(cache, "eps", x, t)
        s1 = t + r1 * h
        u1 = x - sigma_from_t(s1) * (r1 * h).expm1() * eps
        eps_r1, cache = self.eps(cache, "eps_r1", u1, s1)
        x_2 = x - sigma_from_t(t_next) * h.expm1() * eps - sigma_from_t(t_next) / (2 * r1) * h.expm1() * (eps_r1 - eps)
        return x_2, cache

    def dpm_solver_3_step(
        self, x: torch.Tensor, t: torch.Tensor, t_next: torch.Tensor, cache: EpsCache, r1: float = 1 / 3, r2: float = 2 / 3
    ) -> tuple[torch.Tensor, EpsCache]:
        h = t_next - t
        eps, cache = self.eps(cache, "eps", x, t)
        s1 = t + r1 * h
        s2 = t + r2 * h
        u1 = x - sigma_from_t(s1) * (r1 * h).expm1() * eps
        eps_r1, cache = self.eps(cache, "eps_r1", u1, s1)
        u2 = (
            x
            - sigma_from_t(s2) * (r2 * h).expm1() * eps
            - sigma_from_t(s2) * (r2 / r1) * ((r2 * h).expm1() / (r2 * h) - 1) * (eps_r1 - eps)
        )
        eps_r2, cache = self.eps(cache, "eps_r2", u2, s2)
        x_3 = x - sigma_from_t(t_next) * h.expm1() * eps - sigma_from_t(t_next) / r2 * (h.expm1() / h - 1) * (eps_r2 - eps)
        return x_3, cache

    def _report(self, i: int, x: torch.Tensor, t: torch.Tensor, cache: EpsCache) -> None:
        if self.callback is not None:
            self.callback(i, x - sigma_from_t(t) * cache["eps"])

    def dpm_solver_fast(
        self, x: torch.Tensor, t_start: torch.Tensor, t_end: torch.Tensor, nfe: int, eta: float, s_noise: float, noise: NoiseSource
    ) -> torch.Tensor:
        if not t_end > t_start and eta:
            raise ValueError("eta must be 0 for reverse sampling")
        # nfe model calls spread over steps of order 3 (the last ones of order 2 / 1).
        m = math.floor(nfe / 3) + 1
        ts = torch.linspace(t_start, t_end, m + 1, device=x.device)
        if nfe % 3 == 0:
            orders = [3] * (m - 2) + [2, 1]
        else:
            orders = [3] * (m - 1) + [nfe % 3]

        for i in range(len(orders)):
            cache: EpsCache = {}
            t, t_next = ts[i], ts[i + 1]
            if eta:
                sd, su = ancestral_step(sigma_from_t(t), sigma_from_t(t_next), eta)
                t_next_ = torch.minimum(t_end, t_from_sigma(sd))
                su = (sigma_from_t(t_next) ** 2 - sigma_from_t(t_next_) ** 2) ** 0.5
            else:
                t_next_, su = t_next, 0.0
            _, cache = self.eps(cache, "eps", x, t)
            self._report(i, x, t, cache)
            if orders[i] == 1:
                x, cache = self.dpm_solver_1_step(x, t, t_next_, cache)
            elif orders[i] == 2:
                x, cache = self.dpm_solver_2_step(x, t, t_next_, cache)
            else:
                x, cache = self.dpm_solver_3_step(x, t, t_next_, cache)
            # k-diffusion draws the noise every step, even the last one where su is 0.
            x = x + su * s_noise * noise(sigma_from_t(t), sigma_from_t(t_next))
        return x

    def dpm_solver_adaptive(
        self,
        x: torch.Tensor,
        t_start: torch.Tensor,
        t_end: torch.Tensor,
        *,
        order: int,
        rtol: float,
        atol: float,
        h_init: float,
        pcoeff: float,
        icoeff: float,
        dcoeff: float,
        accept_safety: float,
        eta: float,
        s_noise: float,
        noise: NoiseSource,
    ) -> tuple[torch.Tensor, dict[str, int]]:
        if order not in {2, 3}:
            raise ValueError("order should be 2 or 3")
        forward = t_end > t_start
        if not forward and eta:
            raise ValueError("eta must be 0 for reverse sampling")
        h_init = abs(h_init) * (1 if forward else -1)
        atol_t = torch.tensor(atol)
        rtol_t = torch.tensor(rtol)
        s = t_start
        x_prev = x
        pid = PIDStepSizeController(h_init, pcoeff, icoeff, dcoeff, 1.5 if eta else order, accept_safety)
        info = {"steps": 0, "nfe": 0, "n_accept": 0, "n_reject": 0}

        while s < t_end - 1e-5 if forward else s > t_end + 1e-5:
            cache: EpsCache = {}
            t = torch.minimum(t_end, s + pid.h) if forward else torch.maximum(t_end, s + pid.h)
            if eta:
                sd, su = ancestral_step(sigma_from_t(s), sigma_from_t(t), eta)
                t_ = torch.minimum(t_end, t_from_sigma(sd))
                su = (sigma_from_t(t) ** 2 - sigma_from_t(t_) ** 2) ** 0.5
            else:
                t_, su = t, 0.0
            _, cache = self.eps(cache, "eps", x, s)
            denoised = x - sigma_from_t(s) * cache["eps"]
            if order == 2:
                x_low, cache = self.dpm_solver_1_step(x, s, t_, cache)
                x_high, cache = self.dpm_solver_2_step(x, s, t_, cache)
            else:
                x_low, cache = self.dpm_solver_2_step(x, s, t_, cache, r1=1 / 3)
                x_high, cache = self.dpm_solver_3_step(x, s, t_, cache)
            delta = torch.maximum(atol_t, rtol_t * torch.maximum(x_low.abs(), x_prev.abs()))
            error = torch.linalg.norm((x_low - x_high) / delta) / x.numel() ** 0.5
            if not torch.isfinite(error):
                # k-diffusion would reject forever (h becomes NaN); stop with the error NaNs deserve.
                raise GenerationError("the model produced NaN values; try --precision fp32 (or another checkpoint)", hint="precision")
            accept = pid.propose_step(error)
            if accept:
                x_prev = x_low
                x = x_high + su * s_noise * noise(sigma_from_t(s), sigma_from_t(t))
                s = t
                info["n_accept"] += 1
            else:
                info["n_reject"] += 1
            info["nfe"] += order
            info["steps"] += 1
            if self.callback is not None:
                self.callback(info["steps"] - 1, denoised)
        return x, info


def _sigma_range(sigmas: torch.Tensor, sigma_min: torch.Tensor | float | None, sigma_max: torch.Tensor | float | None) -> tuple[torch.Tensor, torch.Tensor]:
    """The range as k-diffusion receives it; by default A1111's img2img choice: sigmas[-2] and sigmas[0]."""
    low = sigmas[-2] if sigma_min is None else sigma_min  # the last sigma is 0, which DPM-Solver cannot take
    high = sigmas[0] if sigma_max is None else sigma_max
    if low <= 0 or high <= 0:
        raise ValueError("sigma_min and sigma_max must not be 0")
    # k-diffusion: torch.tensor(sigma) - float32, whether it got a Python float or a 0-dim tensor.
    return torch.as_tensor(low, dtype=torch.float32).detach().clone(), torch.as_tensor(high, dtype=torch.float32).detach().clone()


@torch.no_grad()
def sample_dpm_fast(
    model: Denoiser,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    *,
    callback: StepCallback,
    noise: NoiseSource,
    sigma_min: torch.Tensor | float | None = None,
    sigma_max: torch.Tensor | float | None = None,
    eta: float = 1.0,
    s_noise: float = 1.0,
) -> torch.Tensor:
    """k-diffusion ``sample_dpm_fast`` with n = len(sigmas) - 1 model calls over [sigma_min, sigma_max]."""
    low, high = _sigma_range(sigmas, sigma_min, sigma_max)
    solver = DPMSolver(model, callback)
    return solver.dpm_solver_fast(x, t_from_sigma(high), t_from_sigma(low), len(sigmas) - 1, eta, s_noise, noise)


@torch.no_grad()
def sample_dpm_adaptive(
    model: Denoiser,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    *,
    callback: StepCallback,
    noise: NoiseSource,
    sigma_min: torch.Tensor | float | None = None,
    sigma_max: torch.Tensor | float | None = None,
    eta: float = 1.0,
    s_noise: float = 1.0,
) -> torch.Tensor:
    """k-diffusion ``sample_dpm_adaptive`` (order 3, its default tolerances) over [sigma_min, sigma_max].

    The step count is the controller's choice; ``sigmas`` only gives the range.
    """
    low, high = _sigma_range(sigmas, sigma_min, sigma_max)
    solver = DPMSolver(model, callback)
    x, _info = solver.dpm_solver_adaptive(
        x, t_from_sigma(high), t_from_sigma(low), **ADAPTIVE_DEFAULTS, eta=eta, s_noise=s_noise, noise=noise
    )
    return x
