"""Compare folders of generated speech with reference recordings; write JSON and a Markdown table.

:func:`evaluate_folders` pairs files by name (``wavs/LJ001-0001.wav`` ↔ ``out/LJ001-0001.wav``;
folders are read as :func:`wavediff.data.corpus.scan_corpus` does, so an LJSpeech-layout reference
also supplies its transcripts), computes the selected metrics per utterance and their mean ± std,
and lists the names found in only one folder. Without a generated folder it scores the references
alone with the non-intrusive metrics (WER, DNSMOS): the "ceiling" row. :func:`write_report` writes
one or more such results as JSON and as a Markdown table with one row per system.

Sample-aligned metrics (MR-STFT, PESQ, STOI) are only meaningful for copy-synthesis, where the
generated file has the reference's timing; for pairs whose lengths differ by more than 2 % / 50 ms
(e.g. TTS output) they are skipped and the reason recorded. MCD and F0 align such pairs by DTW.
The generated audio is read at the reference's sample rate.
"""
from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence, Union

import numpy as np

from wavediff.audio.io import load_audio
from wavediff.eval import metrics as M

__all__ = [
    "ALL_METRICS",
    "INTRUSIVE_METRICS",
    "NON_INTRUSIVE_METRICS",
    "parse_metrics",
    "read_texts",
    "read_timings",
    "evaluate_folders",
    "write_report",
    "markdown_table",
]

PathLike = Union[str, "os.PathLike[str]"]

INTRUSIVE_METRICS = ("mrstft", "mcd", "pesq", "stoi", "f0")
NON_INTRUSIVE_METRICS = ("wer", "dnsmos")
ALL_METRICS = INTRUSIVE_METRICS + NON_INTRUSIVE_METRICS
_SAMPLE_ALIGNED = ("mrstft", "pesq", "stoi")

# value key -> (column title, better direction, decimals); the table's column order
COLUMNS: dict[str, tuple[str, str, int]] = {
    "mrstft": ("MR-STFT", "↓", 3),
    "mcd": ("MCD (dB)", "↓", 2),
    "pesq": ("PESQ-WB", "↑", 2),
    "stoi": ("STOI", "↑", 3),
    "f0_rmse_cents": ("F0 RMSE (cents)", "↓", 1),
    "vuv_error": ("V/UV error", "↓", 3),
    "wer": ("WER", "↓", 3),
    "dnsmos_p808": ("DNSMOS P.808", "↑", 2),
    "dnsmos_sig": ("SIG", "↑", 2),
    "dnsmos_bak": ("BAK", "↑", 2),
    "dnsmos_ovrl": ("OVRL", "↑", 2),
    "rtf": ("RTF", "↓", 3),
}


# ---------------------------------------------------------------------------------- inputs
def parse_metrics(spec: str | Sequence[str] | None, intrusive: bool = True) -> tuple[str, ...]:
    """Metric names from ``"mrstft,mcd,..."`` or a list; None → all (non-intrusive only when not
    ``intrusive``). Unknown names, or intrusive ones without a generated folder → ValueError."""
    if spec is None:
        return ALL_METRICS if intrusive else NON_INTRUSIVE_METRICS
    names = [s.strip().lower() for s in (spec.split(",") if isinstance(spec, str) else spec) if s.strip()]
    unknown = [n for n in names if n not in ALL_METRICS]
    if unknown or not names:
        raise ValueError(f"unknown metric(s) {', '.join(unknown) or '(none given)'}; choose from {','.join(ALL_METRICS)}")
    if not intrusive and (needs_gen := [n for n in names if n in INTRUSIVE_METRICS]):
        raise ValueError(f"{', '.join(needs_gen)} compare two signals: give a generated folder, or use only wer,dnsmos")
    return tuple(dict.fromkeys(names))


def _id_of(entry: str) -> str:
    """``wavs/LJ001-0001.wav`` → ``LJ001-0001``; plain ids unchanged."""
    name = entry.strip().replace("\\", "/").rsplit("/", 1)[-1]
    stem, dot, suffix = name.rpartition(".")
    return stem if dot and f".{suffix.lower()}" in (".wav", ".flac", ".ogg") else name


def read_texts(path: PathLike) -> dict[str, str]:
    """Transcripts {id: text} from an LJSpeech metadata.csv (``id|text|normalised text``: the
    normalised column when present), an ``id|text`` list or a filelist (``wavs/id.wav|text``).
    A folder stands for its metadata.csv."""
    p = Path(path)
    if p.is_dir():
        p = p / "metadata.csv"
    if not p.is_file():
        raise ValueError(f"text file '{p}' does not exist")
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise ValueError(f"text file '{p}' is not UTF-8") from None
    texts: dict[str, str] = {}
    for n, line in enumerate(lines, 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = line.split("|")
        if len(fields) < 2:
            raise ValueError(f"{p.name} line {n}: expected 'id|text', got {line[:60]!r}")
        text = fields[2].strip() if len(fields) >= 3 and fields[2].strip() else fields[1].strip()
        texts.setdefault(_id_of(fields[0]), text)
    if not texts:
        raise ValueError(f"text file '{p}' has no 'id|text' lines")
    return texts


def read_timings(path: PathLike) -> dict[str, float]:
    """Synthesis times {id: seconds} from JSON ``{"id": seconds}`` or lines ``id|seconds``."""
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"timings file '{p}' does not exist")
    raw = p.read_text(encoding="utf-8")
    try:
        items = json.loads(raw).items() if p.suffix.lower() == ".json" else [
            tuple(line.split("|", 1)) for line in raw.splitlines() if line.strip() and not line.startswith("#")
        ]
        timings = {_id_of(str(k)): float(v) for k, v in items}
    except (ValueError, AttributeError, TypeError):
        raise ValueError(f"timings file '{p}' must hold {{\"id\": seconds}} JSON or 'id|seconds' lines") from None
    bad = [k for k, v in timings.items() if not (math.isfinite(v) and v >= 0)]
    if bad:
        raise ValueError(f"timings file '{p}': seconds must be finite and ≥ 0 (see {bad[0]!r})")
    return timings


def _scan(folder: PathLike, what: str) -> dict[str, Any]:
    from wavediff.data.corpus import scan_corpus

    try:
        return {u.id: u for u in scan_corpus(folder)}
    except ValueError as exc:
        raise ValueError(f"{what} folder: {exc}") from None


# ---------------------------------------------------------------------------------- evaluation
class _Scorers:
    """The loaded models (recogniser, DNSMOS), created on first use and reused for every file."""

    def __init__(self) -> None:
        self._asr = self._mos = None

    def transcribe(self, wav: np.ndarray, sr: int) -> str:
        from wavediff.eval.asr import Recognizer

        self._asr = self._asr or Recognizer()
        return self._asr(wav, sr)

    def dnsmos(self, wav: np.ndarray, sr: int) -> dict[str, float]:
        self._mos = self._mos or M.DnsMos()
        return self._mos(wav, sr)


def _score_pair(ref: np.ndarray | None, gen: np.ndarray, sr: int, metrics: Sequence[str], text: str | None,
                scorers: _Scorers, values: dict[str, Any], errors: dict[str, str]) -> None:
    """Fill ``values`` (metric → number, plus transcripts) and ``errors`` (metric → reason) for one file."""
    aligned = ref is not None and M.lengths_match(len(ref), len(gen), sr)
    for name in metrics:
        try:
            if name in _SAMPLE_ALIGNED and not aligned:
                raise ValueError(
                    f"lengths differ ({len(ref) / sr:.2f} s vs {len(gen) / sr:.2f} s): sample-aligned "
                    "metrics need copy-synthesis output"
                )
            if name == "mrstft":
                values["mrstft"] = M.mrstft(ref, gen)
            elif name == "mcd":
                values["mcd"] = M.mcd(ref, gen, sr)
            elif name == "pesq":
                values["pesq"] = M.pesq_wb(ref, gen, sr)
            elif name == "stoi":
                values["stoi"] = M.stoi(ref, gen, sr)
            elif name == "f0":
                f0 = M.f0_rmse_and_vuv(ref, gen, sr)
                values["f0_rmse_cents"] = f0["f0_rmse_cents"] if f0["voiced_frames"] else None
                values["vuv_error"] = f0["vuv_error"]
            elif name == "wer":
                from wavediff.eval.asr import word_errors

                if text is None:
                    if ref is None:
                        raise ValueError("no transcript for this file")
                    text = values["reference_transcript"] = scorers.transcribe(ref, sr)
                values["transcript"] = scorers.transcribe(gen, sr)
                counts = word_errors(values["transcript"], text)
                if counts.reference_words == 0:
                    raise ValueError("the reference text has no words")
                values["wer"] = counts.errors / counts.reference_words
                values["word_errors"], values["reference_words"] = counts.errors, counts.reference_words
            elif name == "dnsmos":
                for key, v in scorers.dnsmos(gen, sr).items():
                    values[f"dnsmos_{key}"] = v
        except ValueError as exc:
            errors[name] = str(exc)


def _summary(per_utt: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, float]]:
    """{value key: {"mean", "std", "n"}} over utterances with a number (std: population, ddof 0)."""
    out: dict[str, dict[str, float]] = {}
    for key in COLUMNS:
        vals = [v[key] for v in per_utt.values() if isinstance(v.get(key), (int, float)) and math.isfinite(v[key])]
        if vals:
            out[key] = {"mean": float(np.mean(vals)), "std": float(np.std(vals)), "n": len(vals)}
    words = sum(v.get("reference_words", 0) for v in per_utt.values())
    if "wer" in out and words:
        out["wer"]["corpus"] = sum(v.get("word_errors", 0) for v in per_utt.values()) / words
    return out


def _tick(bar: Any, progress: bool | Callable[[int, int, str], None], done: int, total: int, utt_id: str) -> None:
    if bar is not None:
        bar.update(1)
    elif callable(progress):
        progress(done, total, utt_id)


def evaluate_folders(
    ref_dir: PathLike,
    gen_dir: PathLike | None = None,
    texts: Mapping[str, str] | None = None,
    metrics: str | Sequence[str] | None = None,
    timings: Mapping[str, float] | None = None,
    progress: bool | Callable[[int, int, str], None] = False,
    name: str | None = None,
) -> dict[str, Any]:
    """Score the files of ``gen_dir`` against the same-named files of ``ref_dir``.

    ``texts`` {id: transcript} are the WER references (default: the reference folder's metadata.csv
    when it has one; else the recogniser's transcript of the reference recording stands in, noted in
    ``text_source``). ``timings`` {id: synthesis seconds} add a real-time factor. With ``gen_dir``
    None the reference files themselves are scored with non-intrusive metrics (system "reference").
    ``progress``: True for a tqdm bar on stderr, or a callback (done, total, id).

    Returns a JSON-ready dict: system, ref_dir, gen_dir, metrics, sample_rate, text_source,
    utterances {id: {value: number, transcript…}}, summary {value: {mean, std, n}} (WER also its
    corpus rate: total errors / total words), unmatched {ref_only, gen_only}, errors {id: {metric: reason}}."""
    metric_names = parse_metrics(metrics, intrusive=gen_dir is not None)
    refs = _scan(ref_dir, "reference")
    gens = _scan(gen_dir, "generated") if gen_dir is not None else refs
    ids = [i for i in refs if i in gens]
    unmatched = {"ref_only": sorted(set(refs) - set(gens)), "gen_only": sorted(set(gens) - set(refs))}
    if not ids:
        raise ValueError(f"no file names in common between '{ref_dir}' and '{gen_dir}'")
    # ---- transcripts ----
    if texts is None:
        corpus_texts = {i: u.text for i, u in refs.items() if u.text}
        texts, source = (corpus_texts, "reference metadata.csv") if corpus_texts else (None, None)
    else:
        source = "given"
    if "wer" in metric_names and texts is None:
        if gen_dir is None:
            raise ValueError("WER of the references needs their transcripts: give a text file or an LJSpeech-layout folder")
        source = "recogniser transcript of the reference recording"
    # ---- per utterance ----
    scorers, per_utt, errors = _Scorers(), {}, {}
    bar = None
    if progress is True:
        from tqdm import tqdm

        bar = tqdm(total=len(ids), desc=name or "eval", unit="file", file=sys.stderr)
    sample_rate = None
    for k, utt_id in enumerate(ids):
        values: dict[str, Any] = {}
        errs: dict[str, str] = {}
        try:
            ref, sr = load_audio(refs[utt_id].path)
            gen = ref if gen_dir is None else load_audio(gens[utt_id].path, sample_rate=sr)[0]
        except ValueError as exc:  # an unreadable file: reported, the others are still scored
            per_utt[utt_id], errors[utt_id] = values, {"audio": str(exc)}
            _tick(bar, progress, k + 1, len(ids), utt_id)
            continue
        sample_rate = sample_rate or sr
        values["seconds"] = len(gen) / sr
        text = texts.get(utt_id) if texts is not None else None
        if texts is not None and text is not None:
            values["text"] = text
        elif "wer" in metric_names and texts is not None:
            errs["wer"] = "no transcript for this file"
        wanted = [m for m in metric_names if not (m == "wer" and "wer" in errs)]
        _score_pair(None if gen_dir is None else ref, gen, sr, wanted, text if texts is not None else None,
                    scorers, values, errs)
        if timings is not None and utt_id in timings:
            values["rtf"] = M.real_time_factor(timings[utt_id], len(gen) / sr)
        per_utt[utt_id] = values
        if errs:
            errors[utt_id] = errs
        _tick(bar, progress, k + 1, len(ids), utt_id)
    if bar is not None:
        bar.close()
    return {
        "system": name or (Path(gen_dir).name if gen_dir is not None else "reference"),
        "ref_dir": str(ref_dir),
        "gen_dir": None if gen_dir is None else str(gen_dir),
        "metrics": list(metric_names),
        "sample_rate": sample_rate,
        "text_source": source if "wer" in metric_names else None,
        "count": len(ids),
        "summary": _summary(per_utt),
        "unmatched": unmatched,
        "errors": errors,
        "utterances": per_utt,
    }


# ---------------------------------------------------------------------------------- output
def _cell(stats: Mapping[str, float] | None, decimals: int) -> str:
    if not stats:
        return "–"
    return f"{stats['mean']:.{decimals}f} ± {stats['std']:.{decimals}f}"


def markdown_table(results: Sequence[Mapping[str, Any]]) -> str:
    """A Markdown table, one row per system: n files and mean ± std of each metric any system has."""
    keys = [k for k in COLUMNS if any(k in r["summary"] for r in results)]
    head = ["system", "files"] + [f"{COLUMNS[k][0]} {COLUMNS[k][1]}" for k in keys]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
    for r in results:
        row = [str(r["system"]).replace("|", "/"), str(r["count"])]
        row += [_cell(r["summary"].get(k), COLUMNS[k][2]) for k in keys]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def _notes(results: Sequence[Mapping[str, Any]]) -> list[str]:
    notes = ["mean ± std over files (population std); ↓ lower is better, ↑ higher is better."]
    for r in results:
        s, un = r["system"], r["unmatched"]
        if "wer" in r["summary"] and "corpus" in r["summary"]["wer"]:
            notes.append(f"{s}: corpus WER {r['summary']['wer']['corpus']:.3f} (WER references: {r['text_source']}).")
        for side, label in (("ref_only", "only in the references"), ("gen_only", "only in the generated folder")):
            if un[side]:
                shown = ", ".join(un[side][:5]) + (", …" if len(un[side]) > 5 else "")
                notes.append(f"{s}: {len(un[side])} file(s) {label}, not scored: {shown}.")
        if r["errors"]:
            counts: dict[str, int] = {}
            for errs in r["errors"].values():
                for m in errs:
                    counts[m] = counts.get(m, 0) + 1
            first = next(iter(r["errors"].items()))
            notes.append(f"{s}: metrics not computed for some files ({', '.join(f'{m} × {n}' for m, n in counts.items())}); "
                         f"e.g. {first[0]}: {next(iter(first[1].values()))}.")
    return notes


def _json_safe(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj


def _atomic_write(path: PathLike, text: str) -> None:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, p)
    finally:
        tmp.unlink(missing_ok=True)


def write_report(results: Mapping[str, Any] | Iterable[Mapping[str, Any]], out_json: PathLike | None = None,
                 out_md: PathLike | None = None) -> str:
    """Write results of :func:`evaluate_folders` (one or several systems) as JSON
    ``{"wavediff_version", "systems": [...]}`` and as a Markdown table with notes (atomic writes).
    Returns the Markdown text."""
    from wavediff import __version__

    systems = [results] if isinstance(results, Mapping) else list(results)
    if not systems:
        raise ValueError("no results to report")
    markdown = markdown_table(systems) + "\n" + "\n".join(f"- {n}" for n in _notes(systems)) + "\n"
    if out_json is not None:
        payload = {"wavediff_version": __version__, "systems": _json_safe(systems)}
        _atomic_write(out_json, json.dumps(payload, indent=2, ensure_ascii=False, allow_nan=False) + "\n")
    if out_md is not None:
        _atomic_write(out_md, markdown)
    return markdown
