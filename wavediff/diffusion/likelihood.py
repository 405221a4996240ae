"""The variational bound (negative ELBO) of a DDPM, in nats per example or bits per dimension.

    −log p(x_0) ≤ L = KL(q(x_T|x_0) ‖ N(0, I))                      (prior term)
                    + Σ_{t>0} KL(q(x_{t−1}|x_t, x_0) ‖ p(x_{t−1}|x_t))   (denoising terms)
                    − log p(x_0 | x_1)                                (discretised decoder)

With the 0-based step indices of :mod:`.schedule`, "x_1" is index 0 and the KL terms run over
indices 1 … T−1. The decoder is the DDPM discretised Gaussian for data on a ``bits``-bit grid in
[−1, 1): audio stored as 16-bit PCM has bins of width 2/2¹⁶ centred on k/2¹⁵, the edge bins
extended to ±∞. A data-dependent prior (x = μ + s·y, see :mod:`.prior`) is handled by passing
``prior``: the KL terms are invariant under the affine map and the decoder is evaluated in x-space.
"""
from __future__ import annotations

import math
from typing import Callable

import torch

from .gaussian import expand, p_mean_variance, q_posterior, q_sample
from .schedule import NoiseSchedule

__all__ = [
    "normal_kl",
    "discretized_gaussian_log_likelihood",
    "vlb_term",
    "prior_kl",
    "variational_bound",
]


def normal_kl(mean1, logvar1, mean2, logvar2) -> torch.Tensor:
    """Elementwise KL(N(mean1, e^logvar1) ‖ N(mean2, e^logvar2)) in nats."""
    return 0.5 * (logvar2 - logvar1 + torch.exp(logvar1 - logvar2) + (mean1 - mean2) ** 2 * torch.exp(-logvar2) - 1.0)


def _log_ndtr_diff(upper: torch.Tensor, lower: torch.Tensor) -> torch.Tensor:
    """log(Φ(upper) − Φ(lower)) for upper > lower, stable in both tails (float64)."""
    # Work in the tail where the CDFs are small: reflect when both arguments are positive.
    flip = lower > 0
    u = torch.where(flip, -lower, upper)
    l = torch.where(flip, -upper, lower)
    lu, ll = torch.special.log_ndtr(u), torch.special.log_ndtr(l)
    return lu + torch.log((-torch.expm1((ll - lu).clamp(max=0.0))).clamp(min=1e-300))


def discretized_gaussian_log_likelihood(
    x: torch.Tensor, mean: torch.Tensor, log_scale: torch.Tensor, bits: int = 16
) -> torch.Tensor:
    """log P(bin containing x) under N(mean, e^{2·log_scale}), elementwise, in nats (float64).

    ``x`` must lie on the ``bits``-bit grid k / 2^(bits−1), k ∈ [−2^(bits−1), 2^(bits−1) − 1]."""
    x, mean, log_scale = (a.double() for a in torch.broadcast_tensors(x, mean, log_scale))
    half = 1.0 / 2 ** bits  # half a bin: bins are 2/2^bits wide
    inv_std = torch.exp(-log_scale)
    upper = (x - mean + half) * inv_std
    lower = (x - mean - half) * inv_std
    lowest = x <= -1.0 + half
    highest = x >= 1.0 - 3 * half
    log_mass = _log_ndtr_diff(upper, lower)
    log_cdf_upper = torch.special.log_ndtr(upper)
    log_sf_lower = torch.special.log_ndtr(-lower)
    return torch.where(lowest, log_cdf_upper, torch.where(highest, log_sf_lower, log_mass))


def _reduce(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Sum over all non-batch dims (masked) -> [B]."""
    if mask is not None:
        x = x * mask
    return x.flatten(1).sum(1)


def vlb_term(
    schedule: NoiseSchedule,
    x0: torch.Tensor,
    xt: torch.Tensor,
    t: torch.Tensor,
    eps: torch.Tensor,
    variance: str = "fixed_small",
    v: torch.Tensor | None = None,
    bits: int | None = 16,
    prior: "object | None" = None,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """L_t in nats per example [B] for integer steps t [B] (decoder NLL where t == 0, KL elsewhere).

    ``bits=None`` uses a continuous Gaussian decoder (a density, for data not on a grid).

    ``x0``/``xt``/``eps`` live in the standardised space of ``prior`` when one is given."""
    mean_q, _, logvar_q = q_posterior(schedule, x0, xt, t)
    mean_p, logvar_p, _ = p_mean_variance(schedule, xt, t, eps, variance, v)
    kl = normal_kl(mean_q.double(), logvar_q.double(), mean_p.double(), logvar_p.double())
    if prior is not None:
        x_data = prior.from_standard(x0).double()
        mean_x = prior.from_standard(mean_p).double()
        log_scale = 0.5 * logvar_p.double() + torch.log(prior.std_like(x0).double())
    else:
        x_data, mean_x, log_scale = x0.double(), mean_p.double(), 0.5 * logvar_p.double()
    if bits is None:  # continuous data (e.g. log-mel values): Gaussian density of the decoder
        decoder_nll = 0.5 * math.log(2 * math.pi) + log_scale + 0.5 * ((x_data - mean_x) * torch.exp(-log_scale)) ** 2
    else:
        decoder_nll = -discretized_gaussian_log_likelihood(x_data, mean_x, log_scale, bits)
    first = expand((torch.as_tensor(t) == 0).double(), kl)
    return _reduce(first * decoder_nll + (1 - first) * kl, mask)


def prior_kl(schedule: NoiseSchedule, x0: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """KL(q(x_T | x_0) ‖ N(0, I)) in nats per example [B]."""
    ab = schedule.alpha_bars[-1].item()
    mean = math.sqrt(ab) * x0.double()
    logvar = torch.full_like(mean, math.log(1 - ab))
    return _reduce(normal_kl(mean, logvar, torch.zeros_like(mean), torch.zeros_like(mean)), mask)


@torch.no_grad()
def variational_bound(
    model: Callable,
    x0: torch.Tensor,
    schedule: NoiseSchedule,
    variance: str = "fixed_small",
    bits: int | None = 16,
    prior=None,
    mask: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> dict:
    """The full bound over all T steps for a batch of data ``x0`` [B, ...] in [−1, 1).

    ``bits=None``: continuous data (a Gaussian decoder density; bits per dimension may then be
    negative, as for any density).
    ``model(x_t, t)`` returns ε̂ or (ε̂, v) (see :mod:`.samplers`); with ``prior`` it is called on the
    standardised variable. Returns a dict with ``bpd`` (bits per dimension, [B]), ``nats`` ([B]),
    ``prior_bpd`` and ``terms_bpd`` ([T, B], per step)."""
    if prior is not None:
        y0 = prior.to_standard(x0)
    else:
        y0 = x0
    num_dims = (mask.flatten(1).sum(1) if mask is not None else torch.full((x0.shape[0],), x0[0].numel())).double()
    num_dims = num_dims.to(x0.device)
    terms = []
    for step in range(schedule.num_steps):
        t = torch.full((x0.shape[0],), step, device=x0.device, dtype=torch.long)
        noise = torch.randn(y0.shape, generator=generator, device=y0.device, dtype=y0.dtype)
        yt = q_sample(schedule, y0, t, noise)
        eps, v = _split(model(yt, t.float()))
        terms.append(vlb_term(schedule, y0, yt, t, eps, variance, v, bits, prior, mask))
    terms = torch.stack(terms)
    pk = prior_kl(schedule, y0, mask)
    total = terms.sum(0) + pk
    scale = 1.0 / (num_dims * math.log(2))
    return {"bpd": total * scale, "nats": total, "prior_bpd": pk * scale, "terms_bpd": terms * scale}


def _split(out):
    if isinstance(out, (tuple, list)):
        return out[0], out[1]
    return out, None

