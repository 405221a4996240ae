"""Mel conventions: pinned presets, filters/STFT/pipeline vs a librosa float64 reference, checks."""

from __future__ import annotations

import dataclasses
import math

import librosa
import numpy as np
import pytest
import torch

from wavediff.audio import PRESETS, MelConfig, MelSpectrogram, griffin_lim, match_mel, validate_mel
from wavediff.audio.mel import mel_basis_np

SR = 22050


# --------------------------------------------------------------------------------------------------
# Helpers: a numpy/librosa reference written from the published formulas
# --------------------------------------------------------------------------------------------------


def _test_audio(num_samples: int, seed: int = 0) -> np.ndarray:
    """Noise + two tones + a silent stretch (exercises the clamp floors), float64 in [-1, 1]."""
    rng = np.random.default_rng(seed)
    t = np.arange(num_samples) / SR
    y = 0.3 * rng.standard_normal(num_samples) * np.exp(-3 * t)
    y += 0.4 * np.sin(2 * np.pi * 220.0 * t) + 0.1 * np.sin(2 * np.pi * 3100.0 * t)
    y[num_samples // 2 : num_samples // 2 + 3000] = 0.0
    return np.clip(y, -1.0, 1.0)


def _reference_stft(y: np.ndarray, preset: str) -> np.ndarray:
    """Complex STFT [F, frames] via librosa, padded exactly as the preset's source code does."""
    if preset == "hifigan":  # meldataset.py: reflect-pad (n_fft - hop) / 2, then center=False
        pad = (1024 - 256) // 2
        y = np.pad(y, (pad, pad), mode="reflect")
        return librosa.stft(
            y, n_fft=1024, hop_length=256, win_length=1024, window="hann", center=False
        )
    # torchaudio Spectrogram: center=True, pad_mode='reflect'
    return librosa.stft(
        y, n_fft=1024, hop_length=256, win_length=1024, window="hann", center=True,
        pad_mode="reflect",
    )


def _reference_mel(y: np.ndarray, preset: str) -> np.ndarray:
    """Whole pipeline in float64 numpy: [80, frames]."""
    spec = _reference_stft(y.astype(np.float64), preset)
    if preset == "hifigan":
        mag = np.sqrt(spec.real**2 + spec.imag**2 + 1e-9)
        basis = librosa.filters.mel(
            sr=SR, n_fft=1024, n_mels=80, fmin=0.0, fmax=8000.0, htk=False, norm="slaney",
            dtype=np.float64,
        )
        return np.log(np.maximum(basis @ mag, 1e-5))
    window = librosa.filters.get_window("hann", 1024, fftbins=True)
    mag = np.abs(spec) / np.sqrt(np.sum(window**2))  # torchaudio normalized=True
    basis = librosa.filters.mel(
        sr=SR, n_fft=1024, n_mels=80, fmin=20.0, fmax=SR / 2, htk=True, norm=None, dtype=np.float64
    )
    db = 20.0 * np.log10(np.maximum(basis @ mag, 1e-5)) - 20.0
    return np.clip((db + 100.0) / 100.0, 0.0, 1.0)


def _torchaudio_htk_fbank(
    sr: int, n_fft: int, n_mels: int, f_min: float, f_max: float
) -> np.ndarray:
    """torchaudio.functional.melscale_fbanks(mel_scale='htk', norm=None), re-derived in numpy.

    lmnt-com/diffwave's mels are built on this filter bank; returns [n_mels, n_fft // 2 + 1].
    """
    all_freqs = np.linspace(0, sr // 2, n_fft // 2 + 1)
    hz_to_mel = lambda f: 2595.0 * np.log10(1.0 + f / 700.0)  # noqa: E731
    m_pts = np.linspace(hz_to_mel(f_min), hz_to_mel(f_max), n_mels + 2)
    f_pts = 700.0 * (10 ** (m_pts / 2595.0) - 1.0)
    f_diff = f_pts[1:] - f_pts[:-1]
    slopes = f_pts[None, :] - all_freqs[:, None]  # [n_freqs, n_mels + 2]
    down = -slopes[:, :-2] / f_diff[:-1]
    up = slopes[:, 2:] / f_diff[1:]
    return np.maximum(0.0, np.minimum(down, up)).T


# --------------------------------------------------------------------------------------------------
# Presets and config
# --------------------------------------------------------------------------------------------------


def test_hifigan_preset_values_pinned() -> None:
    c = MelConfig.hifigan()
    assert (c.preset, c.sample_rate, c.n_fft, c.win_length, c.hop_length, c.n_mels) == (
        "hifigan", 22050, 1024, 1024, 256, 80,
    )
    assert (c.fmin, c.fmax, c.mel_scale, c.mel_norm) == (0.0, 8000.0, "slaney", "slaney")
    assert (c.center, c.stft_normalized, c.mag_eps, c.compression, c.clamp_min) == (
        False, False, 1e-9, "ln", 1e-5,
    )


def test_diffwave_preset_values_pinned() -> None:
    c = MelConfig.diffwave()
    assert (c.preset, c.sample_rate, c.n_fft, c.win_length, c.hop_length, c.n_mels) == (
        "diffwave", 22050, 1024, 1024, 256, 80,
    )
    assert (c.fmin, c.fmax, c.mel_scale, c.mel_norm) == (20.0, 11025.0, "htk", None)
    assert (c.center, c.stft_normalized, c.mag_eps, c.compression, c.clamp_min) == (
        True, True, 0.0, "diffwave", 1e-5,
    )


def test_from_preset_and_dict_round_trip() -> None:
    assert PRESETS == ("hifigan", "diffwave")
    for name in PRESETS:
        c = MelConfig.from_preset(name)
        assert c.preset == name
        assert MelConfig.from_dict(c.to_dict()) == c
    with pytest.raises(ValueError, match="hifigan, diffwave"):
        MelConfig.from_preset("tacotron")


def test_from_dict_rejects_bad_keys_and_values() -> None:
    d = MelConfig.hifigan().to_dict()
    with pytest.raises(ValueError, match="Unknown MelConfig keys: power"):
        MelConfig.from_dict({**d, "power": 2.0})
    missing = {k: v for k, v in d.items() if k != "hop_length"}
    with pytest.raises(ValueError, match="missing keys: hop_length"):
        MelConfig.from_dict(missing)
    no_clamp = {k: v for k, v in d.items() if k != "clamp_min"}
    assert MelConfig.from_dict(no_clamp).clamp_min == 1e-5  # the one field with a default
    with pytest.raises(ValueError, match="mel_scale"):
        MelConfig.from_dict({**d, "mel_scale": "bark"})
    with pytest.raises(ValueError, match="fmax"):
        MelConfig.from_dict({**d, "fmax": 20000.0})
    with pytest.raises(ValueError, match="hop_length"):
        MelConfig.from_dict({**d, "hop_length": 0})


def test_value_range() -> None:
    lo, hi = MelConfig.hifigan().value_range
    assert lo == pytest.approx(math.log(1e-5))
    assert 3.0 < hi < 4.0  # ln(sum(hann) * max row sum of the Slaney bank) = 3.225
    assert MelConfig.diffwave().value_range == (0.0, 1.0)
    # A full-scale sine stays inside the bound.
    t = torch.arange(SR, dtype=torch.float64) / SR
    mel = MelSpectrogram(MelConfig.hifigan())(torch.sin(2 * math.pi * 1000.0 * t))
    assert float(mel.max()) <= hi


@pytest.mark.parametrize("n", [385, 1000, 22050, 22050 + 255, 256 * 40])
def test_frame_counts(n: int) -> None:
    x = torch.zeros(n).uniform_(-0.5, 0.5)
    hifi, dw = MelConfig.hifigan(), MelConfig.diffwave()
    assert hifi.frames_for(n) == n // 256
    assert MelSpectrogram(hifi)(x).shape == (80, n // 256)
    if n >= dw.min_samples:
        assert dw.frames_for(n) == 1 + n // 256
        assert MelSpectrogram(dw)(x).shape == (80, 1 + n // 256)


# --------------------------------------------------------------------------------------------------
# Numerical agreement with the reference
# --------------------------------------------------------------------------------------------------


def test_mel_filters_match_librosa_and_torchaudio() -> None:
    hifi = MelSpectrogram(MelConfig.hifigan()).mel_basis.numpy()
    ref = librosa.filters.mel(
        sr=SR, n_fft=1024, n_mels=80, fmin=0.0, fmax=8000.0, htk=False, norm="slaney"
    )
    np.testing.assert_allclose(hifi, ref, rtol=0, atol=1e-7)
    dw = MelSpectrogram(MelConfig.diffwave()).mel_basis.numpy()
    ref = librosa.filters.mel(
        sr=SR, n_fft=1024, n_mels=80, fmin=20.0, fmax=11025.0, htk=True, norm=None
    )
    np.testing.assert_allclose(dw, ref, rtol=0, atol=1e-7)
    # lmnt-com/diffwave used torchaudio's filter bank: same triangles.
    np.testing.assert_allclose(dw, _torchaudio_htk_fbank(SR, 1024, 80, 20.0, 11025.0), atol=1e-6)
    assert dw.shape == hifi.shape == (80, 513)


@pytest.mark.parametrize("preset", ["hifigan", "diffwave"])
@pytest.mark.parametrize(
    "sizes",
    [
        {"n_mels": 128, "n_fft": 2048, "win_length": 2048},
        {"sample_rate": 16000, "n_fft": 512, "win_length": 512, "hop_length": 128, "fmin": 55.0, "fmax": 7600.0},
        {"sample_rate": 44100, "n_mels": 100, "fmin": 1000.0, "fmax": 1500.0},  # only the log part of Slaney's scale
    ],
)
def test_mel_filter_port_is_librosas_bit_for_bit(preset: str, sizes: dict) -> None:
    """mel_basis_np ports librosa.filters.mel (importing it costs ~1 s of start-up): identical values."""
    cfg = dataclasses.replace(getattr(MelConfig, preset)(), **sizes)
    ref = librosa.filters.mel(
        sr=cfg.sample_rate, n_fft=cfg.n_fft, n_mels=cfg.n_mels, fmin=cfg.fmin, fmax=cfg.fmax,
        htk=cfg.mel_scale == "htk", norm=cfg.mel_norm,
    )
    ours = mel_basis_np(cfg)
    assert ours.dtype == ref.dtype == np.float32
    np.testing.assert_array_equal(ours, ref)


@pytest.mark.parametrize("preset", PRESETS)
def test_stft_magnitude_matches_librosa(preset: str) -> None:
    y = _test_audio(5000)
    module = MelSpectrogram(MelConfig.from_preset(preset))
    mag = module.magnitude(torch.from_numpy(y)).numpy()  # float64
    spec = _reference_stft(y, preset)
    ref = np.abs(spec)
    if preset == "hifigan":
        ref = np.sqrt(ref**2 + 1e-9)
    else:
        ref = ref / np.sqrt(np.sum(librosa.filters.get_window("hann", 1024, fftbins=True) ** 2))
    assert mag.shape == ref.shape
    np.testing.assert_allclose(mag, ref, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("preset", PRESETS)
def test_pipeline_matches_reference_float64(preset: str) -> None:
    y = _test_audio(SR + 123, seed=1)
    mel = MelSpectrogram(MelConfig.from_preset(preset))(torch.from_numpy(y))
    assert mel.dtype == torch.float64
    ref = _reference_mel(y, preset)
    assert mel.shape == ref.shape
    np.testing.assert_allclose(mel.numpy(), ref, rtol=0, atol=1e-5)
    # The silent stretch reaches the clamp floor, so the floors are exercised too.
    assert ref.min() == pytest.approx(math.log(1e-5) if preset == "hifigan" else 0.0, abs=1e-9)


@pytest.mark.parametrize("preset", PRESETS)
def test_pipeline_matches_reference_float32(preset: str) -> None:
    y = _test_audio(SR, seed=2)
    mel = MelSpectrogram(MelConfig.from_preset(preset))(torch.from_numpy(y).float())
    assert mel.dtype == torch.float32
    ref = _reference_mel(y, preset)
    err = np.abs(mel.numpy().astype(np.float64) - ref)
    # float32 round-off is amplified by the log where the energy is tiny (measured max: 8e-6, 2e-6).
    assert np.median(err) < 1e-6
    assert err.max() < (2e-4 if preset == "hifigan" else 2e-5)


@pytest.mark.parametrize("preset", PRESETS)
def test_batched_equals_per_item(preset: str) -> None:
    module = MelSpectrogram(MelConfig.from_preset(preset))
    batch = torch.from_numpy(np.stack([_test_audio(6000, seed=s) for s in range(3)])).float()
    mels = module(batch)
    assert mels.shape == (3, 80, module.config.frames_for(6000))
    for i in range(3):
        torch.testing.assert_close(mels[i], module(batch[i]), rtol=1e-5, atol=1e-5)


def test_forward_input_errors() -> None:
    module = MelSpectrogram(MelConfig.hifigan())
    with pytest.raises(ValueError, match=r"shape \[T\] or \[B, T\]"):
        module(torch.zeros(1, 2, 4096))
    with pytest.raises(ValueError, match="empty"):
        module(torch.zeros(0, 4096))
    with pytest.raises(ValueError, match="fewer than the 385"):
        module(torch.zeros(300))
    with pytest.raises(ValueError, match="fewer than the 513"):
        MelSpectrogram(MelConfig.diffwave())(torch.zeros(512))
    bad = torch.zeros(4096)
    bad[100] = float("nan")
    with pytest.raises(ValueError, match="NaN or Inf"):
        module(bad)
    bad[100] = float("inf")
    with pytest.raises(ValueError, match="NaN or Inf"):
        module(bad)
    with pytest.raises(ValueError, match="floating-point"):
        module(torch.zeros(4096, dtype=torch.int16))


# --------------------------------------------------------------------------------------------------
# validate_mel
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_mels() -> dict[str, torch.Tensor]:
    y = torch.from_numpy(_test_audio(SR, seed=3)).float()
    return {name: MelSpectrogram(MelConfig.from_preset(name))(y) for name in PRESETS}


@pytest.mark.parametrize("preset", PRESETS)
def test_validate_mel_accepts_own_convention(
    preset: str, real_mels: dict[str, torch.Tensor]
) -> None:
    cfg = MelConfig.from_preset(preset)
    mel = real_mels[preset]  # [80, T]
    out = validate_mel(mel.double().numpy(), cfg)
    assert out.dtype == torch.float32 and out.shape == (1, 80, mel.shape[1])
    torch.testing.assert_close(out[0], mel)
    batch = validate_mel(torch.stack([mel, mel]), cfg)
    assert batch.shape == (2, 80, mel.shape[1])


def test_validate_mel_transposes_time_major(real_mels: dict[str, torch.Tensor]) -> None:
    mel = real_mels["hifigan"]  # [80, T]
    out = validate_mel(mel.T.contiguous(), MelConfig.hifigan())  # [T, 80]
    torch.testing.assert_close(out[0], mel)
    square = torch.full((80, 80), -5.0)  # ambiguous: kept as [n_mels, T]
    torch.testing.assert_close(validate_mel(square, MelConfig.hifigan())[0], square)


def test_validate_mel_shape_errors() -> None:
    cfg = MelConfig.hifigan()
    with pytest.raises(ValueError, match=r"shape \[n_mels, T\] or \[B, n_mels, T\]"):
        validate_mel(torch.zeros(80), cfg)
    with pytest.raises(ValueError, match=r"shape \[n_mels, T\] or \[B, n_mels, T\]"):
        validate_mel(torch.zeros(1, 1, 80, 10), cfg)
    with pytest.raises(ValueError, match="has 64 mel bins but the 'hifigan' convention expects 80"):
        validate_mel(torch.full((64, 100), -5.0), cfg)
    with pytest.raises(ValueError, match=r"looks like \[B, T, n_mels\]"):
        validate_mel(torch.full((2, 100, 80), -5.0), cfg)
    with pytest.raises(ValueError, match="empty"):
        validate_mel(torch.zeros(80, 0), cfg)
    with pytest.raises(ValueError, match="empty"):
        validate_mel(np.zeros((0, 80, 10), dtype=np.float32), cfg)
    with pytest.raises(ValueError, match="22050 Hz"):
        validate_mel(torch.full((80, 10), -5.0), cfg, sample_rate=24000)


def test_validate_mel_non_finite() -> None:
    mel = torch.full((80, 10), -5.0)
    mel[3, 4] = float("nan")
    with pytest.raises(ValueError, match="NaN or Inf"):
        validate_mel(mel, MelConfig.hifigan(), name="input mel")
    mel[3, 4] = float("-inf")
    with pytest.raises(ValueError, match="^input mel contains NaN or Inf"):
        validate_mel(mel, MelConfig.hifigan(), name="input mel")


def test_validate_mel_out_of_range() -> None:
    hifi, dw = MelConfig.hifigan(), MelConfig.diffwave()
    with pytest.raises(ValueError, match=r"outside the range \[-11.5, 3.23\] of the 'hifigan'"):
        validate_mel(torch.linspace(-30.0, 0.0, 800).reshape(80, 10), hifi)
    with pytest.raises(ValueError, match=r"outside the range \[-11.5, 3.23\] of the 'hifigan'"):
        validate_mel(torch.linspace(-5.0, 9.0, 800).reshape(80, 10), hifi)
    with pytest.raises(ValueError, match=r"outside the range \[0, 1\] of the 'diffwave'"):
        validate_mel(torch.linspace(0.5, 3.0, 800).reshape(80, 10), dw)
    # Small overshoot of an acoustic model's prediction is tolerated (5 % of the span).
    validate_mel(torch.linspace(-12.0, 3.5, 800).reshape(80, 10), hifi)
    validate_mel(torch.linspace(-0.03, 1.03, 800).reshape(80, 10), dw)


def test_validate_mel_names_both_conventions(real_mels: dict[str, torch.Tensor]) -> None:
    # diffwave-style mel handed to a hifigan model: in [0, 1], though inside hifigan's range.
    with pytest.raises(ValueError) as info:
        validate_mel(real_mels["diffwave"], MelConfig.hifigan())
    msg = str(info.value)
    assert msg.startswith("mel values lie in [0, 0.")
    assert "looks like the 'diffwave' convention (20*log10 magnitude" in msg
    assert "but this model expects 'hifigan' (natural-log magnitude, range [-11.5, ~3.2])" in msg
    # hifigan-style ln mel handed to a diffwave model.
    with pytest.raises(ValueError) as info:
        validate_mel(real_mels["hifigan"], MelConfig.diffwave())
    msg = str(info.value)
    assert "looks like the 'hifigan' convention (natural-log magnitude" in msg
    assert "but this model expects 'diffwave'" in msg
    assert "\n" not in msg


@pytest.mark.parametrize("preset", ["hifigan", "diffwave"])
def test_decompress_inverts_compression_above_the_floor(preset):
    from wavediff.audio import decompress_mel

    cfg = MelConfig.from_preset(preset)
    lin = torch.rand(80, 50, dtype=torch.float64) * 2 + 1e-3  # above clamp floor, below diffwave's 0 dB cap
    mel = MelSpectrogram(cfg).compress(lin)
    torch.testing.assert_close(decompress_mel(mel, cfg), lin)


# --------------------------------------------------------------------------------------------------
# Griffin-Lim: the inverse of the mel transform
# --------------------------------------------------------------------------------------------------


def _harmonic(num_samples: int, sample_rate: int, f0: float = 140.0) -> torch.Tensor:
    """A voiced-speech-like test signal: a 140 Hz pulse-ish harmonic series under a syllable envelope."""
    t = torch.arange(num_samples, dtype=torch.float64) / sample_rate
    wav = sum(torch.sin(2 * math.pi * k * f0 * t) / k for k in range(1, 25))
    envelope = 0.5 + 0.5 * torch.sin(2 * math.pi * 3.0 * t) ** 2
    return (0.1 * wav * envelope).float()


@pytest.mark.parametrize("preset", PRESETS)
def test_griffin_lim_reproduces_the_mel_it_was_given(preset: str) -> None:
    cfg = MelConfig.from_preset(preset)
    extract = MelSpectrogram(cfg)
    wav = _harmonic(cfg.hop_length * 120, cfg.sample_rate)
    mel = extract(wav)
    g = torch.Generator().manual_seed(0)
    out = griffin_lim(mel, cfg, n_iter=32, generator=g)
    assert out.shape == (mel.shape[-1] * cfg.hop_length,) and out.dtype == torch.float32
    rebuilt = extract(out)
    n = min(mel.shape[-1], rebuilt.shape[-1])
    inner = slice(2, n - 2)  # the two edge frames see reflect padding of different signals
    error = (rebuilt[:, inner] - mel[:, inner]).abs().mean() / (mel.amax() - mel.amin())
    # random phases (no iterations) give a mel far off; 32 iterations bring it close (what is left is
    # mostly in near-silent bins, where the pseudo-inverse's clamped magnitudes are log-compressed)
    raw = extract(griffin_lim(mel, cfg, n_iter=0, generator=torch.Generator().manual_seed(0)))
    raw_error = (raw[:, inner] - mel[:, inner]).abs().mean() / (mel.amax() - mel.amin())
    assert error < 0.035 and error < 0.6 * raw_error
    # frames line up with the input's: shifting the output by half a hop makes the mel worse
    shifted = extract(torch.roll(out, cfg.hop_length // 2))
    assert (shifted[:, inner] - mel[:, inner]).abs().mean() / (mel.amax() - mel.amin()) > error


def test_griffin_lim_batches_and_seeds() -> None:
    cfg = MelConfig.hifigan()
    mel = MelSpectrogram(cfg)(_harmonic(cfg.hop_length * 40, cfg.sample_rate))
    one = griffin_lim(mel, cfg, n_iter=4, generator=torch.Generator().manual_seed(1))
    again = griffin_lim(mel, cfg, n_iter=4, generator=torch.Generator().manual_seed(1))
    batch = griffin_lim(torch.stack([mel, mel]), cfg, n_iter=4, generator=torch.Generator().manual_seed(1))
    assert torch.equal(one, again)
    assert batch.shape == (2, one.shape[0]) and torch.allclose(batch[0], one, atol=1e-5)


def test_griffin_lim_rejects_bad_input() -> None:
    cfg = MelConfig.hifigan()
    with pytest.raises(ValueError, match=r"mel must be \[80, frames\]"):
        griffin_lim(torch.zeros(40, 10), cfg)
    with pytest.raises(ValueError, match="n_iter"):
        griffin_lim(torch.zeros(80, 10), cfg, n_iter=-1)
    with pytest.raises(ValueError, match="momentum"):
        griffin_lim(torch.zeros(80, 10), cfg, momentum=1.0)


# --------------------------------------------------------------------------------------------------
# match_mel: a waveform's spectrum rescaled until its mel is a given one
# --------------------------------------------------------------------------------------------------


def _relative_mel_error(extract, wav, mel, inner) -> float:
    got = extract(wav)
    return float((got[:, inner] - mel[:, inner]).abs().mean() / (mel.amax() - mel.amin()))


@pytest.mark.parametrize("preset", PRESETS)
def test_match_mel_gives_noise_the_target_mel(preset: str) -> None:
    cfg = MelConfig.from_preset(preset)
    extract = MelSpectrogram(cfg)
    mel = extract(_harmonic(cfg.hop_length * 120, cfg.sample_rate))
    noise = 0.05 * torch.randn(mel.shape[-1] * cfg.hop_length, generator=torch.Generator().manual_seed(0))
    inner = slice(2, mel.shape[-1] - 2)
    errors = [_relative_mel_error(extract, match_mel(noise, mel, cfg, n_iter=n), mel, inner) for n in (0, 1, 4, 16)]
    # each round brings the mel closer: white noise's mel is far from a harmonic series', 16 rounds
    # leave a few per cent of the mel's range (the bins within a band are not independent of each
    # other after overlap-add, so it converges rather than lands)
    assert errors[0] > 0.15 and errors[3] < 0.03 and errors[0] > errors[1] > errors[2] > errors[3]
    out = match_mel(noise, mel, cfg, n_iter=4)
    assert out.shape == noise.shape and out.dtype == torch.float32
    assert torch.equal(match_mel(noise, mel, cfg, n_iter=0), noise)


@pytest.mark.parametrize("preset", PRESETS)
def test_match_mel_restores_gain_and_leaves_a_matching_waveform_alone(preset: str) -> None:
    """Closed forms: a waveform whose mel is the target is a fixed point, and one that is only too
    quiet by a constant factor is scaled back by it in one round (the ratio is the same in every
    band), up to the edge frames, which see reflect padding."""
    cfg = MelConfig.from_preset(preset)
    extract = MelSpectrogram(cfg)
    wav = _harmonic(cfg.hop_length * 80, cfg.sample_rate)
    mel = extract(wav)
    inner = slice(4 * cfg.hop_length, -4 * cfg.hop_length)
    same = match_mel(wav, mel, cfg, n_iter=3)
    assert torch.allclose(same[inner], wav[inner], atol=1e-4 * wav.abs().max())
    louder = match_mel(0.25 * wav, mel, cfg, n_iter=1)
    assert torch.allclose(louder[inner], wav[inner], atol=1e-3 * wav.abs().max())


def test_match_mel_silences_what_the_mel_calls_silent() -> None:
    cfg = MelConfig.hifigan()
    extract = MelSpectrogram(cfg)
    wav = _harmonic(cfg.hop_length * 80, cfg.sample_rate)
    quiet = slice(30 * cfg.hop_length, 50 * cfg.hop_length)
    target_wav = wav.clone()
    target_wav[quiet] = 0.0
    mel = extract(target_wav)  # frames 33..46 sit at the convention's floor
    out = match_mel(wav, mel, cfg, n_iter=8)
    core = slice(34 * cfg.hop_length, 46 * cfg.hop_length)
    # the harmonic series inside the pause drops by more than 40 dB; the rest keeps its level
    assert out[core].pow(2).mean() < 1e-4 * wav[core].pow(2).mean()
    keep = slice(5 * cfg.hop_length, 25 * cfg.hop_length)
    assert torch.allclose(out[keep].pow(2).mean(), wav[keep].pow(2).mean(), rtol=0.02)


def test_match_mel_chunks_batches_and_errors() -> None:
    cfg = MelConfig.hifigan()
    extract = MelSpectrogram(cfg)
    g = torch.Generator().manual_seed(3)
    wav = 0.1 * torch.randn(2, 200 * cfg.hop_length, generator=g)
    mel = extract(_harmonic(200 * cfg.hop_length, cfg.sample_rate)).expand(2, -1, -1)
    whole = match_mel(wav, mel, cfg, n_iter=4, chunk_frames=None)
    # chunks of 30 frames with enough context each side: the same samples (each frame's FFT is the
    # same computation whatever the chunk)
    assert torch.allclose(match_mel(wav, mel, cfg, n_iter=4, chunk_frames=30), whole, atol=1e-6)
    assert torch.allclose(match_mel(wav[1], mel[1], cfg, n_iter=4), whole[1], atol=1e-6)
    # a mel shorter than the waveform: the frames it lacks are left alone
    short = match_mel(wav[0], mel[0, :, :100], cfg, n_iter=2)
    tail = slice(110 * cfg.hop_length, None)
    assert torch.allclose(short[tail], wav[0, tail], atol=1e-6)
    with pytest.raises(ValueError, match="n_iter"):
        match_mel(wav[0], mel[0], cfg, n_iter=-1)
    with pytest.raises(ValueError, match="chunk_frames"):
        match_mel(wav[0], mel[0], cfg, chunk_frames=0)
    with pytest.raises(ValueError, match=r"match_mel needs wav \[L\] with mel \[80, F\]"):
        match_mel(wav[0], mel[0, :40], cfg)
    with pytest.raises(ValueError, match="match_mel needs at least"):
        match_mel(wav[0, :300], mel[0, :, :2], cfg)
