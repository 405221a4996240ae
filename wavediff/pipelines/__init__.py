"""Inference pipelines that glue a model, its sampler and its features."""
from .vocoder import InferenceConfig, PriorConfig, Vocoder, VocoderConfig, VocoderLoss

__all__ = ["InferenceConfig", "PriorConfig", "Vocoder", "VocoderConfig", "VocoderLoss"]
