"""Checkpoint directories: ``config.json`` + ``model.safetensors``.

A checkpoint is a directory holding

* ``config.json``: a JSON object ``{"wavediff_version", "model_type", "model": {...}, ...}``
  plus whatever extra sections the caller stores (``"diffusion"``, ``"mel"``, ``"text"`` ...);
* ``model.safetensors``: the weights (for trained models: the EMA weights).

Inference builds the model from ``config.json`` alone (through a small registry mapping
``model_type`` to a module class and its config class), never from global defaults.
Nothing here unpickles: weights are read with safetensors.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import threading
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from wavediff.nn.denoiser import Denoiser, DenoiserConfig

__all__ = [
    "CONFIG_NAME",
    "WEIGHTS_NAME",
    "register_model",
    "registered_model_types",
    "build_model",
    "save_pretrained",
    "load_config",
    "load_state_dict",
    "load_model",
    "load_weights",
    "without_init",
    "build_and_load",
    "update_config",
    "export_checkpoint",
]

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
_REQUIRED_KEYS = ("wavediff_version", "model_type", "model")


_REGISTRY: dict[str, tuple[Callable[[Any], nn.Module], type]] = {}


def register_model(model_type: str, cls: Callable[[Any], nn.Module], config_cls: type) -> None:
    """Make ``build_model`` construct ``cls(config_cls.from_dict(config["model"]))`` for ``model_type``.

    Registering the same pair twice is a no-op; re-using a name for another class is an error.
    """
    if not isinstance(model_type, str) or not model_type:
        raise ValueError(f"model_type must be a non-empty string, got {model_type!r}.")
    if not hasattr(config_cls, "from_dict"):
        raise ValueError(f"config_cls {config_cls!r} has no from_dict classmethod.")
    previous = _REGISTRY.get(model_type)
    if previous is not None and previous != (cls, config_cls):
        raise ValueError(f"model_type {model_type!r} is already registered to {previous[0]!r}.")
    _REGISTRY[model_type] = (cls, config_cls)


def registered_model_types() -> list[str]:
    return sorted(_REGISTRY)


def _lookup(model_type: Any) -> tuple[Callable[[Any], nn.Module], type]:
    if model_type not in _REGISTRY:
        raise ValueError(
            f"Unknown model_type {model_type!r}; registered types are {registered_model_types()}."
        )
    return _REGISTRY[model_type]


def build_model(config: dict[str, Any]) -> nn.Module:
    """A freshly initialised module from a full ``config.json`` dict (``model_type`` + ``model``)."""
    if not isinstance(config, dict) or "model_type" not in config or "model" not in config:
        raise ValueError("build_model needs a config dict with 'model_type' and 'model' keys.")
    cls, config_cls = _lookup(config["model_type"])
    return cls(config_cls.from_dict(config["model"]))


def _wavediff_version() -> str:
    try:
        return metadata.version("wavediff")
    except metadata.PackageNotFoundError:
        import wavediff

        return str(getattr(wavediff, "__version__", "unknown"))


def _unwrap(model: nn.Module) -> nn.Module:
    """The plain module inside ``torch.compile`` / DataParallel / DDP wrappers (no key prefixes)."""
    wrappers = (nn.DataParallel, nn.parallel.DistributedDataParallel)
    while True:
        if isinstance(getattr(model, "_orig_mod", None), nn.Module):
            model = model._orig_mod
        elif isinstance(model, wrappers):
            model = model.module
        else:
            return model


def _model_section(model: nn.Module, config: dict[str, Any]) -> dict[str, Any]:
    own = getattr(model, "config", None)
    if own is not None and hasattr(own, "to_dict"):
        section = own.to_dict()
        if "model" in config and config["model"] != section:
            raise ValueError("config['model'] differs from the model's own config; pass one or make them agree.")
        return section
    if not isinstance(config.get("model"), dict):
        raise ValueError("The model has no .config.to_dict(); pass its sizes as config['model'].")
    return dict(config["model"])


def _tensors_for_saving(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Detached, contiguous CPU tensors that share no storage (safetensors refuses shared storage)."""
    out: dict[str, torch.Tensor] = {}
    seen: set[int] = set()
    for name, tensor in state_dict.items():
        if not isinstance(tensor, torch.Tensor):
            raise ValueError(f"State dict entry {name!r} is a {type(tensor).__name__}, not a tensor.")
        t = tensor.detach().to("cpu").contiguous()
        ptr = t.untyped_storage().data_ptr()
        if ptr in seen and t.numel() > 0:
            t = t.clone()
            ptr = t.untyped_storage().data_ptr()
        seen.add(ptr)
        out[name] = t
    return out


def _write_checkpoint(target: Path, tensors: dict[str, torch.Tensor], full: dict[str, Any]) -> Path:
    """Both files go to a temporary directory next to ``target`` and are moved into place with
    ``os.replace``; a new directory appears in one atomic rename."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        save_file(tensors, str(tmp / WEIGHTS_NAME), metadata={"format": "pt"})
        with open(tmp / CONFIG_NAME, "w", encoding="utf-8") as f:
            json.dump(full, f, indent=2, sort_keys=False)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        if not target.exists():
            try:
                os.replace(tmp, target)
                return target
            except OSError:
                target.mkdir(parents=True, exist_ok=True)  # lost a race: fall through to per-file
        if not target.is_dir():
            raise ValueError(f"{target} exists and is not a directory.")
        os.replace(tmp / WEIGHTS_NAME, target / WEIGHTS_NAME)
        os.replace(tmp / CONFIG_NAME, target / CONFIG_NAME)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def save_pretrained(
    directory: str | os.PathLike[str],
    model: nn.Module,
    config: dict[str, Any],
    model_type: str,
    state_dict: dict[str, torch.Tensor] | None = None,
) -> Path:
    """Write ``config.json`` and ``model.safetensors`` into ``directory`` (created if needed).

    ``config`` holds extra sections (e.g. ``"diffusion"``, ``"mel"``); ``"model"`` is taken from
    ``model.config.to_dict()`` when the model has one. ``state_dict`` overrides the weights to
    save (e.g. EMA weights). Both files are written to a temporary directory next to the target
    and moved into place with ``os.replace``; a new directory appears in one atomic rename.
    """
    if not isinstance(config, dict):
        raise ValueError(f"config must be a dict, got {type(config).__name__}.")
    _lookup(model_type)  # refuse to write something load_model cannot build
    model = _unwrap(model)
    full = dict(config)
    full["wavediff_version"] = _wavediff_version()
    full["model_type"] = model_type
    full["model"] = _model_section(model, config)
    tensors = _tensors_for_saving(state_dict if state_dict is not None else model.state_dict())

    return _write_checkpoint(Path(directory), tensors, full)


def _checkpoint_dir(directory: str | os.PathLike[str]) -> Path:
    path = Path(directory)
    if not path.is_dir():
        raise ValueError(f"Checkpoint directory {str(path)!r} does not exist.")
    return path


def load_config(directory: str | os.PathLike[str], model_type: str | None = None) -> dict[str, Any]:
    """The parsed ``config.json`` of a checkpoint, checked for the required keys and a known model_type
    (and, when given, for being a ``model_type`` checkpoint)."""
    path = _checkpoint_dir(directory) / CONFIG_NAME
    if not path.is_file():
        raise ValueError(f"Checkpoint {str(path.parent)!r} has no {CONFIG_NAME}.")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{str(path)!r} is not valid JSON: {e}.") from None
    if not isinstance(config, dict):
        raise ValueError(f"{str(path)!r} must hold a JSON object, got {type(config).__name__}.")
    missing = [k for k in _REQUIRED_KEYS if k not in config]
    if missing:
        raise ValueError(f"{str(path)!r} lacks the keys {missing}.")
    if not isinstance(config["model"], dict):
        raise ValueError(f"{str(path)!r}: 'model' must be a JSON object.")
    _lookup(config["model_type"])
    if model_type is not None and config["model_type"] != model_type:
        wanted = {"acoustic": "an acoustic model"}.get(model_type, f"a {model_type}")
        raise ValueError(f"{str(directory)!r} holds a {config['model_type']!r} checkpoint, not {wanted}.")
    return config


def load_state_dict(directory: str | os.PathLike[str], device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """The tensors of ``model.safetensors`` (no unpickling)."""
    path = _checkpoint_dir(directory) / WEIGHTS_NAME
    if not path.is_file():
        raise ValueError(f"Checkpoint {str(path.parent)!r} has no {WEIGHTS_NAME}.")
    try:
        return load_file(str(path), device=str(device))
    except (SafetensorError, OSError, ValueError) as e:
        raise ValueError(f"{str(path)!r} is not a readable safetensors file: {e}.") from None


_INIT_FILLS = (
    "uniform_", "normal_", "trunc_normal_", "constant_", "ones_", "zeros_", "eye_", "dirac_",
    "xavier_uniform_", "xavier_normal_", "kaiming_uniform_", "kaiming_normal_", "orthogonal_", "sparse_",
)
_INIT_LOCK = threading.Lock()


@contextlib.contextmanager
def without_init():
    """Build modules without drawing their initial weights, for weights that a strict load overwrites next.

    Module constructors fill every parameter through ``torch.nn.init`` (random draws): for the default voice's
    two networks that is about 0.1 s of a 2-core CPU's start-up, all of it overwritten by the load. Inside this
    context those fill functions leave their tensor as allocated; the caller must load every parameter
    (``load_weights`` is strict). The functions are swapped module-wide, so the context holds a lock."""
    with _INIT_LOCK:
        saved = {name: getattr(nn.init, name) for name in _INIT_FILLS}
        try:
            for name in _INIT_FILLS:
                setattr(nn.init, name, lambda tensor, *args, **kwargs: tensor)
            yield
        finally:
            for name, fn in saved.items():
                setattr(nn.init, name, fn)


def build_and_load(build: Callable[[], Any], directory: str | os.PathLike[str],
                   weights_of: Callable[[Any], nn.Module] = lambda built: built) -> Any:
    """``build()`` without initial weights, then the strict load of ``directory``'s weights into
    ``weights_of(built)`` (which must hold every parameter ``build`` creates); returns what was built."""
    with without_init():
        built = build()
    load_weights(weights_of(built), directory)
    return built


def load_weights(module: nn.Module, directory: str | os.PathLike[str]) -> nn.Module:
    """Load ``model.safetensors`` into ``module`` (strict), with a one-line error on a mismatch."""
    try:
        module.load_state_dict(load_state_dict(directory), strict=True)
    except RuntimeError as e:
        raise ValueError(f"Weights in {str(directory)!r} do not match its config.json: {str(e).splitlines()[0]}") from None
    return module


def load_model(directory: str | os.PathLike[str], device: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """(model in eval mode on ``device``, full config dict), built from ``config.json`` alone."""
    config = load_config(directory)
    model = build_and_load(lambda: build_model(config), directory)
    return model.to(device).eval(), config


register_model("denoiser", Denoiser, DenoiserConfig)


def update_config(directory: str | os.PathLike[str], section: str, values: dict[str, Any]) -> dict[str, Any]:
    """Merge ``values`` into one section of a checkpoint's ``config.json`` (atomic rewrite); returns the config.

    Used to store results found after training (e.g. a searched inference schedule) without
    touching the weights."""
    config = load_config(directory)
    merged = dict(config.get(section) or {})
    merged.update(values)
    config[section] = merged
    path = Path(directory) / CONFIG_NAME
    fd, tmp = tempfile.mkstemp(prefix=f".{CONFIG_NAME}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(config, f, indent=2)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return config


def export_checkpoint(src: str | os.PathLike[str], dst: str | os.PathLike[str],
                      dtype: torch.dtype = torch.float16) -> Path:
    """Copy checkpoint ``src`` to ``dst`` with its floating-point weights stored as ``dtype``.

    For shipping a model (the bundled default voice): float16 halves the files, and loading casts
    the weights back to the model's float32. ``dst`` is written atomically like ``save_pretrained``."""
    if not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise ValueError(f"dtype must be a floating-point torch.dtype, got {dtype!r}.")
    config = load_config(src)
    tensors = {k: v.to(dtype) if v.is_floating_point() else v for k, v in load_state_dict(src).items()}
    return _write_checkpoint(Path(dst), _tensors_for_saving(tensors), config)
