"""The ``wavediff`` command line. Each subcommand parses its options and calls one library function.

Expected failures (bad input, missing files) print one line ``wavediff: error: …`` and exit 2;
outputs are written atomically by the library, so nothing half-written is left behind."""
from __future__ import annotations

import argparse
import gc
import os
import sys

from wavediff import __version__

SAMPLER_NAMES = ("fast", "ddpm", "ddim", "dpmpp_2m", "heun")
MEL_PRESETS = ("hifigan", "diffwave")


def _device_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", choices=("cpu", "cuda"), default=None, help="default: cuda if available, else cpu")


def _mel_match_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--mel-match", type=int, default=None, metavar="N",
        help="iterations that rescale the vocoder's output spectrum until its mel is the input mel "
             "(default: the vocoder's setting, 16 for the bundled one; 0: off)",
    )


def _check_mel_match(value: int | None) -> None:
    if value is not None and value < 0:
        raise ValueError("--mel-match must be >= 0")


def _precision_arg(p: argparse.ArgumentParser) -> None:
    from wavediff.device import PRECISIONS

    p.add_argument("--precision", choices=PRECISIONS, default="auto",
                   help="the networks' arithmetic; auto: bfloat16 where the hardware has it (a GPU, a CPU with "
                        "AVX512-BF16 or AMX), else float32")


# ---------------------------------------------------------------------------------- train
_TRAINABLE = {
    "vocoder": (
        "train a DiffWave-style vocoder on a folder of speech",
        "Train a vocoder on an LJSpeech-layout folder (metadata.csv + wavs/) or any folder of audio files. "
        "EXP gets run.json, state/ (resumable training state), logs/ (TensorBoard), features/ (cache) and "
        "model/ (the EMA weights as a checkpoint for `wavediff vocode --checkpoint EXP`).",
        "corpus folder",
    ),
    "acoustic": (
        "train the text-to-mel diffusion acoustic model on a transcribed corpus",
        "Train the acoustic model (transformer phoneme encoder, durations by monotonic alignment search, "
        "mel diffusion from N(mu, I)) on an LJSpeech-layout folder (metadata.csv with transcripts + wavs/). "
        "EXP has the same layout as a vocoder run; TensorBoard shows mel and alignment plots.",
        "corpus folder with transcripts",
    ),
}


def _add_train(sub) -> None:
    from wavediff.configs import packaged_configs  # light: no trainer, no YAML parser

    p = sub.add_parser("train", help="train a model", description="Train a model (see `wavediff train vocoder --help`).")
    models = p.add_subparsers(dest="model", metavar="MODEL")
    for name, (help_text, description, data_help) in _TRAINABLE.items():
        m = models.add_parser(
            name, help=help_text,
            description=f"{description} Multi-GPU: torchrun --nproc_per_node=N -m wavediff train {name} ...",
        )
        m.add_argument("--data", required=True, metavar="DIR", help=data_help)
        m.add_argument("--out", required=True, metavar="EXP", help="run directory")
        m.add_argument("--config", default="base", metavar="YAML",
                       help=f"packaged config name ({', '.join(packaged_configs(name))}) or a YAML file (default: base)")
        m.add_argument("--max-steps", type=int, default=None, metavar="N", help="stop after N optimiser steps")
        m.add_argument("--max-time", type=float, default=None, metavar="SECONDS",
                       help="stop after SECONDS of wall-clock time in this run (state saved; --resume continues)")
        _device_arg(m)
        m.add_argument("--resume", action="store_true", help="continue the run in EXP from its latest checkpoint")
        m.add_argument("--init", default=None, metavar="MODEL_DIR",
                       help=f"start a new run from a trained {name} model's weights (fine-tuning; same config); "
                            "default: the bundled default voice's")
        if name == "vocoder":
            m.add_argument("--mels", default=None, metavar="DIR",
                           help="train on these mels (DIR/<id>.npy, e.g. from `wavediff data aligned-mels`) instead "
                                "of the recordings' own (the config's data.mel_dir)")
        m.set_defaults(func=_run_train)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _train_result(stats: dict, out) -> int:
    """Exit 0 when training reached its target; 130 when it was stopped (state saved, resumable)."""
    if stats.get("time_limited"):
        print(f"--max-time reached at step {stats.get('step')}; checkpoint: {out}/model (--resume continues)")
        return 0
    if stats.get("interrupted"):
        print(f"stopped at step {stats.get('step')}; run again with --resume to continue", file=sys.stderr)
        return 130
    print(f"trained to step {stats.get('step')}; checkpoint: {out}/model")
    return 0


def _run_train(args) -> int:
    if args.model == "vocoder":
        from wavediff.train.vocoder import train_vocoder as train
    else:
        from wavediff.train.acoustic import train_acoustic as train
    if args.max_time is not None and not args.max_time > 0:
        raise ValueError(f"--max-time must be > 0 seconds, got {args.max_time}")
    extra = {}
    if getattr(args, "mels", None) is not None:
        extra["overrides"] = {"data": {"mel_dir": os.path.abspath(args.mels)}}
    stats = train(args.data, args.out, args.config, args.max_steps, args.device, args.resume, max_time=args.max_time,
                  init=args.init, **extra)
    return _train_result(stats, args.out)


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
    p.add_argument("--steps", type=int, default=None, metavar="N", help="sampling steps (default: the checkpoint's schedule)")
    p.add_argument("--sampler", choices=SAMPLER_NAMES, default=None, help="default: fast (DiffWave's fast schedule)")
    p.add_argument("--mel-preset", choices=MEL_PRESETS, default=None, help="convention of .npy inputs; must match the checkpoint's")
    p.add_argument("--seed", type=int, default=None, help="random seed (reproducible output)")
    _mel_match_arg(p)
    _precision_arg(p)
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
    _check_mel_match(args.mel_match)
    options = {"steps": args.steps, "sampler": args.sampler, "seed": args.seed, "precision": args.precision,
               "mel_match": args.mel_match}
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



# ----------------------------------------------------------------------------------- prune
def _add_prune(sub) -> None:
    p = sub.add_parser(
        "prune",
        help="a narrower copy of a vocoder, to fine-tune into a faster one",
        description=(
            "Write a copy of a vocoder checkpoint with fewer residual channels: the N best-scoring channels "
            "of each kind (residual stream, each layer's gated channels, skip sum, skip projection) by the norms of "
            "the weights that write and read them, everything else as in the original (schedule and prior included). "
            "Its output starts far from the original's; fine-tune it with `wavediff train vocoder --init OUT` and a "
            "config of that width (packaged: small64_infergrad, small48_infergrad)."
        ),
    )
    p.add_argument("--checkpoint", required=True, metavar="DIR", help="vocoder checkpoint, or default: the bundled one")
    p.add_argument("--channels", type=int, required=True, metavar="N", help="residual channels to keep")
    p.add_argument("--out", required=True, metavar="OUT", help="folder for the pruned checkpoint")
    p.set_defaults(func=_run_prune)


def _run_prune(args) -> int:
    from wavediff.nn.prune import prune_channels
    from wavediff.pipelines.vocoder import Vocoder

    src = None if args.checkpoint == "default" else _checkpoint_dir(args.checkpoint)
    if src is not None and not (src / "config.json").is_file():
        raise UserError(f"{args.checkpoint!r} is not a checkpoint folder (no config.json)")
    vocoder = Vocoder.from_pretrained(src, device="cpu")
    before = vocoder.net.config.residual_channels
    vocoder.net = prune_channels(vocoder.net, args.channels)
    vocoder.config.model = vocoder.net.config
    out = vocoder.save_pretrained(args.out)
    print(f"{before} -> {args.channels} channels, {vocoder.net.num_parameters():,} parameters: {out}")
    return 0


# ----------------------------------------------------------------------------------- synth
def _add_synth(sub) -> None:
    p = sub.add_parser(
        "synth",
        help="text to speech",
        description=(
            "Synthesise speech from TEXT ('-' reads standard input) into OUT.wav, or every line of FILE "
            "(lines 'id|text' or plain text) into DIR/<id>.wav. Long text is split into sentences. Without "
            "--checkpoint the bundled default voice is used."
        ),
    )
    p.add_argument("text", nargs="?", metavar="TEXT", help="the text to speak, or - for standard input")
    p.add_argument("-o", "--output", metavar="OUT.wav", help="output wav (with TEXT)")
    p.add_argument("--from-file", metavar="FILE", help="one utterance per line: 'id|text' or plain text")
    p.add_argument("--out-dir", metavar="DIR", help="output folder (with --from-file)")
    p.add_argument("--checkpoint", metavar="DIR", help="acoustic model checkpoint (a run directory EXP works too)")
    p.add_argument("--vocoder", metavar="DIR", help="vocoder checkpoint (default: the bundled one), or griffin-lim: no neural vocoder (a baseline; --vocoder-steps are its iterations, default 32)")
    p.add_argument("--steps", type=int, default=None, metavar="N", help="acoustic-model diffusion steps (default: the checkpoint's)")
    p.add_argument("--vocoder-steps", type=int, default=None, metavar="N", help="vocoder steps (default: the vocoder's schedule)")
    p.add_argument("--temperature", type=float, default=None, help="Grad-TTS temperature: larger is calmer (default: the checkpoint's)")
    p.add_argument("--length-scale", type=float, default=None, help="speaking rate: > 1 slower, < 1 faster (default 1)")
    p.add_argument("--seed", type=int, default=None, help="random seed (reproducible output)")
    p.add_argument("--save-mel", action="store_true", help="also write the mel as OUT.npy and a spectrogram OUT.png")
    _mel_match_arg(p)
    _precision_arg(p)
    _device_arg(p)
    p.set_defaults(func=_run_synth)


def _run_synth(args) -> int:
    from wavediff.pipelines.files import load_tts, read_text_lines, synthesize_to_file

    if (args.text is None) == (args.from_file is None):
        raise ValueError("give either TEXT -o OUT.wav or --from-file FILE --out-dir DIR")
    if args.text is not None and not args.output:
        raise ValueError("TEXT needs -o OUT.wav")
    if args.from_file and not args.out_dir:
        raise ValueError("--from-file needs --out-dir")
    for name in ("steps", "vocoder_steps"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1")
    _check_mel_match(args.mel_match)
    for name in ("temperature", "length_scale"):
        value = getattr(args, name)
        if value is not None and not value > 0:
            raise ValueError(f"--{name.replace('_', '-')} must be > 0")
    if args.text is not None:
        text = sys.stdin.read() if args.text == "-" else args.text
        items = [(None, text)]
    else:
        items = read_text_lines(args.from_file)
    from wavediff.pipelines.vocoder import GRIFFIN_LIM

    vocoder = args.vocoder if args.vocoder == GRIFFIN_LIM else _checkpoint_dir(args.vocoder)
    tts = load_tts(_checkpoint_dir(args.checkpoint), vocoder, args.device)
    options = dict(steps=args.steps, vocoder_steps=args.vocoder_steps, temperature=args.temperature,
                   length_scale=args.length_scale, seed=args.seed, precision=args.precision, mel_match=args.mel_match)
    failed = 0
    from pathlib import Path

    for k, (utt_id, text) in enumerate(items):
        out = Path(args.output) if utt_id is None else Path(args.out_dir) / f"{utt_id}.wav"
        try:
            synthesize_to_file(tts, text, out, save_mel=args.save_mel, **options)
        except ValueError as e:
            if utt_id is None:
                raise
            failed += 1
            print(f"wavediff: skipped {utt_id}: {e}", file=sys.stderr)
            continue
        print(f"wrote {out}")
    return 1 if failed else 0


# ------------------------------------------------------------------------------------ eval
def _add_eval(sub) -> None:
    p = sub.add_parser(
        "eval",
        help="evaluate models or compare generated speech with recordings",
        description=(
            "Compare generated speech with reference recordings: --ref DIR --gen DIR2 pairs files by name and "
            "writes per-file values and mean ± std (JSON, Markdown table) of MR-STFT distance, MCD, PESQ-WB, STOI, "
            "F0 RMSE and V/UV error, pocketsphinx WER against --text (or the reference folder's metadata.csv), "
            "DNSMOS, and with --timings the real-time factor (needs the eval extra: pip install 'wavediff[eval]'). "
            "Without --gen the references alone are scored with wer,dnsmos (a ceiling row). "
            "--nll instead: the acoustic model's variational bound on held-out utterances of DIR, in bits per mel value."
        ),
    )
    p.add_argument("--ref", metavar="DIR", help="reference recordings (a folder of audio or an LJSpeech-layout corpus)")
    p.add_argument("--gen", nargs="+", action="extend", metavar="DIR2",
                   help="generated audio folder(s), file names as in --ref; one table row each (--gen A B or --gen A --gen B)")
    p.add_argument("--text", metavar="FILE", help="WER references: metadata.csv or 'id|text' lines")
    p.add_argument("--metrics", metavar="LIST", help="comma-separated subset of mrstft,mcd,pesq,stoi,f0,wer,dnsmos (default: all)")
    p.add_argument("--timings", metavar="FILE", help="synthesis seconds per file ({id: s} JSON or 'id|s' lines): adds RTF")
    p.add_argument("--ceiling", action="store_true", help="also score the references with wer,dnsmos as a first row")
    p.add_argument("--out-json", metavar="X.json", help="write the full result (per file and summary) as JSON")
    p.add_argument("--out-md", metavar="X.md", help="write the Markdown table")
    p.add_argument("--nll", action="store_true", help="report the acoustic model's likelihood bound")
    p.add_argument("--checkpoint", metavar="DIR", help="acoustic model checkpoint (with --nll)")
    p.add_argument("--data", metavar="DIR", help="transcribed corpus (with --nll)")
    p.add_argument("--utterances", type=int, default=8, metavar="N", help="held-out utterances to use (default 8)")
    p.add_argument("--json", metavar="FILE", help="also write the result as JSON (with --nll)")
    p.add_argument("--seed", type=int, default=0)
    _device_arg(p)
    p.set_defaults(func=_run_eval)


def _run_eval(args) -> int:
    if not args.nll and args.ref:
        from pathlib import Path

        from wavediff.eval.report import NON_INTRUSIVE_METRICS, evaluate_folders, parse_metrics, read_texts, read_timings, write_report

        texts = read_texts(args.text) if args.text else None
        timings = read_timings(args.timings) if args.timings else None
        chosen = parse_metrics(args.metrics, intrusive=bool(args.gen))

        def progress(done: int, total: int, utt_id: str) -> None:
            if done == total or done % 25 == 0:
                print(f"  {done}/{total} files", file=sys.stderr)

        show = True if sys.stderr.isatty() else progress
        runs = []
        if args.ceiling or not args.gen:
            has_text = texts is not None or Path(args.ref, "metadata.csv").is_file()
            ceiling = [m for m in chosen if m in NON_INTRUSIVE_METRICS and (m != "wer" or has_text or (args.metrics and not args.gen))]
            if not ceiling:
                raise ValueError("--ceiling scores the references with wer or dnsmos: add one of them to --metrics")
            runs.append((None, ceiling, "reference"))
        names = [Path(g).resolve().name for g in args.gen or []]
        for k, gen in enumerate(args.gen or []):
            runs.append((gen, chosen, names[k] if names.count(names[k]) == 1 else gen))
        results = [evaluate_folders(args.ref, gen, texts, metrics, timings, show, name) for gen, metrics, name in runs]
        print(write_report(results, args.out_json, args.out_md), end="")
        for path in (args.out_json, args.out_md):
            if path:
                print(f"wrote {path}", file=sys.stderr)
        return 0
    if not args.nll:
        raise ValueError("say what to evaluate: --ref DIR [--gen DIR2] (compare audio), or --nll")
    if not args.checkpoint or not args.data:
        raise ValueError("--nll needs --checkpoint DIR and --data DIR")
    from wavediff.pipelines.files import acoustic_nll

    res = acoustic_nll(_checkpoint_dir(args.checkpoint), args.data, args.utterances, args.device, args.seed)
    print(f"variational bound: {res['bits_per_value']:.4f} bits per mel value over {res['utterances']} utterances "
          f"({res['values']} values); prior N(mu, I) alone: {res['prior_only_bits_per_value']:.4f}")
    if args.json:
        import json

        from wavediff.pipelines.files import atomic_write_text

        atomic_write_text(args.json, json.dumps(res, indent=2) + "\n")
    return 0


# ------------------------------------------------------------------------------------ data
def _add_data(sub) -> None:
    p = sub.add_parser(
        "data",
        help="corpus preparation for recipes (download, prepare, features, festival, aligned mels)",
        description="Corpus preparation steps used by recipes/*/run.sh (see `wavediff data STEP --help`).",
    )
    steps = p.add_subparsers(dest="step", metavar="STEP")
    d = steps.add_parser(
        "download",
        help="download a corpus archive (resumable, checksum-verified) and extract it safely",
        description=(
            "Download URL into DIR (an interrupted download resumes with an HTTP Range request), verify its "
            "checksum, and extract it (members that would land outside DIR are refused). Prints the extracted "
            "folder. A second run finds the finished extraction and does nothing."
        ),
    )
    d.add_argument("url", metavar="URL")
    d.add_argument("--out", required=True, metavar="DIR", help="download folder")
    d.add_argument("--sha256", default=None, metavar="HEX", help="expected SHA-256 of the archive")
    d.add_argument("--md5", default=None, metavar="HEX", help="expected MD5 of the archive")
    d.add_argument("--no-extract", action="store_true", help="only download and verify")
    d.add_argument("--remove-archive", action="store_true", help="delete the archive after extraction")
    d.set_defaults(func=_run_data_download)
    r = steps.add_parser(
        "prepare",
        help="check a corpus and write its train/val/test folders",
        description=(
            "Check the corpus DIR (LJSpeech layout or a folder of audio) and write OUT/{train,val,test}/ "
            "(metadata.csv, wavs/ as links, ids.txt, text.txt with 'id|text') and OUT/summary.json. The split "
            "comes from the id lists split_{train,val,test}.txt in --split-from, or is a seeded split by id."
        ),
    )
    r.add_argument("--data", required=True, metavar="DIR", help="corpus folder")
    r.add_argument("--out", required=True, metavar="OUT", help="output folder")
    r.add_argument("--split", choices=("auto", "lists", "seeded"), default="auto",
                   help="auto (default): the lists when the corpus has their ids, else seeded")
    r.add_argument("--split-from", metavar="LISTS", default=None, help="folder of split_{train,val,test}.txt")
    r.add_argument("--val", default="0.02", metavar="N", help="seeded split: validation utterances (a count, or a fraction like 0.02)")
    r.add_argument("--test", default="0.02", metavar="N", help="seeded split: test utterances (a count or a fraction)")
    r.add_argument("--seed", type=int, default=0, help="seeded split: seed (default 0)")
    r.set_defaults(func=_run_data_prepare)
    f = steps.add_parser(
        "features",
        help="precompute the mel feature cache that training runs share",
        description=(
            "Compute the mels of every utterance of DIR under the mel conventions of the given training configs "
            "into CACHE (the cache `wavediff train` keeps in EXP/features; link EXP/features to CACHE to share it)."
        ),
    )
    f.add_argument("--data", required=True, metavar="DIR", help="corpus folder")
    f.add_argument("--out", required=True, metavar="CACHE", help="feature cache folder")
    f.add_argument("--vocoder-config", metavar="YAML", default=None, help="vocoder training config (name or YAML)")
    f.add_argument("--acoustic-config", metavar="YAML", default=None, help="acoustic training config (name or YAML)")
    f.add_argument("--workers", type=int, default=0, help="worker processes (default 0: in this process)")
    f.set_defaults(func=_run_data_features)
    s = steps.add_parser(
        "festival",
        help="build an LJSpeech-layout corpus by reading sentences with Festival's HTS voice",
        description=(
            "Read the sentences of FILE ('id|text' lines, e.g. LJSpeech's transcripts) with Festival's "
            "cmu_us_slt_arctic_hts voice, resampled to 22050 Hz, into OUT/metadata.csv and OUT/wavs/. Wavs already "
            "there are kept. Needs: apt-get install festival festvox-us-slt-hts"
        ),
    )
    s.add_argument("--out", required=True, metavar="DIR", help="corpus folder to write")
    s.add_argument("--sentences", required=True, metavar="FILE", help="'id|text' lines")
    size = s.add_mutually_exclusive_group(required=True)
    size.add_argument("--num", type=int, metavar="N", help="number of utterances (the first N sentences)")
    size.add_argument("--hours", type=float, metavar="H", help="hours of audio")
    s.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="parallel festival processes (default: CPU count)")
    s.add_argument("--voice", default="cmu_us_slt_arctic_hts", help="Festival voice (default cmu_us_slt_arctic_hts)")
    s.add_argument("--shuffle-seed", type=int, default=None, metavar="S", help="take sentences in a seeded random order")
    s.set_defaults(func=_run_data_festival)
    c = steps.add_parser(
        "recipe-config",
        help="read a recipe's conf/NAME.yaml; write the merged training configs; print shell variables",
        description=(
            "Validate the recipe config CONF, write OUT/vocoder.yaml and OUT/acoustic.yaml (the named training "
            "configs with the recipe's overrides and step counts) and print the recipe's settings as shell "
            "assignments, for run.sh's eval \"$(...)\"."
        ),
    )
    c.add_argument("conf", metavar="CONF")
    c.add_argument("--out", required=True, metavar="DIR", help="folder for the merged training configs")
    c.set_defaults(func=_run_data_recipe_config)
    a = steps.add_parser(
        "aligned-mels",
        help="an acoustic model's mels of a corpus, aligned to its recordings (to fine-tune a vocoder on)",
        description=(
            "Write the acoustic model's mel of every transcribed utterance of DIR to OUT/<id>.npy, sampled as "
            "`wavediff synth` samples but with the durations that alignment search finds against the recording, "
            "so each has the recording's frames and lines up with its audio (ground-truth-aligned mels). "
            "`wavediff train vocoder --mels OUT` then trains on them. Files already in OUT are kept."
        ),
    )
    a.add_argument("--data", required=True, metavar="DIR", help="corpus folder with transcripts")
    a.add_argument("--out", required=True, metavar="OUT", help="folder for the mels")
    a.add_argument("--checkpoint", metavar="DIR", help="acoustic model checkpoint (default: the bundled one)")
    a.add_argument("--cache", metavar="CACHE", default=None, help="feature cache to read the recordings' mels from")
    a.add_argument("--batch-size", type=int, default=16, metavar="N", help="utterances per batch (default 16)")
    a.add_argument("--steps", type=int, default=None, metavar="N", help="diffusion steps (default: the checkpoint's)")
    a.add_argument("--temperature", type=float, default=None, help="Grad-TTS temperature (default: the checkpoint's)")
    a.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    _precision_arg(a)
    _device_arg(a)
    a.set_defaults(func=_run_data_aligned_mels)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _run_data_download(args) -> int:
    from wavediff.data.download import download, fetch_corpus

    progress = sys.stderr.isatty()
    if args.no_extract:
        name = args.url.rstrip("/").rsplit("/", 1)[-1].split("?", 1)[0]
        from pathlib import Path

        print(download(args.url, Path(args.out) / name, sha256=args.sha256, md5=args.md5, progress=progress))
        return 0
    print(fetch_corpus(args.url, args.out, sha256=args.sha256, md5=args.md5, keep_archive=not args.remove_archive, progress=progress))
    return 0


def _run_data_prepare(args) -> int:
    from wavediff.data.prepare import prepare_corpus

    res = prepare_corpus(args.data, args.out, split=args.split, lists_dir=args.split_from, val=args.val, test=args.test, seed=args.seed)
    counts, check = res["counts"], res["check"]
    print(f"{check['utterances']} utterances ({check['hours']:.2f} h, {check['layout']} layout), "
          f"{res['split']['kind']} split: train {counts['train']}, val {counts['val']}, test {counts['test']} -> {args.out}")
    return 0


def _run_data_features(args) -> int:
    from wavediff.data.prepare import compute_features, recipe_mel_configs

    if args.vocoder_config is None and args.acoustic_config is None:
        raise ValueError("give --vocoder-config and/or --acoustic-config (whose mel conventions to compute)")
    if args.workers < 0:
        raise ValueError("--workers must be >= 0")
    mels = recipe_mel_configs(args.vocoder_config, args.acoustic_config)
    res = compute_features(args.data, args.out, mels, num_workers=args.workers, progress=sys.stderr.isatty())
    print(f"features of {res['utterances']} utterances under {len(mels)} mel convention(s): "
          f"{res['computed']} computed, {res['skipped']} skipped -> {args.out}")
    return 0


def _run_data_festival(args) -> int:
    from wavediff.data.festival import build_festival_corpus

    res = build_festival_corpus(args.out, args.sentences, num=args.num, hours=args.hours, workers=args.workers,
                                voice=args.voice, shuffle_seed=args.shuffle_seed, progress=sys.stderr.isatty())
    print(f"{res['utterances']} utterances ({res['hours']:.3f} h; {res['synthesized']} new, {res['existing']} kept, "
          f"{len(res['failed'])} failed) in {res['wall_s']:.1f} s -> {args.out}")
    return 0


def _run_data_aligned_mels(args) -> int:
    from wavediff.pipelines.files import write_aligned_mels

    res = write_aligned_mels(_checkpoint_dir(args.checkpoint), args.data, args.out, cache_dir=args.cache,
                             batch_size=args.batch_size, steps=args.steps, temperature=args.temperature,
                             seed=args.seed, device=args.device, precision=args.precision,
                             progress=sys.stderr.isatty())
    print(f"aligned mels: {res['written']} written, {res['existing']} kept, {res['skipped']} skipped -> {args.out}")
    return 0


def _run_data_recipe_config(args) -> int:
    from wavediff.data.prepare import load_recipe, shell_assignments, write_recipe_configs

    sys.stdout.write(shell_assignments(write_recipe_configs(load_recipe(args.conf), args.out)))
    return 0


_COMMANDS = (_add_synth, _add_train, _add_vocode, _add_convert, _add_tune, _add_prune, _add_eval, _add_data)


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
    # The imports so far (torch above all) leave about a million objects to the cyclic garbage collector; one
    # full collection while a command runs then costs ~0.13 s of a 2-core CPU, a tenth of `synth`'s start-up.
    # The objects that exist now are exempt while the command runs and handed back to the collector after.
    gc.freeze()
    try:
        result = args.func(args)
    except (UserError, ValueError, ImportError, FileNotFoundError, NotADirectoryError, IsADirectoryError) as e:
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        print(f"wavediff: error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("wavediff: interrupted", file=sys.stderr)
        return 130
    finally:
        gc.unfreeze()
    return int(result or 0)
