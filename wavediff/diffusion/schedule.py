"""β schedules and the noise-level bookkeeping of a discrete-time DDPM.

Step convention (DiffWave's): the network sees a step *index* ``n ∈ {0, …, T−1}``; index ``n``
labels DDPM's ``x_{n+1}`` (1-based in Ho et al.), whose noise level is

    ᾱ_n = ∏_{i ≤ n} (1 − β_i),     x_n = √ᾱ_n · x_0 + √(1 − ᾱ_n) · ε.

Clean data sits "before" index 0. Fractional indices are the continuous-time view: between two
integer steps √ᾱ is interpolated linearly, exactly as DiffWave's fast-schedule alignment does, so
``t_from_alpha_bar`` and ``alpha_bar`` are inverse functions on [0, T−1].
All tables are float64; values handed back follow the dtype/device of the query.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import torch

__all__ = [
    "linear_betas",
    "cosine_betas",
    "make_betas",
    "ScheduleConfig",
    "NoiseSchedule",
    "DIFFWAVE_FAST_BETAS",
]

#: DiffWave's default 6-step inference schedule (paper appendix; lmnt-com/diffwave params.py).
DIFFWAVE_FAST_BETAS = (1e-4, 1e-3, 1e-2, 0.05, 0.2, 0.5)


def linear_betas(num_steps: int, beta_start: float = 1e-4, beta_end: float = 0.05) -> torch.Tensor:
    """β_n evenly spaced from ``beta_start`` to ``beta_end`` (DiffWave: 1e-4 … 0.05 over 50)."""
    if num_steps < 1:
        raise ValueError(f"num_steps must be >= 1, got {num_steps}")
    return torch.linspace(beta_start, beta_end, num_steps, dtype=torch.float64)


def cosine_betas(num_steps: int, s: float = 0.008, max_beta: float = 0.999) -> torch.Tensor:
    """Improved-DDPM cosine schedule: ᾱ(u) = cos²((u + s)/(1 + s) · π/2), β clipped at max_beta."""
    if num_steps < 1:
        raise ValueError(f"num_steps must be >= 1, got {num_steps}")
    u = torch.arange(num_steps + 1, dtype=torch.float64) / num_steps
    f = torch.cos((u + s) / (1 + s) * math.pi / 2) ** 2
    betas = 1 - f[1:] / f[:-1]
    return betas.clamp(max=max_beta)


def make_betas(kind: str, num_steps: int | None = None, **kwargs) -> torch.Tensor:
    """Build βs by name: ``linear`` / ``cosine`` (with ``num_steps``) or ``custom`` (``betas=[...]``)."""
    if kind == "linear":
        return linear_betas(_need_steps(num_steps), **kwargs)
    if kind == "cosine":
        return cosine_betas(_need_steps(num_steps), **kwargs)
    if kind == "custom":
        betas = kwargs.get("betas")
        if betas is None:
            raise ValueError("a 'custom' schedule needs betas=[...]")
        return torch.as_tensor(list(betas), dtype=torch.float64)
    raise ValueError(f"unknown beta schedule {kind!r}; expected 'linear', 'cosine' or 'custom'")


def _need_steps(num_steps: int | None) -> int:
    if num_steps is None:
        raise ValueError("this schedule needs num_steps")
    return int(num_steps)


@dataclass
class ScheduleConfig:
    """Serialisable description of a training β schedule (stored in every checkpoint)."""

    kind: str = "linear"
    num_steps: int = 50
    beta_start: float = 1e-4
    beta_end: float = 0.05
    cosine_s: float = 0.008
    betas: list[float] = field(default_factory=list)  # only for kind == "custom"

    def build(self) -> "NoiseSchedule":
        if self.kind == "linear":
            b = linear_betas(self.num_steps, self.beta_start, self.beta_end)
        elif self.kind == "cosine":
            b = cosine_betas(self.num_steps, self.cosine_s)
        else:
            b = make_betas(self.kind, betas=self.betas)
        return NoiseSchedule(b)

    def to_dict(self) -> dict:
        d = {"kind": self.kind, "num_steps": self.num_steps}
        if self.kind == "linear":
            d.update(beta_start=self.beta_start, beta_end=self.beta_end)
        elif self.kind == "cosine":
            d.update(cosine_s=self.cosine_s)
        else:
            d.update(betas=list(self.betas), num_steps=len(self.betas))
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ScheduleConfig":
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown schedule keys {sorted(unknown)}")
        cfg = cls(**d)
        if cfg.kind == "custom":
            cfg.num_steps = len(cfg.betas)
        cfg.build()  # validates
        return cfg


class NoiseSchedule:
    """Discrete DDPM schedule with a continuous (fractional-step) view.

    Args:
        betas: the T training βs, each in (0, 1).
    """

    def __init__(self, betas: Sequence[float] | torch.Tensor):
        b = torch.as_tensor(betas, dtype=torch.float64).flatten().clone()
        if b.numel() == 0:
            raise ValueError("a noise schedule needs at least one beta")
        if not torch.isfinite(b).all() or (b <= 0).any() or (b >= 1).any():
            raise ValueError("every beta must lie strictly between 0 and 1")
        self.betas = b
        self.alphas = 1.0 - b
        self.alpha_bars = torch.cumprod(self.alphas, 0)
        if (self.alpha_bars[1:] >= self.alpha_bars[:-1]).any():
            raise ValueError("alpha_bar must decrease strictly")
        self.alpha_bars_prev = torch.cat([b.new_ones(1), self.alpha_bars[:-1]])
        # q(x_{n-1} | x_n, x_0): variance β̃ and mean coefficients (on x_0 and on x_n).
        self.posterior_variance = b * (1 - self.alpha_bars_prev) / (1 - self.alpha_bars)
        # β̃_0 is 0; Improved DDPM clips its log to β̃_1 (log of 0 is unusable in the interpolation).
        first = self.posterior_variance[1] if len(b) > 1 else b[0]
        self.posterior_log_variance_clipped = torch.log(
            torch.cat([first.reshape(1), self.posterior_variance[1:]])
        )
        self.posterior_coef_x0 = b * self.alpha_bars_prev.sqrt() / (1 - self.alpha_bars)
        self.posterior_coef_xt = (1 - self.alpha_bars_prev) * self.alphas.sqrt() / (1 - self.alpha_bars)

    # ------------------------------------------------------------------ basics
    @property
    def num_steps(self) -> int:
        return self.betas.numel()

    def __len__(self) -> int:
        return self.num_steps

    def __repr__(self) -> str:
        return f"NoiseSchedule(T={self.num_steps}, beta=[{self.betas[0]:.3g} … {self.betas[-1]:.3g}])"

    # ------------------------------------------------- continuous-time view
    def _check_t(self, t: torch.Tensor) -> torch.Tensor:
        t = torch.as_tensor(t)
        if not torch.isfinite(t).all():
            raise ValueError("diffusion step must be finite")
        if (t < 0).any() or (t > self.num_steps - 1).any():
            raise ValueError(f"diffusion step must lie in [0, {self.num_steps - 1}]")
        return t

    def sqrt_alpha_bar(self, t) -> torch.Tensor:
        """√ᾱ at (possibly fractional) step index t, linear in √ᾱ between integer steps."""
        t = self._check_t(t)
        tf = t.to(torch.float64).cpu()
        table = self.alpha_bars.sqrt()
        lo = tf.floor().long().clamp(max=self.num_steps - 1)
        hi = tf.ceil().long().clamp(max=self.num_steps - 1)
        w = tf - lo.to(torch.float64)
        out = table[lo] + (table[hi] - table[lo]) * w
        return _like(out, t)

    def alpha_bar(self, t) -> torch.Tensor:
        return self.sqrt_alpha_bar(t) ** 2

    def sigma(self, t) -> torch.Tensor:
        """Noise standard deviation σ_t = √(1 − ᾱ_t) of x_t (the score is −ε/σ_t)."""
        return (1 - self.alpha_bar(t)).sqrt()

    def snr(self, t) -> torch.Tensor:
        ab = self.alpha_bar(t)
        return ab / (1 - ab)

    def log_snr(self, t) -> torch.Tensor:
        return torch.log(self.snr(t))

    def t_from_alpha_bar(self, alpha_bar) -> torch.Tensor:
        """Inverse of :meth:`alpha_bar`: the fractional step with that noise level.

        Raises ValueError outside [ᾱ_{T−1}, ᾱ_0] (noise levels the network never saw)."""
        ab = torch.as_tensor(alpha_bar, dtype=torch.float64).cpu()
        table = self.alpha_bars
        eps = 1e-12
        if (ab > table[0] + eps).any() or (ab < table[-1] - eps).any():
            raise ValueError(
                f"noise level alpha_bar outside the trained range [{table[-1].item():.4g}, {table[0].item():.4g}]"
            )
        s = ab.clamp(table[-1], table[0]).sqrt()
        root = table.sqrt()  # decreasing
        # index of the first table entry <= s  (so root[i-1] >= s >= root[i])
        if self.num_steps == 1:
            return torch.zeros_like(s)
        i = torch.searchsorted(-root, -s.contiguous()).clamp(1, self.num_steps - 1)
        hi_val, lo_val = root[i - 1], root[i]
        frac = (hi_val - s) / (hi_val - lo_val)
        return (i - 1).to(torch.float64) + frac

    def align_betas(self, betas: Sequence[float]) -> torch.Tensor:
        """Map a short inference schedule to fractional training steps (DiffWave appendix).

        Each inference step s has ᾱ'_s = ∏_{i≤s}(1 − β'_i); its step is the t where the training
        schedule's interpolated √ᾱ equals √ᾱ'_s. DiffWave's default 6-step schedule over
        linspace(1e-4, 0.05, 50) maps to ≈ [0, 0.894, 4.087, 10.452, 22.992, 42.919]."""
        b = torch.as_tensor(list(betas), dtype=torch.float64)
        if b.numel() == 0 or (b <= 0).any() or (b >= 1).any():
            raise ValueError("inference betas must be non-empty and lie strictly between 0 and 1")
        return self.t_from_alpha_bar(torch.cumprod(1 - b, 0))

    # ------------------------------------------------------------- config
    def to_dict(self) -> dict:
        return {"kind": "custom", "betas": self.betas.tolist()}


def _like(values: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """float64 CPU values -> the float dtype/device of ``ref`` (float32 for integer refs)."""
    dtype = ref.dtype if ref.is_floating_point() else torch.float32
    if dtype == torch.float64:
        return values.to(ref.device)
    return values.to(device=ref.device, dtype=dtype)
