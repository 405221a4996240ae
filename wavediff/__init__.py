"""wavediff: diffusion-based speech and audio generation.

Public API: :class:`MelConfig` (mel conventions), :class:`Vocoder` (mel → waveform),
:class:`TTS` (text → waveform) and :class:`AcousticPipeline` (text → mel). Maths lives in
:mod:`wavediff.diffusion`, networks in :mod:`wavediff.nn`. The pipelines are imported on first use
so that ``import wavediff`` stays light.
"""
__version__ = "0.1.0"

from wavediff.audio import MelConfig  # noqa: E402

__all__ = ["AcousticPipeline", "MelConfig", "TTS", "Vocoder", "__version__"]


def __getattr__(name: str):
    if name in ("Vocoder", "TTS", "AcousticPipeline"):
        from wavediff import pipelines

        return getattr(pipelines, name)
    raise AttributeError(f"module 'wavediff' has no attribute {name!r}")
