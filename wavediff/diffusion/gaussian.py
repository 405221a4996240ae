"""Forward process, posterior and reverse-step Gaussians of a DDPM (model-agnostic).

Every function works on tensors of any shape ``[B, ...]`` with a per-example step ``t`` of shape
``[B]`` (int or fractional, see :mod:`wavediff.diffusion.schedule`). Coefficients are computed in
float64 and cast to the data's dtype.
"""
from __future__ import annotations

import torch

from .schedule import NoiseSchedule

__all__ = [
    "VARIANCES",
    "expand",
    "q_sample",
    "q_posterior",
    "predict_x0",
    "predict_eps",
    "reverse_log_variance",
    "p_mean_variance",
]

#: Reverse-process variance choices: posterior β̃ ("fixed_small"), β ("fixed_large"),
#: or the Improved-DDPM interpolation Σ = exp(v' log β + (1 − v') log β̃), v' = (v + 1)/2 ("learned").
VARIANCES = ("fixed_small", "fixed_large", "learned")


def expand(coef: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """[B] coefficients -> [B, 1, …, 1] in ``like``'s dtype and device."""
    coef = coef.to(device=like.device, dtype=like.dtype)
    return coef.reshape(coef.shape + (1,) * (like.dim() - coef.dim()))


def _t_vector(t, x: torch.Tensor) -> torch.Tensor:
    t = torch.as_tensor(t, device=x.device)
    if t.dim() == 0:
        t = t.expand(x.shape[0])
    if t.shape != (x.shape[0],):
        raise ValueError(f"step t must be a scalar or shaped [batch={x.shape[0]}], got {tuple(t.shape)}")
    return t


def _int_t(t, x: torch.Tensor) -> torch.Tensor:
    t = _t_vector(t, x)
    if t.is_floating_point():
        if not torch.equal(t, t.round()):
            raise ValueError("this operation needs integer steps")
        t = t.long()
    return t


def q_sample(schedule: NoiseSchedule, x0: torch.Tensor, t, noise: torch.Tensor) -> torch.Tensor:
    """x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε — the closed-form forward process q(x_t | x_0)."""
    t = _t_vector(t, x0)
    ab = schedule.alpha_bar(t.double())
    return expand(ab.sqrt(), x0) * x0 + expand((1 - ab).sqrt(), x0) * noise


def q_posterior(schedule: NoiseSchedule, x0: torch.Tensor, xt: torch.Tensor, t):
    """Mean, variance and clipped log-variance of q(x_{t−1} | x_t, x_0) (integer t)."""
    t = _int_t(t, xt).cpu()
    mean = expand(schedule.posterior_coef_x0[t], xt) * x0 + expand(schedule.posterior_coef_xt[t], xt) * xt
    var = expand(schedule.posterior_variance[t], xt)
    log_var = expand(schedule.posterior_log_variance_clipped[t], xt)
    return mean, var, log_var


def predict_x0(schedule: NoiseSchedule, xt: torch.Tensor, t, eps: torch.Tensor) -> torch.Tensor:
    """x̂_0 = (x_t − √(1 − ᾱ_t) ε̂) / √ᾱ_t."""
    t = _t_vector(t, xt).double()
    ab = schedule.alpha_bar(t)
    return (xt - expand((1 - ab).sqrt(), xt) * eps) / expand(ab.sqrt(), xt)


def predict_eps(schedule: NoiseSchedule, xt: torch.Tensor, t, x0: torch.Tensor) -> torch.Tensor:
    """ε̂ = (x_t − √ᾱ_t x̂_0) / √(1 − ᾱ_t)."""
    t = _t_vector(t, xt).double()
    ab = schedule.alpha_bar(t)
    return (xt - expand(ab.sqrt(), xt) * x0) / expand((1 - ab).sqrt(), xt)


def reverse_log_variance(
    schedule: NoiseSchedule, t, like: torch.Tensor, variance: str = "fixed_small", v: torch.Tensor | None = None
) -> torch.Tensor:
    """log Σ_t of p(x_{t−1} | x_t) for an integer step t, broadcastable to ``like``."""
    t = _int_t(t, like).cpu()
    if variance == "fixed_small":
        return expand(schedule.posterior_log_variance_clipped[t], like)
    if variance == "fixed_large":
        # Improved DDPM: β_t, but β̃_1 at the first step so the decoder is not over-dispersed.
        log_beta = torch.log(schedule.betas)
        log_beta = torch.cat([schedule.posterior_log_variance_clipped[:1], log_beta[1:]])
        return expand(log_beta[t], like)
    if variance == "learned":
        if v is None:
            raise ValueError("variance='learned' needs the model's v output")
        frac = (v + 1) / 2
        max_log = expand(torch.log(schedule.betas)[t], v)
        min_log = expand(schedule.posterior_log_variance_clipped[t], v)
        return frac * max_log + (1 - frac) * min_log
    raise ValueError(f"unknown variance {variance!r}; expected one of {VARIANCES}")


def p_mean_variance(
    schedule: NoiseSchedule,
    xt: torch.Tensor,
    t,
    eps: torch.Tensor,
    variance: str = "fixed_small",
    v: torch.Tensor | None = None,
    clip: float | None = None,
):
    """Mean, log-variance and x̂_0 of the reverse step p(x_{t−1} | x_t) for ε-prediction.

    The mean is the posterior mean at x̂_0, i.e. (x_t − β_t/√(1−ᾱ_t) ε̂)/√α_t when not clipping."""
    x0 = predict_x0(schedule, xt, t, eps)
    if clip is not None:
        x0 = x0.clamp(-clip, clip)
    mean, _, _ = q_posterior(schedule, x0, xt, t)
    log_var = reverse_log_variance(schedule, t, xt, variance, v)
    return mean, log_var, x0
