"""Inference pipelines that glue a model, its sampler and its features."""
from .tts import TTS, AcousticPipeline
from .vocoder import GriffinLim, InferenceConfig, InferLossConfig, PriorConfig, Vocoder, VocoderConfig, VocoderLoss, X0LossConfig

__all__ = ["AcousticPipeline", "GriffinLim", "InferenceConfig", "InferLossConfig", "PriorConfig", "TTS", "Vocoder", "VocoderConfig", "VocoderLoss", "X0LossConfig"]
