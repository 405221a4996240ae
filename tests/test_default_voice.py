"""The bundled default voice: `wavediff synth "text"` with no checkpoint, offline, out of the box."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from wavediff.cli import main
from wavediff.pipelines import TTS, Vocoder
from wavediff.pipelines import files

FOX = "The quick brown fox jumps over the lazy dog."


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    # no network is needed: a proxy that cannot be reached would break any download attempt
    env = {**os.environ, "HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9", "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "wavediff", *args], capture_output=True, text=True, timeout=600, cwd=cwd, env=env)


def test_bundled_files_fit_the_size_budget_and_are_a_voice():
    sizes = sum(p.stat().st_size for p in files.ASSETS.rglob("*") if p.is_file())
    assert sizes <= 25 * 10**6, f"the bundled voice is {sizes / 1e6:.1f} MB (budget 25 MB)"
    acoustic = json.loads((files.DEFAULT_ACOUSTIC_DIR / "config.json").read_text())
    vocoder = json.loads((files.DEFAULT_VOCODER_DIR / "config.json").read_text())
    assert acoustic["model_type"] == "acoustic" and vocoder["model_type"] == "vocoder"
    assert acoustic["mel"] == vocoder["mel"]  # they meet on one mel convention


def test_readme_synth_command_writes_speech(tmp_path):
    """The README's first command, as a new user types it (no checkpoint, no seed)."""
    r = _run("synth", FOX, "-o", "fox.wav", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    audio, sr = sf.read(tmp_path / "fox.wav", dtype="float32")
    assert sr == 22050 and audio.ndim == 1
    seconds = len(audio) / sr
    assert 1.5 < seconds < 6.0, seconds  # nine words at a speaking rate
    assert np.isfinite(audio).all() and np.abs(audio).max() <= 1.0
    frames = audio[: len(audio) // 256 * 256].reshape(-1, 256)
    rms = np.sqrt((frames**2).mean(1))
    assert np.percentile(rms, 90) > 0.01 and (rms > 0.005).mean() > 0.5  # mostly sound, not silence


def test_synth_start_up_leaves_heavy_unused_imports_out(tmp_path):
    """`synth` needs none of Triton (training kernels), scipy.signal (librosa's filter module),
    dateparser (gruut's date parsing, switched off): together ~3 s of a 2-core CPU's start-up; nor
    babel's locale data (gruut's currency table, unused: 0.3 s), even for text with money in it."""
    heavy = ("triton", "scipy.signal", "librosa.filters", "dateparser.date")
    code = ("import sys; from wavediff.cli import main; "
            "rc = main(['synth', 'Hello there, it costs $5.', '-o', 'x.wav', '--seed', '0']); "
            f"print('loaded:', [m for m in {heavy!r} if m in sys.modules]); "
            "print('locales:', sorted(getattr(sys.modules.get('babel.localedata'), '_cache', {}))); sys.exit(rc)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "loaded: []" in r.stdout and "locales: []" in r.stdout, r.stdout
    assert (tmp_path / "x.wav").is_file()


CLEAR = [  # everyday sentences from benchmarks/data/everyday_sentences.txt (not in any training corpus)
    "Our flight was delayed because of the snow.",
    "The museum is closed on Mondays and public holidays.",
    "She was born on March 3, 1990.",
    "Thank you for your help with the project.",
]


def test_default_voice_is_intelligible_to_an_offline_recogniser():
    """pocketsphinx (the dev extra brings it) transcribes four held-out sentences.

    It hears Festival's recordings of them with WER 0.0. With this voice, the corpus WER over six
    seeds ranged over 0.03-0.24 (float32). Single sentences vary much more from seed to seed: "The
    quick brown fox ..." scored 0.33-1.0. Noise or garbled speech scores near 1."""
    from wavediff.eval.asr import Recognizer, corpus_wer

    tts, recognise = TTS.from_pretrained(), Recognizer()
    pairs = [(recognise(*tts(text, seed=0)), text) for text in CLEAR]
    assert corpus_wer(pairs) <= 0.4, pairs


def test_default_vocoder_keeps_the_level_of_its_voice(tmp_path):
    """Copy-synthesis of a recording of the training voice (Festival; CI installs it) comes back at
    its level. The vocoder before InferGrad fine-tuning lost 10 dB here (-10.0 ± 0.6 dB over 36
    everyday sentences); session 7's lost 0.7 ± 0.2 dB over the 36, the shipped one 0.4 ± 0.2 dB."""
    from wavediff.data.festival import build_festival_corpus, festival_problem

    problem = festival_problem()
    assert problem is None, problem  # the README's dev setup and .ci/run install Festival
    build_festival_corpus(tmp_path / "c", [("a", "Thank you for your help with the project.")], num=1, progress=False)
    ref, sr = sf.read(tmp_path / "c" / "wavs" / "a.wav", dtype="float32")
    voc = Vocoder.from_pretrained()
    assert sr == voc.sample_rate
    mel = voc.mel(torch.from_numpy(ref))
    assert voc.config.inference.mel_match == 16  # the shipped setting (README, "The default voice")
    for mel_match, max_db, max_mel_error in ((0, 2.0, 0.75), (None, 1.0, 0.2)):
        wav = voc(mel, seed=0, mel_match=mel_match).numpy()
        n = min(len(ref), len(wav))
        level_db = 10 * np.log10((wav[:n] ** 2).mean() / (ref[:n] ** 2).mean())
        assert -max_db - 1.0 < level_db < max_db, (mel_match, level_db)
        # and close to the recording's spectrum. Mean |log-mel difference| of the network's output
        # alone: 0.69 on average over eight everyday sentences for the shipped 48-channel vocoder
        # (session 16; 0.71 on this sentence), 0.62 for the 64-channel one it was pruned from, 0.51 for
        # the 96-channel one before that (0.49-0.54 on six of them; 0.78-0.85 on four before InferGrad);
        # after the shipped 16 match_mel rounds: 0.10-0.13
        again = voc.mel(torch.from_numpy(wav[:n]))
        frames = min(mel.shape[-1], again.shape[-1])
        assert (again[:, :frames] - mel[:, :frames]).abs().mean() < max_mel_error, mel_match


def test_python_api_loads_the_bundled_voice_without_arguments():
    tts = TTS.from_pretrained()
    assert tts.sample_rate == 22050
    # the leading pause is on in its config.json (README, "Where the acoustic model loses words")
    assert tts.acoustic.frontend.leading_pause is True and tts.acoustic.frontend.encode("Hello.")[:2] == [2, 1]
    mel = tts.mel("Hello there.", seed=0)
    assert mel.shape[0] == 80 and 30 < mel.shape[1] < 300
    voc = Vocoder.from_pretrained()
    wav = voc(mel, seed=0)
    assert wav.shape[-1] == mel.shape[1] * 256 and torch.isfinite(wav).all()


def test_missing_bundle_is_a_one_line_error(tmp_path, monkeypatch, capsys):
    """An installation without the assets (e.g. a source checkout without LFS) says so clearly."""
    monkeypatch.setattr(files, "DEFAULT_ACOUSTIC_DIR", tmp_path / "none-a")
    monkeypatch.setattr(files, "DEFAULT_VOCODER_DIR", tmp_path / "none-v")
    assert main(["synth", "Hello.", "-o", str(tmp_path / "x.wav")]) == 2
    err = capsys.readouterr().err
    assert "no default voice is bundled" in err and len(err.strip().splitlines()) == 1
    np.save(tmp_path / "in.npy", np.full((80, 10), -6.0, dtype=np.float32))
    assert main(["vocode", str(tmp_path / "in.npy"), "-o", str(tmp_path / "y.wav")]) == 2
    assert "no default vocoder is bundled" in capsys.readouterr().err
    assert not (tmp_path / "x.wav").exists() and not (tmp_path / "y.wav").exists()
    with pytest.raises(ValueError, match="no default voice is bundled"):
        TTS.from_pretrained()


def test_recipe_config_for_the_default_voice_describes_the_bundled_models():
    """The README's fine-tuning command (recipes/ljspeech, --config default_voice --init-* default) names
    model configs of the bundled models' shapes (`--init` refuses any other: the next test trains
    with both configs from the bundled weights)."""
    import yaml

    from wavediff.data.prepare import load_recipe

    recipe = load_recipe(files.ASSETS.parents[1] / "recipes" / "ljspeech" / "conf" / "default_voice.yaml")
    assert (recipe["vocoder_config"], recipe["acoustic_config"]) == ("small48_infergrad", "small")
    cfg = yaml.safe_load((files.ASSETS.parent / "configs" / "vocoder" / "small48_infergrad.yaml").read_text())
    bundled = json.loads((files.DEFAULT_VOCODER_DIR / "config.json").read_text())
    assert {k: bundled["model"][k] for k in cfg["model"]} == cfg["model"]


@pytest.mark.parametrize("kind, config", [("vocoder", "small48_infergrad"), ("acoustic", "small")])
def test_train_init_default_fine_tunes_the_bundled_model(tmp_path, kind, config):
    """`--init default`: a new run (e.g. on one's own corpus) starts from the default voice's weights;
    `small48_infergrad` is the packaged recipe that fine-tunes the (pruned, 48-channel) vocoder with
    InferGrad's loss."""
    import yaml

    from wavediff.checkpoint import load_state_dict
    from wavediff.data import make_test_corpus

    corpus = make_test_corpus(tmp_path / "corpus", num_utts=6, seconds=(0.6, 1.0), seed=2)
    cfg = yaml.safe_load((files.ASSETS.parent / "configs" / kind / f"{config}.yaml").read_text())
    # the same model; a CPU-sized step
    cfg["train"].update(batch_size=2, num_workers=0, precision="fp32", val_every=0, ckpt_every=0)
    cfg.setdefault("data", {}).update(val_utterances=1)
    if kind == "vocoder":  # and a short check at the end (the run's validation renders its clip)
        cfg["data"].update(crop_frames=16, val_seconds=0.2)
        if "infer_loss" in cfg:  # the unrolled chain on one crop, not the batch's two
            cfg["infer_loss"]["items"] = 1
    else:
        cfg["data"]["decoder_segment"] = 32
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    exp = tmp_path / "exp"
    # in this process (a new one is ~3 s of imports): the command, not the process, is under test
    assert main(["train", kind, "--data", str(corpus), "--out", str(exp), "--config", str(tmp_path / "c.yaml"),
                 "--max-steps", "1", "--device", "cpu", "--init", "default"]) == 0
    bundled = files.DEFAULT_VOCODER_DIR if kind == "vocoder" else files.DEFAULT_ACOUSTIC_DIR
    run = json.loads((exp / "run.json").read_text())
    assert run["init"] == str(bundled)
    if kind == "vocoder":  # the config sets no schedule: the fine-tune keeps the bundled model's tuned one
        assert run["inference"]["betas"] == json.loads((bundled / "config.json").read_text())["inference"]["betas"]
        assert json.loads((exp / "model" / "config.json").read_text())["inference"]["betas"] == run["inference"]["betas"]
        assert run["infer_loss"]["weight"] == 0.5
    else:  # the bundled model's text front end, with the leading pause its config sets
        frontend = json.loads((exp / "model" / "config.json").read_text())["text"]
        assert frontend == json.loads((bundled / "config.json").read_text())["text"] and frontend["leading_pause"]
    a, b = load_state_dict(bundled), load_state_dict(exp / "model")
    assert a.keys() == b.keys()
    assert max((a[k].float() - b[k].float()).abs().max().item() for k in a) < 0.01  # one warm-up step away


def test_synth_precision_option(tmp_path, capsys):
    """--precision float32 and bfloat16 both run and agree closely; an unknown value is refused."""
    # SNR of bfloat16 against float32 on three sentences: 22-24 dB with the network's output alone;
    # 16.5-19 dB after the shipped 16 match_mel rounds, which follow each precision's acoustic mel
    # (they differ by a mean squared error of 0.002-0.003 in log-mel) more closely than the vocoder does
    for mel_match, min_snr in (("0", 20), (None, 14)):
        outs = {}
        for precision in ("float32", "bfloat16"):
            out = tmp_path / f"{precision}.wav"
            extra = [] if mel_match is None else ["--mel-match", mel_match]
            assert main(["synth", "Hello there.", "-o", str(out), "--seed", "0", "--precision", precision, *extra]) == 0
            outs[precision], _ = sf.read(out, dtype="float64")
        a, b = outs["float32"], outs["bfloat16"]
        assert a.shape == b.shape and not np.array_equal(a, b)
        assert 10 * np.log10((a**2).sum() / ((a - b) ** 2).sum()) > min_snr, mel_match
    with pytest.raises(SystemExit) as e:
        main(["synth", "Hello.", "-o", str(tmp_path / "x.wav"), "--precision", "fp16"])
    assert e.value.code == 2 and "invalid choice: 'fp16'" in capsys.readouterr().err
    assert not (tmp_path / "x.wav").exists()


def test_synth_mel_match_option_errors(tmp_path, capsys):
    """--mel-match is the diffusion vocoder's: refused with Griffin-Lim and when negative, in one line,
    with no file written."""
    out = tmp_path / "x.wav"
    for args, message in ((["--vocoder", "griffin-lim", "--mel-match", "4"], "mel_match applies to a diffusion vocoder, not GriffinLim"),
                          (["--mel-match", "-1"], "--mel-match must be >= 0")):
        assert main(["synth", "Hello.", "-o", str(out), *args]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1 and not out.exists()


def test_aligned_mels_follow_the_recording(tmp_path):
    """Ground-truth-aligned mels of the default voice's acoustic model: each has its recording's frames,
    its loudness contour follows the recording's (frame-energy correlation 0.975-0.983 on three
    sentences; the same contour 10 frames later: 0.30-0.44), and a seeded generator repeats it."""
    from wavediff.data import scan_corpus
    from wavediff.data.festival import build_festival_corpus, festival_problem
    from wavediff.data.tts import TTSDataset, collate_tts
    from wavediff.pipelines.tts import AcousticPipeline

    assert festival_problem() is None
    build_festival_corpus(tmp_path / "c", [("a", "Thank you for your help with the project."),
                                           ("b", "Please call me back at noon.")], num=2, progress=False)
    pipe = AcousticPipeline.from_pretrained(files.bundled_acoustic_dir(), device="cpu")
    ds = TTSDataset(scan_corpus(tmp_path / "c"), pipe.mel_config, pipe.frontend)
    batch = collate_tts([ds.load(0), ds.load(1)], ds.silence_value)

    def run():
        g = torch.Generator().manual_seed(3)
        return pipe.aligned_mels(batch["tokens"], batch["token_lengths"], batch["mel"], batch["mel_lengths"],
                                 generator=g, precision="float32")

    mels = run()
    for mel, ref, n in zip(mels, batch["mel"], batch["mel_lengths"]):
        ref = ref[:, : int(n)]
        assert mel.shape == ref.shape
        e, r = mel.mean(0).numpy(), ref.mean(0).numpy()
        assert np.corrcoef(e, r)[0, 1] > 0.9
        assert np.corrcoef(e[10:], r[:-10])[0, 1] < 0.7
    assert all(torch.equal(a, b) for a, b in zip(mels, run()))
