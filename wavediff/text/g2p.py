"""Grapheme-to-phoneme conversion with gruut (lexicon + CRF guesser, offline, deterministic).

:class:`GruutG2P` owns one gruut ``TextProcessor`` (built on first use, ~0.5 s) with three changes
to gruut's en-us defaults:

* gruut's own number/date/currency/time detection and abbreviation table are off: the text has
  already been normalised by :mod:`wavediff.text.normalize`, and a second pass would re-read
  words (gruut reads ``St.`` always as "Street");
* an all-capitals word of four or more letters that the lexicon knows as a word is read as that
  word (``NATO``, ``NASA``, ``AIDS``) instead of being spelled; shorter ones (``FBI``, ``US``,
  ``AM``) and unknown ones are spelled letter by letter;
* lexicon lookups go to an indexed copy of gruut's lexicon (the shipped file has no index: 70 ms a
  sentence instead of a few), made once and kept in the user's cache folder (:func:`cache_dir`);
* gruut's graphs are :mod:`wavediff.text._digraph`'s, not networkx's (whose import took longer than the
  rest of the front end's start-up);
* a small override lexicon for words the normaliser writes that gruut's lexicon lacks (``Miz``).

Output is per sentence a list of :class:`Token` (a word with its phonemes, or a pause).
gruut's part-of-speech tagger picks between heteronyms ("I will read" vs "I have read").
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import sqlite3
import sys
import tempfile
import threading
import types
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from ._digraph import gruut_import

__all__ = ["Token", "GruutG2P", "gruut_versions", "SUPPORTED_LANGUAGES", "resolve_language"]

SUPPORTED_LANGUAGES = ("en-us",)
_LANGUAGE_ALIASES = {"en-us": "en-us", "en_us": "en-us", "en": "en-us", "english": "en-us"}
_GRUUT_LANGUAGE = {"en-us": "en_US"}

# Pronunciations for words the normaliser writes that gruut's lexicon lacks.
_OVERRIDES: dict[str, list[str]] = {
    "miz": ["m", "ˈɪ", "z"],
}
_ALL_CAPS = re.compile(r"^[A-Z]{2,}$")
_DOTTED_INITIALISM = re.compile(r"^(?:[a-zA-Z]\.){1,}$")


def resolve_language(language: str) -> str:
    """'en-US' / 'en_us' / 'en' -> 'en-us'; anything else is a ValueError."""
    key = str(language).strip().lower()
    if key not in _LANGUAGE_ALIASES:
        raise ValueError(
            f"Unsupported language {language!r}; the text front end supports {list(SUPPORTED_LANGUAGES)}."
        )
    return _LANGUAGE_ALIASES[key]


def gruut_versions() -> dict[str, str | None]:
    """Installed versions of gruut and its English data (None when not installed)."""
    versions: dict[str, str | None] = {}
    for name in ("gruut", "gruut-lang-en"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


@dataclass(frozen=True)
class Token:
    """One item of a phonemized sentence.

    ``kind`` is ``"word"`` (``phonemes`` holds gruut's symbols, possibly empty when gruut could not
    pronounce it) or ``"pause"`` (``major`` True for a sentence end, False for a short pause).
    """

    kind: str
    text: str
    phonemes: tuple[str, ...] = ()
    major: bool = False


class _LookupWithOverrides:
    """gruut's lexicon lookup with a few extra entries checked first."""

    def __init__(self, lookup: Any, overrides: dict[str, list[str]]):
        self.lookup = lookup
        self.overrides = overrides

    def __call__(self, word: str, role: str | None = None, do_transforms: bool = True) -> Any:
        extra = self.overrides.get(word.lower())
        if extra is not None:
            return list(extra)
        return self.lookup(word, role=role, do_transforms=do_transforms)


_INDEX = "wavediff_word_index"


def cache_dir() -> Path | None:
    """Where the front end keeps what it derives once per installation (the indexed lexicon):
    ``$WAVEDIFF_CACHE_DIR``, else ``$XDG_CACHE_HOME/wavediff``, else ``~/.cache/wavediff``; None when
    ``WAVEDIFF_CACHE_DIR`` is set to an empty string (no cache)."""
    configured = os.environ.get("WAVEDIFF_CACHE_DIR")
    if configured is not None:
        return Path(configured) if configured.strip() else None
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "wavediff"


def _indexed_lexicon(path: Path) -> sqlite3.Connection:
    """gruut's lexicon with an index on ``word``, opened read-only.

    The shipped database has none, so each lookup scans 129k rows (~7 ms; 70 ms a sentence). An
    indexed copy makes lookups ~1000x faster; building it takes ~0.07 s of a 2-core CPU, so it is kept
    in :func:`cache_dir` (named by the source file's path, size and time, written atomically) and later
    processes open that. Without a usable cache the copy is made in memory, as before."""
    folder = cache_dir()
    cached = None
    if folder is not None:
        stat = path.stat()
        key = hashlib.sha1(f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:16]
        cached = folder / f"gruut-lexicon-{key}.db"
        if cached.is_file():
            connection = sqlite3.connect(f"file:{cached}?mode=ro", uri=True, check_same_thread=False)
            try:
                if connection.execute("SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = ?",
                                      (_INDEX,)).fetchone():
                    return connection
            except sqlite3.Error:
                pass  # unreadable (e.g. damaged): built again below
            connection.close()
    source = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        memory = sqlite3.connect(":memory:", check_same_thread=False)
        source.backup(memory)
    finally:
        source.close()
    memory.execute(f"CREATE INDEX IF NOT EXISTS {_INDEX} ON word_phonemes(word)")
    if cached is not None:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=cached.name, suffix=".tmp")
            os.close(fd)
            try:
                target = sqlite3.connect(tmp)
                try:
                    memory.backup(target)
                finally:
                    target.close()
                os.replace(tmp, cached)
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
        except (OSError, sqlite3.Error):
            pass  # a read-only home, a full disk: this process keeps its in-memory copy
    return memory


class _DeferredModule(types.ModuleType):
    """Stands in for a module in ``sys.modules`` until one of its attributes is read, then imports it."""

    def __getattr__(self, attr: str) -> Any:
        real = self.__dict__.get("_wavediff_real")
        if real is None:
            if sys.modules.get(self.__name__) is self:
                del sys.modules[self.__name__]
            real = self.__dict__["_wavediff_real"] = importlib.import_module(self.__name__)
            sys.modules[self.__name__] = real
        return getattr(real, attr)


def _defer_import(name: str) -> None:
    """Let ``import name`` bind a :class:`_DeferredModule`: the real import happens on first use, and
    not at all if nothing uses it. (importlib's LazyLoader does not help: ``import`` itself reads
    ``__spec__``, which loads it.) gruut imports dateparser at the top, ~0.3 s, and our front end
    never lets it parse dates (``detect_dates=False``)."""
    if name in sys.modules or importlib.util.find_spec(name) is None:
        return  # already imported, or not installed: the importer reports that as usual
    sys.modules[name] = _DeferredModule(name)


class GruutG2P:
    """Normalised English text -> sentences of :class:`Token` (see the module docstring)."""

    def __init__(self, language: str = "en-us"):
        self.language = resolve_language(language)
        self._processor: Any = None
        self._settings: Any = None
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        """Picklable (DataLoader workers): the processor is rebuilt on first use after unpickling."""
        return {"language": self.language}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["language"])

    # -- construction -------------------------------------------------------------------------
    def _build(self) -> None:
        _defer_import("dateparser")  # gruut imports it at the top; with detect_dates=False it is never used
        try:
            with gruut_import():  # a stand-in for networkx, whose import is a sixth of a short synth's time
                from gruut.lang import get_settings
                from gruut.phonemize import SqlitePhonemizer
                from gruut.text_processor import TextProcessor
                from gruut.utils import find_lang_dir, remove_non_word_chars
        except ImportError as error:  # pragma: no cover - exercised only without gruut
            raise ImportError(
                "The text front end needs gruut and its English data: pip install gruut gruut-lang-en"
            ) from error
        lang = _GRUUT_LANGUAGE[self.language]
        lang_dir = find_lang_dir(self.language)
        if lang_dir is None or not (Path(lang_dir) / "lexicon.db").is_file():
            raise ImportError(
                "gruut found no English lexicon; install its data: pip install gruut-lang-en"
            )
        lookup = SqlitePhonemizer(
            db_conn=_indexed_lexicon(Path(lang_dir) / "lexicon.db"),
            word_transform_funcs=[str.lower, remove_non_word_chars, lambda s: remove_non_word_chars(s.lower())],
        )
        settings = get_settings(
            lang,
            lang_dir=lang_dir,
            lookup_phonemes=_LookupWithOverrides(lookup, _OVERRIDES),
            is_initialism=self._is_initialism,
            abbreviations={},
            # gruut's currency table is read only when it detects currency, which sentences() turns off (our
            # normaliser has already written money out in words). Left empty, gruut fills it from babel's
            # locale data (every currency's symbol): 0.3 s of a 2-core CPU's start-up, for nothing.
            currencies={"$": "USD"},
        )
        if settings.guess_phonemes is None:
            raise ImportError("gruut found no English g2p model; install its data: pip install gruut-lang-en")
        self._settings = settings
        self._processor = TextProcessor(default_lang=lang, settings={lang: settings})

    def _is_initialism(self, text: str) -> bool:
        """gruut hook: True if ``text`` should be spelled letter by letter."""
        if _DOTTED_INITIALISM.match(text):
            return True
        if not _ALL_CAPS.match(text):
            return False
        if len(text) >= 4 and self._settings.lookup_phonemes(text.lower(), do_transforms=False):
            return False  # an acronym the lexicon reads as a word (NATO, NASA)
        return True

    # -- conversion ---------------------------------------------------------------------------
    def sentences(self, text: str) -> list[list[Token]]:
        """Normalised text -> per sentence, its words and pauses in order."""
        with self._lock:
            if self._processor is None:
                self._build()
            graph, root = self._processor.process(
                text,
                lang=_GRUUT_LANGUAGE[self.language],
                detect_numbers=False,
                detect_currency=False,
                detect_dates=False,
                detect_times=False,
                verbalize_numbers=False,
                verbalize_currency=False,
                verbalize_dates=False,
                verbalize_times=False,
            )
            result: list[list[Token]] = []
            for sentence in self._processor.sentences(graph, root):
                tokens: list[Token] = []
                for word in sentence:
                    if word.is_major_break or word.is_minor_break:
                        tokens.append(Token("pause", word.text, major=bool(word.is_major_break)))
                    elif word.is_punctuation:
                        continue
                    else:
                        tokens.append(Token("word", word.text, tuple(word.phonemes or ())))
                result.append(tokens)
        return result
