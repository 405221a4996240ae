"""``wavediff train vocoder``: corpus → datasets → :class:`Vocoder` → the one :class:`Trainer`.

A run directory holds ``run.json`` (the fully resolved configuration, written once and reused on
``--resume`` so a resumed run is the same run), ``state/`` (training state), ``logs/``
(TensorBoard), ``features/`` (the feature cache) and ``model/`` (an inference checkpoint with the
EMA weights, refreshed at every checkpoint: ``wavediff vocode --checkpoint EXP`` loads it).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from wavediff.audio import MelConfig
from wavediff.checkpoint import load_weights
from wavediff.data import VocoderDataset, collate_vocoder, scan_corpus, split_corpus
from wavediff.diffusion import DiffusionConfig
from wavediff.nn import DenoiserConfig
from wavediff.pipelines.vocoder import (InferenceConfig, InferLossConfig, PriorConfig, Vocoder, VocoderConfig, VocoderLoss,
                                       X0LossConfig)

from .configs import RUN_FILE, check_init, init_config, run_config, train_config, write_run_file
from .configs import load_recipe_config as _load
from .trainer import Trainer

__all__ = ["load_recipe_config", "resolve_vocoder_config", "fit_prior_gain", "train_vocoder", "RUN_FILE"]

_SECTIONS = ("model", "diffusion", "mel", "prior", "inference", "infer_loss", "x0_loss", "data", "train")


def load_recipe_config(name_or_path: str | os.PathLike | None) -> dict[str, Any]:
    """A vocoder training config: a packaged name (``base``, ``tiny`` …) or a YAML file path."""
    return _load("vocoder", name_or_path, _SECTIONS)


def resolve_vocoder_config(cfg: dict[str, Any]) -> VocoderConfig:
    """Recipe sections → a consistent :class:`VocoderConfig` (conditioning sizes follow the mel)."""
    mel_section = dict(cfg.get("mel") or {})
    preset = mel_section.pop("preset", "hifigan")
    mel = MelConfig.from_preset(preset)
    if mel_section:
        mel = MelConfig.from_dict({**mel.to_dict(), **mel_section})
    diffusion = DiffusionConfig.from_dict(dict(cfg.get("diffusion") or {}))
    model_section = dict(cfg.get("model") or {})
    unconditional = bool(model_section.pop("unconditional", False))
    model = DenoiserConfig.from_dict(
        {
            **model_section,
            "in_channels": 1,
            "cond_channels": None if unconditional else mel.n_mels,
            "upsample_factor": mel.hop_length,
            "max_steps": diffusion.schedule.num_steps,
            "learned_variance": diffusion.variance == "learned",
        }
    )
    prior = PriorConfig(**(cfg.get("prior") or {}))
    if unconditional and prior.kind != "none":
        prior = PriorConfig(kind="none")
    inference = InferenceConfig(**(cfg.get("inference") or {}))
    return VocoderConfig(model=model, diffusion=diffusion, mel=mel, prior=prior, inference=inference)


@torch.no_grad()
def fit_prior_gain(dataset: VocoderDataset, mel_config: MelConfig, max_items: int = 64) -> float:
    """Least-squares gain g with frame RMS ≈ g · e_f (e_f the mel frame energy), over voiced frames."""
    from wavediff.audio import decompress_mel

    hop = mel_config.hop_length
    rms, energy = [], []
    for i in range(min(len(dataset), max_items)):
        audio, mel = dataset.load_features(i)
        frames = min(mel.shape[-1], len(audio) // hop)
        a = torch.from_numpy(np.asarray(audio[: frames * hop], dtype=np.float32)).view(frames, hop)
        e = decompress_mel(torch.from_numpy(np.asarray(mel[:, :frames], dtype=np.float32)), mel_config)
        rms.append(a.pow(2).mean(1).sqrt())
        energy.append(e.pow(2).mean(0).sqrt())
    r, e = torch.cat(rms), torch.cat(energy)
    keep = r > 0.01  # frames with sound; silence would pull the fit towards the floor
    if keep.sum() < 10:
        keep = torch.ones_like(r, dtype=torch.bool)
    gain = (r[keep] * e[keep]).sum() / e[keep].pow(2).sum().clamp(min=1e-12)
    return float(gain)


def _datasets(data_dir, vcfg: VocoderConfig, data_cfg: dict, cache_dir: Path, seed: int):
    utterances = scan_corpus(data_dir)
    n_val = int(data_cfg.get("val_utterances", 8))
    if len(utterances) < n_val + 1:
        raise ValueError(f"{data_dir} has {len(utterances)} usable utterances; need more than {n_val} (the validation set)")
    split = split_corpus(utterances, val=n_val, test=0, seed=seed)
    crop = int(data_cfg.get("crop_frames", 62))
    val_frames = max(16, int(float(data_cfg.get("val_seconds", 2.0)) * vcfg.mel.sample_rate / vcfg.mel.hop_length))
    mels = data_cfg.get("mel_dir")  # given mels (e.g. an acoustic model's, aligned) instead of the recordings'
    train = VocoderDataset(split.train, vcfg.mel, crop_frames=crop, cache_dir=cache_dir, seed=seed, mel_dir=mels)
    val = (VocoderDataset(split.val, vcfg.mel, crop_frames=val_frames, cache_dir=cache_dir, seed=seed, mel_dir=mels)
           if split.val else None)
    return train, val


def train_vocoder(
    data_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    config: str | os.PathLike | None = "base",
    max_steps: int | None = None,
    device: str | None = None,
    resume: bool = False,
    max_time: float | None = None,
    overrides: dict[str, dict] | None = None,
    init: str | os.PathLike | None = None,
) -> dict:
    """Train (or resume) a vocoder on a corpus folder; returns the trainer's final stats.

    ``init``: a trained vocoder's folder (``EXP/model``, or ``"default"``: the bundled one) to start
    from (fine-tuning): its weights, its prior's gain and its inference settings (its tuned schedule),
    where the config does not set them; optimiser, step count and EMA start afresh. Its sizes and mel
    must match the config.

    The config's ``infer_loss`` section (:class:`InferLossConfig`) adds InferGrad's inference loss,
    its ``x0_loss`` section (:class:`X0LossConfig`) a spectral loss on the one-step estimate x̂_0;
    ``data.mel_dir`` trains on given mels instead of the recordings' own (:class:`VocoderDataset`)."""
    out = Path(out_dir)
    init, init_cfg = init_config(init, resume, "vocoder")
    cfg, resumed = run_config(out, resume, lambda: load_recipe_config(config))
    for section, values in (overrides or {}).items():
        cfg.setdefault(section, {}).update(values)
    if init_cfg is not None:
        gain = (init_cfg.get("prior") or {}).get("gain")
        if gain:
            cfg.setdefault("prior", {})["gain"] = gain
        cfg["inference"] = {**(init_cfg.get("inference") or {}), **(cfg.get("inference") or {})}
        cfg["init"] = os.fspath(init)
    tcfg = train_config(cfg, max_steps, device)
    vcfg = resolve_vocoder_config(cfg)
    infer_loss = InferLossConfig.from_dict(cfg.get("infer_loss"))
    x0_loss = X0LossConfig.from_dict(cfg.get("x0_loss"))
    if init_cfg is not None:
        ours = vcfg.to_dict()
        check_init(init, init_cfg, {k: ours[k] for k in ("model", "diffusion", "mel", "prior")})
    train_ds, val_ds = _datasets(data_dir, vcfg, cfg.get("data") or {}, out / "features", tcfg.seed)

    if vcfg.prior.kind == "energy" and not (cfg.get("prior") or {}).get("gain"):
        gain = fit_prior_gain(train_ds, vcfg.mel)
        cfg.setdefault("prior", {})["gain"] = gain
        vcfg.prior.gain = gain
    if not resumed:
        write_run_file(out, cfg)

    torch.manual_seed(tcfg.seed)
    vocoder = Vocoder(vcfg)
    if init_cfg is not None:
        load_weights(vocoder.net, init)
    module = VocoderLoss(vocoder, infer_loss, x0_loss)
    trainer = Trainer(
        module,
        lambda model, batch: model(batch),
        train_ds,
        out,
        tcfg,
        val_dataset=val_ds,
        collate_fn=collate_vocoder,
        on_validate=_log_validation_sample(val_ds),
        export_fn=lambda ema, directory: ema.vocoder.save_pretrained(directory),
    )
    return trainer.fit(resume=resume, max_time=max_time)


def _log_validation_sample(val_ds):
    """on_validate hook: vocode one held-out clip with the EMA model; log audio, mel plot, distance."""
    if val_ds is None or len(val_ds) == 0:
        return None

    def on_validate(ema_module, writer, step):
        from wavediff.eval.spectral import mrstft_distance

        vocoder = ema_module.vocoder
        item = val_ds[0]
        device = vocoder.device
        mel = item["mel"].unsqueeze(0).to(device)
        wav = vocoder.vocode(mel, seed=0)[0].float().cpu()
        ref = item["audio"].float()
        writer.add_scalar("val/mrstft", mrstft_distance(ref, wav).item(), step)
        writer.add_audio("val/generated", wav.clamp(-1, 1).unsqueeze(0), step, sample_rate=vocoder.sample_rate)
        if step == 0 or not getattr(on_validate, "_logged_ref", False):
            writer.add_audio("val/reference", ref.unsqueeze(0), step, sample_rate=vocoder.sample_rate)
            on_validate._logged_ref = True
        from wavediff.eval.plots import mel_figure

        try:
            writer.add_figure("val/mel", mel_figure([item["mel"], vocoder.mel(wav)], ["reference", "generated"]), step)
        except ImportError:  # matplotlib is optional (the dev/train extras bring it)
            pass

    return on_validate
