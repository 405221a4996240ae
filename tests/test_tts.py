"""Text to speech on CPU: the acoustic model learns, `wavediff synth` / `eval --nll` / `train acoustic`
work end to end, and the Python API (``TTS``) glues an acoustic model to a vocoder of its convention.

Two tiny runs (an acoustic model and a vocoder) are trained once per module through the CLI.
"""
import contextlib
import io
import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from wavediff.cli import main
from wavediff.audio import griffin_lim
from wavediff.data import make_test_corpus
from wavediff.pipelines import TTS

SR = 22050
HOP = 256
PAUSE = int(0.25 * SR)  # samples of silence between sentences (tts.SENTENCE_PAUSE_S)
ORDINARY = "Dr. Smith paid $5.20 on May 5, 2024 at 3:45 pm."
_WORDS = "the quick voice reads a short line of plain text for testing every sound clearly and slowly today".split()


# Tiny models gain nothing from a second thread, and on a shared 2-core machine a thread waiting for
# a descheduled sibling slows small ops down many times: run the CLI and this module single-threaded.
ONE_THREAD = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ------------------------------------------------------------------------------------ helpers
def _run(*args: str, stdin: str | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "wavediff", *args], input=stdin, capture_output=True, text=True, timeout=timeout,
        env=ONE_THREAD,
    )


def _main(*args: str) -> subprocess.CompletedProcess:
    """`wavediff ARGS` in this process: exit status, stdout and stderr, as `_run` gives them (log lines
    aside: pytest captures those here). Saves a process start (~3 s of imports) where the process is
    not what is tested."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in args])
        except SystemExit as e:  # argparse's errors
            code = e.code
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


def _read_wav(path: Path) -> tuple[np.ndarray, int]:
    """A written output: mono float samples [L] and its sample rate."""
    audio, sr = sf.read(path, dtype="float32")
    assert audio.ndim == 1, f"{path.name} is not mono: {audio.shape}"
    return audio, sr


def _assert_valid_speech_wav(path: Path) -> np.ndarray:
    audio, sr = _read_wav(path)
    assert sr == SR
    assert len(audio) >= HOP and np.isfinite(audio).all()
    assert float(np.sqrt(np.mean(audio**2))) > 1e-3, f"{path.name} is silent"
    return audio


def _assert_one_line_error(err: str, message: str) -> None:
    assert err.startswith("wavediff: error:"), err
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err
    assert message in err, err


def _long_text(n_chars: int, seed: int = 0) -> str:
    """Long sentences (2-7 clauses of 5-10 words; some over 300 characters), cut to ``n_chars`` characters."""
    rng = np.random.default_rng(seed)
    sentences: list[str] = []
    while sum(len(s) + 1 for s in sentences) < n_chars + 1:
        clauses = [" ".join(rng.choice(_WORDS, size=int(rng.integers(5, 11)))) for _ in range(int(rng.integers(2, 8)))]
        s = ", ".join(clauses)
        sentences.append(s[0].upper() + s[1:] + ".")
    return " ".join(sentences)[:n_chars]


# ----------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return make_test_corpus(tmp_path_factory.mktemp("tts_corpus"), num_utts=8, seed=3)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, corpus) -> dict:
    """Tiny acoustic (30 steps) and vocoder (10 steps) runs, trained side by side through the CLI."""
    root = tmp_path_factory.mktemp("tts_runs")
    env = ONE_THREAD
    jobs = {
        "acoustic": ("acoustic", "30"),
        "vocoder": ("vocoder", "10"),
    }
    procs = {
        name: subprocess.Popen(
            [sys.executable, "-m", "wavediff", "train", model, "--data", str(corpus), "--out", str(root / name),
             "--config", "tiny", "--max-steps", steps, "--device", "cpu"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )
        for name, (model, steps) in jobs.items()
    }
    outputs = {name: p.communicate(timeout=600) for name, p in procs.items()}  # wait for both first
    out = {}
    for name, p in procs.items():
        stdout, stderr = outputs[name]
        assert p.returncode == 0, stderr[-3000:]
        out[name] = root / name
        out[f"{name}_stdout"] = stdout
    return out


@pytest.fixture(scope="module")
def acoustic(runs):
    from wavediff.pipelines.tts import AcousticPipeline

    return AcousticPipeline.from_pretrained(runs["acoustic"] / "model", device="cpu")


# ------------------------------------------------------------------ the acoustic model learns
def test_tiny_acoustic_model_overfits_a_handful_of_utterances(tmp_path):
    """Plain optimiser loop on 3 generated utterances: the mel (prior) loss falls far below its start,
    and the duration predictor learns sensible lengths (±35% of the true frame count, >= 1 frame each)."""
    from wavediff.data import scan_corpus
    from wavediff.data.tts import TTSDataset
    from wavediff.nn.duration import durations_to_frames
    from wavediff.pipelines.tts import AcousticPipeline
    from wavediff.text import TextFrontend
    from wavediff.train.acoustic import load_acoustic_config, resolve_acoustic_config

    # 1.2-1.8 s for 3-7 words: several frames per phoneme, as in real speech (with ~1 frame per
    # phoneme, ceil() at synthesis alone would add up to +50% to the length)
    root = make_test_corpus(tmp_path / "c", num_utts=3, seed=5, seconds=(1.2, 1.8))
    frontend = TextFrontend()
    cfg = resolve_acoustic_config(load_acoustic_config("tiny"), frontend)
    utts = scan_corpus(root)
    ds = TTSDataset(utts, cfg.mel, frontend)
    batch = ds.collate_fn([ds[i] for i in range(len(ds))])  # tokens [3, N], mel [3, 80, T]
    torch.manual_seed(0)
    pipe = AcousticPipeline(cfg, frontend)
    opt = torch.optim.Adam(pipe.model.parameters(), lr=5e-3)

    history = []
    for _ in range(200):
        loss, logs = pipe.training_loss(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.append(logs)
    assert all(math.isfinite(h["loss"]) for h in history)
    start = history[0]["loss_prior"]
    end = float(np.mean([h["loss_prior"] for h in history[-10:]]))
    floor = 0.5 * math.log(2 * math.pi)  # −log N(x; x, 1) per value: the prior loss cannot go lower
    assert end < 0.6 * start and end - floor < 0.1 * (start - floor), (start, end)
    assert np.mean([h["loss_duration"] for h in history[-10:]]) < 0.25 * history[0]["loss_duration"]

    pipe.eval()
    true_frames = batch["mel_lengths"]
    with torch.no_grad():
        _, _, mask, log_dur = pipe.model.encode(batch["tokens"], batch["token_lengths"])
        durations, frames = durations_to_frames(log_dur, mask)
    for i in range(len(ds)):
        n = int(batch["token_lengths"][i])
        assert (durations[i, :n] >= 1).all() and (durations[i, n:] == 0).all()
        assert abs(int(frames[i]) - int(true_frames[i])) <= 0.35 * int(true_frames[i]), (frames, true_frames)
    # the sampled mel of a training sentence has the predicted length too
    n0 = int(batch["token_lengths"][0])
    text0 = next(u.text for u in utts if frontend.encode(u.text) == batch["tokens"][0, :n0].tolist())
    mel = pipe.mel(text0, steps=2, seed=0)
    assert mel.shape == (80, int(frames[0])) and torch.isfinite(mel).all()


# ---------------------------------------------------------------------------------- synth CLI
def test_synth_ordinary_text_with_numbers_writes_wav_and_mel(tmp_path, runs, acoustic):
    out = tmp_path / "say.wav"
    r = _main("synth", ORDINARY, "-o", out, "--checkpoint", runs["acoustic"], "--vocoder", runs["vocoder"], "--seed", "1",
              "--save-mel")
    assert r.returncode == 0, r.stderr
    assert f"wrote {out}" in r.stdout
    audio = _assert_valid_speech_wav(out)
    mel = np.load(out.with_suffix(".npy"))
    assert mel.dtype == np.float32 and mel.ndim == 2 and mel.shape[0] == 80 and np.isfinite(mel).all()
    lo = math.log(1e-5)  # the hifigan convention's floor
    assert mel.min() >= lo - 1e-4
    # each sentence's mel is vocoded to frames·hop samples; sentences are joined by short pauses
    extra = len(audio) - mel.shape[1] * HOP
    assert extra >= 0 and extra % PAUSE == 0, (len(audio), mel.shape)
    # numbers, money and abbreviations are spoken (each phoneme gets >= 1 frame)
    n_phonemes = len(acoustic.frontend.encode(ORDINARY))
    assert n_phonemes > 2 * len(acoustic.frontend.encode("Dr. Smith paid on May at pm."))
    assert mel.shape[1] >= n_phonemes
    assert out.with_suffix(".png").is_file() and out.with_suffix(".png").stat().st_size > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["say.npy", "say.png", "say.wav"]  # no temp files left


def test_synth_with_griffin_lim_vocoder_matches_the_acoustic_mel(tmp_path, runs, acoustic):
    """--vocoder griffin-lim: no neural vocoder; the wav is Griffin-Lim of the acoustic model's mel."""
    out = tmp_path / "gl.wav"
    args = ["synth", "Hello there.", "-o", str(out), "--checkpoint", str(runs["acoustic"]), "--vocoder", "griffin-lim",
            "--steps", "2", "--seed", "4", "--save-mel"]
    assert main(args) == 0
    audio = _assert_valid_speech_wav(out)
    mel = torch.from_numpy(np.load(out.with_suffix(".npy")))
    assert len(audio) == mel.shape[1] * HOP  # one sentence
    expected = griffin_lim(mel, acoustic.mel_config, n_iter=32, generator=torch.Generator().manual_seed(4))
    # the same phases from the same seed (a 16-bit file, clipped to [-1, 1]: a tiny model's mels are loud)
    assert np.abs(audio - expected.clamp(-1, 1).numpy()).max() < 1e-3
    # the Python API takes the same name
    tts = TTS.from_pretrained(runs["acoustic"] / "model", vocoder="griffin-lim")
    wav, sr = tts("Hello there.", steps=2, seed=4, vocoder_steps=8)
    assert sr == acoustic.mel_config.sample_rate and wav.dtype == torch.float32 and len(wav) == len(audio)


def test_synth_reads_standard_input(tmp_path, runs):
    text = "Hello from standard input."
    models = ["--checkpoint", str(runs["acoustic"]), "--vocoder", str(runs["vocoder"]), "--steps", "2", "--seed", "3"]
    out = tmp_path / "stdin.wav"
    r = _run("synth", "-", "-o", str(out), *models, stdin=text + "\n")
    assert r.returncode == 0, r.stderr
    from_stdin = _assert_valid_speech_wav(out)
    assert main(["synth", text, "-o", str(tmp_path / "arg.wav"), *models]) == 0
    from_arg, _ = _read_wav(tmp_path / "arg.wav")
    assert from_stdin.shape == from_arg.shape and np.allclose(from_stdin, from_arg, atol=1e-3)  # the same text


def test_synth_empty_text_is_a_clear_error_without_output(tmp_path, runs):
    out = tmp_path / "empty.wav"
    r = _run("synth", "", "-o", str(out), "--checkpoint", str(runs["acoustic"]), "--vocoder", str(runs["vocoder"]))
    assert r.returncode == 2
    _assert_one_line_error(r.stderr, "no text")
    assert not out.exists() and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("text,message", [("   \n\t ", "no text"), ("?!... -- ;", "nothing to pronounce")])
def test_synth_blank_or_punctuation_only_text_is_a_clear_error(tmp_path, runs, capsys, text, message):
    out = tmp_path / "x.wav"
    code = main(["synth", text, "-o", str(out), "--checkpoint", str(runs["acoustic"]), "--vocoder", str(runs["vocoder"])])
    assert code == 2
    _assert_one_line_error(capsys.readouterr().err, message)
    assert list(tmp_path.iterdir()) == []


def test_synth_5000_characters_is_split_and_synthesised(tmp_path, runs, acoustic):
    text = _long_text(5000)
    assert len(text) == 5000
    parts = acoustic.sentences(text)
    n_parts, max_chars = len(parts), acoustic.config.inference.max_chars
    assert n_parts > 5000 // max_chars and max(len(p) for p in parts) <= max_chars
    assert any(len(s) > max_chars for s in re.split(r"(?<=\.) ", text))  # some sentences had to be cut
    out = tmp_path / "long.wav"
    r = _run("synth", text, "-o", str(out), "--checkpoint", str(runs["acoustic"]), "--vocoder", str(runs["vocoder"]),
             "--length-scale", "0.2", "--steps", "2", "--vocoder-steps", "2", "--seed", "0", "--save-mel")
    assert r.returncode == 0, r.stderr[-2000:]
    assert f"sentence {n_parts}/{n_parts}" in r.stderr  # progress is logged when stderr is not a terminal
    audio = _assert_valid_speech_wav(out)
    mel = np.load(out.with_suffix(".npy"))
    assert len(audio) == mel.shape[1] * HOP + (n_parts - 1) * PAUSE
    # every sentence got at least one frame per phoneme, so no sentence was dropped
    assert mel.shape[1] >= sum(len(acoustic.frontend.encode(p)) for p in parts)


def test_synth_from_file_writes_one_wav_per_line_and_skips_bad_lines(tmp_path, runs):
    lines = tmp_path / "lines.txt"
    lines.write_text("greet|Hello there.\nPlain words of text.\n\nbad|?!\nnum 7|It costs $3.\n", encoding="utf-8")
    out_dir = tmp_path / "out"
    r = _main("synth", "--from-file", lines, "--out-dir", out_dir, "--checkpoint", runs["acoustic"],
              "--vocoder", runs["vocoder"], "--steps", "2", "--vocoder-steps", "2")
    assert r.returncode == 1, r.stderr
    assert "skipped bad" in r.stderr and "Traceback" not in r.stderr
    assert sorted(p.name for p in out_dir.iterdir()) == ["greet.wav", "line0002.wav", "num_7.wav"]
    for p in out_dir.iterdir():
        _assert_valid_speech_wav(p)


def _synth_in_process(tmp_path: Path, runs: dict, name: str, *options: str) -> np.ndarray:
    out = tmp_path / f"{name}.wav"
    code = main(["synth", "Read a short line of text.", "-o", str(out), "--checkpoint", str(runs["acoustic"]),
                 "--vocoder", str(runs["vocoder"]), "--steps", "3", "--vocoder-steps", "3", *options])
    assert code == 0
    return _assert_valid_speech_wav(out)


def test_synth_seed_makes_output_reproducible(tmp_path, runs):
    a = _synth_in_process(tmp_path, runs, "a", "--seed", "7")
    b = _synth_in_process(tmp_path, runs, "b", "--seed", "7")
    c = _synth_in_process(tmp_path, runs, "c", "--seed", "8")
    assert np.array_equal(a, b)
    assert a.shape == c.shape and not np.allclose(a, c)  # same durations, different noise


def test_synth_length_scale_slows_speech_down(tmp_path, runs):
    normal = _synth_in_process(tmp_path, runs, "normal", "--seed", "0", "--length-scale", "1")
    slow = _synth_in_process(tmp_path, runs, "slow", "--seed", "0", "--length-scale", "2")
    fast = _synth_in_process(tmp_path, runs, "fast", "--seed", "0", "--length-scale", "0.5")
    assert len(slow) > 1.5 * len(normal) and len(fast) < 0.75 * len(normal)


@pytest.mark.parametrize(
    "options,message",
    [
        (["-o", "x.wav", "--steps", "0"], "--steps"),
        (["-o", "x.wav", "--length-scale", "0"], "--length-scale"),
        (["-o", "x.wav", "--temperature", "-1"], "--temperature"),
        ([], "-o OUT.wav"),
        (["-o", "x.mp3"], ".wav"),
    ],
)
def test_synth_bad_options_are_one_line_errors(tmp_path, runs, capsys, options, message):
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        code = main(["synth", "Hello.", *options, "--checkpoint", str(runs["acoustic"]), "--vocoder", str(runs["vocoder"])])
    finally:
        os.chdir(cwd)
    assert code == 2
    _assert_one_line_error(capsys.readouterr().err, message)
    assert list(tmp_path.iterdir()) == []


def test_synth_acoustic_checkpoint_passed_as_vocoder_is_a_clear_error(tmp_path, runs, capsys):
    code = main(["synth", "Hello.", "-o", str(tmp_path / "x.wav"), "--checkpoint", str(runs["acoustic"]),
                 "--vocoder", str(runs["acoustic"])])
    assert code == 2
    _assert_one_line_error(capsys.readouterr().err, "not a vocoder")


# --------------------------------------------------------------------------------- Python API
def test_tts_from_pretrained_speaks_and_its_mel_matches(runs):
    from wavediff.pipelines.tts import TTS

    tts = TTS.from_pretrained(runs["acoustic"] / "model", vocoder=runs["vocoder"] / "model", device="cpu")
    text = "Hello world, this is a test."
    wav, sr = tts(text, seed=0, steps=3, vocoder_steps=3)
    assert sr == SR == tts.sample_rate
    assert wav.dtype == torch.float32 and wav.dim() == 1 and torch.isfinite(wav).all() and wav.abs().max() > 0
    mel = tts.mel(text, seed=0, steps=3)
    assert mel.shape[0] == 80 and mel.dim() == 2 and torch.isfinite(mel).all()
    assert wav.shape == (mel.shape[1] * HOP,)  # one sentence: frames · hop samples
    _, _, mels = tts(text, seed=0, steps=3, vocoder_steps=3, return_mels=True)
    assert len(mels) == 1 and torch.equal(mels[0], mel)  # tts(text) vocodes exactly tts.mel(text)


def test_tts_refuses_a_vocoder_of_the_other_mel_convention(acoustic):
    from wavediff.audio import MelConfig
    from wavediff.nn import DenoiserConfig
    from wavediff.pipelines import Vocoder, VocoderConfig
    from wavediff.pipelines.tts import TTS

    small = DenoiserConfig(residual_layers=2, residual_channels=8, dilation_cycle=1)
    diffwave_vocoder = Vocoder(VocoderConfig(mel=MelConfig.diffwave(), model=small))
    with pytest.raises(ValueError, match="'hifigan'.*'diffwave'") as e:
        TTS(acoustic, diffwave_vocoder)
    assert MelConfig.hifigan().description in str(e.value) and MelConfig.diffwave().description in str(e.value)
    TTS(acoustic, Vocoder(VocoderConfig(mel=MelConfig.hifigan(), model=small)))  # the same convention is fine


@pytest.mark.parametrize("sampler", ["fast", "ddim", "dpmpp_2m", "heun", "ddpm"])
def test_acoustic_mel_with_every_sampler(acoustic, sampler):
    text = "Every sound clearly."
    tokens, lengths = acoustic.tokens([text])
    with torch.no_grad():
        _, _, frames, _ = acoustic.model.plan(tokens, lengths)
    mel = acoustic.mel(text, sampler=sampler, steps=3, seed=0)
    lo, hi = acoustic.mel_config.value_range
    assert mel.shape == (80, int(frames[0]))
    assert torch.isfinite(mel).all() and mel.min() >= lo and mel.max() <= hi
    assert torch.equal(mel, acoustic.mel(text, sampler=sampler, steps=3, seed=0))


def test_acoustic_mel_of_a_batch_matches_single_texts(acoustic):
    texts = ["A short line.", "The quick voice reads plain text for testing today."]
    batch = acoustic.mel(texts, steps=2, seed=0)
    singles = [acoustic.mel(t, steps=2, seed=0) for t in texts]
    assert [m.shape for m in batch] == [m.shape for m in singles]  # padding does not change durations


def test_acoustic_start_alpha_bar_starts_the_solver_later(acoustic, monkeypatch):
    """inference.start_alpha_bar: the ODE solver's first step is where ᾱ falls to that level."""
    from wavediff.pipelines.tts import TTSInference

    sched = acoustic.diffusion.schedule  # tiny: 200 steps
    calls = []
    forward = acoustic.model.denoiser.forward
    monkeypatch.setattr(acoustic.model.denoiser, "forward", lambda x, t, cond: calls.append(float(t[0])) or forward(x, t, cond))
    acoustic.mel("A short line.", steps=3, seed=0)
    assert calls[0] == sched.num_steps - 1  # default: at T
    calls.clear()
    monkeypatch.setattr(acoustic.config, "inference", TTSInference(steps=3, start_alpha_bar=0.05))
    acoustic.mel("A short line.", seed=0)
    expected = round(float(sched.t_from_alpha_bar(0.05)))
    assert len(calls) == 3 and calls[0] == expected < sched.num_steps - 1 and calls[-1] == 0
    assert sched.alpha_bars[expected] == pytest.approx(0.05, rel=0.1)
    with pytest.raises(ValueError, match="start_alpha_bar"):
        TTSInference(start_alpha_bar=1.5)


# ------------------------------------------------------------------------------ eval and train
def test_eval_nll_prints_bits_per_mel_value_and_writes_json(tmp_path, runs, corpus):
    out = tmp_path / "nll.json"
    r = _main("eval", "--nll", "--checkpoint", runs["acoustic"], "--data", corpus, "--utterances", "2", "--json", out)
    assert r.returncode == 0, r.stderr
    m = re.search(r"variational bound: (-?[0-9.]+) bits per mel value over 2 utterances \((\d+) values\); "
                  r"prior N\(mu, I\) alone: (-?[0-9.]+)", r.stdout)
    assert m, r.stdout
    res = json.loads(out.read_text())
    assert res["utterances"] == 2 and res["values"] == int(m.group(2)) and res["values"] % 80 == 0
    assert math.isfinite(res["bits_per_value"]) and math.isfinite(res["prior_only_bits_per_value"])
    assert abs(res["bits_per_value"] - float(m.group(1))) < 1e-4
    assert len(res["per_utterance"]) == 2 and all(math.isfinite(v) for v in res["per_utterance"].values())


def test_eval_nll_needs_checkpoint_and_data(capsys):
    assert main(["eval", "--nll"]) == 2
    _assert_one_line_error(capsys.readouterr().err, "--checkpoint")


def test_train_acoustic_run_reloads_and_resume_continues_at_the_saved_step(tmp_path, runs, corpus):
    assert "trained to step 30" in runs["acoustic_stdout"]
    cfg = json.loads((runs["acoustic"] / "model" / "config.json").read_text())
    assert cfg["model_type"] == "acoustic" and cfg["mel"]["preset"] == "hifigan" and cfg["text"]["symbols"]
    assert cfg["text"]["leading_pause"] is True  # new models give the opening silence a symbol
    exp = tmp_path / "exp"
    shutil.copytree(runs["acoustic"], exp)
    again = _main("train", "acoustic", "--data", corpus, "--out", exp, "--config", "tiny", "--max-steps", "35")
    assert again.returncode == 2
    _assert_one_line_error(again.stderr, "--resume")
    r = _run("train", "acoustic", "--data", str(corpus), "--out", str(exp), "--resume", "--max-steps", "35")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "resumed from" in r.stderr and "step 30" in r.stderr
    assert "trained to step 35" in r.stdout
    assert (exp / "state" / "step-00000035.pt").is_file()


def test_train_acoustic_init_fine_tunes_with_the_models_inventory(tmp_path, runs, corpus):
    from wavediff.checkpoint import load_state_dict

    exp = tmp_path / "tuned"
    r = _main("train", "acoustic", "--data", corpus, "--out", exp, "--config", "tiny", "--max-steps", "1",
              "--init", runs["acoustic"] / "model")
    assert r.returncode == 0, r.stderr[-3000:]
    trained = json.loads((runs["acoustic"] / "model" / "config.json").read_text())
    tuned = json.loads((exp / "model" / "config.json").read_text())
    assert tuned["text"] == trained["text"] and tuned["model"] == trained["model"]
    a, b = load_state_dict(runs["acoustic"] / "model"), load_state_dict(exp / "model")
    assert max((a[k] - b[k]).abs().max().item() for k in a) < 0.02  # one step from the trained weights
    bad = _main("train", "acoustic", "--data", corpus, "--out", tmp_path / "b", "--config", "base",
                "--init", runs["acoustic"] / "model")
    assert bad.returncode == 2 and not (tmp_path / "b").exists()
    _assert_one_line_error(bad.stderr, "differs from this run's config in")


def test_train_acoustic_init_takes_the_configs_leading_pause_and_refuses_another_language(tmp_path, runs, corpus):
    """--init keeps the model's symbols, but a `text.leading_pause` in the run's config still applies
    (so a model trained without the pause can be fine-tuned with it); a config of another language is
    refused before anything is written."""
    import yaml

    import wavediff.configs

    trained = json.loads((runs["acoustic"] / "model" / "config.json").read_text())["text"]
    assert trained["leading_pause"] is True
    cfg = yaml.safe_load((Path(wavediff.configs.__file__).parent / "acoustic" / "tiny.yaml").read_text())
    cfg["text"] = {"language": "en-US", "leading_pause": False}  # the model's language, spelt another way
    (tmp_path / "off.yaml").write_text(yaml.safe_dump(cfg))
    exp = tmp_path / "off"
    r = _main("train", "acoustic", "--data", corpus, "--out", exp, "--config", tmp_path / "off.yaml",
              "--max-steps", "1", "--init", runs["acoustic"] / "model")
    assert r.returncode == 0, r.stderr[-3000:]
    tuned = json.loads((exp / "model" / "config.json").read_text())["text"]
    assert tuned["leading_pause"] is False and tuned["symbols"] == trained["symbols"]
    assert {k: v for k, v in tuned.items() if k != "leading_pause"} == {k: v for k, v in trained.items() if k != "leading_pause"}
    cfg["text"] = {"language": "de"}
    (tmp_path / "de.yaml").write_text(yaml.safe_dump(cfg))
    bad = _main("train", "acoustic", "--data", corpus, "--out", tmp_path / "de", "--config", tmp_path / "de.yaml",
                "--init", runs["acoustic"] / "model")
    assert bad.returncode == 2 and not (tmp_path / "de").exists()
    _assert_one_line_error(bad.stderr, "its text front end is 'en-us', this run's config says 'de'")


