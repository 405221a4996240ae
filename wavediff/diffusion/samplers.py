"""Samplers: plain functions over one denoiser interface (k-diffusion style).

Every sampler has the signature ``sample_x(model, x, schedule, *, <options>, generator=None,
callback=None) -> x_0`` where

* ``model(x_t, t) -> ε̂`` or ``(ε̂, v)`` takes a batch ``x_t`` [B, ...] and fractional step indices
  ``t`` [B] (float32; see :mod:`.schedule`) — conditioning is bound into the closure;
* ``x`` is the starting noise x_T ~ N(0, I) (standardised space when a prior is used);
* ``callback(i, num_steps, x)`` is called after every step (progress bars, plots).

Samplers: ``ddpm`` (full ancestral chain, any variance choice), ``fast`` (DiffWave's short user
schedule aligned to fractional training steps), ``ddim`` (η ≥ 0), ``dpmpp_2m`` (DPM-Solver++(2M)
on the probability-flow ODE, data prediction, log-SNR steps) and ``heun`` (Heun's 2nd-order method
on the same ODE in σ = √((1−ᾱ)/ᾱ) time, as in Karras et al.).
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import torch

from .gaussian import VARIANCES, p_mean_variance
from .schedule import DIFFWAVE_FAST_BETAS, NoiseSchedule

__all__ = [
    "SAMPLERS",
    "sample",
    "sample_ddpm",
    "sample_fast",
    "fast_reverse",
    "sample_ddim",
    "sample_dpmpp_2m",
    "sample_heun",
    "timesteps",
    "fast_schedule_coefficients",
]


def _eval(model, x: torch.Tensor, t: float):
    """Call the model at one (fractional) step for the whole batch; returns (ε̂, v)."""
    tt = torch.full((x.shape[0],), float(t), device=x.device, dtype=torch.float32)
    out = model(x, tt)
    if isinstance(out, (tuple, list)):
        return out[0], out[1]
    return out, None


def _noise(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    return torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)


def _check_input(x: torch.Tensor) -> None:
    if not isinstance(x, torch.Tensor) or x.dim() < 1 or x.numel() == 0:
        raise ValueError("sampler input x must be a non-empty tensor shaped [batch, ...]")
    if not torch.isfinite(x).all():
        raise ValueError("sampler input x contains NaN or Inf")


def timesteps(schedule: NoiseSchedule, steps: int, spacing: str = "logsnr", start: int | None = None) -> torch.Tensor:
    """``steps`` distinct integer step indices from ``start`` (default T−1) down to 0 (float64, descending).

    A later ``start`` suits a prior that already matches the marginal there: with Grad-TTS's
    N(μ, I), y_t = √ᾱ·(x₀ − μ) + √(1−ᾱ)·ε is N(0, I) to within ᾱ·Var(x₀ − μ), and the first
    ε-prediction's x̂₀ = (y − √(1−ᾱ)ε̂)/√ᾱ no longer divides the network's error by √ᾱ_T ≈ 0.007.

    spacing: ``linear`` (uniform in t), ``quadratic`` (dense near 0, as DDIM's), ``logsnr``
    (uniform in log-SNR λ, DPM-Solver's choice). The ideal points are rounded to the nearest
    training step (moved up where two would coincide), as diffusers' schedulers do: a network
    trained at integer steps has never seen the steps in between, and with DiffWave's sinusoidal
    step table (frequencies up to 10⁴ rad per step) an interpolated row between two steps is
    unlike any it was trained on. With 1,000 training steps, fractional steps made DPM-Solver++
    and DDIM return noise from a trained mel model that gives good mels at the rounded steps.
    Pass fractional steps to a sampler's ``ts`` to use them anyway."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    last = schedule.num_steps - 1
    if start is not None:
        if isinstance(start, bool) or int(start) != start or not 0 <= start <= last:
            raise ValueError(f"start must be a step in [0, {last}], got {start!r}")
        last = int(start)
    if steps > last + 1:
        raise ValueError(f"steps must be at most the {last + 1} training steps from {last} down to 0, got {steps}")
    if steps == 1:
        return torch.tensor([float(last)], dtype=torch.float64)
    u = torch.linspace(1.0, 0.0, steps, dtype=torch.float64)
    if spacing == "linear":
        t = u * last
    elif spacing == "quadratic":
        t = u**2 * last
    elif spacing == "logsnr":
        lam_max = schedule.log_snr(torch.tensor(0.0, dtype=torch.float64))
        lam_min = schedule.log_snr(torch.tensor(float(last), dtype=torch.float64))
        lam = lam_min + (1 - u) * (lam_max - lam_min)
        ab = torch.sigmoid(lam)  # ᾱ = snr / (1 + snr)
        t = schedule.t_from_alpha_bar(ab.clamp(schedule.alpha_bars[-1], schedule.alpha_bars[0]))
    else:
        raise ValueError(f"unknown spacing {spacing!r}; expected 'linear', 'quadratic' or 'logsnr'")
    t = t.round()
    t[0], t[-1] = last, 0.0
    for k in range(steps - 2, -1, -1):  # distinct: each at least one step above the next
        t[k] = max(t[k].item(), t[k + 1].item() + 1)
    for k in range(1, steps):  # ... and below the previous (only bites when steps ≈ T)
        t[k] = min(t[k].item(), t[k - 1].item() - 1)
    return t


# --------------------------------------------------------------------------- ancestral DDPM
@torch.no_grad()
def sample_ddpm(
    model: Callable,
    x: torch.Tensor,
    schedule: NoiseSchedule,
    *,
    variance: str = "fixed_small",
    clip: float | None = None,
    generator: torch.Generator | None = None,
    callback: Callable | None = None,
) -> torch.Tensor:
    """The full reverse Markov chain over all T training steps (T network calls)."""
    _check_input(x)
    if variance not in VARIANCES:
        raise ValueError(f"unknown variance {variance!r}; expected one of {VARIANCES}")
    n = schedule.num_steps
    for i, step in enumerate(range(n - 1, -1, -1)):
        eps, v = _eval(model, x, step)
        t = torch.full((x.shape[0],), step, dtype=torch.long)
        mean, log_var, _ = p_mean_variance(schedule, x, t, eps, variance, v, clip)
        x = mean + (torch.exp(0.5 * log_var) * _noise(x, generator) if step > 0 else 0)
        if callback is not None:
            callback(i, n, x)
    return x


# --------------------------------------------------------------------- DiffWave fast schedule
def fast_schedule_coefficients(schedule: NoiseSchedule, betas: Sequence[float] = DIFFWAVE_FAST_BETAS):
    """Fractional steps and per-step (c1, c2, σ) of DiffWave's fast sampler (float64 lists).

    x ← c1 (x − c2 ε̂(x, t_n)) + σ_n z with c1 = 1/√α'_n, c2 = β'_n/√(1−ᾱ'_n), and σ_n² the user
    schedule's posterior variance β̃'_n (0 at the last step)."""
    b = torch.as_tensor(list(betas), dtype=torch.float64)
    t = schedule.align_betas(b)
    a = 1 - b
    ab = torch.cumprod(a, 0)
    ab_prev = torch.cat([ab.new_ones(1), ab[:-1]])
    c1 = 1 / a.sqrt()
    c2 = b / (1 - ab).sqrt()
    sigma = ((1 - ab_prev) / (1 - ab) * b).sqrt()
    sigma[0] = 0.0
    return t, c1, c2, sigma


def sample_fast(model: Callable, x: torch.Tensor, schedule: NoiseSchedule, **options) -> torch.Tensor:
    """DiffWave's fast sampling (paper appendix B): a short user β schedule whose noise levels are
    aligned to fractional training steps (len(betas) network calls).

    :func:`fast_reverse` without gradients; the same options (``betas``, ``clip``, ``generator``,
    ``callback``). ``clip=1.0`` clamps x to [−1, 1] after every step, as lmnt-com/diffwave's
    ``predict`` does."""
    with torch.no_grad():
        return fast_reverse(model, x, schedule, **options)


def fast_reverse(
    model: Callable,
    x: torch.Tensor,
    schedule: NoiseSchedule,
    *,
    betas: Sequence[float] = DIFFWAVE_FAST_BETAS,
    clip: float | None = None,
    generator: torch.Generator | None = None,
    callback: Callable | None = None,
) -> torch.Tensor:
    """The steps of :func:`sample_fast`, differentiable: with gradients enabled, autograd follows the
    whole unrolled chain back into the model's parameters (InferGrad's inference loss trains through
    it; see :class:`wavediff.pipelines.vocoder.VocoderLoss`)."""
    _check_input(x)
    t, c1, c2, sigma = fast_schedule_coefficients(schedule, betas)
    n = len(t)
    for i, k in enumerate(range(n - 1, -1, -1)):
        eps, _ = _eval(model, x, t[k].item())
        x = c1[k].item() * (x - c2[k].item() * eps)
        if k > 0:
            x = x + sigma[k].item() * _noise(x, generator)
        if clip is not None:
            x = x.clamp(-clip, clip)
        if callback is not None:
            callback(i, n, x)
    return x


# ----------------------------------------------------------------------------------- DDIM
@torch.no_grad()
def sample_ddim(
    model: Callable,
    x: torch.Tensor,
    schedule: NoiseSchedule,
    *,
    steps: int = 10,
    eta: float = 0.0,
    spacing: str = "quadratic",
    start: int | None = None,
    ts: Sequence[float] | None = None,
    clip: float | None = None,
    generator: torch.Generator | None = None,
    callback: Callable | None = None,
) -> torch.Tensor:
    """DDIM (Song et al., 2021): η = 0 is deterministic, η = 1 matches DDPM's posterior variance.

    Runs over ``ts`` (descending fractional steps; default ``timesteps(schedule, steps, spacing)``)
    and finishes with x̂_0 at the last one."""
    _check_input(x)
    if eta < 0:
        raise ValueError("eta must be >= 0")
    ts = timesteps(schedule, steps, spacing, start) if ts is None else torch.as_tensor(list(ts), dtype=torch.float64)
    ab = schedule.alpha_bar(ts).tolist()
    n = len(ab)
    for i in range(n):
        eps, _ = _eval(model, x, ts[i].item())
        a_t = ab[i]
        x0 = (x - math.sqrt(1 - a_t) * eps) / math.sqrt(a_t)
        if clip is not None:
            x0 = x0.clamp(-clip, clip)
            eps = (x - math.sqrt(a_t) * x0) / math.sqrt(1 - a_t)
        if i == n - 1:
            x = x0
        else:
            a_prev = ab[i + 1]
            s = eta * math.sqrt((1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev))
            x = math.sqrt(a_prev) * x0 + math.sqrt(max(1 - a_prev - s * s, 0.0)) * eps
            if s > 0:
                x = x + s * _noise(x, generator)
        if callback is not None:
            callback(i, n, x)
    return x


# -------------------------------------------------------------- probability-flow ODE solvers
def _denoise(model, x, t: float, ab: float, clip: float | None):
    eps, _ = _eval(model, x, t)
    x0 = (x - math.sqrt(1 - ab) * eps) / math.sqrt(ab)
    return x0.clamp(-clip, clip) if clip is not None else x0


@torch.no_grad()
def sample_dpmpp_2m(
    model: Callable,
    x: torch.Tensor,
    schedule: NoiseSchedule,
    *,
    steps: int = 10,
    spacing: str = "logsnr",
    start: int | None = None,
    ts: Sequence[float] | None = None,
    clip: float | None = None,
    generator: torch.Generator | None = None,
    callback: Callable | None = None,
) -> torch.Tensor:
    """DPM-Solver++(2M) (Lu et al., 2022) on the VP probability-flow ODE, ``steps`` network calls.

    With α = √ᾱ, σ = √(1−ᾱ), λ = log(α/σ) and data prediction D = x̂_0, one step from s to t is
    x_t = (σ_t/σ_s) x_s − α_t (e^{−h} − 1) D̃,  h = λ_t − λ_s, where D̃ = D_s on the first step and
    (1 + 1/2r) D_s − (1/2r) D_{prev} afterwards (r = h_prev/h). The last call returns D at t = 0."""
    del generator  # deterministic
    _check_input(x)
    ts = timesteps(schedule, steps, spacing, start) if ts is None else torch.as_tensor(list(ts), dtype=torch.float64)
    ab = schedule.alpha_bar(ts).tolist()
    n = len(ab)
    d_prev, h_prev = None, None
    for i in range(n):
        d = _denoise(model, x, ts[i].item(), ab[i], clip)
        if i == n - 1:
            x = d
        else:
            a_s, a_t = math.sqrt(ab[i]), math.sqrt(ab[i + 1])
            s_s, s_t = math.sqrt(1 - ab[i]), math.sqrt(1 - ab[i + 1])
            h = math.log(a_t / s_t) - math.log(a_s / s_s)
            if d_prev is None:
                d_eff = d
            else:
                r = h_prev / h
                d_eff = (1 + 1 / (2 * r)) * d - (1 / (2 * r)) * d_prev
            x = (s_t / s_s) * x - a_t * math.expm1(-h) * d_eff
            d_prev, h_prev = d, h
        if callback is not None:
            callback(i, n, x)
    return x


@torch.no_grad()
def sample_heun(
    model: Callable,
    x: torch.Tensor,
    schedule: NoiseSchedule,
    *,
    steps: int = 6,
    spacing: str = "logsnr",
    start: int | None = None,
    ts: Sequence[float] | None = None,
    clip: float | None = None,
    generator: torch.Generator | None = None,
    callback: Callable | None = None,
) -> torch.Tensor:
    """Heun's method (Karras et al., 2022) on dx̃/dσ̃ = (x̃ − D)/σ̃ with x̃ = x/α, σ̃ = σ/α.

    ``steps`` noise levels from T−1 to 0, 2·steps − 1 network calls; returns D at t = 0."""
    del generator
    _check_input(x)
    ts = timesteps(schedule, steps, spacing, start) if ts is None else torch.as_tensor(list(ts), dtype=torch.float64)
    ab = schedule.alpha_bar(ts).tolist()
    n = len(ab)
    sig = [math.sqrt((1 - a) / a) for a in ab]
    xv = x / math.sqrt(ab[0])  # VE variable x̃
    for i in range(n):
        d_i = _denoise(model, xv * math.sqrt(ab[i]), ts[i].item(), ab[i], clip)
        if i == n - 1:
            xv = d_i
        else:
            slope = (xv - d_i) / sig[i]
            x_euler = xv + (sig[i + 1] - sig[i]) * slope
            d_next = _denoise(model, x_euler * math.sqrt(ab[i + 1]), ts[i + 1].item(), ab[i + 1], clip)
            slope_next = (x_euler - d_next) / sig[i + 1]
            xv = xv + (sig[i + 1] - sig[i]) * 0.5 * (slope + slope_next)
        if callback is not None:
            callback(i, n, xv)
    return xv


SAMPLERS: dict[str, Callable] = {
    "ddpm": sample_ddpm,
    "fast": sample_fast,
    "ddim": sample_ddim,
    "dpmpp_2m": sample_dpmpp_2m,
    "heun": sample_heun,
}


def sample(name: str, model: Callable, x: torch.Tensor, schedule: NoiseSchedule, **options) -> torch.Tensor:
    """Run the sampler called ``name`` (one of :data:`SAMPLERS`)."""
    try:
        fn = SAMPLERS[name]
    except KeyError:
        raise ValueError(f"unknown sampler {name!r}; expected one of {sorted(SAMPLERS)}") from None
    return fn(model, x, schedule, **options)
