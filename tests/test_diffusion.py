"""Diffusion core against closed forms and float64 references."""
import math

import numpy as np
import pytest
import torch
from scipy.stats import norm

from wavediff.diffusion import (
    DIFFWAVE_FAST_BETAS,
    AffinePrior,
    Diffusion,
    DiffusionConfig,
    NoiseSchedule,
    ScheduleConfig,
    cosine_betas,
    discretized_gaussian_log_likelihood,
    eps_loss,
    linear_betas,
    make_betas,
    normal_kl,
    p_mean_variance,
    predict_eps,
    predict_x0,
    q_posterior,
    q_sample,
    reverse_log_variance,
    sample,
    sample_ddpm,
    sample_fast,
    fast_reverse,
    timesteps,
    variational_bound,
)

DIFFWAVE = NoiseSchedule(linear_betas(50, 1e-4, 0.05))


# ----------------------------------------------------------------------------- schedules
def test_linear_and_cosine_betas_match_closed_forms():
    b = linear_betas(50, 1e-4, 0.05)
    np.testing.assert_allclose(b.numpy(), np.linspace(1e-4, 0.05, 50), rtol=0, atol=1e-15)
    c = cosine_betas(100)
    f = lambda u: math.cos((u + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
    ab = torch.cumprod(1 - c, 0)
    for n in (0, 10, 50, 98):
        assert ab[n].item() == pytest.approx(f((n + 1) / 100) / f(0), rel=1e-10)
    assert make_betas("custom", betas=[0.1, 0.2]).tolist() == [0.1, 0.2]


def test_schedule_quantities_are_consistent():
    s = DIFFWAVE
    ab = torch.cumprod(1 - linear_betas(50), 0)
    t = torch.arange(50, dtype=torch.float64)
    torch.testing.assert_close(s.alpha_bar(t), ab)
    torch.testing.assert_close(s.sigma(t), (1 - ab).sqrt())
    torch.testing.assert_close(s.snr(t), ab / (1 - ab))
    # β̃ closed form and the posterior coefficients of Ho et al. eq. 7
    n = 7
    assert s.posterior_variance[n].item() == pytest.approx(
        (1 - ab[n - 1].item()) / (1 - ab[n].item()) * s.betas[n].item(), rel=1e-12
    )


def test_fractional_steps_interpolate_sqrt_alpha_bar_and_invert():
    s = DIFFWAVE
    root = s.alpha_bars.sqrt()
    assert s.sqrt_alpha_bar(torch.tensor(3.25, dtype=torch.float64)).item() == pytest.approx(
        0.75 * root[3].item() + 0.25 * root[4].item(), rel=1e-12
    )
    t = torch.tensor([0.0, 0.3, 7.5, 48.99, 49.0], dtype=torch.float64)
    torch.testing.assert_close(s.t_from_alpha_bar(s.alpha_bar(t)), t)
    with pytest.raises(ValueError, match="outside the trained range"):
        s.t_from_alpha_bar(torch.tensor([0.99999]))
    with pytest.raises(ValueError, match=r"lie in \[0, 49\]"):
        s.alpha_bar(torch.tensor([50.0]))


def test_diffwave_fast_schedule_alignment_matches_paper():
    t = DIFFWAVE.align_betas(DIFFWAVE_FAST_BETAS)
    np.testing.assert_allclose(t.numpy(), [0, 0.894, 4.087, 10.452, 22.992, 42.919], atol=5e-4)


def test_lmnt_alignment_loop_agrees():
    """The same numbers from lmnt-com/diffwave's own alignment loop (inference.py), transcribed."""
    train = np.linspace(1e-4, 0.05, 50)
    talpha_cum = np.cumprod(1 - train)
    alpha_cum = np.cumprod(1 - np.array([1e-4, 5e-4, 3e-3, 0.02, 0.1, 0.3, 0.5]))
    ref = []
    for s_ in range(len(alpha_cum)):
        for t in range(len(train) - 1):
            if talpha_cum[t + 1] <= alpha_cum[s_] <= talpha_cum[t]:
                tw = (talpha_cum[t] ** 0.5 - alpha_cum[s_] ** 0.5) / (talpha_cum[t] ** 0.5 - talpha_cum[t + 1] ** 0.5)
                ref.append(t + tw)
                break
    got = DIFFWAVE.align_betas([1e-4, 5e-4, 3e-3, 0.02, 0.1, 0.3, 0.5]).numpy()
    np.testing.assert_allclose(got, ref, atol=1e-12)


def test_schedule_config_round_trip_and_errors():
    for cfg in (ScheduleConfig(), ScheduleConfig(kind="cosine", num_steps=20), ScheduleConfig(kind="custom", betas=[0.1, 0.2, 0.3])):
        again = ScheduleConfig.from_dict(cfg.to_dict())
        torch.testing.assert_close(again.build().betas, cfg.build().betas)
    with pytest.raises(ValueError, match="unknown beta schedule"):
        make_betas("sigmoid", 10)
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        NoiseSchedule([0.1, 1.5])
    with pytest.raises(ValueError, match="unknown schedule keys"):
        ScheduleConfig.from_dict({"kind": "linear", "nsteps": 3})


# ----------------------------------------------------------------------- forward process
def test_q_sample_equals_iterated_one_step_chain():
    """x_t from the closed form equals T one-step noisings x_n = √α_n x_{n−1} + √β_n z_n (float64)."""
    s = NoiseSchedule(linear_betas(20, 1e-3, 0.2))
    x0 = torch.randn(4, 3, dtype=torch.float64)
    zs = torch.randn(20, 4, 3, dtype=torch.float64)
    x = x0
    for n in range(20):
        x = s.alphas[n].sqrt() * x + s.betas[n].sqrt() * zs[n]
        # the accumulated noise is Gaussian with variance 1 − ᾱ_n: express it as one ε
        eps = (x - s.alpha_bars[n].sqrt() * x0) / (1 - s.alpha_bars[n]).sqrt()
        torch.testing.assert_close(q_sample(s, x0, torch.full((4,), n), eps), x)
    # and the noise variance of the chain is 1 − ᾱ (exactly, by construction of the coefficients)
    var = sum(s.betas[k] * torch.prod(s.alphas[k + 1 :]) for k in range(20))
    assert var.item() == pytest.approx(1 - s.alpha_bars[-1].item(), rel=1e-12)


def test_posterior_matches_gaussian_conditioning():
    """q(x_{n−1} | x_n, x_0) from Bayes' rule on the joint Gaussian, computed independently."""
    s = DIFFWAVE
    n = 12
    x0, xt = torch.tensor([[0.3]], dtype=torch.float64), torch.tensor([[-0.7]], dtype=torch.float64)
    a_prev, beta = s.alpha_bars[n - 1].item(), s.betas[n].item()
    # x_{n−1} | x0 ~ N(√ā_prev x0, 1−ā_prev);  x_n | x_{n−1} ~ N(√(1−β) x_{n−1}, β)
    prec = 1 / (1 - a_prev) + (1 - beta) / beta
    mean = (math.sqrt(a_prev) * 0.3 / (1 - a_prev) + math.sqrt(1 - beta) * -0.7 / beta) / prec
    m, v, logv = q_posterior(s, x0, xt, torch.tensor([n]))
    assert m.item() == pytest.approx(mean, rel=1e-10)
    assert v.item() == pytest.approx(1 / prec, rel=1e-10)
    assert logv.item() == pytest.approx(math.log(1 / prec), rel=1e-10)


def test_x0_eps_conversions_round_trip():
    x0, eps = torch.randn(5, 7, dtype=torch.float64), torch.randn(5, 7, dtype=torch.float64)
    t = torch.tensor([0, 3.5, 10, 25.2, 49], dtype=torch.float64)
    xt = q_sample(DIFFWAVE, x0, t, eps)
    torch.testing.assert_close(predict_x0(DIFFWAVE, xt, t, eps), x0)
    torch.testing.assert_close(predict_eps(DIFFWAVE, xt, t, x0), eps)


def test_reverse_variances():
    s, like = DIFFWAVE, torch.zeros(2, 1, dtype=torch.float64)
    t = torch.tensor([5, 30])
    small = reverse_log_variance(s, t, like, "fixed_small").flatten()
    large = reverse_log_variance(s, t, like, "fixed_large").flatten()
    torch.testing.assert_close(small, torch.log(s.posterior_variance[t]))
    torch.testing.assert_close(large, torch.log(s.betas[t]))
    v = torch.tensor([[-1.0], [1.0]], dtype=torch.float64)
    learned = reverse_log_variance(s, t, like, "learned", v).flatten()
    torch.testing.assert_close(learned, torch.stack([small[0], large[1]]))
    with pytest.raises(ValueError, match="unknown variance"):
        reverse_log_variance(s, t, like, "huge")
    with pytest.raises(ValueError, match="needs the model's v"):
        reverse_log_variance(s, t, like, "learned")


def test_p_mean_is_ho_et_al_eps_form():
    s = DIFFWAVE
    xt, eps = torch.randn(3, 4, dtype=torch.float64), torch.randn(3, 4, dtype=torch.float64)
    t = torch.tensor([1, 20, 49])
    mean, _, _ = p_mean_variance(s, xt, t, eps)
    a, b, ab = s.alphas[t].view(-1, 1), s.betas[t].view(-1, 1), s.alpha_bars[t].view(-1, 1)
    torch.testing.assert_close(mean, (xt - b / (1 - ab).sqrt() * eps) / a.sqrt())


# ------------------------------------------------------------------------------- losses
def test_eps_losses():
    a, b = torch.tensor([[1.0, -2.0]]), torch.tensor([[0.0, 0.0]])
    assert eps_loss(a, b, "l2").item() == pytest.approx(2.5)
    assert eps_loss(a, b, "l1").item() == pytest.approx(1.5)
    assert eps_loss(a, b, "l2", mask=torch.tensor([[1.0, 0.0]])).item() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="unknown loss"):
        eps_loss(a, b, "huber")


def _gaussian_eps(schedule, s2, mu=0.0):
    """Exact ε(x_t, t) for data N(mu, s2) (in the space the model sees)."""

    def model(x, t):
        ab = schedule.alpha_bar(t.double()).view(-1, *([1] * (x.dim() - 1))).to(x.dtype)
        x0_hat = mu + ab.sqrt() * s2 / (ab * s2 + 1 - ab) * (x - ab.sqrt() * mu)
        return (x - ab.sqrt() * x0_hat) / (1 - ab).sqrt()

    return model


def test_training_loss_prefers_the_exact_denoiser_and_hybrid_trains_only_variance():
    torch.manual_seed(0)
    d = Diffusion(DiffusionConfig(loss="l2"))
    x0 = 0.5 * torch.randn(256, 1, 64)
    exact = _gaussian_eps(d.schedule, 0.25)
    t = torch.arange(256) % 50
    loss_exact, logs = d.training_loss(lambda x, t: exact(x, t.float()), x0, t=t)
    # minimum mean squared error of ε for Gaussian data: Var(ε | x_t) = ᾱ s² / (ᾱ s² + 1 − ᾱ)
    ab = d.schedule.alpha_bars[t]
    mmse = (ab * 0.25 / (ab * 0.25 + 1 - ab)).mean().item()
    assert loss_exact.item() == pytest.approx(mmse, rel=0.03)
    assert logs["loss"].item() == pytest.approx(loss_exact.item())
    loss_zero, _ = d.training_loss(lambda x, t: torch.zeros_like(x), x0, t=t)
    assert loss_zero.item() == pytest.approx(1.0, rel=0.03)
    # hybrid: the vlb term's gradient reaches v but not ε (stop-gradient on the mean)
    w_eps = torch.full((1,), 0.3, requires_grad=True)
    w_v = torch.zeros(1, requires_grad=True)
    t, noise = torch.full((8,), 10), torch.randn(8, 1, 64)
    hybrid = Diffusion(DiffusionConfig(variance="learned", loss="l2", vlb_weight=1.0))
    loss, logs = hybrid.training_loss(lambda x, t: torch.cat([x * w_eps, x * 0 + w_v], 1), x0[:8], t=t, noise=noise)
    assert logs["loss_vlb"].item() > 0
    assert logs["loss"].item() == pytest.approx(logs["loss_eps"].item() + logs["loss_vlb"].item(), rel=1e-5)
    g_eps, g_v = torch.autograd.grad(loss, [w_eps, w_v])
    simple, _ = Diffusion(DiffusionConfig(loss="l2")).training_loss(lambda x, t: x * w_eps, x0[:8], t=t, noise=noise)
    (g_eps_simple,) = torch.autograd.grad(simple, [w_eps])
    torch.testing.assert_close(g_eps, g_eps_simple)
    assert g_v.abs().item() > 0


def test_training_loss_returns_the_one_step_estimate_in_the_datas_space():
    """return_x0: x̂_0 from the network's ε; an oracle that predicts the drawn noise gets x_0 back,
    with a prior too (the estimate is mapped back from the standardised space)."""
    torch.manual_seed(0)
    d = Diffusion(DiffusionConfig(loss="l1"))
    x0 = 0.3 * torch.randn(6, 1, 128, dtype=torch.float64)
    t, noise = torch.tensor([0, 3, 10, 25, 40, 49]), torch.randn(6, 1, 128, dtype=torch.float64)
    prior = AffinePrior(mean=0.1 * torch.randn(6, 1, 128, dtype=torch.float64),
                        std=0.5 + torch.rand(6, 1, 128, dtype=torch.float64))
    for pr in (None, prior):  # with a prior the network sees x_t = μ + s·y_t and predicts y's noise
        loss, logs, x0_hat = d.training_loss(lambda x, t: noise, x0, prior=pr, t=t, noise=noise, return_x0=True)
        assert loss.item() == 0 and set(logs) == {"loss_eps", "loss"}
        torch.testing.assert_close(x0_hat, x0)
    # a wrong ε moves x̂_0 by −√(1 − ᾱ_t)/√ᾱ_t times the error (float64 closed form)
    _, _, x0_hat = d.training_loss(lambda x, t: noise + 0.1, x0, t=t, noise=noise, return_x0=True)
    ab = d.schedule.alpha_bars[t].double().view(-1, 1, 1)
    torch.testing.assert_close(x0_hat - x0, -0.1 * ((1 - ab) / ab).sqrt().expand_as(x0))


# --------------------------------------------------------------------------- likelihood
def test_normal_kl_closed_form():
    kl = normal_kl(torch.tensor(1.0), torch.tensor(math.log(2.0)), torch.tensor(0.0), torch.tensor(0.0))
    assert kl.item() == pytest.approx(0.5 * (2 + 1 - 1 - math.log(2)))


def test_discretized_decoder_matches_scipy_and_normalises():
    x = torch.tensor([-1.0, -0.5, 0.0, 0.25, 1 - 2**-15], dtype=torch.float64)
    mean = torch.tensor([-0.99, -0.45, 0.001, 0.3, 0.98], dtype=torch.float64)
    scale = torch.tensor([0.01, 0.05, 0.002, 0.1, 0.05], dtype=torch.float64)
    got = discretized_gaussian_log_likelihood(x, mean, scale.log(), bits=16).numpy()
    h = 2.0**-16
    ref = []
    for xi, mi, si in zip(x.numpy(), mean.numpy(), scale.numpy()):
        if xi <= -1 + h:
            p = norm.cdf(xi + h, mi, si)
        elif xi >= 1 - 3 * h:
            p = norm.sf(xi - h, mi, si)
        else:
            p = norm.cdf(xi + h, mi, si) - norm.cdf(xi - h, mi, si)
        ref.append(np.log(p))
    np.testing.assert_allclose(got, ref, rtol=1e-7)
    # all 2^8 bins of an 8-bit grid sum to one
    grid = torch.arange(-128, 128, dtype=torch.float64) / 128
    p = discretized_gaussian_log_likelihood(grid, torch.tensor(0.1, dtype=torch.float64), torch.tensor(math.log(0.4)), bits=8).exp()
    assert p.sum().item() == pytest.approx(1.0, abs=1e-12)


def _quantise(x, bits=16):
    q = 2 ** (bits - 1)
    return (x * q).round().clamp(-q, q - 1) / q


def _exact_reverse_v(schedule, s2):
    """v for the learned-variance model that makes p(x_{n−1}|x_n) equal the true q(x_{n−1}|x_n)."""
    ab = schedule.alpha_bars
    var = ab * s2 + 1 - ab
    var_prev = torch.cat([torch.tensor([s2], dtype=torch.float64), var[:-1]])
    true = var_prev - schedule.alphas * var_prev**2 / var
    lo, hi = schedule.posterior_log_variance_clipped, torch.log(schedule.betas)
    frac = (true.log() - lo) / (hi - lo)
    return 2 * frac - 1


@pytest.mark.parametrize("with_prior", [False, True])
def test_variational_bound_equals_entropy_for_gaussian_data_and_exact_model(with_prior):
    """Known answer: data N(μ, c²·s²) on the 16-bit grid, the exact ε and exact reverse variances.

    Then p(x_{0:T}) = q(x_{0:T}) p(x_T)/q(x_T), so the bound is the discretised entropy
    h − ln Δ plus KL(q(x_T) ‖ N(0, 1)) exactly; fixed variances can only be worse."""
    torch.manual_seed(0)
    sched = DIFFWAVE
    c2 = 0.09  # variance of y
    mu, std = (0.05, 0.5) if with_prior else (0.0, 1.0)
    n = 20000
    x0 = _quantise(mu + std * math.sqrt(c2) * torch.randn(n, 1, dtype=torch.float64))
    prior = AffinePrior(torch.tensor(mu, dtype=torch.float64), torch.tensor(std, dtype=torch.float64)) if with_prior else None
    eps_fn = _gaussian_eps(sched, c2)
    v_table = _exact_reverse_v(sched, c2)

    def model(y, t):
        return eps_fn(y, t), v_table[t.long()].view(-1, 1).to(y.dtype)

    res = variational_bound(model, x0, sched, variance="learned", bits=16, prior=prior)
    var_x = std**2 * c2
    h = 0.5 * math.log(2 * math.pi * math.e * var_x)  # nats
    delta = 2.0**-15
    v_T = sched.alpha_bars[-1].item() * c2 + 1 - sched.alpha_bars[-1].item()
    kl_T = 0.5 * (v_T - 1 - math.log(v_T))
    expected_bpd = (h - math.log(delta) + kl_T) / math.log(2)
    assert res["bpd"].mean().item() == pytest.approx(expected_bpd, abs=0.02)
    for fixed in ("fixed_small", "fixed_large"):
        worse = variational_bound(lambda y, t: eps_fn(y, t), x0[:4000], sched, variance=fixed, prior=prior)
        assert worse["bpd"].mean().item() > expected_bpd + 0.02
    assert res["terms_bpd"].shape == (50, n)


# ------------------------------------------------------------------------------ samplers
PI = torch.tensor([0.3, 0.7], dtype=torch.float64)
M = torch.tensor([-0.5, 0.4], dtype=torch.float64)
S = torch.tensor([0.1, 0.15], dtype=torch.float64)
MIX_MEAN = (PI * M).sum().item()
MIX_STD = math.sqrt((PI * (S**2 + M**2)).sum().item() - MIX_MEAN**2)


def _mixture_eps(schedule):
    """Closed-form ε(x_t, t) = −σ_t ∇log q_t(x_t) for a 1-D two-component Gaussian mixture."""

    def model(x, t):
        ab = schedule.alpha_bar(t.double()).view(-1, 1)
        xd, a = x.double(), ab.sqrt()
        var = ab * S**2 + 1 - ab
        logw = torch.log(PI) - 0.5 * torch.log(var) - 0.5 * (xd - a * M) ** 2 / var
        w = torch.softmax(logw, -1)
        score = (w * (-(xd - a * M) / var)).sum(-1, keepdim=True)
        return (-(1 - ab).sqrt() * score).to(x.dtype)

    return model


def _mixture_x0(n, g):
    k = (torch.rand(n, 1, generator=g, dtype=torch.float64) < PI[1]).long()
    return M[k] + S[k] * torch.randn(n, 1, generator=g, dtype=torch.float64)


def _check_moments(out, tol_mean=0.01, tol_std=0.012, tol_mode=0.012):
    assert torch.isfinite(out).all()
    assert out.mean().item() == pytest.approx(MIX_MEAN, abs=tol_mean)
    assert out.std().item() == pytest.approx(MIX_STD, abs=tol_std)
    assert (out < 0).double().mean().item() == pytest.approx(0.3, abs=tol_mode)


N_SAMPLES = 20000


def test_ddpm_from_pure_noise_recovers_mixture():
    sched = NoiseSchedule(linear_betas(1000, 1e-4, 0.02))  # ᾱ_T ≈ 4e-5: x_T ≈ N(0, 1)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(N_SAMPLES, 1, generator=g, dtype=torch.float64)
    _check_moments(sample_ddpm(_mixture_eps(sched), x, sched, generator=g))


@pytest.mark.parametrize(
    "name,options",
    [
        ("ddpm", {"variance": "fixed_large"}),
        ("ddim", {"steps": 50, "spacing": "linear"}),
        ("ddim", {"steps": 50, "spacing": "linear", "eta": 1.0}),
        ("dpmpp_2m", {"steps": 20}),
        ("heun", {"steps": 15}),
    ],
)
def test_samplers_recover_mixture_from_the_exact_marginal(name, options):
    """DiffWave's schedule ends at ᾱ ≈ 0.28, so chains start from the exact q(x_{T−1})."""
    sched = DIFFWAVE
    g = torch.Generator().manual_seed(1)
    x0 = _mixture_x0(N_SAMPLES, g)
    xt = q_sample(sched, x0, torch.full((N_SAMPLES,), 49.0), torch.randn(N_SAMPLES, 1, generator=g, dtype=torch.float64))
    _check_moments(sample(name, _mixture_eps(sched), xt, sched, generator=g, **options))


def test_fast_sampler_with_a_fine_user_schedule_recovers_mixture():
    sched = DIFFWAVE
    betas = np.geomspace(1e-4, 0.06, 80).tolist()
    ab_last = float(np.prod(1 - np.array(betas)))
    g = torch.Generator().manual_seed(2)
    x0 = _mixture_x0(N_SAMPLES, g)
    t = sched.t_from_alpha_bar(torch.tensor(ab_last)).float().expand(N_SAMPLES)
    xt = q_sample(sched, x0, t, torch.randn(N_SAMPLES, 1, generator=g, dtype=torch.float64))
    _check_moments(sample_fast(_mixture_eps(sched), xt, sched, betas=betas, generator=g))


def test_fast_sampler_with_training_betas_is_the_ddpm_chain():
    sched = NoiseSchedule(linear_betas(20, 1e-3, 0.2))
    model = _mixture_eps(sched)
    x = torch.randn(64, 1, dtype=torch.float64)
    a = sample_fast(model, x, sched, betas=sched.betas.tolist(), generator=torch.Generator().manual_seed(5))
    b = sample_ddpm(model, x, sched, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(a, b)


def test_fast_reverse_is_the_fast_sampler_with_exact_gradients():
    """The unrolled chain InferGrad trains through: the same numbers as sample_fast, and autograd's
    derivative through all steps equals a float64 central difference."""
    sched = DIFFWAVE
    betas = [1e-4, 1e-3, 0.01, 0.05, 0.2, 0.5]
    x = torch.randn(8, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))

    def run(a, grad):
        model = lambda xt, t: a * xt * (1 + 0.01 * t.to(xt.dtype)).view(-1, 1)  # depends on the step too
        fn = fast_reverse if grad else sample_fast
        return fn(model, x, sched, betas=betas, generator=torch.Generator().manual_seed(4))

    a = torch.tensor(0.7, dtype=torch.float64, requires_grad=True)
    out = run(a, grad=True)
    torch.testing.assert_close(out.detach(), run(a.detach(), grad=False), rtol=0, atol=0)
    assert not run(a, grad=False).requires_grad  # the sampler itself never builds a graph
    (dout,) = torch.autograd.grad(out.pow(2).sum(), a)
    h = 1e-6
    numeric = (run(a.detach() + h, False).pow(2).sum() - run(a.detach() - h, False).pow(2).sum()) / (2 * h)
    assert abs(dout.item() - numeric.item()) <= 1e-6 * abs(numeric.item()) and abs(numeric.item()) > 1e-3


def test_learned_variance_at_minus_one_is_fixed_small():
    sched = NoiseSchedule(linear_betas(20, 1e-3, 0.2))
    eps = _mixture_eps(sched)
    x = torch.randn(32, 1, dtype=torch.float64)
    a = sample_ddpm(lambda x, t: (eps(x, t), -torch.ones_like(x)), x, sched, variance="learned", generator=torch.Generator().manual_seed(3))
    b = sample_ddpm(eps, x, sched, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(a, b)


def test_deterministic_samplers_are_deterministic_and_call_counts():
    sched = DIFFWAVE
    calls = []
    model = _mixture_eps(sched)

    def counting(x, t):
        calls.append(t[0].item())
        return model(x, t)

    x = torch.randn(8, 1, dtype=torch.float64)
    for name, opts, nfe in [("dpmpp_2m", {"steps": 6}, 6), ("heun", {"steps": 4}, 7), ("ddim", {"steps": 5}, 5), ("fast", {}, 6), ("ddpm", {}, 50)]:
        calls.clear()
        sample(name, counting, x, sched, generator=torch.Generator().manual_seed(0), **opts)
        assert len(calls) == nfe, name
        assert calls[0] == pytest.approx(49.0 if name != "fast" else 42.9186, abs=1e-3)
        assert calls[-1] == pytest.approx(0.0)
        if name != "fast":  # only DiffWave's fast sampler uses fractional (aligned) steps, as lmnt's does
            assert all(c == round(c) for c in calls), (name, calls)
    for name in ("dpmpp_2m", "ddim", "heun"):  # start= reaches every ODE sampler
        calls.clear()
        sample(name, counting, x, sched, steps=3, start=20)
        assert calls[0] == 20 and calls[-1] == 0, (name, calls)
    y1 = sample("dpmpp_2m", model, x, sched, steps=6)
    y2 = sample("dpmpp_2m", model, x, sched, steps=6)
    assert torch.equal(y1, y2)


def test_timesteps_spacings():
    for spacing in ("linear", "quadratic", "logsnr"):
        ts = timesteps(DIFFWAVE, 8, spacing)
        assert ts[0] == 49 and ts[-1] == 0 and (ts[1:] < ts[:-1]).all()
    # integer training steps, each the nearest to its ideal point (here: uniform in log-SNR)
    ts = timesteps(DIFFWAVE, 8, "logsnr")
    assert torch.equal(ts, ts.round())
    lam = DIFFWAVE.log_snr(torch.arange(50, dtype=torch.float64))
    ideal = torch.linspace(lam[49].item(), lam[0].item(), 8, dtype=torch.float64)
    nearest = (lam[None, :] - ideal[:, None]).abs().argmin(1)  # the step nearest in λ to each ideal point
    assert (ts - nearest.double()).abs().max() <= 1  # rounding in t, not λ: at most one step apart
    # a 1000-step schedule: the ideal points are far apart, rounding moves each by at most 1/2
    long = ScheduleConfig(kind="linear", num_steps=1000, beta_start=1e-4, beta_end=0.02).build()
    assert timesteps(long, 10).tolist() == [999, 886, 757, 603, 410, 202, 73, 22, 5, 0]
    # as many steps as the schedule has: every step once; more is an error
    assert timesteps(DIFFWAVE, 50).tolist() == list(range(49, -1, -1))
    assert timesteps(DIFFWAVE, 20, "logsnr").unique().numel() == 20
    with pytest.raises(ValueError, match="at most the 50 training steps"):
        timesteps(DIFFWAVE, 51)
    # a later start: the grid runs from there (a prior that is already the marginal at that step)
    for spacing in ("linear", "quadratic", "logsnr"):
        ts = timesteps(DIFFWAVE, 5, spacing, start=30)
        assert ts[0] == 30 and ts[-1] == 0 and (ts[1:] < ts[:-1]).all() and torch.equal(ts, ts.round())
    assert timesteps(DIFFWAVE, 4, start=3).tolist() == [3, 2, 1, 0]
    with pytest.raises(ValueError, match="at most the 4 training steps"):
        timesteps(DIFFWAVE, 5, start=3)
    with pytest.raises(ValueError, match="start must be a step"):
        timesteps(DIFFWAVE, 3, start=50)
    with pytest.raises(ValueError, match="unknown spacing"):
        timesteps(DIFFWAVE, 4, "cubic")


def test_sampler_bad_input():
    model = _mixture_eps(DIFFWAVE)
    with pytest.raises(ValueError, match="NaN"):
        sample("ddim", model, torch.tensor([[float("nan")]]), DIFFWAVE)
    with pytest.raises(ValueError, match="non-empty"):
        sample("ddim", model, torch.zeros(0, 1), DIFFWAVE)
    with pytest.raises(ValueError, match="unknown sampler"):
        sample("euler_a", model, torch.zeros(1, 1), DIFFWAVE)
    with pytest.raises(ValueError, match="strictly between"):
        sample_fast(model, torch.zeros(1, 1), DIFFWAVE, betas=[0.1, 1.2])


def test_clip_keeps_fast_samples_in_range():
    model = lambda x, t: -x  # noqa: E731  (pushes values outward)
    out = sample_fast(model, 3 * torch.randn(16, 100), DIFFWAVE, clip=1.0, generator=torch.Generator().manual_seed(0))
    assert out.abs().max() <= 1.0


def test_prior_round_trip_and_validation():
    mu, sd = torch.randn(2, 1, 5), torch.rand(2, 1, 5) + 0.1
    p = AffinePrior(mu, sd)
    x = torch.randn(2, 1, 5)
    torch.testing.assert_close(p.from_standard(p.to_standard(x)), x)
    with pytest.raises(ValueError, match="positive"):
        AffinePrior(std=torch.zeros(3))


def test_continuous_bound_equals_differential_entropy_for_gaussian_data():
    """With bits=None the decoder is a density: the bound is h(x) + KL(q(x_T) ‖ N(0, 1)) exactly."""
    torch.manual_seed(1)
    sched, c2, n = DIFFWAVE, 0.09, 20000
    x0 = math.sqrt(c2) * torch.randn(n, 1, dtype=torch.float64)
    eps_fn, v_table = _gaussian_eps(sched, c2), _exact_reverse_v(sched, c2)
    res = variational_bound(lambda y, t: (eps_fn(y, t), v_table[t.long()].view(-1, 1).to(y.dtype)), x0, sched, variance="learned", bits=None)
    v_T = sched.alpha_bars[-1].item() * c2 + 1 - sched.alpha_bars[-1].item()
    expected = (0.5 * math.log(2 * math.pi * math.e * c2) + 0.5 * (v_T - 1 - math.log(v_T))) / math.log(2)
    assert res["bpd"].mean().item() == pytest.approx(expected, abs=0.02)
