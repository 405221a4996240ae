"""The Vocoder pipeline: lmnt parity, batching, chunking, priors, the schedule search."""
import math

import numpy as np
import pytest
import torch
from diffwave.model import DiffWave
from diffwave.params import AttrDict, params as lmnt_base_params

from wavediff.audio import MelConfig, decompress_mel, match_mel
from wavediff.convert import convert_lmnt_checkpoint, lmnt_reference_predict
from wavediff.device import native_bf16
from wavediff.diffusion import DIFFWAVE_FAST_BETAS
from wavediff.nn import DenoiserConfig
from wavediff.eval.spectral import mrstft_distance
from wavediff.pipelines import InferLossConfig, PriorConfig, Vocoder, VocoderConfig, VocoderLoss, X0LossConfig
from wavediff.pipelines.schedule_search import search_schedule
from wavediff.pipelines.vocoder import InferenceConfig, default_fast_betas


@pytest.fixture(scope="module")
def lmnt_model_and_checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    params = AttrDict(lmnt_base_params)
    model = DiffWave(params).eval()
    with torch.no_grad():  # lmnt zero-initialises the output layer; make the network non-trivial
        torch.nn.init.normal_(model.output_projection.weight, std=0.05)
    path = tmp_path_factory.mktemp("lmnt") / "weights.pt"
    torch.save({"step": 7, "model": model.state_dict(), "params": dict(params)}, path)
    out = convert_lmnt_checkpoint(path, tmp_path_factory.mktemp("converted") / "vocoder")
    return model, params, out


def test_converted_lmnt_checkpoint_reproduces_lmnt_fast_sampling(lmnt_model_and_checkpoint):
    model, params, out = lmnt_model_and_checkpoint
    vocoder = Vocoder.from_pretrained(out, device="cpu")
    assert vocoder.config.mel.preset == "diffwave"
    assert vocoder.config.inference.betas == list(params.inference_noise_schedule)
    mel = torch.rand(2, 80, 12)  # a diffwave-convention mel lies in [0, 1]
    # identical ε on the same input
    x, t = torch.randn(2, 12 * 256), torch.tensor([3, 17])
    with torch.no_grad():
        ref_eps = model(x, mel, t)
        our_eps = vocoder.net(x.unsqueeze(1), t, mel)
    assert (ref_eps - our_eps).abs().max().item() < 1e-5
    # identical 6-step fast sampling from the same global RNG state
    torch.manual_seed(123)
    ref = lmnt_reference_predict(model, mel, params)
    torch.manual_seed(123)
    ours = vocoder(mel, precision="float32")  # lmnt samples in float32 ("auto" may pick bfloat16)
    assert ours.shape == ref.shape == (2, 12 * 256)
    assert (ours - ref).abs().max().item() < 1e-5


def _tiny(prior="none", preset="hifigan", level=1.0, **model):
    mel = MelConfig.from_preset(preset)
    cfg = VocoderConfig(
        model=DenoiserConfig(residual_layers=4, residual_channels=8, dilation_cycle=2, **model),
        mel=mel,
        prior=PriorConfig(kind=prior, gain=3.0, level=level),
    )
    torch.manual_seed(0)
    v = Vocoder(cfg).eval()
    with torch.no_grad():
        torch.nn.init.normal_(v.net.output_projection.weight, std=0.2)
    return v


def _speechy(batch=2, seconds=0.5, sr=22050):
    t = torch.arange(int(seconds * sr)) / sr
    f0 = torch.linspace(110, 180, batch).view(-1, 1)
    env = torch.sin(torch.pi * t / seconds) ** 2
    return 0.3 * env * sum(torch.sin(2 * torch.pi * k * f0 * t) / k for k in range(1, 6))


def _crops(v, batch=2, frames=24):
    audio = _speechy(batch=batch)
    return {"audio": audio[:, : frames * 256], "mel": v.mel(audio)[..., :frames]}


@pytest.mark.parametrize("prior", ["energy", "none"])
def test_inference_loss_is_the_distance_of_the_vocoders_own_rendering(prior):
    """InferGrad's loss renders exactly what vocode() renders from the same noise, and trains through it."""
    v = _tiny(prior=prior)
    batch = _crops(v)
    torch.manual_seed(7)  # the training loss draws from the global generator
    loss = v.inference_loss(batch)
    rendered = v.vocode(batch["mel"], generator=torch.Generator().manual_seed(7), precision="float32")
    torch.testing.assert_close(loss, mrstft_distance(batch["audio"], rendered).mean(), rtol=1e-5, atol=0)
    torch.manual_seed(8)
    first = v.inference_loss(batch, items=1)  # only the first crop
    rendered = v.vocode(batch["mel"][:1], generator=torch.Generator().manual_seed(8), precision="float32")
    torch.testing.assert_close(first, mrstft_distance(batch["audio"][:1], rendered).mean(), rtol=1e-5, atol=0)
    v.train()
    v.inference_loss(batch).backward()
    grads = [p.grad for p in v.net.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert v.net.residual_layers[0].dilated_conv.weight.grad.abs().sum() > 0  # through every step, to the first layer


def test_training_on_the_inference_loss_lowers_it():
    v = _tiny(prior="energy")
    v.train()
    batch = _crops(v)
    module = VocoderLoss(v, InferLossConfig(weight=1.0, items=2))
    opt = torch.optim.Adam(v.net.parameters(), lr=3e-3)

    def infer_loss():
        torch.manual_seed(0)  # the same noise every time: the loss of one fixed rendering
        with torch.no_grad():
            return v.inference_loss(batch).item()

    start = infer_loss()
    for step in range(30):
        torch.manual_seed(100 + step)
        loss, logs = module(batch)
        assert set(logs) >= {"loss", "loss_eps", "loss_infer"}
        torch.testing.assert_close(logs["loss"], logs["loss_eps"] + logs["loss_infer"])
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert infer_loss() < 0.9 * start


@pytest.mark.parametrize("prior", ["energy", "none"])
def test_x0_loss_is_the_distance_of_the_one_step_estimate_and_training_lowers_it(prior):
    """x0_loss: weight × the MR-STFT distance between each crop and x̂_0 at its drawn step (the same
    draw as the ε-loss), added to the ε-loss; a few optimiser steps on it lower it."""
    v = _tiny(prior=prior)
    v.train()
    batch = _crops(v)
    module = VocoderLoss(v, x0_loss=X0LossConfig(weight=0.5))
    torch.manual_seed(3)
    loss, logs = module(batch)
    torch.manual_seed(3)  # the same steps and noise
    eps_loss, _, x0 = v.training_loss(batch, return_x0=True)
    assert x0.shape == (2, 1, batch["audio"].shape[-1])
    distance = mrstft_distance(batch["audio"], x0[:, 0]).mean()
    torch.testing.assert_close(logs["loss_x0"], distance.detach())
    torch.testing.assert_close(loss, eps_loss + 0.5 * distance)
    torch.testing.assert_close(logs["loss"], logs["loss_eps"] + 0.5 * logs["loss_x0"])

    def x0_loss():
        torch.manual_seed(0)  # the same steps and noise every time
        with torch.no_grad():
            _, logs = module(batch)
        return logs["loss_x0"].item()

    opt = torch.optim.Adam(v.net.parameters(), lr=3e-3)
    start = x0_loss()
    for step in range(30):
        torch.manual_seed(100 + step)
        loss, _ = module(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert x0_loss() < 0.9 * start
    with pytest.raises(ValueError, match="x0_loss.weight must be >= 0"):
        X0LossConfig(weight=-0.1)
    with pytest.raises(ValueError, match="unknown x0_loss keys \\['items'\\]"):
        X0LossConfig.from_dict({"weight": 1.0, "items": 4})


def test_inference_loss_settings_are_checked():
    v = _tiny(prior="energy")
    off = VocoderLoss(v)  # weight 0 (the default): the ε-loss alone
    torch.manual_seed(0)
    loss, logs = off(_crops(v))
    assert "loss_infer" not in logs and torch.equal(loss.detach(), logs["loss_eps"])
    with pytest.raises(ValueError, match="infer_loss.weight must be >= 0"):
        InferLossConfig(weight=-1.0)
    with pytest.raises(ValueError, match="infer_loss.items must be a positive int"):
        InferLossConfig(weight=1.0, items=0)
    with pytest.raises(ValueError, match="unknown infer_loss keys \\['step'\\]"):
        InferLossConfig.from_dict({"weight": 1.0, "step": 4})
    unconditional = Vocoder(VocoderConfig(model=DenoiserConfig(residual_layers=2, residual_channels=8, cond_channels=None)))
    with pytest.raises(ValueError, match="needs a conditional vocoder"):
        VocoderLoss(unconditional, InferLossConfig(weight=1.0))
    v.config.inference.sampler = "ddim"
    with pytest.raises(ValueError, match="inference sampler is 'fast'"):
        VocoderLoss(v, InferLossConfig(weight=1.0))


def test_vocode_shapes_lengths_and_lists():
    v = _tiny()
    mel = v.mel(_speechy())[..., :40]
    assert v(mel, seed=0).shape == (2, 40 * 256)
    assert v(mel[0], seed=0).shape == (40 * 256,)
    out = v(mel, lengths=[25, 40], seed=0)
    assert out.shape == (2, 40 * 256) and out[0, 25 * 256 :].abs().max() == 0 and out[0, : 25 * 256].abs().max() > 0
    as_list = v([mel[0, :, :25], mel[1]], seed=0)
    assert [w.shape[0] for w in as_list] == [25 * 256, 40 * 256]
    torch.testing.assert_close(v(mel, seed=5), v(mel, seed=5))
    assert not torch.equal(v(mel, seed=5), v(mel, seed=6))
    for sampler, steps in [("ddpm", None), ("ddim", 4), ("dpmpp_2m", 4), ("heun", 3), ("fast", 8)]:
        w = v(mel, sampler=sampler, steps=steps, seed=0)
        assert w.shape == (2, 40 * 256) and torch.isfinite(w).all(), sampler


def test_precision_bfloat16_is_close_to_float32_and_auto_follows_the_hardware():
    v = _tiny(prior="energy")
    mel = v.mel(_speechy(batch=1))
    ref = v(mel, seed=0, precision="float32")
    low = v(mel, seed=0, precision="bfloat16")
    assert low.dtype == ref.dtype == torch.float32
    assert not torch.equal(low, ref)  # the network did run in bfloat16 ...
    assert ((low - ref).norm() / ref.norm()) < 0.02  # ... and sampling stayed on course
    expected = low if native_bf16("cpu") else ref
    assert torch.equal(v(mel, seed=0), expected)  # the default is "auto"
    assert torch.equal(v(mel, seed=0, precision="auto"), expected)
    with pytest.raises(ValueError, match="unknown precision 'fp16'"):
        v(mel, seed=0, precision="fp16")


def test_chunked_vocoding_equals_whole_and_bounds_memory():
    v = _tiny(prior="energy")
    mel = v.mel(_speechy(batch=1, seconds=1.0))  # 86 frames
    whole = v(mel, seed=1, chunk_frames=10_000)
    chunked = v(mel, seed=1, chunk_frames=10)
    torch.testing.assert_close(chunked, whole, rtol=0, atol=1e-6)
    seen = []
    hook = v.net.register_forward_pre_hook(lambda mod, args: seen.append(args[0].shape[-1]))
    v(mel, seed=1, chunk_frames=10)
    hook.remove()
    assert max(seen) <= (10 + 2 * v._context_frames()) * 256


def test_condition_is_prepared_once_per_chunk_and_changes_nothing(monkeypatch):
    """Each chunk's mel goes through the conditioning once per vocode call, not once per step, and the
    waveform is the one of the unprepared network; over the memory bound it is not prepared."""
    import wavediff.nn.denoiser as denoiser_module

    v = _tiny(prior="energy")
    mel = v.mel(_speechy(batch=1, seconds=1.0))  # 86 frames
    calls = []
    prepare = v.net.prepare_condition
    monkeypatch.setattr(v.net, "prepare_condition", lambda c: calls.append(c.shape[-1]) or prepare(c))
    whole = v(mel, seed=1, steps=3, chunk_frames=10_000)
    chunked = v(mel, seed=1, steps=3, chunk_frames=30)
    assert calls[0] == 86 and len(calls) == 1 + math.ceil(86 / 30)
    monkeypatch.setattr(denoiser_module, "PREPARED_CONDITION_BYTES", 0)
    raw = v(mel, seed=1, steps=3, chunk_frames=10_000)
    assert len(calls) == 1 + math.ceil(86 / 30)  # over the bound: not prepared
    torch.testing.assert_close(whole, raw, rtol=0, atol=1e-5)
    torch.testing.assert_close(chunked, raw, rtol=0, atol=1e-5)


def test_ten_minute_mel_vocodes_in_bounded_chunks():
    v = _tiny()
    frames = 10 * 60 * 22050 // 256  # ten minutes
    mel = torch.full((1, 80, frames), -6.0)
    seen = []
    hook = v.net.register_forward_pre_hook(lambda mod, args: seen.append(args[0].shape[-1]))
    wav = v(mel, steps=1, chunk_frames=4096, seed=0)
    hook.remove()
    assert wav.shape == (1, frames * 256) and torch.isfinite(wav).all()
    assert max(seen) <= (4096 + 2 * v._context_frames()) * 256


def test_mel_convention_is_checked():
    v = _tiny()
    with pytest.raises(ValueError, match="diffwave"):
        v(torch.rand(1, 80, 20))  # values in [0, 1]: the other convention
    with pytest.raises(ValueError, match="80"):
        v(torch.full((1, 64, 20), -5.0))
    with pytest.raises(ValueError, match="NaN"):
        v(torch.full((1, 80, 20), float("nan")))


def test_priorgrad_prior_follows_frame_energy():
    v = _tiny(prior="energy")
    loud, quiet = -1.0, -11.0
    mel = torch.cat([torch.full((1, 80, 4), loud), torch.full((1, 80, 4), quiet)], dim=2)
    std = v.prior_std(mel)
    assert std.shape == (1, 1, 8 * 256)
    assert std[0, 0, 0].item() == pytest.approx(min(3.0 * np.exp(loud), 1.0), rel=1e-5)
    assert std[0, 0, -1].item() == pytest.approx(0.1)  # floor (min_std)
    v.config.prior.level = 0.5
    assert v.prior_std(mel)[0, 0, 0].item() == pytest.approx(min(3.0 * np.exp(loud) / 0.5, 1.0), rel=1e-5)
    loss, logs = v.training_loss({"audio": _speechy()[:, : 40 * 256], "mel": v.mel(_speechy())[..., :40]})
    assert loss.ndim == 0 and loss.item() > 0


@pytest.mark.parametrize("level, low_snr", [(None, True), (1.0, False)])
def test_prior_leaves_little_signal_at_the_fast_schedules_start(level, low_snr):
    """The fast sampler starts from N(0, I) where training had √ᾱ_S·y0 + √(1−ᾱ_S)·ε (ᾱ_S = 0.38):
    the standardised waveform y0 must be small there, as raw speech-level audio is. The default
    level keeps the signal-to-noise ratio at that step below 1 %; level 1 (a unit-variance y0 where
    the clamp allows) leaves several times more: 6 % on this signal, 19 % on the Festival corpus,
    which a trained model learns to depend on."""
    prior = PriorConfig(kind="energy") if level is None else PriorConfig(kind="energy", level=level)
    v = Vocoder(VocoderConfig(model=DenoiserConfig(residual_layers=2, residual_channels=4), prior=prior))
    audio = 0.2 * _speechy(batch=4, seconds=1.0)  # RMS ≈ 0.06 in voiced frames, like speech
    mel = v.mel(audio)
    frames = mel.shape[-1]
    x = audio[:, : frames * 256].view(4, frames, 256)
    rms = x.pow(2).mean(-1).sqrt()  # fit the gain as training does: frame RMS ≈ gain · e_f
    energy = decompress_mel(mel, v.config.mel).pow(2).mean(1).sqrt()
    v.config.prior.gain = float((rms * energy).sum() / energy.pow(2).sum())
    y0 = audio[:, None, : frames * 256] / v.prior_std(mel)
    alpha_bar_start = float(np.prod(1 - np.array(DIFFWAVE_FAST_BETAS)))
    snr = alpha_bar_start * y0.pow(2).mean().item() / (1 - alpha_bar_start)
    assert (snr < 0.01) if low_snr else (snr > 0.05), snr


def test_mel_match_is_match_mel_on_the_sampled_output_and_brings_the_mel_closer(tmp_path):
    v = _tiny()
    mel = v.mel(_speechy())[..., :40]
    plain = v(mel, seed=0, mel_match=0)
    matched = v(mel, seed=0, mel_match=4)
    torch.testing.assert_close(matched, match_mel(plain, mel, v.config.mel, n_iter=4))
    inner = slice(2, 38)
    error = lambda wav: (v.mel(wav)[..., inner] - mel[..., inner]).abs().mean()  # noqa: E731
    assert error(matched) < 0.5 * error(plain)  # an untrained network: far from the mel until matched
    # the checkpoint's setting is the default; a call's own setting wins; lengths still zero the padding
    v.config.inference.mel_match = 4
    torch.testing.assert_close(v(mel, seed=0), matched)
    torch.testing.assert_close(v(mel, seed=0, mel_match=0), plain)
    out = v(mel, lengths=[25, 40], seed=0)
    assert out[0, 25 * 256 :].abs().max() == 0
    restored = Vocoder.from_pretrained(v.save_pretrained(tmp_path / "v"))
    assert restored.config.inference.mel_match == 4
    with pytest.raises(ValueError, match="mel_match must be an int >= 0"):
        v(mel, mel_match=-1)
    with pytest.raises(ValueError, match="inference.mel_match must be an int >= 0"):
        InferenceConfig(mel_match=1.5)
    with pytest.raises(ValueError, match="unconditional vocoder has no mel to match"):
        VocoderConfig(model=DenoiserConfig(cond_channels=None), inference=InferenceConfig(mel_match=2))
    u = _tiny(cond_channels=None)
    with pytest.raises(ValueError, match="no mel to match"):
        u(num_samples=1000, mel_match=2)


def test_unconditional_vocoder_samples_without_mel():
    v = _tiny(cond_channels=None)
    wav = v(num_samples=1000, seed=0)
    assert wav.shape == (1000,)
    with pytest.raises(ValueError, match="unconditional"):
        v(torch.zeros(1, 80, 4))


def test_fold_model_vocodes():
    v = _tiny(fold=4)
    mel = v.mel(_speechy())[..., :20]
    assert v(mel, seed=0).shape == (2, 20 * 256)


def test_default_fast_betas():
    assert default_fast_betas(6) == list(DIFFWAVE_FAST_BETAS)
    b = default_fast_betas(4)
    assert len(b) == 4 and b[0] == pytest.approx(1e-4) and b[-1] == pytest.approx(0.5)


def test_schedule_search_improves_or_keeps_its_start():
    v = _tiny()
    clips = list(_speechy(batch=2, seconds=0.4))
    messages = []
    res = search_schedule(v, clips, steps=3, rounds=1, seed=0, progress=messages.append)
    assert len(res.betas) == 3 and res.evaluations > 5
    # progress from the start on: the first score, each third of the grid, each round
    assert [m.split(":")[0] for m in messages] == ["start", "grid 1/3", "grid 2/3", "grid 3/3", "round 1 (factor 2.0)"]
    assert messages[0] == f"start: distance {res.initial_score:.4f}" and messages[-1].endswith(f"{res.score:.4f}")
    assert res.score <= res.initial_score
    assert all(b2 >= b1 for b1, b2 in zip(res.betas, res.betas[1:]))
    prod = float(np.prod(1 - np.array(res.betas)))
    assert prod >= v.diffusion.schedule.alpha_bars[-1].item()
