"""Audio I/O: round trips, channel mixing, resampling, errors, atomic writes, validation."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from wavediff.audio import load_audio, save_audio, validate_waveform


def _sine(freq: float, sr: int, seconds: float, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _peak_hz(wav: np.ndarray, sr: int) -> float:
    spectrum = np.abs(np.fft.rfft(wav * np.hanning(len(wav))))
    return float(np.fft.rfftfreq(len(wav), 1.0 / sr)[np.argmax(spectrum)])


# --------------------------------------------------------------------------------------------------
# Round trips
# --------------------------------------------------------------------------------------------------


def test_round_trip_pcm16(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    wav = rng.uniform(-0.9, 0.9, 22050).astype(np.float32)
    path = tmp_path / "a.wav"
    save_audio(path, torch.from_numpy(wav), 22050)
    out, sr = load_audio(path)
    assert sr == 22050 and out.dtype == np.float32 and out.shape == wav.shape
    np.testing.assert_allclose(out, wav, rtol=0, atol=1.0 / 32768 + 1e-7)  # 16-bit quantisation
    assert sf.info(str(path)).subtype == "PCM_16"
    assert [p.name for p in tmp_path.iterdir()] == ["a.wav"]  # no temp file left behind


def test_round_trip_flac_and_float_subtype(tmp_path: Path) -> None:
    wav = _sine(300.0, 16000, 0.25)
    save_audio(tmp_path / "b.flac", wav[None, :], 16000)  # [1, T] accepted
    out, sr = load_audio(tmp_path / "b.flac")
    assert sr == 16000
    np.testing.assert_allclose(out, wav, atol=1.0 / 32768 + 1e-7)
    save_audio(tmp_path / "c.wav", wav, 16000, subtype="FLOAT")
    out, _ = load_audio(tmp_path / "c.wav")
    np.testing.assert_array_equal(out, wav)


def test_save_clips_and_creates_parents(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "clip.wav"
    save_audio(path, np.array([2.0, -3.0, 0.5] * 100, dtype=np.float64), 8000, subtype="FLOAT")
    out, _ = load_audio(path)
    np.testing.assert_array_equal(out[:3], np.array([1.0, -1.0, 0.5], dtype=np.float32))


def test_stereo_to_mono_and_multichannel(tmp_path: Path) -> None:
    left, right = _sine(440.0, 16000, 0.5, 0.6), _sine(440.0, 16000, 0.5, 0.2)
    right = -right
    path = tmp_path / "stereo.wav"
    sf.write(str(path), np.stack([left, right], axis=1), 16000, subtype="FLOAT")
    mono, sr = load_audio(path)
    assert sr == 16000 and mono.shape == (8000,)
    np.testing.assert_allclose(mono, (left + right) / 2, atol=1e-7)
    both, _ = load_audio(path, mono=False)
    assert both.shape == (2, 8000) and both.dtype == np.float32
    np.testing.assert_allclose(both[1], right, atol=1e-7)


def test_resample_keeps_frequency_and_length(tmp_path: Path) -> None:
    path = tmp_path / "s16k.wav"
    sf.write(str(path), _sine(440.0, 16000, 1.0), 16000, subtype="FLOAT")
    out, sr = load_audio(path, sample_rate=22050)
    assert sr == 22050 and out.shape == (22050,) and out.dtype == np.float32
    assert abs(_peak_hz(out, sr) - 440.0) <= 1.0
    assert np.max(np.abs(out[2000:-2000])) == pytest.approx(0.5, abs=0.01)
    same, sr_same = load_audio(path, sample_rate=16000)  # no resampling when rates agree
    assert sr_same == 16000 and same.shape == (16000,)


# --------------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.wav"
    expected = r"cannot read audio file '.*nope\.wav': the file does not exist"
    with pytest.raises(ValueError, match=expected):
        load_audio(missing)


def test_text_file_named_wav(tmp_path: Path) -> None:
    path = tmp_path / "fake.wav"
    path.write_text("this is not audio\n")
    with pytest.raises(ValueError, match=r"cannot read audio file '.*fake\.wav': \w") as info:
        load_audio(path)
    msg = str(info.value)
    assert "\n" not in msg and msg.count("fake.wav") == 1 and not msg.endswith("..")


def test_empty_wav_and_zero_byte_file(tmp_path: Path) -> None:
    empty = tmp_path / "empty.wav"
    sf.write(str(empty), np.zeros(0, dtype=np.float32), 22050)
    with pytest.raises(ValueError, match=r"empty\.wav': it contains no audio samples"):
        load_audio(empty)
    zero = tmp_path / "zero.wav"
    zero.write_bytes(b"")
    with pytest.raises(ValueError, match=r"cannot read audio file '.*zero\.wav': "):
        load_audio(zero)


def test_directory_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="is a directory"):
        load_audio(tmp_path)


def test_nan_save_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "out" / "bad.wav"
    wav = torch.zeros(1000)
    wav[10] = float("nan")
    with pytest.raises(ValueError, match="NaN or Inf"):
        save_audio(path, wav, 22050)
    assert not path.exists()
    assert not any(tmp_path.rglob("*.tmp"))


def test_nan_save_keeps_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "keep.wav"
    good = _sine(200.0, 8000, 0.1)
    save_audio(path, good, 8000)
    before = path.read_bytes()
    with pytest.raises(ValueError):
        save_audio(path, np.full(100, np.inf, dtype=np.float32), 8000)
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["keep.wav"]


def test_save_argument_errors(tmp_path: Path) -> None:
    wav = np.zeros(100, dtype=np.float32)
    with pytest.raises(ValueError, match=r"\[T\] or \[1, T\]"):
        save_audio(tmp_path / "x.wav", np.zeros((2, 100), dtype=np.float32), 8000)
    with pytest.raises(ValueError, match="unsupported extension '.mp3'"):
        save_audio(tmp_path / "x.mp3", wav, 8000)
    with pytest.raises(ValueError, match="sample_rate"):
        save_audio(tmp_path / "x.wav", wav, 0)
    with pytest.raises(ValueError, match="subtype 'VORBIS' is not valid for WAV"):
        save_audio(tmp_path / "x.wav", wav, 8000, subtype="VORBIS")
    with pytest.raises(ValueError, match="empty"):
        save_audio(tmp_path / "x.wav", np.zeros(0, dtype=np.float32), 8000)
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------------------------------
# validate_waveform
# --------------------------------------------------------------------------------------------------


def test_validate_waveform() -> None:
    out = validate_waveform(np.arange(10, dtype=np.float64))
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32 and out.shape == (10,)
    assert validate_waveform(torch.zeros(2, 5, dtype=torch.float64)).dtype == torch.float32
    with pytest.raises(ValueError, match=r"^speech must have shape \[T\] or \[C, T\]"):
        validate_waveform(torch.zeros(1, 1, 5), name="speech")
    with pytest.raises(ValueError, match="empty"):
        validate_waveform(torch.zeros(0))
    with pytest.raises(ValueError, match="NaN or Inf"):
        validate_waveform(torch.tensor([0.0, float("inf")]))
    with pytest.raises(ValueError, match="torch.Tensor or numpy array"):
        validate_waveform([0.0, 1.0])  # type: ignore[arg-type]
