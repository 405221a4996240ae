"""End-to-end ``wavediff synth`` speed on a CPU: text in, wav file out, one fresh process per sentence.

Each sentence runs in a new Python process that imports ``wavediff.cli`` (torch, numpy: the "Python
import" the target excludes) and then times ``main(["synth", TEXT, "-o", OUT, ...])``: loading the
default voice (or ``--checkpoint``/``--vocoder``), the text front end's first use (gruut and its
lexicon are loaded lazily, so they are counted), the acoustic model, the vocoder and writing the wav.
The real-time factor is that time over the duration of the wav written; the process's whole wall time
(interpreter start and imports included) is reported beside it.

    python benchmarks/synth_speed.py --threads 2                 # the bundled default voice
    python benchmarks/synth_speed.py --threads 2 --json out.json --vocoder-steps 4
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import soundfile as sf

SENTENCES = [  # 3-5 s each when spoken
    "The quick brown fox jumps over the lazy dog.",
    "Please call me back when you get home tonight.",
    "The train to Boston leaves at half past seven.",
    "It is going to rain this afternoon, so take an umbrella.",
    "Dr. Smith will see you in ten minutes.",
]

_CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
import torch
torch.set_num_threads(int(sys.argv[1]))
from wavediff.cli import main
t1 = time.perf_counter()
rc = main(sys.argv[3:])
t2 = time.perf_counter()
print(json.dumps({"rc": rc, "import_s": t1 - t0, "synth_s": t2 - t1}))
"""


def run_one(text: str, out: Path, threads: int, extra: list[str]) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    cmd = [sys.executable, "-c", _CHILD, str(threads), "--", "synth", text, "-o", str(out), "--device", "cpu", *extra]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"synth failed for {text!r}: {proc.stderr.strip().splitlines()[-1:]}")
    timing = json.loads(proc.stdout.strip().splitlines()[-1])
    info = sf.info(str(out))
    audio_s = info.frames / info.samplerate
    return {"text": text, "audio_s": audio_s, "process_wall_s": wall, **timing,
            "rtf": timing["synth_s"] / audio_s, "rtf_with_imports": wall / audio_s}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Any other option (--seed, --checkpoint, --vocoder, --precision, ...) is passed to `wavediff synth`.",
    )
    p.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    p.add_argument("--repeats", type=int, default=1, help="runs of each sentence (default 1)")
    p.add_argument("--json", default=None, help="write the results here")
    args, extra = p.parse_known_args(argv)  # anything else goes to `wavediff synth`
    import torch

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            for i, text in enumerate(SENTENCES):
                res = run_one(text, Path(tmp) / f"{i}.wav", args.threads, extra)
                results.append(res)
                print(f"{res['audio_s']:.2f} s audio  synth {res['synth_s']:.2f} s (RTF {res['rtf']:.3f})  "
                      f"process {res['process_wall_s']:.2f} s (RTF {res['rtf_with_imports']:.3f})  {text}", flush=True)
    summary = {
        "threads": args.threads, "synth_options": extra, "torch": torch.__version__,
        "cpu": (os.uname().machine, os.cpu_count()),
        "mean_rtf": statistics.mean(r["rtf"] for r in results),
        "median_rtf": statistics.median(r["rtf"] for r in results),
        "max_rtf": max(r["rtf"] for r in results),
        "mean_rtf_with_imports": statistics.mean(r["rtf_with_imports"] for r in results),
        "mean_import_s": statistics.mean(r["import_s"] for r in results),
        "runs": results,
    }
    print(f"mean RTF {summary['mean_rtf']:.3f} (median {summary['median_rtf']:.3f}, max {summary['max_rtf']:.3f}); "
          f"with interpreter start and "
          f"imports {summary['mean_rtf_with_imports']:.3f}; imports {summary['mean_import_s']:.2f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
