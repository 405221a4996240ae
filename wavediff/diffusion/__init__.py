"""Model-agnostic diffusion maths: schedules, forward process, losses, likelihood, samplers, priors."""
from .gaussian import VARIANCES, p_mean_variance, predict_eps, predict_x0, q_posterior, q_sample, reverse_log_variance
from .likelihood import discretized_gaussian_log_likelihood, normal_kl, prior_kl, variational_bound, vlb_term
from .losses import LOSSES, Diffusion, DiffusionConfig, eps_loss
from .prior import AffinePrior
from .samplers import (
    SAMPLERS,
    fast_reverse,
    fast_schedule_coefficients,
    sample,
    sample_ddim,
    sample_ddpm,
    sample_dpmpp_2m,
    sample_fast,
    sample_heun,
    timesteps,
)
from .schedule import DIFFWAVE_FAST_BETAS, NoiseSchedule, ScheduleConfig, cosine_betas, linear_betas, make_betas

__all__ = [
    "AffinePrior", "DIFFWAVE_FAST_BETAS", "Diffusion", "DiffusionConfig", "LOSSES", "NoiseSchedule",
    "SAMPLERS", "ScheduleConfig", "VARIANCES", "cosine_betas", "discretized_gaussian_log_likelihood",
    "eps_loss", "fast_reverse", "fast_schedule_coefficients", "linear_betas", "make_betas", "normal_kl", "p_mean_variance",
    "predict_eps", "predict_x0", "prior_kl", "q_posterior", "q_sample", "reverse_log_variance", "sample",
    "sample_ddim", "sample_ddpm", "sample_dpmpp_2m", "sample_fast", "sample_heun", "timesteps",
    "variational_bound", "vlb_term",
]
