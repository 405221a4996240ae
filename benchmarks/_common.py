"""Shared by the benchmark scripts: the environment a result was measured in."""
from __future__ import annotations

import datetime
import platform
from typing import Any

import torch


def environment(device: torch.device) -> dict[str, Any]:
    env = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "device": str(device),
    }
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
        env["cuda"] = torch.version.cuda
        env["cudnn"] = torch.backends.cudnn.version()
    else:
        env["cpu_threads"] = torch.get_num_threads()
    return env


def failure_status(e: BaseException) -> str:
    """A benchmark case's status line for an exception: the case is a result, the others still run."""
    first = str(e).splitlines()[0][:200] if str(e) else ""
    return f"error: {type(e).__name__}: {first}"
