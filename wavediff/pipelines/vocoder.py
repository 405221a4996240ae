"""The neural vocoder: mel spectrogram → waveform by diffusion, and its training loss.

A :class:`Vocoder` owns a :class:`~wavediff.nn.Denoiser` over waveform samples, the
:class:`~wavediff.diffusion.Diffusion` that trains and samples it, its mel convention, an optional
PriorGrad prior and its default inference settings; all of it is stored in ``config.json``.
"""
from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch import nn

from wavediff.audio import MelConfig, MelSpectrogram, decompress_mel, griffin_lim, match_mel, validate_mel, validate_waveform
from wavediff.audio.mel import check_iterations
from wavediff.device import device_type, in_precision, inference_dtype
from wavediff.checkpoint import build_and_load, load_config, register_model, save_pretrained
from wavediff.diffusion import DIFFWAVE_FAST_BETAS, AffinePrior, Diffusion, DiffusionConfig, fast_reverse, sample
from wavediff.nn import Denoiser, DenoiserConfig

__all__ = ["PriorConfig", "InferenceConfig", "InferLossConfig", "VocoderConfig", "Vocoder", "VocoderLoss", "X0LossConfig", "default_fast_betas"]

MODEL_TYPE = "vocoder"


@dataclass
class PriorConfig:
    """PriorGrad's data-dependent prior N(0, diag(s²)) with s from the mel's frame energy.

    ``s_f = clamp(gain · e_f / level, min_std, max_std)``, e_f = √(mean over bins of the linear mel²),
    held for the frame's ``hop`` samples. ``gain`` is fitted on training data (RMS of a frame's audio
    ≈ gain · e_f), so the standardised waveform y = x / s has RMS ≈ ``level`` in the frames the clamp
    leaves alone, and less in quieter ones (as in PriorGrad, where s is the frame energy normalised
    to [0.1, 1] and loud frames keep their level).

    Why ``level`` defaults to 0.1: DiffWave's schedules end with much of the signal left (ᾱ = 0.28
    at t = T for the 50-step training schedule, 0.38 at the start of the 6-step fast schedule), which
    is harmless for audio at speech level (RMS ≈ 0.06) but not for a unit-variance y: a model trained
    with ``level: 1`` learns to rely on the signal leaking into x_T and, started from pure noise,
    renders speech about 3.5× too quiet. Level 0.1 gives the right loudness; after 16-23k steps it
    was nonetheless the less intelligible of the two (measured; see the README), so the default
    voice's vocoder (the ``small`` config) uses level 1; it was about 8 dB too quiet until fine-tuned with
    the inference loss (:meth:`Vocoder.inference_loss`), which trains the chain from pure noise: now 1 dB."""

    kind: str = "none"  # "none" | "energy"
    gain: float = 1.0
    min_std: float = 0.1
    max_std: float = 1.0
    level: float = 0.1

    def __post_init__(self):
        if self.kind not in ("none", "energy"):
            raise ValueError(f"unknown prior {self.kind!r}; expected 'none' or 'energy'")
        if not (0 < self.min_std <= self.max_std) or self.gain <= 0 or self.level <= 0:
            raise ValueError("prior needs gain > 0, level > 0 and 0 < min_std <= max_std")


@dataclass
class InferenceConfig:
    """Default sampling settings (``wavediff tune-schedule`` stores a searched ``betas`` here)."""

    sampler: str = "fast"
    betas: list[float] = field(default_factory=lambda: list(DIFFWAVE_FAST_BETAS))
    steps: int | None = None  # for samplers other than "fast" (None: len(betas))
    clip: float | None = 1.0
    chunk_frames: int = 1024  # long inputs are vocoded in chunks of this many frames
    mel_match: int = 0  # iterations of :func:`wavediff.audio.match_mel` on the output (0: none)

    def __post_init__(self):
        check_iterations(self.mel_match, "inference.mel_match")


@dataclass
class VocoderConfig:
    model: DenoiserConfig = field(default_factory=DenoiserConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    mel: MelConfig = field(default_factory=MelConfig.hifigan)
    prior: PriorConfig = field(default_factory=PriorConfig)
    inference: InferenceConfig = field(default_factory=InferenceConfig)

    def __post_init__(self):
        m, mel = self.model, self.mel
        if m.in_channels != 1:
            raise ValueError("a vocoder's denoiser works on waveforms: in_channels must be 1")
        if m.cond_channels is not None:
            if m.cond_channels != mel.n_mels:
                raise ValueError(f"cond_channels={m.cond_channels} but the mel has {mel.n_mels} bins")
            if m.upsample_factor != mel.hop_length:
                raise ValueError(f"upsample_factor={m.upsample_factor} must equal the mel hop {mel.hop_length}")
        elif self.prior.kind != "none":
            raise ValueError("an unconditional vocoder has no mel to build a PriorGrad prior from")
        elif self.inference.mel_match:
            raise ValueError("an unconditional vocoder has no mel to match: inference.mel_match must be 0")
        if m.max_steps != self.diffusion.schedule.num_steps:
            raise ValueError(
                f"the step embedding has {m.max_steps} rows but the schedule has {self.diffusion.schedule.num_steps} steps"
            )
        if m.learned_variance != (self.diffusion.variance == "learned"):
            raise ValueError("model.learned_variance must match diffusion.variance == 'learned'")

    @property
    def unconditional(self) -> bool:
        return self.model.cond_channels is None

    def to_dict(self) -> dict:
        return {
            "model": self.model.to_dict(),
            "diffusion": self.diffusion.to_dict(),
            "mel": self.mel.to_dict(),
            "prior": asdict(self.prior),
            "inference": asdict(self.inference),
        }

    @classmethod
    def from_dict(cls, d: dict) -> "VocoderConfig":
        return cls(
            model=DenoiserConfig.from_dict(d.get("model", {})),
            diffusion=DiffusionConfig.from_dict(d.get("diffusion", {})),
            mel=MelConfig.from_dict(d["mel"]) if "mel" in d else MelConfig.hifigan(),
            prior=PriorConfig(**d.get("prior", {})),
            inference=InferenceConfig(**d.get("inference", {})),
        )


def default_fast_betas(steps: int) -> list[float]:
    """DiffWave's 6-step schedule for 6 steps; otherwise a geometric schedule from 1e-4 to 0.5."""
    if steps == len(DIFFWAVE_FAST_BETAS):
        return list(DIFFWAVE_FAST_BETAS)
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if steps == 1:
        return [0.5]
    r = (0.5 / 1e-4) ** (1 / (steps - 1))
    return [1e-4 * r**i for i in range(steps)]


class _MelRates:
    """sample_rate and hop_length of anything whose ``config.mel`` is a MelConfig."""

    @property
    def sample_rate(self) -> int:
        return self.config.mel.sample_rate

    @property
    def hop_length(self) -> int:
        return self.config.mel.hop_length


class Vocoder(_MelRates, nn.Module):
    """mel → waveform. ``vocoder(mel)`` samples; ``vocoder.mel(wav)`` computes the matching mel."""

    def __init__(self, config: VocoderConfig | None = None):
        super().__init__()
        self.config = config or VocoderConfig()
        self.net = Denoiser(self.config.model)
        self.diffusion = Diffusion(self.config.diffusion)
        self.mel_fn = MelSpectrogram(self.config.mel)

    # ------------------------------------------------------------------ persistence
    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike | None = None, device: str | torch.device | None = None) -> "Vocoder":
        """Build from ``config.json`` and load ``model.safetensors`` (EMA weights); None: the bundled default voice's."""
        if directory is None:
            from .files import bundled_vocoder_dir

            directory = bundled_vocoder_dir()
        cfg = load_config(directory, MODEL_TYPE)
        vocoder = build_and_load(lambda: cls(VocoderConfig.from_dict(cfg)), directory, lambda v: v.net)
        kind = device_type(device)  # a clear error for CUDA on a machine without it
        return vocoder.to(device if device is not None else kind).eval()

    def save_pretrained(self, directory: str | os.PathLike, state_dict: dict | None = None) -> Path:
        """Write ``config.json`` + ``model.safetensors`` (``state_dict``: e.g. EMA weights of ``net``)."""
        sections = self.config.to_dict()
        return save_pretrained(directory, self.net, sections, MODEL_TYPE, state_dict=state_dict)

    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device

    # ---------------------------------------------------------------- features / prior
    @torch.no_grad()
    def mel(self, waveform: torch.Tensor) -> torch.Tensor:
        """waveform [T] or [B, T] at ``sample_rate`` → mel [n_mels, F] / [B, n_mels, F] (this model's convention)."""
        wav = validate_waveform(waveform).to(self.device)
        return self.mel_fn(wav)

    def prior_std(self, mel: torch.Tensor) -> torch.Tensor | None:
        """PriorGrad std per sample, [B, 1, F·hop], from a mel [B, n_mels, F] (None without a prior)."""
        p = self.config.prior
        if p.kind == "none":
            return None
        energy = decompress_mel(mel.float(), self.config.mel).pow(2).mean(1, keepdim=True).sqrt()  # [B, 1, F]
        std = (p.gain * energy / p.level).clamp(p.min_std, p.max_std)
        return std.repeat_interleave(self.hop_length, dim=2)

    def _prior(self, mel: torch.Tensor | None) -> AffinePrior | None:
        std = self.prior_std(mel) if mel is not None else None
        return AffinePrior(std=std) if std is not None else None

    # -------------------------------------------------------------------- training
    def training_loss(self, batch: dict, return_x0: bool = False) -> tuple:
        """ε-loss for a batch ``{"audio": [B, L], "mel": [B, n_mels, L/hop]}`` (see the data module).
        ``return_x0``: also return the one-step waveform estimates x̂_0, [B, 1, L] (see
        :meth:`Diffusion.training_loss`)."""
        audio = batch["audio"].unsqueeze(1)  # [B, 1, L]
        mel = None if self.config.unconditional else batch["mel"]
        prior = self._prior(mel)
        return self.diffusion.training_loss(lambda x, t: self.net(x, t, mel), audio, prior=prior, return_x0=return_x0)


    def inference_loss(self, batch: dict, items: int | None = None) -> torch.Tensor:
        """InferGrad's inference loss (Chen et al., 2022): the multi-resolution STFT distance between
        the batch's audio and what this vocoder's own sampler renders from its mel, starting from
        pure noise, differentiable through the whole unrolled chain (:func:`fast_reverse` with the
        ``inference.betas`` schedule). The ε-loss trains each step on its own, from a forward-noised
        x_t; this trains the few-step chain as it is used, from x_T ~ N(0, I), which also teaches it the
        loudness that the schedule's leftover signal (ᾱ_T > 0 at training time) otherwise loses.

        ``items``: use the batch's first ``items`` crops (the chain costs len(betas) forward and
        backward passes each). Returns the mean distance (a 0-d tensor)."""
        self.check_inference_loss()
        from wavediff.eval.spectral import mrstft_distance

        audio, mel = batch["audio"][:items], batch["mel"][:items]
        prior = self._prior(mel)
        model = self.diffusion.model_fn(lambda x, t: self.net(x, t, mel), prior)
        x = torch.randn((audio.shape[0], 1, audio.shape[-1]), device=audio.device)
        clip = self.config.inference.clip if prior is None else None  # as in sampling (see _sample)
        y = fast_reverse(model, x, self.diffusion.schedule, betas=self.config.inference.betas, clip=clip)
        wav = prior.from_standard(y) if prior is not None else y
        return mrstft_distance(audio.float(), wav[:, 0].float()).mean()

    def check_inference_loss(self) -> None:
        """Raise unless :meth:`inference_loss` applies: it renders a mel (a conditional vocoder) with the
        ``fast`` sampler, the only one it unrolls."""
        sampler = self.config.inference.sampler
        if self.config.unconditional or sampler != "fast":
            why = "this one is unconditional" if self.config.unconditional else f"this one samples with {sampler!r}"
            raise ValueError(f"the inference loss needs a conditional vocoder whose inference sampler is 'fast'; {why}")

    # -------------------------------------------------------------------- sampling
    def _context_frames(self) -> int:
        """Frames of context each side that cover the denoiser's receptive field (+ upsampler)."""
        m = self.config.model
        # each kernel-3 dilated conv sees `dilation` (folded) samples on each side
        layers_rf = sum(2 ** (i % m.dilation_cycle) for i in range(m.residual_layers)) * m.fold
        return math.ceil(layers_rf / self.hop_length) + 2

    def _chunked_net(self, net_fn: Callable, mel: torch.Tensor, chunk_frames: int) -> Callable:
        """net_fn(x, t, mel) evaluated chunk by chunk with receptive-field context: bounded memory, same result.

        The mel is the same at every step, so each chunk's conditioning is prepared once
        (:meth:`Denoiser.prepare_conditions`: where all chunks' together fit its memory bound)."""
        hop, frames = self.hop_length, mel.shape[-1]
        ctx = self._context_frames()
        if frames <= chunk_frames + 2 * ctx:
            spans = [(0, frames, 0, frames)]
        else:
            spans = [(start, min(start + chunk_frames, frames), max(start - ctx, 0), min(start + chunk_frames + ctx, frames))
                     for start in range(0, frames, chunk_frames)]
        conds = self.net.prepare_conditions([mel[..., lo:hi] for _, _, lo, hi in spans])
        if len(spans) == 1:
            return lambda x, t: net_fn(x, t, conds[0])

        def net(x, t):
            outs = []
            for (start, stop, lo, hi), cond in zip(spans, conds):
                out = net_fn(x[..., lo * hop : hi * hop], t, cond)
                outs.append(out[..., (start - lo) * hop : (stop - lo) * hop])
            return torch.cat(outs, dim=-1)

        return net

    def forward(self, mel=None, **options):
        """``vocoder(mel, steps=…, sampler=…)``: see :meth:`vocode`."""
        return self.vocode(mel, **options)

    @torch.no_grad()
    def vocode(
        self,
        mel: torch.Tensor | Sequence[torch.Tensor] | None = None,
        *,
        steps: int | None = None,
        sampler: str | None = None,
        lengths: Sequence[int] | torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        seed: int | None = None,
        num_samples: int | None = None,
        chunk_frames: int | None = None,
        callback: Callable | None = None,
        precision: str | None = "auto",
        mel_match: int | None = None,
        **sampler_options,
    ):
        """Waveform(s) from mel(s).

        ``mel``: [n_mels, F] → [F·hop]; [B, n_mels, F] → [B, F·hop] (with ``lengths`` in frames the
        samples past each length are zero); a list of [n_mels, F_i] → a list of [F_i·hop].
        ``steps``/``sampler`` override the checkpoint's defaults (``fast`` with its tuned βs);
        other keyword options go to the sampler (e.g. ``eta`` for DDIM). An unconditional model
        takes ``mel=None`` and ``num_samples`` (length in samples). ``precision``: the network's
        ``"float32"`` or ``"bfloat16"``; ``"auto"`` is bfloat16 where the hardware has it (a GPU, a CPU with
        AVX512-BF16/AMX: about twice as fast there), else float32. ``mel_match``: iterations of
        :func:`wavediff.audio.match_mel` that bring the output's mel to the input mel (None: the
        checkpoint's ``inference.mel_match``; 0: none)."""
        inf = self.config.inference
        mel_match = check_iterations(inf.mel_match if mel_match is None else mel_match, "mel_match")
        dtype = inference_dtype(precision, self.device)
        net_fn = in_precision(self.net, dtype, self.device)
        sampler = sampler or inf.sampler
        if generator is None and seed is not None:
            generator = torch.Generator(device=self.device).manual_seed(seed)
        if self.config.unconditional:
            if mel is not None:
                raise ValueError("this vocoder is unconditional: call it with num_samples=…, not a mel")
            if not num_samples or num_samples < 1:
                raise ValueError("an unconditional model needs num_samples >= 1")
            if mel_match:
                raise ValueError("an unconditional model has no mel to match: mel_match must be 0")
            length = num_samples - num_samples % self.config.model.fold
            x = torch.randn((1, 1, length), generator=generator, device=self.device)
            return self._sample(sampler, steps, lambda x, t: net_fn(x, t, None), x, None, generator, callback, sampler_options)[0, 0]
        if mel is None:
            raise ValueError("vocode needs a mel spectrogram")

        as_list = isinstance(mel, (list, tuple))
        if as_list:
            mels = [validate_mel(m, self.config.mel) for m in mel]
            if any(m.shape[0] != 1 for m in mels):
                raise ValueError("a list of mels must hold single [n_mels, frames] spectrograms")
            frame_counts = [m.shape[-1] for m in mels]
            floor = self.config.mel.value_range[0]
            batch = torch.full((len(mels), self.config.mel.n_mels, max(frame_counts)), floor)
            for i, m in enumerate(mels):
                batch[i, :, : m.shape[-1]] = m[0]
            lengths = frame_counts
        else:
            squeeze = torch.as_tensor(mel).dim() == 2
            batch = validate_mel(mel, self.config.mel)
        batch = batch.to(self.device)
        b, _, frames = batch.shape
        x = torch.randn((b, 1, frames * self.hop_length), generator=generator, device=self.device)
        net = self._chunked_net(net_fn, batch, chunk_frames or inf.chunk_frames)
        prior = self._prior(batch)
        wav = self._sample(sampler, steps, net, x, prior, generator, callback, sampler_options)[:, 0]  # [B, L]
        if mel_match:
            wav = match_mel(wav, batch, self.config.mel, n_iter=mel_match, chunk_frames=chunk_frames or inf.chunk_frames)
        if lengths is not None:
            lengths = [int(n) for n in torch.as_tensor(lengths).tolist()]
            if len(lengths) != b or any(n < 1 or n > frames for n in lengths):
                raise ValueError(f"lengths must hold {b} frame counts in [1, {frames}]")
            for i, n in enumerate(lengths):
                wav[i, n * self.hop_length :] = 0
            if as_list:
                return [wav[i, : n * self.hop_length] for i, n in enumerate(lengths)]
        return wav[0] if (not as_list and squeeze) else wav

    def _sample(self, sampler, steps, net, x, prior, generator, callback, options):
        inf = self.config.inference
        diffusion = self.diffusion
        model = diffusion.model_fn(net, prior)
        opts = dict(options)
        if sampler == "fast":
            if "betas" not in opts:
                opts["betas"] = inf.betas if steps is None or steps == len(inf.betas) else default_fast_betas(steps)
        elif sampler != "ddpm":
            opts.setdefault("steps", steps or inf.steps or len(inf.betas))
        elif sampler == "ddpm":
            opts.setdefault("variance", diffusion.config.variance)
        # clipping acts on the standardised variable under a prior, so only without one
        if prior is None and inf.clip is not None:
            opts.setdefault("clip", inf.clip)
        y = sample(sampler, model, x, diffusion.schedule, generator=generator, callback=callback, **opts)
        return prior.from_standard(y) if prior is not None else y


GRIFFIN_LIM = "griffin-lim"  # the name that selects :class:`GriffinLim` where a vocoder is asked for


@dataclass
class GriffinLimConfig:
    mel: MelConfig
    n_iter: int = 32
    momentum: float = 0.99


class GriffinLim(_MelRates):
    """A vocoder with nothing learned: :func:`wavediff.audio.griffin_lim` behind :class:`Vocoder`'s
    ``vocode(mel)`` interface, for any mel convention. A baseline, and a way to hear an acoustic
    model's mels independently of a neural vocoder; ``steps`` are its iterations (default 32)."""

    def __init__(self, mel_config: MelConfig | None = None, n_iter: int = 32, momentum: float = 0.99,
                 device: str | torch.device | None = None):
        self.config = GriffinLimConfig(mel_config or MelConfig.hifigan(), n_iter, momentum)
        self.device = torch.device(device or "cpu")
        self.mel_fn = MelSpectrogram(self.config.mel).to(self.device)

    @torch.no_grad()
    def mel(self, waveform: torch.Tensor) -> torch.Tensor:
        return self.mel_fn(validate_waveform(waveform).to(self.device))

    def vocode(self, mel: torch.Tensor, *, steps: int | None = None, generator: torch.Generator | None = None,
               seed: int | None = None, precision: str | None = None) -> torch.Tensor:
        """mel [n_mels, F] or [B, n_mels, F] (validated against the convention) -> [F·hop] or [B, F·hop].
        ``precision`` is taken for :class:`Vocoder`'s interface and ignored: Griffin-Lim runs in float32."""
        if generator is None and seed is not None:
            generator = torch.Generator(device=self.device).manual_seed(seed)
        squeeze = torch.as_tensor(mel).dim() == 2
        batch = validate_mel(mel, self.config.mel).to(self.device)
        wav = griffin_lim(batch, self.config.mel, n_iter=self.config.n_iter if steps is None else steps,
                          momentum=self.config.momentum, generator=generator)
        return wav[0] if squeeze else wav

    __call__ = vocode


def _loss_section(cls, section: str, d: dict | None):
    """``cls(**d)`` for a recipe's loss section; an unknown key is an error that names the known ones."""
    known = sorted(f.name for f in fields(cls))
    unknown = sorted(set(d or {}) - set(known))
    if unknown:
        raise ValueError(f"unknown {section} keys {unknown}; known keys are {known}")
    return cls(**(d or {}))


@dataclass
class InferLossConfig:
    """The ``infer_loss`` section of a vocoder recipe: ``weight`` × :meth:`Vocoder.inference_loss` on the
    batch's first ``items`` crops is added to the ε-loss (0: off, the default). InferGrad used the
    sum of both; the chain makes a step cost about (1 + 2·steps·items/batch) ε-steps."""

    weight: float = 0.0
    items: int = 16

    def __post_init__(self):
        if not self.weight >= 0:
            raise ValueError(f"infer_loss.weight must be >= 0, got {self.weight}")
        if isinstance(self.items, bool) or not isinstance(self.items, int) or self.items < 1:
            raise ValueError(f"infer_loss.items must be a positive int, got {self.items!r}")

    @classmethod
    def from_dict(cls, d: dict | None) -> "InferLossConfig":
        return _loss_section(cls, "infer_loss", d)


@dataclass
class X0LossConfig:
    """The ``x0_loss`` section of a vocoder recipe: ``weight`` × the multi-resolution STFT distance
    between each training crop and the network's one-step estimate of it, x̂_0 = (x_t − √(1 − ᾱ_t) ε̂)
    / √ᾱ_t at the crop's drawn step, is added to the ε-loss (0: off, the default). The ε-loss asks
    for the waveform's posterior mean, phase and all; this asks for the right magnitudes at every
    noise level, a target that does not depend on phase. It costs the STFTs, not network passes."""

    weight: float = 0.0

    def __post_init__(self):
        if not self.weight >= 0:
            raise ValueError(f"x0_loss.weight must be >= 0, got {self.weight}")

    @classmethod
    def from_dict(cls, d: dict | None) -> "X0LossConfig":
        return _loss_section(cls, "x0_loss", d)


class VocoderLoss(nn.Module):
    """Training wrapper: ``forward(batch) -> (loss, logs)`` so that DDP and EMA see one module.

    The ε-loss, plus InferGrad's inference loss when ``infer_loss.weight`` > 0 and the one-step
    estimate's spectral loss when ``x0_loss.weight`` > 0."""

    def __init__(self, vocoder: Vocoder, infer_loss: InferLossConfig | None = None,
                 x0_loss: X0LossConfig | None = None):
        super().__init__()
        self.vocoder = vocoder
        self.infer_loss = infer_loss or InferLossConfig()
        self.x0_loss = x0_loss or X0LossConfig()
        if self.infer_loss.weight > 0:  # fail at construction, not at the first step
            vocoder.check_inference_loss()

    def forward(self, batch: dict) -> tuple[torch.Tensor, dict]:
        loss, logs, *x0 = self.vocoder.training_loss(batch, return_x0=self.x0_loss.weight > 0)
        if x0:
            from wavediff.eval.spectral import mrstft_distance

            spectral = mrstft_distance(batch["audio"].float(), x0[0][:, 0].float()).mean()
            loss = loss + self.x0_loss.weight * spectral
            logs = {**logs, "loss_x0": spectral.detach(), "loss": loss.detach()}
        if self.infer_loss.weight > 0:
            infer = self.vocoder.inference_loss(batch, self.infer_loss.items)
            loss = loss + self.infer_loss.weight * infer
            logs = {**logs, "loss_infer": infer.detach(), "loss": loss.detach()}
        return loss, logs


register_model(MODEL_TYPE, Denoiser, DenoiserConfig)
