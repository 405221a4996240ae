"""Recipe data preparation: train/val/test folders, feature caches, recipe configurations.

:func:`prepare_corpus` turns a corpus folder into three LJSpeech-layout folders, one per split::

    OUT/summary.json                    counts, hours, sample rates, how the split was made
    OUT/{train,val,test}/metadata.csv   the corpus's own metadata lines of that split
    OUT/{train,val,test}/wavs/          links to the corpus's audio files (copies if links fail)
    OUT/{train,val,test}/ids.txt        the utterance ids
    OUT/{train,val,test}/text.txt       ``id|text`` (input of ``wavediff synth --from-file``)

so that every entry point that takes a corpus folder (``wavediff train vocoder --data``,
``wavediff train acoustic --data``) sees exactly one split. The split is either the shipped id
lists (LJSpeech: the 12,500 / 100 / 500 utterances of NVIDIA's tacotron2 filelists) or, for other
corpora, a seeded split by id (:func:`wavediff.data.split_corpus`).

:func:`compute_features` fills a feature cache that training runs share, and
:func:`load_recipe` / :func:`write_recipe_configs` read a recipe's ``conf/NAME.yaml``.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import shlex
import shutil
import warnings
from collections import Counter
from pathlib import Path
from typing import Any, Sequence, Union

from wavediff.data.corpus import Utterance, read_id_list, scan_corpus, select, split_corpus

__all__ = [
    "SPLITS",
    "check_corpus",
    "prepare_corpus",
    "write_split",
    "compute_features",
    "recipe_mel_configs",
    "load_recipe",
    "write_recipe_configs",
    "RECIPE_DEFAULTS",
]

PathLike = Union[str, "os.PathLike[str]"]
logger = logging.getLogger("wavediff.data")

SPLITS = ("train", "val", "test")
_SPLIT_MODES = ("auto", "lists", "seeded")


# --------------------------------------------------------------------------------------------------
# Corpus checks
# --------------------------------------------------------------------------------------------------


def check_corpus(data_dir: PathLike) -> tuple[list[Utterance], dict[str, Any]]:
    """Scan a corpus and check it; return (utterances, report).

    The report has ``layout`` ("ljspeech" or "folder"), ``utterances``, ``missing_audio`` (metadata
    lines without a file), ``without_text``, ``unreadable`` (ids), ``sample_rates`` ({rate: count})
    and ``hours``. Problems that make the corpus unusable raise ValueError; the rest are logged.
    """
    import soundfile as sf

    root = Path(data_dir)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        utterances = scan_corpus(root)
    for w in caught:
        logger.warning("%s", w.message)
    layout = "ljspeech" if (root / "metadata.csv").is_file() else "folder"
    missing = len(_metadata_lines(root)) - len(utterances) if layout == "ljspeech" else 0
    rates: Counter[int] = Counter()
    seconds, unreadable = 0.0, []
    for utt in utterances:
        try:
            info = sf.info(os.fspath(utt.path))
        except Exception:  # noqa: BLE001 - reported below
            unreadable.append(utt.id)
            continue
        rates[int(info.samplerate)] += 1
        seconds += info.frames / info.samplerate
    without_text = sum(1 for u in utterances if not u.text)
    if unreadable:
        logger.warning("%d unreadable audio file(s), e.g. %s", len(unreadable), ", ".join(unreadable[:5]))
    if len(rates) > 1:
        logger.warning("mixed sample rates %s; audio is resampled when read", dict(rates))
    if layout == "ljspeech" and without_text:
        logger.warning("%d utterance(s) have no transcript; the acoustic model skips them", without_text)
    report = {
        "layout": layout,
        "utterances": len(utterances),
        "missing_audio": missing,
        "without_text": without_text,
        "unreadable": unreadable,
        "sample_rates": {str(k): v for k, v in sorted(rates.items())},
        "hours": round(seconds / 3600.0, 4),
    }
    return utterances, report


# --------------------------------------------------------------------------------------------------
# Splits
# --------------------------------------------------------------------------------------------------


def _list_split(utterances: list[Utterance], lists_dir: Path) -> dict[str, list[Utterance]]:
    """The shipped id lists ``split_{train,val,test}.txt``, restricted to the corpus (warned)."""
    out = {}
    for name in SPLITS:
        ids = read_id_list(lists_dir / f"split_{name}.txt")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            chosen = select(utterances, ids, strict=False)
        if len(chosen) < len(ids):
            logger.warning("%s split: %d of %d listed ids are not in the corpus and are left out",
                           name, len(ids) - len(chosen), len(ids))
        out[name] = chosen
    listed = {u.id for part in out.values() for u in part}
    unlisted = [u.id for u in utterances if u.id not in listed]
    if unlisted:
        logger.warning("%d corpus utterance(s) are in none of the lists and are left out, e.g. %s",
                       len(unlisted), ", ".join(unlisted[:5]))
    return out


def _lists_overlap(utterances: list[Utterance], lists_dir: Path) -> bool:
    known = {u.id for u in utterances}
    return any(i in known for name in SPLITS for i in read_id_list(lists_dir / f"split_{name}.txt"))


def _parse_count(value: int | float | str) -> int | float:
    """'12' -> 12 (a count), '0.05' -> 0.05 (a fraction); ints and floats pass through."""
    if isinstance(value, str):
        try:
            return float(value) if any(c in value for c in ".eE") else int(value)
        except ValueError:
            raise ValueError(f"expected a count or a fraction, got {value!r}") from None
    return value


def _link(src: Path, dst: Path) -> None:
    """dst -> src as a symbolic link; a hard link or a copy where links are not possible."""
    try:
        os.symlink(src.resolve(), dst)
    except OSError:
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)


def _metadata_lines(root: Path) -> dict[str, str]:
    """id -> its metadata.csv line (LJSpeech layout); empty for a plain folder."""
    metadata = root / "metadata.csv"
    if not metadata.is_file():
        return {}
    lines = {}
    for line in metadata.read_text(encoding="utf-8").splitlines():
        utt_id = line.split("|", 1)[0].strip()
        if utt_id and utt_id not in lines:
            lines[utt_id] = line
    return lines


def write_split(folder: Path, utterances: list[Utterance], metadata: dict[str, str]) -> None:
    """One split as an LJSpeech-layout folder, built beside its final place and then swapped in."""
    staging = folder.with_name(f".{folder.name}.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    (staging / "wavs").mkdir(parents=True)
    lines, texts = [], []
    for u in utterances:
        _link(u.path, staging / "wavs" / f"{u.id}{u.path.suffix.lower()}")
        lines.append(metadata.get(u.id) or (f"{u.id}|{u.text}|{u.text}" if u.text else u.id))
        if u.text:
            texts.append(f"{u.id}|{u.text}")
    (staging / "metadata.csv").write_text("".join(x + "\n" for x in lines), encoding="utf-8")
    (staging / "ids.txt").write_text("".join(u.id + "\n" for u in utterances), encoding="utf-8")
    (staging / "text.txt").write_text("".join(x + "\n" for x in texts), encoding="utf-8")
    if folder.exists():
        shutil.rmtree(folder)
    os.replace(staging, folder)


def prepare_corpus(
    data_dir: PathLike,
    out_dir: PathLike,
    split: str = "auto",
    lists_dir: PathLike | None = None,
    val: int | float | str = 0.02,
    test: int | float | str = 0.02,
    seed: int = 0,
) -> dict[str, Any]:
    """Check ``data_dir`` and write its train/val/test folders under ``out_dir``; return the summary.

    ``split``: ``lists`` uses ``lists_dir/split_{train,val,test}.txt`` (ids missing from the corpus
    are left out with a warning); ``seeded`` holds out ``val`` and ``test`` utterances (counts, or
    fractions when floats) chosen by ``seed``; ``auto`` uses the lists when ``lists_dir`` is given
    and the corpus has any of their ids, else a seeded split.
    """
    if split not in _SPLIT_MODES:
        raise ValueError(f"split must be one of {', '.join(_SPLIT_MODES)}, got {split!r}")
    root, out = Path(data_dir), Path(out_dir)
    lists = Path(lists_dir) if lists_dir is not None else None
    if split == "lists" and lists is None:
        raise ValueError("split 'lists' needs the folder of split_{train,val,test}.txt (lists_dir)")
    if lists is not None and not all((lists / f"split_{n}.txt").is_file() for n in SPLITS):
        raise ValueError(f"{lists} must hold split_train.txt, split_val.txt and split_test.txt")
    utterances, report = check_corpus(root)
    bad = set(report["unreadable"])
    utterances = [u for u in utterances if u.id not in bad]
    # ---- split ----
    use_lists = split == "lists" or (split == "auto" and lists is not None and _lists_overlap(utterances, lists))
    if use_lists:
        parts = _list_split(utterances, lists)
        if not any(parts.values()):
            raise ValueError(f"none of the ids in {lists} is in the corpus {root}")
        how = {"kind": "lists", "lists_dir": str(lists.resolve())}
    else:
        s = split_corpus(utterances, val=_parse_count(val), test=_parse_count(test), seed=seed)
        parts = {"train": s.train, "val": s.val, "test": s.test}
        how = {"kind": "seeded", "val": _parse_count(val), "test": _parse_count(test), "seed": seed}
    if not parts["train"]:
        raise ValueError(f"the split leaves no training utterances in {root}")
    # ---- folders ----
    out.mkdir(parents=True, exist_ok=True)
    metadata = _metadata_lines(root)
    for name in SPLITS:
        write_split(out / name, parts[name], metadata)
    summary = {
        "corpus": str(root.resolve()),
        "split": how,
        "counts": {name: len(parts[name]) for name in SPLITS},
        "check": report,
    }
    tmp = out / ".summary.json.tmp"
    tmp.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, out / "summary.json")
    return summary


# --------------------------------------------------------------------------------------------------
# Features
# --------------------------------------------------------------------------------------------------


def _mel_of(section: dict | None):
    """A config's ``mel`` section -> MelConfig (a preset plus overrides), as the trainers read it."""
    from wavediff.audio import MelConfig

    section = dict(section or {})
    mel = MelConfig.from_preset(section.pop("preset", "hifigan"))
    return MelConfig.from_dict({**mel.to_dict(), **section}) if section else mel


def recipe_mel_configs(vocoder_config: PathLike | None = None, acoustic_config: PathLike | None = None) -> list:
    """The distinct mel conventions of a vocoder and an acoustic training config (names or YAML paths)."""
    from wavediff.train.acoustic import load_acoustic_config
    from wavediff.train.vocoder import load_recipe_config

    mels = []
    if vocoder_config is not None:
        mels.append(_mel_of(load_recipe_config(vocoder_config).get("mel")))
    if acoustic_config is not None:
        mels.append(_mel_of(load_acoustic_config(acoustic_config).get("mel")))
    distinct = []
    for m in mels:
        if m not in distinct:
            distinct.append(m)
    return distinct


def compute_features(
    data_dir: PathLike,
    cache_dir: PathLike,
    mel_configs: Sequence,
    num_workers: int = 0,
    progress: bool = True,
) -> dict[str, int]:
    """Fill the feature cache of ``data_dir`` for each mel convention; return counts.

    The cache is the one :class:`VocoderDataset` and the acoustic model's dataset read: a training
    run whose ``features/`` is (or links to) ``cache_dir`` finds every mel computed. Cached files
    are not computed again. Returns ``{"utterances", "computed", "skipped"}`` summed over conventions.
    """
    from wavediff.data.vocoder import VocoderDataset

    if not mel_configs:
        raise ValueError("compute_features needs at least one mel config")
    utterances = scan_corpus(data_dir)
    totals = {"utterances": len(utterances), "computed": 0, "skipped": 0}
    for mel in mel_configs:
        dataset = VocoderDataset(utterances, mel, crop_frames=None, cache_dir=cache_dir)
        totals["computed"] += dataset.precompute(num_workers=num_workers, progress=progress)
        totals["skipped"] += dataset.num_skipped
    return totals


# --------------------------------------------------------------------------------------------------
# Recipe configuration (recipes/*/conf/NAME.yaml)
# --------------------------------------------------------------------------------------------------

RECIPE_DEFAULTS: dict[str, Any] = {
    "vocoder_config": "base",  # packaged name or YAML path (relative to the recipe file)
    "vocoder_steps": None,  # None: the config's train.max_steps
    "vocoder_overrides": {},  # {section: {key: value}} merged into the vocoder config
    "acoustic_config": "base",
    "acoustic_steps": None,
    "acoustic_overrides": {},
    "split": "auto",  # auto | lists | seeded
    "val_utterances": 100,  # seeded split: a count, or a fraction when a float
    "test_utterances": 500,
    "split_seed": 0,
    "feature_workers": 2,
    "synth_steps": None,  # acoustic-model steps (None: the checkpoint's)
    "synth_vocoder_steps": None,  # vocoder steps (None: the vocoder's schedule)
    "synth_seed": 0,
    "eval_metrics": None,  # comma-separated subset for `wavediff eval --metrics` (None: all)
    "eval_ceiling": False,  # also score the recordings themselves (wer, dnsmos) as a first row
}


def load_recipe(path: PathLike) -> dict[str, Any]:
    """A recipe config with defaults filled in; model config paths made absolute. Unknown keys fail."""
    import yaml

    file = Path(path)
    if not file.is_file():
        raise ValueError(f"recipe config {str(file)!r} does not exist")
    try:
        raw = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise ValueError(f"recipe config {file} is not valid YAML: {str(e).splitlines()[0]}") from None
    if not isinstance(raw, dict):
        raise ValueError(f"recipe config {file} must be a mapping of keys")
    unknown = sorted(set(raw) - set(RECIPE_DEFAULTS))
    if unknown:
        raise ValueError(f"recipe config {file.name}: unknown key(s) {unknown}; known: {', '.join(RECIPE_DEFAULTS)}")
    cfg = {**copy.deepcopy(RECIPE_DEFAULTS), **raw}
    for kind in ("vocoder", "acoustic"):
        name = str(cfg[f"{kind}_config"])
        if name.endswith((".yaml", ".yml")) and not Path(name).is_absolute():
            cfg[f"{kind}_config"] = str((file.parent / name).resolve())
        steps = cfg[f"{kind}_steps"]
        if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or steps < 1):
            raise ValueError(f"recipe config {file.name}: {kind}_steps must be a positive integer, got {steps!r}")
        overrides = cfg[f"{kind}_overrides"] or {}
        if not isinstance(overrides, dict) or not all(isinstance(v, dict) for v in overrides.values()):
            raise ValueError(f"recipe config {file.name}: {kind}_overrides must map sections to mappings")
        cfg[f"{kind}_overrides"] = overrides
    if cfg["split"] not in _SPLIT_MODES:
        raise ValueError(f"recipe config {file.name}: split must be one of {', '.join(_SPLIT_MODES)}")
    return cfg


def _merged_model_config(kind: str, name: str, overrides: dict, steps: int | None) -> dict:
    from wavediff.train.acoustic import load_acoustic_config
    from wavediff.train.vocoder import load_recipe_config

    cfg = copy.deepcopy((load_recipe_config if kind == "vocoder" else load_acoustic_config)(name))
    for section, values in overrides.items():
        cfg.setdefault(section, {}).update(values)
    if steps is not None:
        cfg.setdefault("train", {})["max_steps"] = steps
    return cfg


def _shell_value(value: Any) -> str:
    """None -> "", True -> "1", False -> "" (so ``[ -n "$x" ]`` tests a flag), else str."""
    if value is None or value is False:
        return ""
    return "1" if value is True else str(value)


def write_recipe_configs(recipe: dict[str, Any], conf_dir: PathLike) -> dict[str, str]:
    """Write ``conf_dir/{vocoder,acoustic}.yaml`` (model config + overrides); return shell variables.

    The returned mapping holds every recipe key (None as "") plus ``vocoder_yaml`` and
    ``acoustic_yaml``, the paths to pass to ``wavediff train ... --config``. A file whose content
    did not change is not rewritten. The written files are read back with the trainers' loaders,
    so an unknown section in an override fails here.
    """
    import yaml

    from wavediff.train.acoustic import load_acoustic_config
    from wavediff.train.vocoder import load_recipe_config

    folder = Path(conf_dir)
    folder.mkdir(parents=True, exist_ok=True)
    variables = {k: _shell_value(v) for k, v in recipe.items() if not isinstance(v, dict)}
    for kind, loader in (("vocoder", load_recipe_config), ("acoustic", load_acoustic_config)):
        cfg = _merged_model_config(kind, recipe[f"{kind}_config"], recipe[f"{kind}_overrides"], recipe[f"{kind}_steps"])
        text = f"# written by wavediff data recipe-config from {kind}_config={recipe[f'{kind}_config']}\n"
        text += yaml.safe_dump(cfg, sort_keys=False)
        path = folder / f"{kind}.yaml"
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            tmp = folder / f".{kind}.yaml.tmp"
            tmp.write_text(text, encoding="utf-8")
            os.replace(tmp, path)
        loader(path)
        variables[f"{kind}_yaml"] = str(path.resolve())
    return variables


def shell_assignments(variables: dict[str, str]) -> str:
    """``key=value`` lines, values quoted for POSIX shells (``eval "$(...)"`` in run.sh)."""
    return "".join(f"{k}={shlex.quote(v)}\n" for k, v in variables.items())


__all__ += ["shell_assignments"]
