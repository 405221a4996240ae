"""wavediff: diffusion-based speech and audio generation.

The public API is small: :class:`MelConfig` (mel conventions) and, as they land, the ``Vocoder``
and ``TTS`` pipelines. Maths lives in :mod:`wavediff.diffusion`, networks in :mod:`wavediff.nn`.
"""
__version__ = "0.1.0"

from wavediff.audio import MelConfig  # noqa: E402

__all__ = ["MelConfig", "__version__"]
