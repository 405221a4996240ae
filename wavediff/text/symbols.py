"""The fixed symbol inventory of the English front end.

Layout (ids are list positions and never change for a given inventory):

* id 0: ``PAD`` (``"<pad>"``), used only for padding batches;
* then the non-phoneme symbols: ``WORD_BOUNDARY`` (``" "``), ``SHORT_PAUSE`` (``","``, from
  ``, ; :``, dashes, brackets) and ``SENTENCE_END`` (``"."``, from ``. ! ?``; every phonemized
  sentence ends with one);
* then the IPA phonemes that gruut's en-us lexicon and its grapheme-to-phoneme model emit:
  24 consonants and 16 vowels (diphthongs are one symbol; ``ɚ`` is the r-coloured vowel).

Stress is part of the vowel: ``ˈæ`` (primary), ``ˌæ`` (secondary) and ``æ`` (unstressed) are three
different symbols, so one symbol is one phone (one duration) and every vowel exists in all three
stress forms, including forms gruut does not emit today (``ˈə``); 16 x 3 = 48 vowel symbols.
The set was checked against every pronunciation in gruut-lang-en 2.0.1's lexicon and every label
of its g2p model: it covers them all.
"""

from __future__ import annotations

__all__ = [
    "PAD",
    "WORD_BOUNDARY",
    "SHORT_PAUSE",
    "SENTENCE_END",
    "SPECIAL_SYMBOLS",
    "CONSONANTS",
    "VOWELS",
    "STRESS_MARKS",
    "PHONEMES",
    "SYMBOLS",
    "PAD_ID",
]

PAD = "<pad>"
WORD_BOUNDARY = " "
SHORT_PAUSE = ","
SENTENCE_END = "."
SPECIAL_SYMBOLS: tuple[str, ...] = (PAD, WORD_BOUNDARY, SHORT_PAUSE, SENTENCE_END)

CONSONANTS: tuple[str, ...] = (
    "b", "d", "d͡ʒ", "f", "h", "j", "k", "l", "m", "n", "p", "s", "t", "t͡ʃ",
    "v", "w", "z", "ð", "ŋ", "ɡ", "ɹ", "ʃ", "ʒ", "θ",
)
VOWELS: tuple[str, ...] = (
    "aɪ", "aʊ", "eɪ", "i", "oʊ", "u", "æ", "ɑ", "ɔ", "ɔɪ", "ə", "ɚ", "ɛ", "ɪ", "ʊ", "ʌ",
)
STRESS_MARKS: tuple[str, ...] = ("ˈ", "ˌ")  # primary, secondary (prefix of the vowel symbol)

PHONEMES: tuple[str, ...] = CONSONANTS + tuple(
    stress + vowel for vowel in VOWELS for stress in ("",) + STRESS_MARKS
)

SYMBOLS: tuple[str, ...] = SPECIAL_SYMBOLS + PHONEMES
PAD_ID = 0

assert SYMBOLS[PAD_ID] == PAD
assert len(set(SYMBOLS)) == len(SYMBOLS) == 4 + 24 + 48
