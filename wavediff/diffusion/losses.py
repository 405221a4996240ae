"""Training objectives: ε-prediction (denoising score matching) and the Improved-DDPM hybrid loss."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .gaussian import VARIANCES, predict_x0, q_sample
from .likelihood import vlb_term
from .prior import AffinePrior
from .schedule import NoiseSchedule, ScheduleConfig

__all__ = ["LOSSES", "eps_loss", "DiffusionConfig", "Diffusion"]

LOSSES = ("l1", "l2")


def eps_loss(eps_pred: torch.Tensor, eps: torch.Tensor, kind: str = "l2", mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean L1 or L2 distance between predicted and true noise (over unmasked elements).

    L2 is denoising score matching: ‖ε̂ − ε‖² = σ²‖s_θ − ∇log q(x_t|x_0)‖². DiffWave uses L1."""
    if kind == "l2":
        err = (eps_pred - eps) ** 2
    elif kind == "l1":
        err = (eps_pred - eps).abs()
    else:
        raise ValueError(f"unknown loss {kind!r}; expected one of {LOSSES}")
    if mask is None:
        return err.mean()
    mask = mask.expand_as(err).to(err.dtype)
    return (err * mask).sum() / mask.sum().clamp(min=1)


@dataclass
class DiffusionConfig:
    """Everything about the diffusion a checkpoint must remember (besides the network)."""

    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    variance: str = "fixed_small"  # fixed_small | fixed_large | learned
    loss: str = "l1"  # l1 | l2
    vlb_weight: float = 1e-3  # λ of the hybrid loss (used when variance == "learned")
    bits: int = 16  # data grid of the discretised decoder

    def __post_init__(self):
        if isinstance(self.schedule, dict):
            self.schedule = ScheduleConfig.from_dict(self.schedule)
        if self.variance not in VARIANCES:
            raise ValueError(f"unknown variance {self.variance!r}; expected one of {VARIANCES}")
        if self.loss not in LOSSES:
            raise ValueError(f"unknown loss {self.loss!r}; expected one of {LOSSES}")

    def to_dict(self) -> dict:
        return {
            "schedule": self.schedule.to_dict(),
            "variance": self.variance,
            "loss": self.loss,
            "vlb_weight": self.vlb_weight,
            "bits": self.bits,
        }

    @classmethod
    def from_dict(cls, d: dict) -> "DiffusionConfig":
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown diffusion keys {sorted(unknown)}")
        return cls(**d)


class Diffusion:
    """One object that owns the schedule, the variance choice and the training loss.

    ``net(x_t, t) -> out`` is the raw network with conditioning bound in; ``out`` is ε̂, or ε̂ and v
    concatenated on dim 1 when ``variance == "learned"``."""

    def __init__(self, config: DiffusionConfig | None = None):
        self.config = config or DiffusionConfig()
        self.schedule: NoiseSchedule = self.config.schedule.build()

    @property
    def learned_variance(self) -> bool:
        return self.config.variance == "learned"

    def split(self, out: torch.Tensor):
        """Network output -> (ε̂, v or None)."""
        if not self.learned_variance:
            return out, None
        if out.shape[1] % 2:
            raise ValueError("a learned-variance network must output 2×channels (ε and v)")
        eps, v = out.chunk(2, dim=1)
        return eps, v

    def model_fn(self, net, prior: AffinePrior | None = None):
        """The sampler interface ``model(x, t) -> ε̂ or (ε̂, v)`` for a network (in y-space with a prior)."""

        def model(x, t):
            eps, v = self.split(net(x, t))
            return eps if v is None else (eps, v)

        return prior.wrap(model) if prior is not None else model

    def training_loss(
        self,
        net,
        x0: torch.Tensor,
        prior: AffinePrior | None = None,
        mask: torch.Tensor | None = None,
        t: torch.Tensor | None = None,
        noise: torch.Tensor | None = None,
        return_x0: bool = False,
    ) -> tuple:
        """ε-loss (+ λ·L_vlb for learned variance) at uniformly drawn integer steps.

        Returns (loss, logs: detached 0-d tensors). With a prior the network is fed x_t = μ + s·y_t and predicts the
        standard noise of y (PriorGrad / Grad-TTS). ``return_x0``: also return the one-step estimate
        x̂_0 = (x_t − √(1 − ᾱ_t) ε̂) / √ᾱ_t (in the data's space, with the gradient), for a loss on it."""
        y0 = prior.to_standard(x0) if prior is not None else x0
        b = x0.shape[0]
        if t is None:
            t = torch.randint(0, self.schedule.num_steps, (b,), device=x0.device)
        if noise is None:
            noise = torch.randn_like(y0)
        yt = q_sample(self.schedule, y0, t, noise)
        xt = prior.from_standard(yt) if prior is not None else yt
        eps, v = self.split(net(xt, t))
        loss = eps_loss(eps, noise, self.config.loss, mask)
        # logs stay tensors: a .item() here would stall the GPU every step (the trainer averages them)
        logs = {"loss_eps": loss.detach()}
        if v is not None:
            # L_vlb trains only the variance: stop the gradient through the mean (Nichol & Dhariwal).
            nats = vlb_term(self.schedule, y0, yt, t, eps.detach(), "learned", v, self.config.bits, prior, mask)
            dims = mask.expand_as(y0).flatten(1).sum(1) if mask is not None else y0[0].numel()
            vlb = (nats / dims).mean() * self.schedule.num_steps
            loss = loss + self.config.vlb_weight * vlb.to(loss.dtype)
            logs["loss_vlb"] = vlb.detach()
        logs["loss"] = loss.detach()
        if not return_x0:
            return loss, logs
        y0_hat = predict_x0(self.schedule, yt, t, eps.to(yt.dtype))
        return loss, logs, prior.from_standard(y0_hat) if prior is not None else y0_hat
