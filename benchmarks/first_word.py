"""Does the voice lose the first word? Two numbers behind README's "Where the acoustic model loses words".

1. For each ``wavediff eval --out-json`` file given: in how many utterances the recogniser's first
   word is the reference text's first word.
2. With ``--data DIR`` (a transcribed LJSpeech-layout folder): the frames that monotonic alignment
   search gives each utterance's first symbol against its recording, next to the median symbol, for
   the acoustic model ``--checkpoint`` (default: the bundled one). A first symbol that also takes the
   recording's opening silence gets several times the median.

    python benchmarks/first_word.py exp/ev_default.json exp/ev_copysynthesis.json \\
        --data exp/everyday_ref --json first_word.json
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path


def first_word_hits(eval_json: Path) -> dict[str, dict[str, int]]:
    """{system: {"hits": n, "utterances": m}}: how often the transcript starts with the reference's
    first word, both as ``wavediff eval`` scores words (:func:`wavediff.eval.asr.normalize_words`)."""
    from wavediff.eval.asr import normalize_words

    out = {}
    for system in json.loads(eval_json.read_text())["systems"]:
        utts = system.get("utterances") or {}
        hits = 0
        for u in utts.values():
            ref, hyp = normalize_words(u["text"]), normalize_words(u["transcript"])
            hits += bool(ref and hyp and hyp[0] == ref[0])
        out[system["system"]] = {"hits": hits, "utterances": len(utts)}
    return out


def first_symbol_frames(data: Path, checkpoint: str | None) -> dict[str, float]:
    """Alignment-search frames of the first symbol and of the median symbol, averaged over utterances."""
    import torch

    from wavediff.data import scan_corpus
    from wavediff.data.tts import TTSDataset
    from wavediff.pipelines import files
    from wavediff.pipelines.tts import AcousticPipeline

    pipe = AcousticPipeline.from_pretrained(checkpoint or files.bundled_acoustic_dir(), device="cpu")
    ds = TTSDataset(scan_corpus(data), pipe.mel_config, pipe.frontend)
    first, median = [], []
    with torch.no_grad():
        for i in range(len(ds)):
            item = ds.load(i)
            tokens, mel = item["tokens"][None], item["mel"][None]
            _, mu, mask, _ = pipe.model.encode(tokens, torch.tensor([tokens.shape[1]]))
            frames = pipe.model.align(mu, mel, mask, torch.tensor([mel.shape[-1]])).sum(-1)[0]
            first.append(float(frames[0]))
            median.append(float(frames.median()))
    return {"utterances": len(first), "first_symbol_frames": statistics.mean(first),
            "median_symbol_frames": statistics.mean(median), "leading_pause": pipe.frontend.leading_pause}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("eval_json", nargs="*", type=Path, help="`wavediff eval --out-json` files")
    ap.add_argument("--data", type=Path, default=None, help="transcribed recordings for the alignment check")
    ap.add_argument("--checkpoint", default=None, help="acoustic model (default: the bundled one)")
    ap.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    args = ap.parse_args(argv)
    if not args.eval_json and args.data is None:
        ap.error("give eval JSON files, --data, or both")
    report: dict = {"first_word": {}}
    for path in args.eval_json:
        for system, n in first_word_hits(path).items():
            report["first_word"][system] = n
            print(f"{system}: first word heard right in {n['hits']} of {n['utterances']}")
    if args.data is not None:
        report["alignment"] = a = first_symbol_frames(args.data, args.checkpoint)
        print(f"alignment search over {a['utterances']} utterances: first symbol {a['first_symbol_frames']:.1f} "
              f"frames, median symbol {a['median_symbol_frames']:.1f} (leading pause: {a['leading_pause']})")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
