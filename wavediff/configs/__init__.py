"""Packaged training configurations (YAML)."""
from __future__ import annotations

from importlib import resources

__all__ = ["packaged_configs"]


def packaged_configs(kind: str) -> list[str]:
    """Names of the YAML configs shipped for ``kind`` ("vocoder", "acoustic"), sorted."""
    folder = resources.files(__name__) / kind
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))
