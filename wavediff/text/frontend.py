"""The text front end: text -> normalised words -> phoneme symbols -> ids.

Phoneme sequences follow the conventions of :mod:`wavediff.text.symbols`: stress is part of the
vowel symbol (``ˈæ``), words are separated by ``" "``, ``, ; :`` (and dashes, brackets) become
the short pause ``","``, ``. ! ?`` become the sentence end ``"."``, and every sentence ends with
``"."``. ``"".join(symbols)`` reads as IPA: ``"hɛlˈoʊ, wˈɚld."``.

With ``leading_pause`` (the default for new models) every text also starts with a short pause and a
word boundary, ``", hɛlˈoʊ, wˈɚld."``: recordings start with silence, and without a symbol of its
own that silence is aligned to the first phoneme, whose one encoding must then stand for silence and
sound at once. (Trained without it, the default voice's acoustic model gave its first phoneme 16
frames in monotonic alignment search against a median of 5, and pocketsphinx heard its first word right
in 14 of 36 everyday sentences against 30 for the vocoder on the recordings' own mels. Fine-tuned with
it, it gives the pause those frames and the first word is heard right in 29 of 36;
``benchmarks/first_word.py``.) A checkpoint's front-end config without the key loads with it off, as
such models were trained.

The inventory, the language and the front-end and gruut versions travel with a checkpoint
(``to_dict`` / ``from_dict``); ids come from the stored symbol list, so a checkpoint keeps its ids
even if the default inventory grows.
"""

from __future__ import annotations

import warnings
from typing import Any, Iterable, Sequence

from wavediff.text.g2p import GruutG2P, Token, gruut_versions, resolve_language
from wavediff.text.normalize import TextFrontendWarning, normalize_text, split_sentences
from wavediff.text.symbols import PAD, PAD_ID, SENTENCE_END, SHORT_PAUSE, SYMBOLS, WORD_BOUNDARY

__all__ = ["TextFrontend", "FRONTEND_VERSION"]

# Bump when normalisation, G2P settings or symbol conventions change what a text encodes to (options
# stored by ``to_dict``, such as ``leading_pause``, travel with the checkpoint and need no bump).
FRONTEND_VERSION = "1"
_FORMAT = "wavediff-text-frontend"
_SPECIALS = (WORD_BOUNDARY, SHORT_PAUSE, SENTENCE_END)


def _validate_symbols(symbols: Sequence[str]) -> tuple[str, ...]:
    symbols = tuple(symbols)
    if not symbols or symbols[PAD_ID] != PAD:
        raise ValueError(f"A symbol inventory must start with the pad symbol {PAD!r} at id {PAD_ID}.")
    if not all(isinstance(s, str) and s for s in symbols):
        raise ValueError("Every symbol of the inventory must be a non-empty string.")
    if len(set(symbols)) != len(symbols):
        raise ValueError("The symbol inventory has duplicate symbols.")
    missing = [s for s in _SPECIALS if s not in symbols]
    if missing:
        raise ValueError(f"The symbol inventory lacks the boundary/pause symbols {missing!r}.")
    return symbols


class TextFrontend:
    """English text front end (gruut G2P, en-us).

    >>> fe = TextFrontend()
    >>> fe.normalize("Dr. Smith paid $5.")      # 'Doctor Smith paid five dollars.'
    >>> "".join(fe.phonemize("Hello, world!"))  # ', hɛlˈoʊ, wˈɚld.' ('hɛlˈoʊ, wˈɚld.' with leading_pause=False)
    >>> fe.encode("Hello")                      # ids into fe.symbols
    """

    version: str = FRONTEND_VERSION

    def __init__(self, language: str = "en-us", symbols: Sequence[str] | None = None, leading_pause: bool = True):
        if not isinstance(leading_pause, bool):
            raise ValueError(f"leading_pause must be true or false, got {leading_pause!r}.")
        self.language = resolve_language(language)
        self.leading_pause = leading_pause
        self.symbols: tuple[str, ...] = _validate_symbols(SYMBOLS if symbols is None else symbols)
        self._ids = {symbol: i for i, symbol in enumerate(self.symbols)}
        self._g2p = GruutG2P(self.language)

    # -- sizes ---------------------------------------------------------------------------------
    @property
    def num_symbols(self) -> int:
        """Embedding table size (ids are 0 .. num_symbols - 1; 0 is padding)."""
        return len(self.symbols)

    def __len__(self) -> int:
        return len(self.symbols)

    @property
    def pad_id(self) -> int:
        return PAD_ID

    # -- text ----------------------------------------------------------------------------------
    def normalize(self, text: str) -> str:
        """Written text -> spoken words with pause punctuation (see :mod:`wavediff.text.normalize`)."""
        return normalize_text(text)

    def split_sentences(self, text: str, max_chars: int = 200) -> list[str]:
        """Long text -> sentences of at most ``max_chars`` characters, no word lost."""
        return split_sentences(text, max_chars=max_chars)

    # -- phonemes -------------------------------------------------------------------------------
    def phonemize(self, text: str) -> list[str]:
        """Text -> phoneme symbols of this inventory, ending with the sentence end ``"."`` (and, with
        ``leading_pause``, starting with the short pause and a word boundary).

        Raises ``ValueError`` for empty text and for text with nothing to pronounce. Words gruut
        cannot pronounce and symbols outside the inventory are dropped with one
        :class:`TextFrontendWarning` naming them.
        """
        normalized = normalize_text(text)
        out: list[str] = []
        dropped_words: list[str] = []
        unknown: list[str] = []
        for sentence in self._g2p.sentences(normalized):
            for token in sentence:
                self._append(out, token, dropped_words, unknown)
            self._end_sentence(out)
        if not any(s not in _SPECIALS for s in out):
            raise ValueError(f"text has nothing to pronounce: {text[:60]!r} gave no phonemes.")
        if self.leading_pause:  # the silence before the first word gets a symbol of its own
            out[:0] = [SHORT_PAUSE, WORD_BOUNDARY]
        if dropped_words or unknown:
            parts = []
            if unknown:
                parts.append("symbols outside the inventory " + ", ".join(map(repr, dict.fromkeys(unknown))))
            if dropped_words:
                parts.append("unpronounceable words " + ", ".join(map(repr, dict.fromkeys(dropped_words))))
            warnings.warn("dropped " + " and ".join(parts), TextFrontendWarning, stacklevel=2)
        return out

    def _append(self, out: list[str], token: Token, dropped_words: list[str], unknown: list[str]) -> None:
        if token.kind == "pause":
            if not out:
                return  # no pause before the first word
            if out[-1] in (SHORT_PAUSE, SENTENCE_END):
                if token.major:
                    out[-1] = SENTENCE_END
                return
            out.append(SENTENCE_END if token.major else SHORT_PAUSE)
            return
        known = [p for p in token.phonemes if p in self._ids]
        unknown += [p for p in token.phonemes if p not in self._ids]
        if not known:
            dropped_words.append(token.text)
            return
        if out:
            out.append(WORD_BOUNDARY)
        out.extend(known)

    @staticmethod
    def _end_sentence(out: list[str]) -> None:
        if not out or out[-1] == SENTENCE_END:
            return
        if out[-1] == SHORT_PAUSE:
            out[-1] = SENTENCE_END
        else:
            out.append(SENTENCE_END)

    @staticmethod
    def to_string(symbols: Iterable[str]) -> str:
        """Symbols -> one readable IPA string (``"hɛlˈoʊ, wˈɚld."``)."""
        return "".join(symbols)

    # -- ids -------------------------------------------------------------------------------------
    def encode(self, text: str) -> list[int]:
        """Text -> symbol ids (never the pad id)."""
        return [self._ids[s] for s in self.phonemize(text)]

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Ids -> symbols, skipping padding."""
        out = []
        for i in ids:
            i = int(i)
            if not 0 <= i < len(self.symbols):
                raise ValueError(f"Symbol id {i} is outside the inventory of {len(self.symbols)} symbols.")
            if i != PAD_ID:
                out.append(self.symbols[i])
        return out

    # -- checkpoint ------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description stored in a checkpoint's ``config.json``."""
        versions = gruut_versions()
        return {
            "format": _FORMAT,
            "language": self.language,
            "frontend_version": self.version,
            "g2p": "gruut",
            "gruut_version": versions["gruut"],
            "gruut_lang_en_version": versions["gruut-lang-en"],
            "stress": "in_vowel",
            "leading_pause": self.leading_pause,
            "symbols": list(self.symbols),
        }

    @classmethod
    def from_dict(cls, config: dict[str, Any]) -> "TextFrontend":
        """Rebuild the front end of a checkpoint: same inventory, same ids.

        Warns (:class:`TextFrontendWarning`) when the installed gruut or front-end version differs
        from the one the checkpoint was made with, since pronunciations may then differ.
        """
        if not isinstance(config, dict) or "symbols" not in config or "language" not in config:
            raise ValueError("A text front-end config needs at least 'language' and 'symbols'.")
        if config.get("format", _FORMAT) != _FORMAT:
            raise ValueError(f"Not a text front-end config: format {config.get('format')!r}.")
        # checkpoints made before the option existed were trained without a leading pause
        leading_pause = config.get("leading_pause", False)
        frontend = cls(language=config["language"], symbols=config["symbols"], leading_pause=leading_pause)
        installed = gruut_versions()
        stored = {"gruut": config.get("gruut_version"), "gruut-lang-en": config.get("gruut_lang_en_version")}
        for name, version in stored.items():
            if version is not None and version != installed[name]:
                warnings.warn(
                    f"The checkpoint's text front end was made with {name} {version} but {name} "
                    f"{installed[name]} is installed; pronunciations may differ.",
                    TextFrontendWarning,
                    stacklevel=2,
                )
        stored_version = config.get("frontend_version")
        if stored_version is not None and str(stored_version) != cls.version:
            warnings.warn(
                f"The checkpoint's text front end is version {stored_version}, this one is {cls.version}; "
                "normalisation may differ.",
                TextFrontendWarning,
                stacklevel=2,
            )
        return frontend

    def __repr__(self) -> str:
        return f"TextFrontend(language={self.language!r}, symbols={len(self.symbols)}, version={self.version!r})"
