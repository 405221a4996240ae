"""Objective metrics (wavediff.eval.metrics / asr / report) and `wavediff eval --ref/--gen`.

Each metric is checked on known cases: identical signals give its best value, and added white noise
makes it worse at every step of two noise levels. Real speech (for the recogniser and DNSMOS) comes
from the LibriSpeech clips in ../shared beside the checkout; those tests skip when it is absent."""
from __future__ import annotations

import json
import math
import shutil
import sys
from pathlib import Path

import librosa
import numpy as np
import pytest
import soundfile as sf
import torch

from wavediff.data.synthetic import speech_like
from wavediff.eval import metrics as M
from wavediff.eval.asr import Recognizer, corpus_wer, normalize_words, transcribe, wer, word_errors
from wavediff.eval.report import evaluate_folders, parse_metrics, read_texts, read_timings, write_report

SR = 16000
LIBRISPEECH = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "librispeech_63"
needs_speech = pytest.mark.skipif(
    not LIBRISPEECH.is_dir(), reason=f"real speech clips not found at {LIBRISPEECH} (shared/ beside the checkout)"
)


def _with_noise(x: np.ndarray, snr_db: float, seed: int = 0) -> np.ndarray:
    """x plus white Gaussian noise at the given signal-to-noise ratio (dB, over the whole signal)."""
    noise = np.random.default_rng(seed).standard_normal(len(x))
    noise *= math.sqrt(np.mean(x.astype(np.float64) ** 2) / 10 ** (snr_db / 10) / np.mean(noise**2))
    return (x + noise).astype(np.float32)


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    """2.5 s of the synthetic voiced "speech" at 16 kHz (harmonics of a gliding f0, syllable envelope)."""
    return speech_like(int(2.5 * SR), SR, np.random.default_rng(7))


@pytest.fixture(scope="module")
def real_clip() -> tuple[np.ndarray, int]:
    """The shortest-but-one LibriSpeech clip (≈ 3.6 s) "…stitch in time saves…"."""
    if not LIBRISPEECH.is_dir():
        pytest.skip(f"real speech clips not found at {LIBRISPEECH}")
    x, sr = sf.read(LIBRISPEECH / "118-121721-0000.flac", dtype="float32")
    return x, sr


# ---------------------------------------------------------------------------------- metrics
def test_identical_signals_score_best(speech: np.ndarray) -> None:
    assert M.mrstft(speech, speech) == pytest.approx(0.0, abs=1e-6)
    assert M.mcd(speech, speech, SR) == pytest.approx(0.0, abs=1e-9)
    assert M.pesq_wb(speech, speech, SR) > 4.5  # the P.862.2 maximum is 4.64
    assert M.stoi(speech, speech, SR) == pytest.approx(1.0, abs=1e-6)
    f0 = M.f0_rmse_and_vuv(speech, speech, SR)
    assert f0["f0_rmse_cents"] == 0.0 and f0["f0_rmse_hz"] == 0.0 and f0["vuv_error"] == 0.0
    assert f0["voiced_frames"] > 50  # the synthetic voice is voiced most of the time
    # torch input, [1, T] and another sample rate work too
    t = torch.from_numpy(speech)[None]
    assert M.mcd(t, t, 22050) == pytest.approx(0.0, abs=1e-9)


def test_noise_makes_every_metric_worse(speech: np.ndarray) -> None:
    mild, heavy = _with_noise(speech, 20.0), _with_noise(speech, 5.0)
    f0 = {id(g): M.f0_rmse_and_vuv(speech, g, SR) for g in (speech, mild, heavy)}  # pYIN once per signal
    lower_better = {
        "mrstft": lambda g: M.mrstft(speech, g),
        "mcd": lambda g: M.mcd(speech, g, SR),
        "f0_rmse_cents": lambda g: f0[id(g)]["f0_rmse_cents"],
        "vuv_error": lambda g: f0[id(g)]["vuv_error"],
    }
    higher_better = {"pesq": lambda g: M.pesq_wb(speech, g, SR), "stoi": lambda g: M.stoi(speech, g, SR)}
    for name, fn in lower_better.items():
        best, a, b = fn(speech), fn(mild), fn(heavy)
        assert best < a < b, (name, best, a, b)
    for name, fn in higher_better.items():
        best, a, b = fn(speech), fn(mild), fn(heavy)
        assert best > a > b, (name, best, a, b)


def test_dtw_aligns_a_time_stretched_copy(speech: np.ndarray) -> None:
    rng = np.random.default_rng(7)
    syllables = np.concatenate([speech_like(int(0.35 * SR), SR, rng) for _ in range(7)])  # a new pitch every 0.35 s
    slower = librosa.effects.time_stretch(syllables, rate=0.85)  # 18 % longer, same pitches
    framewise = M.mcd(syllables, slower, SR, dtw=False)
    aligned = M.mcd(syllables, slower, SR, dtw=True)
    assert aligned < 0.7 * framewise
    assert M.mcd(syllables, slower, SR) == pytest.approx(aligned)  # auto: lengths differ → DTW
    f0_aligned = M.f0_rmse_and_vuv(syllables, slower, SR)
    f0_framewise = M.f0_rmse_and_vuv(syllables, slower, SR, dtw=False)
    assert f0_aligned["f0_rmse_cents"] < 0.25 * f0_framewise["f0_rmse_cents"]
    assert f0_aligned["vuv_error"] < f0_framewise["vuv_error"]
    # the mel-cepstrum is [frames, order + 1] with the documented frame rate
    n_fft, hop = M.analysis_frames(SR)
    assert (n_fft, hop) == (1024, 256) and M.analysis_frames(44100) == (2048, 512)
    assert M.mel_cepstrum(speech, SR, order=24).shape == (1 + len(speech) // hop, 25)


def test_bad_input_is_a_value_error(speech: np.ndarray) -> None:
    with pytest.raises(ValueError, match="empty"):
        M.mcd(np.zeros(0, np.float32), speech, SR)
    with pytest.raises(ValueError, match="NaN"):
        M.stoi(speech, np.full_like(speech, np.nan), SR)
    with pytest.raises(ValueError, match="mono"):
        M.mrstft(np.stack([speech, speech]), speech)
    with pytest.raises(ValueError, match="too short"):
        M.pesq_wb(speech[:1000], speech[:1000], SR)
    with pytest.raises(ValueError, match="sample rate"):
        M.mcd(speech, speech, 0)
    with pytest.raises(ValueError, match="No utterances"):
        M.pesq_wb(np.zeros(SR, np.float32), speech[:SR], SR)
    with pytest.raises(ValueError, match="non-silent"):  # 0.5 s, mostly silent: too few STOI frames
        quiet = np.zeros(SR // 2, np.float32)
        quiet[:100] = 0.1
        M.stoi(quiet, quiet, SR)


def test_missing_optional_package_names_the_extra(monkeypatch: pytest.MonkeyPatch, speech: np.ndarray) -> None:
    monkeypatch.setitem(sys.modules, "pesq", None)  # makes `import pesq` fail
    with pytest.raises(ImportError, match=r"pip install 'wavediff\[eval\]'"):
        M.pesq_wb(speech, speech, SR)


def test_real_time_factor() -> None:
    assert M.real_time_factor(1.5, 3.0) == 0.5
    with pytest.raises(ValueError, match="audio duration"):
        M.real_time_factor(1.0, 0.0)
    with pytest.raises(ValueError, match="compute time"):
        M.real_time_factor(float("nan"), 1.0)
    with M.Stopwatch() as sw:
        sum(range(10000))
    assert sw.seconds > 0 and sw.rtf(100.0) == sw.seconds / 100.0


# ---------------------------------------------------------------------------------- WER
def test_wer_normalisation_and_counts() -> None:
    assert normalize_words("Dr. Smith paid $5, didn't he?") == ["doctor", "smith", "paid", "five", "dollars", "didn't", "he"]
    assert wer("five cats", "5 cats.") == 0.0  # numbers spelled out
    assert wer("HELLO world", "Hello, world!") == 0.0  # case and punctuation
    assert wer("a well known [noise] fact", "A well-known fact") == 0.0  # hyphens, recogniser markup
    assert wer("the cat sat on mat", "the cat sat on the mat") == pytest.approx(1 / 6)  # one deletion
    assert word_errors("a b c", "x y") == (2, 0, 1, 2)  # 2 substitutions + 1 insertion
    assert wer("a b c", "x y") == 1.5  # can exceed 1
    assert wer("", "one two three") == 1.0  # all deleted
    assert corpus_wer([("a b", "a b c d"), ("x", "x")]) == pytest.approx(2 / 5)  # total errors / total words
    with pytest.raises(ValueError, match="no words"):
        wer("anything", "...")


@needs_speech
def test_recogniser_hears_real_speech(real_clip: tuple[np.ndarray, int]) -> None:
    x, sr = real_clip
    recognizer = Recognizer()
    text = recognizer(x, sr)
    words = text.split()
    assert isinstance(text, str) and len(words) >= 3 and text == text.lower()
    assert {"stitch", "time", "saves"} & set(words), text  # some of the spoken words, not an exact transcript
    # resampled input (22.05 kHz) is handled; the one-shot helper gives the same words
    x22 = librosa.resample(x, orig_sr=sr, target_sr=22050)
    assert wer(transcribe(x22, 22050), text) < 0.5


@needs_speech
def test_dnsmos_prefers_clean_speech(real_clip: tuple[np.ndarray, int]) -> None:
    x, sr = real_clip
    x = np.tile(x, 3)[: int(9.2 * sr)]  # one 9.01 s DNSMOS window: one model run per call
    model = M.DnsMos()
    clean, noisy = model(x, sr), M.dnsmos(_with_noise(x, 0.0), sr, model)
    assert set(clean) == {"p808", "sig", "bak", "ovrl"}
    assert all(1.0 <= v <= 5.0 for v in clean.values())
    assert clean["p808"] > noisy["p808"] + 0.5 and clean["bak"] > noisy["bak"]


# ---------------------------------------------------------------------------------- folders
@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """ref/ (LJSpeech layout with transcripts) and gen/: a noisy copy, a TTS-like longer take,
    and one file only on each side."""
    root = tmp_path_factory.mktemp("eval")
    ref, gen = root / "ref", root / "gen"
    (ref / "wavs").mkdir(parents=True)
    gen.mkdir()
    rng = np.random.default_rng(3)
    x1, x2, x3 = (speech_like(int(s * SR), SR, rng) for s in (1.5, 1.2, 1.0))
    sf.write(ref / "wavs" / "utt1.wav", x1, SR)
    sf.write(ref / "wavs" / "utt2.wav", x2, SR)
    sf.write(ref / "wavs" / "only_ref.wav", x3, SR)
    (ref / "metadata.csv").write_text("utt1|Hello world|hello world\nutt2|Five cats|five cats\nonly_ref|x|x\n")
    sf.write(gen / "utt1.wav", _with_noise(x1, 10.0), SR)
    sf.write(gen / "utt2.wav", librosa.effects.time_stretch(x2, rate=0.8), SR)  # 25 % longer: not sample-aligned
    sf.write(gen / "only_gen.wav", x3, SR)
    return ref, gen


def test_evaluate_folders_pairs_by_name_and_writes_reports(folders: tuple[Path, Path], tmp_path: Path) -> None:
    ref, gen = folders
    seen: list[tuple[int, int, str]] = []
    res = evaluate_folders(ref, gen, metrics="mrstft,mcd,pesq,stoi,f0", progress=lambda *a: seen.append(a))
    assert res["count"] == 2 and seen[-1][:2] == (2, 2)
    assert res["unmatched"] == {"ref_only": ["only_ref"], "gen_only": ["only_gen"]}
    utt1, utt2 = res["utterances"]["utt1"], res["utterances"]["utt2"]
    assert {"mrstft", "mcd", "pesq", "stoi", "f0_rmse_cents", "vuv_error"} <= set(utt1)
    assert "pesq" not in utt2 and "mcd" in utt2  # lengths differ: sample-aligned metrics skipped, MCD by DTW
    assert set(res["errors"]["utt2"]) == {"mrstft", "pesq", "stoi"} and "lengths differ" in res["errors"]["utt2"]["pesq"]
    assert res["summary"]["mcd"]["n"] == 2 and res["summary"]["pesq"]["n"] == 1
    assert res["summary"]["mcd"]["mean"] == pytest.approx(np.mean([utt1["mcd"], utt2["mcd"]]))

    md = write_report(res, tmp_path / "r.json", tmp_path / "r.md")
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["systems"][0]["summary"]["stoi"]["mean"] == pytest.approx(utt1["stoi"])
    assert (tmp_path / "r.md").read_text() == md
    header = md.splitlines()[0]
    for title in ("MR-STFT", "MCD (dB)", "PESQ-WB", "STOI", "F0 RMSE (cents)", "V/UV error"):
        assert title in header
    assert "| gen | 2 |" in md and "only_ref" in md and "only_gen" in md
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes leave no temporaries


def test_reference_alone_and_texts(folders: tuple[Path, Path], tmp_path: Path) -> None:
    ref, gen = folders
    assert read_texts(ref) == {"utt1": "hello world", "utt2": "five cats", "only_ref": "x"}  # normalised column
    listing = tmp_path / "list.txt"
    listing.write_text("wavs/utt1.wav|Hello there\n# comment\nutt2|Five cats\n")
    assert read_texts(listing) == {"utt1": "Hello there", "utt2": "Five cats"}
    (tmp_path / "t.json").write_text('{"utt1": 0.75}')
    assert read_timings(tmp_path / "t.json") == {"utt1": 0.75}
    # the ceiling row: references scored alone with the non-intrusive WER; RTF from timings
    res = evaluate_folders(ref, None, metrics="wer", timings={"utt1": 0.75})
    assert res["system"] == "reference" and res["count"] == 3 and res["text_source"] == "reference metadata.csv"
    assert res["utterances"]["utt1"]["rtf"] == pytest.approx(0.75 / 1.5)
    assert all(isinstance(u["transcript"], str) and u["wer"] >= 0 for u in res["utterances"].values())
    both = write_report([res, evaluate_folders(ref, gen, metrics="mcd")])
    assert both.splitlines()[2].startswith("| reference | 3 |") and "WER" in both and "RTF" in both
    with pytest.raises(ValueError, match="compare two signals"):
        parse_metrics("mcd,dnsmos", intrusive=False)
    with pytest.raises(ValueError, match="unknown metric"):
        parse_metrics("mcd,bleu")
    with pytest.raises(ValueError, match="no file names in common"):
        evaluate_folders(gen, _lonely(tmp_path), metrics="mcd")


def _lonely(tmp_path: Path) -> Path:
    """A folder whose only file shares no name with the fixtures."""
    d = tmp_path / "lonely"
    d.mkdir()
    sf.write(d / "nobody.wav", np.zeros(SR, np.float32), SR)
    return d


def test_cli_eval_writes_json_and_markdown(folders: tuple[Path, Path], tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    from wavediff.cli import main

    ref, gen = folders
    out_json, out_md = tmp_path / "x.json", tmp_path / "x.md"
    rc = main(["eval", "--ref", str(ref), "--gen", str(gen), "--metrics", "mcd,stoi",
               "--out-json", str(out_json), "--out-md", str(out_md)])
    assert rc == 0
    assert json.loads(out_json.read_text())["systems"][0]["system"] == "gen"
    assert "MCD (dB)" in out_md.read_text() and "MCD (dB)" in capsys.readouterr().out
    # --gen repeated adds rows (it used to keep only the last folder, silently)
    gen2 = tmp_path / "gen2"
    shutil.copytree(gen, gen2)
    assert main(["eval", "--ref", str(ref), "--gen", str(gen), "--gen", str(gen2), "--metrics", "mcd",
                 "--out-json", str(out_json)]) == 0
    assert [s["system"] for s in json.loads(out_json.read_text())["systems"]] == ["gen", "gen2"]
    capsys.readouterr()
    assert main(["eval", "--ref", str(ref), "--gen", str(gen), "--metrics", "bleu"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("wavediff: error: unknown metric")
    assert main(["eval", "--ref", str(tmp_path / "missing"), "--gen", str(gen)]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_unreadable_file_is_reported_and_the_rest_scored(tmp_path: Path) -> None:
    ref, gen = tmp_path / "ref", tmp_path / "gen"
    ref.mkdir(), gen.mkdir()
    x = speech_like(SR, SR, np.random.default_rng(0))
    for d in (ref, gen):
        sf.write(d / "good.wav", x, SR)
        sf.write(d / "bad.wav", x, SR)
    (gen / "bad.wav").write_bytes(b"RIFF not really a wav file")
    res = evaluate_folders(ref, gen, metrics=["mcd"])
    assert res["count"] == 2 and set(res["errors"]) == {"bad"} and "cannot read audio" in res["errors"]["bad"]["audio"]
    assert res["utterances"]["good"]["mcd"] == pytest.approx(0.0, abs=1e-9) and res["summary"]["mcd"]["n"] == 1
    assert "audio × 1" in write_report(res)
