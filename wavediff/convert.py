"""Lossless import of lmnt-com/diffwave weights into :class:`wavediff.nn.Denoiser`.

lmnt's ``DiffWave`` and our ``Denoiser`` (with ``fold=1``, ``upsample_factor=256``) compute
the same function; the parameter names match except for the mel upsampler
(``spectrogram_upsampler.conv{1,2}`` -> ``cond_upsampler.stages.{0,1}``).

lmnt ``.pt`` files are pickles ``{'step', 'model', 'optimizer', 'params', 'scaler'}`` whose
``params`` is a ``diffwave.params.AttrDict``. They are read with ``torch.load(weights_only=True)``
only; the AttrDict is rebuilt as a plain ``OrderedDict`` through torch's safe-globals alias
mechanism (no code from the file runs, and diffwave need not be installed).
"""

from __future__ import annotations

import collections
import os
import pickle
import re
import warnings
from pathlib import Path
from typing import Any, Mapping

import torch

from wavediff.nn.denoiser import Denoiser, DenoiserConfig, DiffusionEmbedding, upsample_strides

__all__ = [
    "convert_lmnt_checkpoint",
    "lmnt_vocoder",
    "lmnt_reference_predict",
    "LMNT_DEFAULT_NOISE_SCHEDULE",
    "LMNT_DEFAULT_INFERENCE_NOISE_SCHEDULE",
    "convert_lmnt_state_dict",
    "load_lmnt_checkpoint",
]


def _linspace(start: float, stop: float, num: int) -> list[float]:
    """``numpy.linspace(start, stop, num).tolist()`` in plain Python (bit-identical)."""
    step = (stop - start) / (num - 1)
    return [i * step + start for i in range(num - 1)] + [stop]


LMNT_DEFAULT_NOISE_SCHEDULE: tuple[float, ...] = tuple(_linspace(1e-4, 0.05, 50))
LMNT_DEFAULT_INFERENCE_NOISE_SCHEDULE: tuple[float, ...] = (0.0001, 0.001, 0.01, 0.05, 0.2, 0.5)
_LMNT_DEFAULT_DILATION_CYCLE = 10

_LAYER_KEY = re.compile(r"^residual_layers\.(\d+)\.")
_UPSAMPLER_KEY = re.compile(r"^spectrogram_upsampler\.conv(\d+)\.(weight|bias)$")


def _strip_module_prefix(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop the ``module.`` prefix that DataParallel/DDP wrappers add."""
    if state_dict and all(k.startswith("module.") for k in state_dict):
        return {k[len("module."):]: v for k, v in state_dict.items()}
    return dict(state_dict)


def _param(params: Mapping[str, Any] | None, name: str) -> Any:
    if params is None:
        return None
    return params.get(name)


def _check_agrees(name: str, from_weights: Any, from_params: Any) -> None:
    if from_params is not None and from_params != from_weights:
        raise ValueError(f"lmnt params say {name}={from_params!r} but the weights have {name}={from_weights!r}.")


def _require(state_dict: Mapping[str, torch.Tensor], key: str) -> torch.Tensor:
    if key not in state_dict:
        raise ValueError(f"Not an lmnt-com/diffwave state dict: the key {key!r} is missing.")
    return state_dict[key]


def convert_lmnt_state_dict(
    state_dict: Mapping[str, torch.Tensor], params: Mapping[str, Any] | None = None
) -> tuple[DenoiserConfig, dict[str, torch.Tensor]]:
    """(config, renamed state dict) for an lmnt ``DiffWave`` state dict.

    Sizes come from the weight shapes; ``max_steps`` from ``len(params['noise_schedule'])``
    (else from a stored embedding table, else lmnt's default 50); ``dilation_cycle`` from
    ``params['dilation_cycle_length']`` (default 10). Sizes given in ``params`` must agree
    with the weights. The tensors themselves are passed through unchanged.
    """
    sd = _strip_module_prefix(state_dict)

    # ---- sizes from the weights
    in_proj = _require(sd, "input_projection.weight")  # [C, 1, 1]
    if in_proj.dim() != 3 or in_proj.shape[1] != 1:
        raise ValueError(f"input_projection.weight has shape {tuple(in_proj.shape)}; expected [C, 1, 1].")
    residual_channels = int(in_proj.shape[0])
    proj1 = _require(sd, "diffusion_embedding.projection1.weight")  # [H, E]
    embedding_hidden, embedding_dim = (int(s) for s in proj1.shape)

    layer_ids = sorted({int(m.group(1)) for k in sd if (m := _LAYER_KEY.match(k))})
    if not layer_ids or layer_ids != list(range(len(layer_ids))):
        raise ValueError(f"Residual layers must be numbered 0..n-1, found {layer_ids}.")
    residual_layers = len(layer_ids)

    cond_key = "residual_layers.0.conditioner_projection.weight"
    cond_channels = int(sd[cond_key].shape[1]) if cond_key in sd else None

    stage_ids = sorted({int(m.group(1)) for k in sd if (m := _UPSAMPLER_KEY.match(k))})
    strides = tuple(int(sd[f"spectrogram_upsampler.conv{i}.weight"].shape[-1]) // 2 for i in stage_ids)
    upsample_factor = 1
    for s in strides:
        upsample_factor *= s
    if cond_channels is not None:
        if not strides:
            raise ValueError("The weights have conditioner projections but no spectrogram_upsampler.")
        if tuple(sorted(strides, reverse=True)) != strides or upsample_strides(upsample_factor) != strides:
            raise ValueError(
                f"Upsampler strides {strides} cannot be represented (expected {upsample_strides(upsample_factor)})."
            )
    elif strides:
        raise ValueError("The weights have a spectrogram_upsampler but no conditioner projections.")
    else:
        upsample_factor = 256  # unused by an unconditional model; lmnt's hop

    # ---- what the weights cannot tell
    schedule = _param(params, "noise_schedule")
    if schedule is not None:
        max_steps = len(schedule)
    elif "diffusion_embedding.embedding" in sd:
        max_steps = int(sd["diffusion_embedding.embedding"].shape[0])
    else:
        max_steps = len(LMNT_DEFAULT_NOISE_SCHEDULE)
    dilation_cycle = _param(params, "dilation_cycle_length") or _LMNT_DEFAULT_DILATION_CYCLE

    _check_agrees("residual_layers", residual_layers, _param(params, "residual_layers"))
    _check_agrees("residual_channels", residual_channels, _param(params, "residual_channels"))
    if not _param(params, "unconditional"):
        _check_agrees("n_mels", cond_channels, _param(params, "n_mels"))

    config = DenoiserConfig(
        in_channels=1,
        fold=1,
        residual_layers=residual_layers,
        residual_channels=residual_channels,
        dilation_cycle=int(dilation_cycle),
        cond_channels=cond_channels,
        upsample_factor=upsample_factor,
        max_steps=max_steps,
        learned_variance=False,
        embedding_dim=embedding_dim,
        embedding_hidden=embedding_hidden,
    )

    # ---- rename
    converted: dict[str, torch.Tensor] = {}
    for key, tensor in sd.items():
        if key == "diffusion_embedding.embedding":  # a derived table; check it, do not copy it
            expected = DiffusionEmbedding._build_embedding(max_steps, embedding_dim)
            if tuple(tensor.shape) != tuple(expected.shape) or not torch.allclose(tensor.float(), expected, atol=1e-5):
                raise ValueError("The stored diffusion_embedding.embedding is not lmnt's sin/cos table.")
            continue
        m = _UPSAMPLER_KEY.match(key)
        new_key = f"cond_upsampler.stages.{stage_ids.index(int(m.group(1)))}.{m.group(2)}" if m else key
        converted[new_key] = tensor

    # ---- every key and shape must match what Denoiser(config) expects
    with torch.device("meta"):
        expected_sd = Denoiser(config).state_dict()
    missing = sorted(set(expected_sd) - set(converted))
    unexpected = sorted(set(converted) - set(expected_sd))
    if missing or unexpected:
        raise ValueError(f"Cannot convert: missing keys {missing}, unexpected keys {unexpected}.")
    for key, ref in expected_sd.items():
        if tuple(converted[key].shape) != tuple(ref.shape):
            raise ValueError(
                f"{key} has shape {tuple(converted[key].shape)}, expected {tuple(ref.shape)} for {config}."
            )
    return config, converted


def _torch_load_lmnt(path: Path) -> Any:
    """``torch.load(weights_only=True)``, mapping ``diffwave.params.AttrDict`` to ``OrderedDict``."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "AttrDict" not in str(e):
            raise ValueError(
                f"{str(path)!r} cannot be read with weights_only=True (it pickles objects other than "
                f"tensors and lmnt's params): {str(e).splitlines()[-1] if str(e) else e}"
            ) from None
    # An AttrDict cannot be rebuilt as itself under weights_only (SETITEMS is refused for dict
    # subclasses), so rebuild it as an OrderedDict: same items, and no code from the file runs.
    try:
        alias = torch.serialization.safe_globals([(collections.OrderedDict, "diffwave.params.AttrDict")])
        with alias:
            return torch.load(path, map_location="cpu", weights_only=True)
    except (TypeError, AttributeError, pickle.UnpicklingError) as e:
        raise ValueError(
            f"{str(path)!r} stores lmnt's params as a diffwave.params.AttrDict, which this torch "
            f"({torch.__version__}) cannot read safely ({type(e).__name__}); use torch >= 2.6, or load it "
            "yourself from a trusted source and call convert_lmnt_state_dict(ckpt['model'], dict(ckpt['params']))."
        ) from None


def load_lmnt_checkpoint(
    path: str | os.PathLike[str],
) -> tuple[DenoiserConfig, dict[str, torch.Tensor], list[float], list[float]]:
    """(config, state dict, training noise schedule βs, inference noise schedule βs) of an lmnt checkpoint.

    ``path`` is an lmnt ``.pt`` file (``weights.pt`` / ``weights-<step>.pt``) or a model
    directory holding ``weights.pt``. A checkpoint without params (or a bare state dict) is
    converted with lmnt's default params and a warning.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "weights.pt"
    if not path.is_file():
        raise ValueError(f"lmnt checkpoint {str(path)!r} does not exist.")
    obj = _torch_load_lmnt(path)
    if not isinstance(obj, dict):
        raise ValueError(f"{str(path)!r} holds a {type(obj).__name__}, not an lmnt checkpoint dict.")

    if "model" in obj and isinstance(obj["model"], dict):
        state_dict, params = obj["model"], obj.get("params")
    elif obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        state_dict, params = obj, None
    else:
        raise ValueError(f"{str(path)!r} has no 'model' state dict; keys are {sorted(map(str, obj))}.")

    if params is None:
        warnings.warn(
            f"{str(path)!r} has no params; assuming lmnt's defaults (noise schedule linspace(1e-4, 0.05, 50), "
            "dilation cycle 10, inference schedule [1e-4, 1e-3, 0.01, 0.05, 0.2, 0.5]).",
            stacklevel=2,
        )
    elif not isinstance(params, Mapping):
        raise ValueError(f"{str(path)!r}: 'params' is a {type(params).__name__}, expected a dict.")
    else:
        params = dict(params)

    config, converted = convert_lmnt_state_dict(state_dict, params)
    schedule = _param(params, "noise_schedule")
    inference = _param(params, "inference_noise_schedule")
    noise_schedule = [float(b) for b in (schedule if schedule is not None else LMNT_DEFAULT_NOISE_SCHEDULE)]
    inference_schedule = [
        float(b) for b in (inference if inference is not None else LMNT_DEFAULT_INFERENCE_NOISE_SCHEDULE)
    ]
    return config, converted, noise_schedule, inference_schedule


def lmnt_vocoder(config: DenoiserConfig, state_dict: Mapping[str, torch.Tensor], noise_schedule, inference_schedule):
    """A wavediff :class:`~wavediff.pipelines.Vocoder` that reproduces lmnt's ``predict``.

    The ``diffwave`` mel preset (lmnt's features), lmnt's training βs as a custom schedule, its
    inference βs as the fast schedule, no prior, and lmnt's per-step clamp to [−1, 1]."""
    from wavediff.audio import MelConfig
    from wavediff.diffusion import DiffusionConfig, ScheduleConfig
    from wavediff.pipelines.vocoder import InferenceConfig, PriorConfig, Vocoder, VocoderConfig

    if config.cond_channels is None:
        raise ValueError("unconditional lmnt checkpoints are not supported")
    mel = MelConfig.diffwave()
    if config.cond_channels != mel.n_mels or config.upsample_factor != mel.hop_length:
        raise ValueError(
            f"this lmnt model has {config.cond_channels} mels and hop {config.upsample_factor}; "
            f"the diffwave preset has {mel.n_mels} and {mel.hop_length}"
        )
    vcfg = VocoderConfig(
        model=config,
        diffusion=DiffusionConfig(schedule=ScheduleConfig(kind="custom", betas=list(noise_schedule)), loss="l1"),
        mel=mel,
        prior=PriorConfig(kind="none"),
        inference=InferenceConfig(sampler="fast", betas=list(inference_schedule), clip=1.0),
    )
    vocoder = Vocoder(vcfg)
    vocoder.net.load_state_dict(dict(state_dict), strict=True)
    return vocoder


def convert_lmnt_checkpoint(path: str | os.PathLike[str], out_dir: str | os.PathLike[str]) -> Path:
    """An lmnt-com/diffwave ``weights.pt`` → a wavediff vocoder checkpoint directory (see :func:`lmnt_vocoder`)."""
    config, state_dict, noise_schedule, inference_schedule = load_lmnt_checkpoint(path)
    return lmnt_vocoder(config, state_dict, noise_schedule, inference_schedule).save_pretrained(out_dir)


@torch.no_grad()
def lmnt_reference_predict(model: torch.nn.Module, spectrogram: torch.Tensor, params, device="cpu") -> torch.Tensor:
    """lmnt-com/diffwave 0.1.7 ``inference.predict(fast_sampling=True)`` after its model loading,
    transcribed (its module imports torchaudio). A reference for tests and benchmarks, not for use:
    ``model`` is lmnt's own ``DiffWave``, ``params`` its params."""
    import numpy as np

    training_noise_schedule = np.array(params.noise_schedule)
    inference_noise_schedule = np.array(params.inference_noise_schedule)
    talpha_cum = np.cumprod(1 - training_noise_schedule)
    beta = inference_noise_schedule
    alpha = 1 - beta
    alpha_cum = np.cumprod(alpha)
    T = []
    for s in range(len(inference_noise_schedule)):
        for t in range(len(training_noise_schedule) - 1):
            if talpha_cum[t + 1] <= alpha_cum[s] <= talpha_cum[t]:
                twiddle = (talpha_cum[t] ** 0.5 - alpha_cum[s] ** 0.5) / (talpha_cum[t] ** 0.5 - talpha_cum[t + 1] ** 0.5)
                T.append(t + twiddle)
                break
    T = np.array(T, dtype=np.float32)
    if len(spectrogram.shape) == 2:
        spectrogram = spectrogram.unsqueeze(0)
    spectrogram = spectrogram.to(device)
    audio = torch.randn(spectrogram.shape[0], params.hop_samples * spectrogram.shape[-1], device=device)
    for n in range(len(alpha) - 1, -1, -1):
        c1 = 1 / alpha[n] ** 0.5
        c2 = beta[n] / (1 - alpha_cum[n]) ** 0.5
        audio = c1 * (audio - c2 * model(audio, spectrogram, torch.tensor([T[n]], device=audio.device)).squeeze(1))
        if n > 0:
            noise = torch.randn_like(audio)
            sigma = ((1.0 - alpha_cum[n - 1]) / (1.0 - alpha_cum[n]) * beta[n]) ** 0.5
            audio += sigma * noise
        audio = torch.clamp(audio, -1.0, 1.0)
    return audio
