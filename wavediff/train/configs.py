"""Training configurations: packaged YAML files by name, or a user's YAML file, plus run.json."""
from __future__ import annotations

import copy
import json
import os
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Sequence

import yaml

from wavediff.configs import packaged_configs

from .distributed import launch_rank

__all__ = [
    "load_recipe_config", "packaged_configs", "RUN_FILE", "write_run_file", "read_run_file", "run_config", "train_config",
    "init_config", "check_init",
]

RUN_FILE = "run.json"


def load_recipe_config(kind: str, name_or_path: str | os.PathLike | None, sections: Sequence[str]) -> dict[str, Any]:
    """A ``kind`` ("vocoder", "acoustic") config: a packaged name (``base``, ``tiny`` …) or a YAML path."""
    name_or_path = name_or_path or "base"
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise ValueError(f"config file {str(path)!r} does not exist")
        text = path.read_text()
    else:
        packaged = resources.files("wavediff.configs") / kind / f"{name_or_path}.yaml"
        if not packaged.is_file():
            raise ValueError(f"unknown {kind} config {str(name_or_path)!r}; packaged configs: {', '.join(packaged_configs(kind))}")
        text = packaged.read_text()
    try:
        cfg = yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        raise ValueError(f"config {name_or_path} is not valid YAML: {str(e).splitlines()[0]}") from None
    if not isinstance(cfg, dict):
        raise ValueError(f"config {name_or_path} must be a mapping of sections")
    unknown = set(cfg) - set(sections)
    if unknown:
        raise ValueError(f"unknown config sections {sorted(unknown)}; expected {', '.join(sections)}")
    return cfg


def read_run_file(out: Path) -> dict[str, Any] | None:
    path = Path(out) / RUN_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def write_run_file(out: Path, cfg: dict[str, Any]) -> None:
    """Record the resolved configuration once (atomically; by rank 0 alone under torchrun); a resumed
    run reads it back."""
    if launch_rank() != 0:
        return
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / (RUN_FILE + ".tmp")
    tmp.write_text(json.dumps(cfg, indent=2) + "\n")
    os.replace(tmp, out / RUN_FILE)


def run_config(out: Path, resume: bool, load_default: Callable[[], dict[str, Any]]) -> tuple[dict[str, Any], bool]:
    """The run's configuration: ``run.json`` when resuming, else ``load_default()``; (config, resumed?).

    Refuses to start a new run over an existing one (that needs ``--resume`` or another folder). Under
    torchrun only rank 0 checks that: the other ranks may start after rank 0 has written ``run.json``
    for this very run, and they resolve the same configuration from the same inputs."""
    saved = read_run_file(out) if resume or launch_rank() == 0 else None
    if saved is not None and not resume:
        raise ValueError(f"{out} already holds a training run; pass --resume to continue it or choose another --out")
    return (saved, True) if saved is not None else (copy.deepcopy(load_default()), False)


def init_config(init: str | os.PathLike | None, resume: bool, model_type: str) -> tuple[Path | None, dict[str, Any] | None]:
    """The folder and ``config.json`` of the trained model a new run starts from (``--init``), or (None, None).

    ``"default"`` names the bundled default voice's model of that type."""
    if init is None:
        return None, None
    if resume:
        raise ValueError("--init starts a new run from trained weights; --resume continues a run: give one of them")
    from wavediff.checkpoint import load_config

    if os.fspath(init) == "default":
        from wavediff.pipelines.files import bundled_acoustic_dir, bundled_vocoder_dir

        init = bundled_acoustic_dir() if model_type == "acoustic" else bundled_vocoder_dir()
    return Path(init), load_config(init, model_type)


def check_init(init: str | os.PathLike, init_cfg: dict[str, Any], sections: dict[str, dict[str, Any]]) -> None:
    """Refuse to start from weights whose model (or mel convention) differs from the run's config."""
    for name, ours in sections.items():
        theirs = init_cfg.get(name)
        if theirs != ours:
            keys = sorted(k for k in set(ours) | set(theirs or {}) if (theirs or {}).get(k) != ours.get(k))
            raise ValueError(
                f"--init {os.fspath(init)}: its {name} differs from this run's config in {', '.join(map(str, keys))}; "
                "train with the config it was trained with"
            )


def train_config(cfg: dict[str, Any], max_steps: int | None, device: str | None):
    """The ``train`` section with command-line overrides, as a :class:`TrainConfig`."""
    from .trainer import TrainConfig

    section = dict(cfg.get("train") or {})
    if max_steps is not None:
        section["max_steps"] = int(max_steps)
    if device is not None:
        section["device"] = device
    return TrainConfig.from_dict(section)
