"""English text normalisation and sentence splitting (pure Python, deterministic).

``normalize_text`` turns written English into the words a person would say, keeping only letters,
apostrophes and hyphens inside words, spaces, and the pause punctuation ``, ; : . ! ?``.
The rules run in a fixed order, each a small function over the whole string:

1. unicode: compatibility forms (NFKC), typographic quotes/dashes, accents stripped
   (``café`` -> ``cafe``); characters of other scripts and emoji are dropped with one
   :class:`TextFrontendWarning` naming them;
2. shouting (a text mostly in capitals) is lower-cased so that its words are not spelled out;
3. abbreviations: titles (``Mr.`` ``Mrs.`` ``Ms.`` ``Dr.`` ``St.`` ``Prof.`` ...), ``Dr.``/``St.``
   as Doctor/Saint or Drive/Street by context (after a number or a capitalised word that does not
   start the sentence: Street/Drive; otherwise Saint/Doctor), ``etc.`` ``e.g.`` ``i.e.`` ``vs.``
   ``No. 5`` ``Jr.`` ``Inc.`` ...; a trailing abbreviation that ends a sentence keeps its period;
4. money (``$5.50`` ``£3`` ``€2m`` ``50¢``), dates (``May 5, 2024``, ``5 May 2024``,
   ``05/05/2024`` read month first as in the US, ``2024-05-05``), clock times (``3:45 pm``
   ``3 p.m.`` ``14:30`` ``9:00``), phone-like digit groups, percent and degrees, decades
   (``1980s`` ``'80s``), ordinals (``1st`` ``22nd``), fractions (``1/2`` ``2 1/2``),
   ranges (``10-20`` -> ten to twenty), ratios, ``#5``, common units after a number
   (``10 km`` ``5 kg`` ``60 mph`` ``8 GB``);
5. Roman numerals (``Henry VIII`` -> Henry the eighth, ``World War II`` -> World War two);
6. plain numbers: ``1,234`` cardinal, ``3.14`` decimal, ``-5`` minus, ``007`` digit by digit,
   four-digit numbers 1100-2099 without a comma as years (``1984`` -> nineteen eighty four,
   ``1905`` -> nineteen oh five, ``2000`` -> two thousand, ``2024`` -> twenty twenty four),
   letters glued to digits split (``3D`` -> three D);
7. symbols (``&`` ``+`` ``=`` ``@`` ``×``) and punctuation: ``...`` dashes and brackets become
   short pauses (commas), quotes and markup characters go, runs of punctuation collapse.

Numbers are written in US style without "and" (one hundred twenty three) and without hyphens
(twenty four). Clock suffixes are written ``AM``/``PM`` so the G2P spells them out.

``split_sentences`` cuts long text into sentences, and sentences longer than ``max_chars`` at
clause punctuation, then at spaces; it never changes or drops a word.
"""

from __future__ import annotations

import re
import unicodedata
import warnings
from typing import Callable, Match

__all__ = [
    "TextFrontendWarning",
    "normalize_text",
    "split_sentences",
    "cardinal",
    "ordinal",
    "year_words",
    "digits_words",
    "EMPTY_TEXT_MESSAGE",
]

EMPTY_TEXT_MESSAGE = "no text to speak"


class TextFrontendWarning(UserWarning):
    """Something in the input could not be spoken and was dropped."""


# ----------------------------------------------------------------------------------------------
# Number words
# ----------------------------------------------------------------------------------------------

_ONES = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen"
).split()
_TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
_SCALES = ("", "thousand", "million", "billion", "trillion", "quadrillion")
_ORDINAL_IRREGULAR = {
    "one": "first", "two": "second", "three": "third", "five": "fifth",
    "eight": "eighth", "nine": "ninth", "twelve": "twelfth",
}
_MAX_CARDINAL = 10 ** 18  # at and above this, numbers are read digit by digit


def _below_thousand(n: int) -> list[str]:
    words: list[str] = []
    hundreds, rest = divmod(n, 100)
    if hundreds:
        words += [_ONES[hundreds], "hundred"]
    if rest >= 20:
        words.append(_TENS[rest // 10])
        if rest % 10:
            words.append(_ONES[rest % 10])
    elif rest or not words:
        words.append(_ONES[rest])
    return words


def digits_words(digits: str) -> str:
    """'007' -> 'zero zero seven' (any non-digit character is skipped)."""
    return " ".join(_ONES[int(d)] for d in digits if d.isdigit())


def cardinal(n: int) -> str:
    """1234 -> 'one thousand two hundred thirty four'; negative -> 'minus ...'."""
    if n < 0:
        return "minus " + cardinal(-n)
    if n >= _MAX_CARDINAL:
        return digits_words(str(n))
    if n == 0:
        return "zero"
    groups: list[str] = []
    scale = 0
    while n:
        n, chunk = divmod(n, 1000)
        if chunk:
            words = _below_thousand(chunk) + ([_SCALES[scale]] if scale else [])
            groups.insert(0, " ".join(words))
        scale += 1
    return " ".join(groups)


def ordinal(n: int) -> str:
    """22 -> 'twenty second', 101 -> 'one hundred first'."""
    words = cardinal(n).split()
    last = words[-1]
    if last in _ORDINAL_IRREGULAR:
        words[-1] = _ORDINAL_IRREGULAR[last]
    elif last.endswith("y"):
        words[-1] = last[:-1] + "ieth"
    else:
        words[-1] = last + "th"
    return " ".join(words)


def year_words(n: int) -> str:
    """Read a year as people do: 1984 nineteen eighty four, 1905 nineteen oh five,
    1900 nineteen hundred, 2000-2009 two thousand (five), 2024 twenty twenty four."""
    if n < 1000 or n > 9999 or 2000 <= n <= 2009:
        return cardinal(n)
    high, low = divmod(n, 100)
    if low == 0:
        return f"{cardinal(high)} hundred"
    if low < 10:
        return f"{cardinal(high)} oh {_ONES[low]}"
    return f"{cardinal(high)} {cardinal(low)}"


def _plural_number(words: str) -> str:
    """'nineteen eighty' -> 'nineteen eighties' (decades)."""
    head, _, last = words.rpartition(" ")
    last = last[:-1] + "ies" if last.endswith("y") else last + "s"
    return f"{head} {last}".strip()


def _integer_words(digits: str, allow_year: bool = True) -> str:
    """Digits (commas allowed) -> words, with the year and leading-zero rules."""
    plain = digits.replace(",", "")
    if not plain:
        return ""
    if "," not in digits and len(plain) > 1 and plain[0] == "0":
        return digits_words(plain)
    if len(plain) > 18:
        return digits_words(plain)
    value = int(plain)
    if allow_year and "," not in digits and len(plain) == 4 and 1100 <= value <= 2099:
        return year_words(value)
    return cardinal(value)


def _number_words(text: str, allow_year: bool = True) -> str:
    """'1,234.5' / '-3' / '.5' -> words."""
    sign = ""
    if text[:1] in "-+":
        sign = "minus " if text[0] == "-" else "plus "
        text = text[1:]
    whole, _, frac = text.partition(".")
    parts = []
    if whole:
        parts.append(_integer_words(whole, allow_year=allow_year and not frac and not sign))
    elif not frac:
        return sign.strip()
    if frac:
        parts.append("point " + digits_words(frac))
    return sign + " ".join(parts)


# ----------------------------------------------------------------------------------------------
# Shared helpers
# ----------------------------------------------------------------------------------------------

_SENTENCE_START_AFTER = re.compile(r"""(?:^|[.!?]["'”’)\]]*\s+)["'“‘(\[]*$""")


def _ends_sentence(text: str, pos: int) -> bool:
    """True if an abbreviation's period ending at ``pos`` is also the end of a sentence."""
    rest = text[pos:]
    return re.match(r"""\s*["'”’)\]]*\s*$""", rest) is not None or re.match(
        r"""["'”’)\]]*\s+["'“‘(\[]*[A-Z]""", rest
    ) is not None


def _keep_case(source: str, word: str) -> str:
    return word[:1].upper() + word[1:] if source[:1].isupper() else word


# ----------------------------------------------------------------------------------------------
# 1. Unicode
# ----------------------------------------------------------------------------------------------

_VULGAR_FRACTIONS = {
    "½": "1/2", "⅓": "1/3", "⅔": "2/3", "¼": "1/4", "¾": "3/4", "⅕": "1/5", "⅖": "2/5",
    "⅗": "3/5", "⅘": "4/5", "⅙": "1/6", "⅚": "5/6", "⅛": "1/8", "⅜": "3/8", "⅝": "5/8", "⅞": "7/8",
    "²": " squared ", "³": " cubed ",
}
_TYPOGRAPHIC = {
    "‘": "'", "’": "'", "‚": "'", "‛": "'", "′": "'", "`": "'", "´": "'",
    "“": '"', "”": '"', "„": '"', "‟": '"', "″": '"', "«": '"', "»": '"',
    "‐": "-", "‑": "-", "‒": "—", "―": "—", "−": "-",
    "·": " ", "•": " ", "\u00ad": "", "\u200b": "", "\u200c": "", "\u200d": "", "\u2060": "",
    "\ufeff": "", "\ufe0f": "", "\ufe0e": "", "©": " ", "®": " ",
}
_LATIN_LETTERS = {
    "ß": "ss", "æ": "ae", "Æ": "Ae", "œ": "oe", "Œ": "Oe", "ø": "o", "Ø": "O", "ł": "l",
    "Ł": "L", "đ": "d", "Đ": "D", "ð": "d", "Ð": "D", "þ": "th", "Þ": "Th", "ı": "i",
}
# Non-ASCII characters later rules understand.
_KNOWN_SYMBOLS = set("$£€¥¢°×÷§—–")


def _unicode_to_ascii(text: str, dropped: list[str]) -> str:
    """NFKC, typographic punctuation, accents stripped; unknown characters collected in ``dropped``."""
    text = "".join(f" {_VULGAR_FRACTIONS[c]}" if c in _VULGAR_FRACTIONS else c for c in text)  # before NFKC
    text = unicodedata.normalize("NFKC", text)
    text = "".join(_TYPOGRAPHIC.get(c, c) for c in text)
    text = re.sub(r"(?<=\d)–(?=\d)", "-", text)  # en dash in a range
    text = text.replace("–", "—")
    out: list[str] = []
    for char in unicodedata.normalize("NFKD", text):
        if unicodedata.combining(char):
            continue
        char = _LATIN_LETTERS.get(char, char)
        if len(char) > 1 or char.isascii() and (char.isprintable() or char in "\n\t"):
            out.append(char)
        elif char in _KNOWN_SYMBOLS:
            out.append(char)
        elif char.isspace() or unicodedata.category(char)[0] == "C":
            out.append(" ")
        else:
            dropped.append(char)
            out.append(" ")
    return "".join(out)


# ----------------------------------------------------------------------------------------------
# 2. Shouting
# ----------------------------------------------------------------------------------------------


def _unshout(text: str) -> str:
    """Lower-case a text written mostly in capitals (so its words are not spelled as initialisms)."""
    words = re.findall(r"[A-Za-z]{2,}", text)
    caps = [w for w in words if w.isupper()]
    if len(caps) >= 3 and len(caps) >= 0.6 * len(words):
        return re.sub(r"[A-Za-z]+", lambda m: m.group(0).lower() if m.group(0).isupper() else m.group(0), text)
    return text


# ----------------------------------------------------------------------------------------------
# 3. Abbreviations
# ----------------------------------------------------------------------------------------------

# Titles: always read, the period never ends a sentence.
_TITLES = {
    "mr": "Mister", "mrs": "Missus", "ms": "Miz", "messrs": "Messieurs",
}
# Titles that need a following capitalised word (a name) to be expanded.
_NAME_TITLES = {
    "prof": "Professor", "capt": "Captain", "gen": "General", "col": "Colonel",
    "lt": "Lieutenant", "sgt": "Sergeant", "cpl": "Corporal", "gov": "Governor",
    "rev": "Reverend", "hon": "Honorable", "sen": "Senator", "rep": "Representative",
    "pres": "President", "supt": "Superintendent", "mt": "Mount", "ft": "Fort",
    "adm": "Admiral", "maj": "Major", "insp": "Inspector", "det": "Detective",
}
# Abbreviations after a word: the period may also end the sentence.
_TRAILING = {
    "jr": "Junior", "sr": "Senior", "ave": "Avenue", "rd": "Road", "blvd": "Boulevard",
    "co": "Company", "corp": "Corporation", "inc": "Incorporated", "ltd": "Limited",
    "bros": "Brothers", "etc": "et cetera", "approx": "approximately", "dept": "department",
}
_INLINE = {"e.g.": "for example", "i.e.": "that is", "vs.": "versus", "vs": "versus"}

_CAPITALISED_WORD = re.compile(r"^[A-Z][A-Za-z'-]*$")


def _street_context(text: str, start: int) -> bool:
    """True if the word before ``start`` makes a following Dr./St. a Drive/Street:
    a number ("42nd St.") or a capitalised word that does not start the sentence ("Elm St.")."""
    before = text[:start]
    match = re.search(r"(\S+)\s+$", before)
    if match is None:
        return False
    prev = match.group(1)
    if re.fullmatch(r"\d[\d,]*(?:st|nd|rd|th)?", prev, flags=re.IGNORECASE):
        return True
    if not _CAPITALISED_WORD.match(prev):
        return False
    return _SENTENCE_START_AFTER.search(before[: match.start(1)]) is None


def _expand_saint_doctor(text: str) -> str:
    def repl(m: Match[str]) -> str:
        abbr, plural, dot = m.group(1), m.group(2), m.group(3)
        is_street = _street_context(m.string, m.start())
        if abbr.lower() == "st":
            word = "Street" if is_street else "Saint"
        else:
            word = "Drive" if is_street else "Doctor"
        if plural:
            word += "s"
        if is_street and dot and _ends_sentence(m.string, m.end()):
            return word + "."
        return word

    return re.sub(r"\b(St|Dr|ST|DR|st|dr)(s?)\b(\.?)", repl, text)


def _expand_abbreviations(text: str) -> str:
    text = _expand_saint_doctor(text)

    def title(m: Match[str]) -> str:
        return _TITLES[m.group(1).lower()]

    text = re.sub(r"\b(Mrs|Mr|Ms|Messrs)\b\.?", title, text)  # "Mr Smith", "Mr. Smith"
    text = re.sub(r"\b(Mrs|Mr|Ms|Messrs)\.", title, text, flags=re.IGNORECASE)  # "MR.", "mr."

    def name_title(m: Match[str]) -> str:
        return _NAME_TITLES[m.group(1).lower()]

    names = "|".join(_NAME_TITLES)
    text = re.sub(rf"\b({names})\.(?=\s+[A-Z])", name_title, text, flags=re.IGNORECASE)

    def trailing(m: Match[str]) -> str:
        word = _keep_case(m.group(1), _TRAILING[m.group(1).lower()])
        following = re.match(r"\s+([A-Za-z]+)\.", m.string[m.end():])
        if following and following.group(1).lower() in _TRAILING:  # "Co. Ltd."
            return word
        if m.group(2) and _ends_sentence(m.string, m.end()):
            return word + "."
        return word

    trail = "|".join(_TRAILING)
    text = re.sub(rf"\b({trail})\b(\.)", trailing, text, flags=re.IGNORECASE)
    text = re.sub(r"\b(etc)\b()", trailing, text, flags=re.IGNORECASE)

    for abbr, words in _INLINE.items():
        text = re.sub(rf"(?<![\w.]){re.escape(abbr)}(?![\w])", words, text, flags=re.IGNORECASE)
    text = re.sub(
        r"\b(No|Nos|Vol|Fig|ca|pp|p)\.\s*(?=\d)",
        lambda m: {"no": "number ", "nos": "numbers ", "vol": "volume ", "fig": "figure ", "ca": "circa ",
                   "p": "page ", "pp": "pages "}[m.group(1).lower()],
        text,
        flags=re.IGNORECASE,
    )
    return text


# ----------------------------------------------------------------------------------------------
# 4. Money, dates, times and other numeric patterns
# ----------------------------------------------------------------------------------------------

_CURRENCIES = {
    "$": ("dollar", "dollars", "cent", "cents"),
    "£": ("pound", "pounds", "penny", "pence"),
    "€": ("euro", "euros", "cent", "cents"),
    "¥": ("yen", "yen", "", ""),
}
_SCALE_WORDS = {
    "thousand": "thousand", "k": "thousand", "million": "million", "m": "million", "mn": "million",
    "billion": "billion", "bn": "billion", "b": "billion", "trillion": "trillion", "tn": "trillion",
}
_AMOUNT = r"(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|\.\d+"


def _money_words(amount: str, symbol: str, scale: str | None) -> str:
    one, many, minor_one, minor_many = _CURRENCIES[symbol]
    if scale:
        return f"{_number_words(amount, allow_year=False)} {_SCALE_WORDS[scale.lower()]} {many}"
    whole, _, frac = amount.replace(",", "").partition(".")
    major = int(whole or "0")
    if frac and (len(frac) > 2 or not minor_one):
        return f"{_number_words(amount, allow_year=False)} {many}"
    minor = int(frac.ljust(2, "0")) if frac else 0
    parts = []
    if major or not minor:
        parts.append(f"{cardinal(major)} {one if major == 1 else many}")
    if minor:
        parts.append(f"{cardinal(minor)} {minor_one if minor == 1 else minor_many}")
    return " and ".join(parts)


def _expand_money(text: str) -> str:
    def repl(m: Match[str]) -> str:
        sign = "minus " if m.group(1) == "-" else ""
        return sign + _money_words(m.group(3), m.group(2), m.group(4))

    scales = "|".join(sorted(_SCALE_WORDS, key=len, reverse=True))
    text = re.sub(
        rf"(?<![\w])(-?)(?:US)?([$£€¥])\s?({_AMOUNT})(?:\s?({scales})\b)?",
        repl,
        text,
        flags=re.IGNORECASE,
    )
    text = re.sub(
        r"\b(\d+)\s?¢", lambda m: f"{cardinal(int(m.group(1)))} cent{'' if m.group(1) == '1' else 's'}", text
    )
    return text.replace("$", " dollars ").replace("£", " pounds ").replace("€", " euros ").replace(
        "¥", " yen "
    ).replace("¢", " cents ")


_MONTHS = (
    "January February March April May June July August September October November December"
).split()
_MONTH_ABBREVIATIONS = {
    "Jan": 1, "Feb": 2, "Mar": 3, "Apr": 4, "Jun": 6, "Jul": 7, "Aug": 8, "Sep": 9, "Sept": 9,
    "Oct": 10, "Nov": 11, "Dec": 12,
}
_MONTH_PATTERN = "|".join(_MONTHS + [a + r"\.?" for a in _MONTH_ABBREVIATIONS])


def _month_number(name: str) -> int:
    name = name.rstrip(".")
    if name in _MONTHS:
        return _MONTHS.index(name) + 1
    return _MONTH_ABBREVIATIONS[name]


def _date_year(year: str) -> str:
    return year_words(int(year)) if len(year) == 4 else _integer_words(year, allow_year=False)


def _expand_dates(text: str) -> str:
    def month_first(m: Match[str]) -> str:
        day = int(m.group(2))
        if not 1 <= day <= 31:
            return m.group(0)
        words = f"{_MONTHS[_month_number(m.group(1)) - 1]} {ordinal(day)}"
        if m.group(4):
            words += f"{m.group(3) or ''} {year_words(int(m.group(4)))}"
        return words

    text = re.sub(
        rf"\b({_MONTH_PATTERN})\s+(\d{{1,2}})(?:st|nd|rd|th)?\b(?:(,)?\s+(\d{{4}})\b)?", month_first, text
    )

    def day_first(m: Match[str]) -> str:
        day = int(m.group(1))
        if not 1 <= day <= 31:
            return m.group(0)
        written_of = " of " in m.group(0)
        after_the = re.search(r"\bthe\s+$", m.string[: m.start()], flags=re.IGNORECASE)
        the = "" if after_the or written_of else "the "
        words = f"{the}{ordinal(day)} of {_MONTHS[_month_number(m.group(2)) - 1]}"
        if m.group(4):
            words += f"{m.group(3) or ''} {year_words(int(m.group(4)))}"
        return words

    text = re.sub(
        rf"\b(\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?({_MONTH_PATTERN})(?![\w])(?:(,)?\s+(\d{{4}})\b)?",
        day_first,
        text,
    )

    def numeric(m: Match[str]) -> str:
        first, second, year = int(m.group(1)), int(m.group(3)), m.group(4)
        if 1 <= first <= 12 and 1 <= second <= 31:
            month, day = first, second
        elif 1 <= second <= 12 and 1 <= first <= 31:
            month, day = second, first
        else:
            return m.group(0)
        return f"{_MONTHS[month - 1]} {ordinal(day)}, {_date_year(year)}"

    text = re.sub(r"\b(\d{1,2})(/)(\d{1,2})/(\d{4}|\d{2})\b", numeric, text)
    text = re.sub(r"\b(\d{1,2})([.-])(\d{1,2})\2(\d{4})\b", numeric, text)

    def iso(m: Match[str]) -> str:
        month, day = int(m.group(2)), int(m.group(3))
        if not (1 <= month <= 12 and 1 <= day <= 31):
            return m.group(0)
        return f"{_MONTHS[month - 1]} {ordinal(day)}, {year_words(int(m.group(1)))}"

    return re.sub(r"\b(\d{4})-(\d{2})-(\d{2})\b", iso, text)


_AM_PM = r"(?P<ap>[AaPp])(?:\.\s?[Mm]\.|[Mm]\b)"


def _clock_words(hour: int, minute: int, second: int, suffix: str | None) -> str:
    if suffix:
        spoken_hour = hour % 12 or 12
        words = cardinal(spoken_hour)
        if minute:
            words += f" oh {_ONES[minute]}" if minute < 10 else f" {cardinal(minute)}"
    elif minute == 0:
        words = f"{cardinal(hour)} o'clock" if 1 <= hour <= 12 else f"{cardinal(hour)} hundred"
    else:
        words = cardinal(hour) + (f" oh {_ONES[minute]}" if minute < 10 else f" {cardinal(minute)}")
    if second:
        words += f" and {cardinal(second)} second{'' if second == 1 else 's'}"
    if suffix:
        words += " AM" if suffix.lower() == "a" else " PM"
    return words


def _expand_times(text: str) -> str:
    def repl(m: Match[str]) -> str:
        hour, minute = int(m.group("h")), int(m.group("m") or 0)
        second = int(m.group("s") or 0)
        suffix = m.group("ap")
        if hour > 24 or minute > 59 or second > 59 or (suffix and not 0 <= hour <= 12):
            return m.group(0)
        words = _clock_words(hour, minute, second, suffix)
        if m.group(0).endswith(".") and _ends_sentence(m.string, m.end()):
            words += "."
        return words

    text = re.sub(rf"\b(?P<h>\d{{1,2}}):(?P<m>\d{{2}})(?::(?P<s>\d{{2}}))?(?:\s*{_AM_PM})?", repl, text)
    text = re.sub(rf"\b(?P<h>\d{{1,2}})(?P<m>)(?P<s>)\s*{_AM_PM}", repl, text)

    def bare(m: Match[str]) -> str:
        word = "AM" if m.group("ap").lower() == "a" else "PM"
        return word + "." if _ends_sentence(m.string, m.end()) else word

    return re.sub(rf"(?<![\w.])(?P<ap>[AaPp])\.\s?[Mm]\.", bare, text)


def _expand_phone_numbers(text: str) -> str:
    """Digit groups joined by hyphens (555-123-4567, (555) 123-4567, 555-1234) read digit by digit."""
    def repl(m: Match[str]) -> str:
        groups = re.findall(r"\d+", m.group(0))
        return ", ".join(digits_words(g) for g in groups)

    text = re.sub(r"\(\d{3}\)\s?\d{3}-\d{4}\b", repl, text)
    text = re.sub(r"\b\d{2,4}(?:-\d{2,4}){2,}\b", repl, text)
    return re.sub(r"\b\d{3}-\d{4}\b", repl, text)


def _expand_percent_degrees(text: str) -> str:
    def percent(m: Match[str]) -> str:
        return f"{_number_words(m.group(1), allow_year=False)} percent"

    text = re.sub(rf"([-+]?(?:{_AMOUNT}))\s?%", percent, text)
    text = text.replace("%", " percent ")

    def degrees(m: Match[str]) -> str:
        unit = {"C": " Celsius", "F": " Fahrenheit", "": ""}[(m.group(2) or "").upper()]
        word = "degree" if m.group(1) in ("1", "-1") else "degrees"
        return f"{_number_words(m.group(1), allow_year=False)} {word}{unit}"

    text = re.sub(rf"([-+]?(?:{_AMOUNT}))\s?°\s?(?:([CFcf])(?![A-Za-z]))?", degrees, text)
    return text.replace("°", " degrees ")


def _expand_decades_ordinals(text: str) -> str:
    text = re.sub(r"\b(\d{3}0)'?s\b", lambda m: _plural_number(year_words(int(m.group(1)))), text)
    text = re.sub(r"(?<![\w])'?([1-9]0)'?s\b", lambda m: _plural_number(cardinal(int(m.group(1)))), text)
    return re.sub(
        r"\b(\d{1,3}(?:,\d{3})+|\d+)(?:st|nd|rd|th)\b",
        lambda m: ordinal(int(m.group(1).replace(",", ""))),
        text,
        flags=re.IGNORECASE,
    )


_UNITS = {
    "km": ("kilometer", "kilometers"), "cm": ("centimeter", "centimeters"),
    "mm": ("millimeter", "millimeters"), "kg": ("kilogram", "kilograms"),
    "mg": ("milligram", "milligrams"), "ml": ("milliliter", "milliliters"),
    "lb": ("pound", "pounds"), "lbs": ("pound", "pounds"), "oz": ("ounce", "ounces"),
    "mph": ("mile per hour", "miles per hour"), "kph": ("kilometer per hour", "kilometers per hour"),
    "km/h": ("kilometer per hour", "kilometers per hour"), "ms": ("millisecond", "milliseconds"),
    "Hz": ("hertz", "hertz"), "kHz": ("kilohertz", "kilohertz"), "MHz": ("megahertz", "megahertz"),
    "GHz": ("gigahertz", "gigahertz"), "kW": ("kilowatt", "kilowatts"),
    "KB": ("kilobyte", "kilobytes"), "MB": ("megabyte", "megabytes"),
    "GB": ("gigabyte", "gigabytes"), "TB": ("terabyte", "terabytes"),
}


def _expand_units(text: str) -> str:
    """'10 km' -> 'ten kilometers', '1 kg' -> 'one kilogram' (only right after a number)."""
    def repl(m: Match[str]) -> str:
        one, many = _UNITS[m.group(2)]
        return f"{_number_words(m.group(1), allow_year=False)} {one if m.group(1) == '1' else many}"

    units = "|".join(re.escape(u) for u in sorted(_UNITS, key=len, reverse=True))
    return re.sub(rf"(?<![\w.])([-+]?(?:{_AMOUNT}))\s?({units})(?![\w/])", repl, text)


def _fraction_words(numerator: int, denominator: int) -> str:
    if (numerator, denominator) == (24, 7):
        return "twenty four seven"
    if numerator == denominator:  # 50/50
        return f"{cardinal(numerator)} {cardinal(denominator)}"
    if denominator == 0 or numerator >= denominator * 10 or not (
        2 <= denominator <= 20 or denominator in (32, 64, 100)
    ):
        return f"{cardinal(numerator)} over {cardinal(denominator)}"
    if denominator == 2:
        name = "half" if numerator == 1 else "halves"
    elif denominator == 4:
        name = "quarter" if numerator == 1 else "quarters"
    else:
        name = ordinal(denominator) + ("" if numerator == 1 else "s")
    return f"{cardinal(numerator)} {name}"


def _expand_fractions(text: str) -> str:
    def mixed(m: Match[str]) -> str:
        num, den = int(m.group(2)), int(m.group(3))
        if num >= den or den == 0:
            return m.group(0)
        part = _fraction_words(num, den)
        if num == 1 and den in (2, 4):
            part = "a " + part.split(" ", 1)[1]
        return f"{cardinal(int(m.group(1)))} and {part}"

    text = re.sub(r"\b(\d+)\s+(\d+)/(\d+)\b", mixed, text)
    return re.sub(
        r"(?<![\w/])(\d+)/(\d+)(?![\w/])", lambda m: _fraction_words(int(m.group(1)), int(m.group(2))), text
    )


def _expand_ranges_ratios(text: str) -> str:
    text = re.sub(r"(?<=\d)\s?[-—]\s?(?=\d)", " to ", text)
    return re.sub(r"(?<=\d):(?=\d)", " to ", text)


# ----------------------------------------------------------------------------------------------
# 5. Roman numerals
# ----------------------------------------------------------------------------------------------

_ROMAN_VALUES = {"I": 1, "V": 5, "X": 10}
_ROMAN = re.compile(r"\b(?=[IVX]{2,}\b)X{0,3}(?:IX|IV|V?I{0,3})\b")
_COUNTING_WORDS = {
    "chapter", "part", "volume", "book", "act", "scene", "section", "article", "phase", "class",
    "type", "level", "appendix", "psalm", "title", "round", "stage", "grade", "war", "world",
    "apollo", "bowl", "schedule", "form", "unit", "lesson", "no", "number", "vol", "series",
}


def _roman_value(numeral: str) -> int:
    total = 0
    for i, char in enumerate(numeral):
        value = _ROMAN_VALUES[char]
        nxt = _ROMAN_VALUES[numeral[i + 1]] if i + 1 < len(numeral) else 0
        total += -value if value < nxt else value
    return total


def _expand_roman(text: str) -> str:
    def repl(m: Match[str]) -> str:
        value = _roman_value(m.group(0))
        prev = re.search(r"([A-Za-z]+)\.?\s+$", m.string[: m.start()])
        if prev and prev.group(1).lower() == "the":
            return ordinal(value)
        if prev and prev.group(1)[0].isupper() and prev.group(1).lower() not in _COUNTING_WORDS:
            return f"the {ordinal(value)}"
        return cardinal(value)

    return _ROMAN.sub(repl, text)


# ----------------------------------------------------------------------------------------------
# 6. Plain numbers
# ----------------------------------------------------------------------------------------------


def _expand_numbers(text: str) -> str:
    text = re.sub(r"#\s?(?=\d)", " number ", text)
    text = re.sub(r"~\s*(?=[-+]?\.?\d)", " about ", text)
    text = re.sub(
        r"\b\d+(?:\.\d+){2,}\b", lambda m: " " + " point ".join(cardinal(int(p)) for p in m.group(0).split(".")) + " ", text
    )
    text = re.sub(r"(?<=[A-Za-z])(?=\d)|(?<=\d)(?=[A-Za-z])", " ", text)
    text = re.sub(r"(?<![\w.,])-(?=\.?\d)", " minus ", text)
    return re.sub(
        r"(?<![\d])(\d{1,3}(?:,\d{3})+(?!\d)|\d+)(\.\d+)?|(?<![\w])(\.\d+)",
        lambda m: " " + _number_words(m.group(0)) + " ",
        text,
    )


# ----------------------------------------------------------------------------------------------
# 7. Symbols, initialisms and punctuation
# ----------------------------------------------------------------------------------------------

_SYMBOL_WORDS = {"&": " and ", "+": " plus ", "=": " equals ", "@": " at ", "×": " times ",
                 "÷": " divided by ", "§": " section "}


def _expand_symbols(text: str) -> str:
    for symbol, words in _SYMBOL_WORDS.items():
        text = text.replace(symbol, words)
    return re.sub(r"(?<=[a-z])\.(?=(?:com|org|net|edu|gov|io|uk)\b)", " dot ", text)


def _expand_initialisms(text: str) -> str:
    def dotted(m: Match[str]) -> str:
        letters = m.group(0).replace(".", "").upper()
        end = re.match(r"""\s*["'”’)\]]*\s*$""", m.string[m.end():]) is not None
        return letters + ("." if end else "")

    text = re.sub(r"(?<![\w.])(?:[A-Za-z]\.){2,}", dotted, text)
    return re.sub(r"\b([A-Z])\.(?=\s+[A-Z])", r"\1", text)


def _clean_punctuation(text: str) -> str:
    text = re.sub(r"\.{2,}(?=\s*[\w(\[\"'])", ", ", text)
    text = re.sub(r"\.{2,}", ".", text)
    text = re.sub(r"\s*(?:—|--+|\s-\s|^-\s|\s-$)\s*", ", ", text)
    text = re.sub(r"[()\[\]]", ", ", text)
    text = re.sub(r"[\"{}<>*_^|\\~/]", " ", text)
    text = re.sub(r"(?<![A-Za-z])'|'(?![A-Za-z])", " ", text)
    text = re.sub(r"(?<![A-Za-z])-|-(?![A-Za-z])", " ", text)
    text = re.sub(r"[^A-Za-z' ,;:.!?-]", " ", text)
    text = re.sub(r"\s+(?=[,;:.!?])", "", text)

    def collapse(m: Match[str]) -> str:
        marks = m.group(0).replace(" ", "")
        major = [c for c in marks if c in ".!?"]
        return (major[0] if major else marks[0]) + " "

    text = re.sub(r"[,;:.!?](?:\s*[,;:.!?])*\s*", collapse, text)
    text = re.sub(r"\s+", " ", text).strip()
    text = re.sub(r"^[,;:.!?\s]+", "", text)
    return re.sub(r"[,;:]$", "", text).strip()


# ----------------------------------------------------------------------------------------------
# Public entry points
# ----------------------------------------------------------------------------------------------

_STEPS: tuple[Callable[[str], str], ...] = (
    _unshout,
    _expand_abbreviations,
    _expand_money,
    _expand_dates,
    _expand_times,
    _expand_phone_numbers,
    _expand_percent_degrees,
    _expand_units,
    _expand_decades_ordinals,
    _expand_fractions,
    _expand_ranges_ratios,
    _expand_roman,
    _expand_numbers,
    _expand_symbols,
    _expand_initialisms,
    _clean_punctuation,
)


def normalize_text(text: str) -> str:
    """Written English -> spoken words (see the module docstring for the rules, in order).

    Raises ``ValueError("no text to speak")`` for empty or blank input and a ``ValueError`` saying
    there is nothing to pronounce when no word is left (only punctuation, only emoji ...).
    Characters that cannot be spoken (other scripts, emoji) are dropped with one
    :class:`TextFrontendWarning` naming them.
    """
    if not isinstance(text, str):
        raise ValueError(f"text must be a string, got {type(text).__name__}.")
    if not text.strip():
        raise ValueError(EMPTY_TEXT_MESSAGE)
    dropped: list[str] = []
    out = _unicode_to_ascii(text, dropped)
    if dropped:
        names = ", ".join(repr(c) for c in dict.fromkeys(dropped))
        warnings.warn(f"dropped characters that cannot be spoken: {names}", TextFrontendWarning, stacklevel=2)
    for step in _STEPS:
        out = step(out)
    if not re.search(r"[A-Za-z]", out):
        raise ValueError(f"text has nothing to pronounce: {text[:60]!r} has no words after normalisation.")
    return out


# ----------------------------------------------------------------------------------------------
# Sentence splitting
# ----------------------------------------------------------------------------------------------

_NO_SPLIT_AFTER = (
    set(_TITLES) | set(_NAME_TITLES) | {"dr", "st", "no", "nos", "vol", "fig", "vs", "e.g", "i.e", "ca",
                                        "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept",
                                        "oct", "nov", "dec"}
)
_SENTENCE_END = re.compile(r"""([.!?]+)["'”’)\]]*(?=\s)""")
_CLAUSE_END = re.compile(r"""(?:[,;:]["'”’)\]]*|\s[-—]+|—|--)(?=\s)""")


def _is_sentence_end(text: str, m: Match[str]) -> bool:
    rest = text[m.end():].lstrip()
    if not rest:
        return False
    if re.match(r"\n\s*\n", text[m.end():]):
        return True
    if rest[0].islower():
        return False
    if "." not in m.group(1) or m.group(1) != ".":
        return True
    word = re.search(r"(\S+)$", text[: m.start(1)])
    token = word.group(1).lower().lstrip("\"'“‘([") if word else ""
    if token in _NO_SPLIT_AFTER or re.fullmatch(r"[a-z]", token) or re.fullmatch(r"(?:[a-z]\.)+[a-z]", token):
        return False
    return rest[0].isupper() or rest[0].isdigit() or rest[0] in "\"'“‘(["


def _sentence_pieces(text: str) -> list[str]:
    cuts = [0]
    for m in _SENTENCE_END.finditer(text):
        if _is_sentence_end(text, m):
            cuts.append(m.end())
    for m in re.finditer(r"\n[ \t]*\n", text):
        cuts.append(m.start())
    cuts = sorted(set(cuts)) + [len(text)]
    return [text[a:b].strip() for a, b in zip(cuts, cuts[1:]) if text[a:b].strip()]


def _pack(parts: list[str], max_chars: int) -> list[str]:
    """Join consecutive parts with spaces into as few pieces of at most ``max_chars`` as possible,
    as evenly filled as possible (least sum of squared slack), so no tiny tail piece is left.
    Every part must itself fit in ``max_chars``."""
    n = len(parts)
    best: list[tuple[int, int]] = [(0, 0)] + [(n + 1, 0)] * n  # (pieces, squared slack) up to i
    back = [0] * (n + 1)
    for end in range(1, n + 1):
        length = -1
        for start in range(end - 1, -1, -1):
            length += len(parts[start]) + 1
            if length > max_chars:
                break
            pieces, slack = best[start]
            candidate = (pieces + 1, slack + (max_chars - length) ** 2)
            if candidate < best[end]:
                best[end], back[end] = candidate, start
    pieces_out: list[str] = []
    end = n
    while end > 0:
        pieces_out.append(" ".join(parts[back[end] : end]))
        end = back[end]
    return pieces_out[::-1]


def _split_long(sentence: str, max_chars: int) -> list[str]:
    if len(sentence) <= max_chars:
        return [sentence]
    cuts = [0] + [m.end() for m in _CLAUSE_END.finditer(sentence)] + [len(sentence)]
    clauses = [sentence[a:b].strip() for a, b in zip(cuts, cuts[1:]) if sentence[a:b].strip()]
    parts: list[str] = []
    for clause in clauses:
        if len(clause) <= max_chars:
            parts.append(clause)
            continue
        words: list[str] = []
        for word in clause.split():
            words += [word[i : i + max_chars] for i in range(0, len(word), max_chars)]
        parts += _pack(words, max_chars)
    return _pack(parts, max_chars)


def split_sentences(text: str, max_chars: int = 200) -> list[str]:
    """Long text -> sentences, each at most ``max_chars`` characters.

    Sentences end at ``. ! ?`` followed by a capitalised word, a digit or a quote (not after titles,
    initials or ``No.``), and at blank lines. A longer sentence is cut after ``, ; :`` or dashes, and
    a clause still too long at spaces; pieces are then packed greedily up to ``max_chars``. Words
    are never changed, dropped or reordered (``" ".join(pieces).split() == text.split()``), except
    that a single run of non-space characters longer than ``max_chars`` is cut into pieces.
    Packing makes as few pieces as possible and fills them evenly (no two-word tail piece).
    No item is empty; an item with no letter or digit is merged into its neighbour when it fits.
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError(EMPTY_TEXT_MESSAGE)
    if not isinstance(max_chars, int) or max_chars < 1:
        raise ValueError(f"max_chars must be a positive integer, got {max_chars!r}.")
    pieces: list[str] = []
    for sentence in _sentence_pieces(text):
        pieces += _split_long(sentence, max_chars)
    merged: list[str] = []
    for piece in pieces:
        if not re.search(r"\w", piece) and merged and len(merged[-1]) + 1 + len(piece) <= max_chars:
            merged[-1] += " " + piece
        elif merged and not re.search(r"\w", merged[-1]) and len(merged[-1]) + 1 + len(piece) <= max_chars:
            merged[-1] += " " + piece
        else:
            merged.append(piece)
    return merged
