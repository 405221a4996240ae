"""benchmarks/same_budget.py end to end on a CPU: subsets, both learners, copy-synthesis, the report."""
import contextlib
import importlib.util
import io
import json
import subprocess
import sys
from pathlib import Path

import soundfile as sf
import torch
import yaml

from wavediff.audio import MelConfig, MelSpectrogram
from wavediff.data.synthetic import make_test_corpus
from wavediff.train.configs import load_recipe_config

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "same_budget.py"


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, cwd=ROOT, timeout=600)


def _main(*args: str) -> subprocess.CompletedProcess:
    """The script's ``main(argv)`` in this process, for the sub-commands that neither train nor touch lmnt's
    package (whose import may stand a stub in for torchaudio): what `_run` returns, without a new
    process's ~3 s of imports."""
    path = list(sys.path)
    spec = importlib.util.spec_from_file_location("same_budget_script", SCRIPT)
    script = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(script)  # puts benchmarks/ on sys.path for its _common
    finally:
        sys.path[:] = path
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = script.main(list(args))
        except SystemExit as e:  # its one-line errors: argparse's exit(2, message)
            code = e.code
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


def test_same_budget_prepare_train_both_systems_and_report(tmp_path):
    split = tmp_path / "split"
    make_test_corpus(split / "train", num_utts=5, seed=1, seconds=(0.8, 1.2))
    make_test_corpus(split / "test", num_utts=2, seed=2, seconds=(0.5, 0.7))
    sb = tmp_path / "sb"
    r = _main("prepare", "--data", str(split), "--train", "4", "--test", "2", "--out", str(sb))
    assert r.returncode == 0, r.stderr[-3000:]
    assert json.loads(r.stdout) == {"train": 4, "test": 2}
    assert len((sb / "train" / "metadata.csv").read_text().splitlines()) == 4
    too_many = _main("prepare", "--data", str(split), "--train", "4", "--test", "3", "--out", str(tmp_path / "x"))
    assert too_many.returncode == 2 and "has 2 utterances; asked for 3" in too_many.stderr
    assert "Traceback" not in too_many.stderr and not (tmp_path / "x").exists()

    cfg = load_recipe_config("vocoder", "tiny", ["model", "diffusion", "mel", "prior", "inference", "data", "train"])
    cfg["train"].update(val_every=0, ckpt_every=0, batch_size=2)
    (tmp_path / "mini.yaml").write_text(yaml.safe_dump(cfg))
    for system, extra in (("wavediff", ["--config", str(tmp_path / "mini.yaml"), "--max-steps", "3"]),
                          ("lmnt", ["--max-steps", "1", "--workers", "0", "--lmnt-batch-size", "2"])):
        r = _run("train", "--system", system, "--data", str(sb), "--out", str(sb / system), "--device", "cpu",
                 "--seconds", "300", "--mel-match", "2", *extra)
        assert r.returncode == 0, r.stderr[-3000:]
        info = json.loads((sb / system / "train.json").read_text())
        assert info["system"] == system and info["synthesis_steps"] == 6 and info["budget_seconds"] == 300
        assert info["train_steps"] == (3 if system == "wavediff" else 1)
        assert system == "wavediff" or info["batch_size"] == 2
        assert info.get("config") == ("mini.yaml" if system == "wavediff" else None)
        assert info["mel_match"] == 2
        for ref in sorted((sb / "test" / "wavs").glob("*.wav")):  # copy-synthesis: one wav per test clip
            gen, ref_audio = sf.read(sb / system / "gen" / ref.name), sf.read(ref)[0]
            hop = 256
            assert gen[1] == 22050 and abs(len(gen[0]) - len(ref_audio)) < hop
            # the same output after match_mel against the mel it was vocoded from, in the system's
            # convention: its mel is closer to the recording's. (Not compared sample by sample with
            # match_mel of the 16-bit file: these untrained networks leave bands nearly empty, whose
            # large ratios amplify the rounding of the file.)
            extract = MelSpectrogram(MelConfig.diffwave() if system == "lmnt" else MelConfig.hifigan())
            mel = extract(torch.from_numpy(ref_audio).float())
            matched = sf.read(sb / system / "gen_mel_match" / ref.name)[0]
            assert matched.shape == gen[0].shape
            errors = [(extract(torch.from_numpy(w).float())[:, 2:-2] - mel[:, 2 : mel.shape[-1] - 2]).abs().mean()
                      for w in (gen[0][: len(ref_audio)], matched[: len(ref_audio)])]
            assert errors[1] < 0.5 * errors[0], errors

    small = _run("train", "--system", "lmnt", "--data", str(sb), "--out", str(tmp_path / "l5"), "--device", "cpu",
                 "--lmnt-batch-size", "5")  # more than the 4 training utterances: refused, not an endless loop
    assert small.returncode == 2 and "needs at least 5 training utterances (the batch size)" in small.stderr
    assert "Traceback" not in small.stderr

    md = tmp_path / "results.md"
    r = _main("report", "--data", str(sb), "--runs", str(sb / "lmnt"), str(sb / "wavediff"), "--metrics", "mrstft",
              "--out-md", str(md))
    assert r.returncode == 0, r.stderr[-3000:]
    rows = [line for line in md.read_text().splitlines() if line.startswith("| ") and "training steps" in line]
    assert [row.split(":")[0] for row in rows] == ["| lmnt", "| lmnt", "| wavediff (mini)", "| wavediff (mini)"]
    assert ["then 2 match_mel iterations" in row for row in rows] == [False, True, False, True]
    assert all("3 training steps" in row or "1 training steps" in row for row in rows)
