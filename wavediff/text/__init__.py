"""Text front end: normalisation, G2P (gruut, offline) and the phoneme inventory.

``TextFrontend`` is the entry point; ``normalize_text`` and ``split_sentences`` work on text alone
and do not need gruut.
"""

from wavediff.text.frontend import FRONTEND_VERSION, TextFrontend
from wavediff.text.normalize import TextFrontendWarning, normalize_text, split_sentences
from wavediff.text.symbols import PAD, PAD_ID, SENTENCE_END, SHORT_PAUSE, SYMBOLS, WORD_BOUNDARY

__all__ = [
    "TextFrontend",
    "FRONTEND_VERSION",
    "TextFrontendWarning",
    "normalize_text",
    "split_sentences",
    "SYMBOLS",
    "PAD",
    "PAD_ID",
    "WORD_BOUNDARY",
    "SHORT_PAUSE",
    "SENTENCE_END",
]
