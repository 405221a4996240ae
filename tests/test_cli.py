"""The `wavediff` command line: the README's commands, end to end on a generated corpus (CPU)."""
import contextlib
import io
import json
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from wavediff.cli import main
from wavediff.data import make_test_corpus

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _run(*args, cwd=None, env=None, timeout=600):
    return subprocess.run([sys.executable, "-m", "wavediff", *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=timeout)


def _main(*args) -> subprocess.CompletedProcess:
    """`wavediff ARGS` in this process (`main`, the console entry point's function): its exit status and
    what it printed. A new process costs ~3 s of a 2-core CPU in imports alone; these tests are about
    the command, not the process, and the real process is run by `_run` above (which also sees the
    log lines, which go to pytest's log capture here)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in args])
        except SystemExit as e:  # argparse's errors and --help
            code = e.code
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return make_test_corpus(tmp_path_factory.mktemp("corpus"), num_utts=12, seed=3)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, corpus):
    exp = tmp_path_factory.mktemp("runs") / "exp"
    r = _run("train", "vocoder", "--data", str(corpus), "--out", str(exp), "--config", "tiny", "--max-steps", "60", "--device", "cpu")
    assert r.returncode == 0, r.stderr
    return exp, r


def _scalars(logdir: Path, tag: str) -> list[float]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(logdir))
    acc.Reload()
    return [e.value for e in acc.Scalars(tag)]


def test_train_vocoder_loss_falls_and_checkpoint_reloads(trained):
    exp, r = trained
    assert "trained to step 60" in r.stdout
    assert (exp / "model" / "config.json").is_file() and (exp / "model" / "model.safetensors").is_file()
    assert (exp / "run.json").is_file() and any((exp / "state").glob("step-*.pt"))
    losses = _scalars(exp / "logs", "train/loss")
    assert len(losses) >= 6
    assert np.mean(losses[-3:]) < np.mean(losses[:2])
    from wavediff.pipelines import Vocoder

    v = Vocoder.from_pretrained(exp / "model", device="cpu")
    assert v.config.model.residual_layers == 4 and v.config.prior.kind == "energy" and v.config.prior.gain > 0
    wav = v(torch.full((1, 80, 20), -6.0), seed=0)
    assert wav.shape == (1, 20 * 256) and torch.isfinite(wav).all()


def test_train_vocoder_with_the_inference_loss(tmp_path, corpus):
    """An `infer_loss` section adds InferGrad's loss and an `x0_loss` section the one-step estimate's
    spectral loss: recorded in run.json, logged beside the ε-loss, summed with their weights."""
    import yaml

    from wavediff.train.configs import load_recipe_config

    cfg = load_recipe_config("vocoder", "tiny", ["model", "diffusion", "mel", "prior", "inference", "data", "train"])
    cfg["infer_loss"] = {"weight": 0.5, "items": 2}
    cfg["x0_loss"] = {"weight": 0.25}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    exp = tmp_path / "exp"
    r = _main("train", "vocoder", "--data", corpus, "--out", exp, "--config", tmp_path / "c.yaml", "--max-steps", "10",
              "--device", "cpu")
    assert r.returncode == 0, r.stderr[-3000:]
    run = json.loads((exp / "run.json").read_text())
    assert run["infer_loss"] == {"weight": 0.5, "items": 2} and run["x0_loss"] == {"weight": 0.25}
    infer, x0, eps, total = (_scalars(exp / "logs", f"train/{k}") for k in ("loss_infer", "loss_x0", "loss_eps", "loss"))
    assert len(infer) >= 2 and all(v > 0 for v in infer) and len(x0) == len(infer) and all(v > 0 for v in x0)
    np.testing.assert_allclose(total, np.array(eps) + 0.5 * np.array(infer) + 0.25 * np.array(x0), rtol=1e-4)
    for section, value, message in (("infer_loss", {"weight": 0.5, "steps": 4}, "unknown infer_loss keys ['steps']"),
                                    ("x0_loss", {"weight": -1.0}, "x0_loss.weight must be >= 0, got -1.0")):
        (tmp_path / "bad.yaml").write_text(yaml.safe_dump({**cfg, section: value}))
        bad = _main("train", "vocoder", "--data", corpus, "--out", tmp_path / "b", "--config", tmp_path / "bad.yaml")
        assert bad.returncode == 2 and message in bad.stderr and "Traceback" not in bad.stderr, bad.stderr
        assert not (tmp_path / "b" / "run.json").exists()


def test_aligned_mels_then_train_vocoder_on_them(tmp_path, corpus):
    """`data aligned-mels` writes one mel per transcribed utterance with its recording's frames (kept on a
    second run); `train vocoder --mels` trains on them and records the folder; bad input is one line."""
    from wavediff.audio import MelConfig
    from wavediff.data import scan_corpus
    from wavediff.data.vocoder import VocoderDataset

    mels = tmp_path / "mels"
    r = _main("data", "aligned-mels", "--data", corpus, "--out", mels, "--device", "cpu", "--batch-size", "5", "--steps", "2")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "12 written, 0 kept, 0 skipped" in r.stdout
    assert json.loads((mels / "mel_config.json").read_text()) == MelConfig.hifigan().to_dict()
    ds = VocoderDataset(scan_corpus(corpus), MelConfig.hifigan(), crop_frames=None)
    for i, utt in enumerate(ds.utterances):
        given = np.load(mels / f"{utt.id}.npy")
        assert given.shape == ds.load_features(i)[1].shape and given.dtype == np.float32 and np.isfinite(given).all()
    again = _main("data", "aligned-mels", "--data", corpus, "--out", mels, "--device", "cpu")
    assert again.returncode == 0 and "0 written, 12 kept" in again.stdout
    exp = tmp_path / "exp"
    r = _main("train", "vocoder", "--data", corpus, "--out", exp, "--config", "tiny", "--max-steps", "2", "--device", "cpu",
              "--mels", mels)
    assert r.returncode == 0, r.stderr[-3000:]
    assert json.loads((exp / "run.json").read_text())["data"]["mel_dir"] == str(mels.resolve())
    bad = _main("data", "aligned-mels", "--data", corpus, "--out", tmp_path / "m2", "--batch-size", "0")
    assert bad.returncode == 2 and "batch size must be an int >= 1" in bad.stderr and "Traceback" not in bad.stderr
    bad = _main("train", "vocoder", "--data", corpus, "--out", tmp_path / "e2", "--config", "tiny",
                "--mels", tmp_path / "nowhere")
    assert bad.returncode == 2 and "does not exist" in bad.stderr and "Traceback" not in bad.stderr


def test_resume_continues_at_the_saved_step(tmp_path, trained, corpus):
    exp = tmp_path / "exp"
    shutil.copytree(trained[0], exp)  # a finished run, its state saved at step 60
    again = _main("train", "vocoder", "--data", corpus, "--out", exp, "--config", "tiny", "--max-steps", "70")
    assert again.returncode == 2 and "--resume" in again.stderr and "Traceback" not in again.stderr
    r = _run("train", "vocoder", "--data", str(corpus), "--out", str(exp), "--resume", "--max-steps", "70")
    assert r.returncode == 0, r.stderr
    assert "resumed from" in r.stderr and "step 60" in r.stderr
    assert (exp / "state" / "step-00000070.pt").is_file()


def test_init_starts_a_new_run_from_trained_weights(tmp_path, trained, corpus):
    from wavediff.checkpoint import load_state_dict

    first, tuned = trained[0], tmp_path / "tuned"  # the module's run (read only here)
    r = _main("train", "vocoder", "--data", corpus, "--out", tuned, "--config", "tiny", "--max-steps", "1",
              "--init", first / "model")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "trained to step 1" in r.stdout  # a new run: its own step count
    a, b = load_state_dict(first / "model"), load_state_dict(tuned / "model")
    assert a.keys() == b.keys()
    # one small optimiser step away from the trained weights, not from a fresh initialisation
    assert max((a[k] - b[k]).abs().max().item() for k in a) < 0.01
    assert any((a[k] - b[k]).abs().max().item() > 0 for k in a)
    run = json.loads((tuned / "run.json").read_text())
    assert run["init"] == str(first / "model")
    assert run["prior"]["gain"] == json.loads((first / "model" / "config.json").read_text())["prior"]["gain"]
    # one-line errors, no run folder written: --init with --resume, another model size, no model there
    both = _main("train", "vocoder", "--data", corpus, "--out", tuned, "--resume", "--init", first / "model")
    assert both.returncode == 2 and "give one of them" in both.stderr and "Traceback" not in both.stderr
    other = _main("train", "vocoder", "--data", corpus, "--out", tmp_path / "o", "--config", "base",
                  "--init", first / "model")
    assert other.returncode == 2 and "differs from this run's config in" in other.stderr and "residual_channels" in other.stderr
    assert "Traceback" not in other.stderr and not (tmp_path / "o").exists()
    missing = _main("train", "vocoder", "--data", corpus, "--out", tmp_path / "m", "--init", tmp_path / "nowhere")
    assert missing.returncode == 2 and "does not exist" in missing.stderr and not (tmp_path / "m").exists()


def test_max_time_stops_training_cleanly(tmp_path, corpus):
    exp = tmp_path / "exp"
    r = _main("train", "vocoder", "--data", corpus, "--out", exp, "--config", "tiny", "--max-steps", "100000",
              "--max-time", "4", "--device", "cpu")
    assert r.returncode == 0, r.stderr
    assert "--max-time reached at step" in r.stdout and (exp / "model" / "model.safetensors").is_file()
    step = int(r.stdout.split("--max-time reached at step ")[1].split(";")[0])
    assert 1 <= step < 100000 and (exp / "state" / f"step-{step:08d}.pt").is_file()
    bad = _main("train", "vocoder", "--data", corpus, "--out", tmp_path / "b", "--max-time", "0")
    assert bad.returncode != 0 and "--max-time must be > 0" in bad.stderr and "Traceback" not in bad.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_torchrun_two_processes_train_the_vocoder(tmp_path, corpus):
    exp = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1", f"--master_port={_free_port()}",
        "-m", "wavediff", "train", "vocoder", "--data", str(corpus), "--out", str(exp), "--config", "tiny", "--max-steps", "6", "--device", "cpu",
    ]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert (exp / "model" / "model.safetensors").is_file()
    assert sorted(p.name for p in (exp / "state").glob("step-*.pt")) == ["step-00000006.pt"]


def test_vocode_wav_npy_both_orientations_and_a_folder(tmp_path, trained, corpus):
    exp, _ = trained
    wav_in = corpus / "wavs" / "SYN-0001.wav"
    out = tmp_path / "copy.wav"
    r = _run("vocode", str(wav_in), "-o", str(out), "--checkpoint", str(exp), "--seed", "1")
    assert r.returncode == 0, r.stderr
    audio, sr = sf.read(out)
    n_in = sf.info(wav_in).frames
    assert sr == 22050 and abs(len(audio) - n_in) < 256
    mel = np.full((80, 30), -6.0, dtype=np.float32)
    np.save(tmp_path / "a.npy", mel)
    np.save(tmp_path / "b.npy", mel.T.copy())
    for name in ("a", "b"):
        r = _main("vocode", tmp_path / f"{name}.npy", "-o", tmp_path / f"{name}.wav", "--checkpoint", exp, "--steps", "3", "--mel-preset", "hifigan")
        assert r.returncode == 0, r.stderr
        assert sf.info(tmp_path / f"{name}.wav").frames == 30 * 256
    # --mel-match: the same sample, its mel brought to the input's (here a flat -6 mel)
    from wavediff.audio import MelConfig, MelSpectrogram

    extract = MelSpectrogram(MelConfig.hifigan())
    errors = []
    for n in ("0", "8"):
        out = tmp_path / f"m{n}.wav"
        r = _main("vocode", tmp_path / "a.npy", "-o", out, "--checkpoint", exp, "--seed", "0", "--mel-match", n)
        assert r.returncode == 0, r.stderr
        got = extract(torch.from_numpy(sf.read(out, dtype="float32")[0]))
        errors.append(float((got[:, 2:-2] - torch.from_numpy(mel)[:, 2:-2]).abs().mean()))
    assert errors[1] < 0.5 * errors[0], errors
    # a folder with one bad file: the others are written, the bad one is named, exit 1
    in_dir, out_dir = tmp_path / "in", tmp_path / "out"
    in_dir.mkdir()
    np.save(in_dir / "good.npy", mel)
    (in_dir / "bad.wav").write_text("not audio")
    r = _main("vocode", "--in-dir", in_dir, "--out-dir", out_dir, "--checkpoint", exp, "--sampler", "ddim", "--steps", "2")
    assert r.returncode == 1 and "bad.wav" in r.stderr
    assert (out_dir / "good.wav").is_file() and not (out_dir / "bad.wav").exists()


@pytest.mark.parametrize(
    "args,message",
    [
        (["vocode", "missing.wav", "-o", "x.wav"], "does not exist"),
        (["vocode", "in.npy"], "-o OUT.wav"),
        (["vocode", "in.npy", "-o", "x.wav", "--mel-preset", "diffwave"], "expects 'hifigan'"),
        (["vocode", "in.npy", "-o", "x.wav", "--steps", "0"], "--steps"),
        (["vocode", "in.npy", "-o", "x.wav", "--mel-match", "-1"], "--mel-match must be >= 0"),
        (["vocode", "nan.npy", "-o", "x.wav"], "NaN"),
        (["vocode", "bins.npy", "-o", "x.wav"], "80"),
    ],
)
def test_vocode_errors_are_one_line_and_leave_no_output(tmp_path, trained, args, message, capsys):
    exp, _ = trained
    np.save(tmp_path / "in.npy", np.full((80, 10), -6.0, dtype=np.float32))
    np.save(tmp_path / "nan.npy", np.full((80, 10), np.nan, dtype=np.float32))
    np.save(tmp_path / "bins.npy", np.full((64, 10), -6.0, dtype=np.float32))
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        code = main(args + ["--checkpoint", str(exp)])
    finally:
        os.chdir(cwd)
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1 and err.startswith("wavediff: error:")
    assert not (tmp_path / "x.wav").exists()


def test_vocode_dir_refuses_two_inputs_with_one_output_name(tmp_path, trained, capsys):
    """synth --save-mel leaves x.wav beside x.npy: vocoding that folder would write x.wav twice, so it is
    refused up front, in one line, before anything is written."""
    exp, _ = trained
    in_dir, out_dir = tmp_path / "in", tmp_path / "out"
    in_dir.mkdir()
    np.save(in_dir / "x.npy", np.full((80, 10), -6.0, dtype=np.float32))
    sf.write(in_dir / "x.wav", np.zeros(22050, dtype=np.float32), 22050)
    np.save(in_dir / "y.npy", np.full((80, 10), -6.0, dtype=np.float32))
    code = main(["vocode", "--in-dir", str(in_dir), "--out-dir", str(out_dir), "--checkpoint", str(exp)])
    err = capsys.readouterr().err
    assert code == 2 and "x.npy and x.wav" in err and "would both be written to x.wav" in err
    assert len(err.strip().splitlines()) == 1 and not out_dir.exists()


def test_vocode_without_checkpoint_uses_the_bundled_vocoder(tmp_path):
    sr = 22050
    t = np.arange(sr) / sr
    sf.write(tmp_path / "in.wav", (0.1 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), sr)
    r = _run("vocode", str(tmp_path / "in.wav"), "-o", str(tmp_path / "out.wav"), "--seed", "0")
    assert r.returncode == 0, r.stderr[-2000:]
    audio, out_sr = sf.read(tmp_path / "out.wav", dtype="float32")
    assert out_sr == sr and abs(len(audio) - sr) <= 256 and np.isfinite(audio).all()


def test_tune_schedule_stores_the_winner(tmp_path, trained, corpus):
    exp, _ = trained
    ckpt = tmp_path / "ckpt"
    shutil.copytree(exp / "model", ckpt)
    r = _main("tune-schedule", "--checkpoint", ckpt, "--data", corpus, "--steps", "3", "--clips", "2", "--seconds", "0.3", "--rounds", "1")
    assert r.returncode == 0, r.stderr
    betas = json.loads((ckpt / "config.json").read_text())["inference"]["betas"]
    assert len(betas) == 3 and re.search(r"distance [0-9.]+ \(was [0-9.]+", r.stdout)


def test_convert_lmnt_cli(tmp_path):
    from diffwave.model import DiffWave
    from diffwave.params import AttrDict, params

    p = AttrDict(params)
    p.residual_layers = 3
    p.residual_channels = 8
    torch.save({"step": 1, "model": DiffWave(p).state_dict(), "params": dict(p)}, tmp_path / "weights.pt")
    r = _main("convert", "lmnt-diffwave", tmp_path / "weights.pt", tmp_path / "conv")
    assert r.returncode == 0, r.stderr
    cfg = json.loads((tmp_path / "conv" / "config.json").read_text())
    assert cfg["model_type"] == "vocoder" and cfg["mel"]["preset"] == "diffwave" and cfg["model"]["residual_layers"] == 3
    bad = _main("convert", "lmnt-diffwave", tmp_path / "nope.pt", tmp_path / "c2")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr


def _readme_commands() -> list[str]:
    lines = []
    for block in re.findall(r"```bash\n(.*?)```", README, flags=re.S):
        for line in block.splitlines():
            line = line.strip()
            if line.startswith("wavediff ") or " -m wavediff " in line:
                lines.append(line)
    return lines


def test_every_readme_command_matches_its_help():
    commands = _readme_commands()
    assert any(c.startswith("wavediff vocode") for c in commands) and any("train vocoder" in c for c in commands)
    helps: dict[tuple[str, ...], str] = {}  # once per sub-command, not per README line
    for line in commands:
        words = line.split(" -m wavediff ")[-1].split() if " -m wavediff " in line else line.split()[1:]
        sub = [w for w in words if re.fullmatch(r"[a-z][a-z-]*", w)][:2]
        sub = tuple(sub[:2] if sub[:1] in (["train"], ["convert"], ["data"]) else sub[:1])
        if sub not in helps:
            r = _main(*sub, "--help")
            assert r.returncode == 0, (line, r.stderr)
            helps[sub] = r.stdout
        for opt in re.findall(r"(?<![\w-])(--?[a-z][a-z-]*)", line.split(" -m wavediff ")[-1]):
            assert opt in helps[sub], f"README command {line!r} uses {opt}, which `wavediff {' '.join(sub)} --help` does not list"


def test_device_cuda_without_cuda_is_a_one_line_error(tmp_path, trained):
    exp, _ = trained
    np.save(tmp_path / "in.npy", np.full((80, 10), -6.0, dtype=np.float32))
    r = _run("vocode", str(tmp_path / "in.npy"), "-o", str(tmp_path / "x.wav"), "--checkpoint", str(exp), "--device", "cuda", "--steps", "1")
    if torch.cuda.is_available():
        assert r.returncode == 0, r.stderr
    else:
        assert r.returncode == 2 and "CUDA is not available" in r.stderr and "Traceback" not in r.stderr
        assert not (tmp_path / "x.wav").exists()


@pytest.mark.parametrize("fails", [False, True])
def test_commands_run_with_the_start_up_objects_exempt_from_gc_and_give_them_back(monkeypatch, fails):
    """main() freezes the objects that exist when a command starts (a full collection of the imports'
    objects costs ~0.13 s of synth's start-up) and unfreezes them when it ends, on success or error."""
    import gc

    import wavediff.cli as cli

    seen = []

    def command(args):
        seen.append(gc.get_freeze_count())
        if fails:
            raise ValueError("bad input")
        return 0

    monkeypatch.setattr(cli, "_run_vocode", command)
    before = gc.get_freeze_count()
    rc = main(["vocode", "in.npy", "-o", "out.wav"])
    assert rc == (2 if fails else 0)
    assert seen and seen[0] > 1000  # torch's objects, at least
    assert gc.get_freeze_count() == before
