"""Same-budget vocoder comparison: lmnt-com/diffwave's own learner vs wavediff, equal GPU time.

Each system trains for the same wall-clock budget (400 s of one GPU) on the same utterances, then
copy-synthesises the same unseen utterances at 6 steps; ``report`` scores both (and the recordings
as a ceiling) with ``wavediff eval``'s metrics. Three subcommands, so the two trainings can run at
the same time on two GPUs of one host and be scored on another machine::

    python benchmarks/same_budget.py prepare --data EXP/data --train 2000 --test 50 --out SB
    CUDA_VISIBLE_DEVICES=0 python benchmarks/same_budget.py train --system lmnt --data SB --out SB/lmnt
    CUDA_VISIBLE_DEVICES=1 python benchmarks/same_budget.py train --system wavediff --data SB --out SB/wavediff
    python benchmarks/same_budget.py report --data SB --runs SB/lmnt SB/wavediff --out-md SB/results.md

``--data`` of ``prepare`` is a prepared recipe split (``recipes/*/run.sh`` stage 1: train/ and test/
folders); ``prepare`` takes the first N utterances (by id) of each.

lmnt side: its ``DiffWaveLearner.train_step`` (its model, Adam at its learning rate, its ``--fp16``
autocast and loss scaling, grad-norm clipping) fed by its own ``Collator`` (random 62-frame crops)
at its default batch of 16; its mels (the ``diffwave`` convention of its ``preprocess.py``) come
from wavediff's implementation of that convention, which matches it (tests/test_mel.py), because
lmnt's preprocessing needs torchaudio's I/O. lmnt keeps no EMA. Its copy-synthesis is its
``predict(fast_sampling=True)`` loop (``wavediff.convert.lmnt_reference_predict``).
wavediff side: ``wavediff train vocoder --max-time SECONDS`` with ``--config`` (default
``benchmarks/conf/same_budget.yaml``: DiffWave-base, PriorGrad prior, bf16, batch 64), then
``Vocoder.vocode`` with its default 6-step schedule. The features of both are computed before
their clocks start (lmnt's ``preprocess`` step; wavediff's feature cache).
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import time
import types
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import environment  # noqa: E402

DEFAULT_CONFIG = Path(__file__).resolve().parent / "conf" / "same_budget.yaml"


# --------------------------------------------------------------------------------------------------
# prepare
# --------------------------------------------------------------------------------------------------


def prepare(data: Path, n_train: int, n_test: int, out: Path) -> dict:
    """out/train and out/test: the first ``n_train`` / ``n_test`` utterances (by id) of the split."""
    from wavediff.data.corpus import scan_corpus
    from wavediff.data.prepare import write_split

    chosen = {}
    for split, n in (("train", n_train), ("test", n_test)):  # both checked before anything is written
        utts = sorted(scan_corpus(data / split), key=lambda u: u.id)
        if len(utts) < n:
            raise ValueError(f"{data / split} has {len(utts)} utterances; asked for {n}")
        chosen[split] = utts[:n]
    out.mkdir(parents=True, exist_ok=True)
    for split, utts in chosen.items():
        write_split(out / split, utts, {u.id: f"{u.id}|{u.text}|{u.text}" for u in utts})
    return {split: len(utts) for split, utts in chosen.items()}


# --------------------------------------------------------------------------------------------------
# train + copy-synthesis
# --------------------------------------------------------------------------------------------------


def _import_lmnt():
    """lmnt's learner, model, params and collator. Its ``dataset`` module imports torchaudio at the
    top for its own file loading, which is not used here; where torchaudio is absent an empty module
    stands in for that import."""
    try:
        import torchaudio  # noqa: F401
    except Exception:  # noqa: BLE001 - absent or broken: lmnt's data loading is not used
        sys.modules["torchaudio"] = types.ModuleType("torchaudio")
    from diffwave.dataset import Collator
    from diffwave.learner import DiffWaveLearner
    from diffwave.model import DiffWave
    from diffwave.params import AttrDict, params

    return DiffWaveLearner, DiffWave, AttrDict(dict(params)), Collator


class _LmntRecords(torch.utils.data.Dataset):
    """lmnt's records: {'audio': float32 [T], 'spectrogram': [frames, 80]} in its conventions."""

    def __init__(self, utterances, device: torch.device):
        from wavediff.audio import MelConfig, load_audio
        from wavediff.audio.mel import MelSpectrogram

        mel_fn = MelSpectrogram(MelConfig.diffwave()).to(device)
        self.records = []
        for u in utterances:
            audio, _ = load_audio(u.path, sample_rate=22050)
            with torch.no_grad():
                mel = mel_fn(torch.from_numpy(audio).to(device))  # [80, frames]
            self.records.append({"audio": audio, "spectrogram": mel.T.cpu().numpy()})

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int) -> dict:
        return dict(self.records[i])


def train_lmnt(data: Path, out: Path, seconds: float, device: torch.device, fp16: bool, workers: int,
               max_steps: int | None, batch_size: int | None = None) -> dict:
    from wavediff.data.corpus import scan_corpus

    DiffWaveLearner, DiffWave, params, Collator = _import_lmnt()
    if batch_size is not None:
        params.batch_size = batch_size
    records = _LmntRecords(scan_corpus(data / "train"), device)
    if len(records) < params.batch_size:  # its loader drops the last partial batch: none would be left
        raise ValueError(f"lmnt's learner needs at least {params.batch_size} training utterances (the batch size); "
                         f"{data / 'train'} has {len(records)}")
    loader = torch.utils.data.DataLoader(
        records, batch_size=params.batch_size, shuffle=True, num_workers=workers,
        collate_fn=Collator(params).collate, pin_memory=device.type == "cuda", drop_last=True,
        persistent_workers=workers > 0,
    )
    model = DiffWave(params).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=params.learning_rate)
    learner = DiffWaveLearner(str(out / "lmnt_model"), model, loader, optimizer, params, fp16=fp16)
    # lmnt's DiffWaveLearner.train() minus its summaries and checkpoints, stopped by the clock
    start = time.perf_counter()
    losses = []
    while True:
        for features in loader:
            features = {k: v.to(device) for k, v in features.items()}
            loss = learner.train_step(features)
            if torch.isnan(loss).any():
                raise RuntimeError(f"lmnt: NaN loss at step {learner.step}")
            learner.step += 1
            if learner.step % 100 == 0:
                losses.append(float(loss))
            if time.perf_counter() - start >= seconds or (max_steps and learner.step >= max_steps):
                break
        else:
            continue
        break
    elapsed = time.perf_counter() - start
    model.eval()
    torch.save({"model": model.state_dict(), "step": learner.step}, out / "lmnt_weights.pt")
    return {"train_steps": learner.step, "train_seconds": elapsed, "batch_size": params.batch_size,
            "fp16": fp16, "loss_every_100": losses, "model": model, "params": params}


def train_wavediff(data: Path, out: Path, seconds: float, device: torch.device, config: Path,
                   max_steps: int | None) -> dict:
    from wavediff.data.vocoder import VocoderDataset
    from wavediff.data.corpus import scan_corpus
    from wavediff.pipelines.vocoder import Vocoder
    from wavediff.train.vocoder import load_recipe_config, resolve_vocoder_config, train_vocoder

    run = out / "run"
    # the feature cache, filled before the clock starts (as lmnt's preprocess step is)
    vcfg = resolve_vocoder_config(load_recipe_config(config))
    VocoderDataset(scan_corpus(data / "train"), vcfg.mel, crop_frames=1, cache_dir=run / "features").precompute(
        num_workers=8, progress=False)
    start = time.perf_counter()
    stats = train_vocoder(data / "train", run, config, max_steps=max_steps or 10**9, device=device.type,
                          max_time=seconds)
    elapsed = time.perf_counter() - start
    return {"train_steps": stats["step"], "train_seconds": elapsed, "loss": stats["loss"],
            "model": Vocoder.from_pretrained(run / "model", device=device)}


@torch.no_grad()
def copy_synthesis(system: str, trained: dict, data: Path, gen: Path, device: torch.device, steps: int,
                   mel_match: int = 0) -> float:
    """Vocode each test recording's own mel to gen/<id>.wav; returns the seconds it took (without
    ``mel_match``). With ``mel_match`` > 0, each output is also written to gen_mel_match/<id>.wav after
    that many iterations of :func:`wavediff.audio.match_mel` against the mel it was vocoded from (in
    the system's own mel convention): the same waveform, with and without the correction."""
    from wavediff.audio import MelConfig, load_audio, match_mel, save_audio
    from wavediff.audio.mel import MelSpectrogram
    from wavediff.convert import lmnt_reference_predict
    from wavediff.data.corpus import scan_corpus

    gen.mkdir(parents=True, exist_ok=True)
    matched = gen.with_name(gen.name + "_mel_match")
    if mel_match:
        matched.mkdir(parents=True, exist_ok=True)
    lmnt_mel = MelSpectrogram(MelConfig.diffwave()).to(device) if system == "lmnt" else None
    seconds = 0.0
    for i, u in enumerate(sorted(scan_corpus(data / "test"), key=lambda u: u.id)):
        audio, _ = load_audio(u.path, sample_rate=22050)
        wav = torch.from_numpy(audio).to(device)
        torch.manual_seed(i)
        start = time.perf_counter()
        if system == "lmnt":
            params = trained["params"]
            if steps != len(params.inference_noise_schedule):
                raise ValueError(f"lmnt's fast schedule has {len(params.inference_noise_schedule)} steps, not {steps}")
            mel, mel_config = lmnt_mel(wav), MelConfig.diffwave()
            out = lmnt_reference_predict(trained["model"], mel, params, device)[0]
        else:
            vocoder = trained["model"]
            mel, mel_config = vocoder.mel(wav), vocoder.config.mel
            out = vocoder(mel, steps=steps, seed=i, mel_match=0)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds += time.perf_counter() - start
        save_audio(gen / f"{u.id}.wav", out.float().cpu(), 22050)
        if mel_match:
            fixed = match_mel(out.float().flatten()[None], mel.float()[None], mel_config, n_iter=mel_match)[0]
            save_audio(matched / f"{u.id}.wav", fixed.cpu(), 22050)
    return seconds


def train_and_synthesise(args) -> dict:
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data = Path(args.data)
    if args.system == "lmnt":
        trained = train_lmnt(data, out, args.seconds, device, not args.no_fp16 and device.type == "cuda",
                             args.workers, args.max_steps, args.lmnt_batch_size)
    else:
        trained = train_wavediff(data, out, args.seconds, device, Path(args.config), args.max_steps)
    synth_seconds = copy_synthesis(args.system, trained, data, out / "gen", device, args.steps, args.mel_match)
    result = {k: v for k, v in trained.items() if k not in ("model", "params")}
    result.update(system=args.system, budget_seconds=args.seconds, synthesis_steps=args.steps,
                  synthesis_seconds=synth_seconds, mel_match=args.mel_match, environment=environment(device))
    if args.system == "wavediff":
        result["config"] = Path(args.config).name
    (out / "train.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))
    return result


# --------------------------------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------------------------------


def report(data: Path, runs: list[Path], metrics: str, out_json: Path | None, out_md: Path | None) -> str:
    from wavediff.eval.report import evaluate_folders, write_report

    test = data / "test"
    ceiling = [m for m in metrics.split(",") if m in ("wer", "dnsmos")]
    results = [evaluate_folders(test, None, metrics=ceiling, name="recordings")] if ceiling else []
    for run in runs:
        info = json.loads((run / "train.json").read_text())
        system = info["system"] + (f" ({Path(info['config']).stem})" if info.get("config") else "")
        name = (f"{system}: {info['train_steps']} training steps in {info['budget_seconds']:.0f} s, "
                f"{info['synthesis_steps']}-step synthesis")
        results.append(evaluate_folders(test, run / "gen", metrics=metrics, name=name))
        if info.get("mel_match") and (run / "gen_mel_match").is_dir():
            results.append(evaluate_folders(test, run / "gen_mel_match", metrics=metrics,
                                            name=f"{name}, then {info['mel_match']} match_mel iterations"))
    return write_report(results, out_json, out_md)


# --------------------------------------------------------------------------------------------------


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    pp = sub.add_parser("prepare", help="subsets of a prepared split")
    pp.add_argument("--data", required=True, help="a prepared split (train/ and test/ folders)")
    pp.add_argument("--train", type=int, default=2000, help="training utterances (default 2000)")
    pp.add_argument("--test", type=int, default=50, help="unseen utterances to copy-synthesise (default 50)")
    pp.add_argument("--out", required=True)
    pt = sub.add_parser("train", help="train one system for the budget, then copy-synthesise the test set")
    pt.add_argument("--system", choices=("lmnt", "wavediff"), required=True)
    pt.add_argument("--data", required=True, help="the folder `prepare` wrote")
    pt.add_argument("--out", required=True)
    pt.add_argument("--seconds", type=float, default=400.0, help="training budget, wall clock (default 400)")
    pt.add_argument("--max-steps", type=int, default=None, help="also stop after this many steps (for tests)")
    pt.add_argument("--steps", type=int, default=6, help="sampling steps of the copy-synthesis (default 6)")
    pt.add_argument("--mel-match", type=int, default=0, metavar="N",
                    help="also write gen_mel_match/: each output after N match_mel iterations (default 0: not)")
    pt.add_argument("--config", default=str(DEFAULT_CONFIG), help="wavediff's training config")
    pt.add_argument("--device", default=None)
    pt.add_argument("--workers", type=int, default=8, help="lmnt's data-loader workers")
    pt.add_argument("--no-fp16", action="store_true", help="lmnt without its --fp16 mode")
    pt.add_argument("--lmnt-batch-size", type=int, default=None, help="lmnt's batch size (default: its own, 16)")
    pt.add_argument("--seed", type=int, default=0)
    pr = sub.add_parser("report", help="score the runs' copy-syntheses")
    pr.add_argument("--data", required=True)
    pr.add_argument("--runs", nargs="+", required=True)
    pr.add_argument("--metrics", default="wer,dnsmos,mrstft,mcd,stoi,pesq")
    pr.add_argument("--out-json", default=None)
    pr.add_argument("--out-md", default=None)
    args = p.parse_args(argv)
    try:
        return _dispatch(args)
    except ValueError as e:  # bad input: one line, no traceback
        p.exit(2, f"{p.prog}: error: {e}\n")


def _dispatch(args) -> int:
    if args.command == "prepare":
        print(json.dumps(prepare(Path(args.data), args.train, args.test, Path(args.out))))
    elif args.command == "train":
        train_and_synthesise(args)
    else:
        print(report(Path(args.data), [Path(r) for r in args.runs], args.metrics,
                     Path(args.out_json) if args.out_json else None, Path(args.out_md) if args.out_md else None))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
