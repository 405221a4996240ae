"""Inference pipelines that glue a model, its sampler and its features."""
from .tts import TTS, AcousticPipeline
from .vocoder import InferenceConfig, PriorConfig, Vocoder, VocoderConfig, VocoderLoss

__all__ = ["AcousticPipeline", "InferenceConfig", "PriorConfig", "TTS", "Vocoder", "VocoderConfig", "VocoderLoss"]
