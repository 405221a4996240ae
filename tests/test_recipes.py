"""Recipes: resumable verified downloads, safe extraction, corpus preparation, the Festival corpus
builder, recipe configs, and the smoke run of recipes/ljspeech/run.sh (stages 1-6 on a CPU)."""
from __future__ import annotations

import hashlib
import http.server
import io
import json
import os
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from wavediff.data import make_test_corpus, read_id_list, scan_corpus
from wavediff.data.download import download, extract_tar, fetch_corpus
from wavediff.data.festival import build_festival_corpus, festival_problem
from wavediff.data.prepare import load_recipe, prepare_corpus, shell_assignments, write_recipe_configs

ROOT = Path(__file__).resolve().parents[1]
LJSPEECH = ROOT / "recipes" / "ljspeech"
SYNTHETIC = ROOT / "recipes" / "synthetic"
FESTIVAL_MISSING = festival_problem()


def _env() -> dict:
    # one thread per process: the smoke models are tiny, and on a busy 2-core machine torch's thread
    # pool spinning against other processes made training 4x slower
    env = dict(os.environ, PYTHON=sys.executable, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    return env


def _sh(*args, cwd=None, timeout=600) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", *map(str, args)], capture_output=True, text=True, env=_env(), cwd=cwd, timeout=timeout)


# ------------------------------------------------------------------------------ local HTTP server
class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves server.payload with Range support; can cut the next response off half-way."""

    def do_GET(self):  # noqa: N802 - http.server's name
        srv = self.server
        rng = self.headers.get("Range")
        srv.requests.append(rng)
        data = srv.payload
        if rng and not srv.ignore_range:
            start = int(rng.split("=", 1)[1].split("-", 1)[0])
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            body = data[start:]
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            body = data
            self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if srv.cut_next:  # announce everything, send half, hang up
            srv.cut_next = False
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)

    def log_message(self, *args):  # quiet
        pass


@pytest.fixture
def server():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.payload, srv.requests, srv.cut_next, srv.ignore_range = b"", [], False, False
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}"
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture(scope="module")
def tarball(tmp_path_factory) -> bytes:
    """A small LJSpeech-1.1.tar.bz2: 8 short clips in LJSpeech layout under LJSpeech-1.1/."""
    tmp = tmp_path_factory.mktemp("tarball")
    make_test_corpus(tmp / "LJSpeech-1.1", num_utts=8, seconds=(0.3, 0.5), seed=3)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:bz2") as tar:
        tar.add(tmp / "LJSpeech-1.1", arcname="LJSpeech-1.1")
    return buf.getvalue()


# ---------------------------------------------------------------------------------- download
def test_interrupted_download_resumes_with_a_range_request(tmp_path, server, tarball):
    server.payload, server.cut_next = tarball, True
    sha = hashlib.sha256(tarball).hexdigest()
    folder = fetch_corpus(f"{server.url}/LJSpeech-1.1.tar.bz2", tmp_path, sha256=sha, progress=False)
    assert folder == tmp_path / "LJSpeech-1.1"
    # the first response was cut off half-way; the retry asked for the rest only
    assert server.requests == [None, f"bytes={len(tarball) // 2}-"]
    assert (tmp_path / "LJSpeech-1.1.tar.bz2").read_bytes() == tarball
    assert [u.id for u in scan_corpus(folder)] == [f"SYN-{k:04d}" for k in range(1, 9)]
    assert not list(tmp_path.glob("*.part")) and not list(tmp_path.glob(".extract-*"))
    # a second call finds the extraction and asks the server nothing
    assert fetch_corpus(f"{server.url}/LJSpeech-1.1.tar.bz2", tmp_path, sha256=sha, progress=False) == folder
    assert len(server.requests) == 2


def test_a_partial_file_left_by_a_killed_process_is_continued(tmp_path, server, tarball):
    server.payload = tarball
    (tmp_path / "c.tar.bz2.part").write_bytes(tarball[:1000])
    out = download(f"{server.url}/c.tar.bz2", tmp_path / "c.tar.bz2", md5=hashlib.md5(tarball).hexdigest(), progress=False)
    assert server.requests == ["bytes=1000-"] and out.read_bytes() == tarball
    # a server that ignores Range sends everything again: the part is rewritten, not appended to
    server.ignore_range, server.requests = True, []
    (tmp_path / "d.tar.bz2.part").write_bytes(b"x" * 500)
    out = download(f"{server.url}/d.tar.bz2", tmp_path / "d.tar.bz2", sha256=hashlib.sha256(tarball).hexdigest(), progress=False)
    assert server.requests == ["bytes=500-"] and out.read_bytes() == tarball


def test_wrong_checksum_is_an_error_and_leaves_nothing(tmp_path, server, tarball):
    server.payload = tarball
    with pytest.raises(ValueError, match="sha256 mismatch for LJSpeech-1.1.tar.bz2: expected 0{64}, got"):
        fetch_corpus(f"{server.url}/LJSpeech-1.1.tar.bz2", tmp_path, sha256="0" * 64, progress=False)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="64 hexadecimal digits"):
        download(f"{server.url}/x", tmp_path / "x", sha256="abc")
    # and through the CLI: one line, exit 2
    r = subprocess.run([sys.executable, "-m", "wavediff", "data", "download", f"{server.url}/LJSpeech-1.1.tar.bz2",
                        "--out", str(tmp_path), "--sha256", "1" * 64], capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.startswith("wavediff: error: sha256 mismatch") and list(tmp_path.iterdir()) == []


def _evil_tar(path: Path, member: tarfile.TarInfo) -> None:
    with tarfile.open(path, "w:gz") as tar:
        ok = tarfile.TarInfo("corpus/fine.txt")
        ok.size = 2
        tar.addfile(ok, io.BytesIO(b"ok"))
        tar.addfile(member, io.BytesIO(b"evil") if member.isfile() else None)


def _member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    info.size = 4 if kind == tarfile.REGTYPE else 0
    return info


@pytest.mark.parametrize(
    "member, reason",
    [
        (_member("corpus/../../evil.txt"), "has a '..' component"),
        (_member("/tmp/wavediff-evil.txt"), "has an absolute path"),
        (_member("corpus/link", tarfile.SYMTYPE, "../../outside"), "leaves the archive"),
        (_member("corpus/abs", tarfile.SYMTYPE, "/etc/passwd"), "absolute path"),
        (_member("corpus/hard", tarfile.LNKTYPE, "../x"), "leaves the archive"),
        (_member("corpus/dev", tarfile.CHRTYPE), "device"),
    ],
)
def test_unsafe_tar_members_are_refused_and_nothing_is_extracted(tmp_path, member, reason):
    archive = tmp_path / "evil.tar.gz"
    _evil_tar(archive, member)
    out = tmp_path / "out"
    with pytest.raises(ValueError, match=f"refusing to extract evil.tar.gz: member .* {reason}"):
        extract_tar(archive, out)
    assert list(out.iterdir()) == []  # not even the harmless member before it
    assert not (tmp_path / "evil.txt").exists() and not Path("/tmp/wavediff-evil.txt").exists()


def test_run_sh_stage_0_downloads_from_a_local_server(tmp_path, server, tarball):
    server.payload = tarball
    sha = hashlib.sha256(tarball).hexdigest()
    r = _sh(LJSPEECH / "run.sh", "--stage", "0", "--stop-stage", "1", "--config", "smoke", "--url",
            f"{server.url}/LJSpeech-1.1.tar.bz2", "--sha256", sha, "--download-dir", tmp_path / "dl",
            "--exp-dir", tmp_path / "exp", timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    summary = json.loads((tmp_path / "exp" / "data" / "summary.json").read_text())
    assert summary["corpus"] == str((tmp_path / "dl" / "LJSpeech-1.1").resolve())
    assert summary["counts"] == {"train": 3, "val": 2, "test": 3} and summary["split"]["kind"] == "seeded"
    bad = _sh(LJSPEECH / "run.sh", "--stage", "0", "--stop-stage", "0", "--config", "smoke", "--url",
              f"{server.url}/other.tar.bz2", "--sha256", "2" * 64, "--download-dir", tmp_path / "dl2",
              "--exp-dir", tmp_path / "exp2", timeout=300)
    assert bad.returncode != 0 and "sha256 mismatch" in bad.stderr
    assert not (tmp_path / "dl2" / "other.tar.bz2").exists()


# ----------------------------------------------------------------------------------- prepare
def test_shipped_lists_are_the_standard_split():
    lists = {name: read_id_list(LJSPEECH / "local" / f"split_{name}.txt") for name in ("train", "val", "test")}
    assert {k: len(v) for k, v in lists.items()} == {"train": 12500, "val": 100, "test": 500}
    every = [i for v in lists.values() for i in v]
    assert len(set(every)) == 13100
    transcripts = (SYNTHETIC / "local" / "transcripts.csv").read_text(encoding="utf-8").splitlines()
    assert len(transcripts) == 13100 and {line.split("|", 1)[0] for line in transcripts} == set(every)
    assert lists["test"][:3] == ["LJ001-0015", "LJ001-0051", "LJ001-0063"]


def _ljspeech_like(root: Path, ids: list[str]) -> Path:
    rng = np.random.default_rng(0)
    (root / "wavs").mkdir(parents=True)
    lines = []
    for k, utt_id in enumerate(ids):
        sf.write(root / "wavs" / f"{utt_id}.wav", 0.1 * rng.standard_normal(2205).astype(np.float32), 22050)
        lines.append(f"{utt_id}|Text {k}, raw.|text {k} normalised")
    (root / "metadata.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


def test_prepare_with_the_shipped_lists_keeps_the_standard_split(tmp_path):
    lists = {name: read_id_list(LJSPEECH / "local" / f"split_{name}.txt") for name in ("train", "val", "test")}
    ids = lists["train"][:5] + lists["val"][:2] + lists["test"][:3]
    corpus = _ljspeech_like(tmp_path / "lj", ids)
    res = prepare_corpus(corpus, tmp_path / "data", split="auto", lists_dir=LJSPEECH / "local")
    assert res["split"]["kind"] == "lists" and res["counts"] == {"train": 5, "val": 2, "test": 3}
    for name, want in (("train", lists["train"][:5]), ("val", lists["val"][:2]), ("test", lists["test"][:3])):
        folder = tmp_path / "data" / name
        assert [u.id for u in scan_corpus(folder)] == want  # each split is an LJSpeech-layout corpus
        assert read_id_list(folder / "ids.txt") == want
    test_dir = tmp_path / "data" / "test"
    assert (test_dir / "metadata.csv").read_text().splitlines()[0] == f"{lists['test'][0]}|Text 7, raw.|text 7 normalised"
    assert (test_dir / "text.txt").read_text().splitlines()[0] == f"{lists['test'][0]}|text 7 normalised"
    assert res["check"]["sample_rates"] == {"22050": 10} and res["check"]["missing_audio"] == 0
    with pytest.raises(ValueError, match="none of the ids"):
        prepare_corpus(_ljspeech_like(tmp_path / "other", ["A-1", "A-2", "A-3"]), tmp_path / "d2", split="lists",
                       lists_dir=LJSPEECH / "local")


def test_prepare_a_plain_folder_with_a_seeded_split(tmp_path):
    rng = np.random.default_rng(1)
    for k in range(12):
        path = tmp_path / "plain" / f"spk{k % 3}" / f"u{k:02d}.flac"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, 0.1 * rng.standard_normal(1600).astype(np.float32), 16000)
    a = prepare_corpus(tmp_path / "plain", tmp_path / "a", lists_dir=LJSPEECH / "local", val="2", test="3", seed=5)
    b = prepare_corpus(tmp_path / "plain", tmp_path / "b", split="seeded", val=2, test=3, seed=5)
    c = prepare_corpus(tmp_path / "plain", tmp_path / "c", split="seeded", val=2, test=3, seed=6)
    assert a["split"]["kind"] == "seeded" and a["counts"] == {"train": 7, "val": 2, "test": 3}
    assert a["check"]["layout"] == "folder" and a["check"]["sample_rates"] == {"16000": 12}
    ids = {d: {n: read_id_list(tmp_path / d / n / "ids.txt") for n in ("train", "val", "test")} for d in "abc"}
    assert ids["a"] == ids["b"] and ids["a"] != ids["c"]  # the seed decides
    assert sorted(sum(ids["a"].values(), [])) == [f"spk{k % 3}_u{k:02d}" for k in sorted(range(12), key=lambda k: (k % 3, k))]
    assert [u.id for u in scan_corpus(tmp_path / "a" / "test")] == ids["a"]["test"]
    assert (tmp_path / "a" / "test" / "text.txt").read_text() == ""  # no transcripts


# ---------------------------------------------------------------------------- recipe config
def test_recipe_config_merges_overrides_and_prints_shell_variables(tmp_path):
    conf = tmp_path / "r.yaml"
    conf.write_text("vocoder_config: tiny\nvocoder_steps: 7\nvocoder_overrides: {train: {batch_size: 3}}\n"
                    "acoustic_config: tiny\neval_metrics: mcd,f0\neval_ceiling: true\n")
    variables = write_recipe_configs(load_recipe(conf), tmp_path / "conf")
    import yaml

    merged = yaml.safe_load((tmp_path / "conf" / "vocoder.yaml").read_text())
    assert merged["train"]["batch_size"] == 3 and merged["train"]["max_steps"] == 7 and merged["model"]["residual_channels"] == 16
    script = shell_assignments(variables) + 'printf "%s|%s|%s|%s" "$vocoder_steps" "$acoustic_steps" "$eval_ceiling" "$eval_metrics"'
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True).stdout
    assert out == "7||1|mcd,f0"
    conf.write_text("vocoder_stepz: 3\n")
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['vocoder_stepz'\]"):
        load_recipe(conf)
    conf.write_text("vocoder_config: tiny\nvocoder_overrides: {modell: {x: 1}}\n")
    with pytest.raises(ValueError, match="unknown config sections"):
        write_recipe_configs(load_recipe(conf), tmp_path / "conf2")


# ---------------------------------------------------------------------------------- festival
@pytest.mark.skipif(FESTIVAL_MISSING is not None, reason=f"{FESTIVAL_MISSING}")
def test_festival_builds_an_ljspeech_layout_corpus(tmp_path):
    sentences = tmp_path / "s.csv"
    sentences.write_text('A-1|raw|Printing, in the only sense with which we are concerned.\n'
                         'A-2|He said "yes" \\ and left.\n'
                         'A-3|in being comparatively modern.\n', encoding="utf-8")
    res = build_festival_corpus(tmp_path / "corpus", sentences, num=3, workers=2, progress=False)
    assert res["utterances"] == 3 and res["synthesized"] == 3 and res["failed"] == []
    utts = scan_corpus(tmp_path / "corpus")
    assert [(u.id, u.text) for u in utts] == [
        ("A-1", "Printing, in the only sense with which we are concerned."),
        ("A-2", 'He said "yes" \\ and left.'),
        ("A-3", "in being comparatively modern."),
    ]
    for u in utts:
        info = sf.info(str(u.path))
        assert info.samplerate == 22050 and info.subtype == "PCM_16" and info.channels == 1
        wav, _ = sf.read(str(u.path))
        assert 0.8 < len(wav) / 22050 < 8.0 and 0.05 < np.abs(wav).max() <= 1.0
    # resumable: nothing new to read; a larger size reads only what is missing
    first = (tmp_path / "corpus" / "wavs" / "A-1.wav").stat().st_mtime_ns
    again = build_festival_corpus(tmp_path / "corpus", sentences, num=3, workers=1, progress=False)
    assert again["synthesized"] == 0 and again["existing"] == 3
    assert (tmp_path / "corpus" / "wavs" / "A-1.wav").stat().st_mtime_ns == first
    # by hours: the shortest prefix that is long enough (A-1 alone is over 2 s)
    short = build_festival_corpus(tmp_path / "corpus", sentences, hours=1.5 / 3600, workers=1, progress=False)
    assert short["utterances"] == 1 and len((tmp_path / "corpus" / "metadata.csv").read_text().splitlines()) == 1
    with pytest.raises(ValueError, match="exactly one of num"):
        build_festival_corpus(tmp_path / "x", sentences, num=2, hours=1.0)
    assert festival_problem(voice="no_such_voice") == (
        "Festival cannot load the voice 'no_such_voice'; install it with: apt-get install festival festvox-us-slt-hts")


@pytest.mark.skipif(FESTIVAL_MISSING is not None, reason=f"{FESTIVAL_MISSING}")
def test_synthetic_recipe_stage_0_and_1(tmp_path):
    r = _sh(SYNTHETIC / "run.sh", "--num", "4", "--workers", "2", "--stop-stage", "1", "--config", "smoke",
            "--data-dir", tmp_path / "festival", "--exp-dir", tmp_path / "exp", timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    ids = [u.id for u in scan_corpus(tmp_path / "festival")]
    assert ids == ["LJ001-0001", "LJ001-0002", "LJ001-0003", "LJ001-0004"]
    summary = json.loads((tmp_path / "exp" / "data" / "summary.json").read_text())
    assert summary["split"]["kind"] == "lists" and summary["counts"] == {"train": 4, "val": 0, "test": 0}


# -------------------------------------------------------------------------------- smoke run
def test_smoke_recipe_runs_stages_1_to_6_and_skips_them_the_second_time(tmp_path):
    corpus = make_test_corpus(tmp_path / "corpus", num_utts=30, seconds=(0.5, 1.0), seed=0)
    args = (LJSPEECH / "run.sh", "--config", "smoke", "--data-dir", corpus, "--exp-dir", tmp_path / "exp",
            "--stage", "1", "--stop-stage", "6", "--ngpu", "0")
    start = time.monotonic()
    r = _sh(*args, timeout=900)
    first = time.monotonic() - start
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    exp = tmp_path / "exp"
    assert json.loads((exp / "data" / "summary.json").read_text())["counts"] == {"train": 25, "val": 2, "test": 3}
    test_ids = read_id_list(exp / "data" / "test" / "ids.txt")
    assert sorted(p.stem for p in (exp / "synth" / "test").glob("*.wav")) == sorted(test_ids)
    table = (exp / "eval" / "results.md").read_text()
    assert table.startswith("| system |") and "MCD" in table
    result = json.loads((exp / "eval" / "results.json").read_text())
    assert "mcd" in json.dumps(result).lower()
    for run in ("vocoder", "acoustic"):
        assert (exp / run / "model" / "config.json").is_file()
        assert (exp / run / "features").resolve() == (exp / "features").resolve()
    # second run: every stage is skipped
    start = time.monotonic()
    again = _sh(*args, timeout=300)
    second = time.monotonic() - start
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("done already, skipped") == 6, again.stdout
    assert second < 30 and second < first / 3, (first, second)
    # a new experiment fine-tunes the trained models (--init-*): their weights, a fresh step count
    tuned = tmp_path / "tuned"
    r = _sh(LJSPEECH / "run.sh", "--config", "smoke", "--data-dir", corpus, "--exp-dir", tuned, "--stage", "1",
            "--stop-stage", "4", "--ngpu", "0", "--init-vocoder", exp / "vocoder" / "model",
            "--init-acoustic", exp / "acoustic" / "model", timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    for run in ("vocoder", "acoustic"):
        assert json.loads((tuned / run / "run.json").read_text())["init"] == str(exp / run / "model")
        assert (tuned / run / "state" / "step-00000020.pt").is_file()


def test_extraction_does_not_replace_an_existing_folder_unless_asked(tmp_path, tarball):
    archive = tmp_path / "LJSpeech-1.1.tar.bz2"
    archive.write_bytes(tarball)
    out = tmp_path / "dl"
    (out / "LJSpeech-1.1").mkdir(parents=True)
    (out / "LJSpeech-1.1" / "mine.txt").write_text("user data")
    with pytest.raises(ValueError, match="LJSpeech-1.1 already exists; remove it"):
        extract_tar(archive, out)
    assert [p.name for p in (out / "LJSpeech-1.1").iterdir()] == ["mine.txt"] and len(list(out.iterdir())) == 1
    assert extract_tar(archive, out, overwrite=True) == [out / "LJSpeech-1.1"]
    assert len(scan_corpus(out / "LJSpeech-1.1")) == 8 and not (out / "LJSpeech-1.1" / "mine.txt").exists()


def test_missing_festival_is_named_with_the_install_line(tmp_path):
    message = festival_problem("no-such-festival-binary")
    assert message == ("Festival is not installed ('no-such-festival-binary' is not on PATH); install it with: "
                       "apt-get install festival festvox-us-slt-hts")
    with pytest.raises(ValueError, match="Festival is not installed"):
        build_festival_corpus(tmp_path / "c", [("a", "text")], num=1, festival="no-such-festival-binary")
    assert not (tmp_path / "c").exists()
