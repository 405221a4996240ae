"""Inference pipelines that glue a model, its sampler and its features."""
from .tts import TTS, AcousticPipeline
from .vocoder import GriffinLim, InferenceConfig, PriorConfig, Vocoder, VocoderConfig, VocoderLoss

__all__ = ["AcousticPipeline", "GriffinLim", "InferenceConfig", "PriorConfig", "TTS", "Vocoder", "VocoderConfig", "VocoderLoss"]
