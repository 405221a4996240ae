"""``wavediff train acoustic``: transcribed corpus → (phonemes, mel) pairs → the one :class:`Trainer`.

The run directory has the same layout as a vocoder run (``run.json``, ``state/``, ``logs/``,
``features/``, ``model/``); ``features/`` uses the same cache key as the vocoder's, so pointing both
runs at one cache folder computes mels once.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from wavediff.audio import MelConfig
from wavediff.checkpoint import load_weights
from wavediff.data import scan_corpus, split_corpus
from wavediff.data.tts import TTSDataset
from wavediff.diffusion import DiffusionConfig
from wavediff.nn.acoustic import AcousticConfig
from wavediff.nn.denoiser import DenoiserConfig
from wavediff.nn.encoder import EncoderConfig
from wavediff.pipelines.tts import AcousticLoss, AcousticModelConfig, AcousticPipeline, TTSInference
from wavediff.text import TextFrontend
from wavediff.text.g2p import resolve_language

from .configs import RUN_FILE, check_init, init_config, run_config, train_config, write_run_file
from .configs import load_recipe_config as _load
from .trainer import Trainer

__all__ = ["load_acoustic_config", "resolve_acoustic_config", "train_acoustic"]

_SECTIONS = ("encoder", "denoiser", "duration", "diffusion", "mel", "text", "inference", "data", "train")


def load_acoustic_config(name_or_path) -> dict[str, Any]:
    return _load("acoustic", name_or_path, _SECTIONS)


def _init_frontend(init, theirs: dict[str, Any], text: dict[str, Any]) -> dict[str, Any]:
    """The text front end of a run that starts from ``init``: the init model's (its symbols, in their
    order, index its embeddings), with the ``leading_pause`` this run's config sets, when it sets one
    (the pause uses symbols every inventory has). A config of another language is refused."""
    frontend = dict(theirs)
    language = text.get("language")
    if language is not None:
        try:
            language = resolve_language(language)  # 'en-US', 'en' and 'en-us' are one language
        except ValueError:
            pass  # an unsupported language is refused below, naming the model's
    if language is not None and language != frontend["language"]:
        raise ValueError(
            f"--init {os.fspath(init)}: its text front end is {frontend['language']!r}, this run's config says "
            f"{language!r}; a model's symbols belong to its language"
        )
    if "leading_pause" in text:
        frontend["leading_pause"] = text["leading_pause"]
    return frontend


def resolve_acoustic_config(cfg: dict[str, Any], frontend: TextFrontend) -> AcousticModelConfig:
    mel_section = dict(cfg.get("mel") or {})
    mel = MelConfig.from_preset(mel_section.pop("preset", "hifigan"))
    if mel_section:
        mel = MelConfig.from_dict({**mel.to_dict(), **mel_section})
    diffusion = DiffusionConfig.from_dict(dict(cfg.get("diffusion") or {}))
    encoder = EncoderConfig.from_dict({**(cfg.get("encoder") or {}), "n_symbols": len(frontend.symbols), "n_mels": mel.n_mels})
    denoiser = DenoiserConfig.from_dict(
        {
            **(cfg.get("denoiser") or {}),
            "in_channels": mel.n_mels,
            "cond_channels": encoder.dim + mel.n_mels,
            "upsample_factor": 1,
            "fold": 1,
            "max_steps": diffusion.schedule.num_steps,
            "learned_variance": diffusion.variance == "learned",
        }
    )
    dur = cfg.get("duration") or {}
    model = AcousticConfig(
        encoder=encoder,
        denoiser=denoiser,
        duration_channels=int(dur.get("channels", 256)),
        duration_kernel=int(dur.get("kernel", 3)),
        duration_dropout=float(dur.get("dropout", 0.1)),
    )
    data = cfg.get("data") or {}
    return AcousticModelConfig(
        model=model,
        text=frontend.to_dict(),
        diffusion=diffusion,
        mel=mel,
        inference=TTSInference(**(cfg.get("inference") or {})),
        decoder_segment=data.get("decoder_segment"),
    )


def train_acoustic(
    data_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    config: str | os.PathLike | None = "base",
    max_steps: int | None = None,
    device: str | None = None,
    resume: bool = False,
    max_time: float | None = None,
    init: str | os.PathLike | None = None,
) -> dict:
    """Train (or resume) an acoustic model on a transcribed corpus; returns the trainer's stats.

    ``init``: a trained acoustic model's folder (``EXP/model``, or ``"default"``: the bundled one) to
    start from (fine-tuning): its weights and its text front end (the config's ``text.leading_pause``,
    where set, still applies); optimiser, step count and EMA start afresh. Its sizes and mel must
    match the config."""
    out = Path(out_dir)
    init, init_cfg = init_config(init, resume, "acoustic")
    cfg, resumed = run_config(out, resume, lambda: load_acoustic_config(config))
    if init_cfg is not None:
        text = cfg["text"] = dict(cfg.get("text") or {})
        text["frontend"] = _init_frontend(init, init_cfg["text"], text)
        cfg["init"] = os.fspath(init)
    tcfg = train_config(cfg, max_steps, device)
    text_cfg = cfg.get("text") or {}
    frontend = TextFrontend.from_dict(text_cfg["frontend"]) if "frontend" in text_cfg else TextFrontend(**text_cfg)
    acfg = resolve_acoustic_config(cfg, frontend)
    if init_cfg is not None:
        ours = acfg.to_dict()
        check_init(init, init_cfg, {k: ours[k] for k in ("model", "diffusion", "mel")})
    if not resumed:
        cfg.setdefault("text", {})["frontend"] = frontend.to_dict()  # the inventory is fixed for the run
        write_run_file(out, cfg)

    data = cfg.get("data") or {}
    utterances = scan_corpus(data_dir)
    n_val = int(data.get("val_utterances", 8))
    if len(utterances) < n_val + 1:
        raise ValueError(f"{data_dir} has {len(utterances)} utterances; need more than {n_val} (the validation set)")
    split = split_corpus(utterances, val=n_val, test=0, seed=tcfg.seed)
    max_frames = data.get("max_frames")
    train_ds = TTSDataset(split.train, acfg.mel, frontend, out / "features", max_frames)
    val_ds = TTSDataset(split.val, acfg.mel, frontend, out / "features", max_frames) if split.val else None

    torch.manual_seed(tcfg.seed)
    pipeline = AcousticPipeline(acfg, frontend)
    if init_cfg is not None:
        load_weights(pipeline.model, init)
    trainer = Trainer(
        AcousticLoss(pipeline),
        lambda model, batch: model(batch),
        train_ds,
        out,
        tcfg,
        val_dataset=val_ds,
        collate_fn=train_ds.collate_fn,
        on_validate=_log_validation(val_ds, split.val),
        export_fn=lambda ema, directory: ema.pipeline.save_pretrained(directory),
    )
    return trainer.fit(resume=resume, max_time=max_time)


def _log_validation(val_ds, utterances):
    """on_validate: synthesise one held-out sentence; log its mel and alignment beside the reference."""
    if val_ds is None or len(val_ds) == 0:
        return None

    def on_validate(ema_module, writer, step):
        pipeline = ema_module.pipeline
        item = val_ds[0]
        text = next(u.text for u in utterances if u.text)
        mel, align = pipeline.mel(text, seed=0, return_alignment=True)
        from wavediff.eval.plots import alignment_figure, mel_figure

        try:
            writer.add_figure("val/mel", mel_figure([item["mel"], mel], ["reference", "synthesised"]), step)
            writer.add_figure("val/alignment", alignment_figure(align), step)
        except ImportError:  # matplotlib comes with the dev/train extras
            pass

    return on_validate


__all__ += ["RUN_FILE"]
