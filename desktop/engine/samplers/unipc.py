"""UniPC (Zhao et al. 2023, "UniPC: A Unified Predictor-Corrector Framework") as A1111 1.10 runs it.

A1111 vendors the authors' code (wl-zhao/UniPC, ``uni_pc.py``) and calls it from
``sd_samplers_timesteps_impl.unipc`` with: the discrete VP schedule of the model's alphas_cumprod,
data prediction (``predict_x0=True``), no thresholding, variant "bh1", "time_uniform" time steps,
the multistep method of order 3 with lower orders on the last steps, ``steps = len(timesteps)``
(A1111's timestep list, so 30 steps run 31) and no final denoise-to-zero. The model gets the
continuous time as the fractional discrete timestep ``(t - 1/N) * 1000``. The corrector's model
evaluation is reused by the next step, so the model is called ``steps`` times.
"""

from __future__ import annotations

import torch

from desktop.core.errors import InvalidRequest
from desktop.engine.denoiser import Denoiser
from desktop.engine.samplers.common import NoiseSource, StepCallback


def interpolate_fn(x: torch.Tensor, xp: torch.Tensor, yp: torch.Tensor) -> torch.Tensor:
    """The reference code's piecewise-linear interpolation (linear extrapolation outside ``xp``).

    Kept operation for operation: its choice of segment at a knot decides the last bits.
    ``x``: (N, C) query points; ``xp``, ``yp``: (C, K) knots and values.
    """
    n, k = x.shape[0], xp.shape[1]
    all_x = torch.cat([x.unsqueeze(2), xp.unsqueeze(0).repeat((n, 1, 1))], dim=2)
    sorted_all_x, x_indices = torch.sort(all_x, dim=2)
    x_idx = torch.argmin(x_indices, dim=2)
    cand_start_idx = x_idx - 1
    start_idx = torch.where(
        torch.eq(x_idx, 0),
        torch.tensor(1, device=x.device),
        torch.where(torch.eq(x_idx, k), torch.tensor(k - 2, device=x.device), cand_start_idx),
    )
    end_idx = torch.where(torch.eq(start_idx, cand_start_idx), start_idx + 2, start_idx + 1)
    start_x = torch.gather(sorted_all_x, dim=2, index=start_idx.unsqueeze(2)).squeeze(2)
    end_x = torch.gather(sorted_all_x, dim=2, index=end_idx.unsqueeze(2)).squeeze(2)
    start_idx2 = torch.where(
        torch.eq(x_idx, 0),
        torch.tensor(0, device=x.device),
        torch.where(torch.eq(x_idx, k), torch.tensor(k - 2, device=x.device), cand_start_idx),
    )
    y_positions_expanded = yp.unsqueeze(0).expand(n, -1, -1)
    start_y = torch.gather(y_positions_expanded, dim=2, index=start_idx2.unsqueeze(2)).squeeze(2)
    end_y = torch.gather(y_positions_expanded, dim=2, index=(start_idx2 + 1).unsqueeze(2)).squeeze(2)
    return start_y + (x - start_x) * (end_y - start_y) / (end_x - start_x)


class NoiseScheduleVP:
    """The reference ``NoiseScheduleVP('discrete', alphas_cumprod=...)``: x_t = alpha_t x0 + sigma_t eps
    with log(alpha_t) piecewise linear in continuous t, the n-th training step sitting at t = n / N."""

    def __init__(self, alphas_cumprod: torch.Tensor) -> None:
        log_alphas = 0.5 * torch.log(alphas_cumprod)
        self.total_N = len(log_alphas)
        self.T = 1.0
        self.t_array = torch.linspace(0.0, 1.0, self.total_N + 1)[1:].reshape((1, -1))
        self.log_alpha_array = log_alphas.reshape((1, -1))

    def marginal_log_mean_coeff(self, t: torch.Tensor) -> torch.Tensor:
        return interpolate_fn(t.reshape((-1, 1)), self.t_array, self.log_alpha_array).reshape((-1))

    def marginal_alpha(self, t: torch.Tensor) -> torch.Tensor:
        return torch.exp(self.marginal_log_mean_coeff(t))

    def marginal_std(self, t: torch.Tensor) -> torch.Tensor:
        return torch.sqrt(1.0 - torch.exp(2.0 * self.marginal_log_mean_coeff(t)))

    def marginal_lambda(self, t: torch.Tensor) -> torch.Tensor:
        """log(alpha_t / sigma_t), the half log-SNR that UniPC steps in."""
        log_mean_coeff = self.marginal_log_mean_coeff(t)
        log_std = 0.5 * torch.log(1.0 - torch.exp(2.0 * log_mean_coeff))
        return log_mean_coeff - log_std


def _expand(v: torch.Tensor, dims: int) -> torch.Tensor:
    return v[(...,) + (None,) * (dims - 1)]


class UniPC:
    """The reference ``UniPC`` with ``predict_x0=True`` (the only mode A1111 uses), variants B(h) 1 and 2."""

    def __init__(self, model: Denoiser, schedule: NoiseScheduleVP, variant: str = "bh1") -> None:
        if variant not in ("bh1", "bh2"):
            raise ValueError(f"UniPC variant {variant!r} is not supported")
        self.model = model
        self.ns = schedule
        self.variant = variant

    def data_prediction(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """x0 from the eps model, asked at A1111's discrete input time (t - 1/N) * 1000."""
        eps = self.model(x, (t - 1.0 / self.ns.total_N) * 1000.0)
        alpha_t, sigma_t = self.ns.marginal_alpha(t), self.ns.marginal_std(t)
        return (x - _expand(sigma_t, x.dim()) * eps) / _expand(alpha_t, x.dim())

    def multistep_bh_update(
        self,
        x: torch.Tensor,
        model_prev_list: list[torch.Tensor],
        t_prev_list: list[torch.Tensor],
        t: torch.Tensor,
        order: int,
        use_corrector: bool,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """One predictor step to t (order ``order``), then, if asked, the corrector with the model at t."""
        ns, dims = self.ns, x.dim()
        t_prev_0, model_prev_0 = t_prev_list[-1], model_prev_list[-1]
        lambda_prev_0, lambda_t = ns.marginal_lambda(t_prev_0), ns.marginal_lambda(t)
        sigma_prev_0, sigma_t = ns.marginal_std(t_prev_0), ns.marginal_std(t)
        alpha_t = torch.exp(ns.marginal_log_mean_coeff(t))
        h = lambda_t - lambda_prev_0

        rks, d1s = [], []
        for i in range(1, order):
            lambda_prev_i = ns.marginal_lambda(t_prev_list[-(i + 1)])
            rk = ((lambda_prev_i - lambda_prev_0) / h)[0]
            rks.append(rk)
            d1s.append((model_prev_list[-(i + 1)] - model_prev_0) / rk)
        rks.append(1.0)
        rks_t = torch.tensor(rks, device=x.device)

        hh = -h[0]  # data prediction integrates in -lambda
        h_phi_1 = torch.expm1(hh)  # h * phi_1(h) = e^h - 1
        h_phi_k = h_phi_1 / hh - 1
        factorial_i = 1
        b_h = hh if self.variant == "bh1" else torch.expm1(hh)
        rows, b = [], []
        for i in range(1, order + 1):
            rows.append(torch.pow(rks_t, i - 1))
            b.append(h_phi_k * factorial_i / b_h)
            factorial_i *= i + 1
            h_phi_k = h_phi_k / hh - 1 / factorial_i
        r_matrix = torch.stack(rows)
        b_t = torch.tensor(b, device=x.device)

        d1s_t = torch.stack(d1s, dim=1) if d1s else None  # (B, K, C, H, W)
        x_t_ = _expand(sigma_t / sigma_prev_0, dims) * x - _expand(alpha_t * h_phi_1, dims) * model_prev_0
        if d1s_t is not None:
            # Second order uses the paper's simplified rho = 1/2.
            rhos_p = torch.tensor([0.5], device=x.device) if order == 2 else torch.linalg.solve(r_matrix[:-1, :-1], b_t[:-1])
            pred_res = torch.einsum("k,bkchw->bchw", rhos_p, d1s_t)
        else:
            pred_res = 0
        x_t = x_t_ - _expand(alpha_t * b_h, dims) * pred_res

        if not use_corrector:
            return x_t, None
        rhos_c = torch.tensor([0.5], device=x.device) if order == 1 else torch.linalg.solve(r_matrix, b_t)
        model_t = self.data_prediction(x_t, t)
        corr_res = torch.einsum("k,bkchw->bchw", rhos_c[:-1], d1s_t) if d1s_t is not None else 0
        d1_t = model_t - model_prev_0
        x_t = x_t_ - _expand(alpha_t * b_h, dims) * (corr_res + rhos_c[-1] * d1_t)
        return x_t, model_t


@torch.no_grad()
def sample_unipc(
    model: Denoiser,
    x: torch.Tensor,
    timesteps: torch.Tensor,
    *,
    alphas_cumprod: torch.Tensor,
    callback: StepCallback,
    noise: NoiseSource,
    order: int = 3,
    lower_order_final: bool = True,
    variant: str = "bh1",
) -> torch.Tensor:
    """``model(x, t)`` returns eps at fractional timestep t; ``x`` starts as unscaled noise.

    Only the length of ``timesteps`` matters: UniPC spaces its own continuous times (the
    reference ``sample(..., method="multistep", skip_type="time_uniform")``).
    """
    steps = len(timesteps)
    if steps < order:
        # The reference code asserts this; A1111 fails the same way below 3 steps.
        raise InvalidRequest(f"UniPC needs at least {order} sampling steps", field="steps")
    ns = NoiseScheduleVP(alphas_cumprod)
    solver = UniPC(model, ns, variant)
    t_0, t_T = 1.0 / ns.total_N, ns.T
    times = torch.linspace(t_T, t_0, steps + 1)  # skip_type "time_uniform"
    batch = x.shape[0]

    vec_t = times[0].expand(batch)
    model_prev_list = [solver.data_prediction(x, vec_t)]
    t_prev_list = [vec_t]
    for step in range(1, steps + 1):
        vec_t = times[step].expand(batch)
        if step < order:  # warm-up: the first steps at increasing order, as history builds up
            step_order = step
        else:
            step_order = min(order, steps + 1 - step) if lower_order_final else order
        # No corrector on the last step: its model evaluation would never be used.
        x, model_x = solver.multistep_bh_update(x, model_prev_list, t_prev_list, vec_t, step_order, use_corrector=step < steps)
        callback(step - 1, model_x if model_x is not None else x)
        if step < order:
            model_prev_list.append(model_x)
            t_prev_list.append(vec_t)
        else:
            # Slide the window of the last ``order`` model values and times.
            model_prev_list, t_prev_list = model_prev_list[1:], t_prev_list[1:]
            t_prev_list.append(vec_t)
            if step < steps:
                model_prev_list.append(model_x)
    return x
