"""Text-to-speech: text front end → acoustic model (mel diffusion from N(μ, I)) → any vocoder.

``TTS.from_pretrained(acoustic_dir, vocoder=...)`` gives ``tts("text") -> (waveform, sample_rate)``
and ``tts.mel("text")``. Anything with ``.mel(text) -> [n_mels, T]`` and a mel config can stand in
for the acoustic model, and anything with ``vocode(mel)`` for the vocoder; mel conventions are
checked where they meet.
"""
from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch import nn

from wavediff.audio import MelConfig
from wavediff.device import device_type, in_precision, inference_dtype
from wavediff.checkpoint import build_and_load, load_config, register_model, save_pretrained
from wavediff.diffusion import AffinePrior, Diffusion, DiffusionConfig, ScheduleConfig, sample, variational_bound
from wavediff.nn.acoustic import AcousticConfig, AcousticModel
from wavediff.nn.alignment import sequence_mask
from wavediff.nn.duration import duration_loss
from wavediff.text import TextFrontend

__all__ = ["TTSInference", "AcousticModelConfig", "AcousticPipeline", "AcousticLoss", "TTS", "MODEL_TYPE"]

MODEL_TYPE = "acoustic"
SENTENCE_PAUSE_S = 0.25


@dataclass
class TTSInference:
    sampler: str = "dpmpp_2m"
    steps: int = 10
    temperature: float = 1.5  # Grad-TTS: the starting noise is N(μ, I / temperature²)
    length_scale: float = 1.0
    max_chars: int = 300  # longer text is split into sentences of at most this many characters
    # DPM-Solver++/DDIM/Heun start at the step where ᾱ falls to this (None: at T). N(μ, I) is the
    # marginal there already; starting at ᾱ_T ≈ 4e-5 makes 4-6-step sampling fail (README).
    start_alpha_bar: float | None = None

    def __post_init__(self):
        if self.steps < 1 or self.temperature <= 0 or self.length_scale <= 0:
            raise ValueError("inference needs steps >= 1, temperature > 0 and length_scale > 0")
        if self.start_alpha_bar is not None and not 0 < self.start_alpha_bar < 1:
            raise ValueError(f"inference.start_alpha_bar must lie in (0, 1), got {self.start_alpha_bar}")


def _default_diffusion() -> DiffusionConfig:
    # Starts from N(μ, I): the schedule must reach (almost) pure noise, ᾱ_T ≈ 4e-5.
    return DiffusionConfig(schedule=ScheduleConfig(kind="linear", num_steps=1000, beta_start=1e-4, beta_end=0.02), loss="l2")


@dataclass
class AcousticModelConfig:
    model: AcousticConfig
    text: dict  # the front end's to_dict(): inventory, language, versions
    diffusion: DiffusionConfig = field(default_factory=_default_diffusion)
    mel: MelConfig = field(default_factory=MelConfig.hifigan)
    inference: TTSInference = field(default_factory=TTSInference)
    decoder_segment: int | None = None  # train the mel denoiser on random crops of this many frames

    def __post_init__(self):
        if self.model.encoder.n_mels != self.mel.n_mels:
            raise ValueError(f"the encoder predicts {self.model.encoder.n_mels} mel bins; the mel config has {self.mel.n_mels}")
        if self.model.denoiser.max_steps != self.diffusion.schedule.num_steps:
            raise ValueError("the denoiser's step table must match the diffusion schedule's length")
        if self.model.denoiser.learned_variance != (self.diffusion.variance == "learned"):
            raise ValueError("denoiser.learned_variance must match diffusion.variance == 'learned'")

    def to_dict(self) -> dict:
        return {
            "model": self.model.to_dict(),
            "text": self.text,
            "diffusion": self.diffusion.to_dict(),
            "mel": self.mel.to_dict(),
            "inference": asdict(self.inference),
            "decoder_segment": self.decoder_segment,
        }

    @classmethod
    def from_dict(cls, d: dict) -> "AcousticModelConfig":
        return cls(
            model=AcousticConfig.from_dict(d["model"]),
            text=d["text"],
            diffusion=DiffusionConfig.from_dict(d.get("diffusion", {})),
            mel=MelConfig.from_dict(d["mel"]) if "mel" in d else MelConfig.hifigan(),
            inference=TTSInference(**d.get("inference", {})),
            decoder_segment=d.get("decoder_segment"),
        )


class AcousticPipeline(nn.Module):
    """Text → mel: front end, :class:`AcousticModel` and the diffusion that samples its mels."""

    def __init__(self, config: AcousticModelConfig, frontend: TextFrontend | None = None):
        super().__init__()
        self.config = config
        self.frontend = frontend or TextFrontend.from_dict(config.text)
        self.model = AcousticModel(config.model)
        self.diffusion = Diffusion(config.diffusion)

    # -------------------------------------------------------------- persistence
    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike, device: str | torch.device | None = None) -> "AcousticPipeline":
        cfg = load_config(directory, MODEL_TYPE)
        pipe = build_and_load(lambda: cls(AcousticModelConfig.from_dict(cfg)), directory, lambda p: p.model)
        kind = device_type(device)  # a clear error for CUDA on a machine without it
        return pipe.to(device if device is not None else kind).eval()

    def save_pretrained(self, directory: str | os.PathLike, state_dict: dict | None = None) -> Path:
        return save_pretrained(directory, self.model, self.config.to_dict(), MODEL_TYPE, state_dict=state_dict)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def mel_config(self) -> MelConfig:
        return self.config.mel

    # -------------------------------------------------------------------- training
    def training_loss(self, batch: dict) -> tuple[torch.Tensor, dict]:
        """Grad-TTS losses: duration (log-domain MSE on MAS durations) + prior (μ vs mel) + diffusion."""
        tokens, tok_len = batch["tokens"], batch["token_lengths"]
        mel, mel_len = batch["mel"], batch["mel_lengths"]
        h, mu, text_mask, log_dur = self.model.encode(tokens, tok_len)
        path = self.model.align(mu, mel, text_mask, mel_len)  # [B, N, T], no gradient
        durations = path.sum(-1)  # [B, N]
        loss_dur = duration_loss(log_dur, durations, text_mask)
        mel_mask = sequence_mask(mel_len, mel.shape[-1]).unsqueeze(1).to(mel.dtype)  # [B, 1, T]
        mu_x = self.model.expand(mu, path)  # [B, M, T]
        h_x = self.model.expand(h, path)  # [B, D, T]
        n_values = mel_mask.sum() * mel.shape[1]
        loss_prior = (0.5 * ((mel - mu_x) ** 2 + math.log(2 * math.pi)) * mel_mask).sum() / n_values
        x0 = torch.where(mel_mask.bool(), mel, mu_x)  # padding: y = x − μ = 0
        x0, mu_x, h_x, mel_mask = self._segment(x0, mu_x, h_x, mel_mask, mel_len)
        cond = self.model.condition(h_x, mu_x)
        loss_diff, logs = self.diffusion.training_loss(
            lambda x, t: self.model.denoiser(x * mel_mask, t, cond), x0, prior=AffinePrior(mean=mu_x), mask=mel_mask
        )
        loss = loss_diff + loss_prior + loss_dur
        return loss, {  # detached tensors, no host sync (the trainer averages them)
            "loss": loss.detach(),
            "loss_diffusion": loss_diff.detach(),
            "loss_prior": loss_prior.detach(),
            "loss_duration": loss_dur.detach(),
        }

    def _segment(self, x0, mu_x, h_x, mask, mel_len):
        """Random crops of ``decoder_segment`` frames for the denoiser (Grad-TTS's out_size)."""
        seg = self.config.decoder_segment
        if seg is None or x0.shape[-1] <= seg:
            return x0, mu_x, h_x, mask
        starts = [int(torch.randint(0, max(int(n) - seg, 0) + 1, ()).item()) for n in mel_len]
        pick = lambda z: torch.stack([z[i, :, s : s + seg] for i, s in enumerate(starts)])  # noqa: E731
        return pick(x0), pick(mu_x), pick(h_x), pick(mask)

    # ------------------------------------------------------------------- sampling
    def tokens(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        ids = [self.frontend.encode(t) for t in texts]
        lengths = torch.tensor([len(i) for i in ids])
        batch = torch.zeros(len(ids), int(lengths.max()), dtype=torch.long)
        for k, i in enumerate(ids):
            batch[k, : len(i)] = torch.tensor(i)
        return batch.to(self.device), lengths.to(self.device)

    @torch.no_grad()
    def mel(
        self,
        text: str | Sequence[str],
        *,
        steps: int | None = None,
        sampler: str | None = None,
        temperature: float | None = None,
        length_scale: float | None = None,
        generator: torch.Generator | None = None,
        seed: int | None = None,
        return_alignment: bool = False,
        precision: str | None = "auto",
    ):
        """Mel(s) for one text ([M, T]) or a list of texts (a list of [M, T_i]).

        The text is encoded as one utterance (use :meth:`sentences` to split long text). ``precision``
        is the mel denoiser's (see :meth:`Vocoder.vocode`); the encoder and durations stay in float32."""
        inf = self.config.inference
        single = isinstance(text, str)
        texts = [text] if single else list(text)
        if generator is None and seed is not None:
            generator = torch.Generator(device=self.device).manual_seed(seed)
        tokens, lengths = self.tokens(texts)
        h_x, mu_x, frame_lengths, path = self.model.plan(tokens, lengths, length_scale or inf.length_scale)
        out = self._sample_mels(h_x, mu_x, frame_lengths, steps, sampler, temperature, generator, precision)
        if return_alignment:
            aligns = [path[i, : int(lengths[i]), : int(n)] for i, n in enumerate(frame_lengths)]
            return (out[0], aligns[0]) if single else (out, aligns)
        return out[0] if single else out

    @torch.no_grad()
    def aligned_mels(
        self,
        tokens: torch.Tensor,
        token_lengths: torch.Tensor,
        mel: torch.Tensor,
        mel_lengths: torch.Tensor,
        *,
        steps: int | None = None,
        sampler: str | None = None,
        temperature: float | None = None,
        generator: torch.Generator | None = None,
        precision: str | None = "auto",
    ) -> list[torch.Tensor]:
        """Ground-truth-aligned ("teacher-forced") mels: sampled as :meth:`mel` samples them, but with
        the durations that monotonic alignment search finds against the recordings' mels (as in
        training) instead of the predicted ones, so that frame ``i`` of each output belongs to frame ``i``
        of its recording. tokens [B, N], mel [B, M, T] (padded) -> a list of [M, T_i]. A vocoder
        fine-tuned on these sees the acoustic model's mels in training, aligned with the audio."""
        tokens, token_lengths = tokens.to(self.device), token_lengths.to(self.device)
        mel, mel_lengths = mel.to(self.device), mel_lengths.to(self.device)
        h, mu, text_mask, _ = self.model.encode(tokens, token_lengths)
        path = self.model.align(mu, mel, text_mask, mel_lengths)
        h_x, mu_x = self.model.expand(h, path), self.model.expand(mu, path)
        return self._sample_mels(h_x, mu_x, mel_lengths, steps, sampler, temperature, generator, precision)

    def _sample_mels(self, h_x, mu_x, frame_lengths, steps, sampler, temperature, generator, precision) -> list:
        """The mel diffusion from N(μ, I / temperature²) given frame-rate h and μ [B, ·, T] -> [M, T_i] each."""
        inf = self.config.inference
        mask = sequence_mask(frame_lengths, mu_x.shape[-1]).unsqueeze(1).to(mu_x.dtype)
        t = temperature or inf.temperature
        y = torch.randn(mu_x.shape, generator=generator, device=self.device) / t
        cond = self.model.condition(h_x, mu_x)
        cond, = self.model.denoiser.prepare_conditions([cond])  # the same at every step: projected once
        denoiser = in_precision(self.model.denoiser, inference_dtype(precision, self.device), self.device)
        model = self.diffusion.model_fn(lambda x, tt: denoiser(x * mask, tt, cond), AffinePrior(mean=mu_x))
        opts = {}
        name = sampler or inf.sampler
        if name == "fast":
            from .vocoder import default_fast_betas

            opts["betas"] = default_fast_betas(steps or inf.steps)
        elif name != "ddpm":
            opts["steps"] = steps or inf.steps
            if inf.start_alpha_bar is not None:
                sched = self.diffusion.schedule
                ab = max(inf.start_alpha_bar, float(sched.alpha_bars[-1]))
                opts["start"] = int(round(float(sched.t_from_alpha_bar(ab))))
        y0 = sample(name, model, y, self.diffusion.schedule, generator=generator, **opts)
        lo, hi = self.config.mel.value_range
        mels = (mu_x + y0).clamp(lo, hi)  # a mel outside its convention's range is meaningless
        return [mels[i, :, : int(n)] for i, n in enumerate(frame_lengths)]

    def sentences(self, text: str) -> list[str]:
        return self.frontend.split_sentences(text, max_chars=self.config.inference.max_chars)

    @torch.no_grad()
    def likelihood(self, batch: dict, generator: torch.Generator | None = None) -> dict:
        """Variational bound of the mel denoiser on (text, mel) pairs, in bits per mel value.

        Aligns with MAS (as in training), then sums all T diffusion terms on y = mel − μ with a
        continuous Gaussian decoder (mels are real-valued, so this is a density: it can be negative).
        Also returns the prior-only baseline −log N(mel; μ, I) in the same units."""
        tokens, tok_len = batch["tokens"].to(self.device), batch["token_lengths"].to(self.device)
        mel, mel_len = batch["mel"].to(self.device), batch["mel_lengths"].to(self.device)
        h, mu, text_mask, _ = self.model.encode(tokens, tok_len)
        path = self.model.align(mu, mel, text_mask, mel_len)
        mu_x, h_x = self.model.expand(mu, path), self.model.expand(h, path)
        mask = sequence_mask(mel_len, mel.shape[-1]).unsqueeze(1).to(mel.dtype)
        y0 = (mel - mu_x) * mask
        cond = self.model.condition(h_x, mu_x)
        model = self.diffusion.model_fn(lambda y, t: self.model.denoiser((mu_x + y) * mask, t, cond))
        res = variational_bound(
            model, y0, self.diffusion.schedule, self.config.diffusion.variance, bits=None,
            mask=mask.expand_as(y0), generator=generator,
        )
        values = mask.sum((1, 2)) * mel.shape[1]
        prior_nats = (0.5 * (y0**2 + math.log(2 * math.pi)) * mask).sum((1, 2))
        return {"bits_per_value": res["bpd"], "prior_only_bits_per_value": prior_nats / (values * math.log(2)), "values": values}


class AcousticLoss(nn.Module):
    """Training wrapper so that DDP and EMA see one module: ``forward(batch) -> (loss, logs)``."""

    def __init__(self, pipeline: AcousticPipeline):
        super().__init__()
        self.pipeline = pipeline

    def forward(self, batch: dict):
        return self.pipeline.training_loss(batch)


class TTS:
    """Text → waveform: an acoustic model (anything with ``mel(text)`` and ``mel_config``) + a vocoder."""

    def __init__(self, acoustic, vocoder):
        self.acoustic = acoustic
        self.vocoder = vocoder
        a, v = acoustic.mel_config, vocoder.config.mel
        if a.to_dict() != v.to_dict():
            raise ValueError(
                f"the acoustic model emits '{a.preset}' mels ({a.description}) but the vocoder expects '{v.preset}' ({v.description})"
            )

    @classmethod
    def from_pretrained(cls, directory=None, vocoder=None, device: str | None = None) -> "TTS":
        """``directory``: an acoustic-model checkpoint or None (the bundled default voice); ``vocoder``: a
        Vocoder (or :class:`GriffinLim`), a checkpoint dir, ``"griffin-lim"`` (no neural vocoder) or None
        (the bundled one)."""
        from .files import bundled_acoustic_dir, load_vocoder
        from .vocoder import GRIFFIN_LIM, GriffinLim, Vocoder

        if directory is None:
            directory = bundled_acoustic_dir()

        acoustic = AcousticPipeline.from_pretrained(directory, device=device)  # checks the device
        if isinstance(vocoder, str) and vocoder == GRIFFIN_LIM:
            vocoder = GriffinLim(acoustic.mel_config, device=acoustic.device)
        elif not isinstance(vocoder, (Vocoder, GriffinLim)):
            vocoder = load_vocoder(vocoder, device=str(acoustic.device))
        return cls(acoustic, vocoder)

    @property
    def sample_rate(self) -> int:
        return self.vocoder.sample_rate

    def mel(self, text: str, **options) -> torch.Tensor:
        return self.acoustic.mel(text, **options)

    @torch.no_grad()
    def __call__(
        self,
        text: str,
        *,
        steps: int | None = None,
        vocoder_steps: int | None = None,
        temperature: float | None = None,
        length_scale: float | None = None,
        seed: int | None = None,
        progress: Callable[[int, int], None] | None = None,
        return_mels: bool = False,
        precision: str | None = None,
        mel_match: int | None = None,
    ):
        """(waveform [L], sample_rate); long text is split into sentences joined by short pauses.
        ``precision``: both networks' (``"float32"``, ``"bfloat16"``, ``"auto"``: see :meth:`Vocoder.vocode`);
        None leaves each model its default (``"auto"`` for wavediff's; other objects are not passed it).
        ``mel_match``: the vocoder's (see :meth:`Vocoder.vocode`); None leaves it the vocoder's setting."""
        extra = {} if precision is None else {"precision": precision}
        vocoder_extra = dict(extra)
        if mel_match is not None:
            from .vocoder import Vocoder

            if not isinstance(self.vocoder, Vocoder):
                raise ValueError(f"mel_match applies to a diffusion vocoder, not {type(self.vocoder).__name__}")
            vocoder_extra["mel_match"] = mel_match
        parts = self.acoustic.sentences(text)
        g = torch.Generator(device=self.acoustic.device).manual_seed(seed) if seed is not None else None
        gv = torch.Generator(device=self.vocoder.device).manual_seed(seed) if seed is not None else None
        pause = torch.zeros(int(SENTENCE_PAUSE_S * self.sample_rate))
        wavs, mels = [], []
        spoken = []
        for part in parts:  # a piece of pure punctuation in longer text is skipped, not fatal
            try:
                self.acoustic.frontend.encode(part)
                spoken.append(part)
            except ValueError:
                if len(parts) == 1:
                    raise
        if not spoken:
            raise ValueError(f"text has nothing to pronounce: {text[:60]!r}")
        parts = spoken
        for i, part in enumerate(parts):
            mel = self.acoustic.mel(part, steps=steps, temperature=temperature, length_scale=length_scale, generator=g,
                                    **extra)
            wav = self.vocoder.vocode(mel, steps=vocoder_steps, generator=gv, **vocoder_extra).float().cpu()
            wavs += [wav, pause] if i < len(parts) - 1 else [wav]
            mels.append(mel.cpu())
            if progress is not None:
                progress(i + 1, len(parts))
        wav = torch.cat(wavs)
        return (wav, self.sample_rate, mels) if return_mels else (wav, self.sample_rate)


register_model(MODEL_TYPE, AcousticModel, AcousticConfig)
