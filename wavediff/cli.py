"""The ``wavediff`` command line. Each subcommand parses its options and calls one library function.

Expected failures (bad input, missing files) print one line ``wavediff: error: …`` and exit 2;
outputs are written atomically by the library, so nothing half-written is left behind."""
from __future__ import annotations

import argparse
import sys

from wavediff import __version__

SAMPLER_NAMES = ("fast", "ddpm", "ddim", "dpmpp_2m", "heun")
MEL_PRESETS = ("hifigan", "diffwave")


def _device_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", choices=("cpu", "cuda"), default=None, help="default: cuda if available, else cpu")


# ---------------------------------------------------------------------------------- train
def _add_train(sub) -> None:
    p = sub.add_parser("train", help="train a model", description="Train a model (see `wavediff train vocoder --help`).")
    models = p.add_subparsers(dest="model", metavar="MODEL")
    v = models.add_parser(
        "vocoder",
        help="train a DiffWave-style vocoder on a folder of speech",
        description=(
            "Train a vocoder on an LJSpeech-layout folder (metadata.csv + wavs/) or any folder of audio files. "
            "EXP gets run.json, state/ (resumable training state), logs/ (TensorBoard), features/ (cache) and "
            "model/ (the EMA weights as a checkpoint for `wavediff vocode --checkpoint EXP`). "
            "Multi-GPU: torchrun --nproc_per_node=N -m wavediff train vocoder ..."
        ),
    )
    v.add_argument("--data", required=True, metavar="DIR", help="corpus folder")
    v.add_argument("--out", required=True, metavar="EXP", help="run directory")
    v.add_argument("--config", default="base", metavar="YAML", help="packaged config name (base, tiny) or a YAML file (default: base)")
    v.add_argument("--max-steps", type=int, default=None, metavar="N", help="stop after N optimiser steps")
    _device_arg(v)
    v.add_argument("--resume", action="store_true", help="continue the run in EXP from its latest checkpoint")
    v.set_defaults(func=_run_train_vocoder)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _run_train_vocoder(args) -> int:
    from wavediff.train.vocoder import train_vocoder

    stats = train_vocoder(args.data, args.out, args.config, args.max_steps, args.device, args.resume)
    print(f"trained to step {stats.get('step')}; checkpoint: {args.out}/model")
    return 0


# ---------------------------------------------------------------------------------- vocode
def _add_vocode(sub) -> None:
    p = sub.add_parser(
        "vocode",
        help="mel spectrogram (.npy) or audio (.wav, copy-synthesis) to waveform",
        description=(
            "Vocode INPUT to OUT.wav. INPUT is audio (.wav/.flac/.ogg: copy-synthesis from its mel) or a mel "
            "spectrogram saved with numpy (.npy, shaped [80, frames] or [frames, 80], in the checkpoint's "
            "convention). With --in-dir/--out-dir every such file of DIR is vocoded to DIR2/<name>.wav."
        ),
    )
    p.add_argument("input", nargs="?", metavar="INPUT", help=".wav/.flac/.ogg or .npy file")
    p.add_argument("-o", "--output", metavar="OUT.wav", help="output wav (with INPUT)")
    p.add_argument("--in-dir", metavar="DIR", help="vocode every .wav/.flac/.ogg/.npy file in DIR")
    p.add_argument("--out-dir", metavar="DIR2", help="output folder (with --in-dir)")
    p.add_argument("--checkpoint", metavar="DIR", help="vocoder checkpoint (a run directory EXP works too)")
    p.add_argument("--steps", type=int, default=None, metavar="N", help="sampling steps (default: the checkpoint's schedule, 6 steps)")
    p.add_argument("--sampler", choices=SAMPLER_NAMES, default=None, help="default: fast (DiffWave's fast schedule)")
    p.add_argument("--mel-preset", choices=MEL_PRESETS, default=None, help="convention of .npy inputs; must match the checkpoint's")
    p.add_argument("--seed", type=int, default=None, help="random seed (reproducible output)")
    _device_arg(p)
    p.set_defaults(func=_run_vocode)


def _run_vocode(args) -> int:
    from wavediff.pipelines.files import load_vocoder, vocode_dir, vocode_file

    single = args.input is not None
    if single == bool(args.in_dir):
        raise ValueError("give either INPUT -o OUT.wav or --in-dir DIR --out-dir DIR2")
    if single and not args.output:
        raise ValueError("INPUT needs -o OUT.wav")
    if args.in_dir and not args.out_dir:
        raise ValueError("--in-dir needs --out-dir")
    if args.steps is not None and args.steps < 1:
        raise ValueError("--steps must be >= 1")
    vocoder = load_vocoder(_checkpoint_dir(args.checkpoint), args.device)
    options = {"steps": args.steps, "sampler": args.sampler, "seed": args.seed}
    if single:
        out = vocode_file(vocoder, args.input, args.output, args.mel_preset, **options)
        print(f"wrote {out}")
        return 0
    written, failed = vocode_dir(vocoder, args.in_dir, args.out_dir, args.mel_preset, progress=sys.stderr.isatty(), **options)
    for name, reason in failed:
        print(f"wavediff: skipped {name}: {reason}", file=sys.stderr)
    print(f"wrote {len(written)} file(s) to {args.out_dir}; {len(failed)} failed")
    return 1 if failed else 0


def _checkpoint_dir(path):
    """A run directory EXP stands for its exported EXP/model."""
    from pathlib import Path

    if path is None:
        return None
    p = Path(path)
    if not (p / "config.json").is_file() and (p / "model" / "config.json").is_file():
        return p / "model"
    return p


# --------------------------------------------------------------------------------- convert
def _add_convert(sub) -> None:
    p = sub.add_parser("convert", help="import checkpoints of other projects", description="Convert other projects' checkpoints.")
    kinds = p.add_subparsers(dest="kind", metavar="KIND")
    c = kinds.add_parser(
        "lmnt-diffwave",
        help="an lmnt-com/diffwave weights.pt",
        description="Convert an lmnt-com/diffwave checkpoint (weights.pt, read with weights_only=True) into a wavediff vocoder directory (diffwave mel preset).",
    )
    c.add_argument("weights", metavar="weights.pt")
    c.add_argument("out_dir", metavar="OUT_DIR")
    c.set_defaults(func=_run_convert_lmnt)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _run_convert_lmnt(args) -> int:
    from wavediff.convert import convert_lmnt_checkpoint

    out = convert_lmnt_checkpoint(args.weights, args.out_dir)
    print(f"wrote {out}")
    return 0


# --------------------------------------------------------------------------- tune-schedule
def _add_tune(sub) -> None:
    p = sub.add_parser(
        "tune-schedule",
        help="search the best N-step inference schedule for a vocoder",
        description=(
            "Search an N-step β schedule for DiffWave's fast sampler that minimises the multi-resolution STFT "
            "distance of copy-synthesis on held-out clips of DIR (a grid over geometric schedules, then coordinate "
            "search), and store the winner in the checkpoint's config.json."
        ),
    )
    p.add_argument("--checkpoint", required=True, metavar="DIR")
    p.add_argument("--data", required=True, metavar="DIR", help="corpus folder (held-out clips are taken from it)")
    p.add_argument("--steps", type=int, required=True, metavar="N")
    p.add_argument("--clips", type=int, default=8, help="number of held-out clips (default 8)")
    p.add_argument("--seconds", type=float, default=2.0, help="clip length in seconds (default 2)")
    p.add_argument("--rounds", type=int, default=3, help="coordinate-search rounds (default 3)")
    p.add_argument("--seed", type=int, default=0)
    _device_arg(p)
    p.set_defaults(func=_run_tune)


def _run_tune(args) -> int:
    from wavediff.pipelines.schedule_search import tune_checkpoint

    res = tune_checkpoint(
        _checkpoint_dir(args.checkpoint), args.data, args.steps, clips=args.clips, seconds=args.seconds,
        rounds=args.rounds, seed=args.seed, device=args.device, progress=lambda m: print(m, file=sys.stderr),
    )
    print(f"schedule {['%.3g' % b for b in res.betas]}: distance {res.score:.4f} (was {res.initial_score:.4f}, {res.evaluations} evaluations)")
    return 0


_COMMANDS = (_add_train, _add_vocode, _add_convert, _add_tune)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wavediff",
        description="Diffusion-based speech generation: a DiffWave-style vocoder and diffusion TTS.",
    )
    parser.add_argument("--version", action="version", version=f"wavediff {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in _COMMANDS:
        add(sub)
    return parser


class UserError(Exception):
    """An error caused by the user's input: reported in one line, no traceback."""


def main(argv: list[str] | None = None) -> int:
    import logging

    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        result = args.func(args)
    except (UserError, ValueError, ImportError, FileNotFoundError, NotADirectoryError, IsADirectoryError) as e:
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        print(f"wavediff: error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("wavediff: interrupted", file=sys.stderr)
        return 130
    return int(result or 0)
