"""Text front end: normalisation, G2P to the fixed inventory, sentence splitting, checkpoint round trip."""

from __future__ import annotations

import base64
import json
import re
import sqlite3
import time
import warnings
from pathlib import Path

import pytest

from wavediff.text import (
    PAD,
    SENTENCE_END,
    SHORT_PAUSE,
    SYMBOLS,
    WORD_BOUNDARY,
    TextFrontend,
    TextFrontendWarning,
    normalize_text,
    split_sentences,
)
from wavediff.text.normalize import cardinal, ordinal, year_words

LJSPEECH = Path(__file__).resolve().parents[2] / "shared" / "data" / "ljspeech_text" / "transcripts.csv"

SENTENCES = [
    "Printing, in the only sense with which we are at present concerned, differs from most arts.",
    "The Chinese took impressions from wood blocks engraved in relief for centuries.",
    "Mr. Jones paid $12.75 for 3 books at 9:30 a.m. on Jan. 5, 1999.",
    "Dr. Watson moved to 221B Baker St. in 1881, didn't he?",
    "NASA launched Apollo XI; the crew landed on July 20, 1969!",
    "About 45% of the 2,500 voters chose the 2nd option (see p. 4).",
    "I read the book yesterday, and I will read it again tomorrow.",
    "The quick brown fox jumps over the lazy dog near St. Mary's church.",
]


@pytest.fixture(scope="module")
def fe() -> TextFrontend:
    """Without the leading pause: the normalisation and G2P cases below read as plain IPA."""
    return TextFrontend(leading_pause=False)


def _caught(fn, *args):
    """(result, [TextFrontendWarning messages]) of fn(*args)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = fn(*args)
    return result, [str(w.message) for w in caught if issubclass(w.category, TextFrontendWarning)]


# ----------------------------------------------------------------------------------------------
# Number words
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "n, words",
    [
        (0, "zero"), (7, "seven"), (13, "thirteen"), (40, "forty"), (99, "ninety nine"),
        (100, "one hundred"), (123, "one hundred twenty three"), (1000, "one thousand"),
        (1_000_001, "one million one"), (2_500_000_000, "two billion five hundred million"),
        (-12, "minus twelve"),
    ],
)
def test_cardinal(n: int, words: str) -> None:
    assert cardinal(n) == words


@pytest.mark.parametrize(
    "n, words",
    [(1, "first"), (2, "second"), (3, "third"), (5, "fifth"), (8, "eighth"), (9, "ninth"),
     (12, "twelfth"), (20, "twentieth"), (22, "twenty second"), (101, "one hundred first"),
     (1000, "one thousandth")],
)
def test_ordinal(n: int, words: str) -> None:
    assert ordinal(n) == words


@pytest.mark.parametrize(
    "n, words",
    [(1984, "nineteen eighty four"), (1905, "nineteen oh five"), (1900, "nineteen hundred"),
     (2000, "two thousand"), (2005, "two thousand five"), (2010, "twenty ten"),
     (2024, "twenty twenty four"), (1776, "seventeen seventy six")],
)
def test_year_words(n: int, words: str) -> None:
    assert year_words(n) == words


# ----------------------------------------------------------------------------------------------
# Normalisation (words)
# ----------------------------------------------------------------------------------------------

NORMALIZE_CASES = [
    # abbreviations: titles, Saint/Street and Doctor/Drive by context
    ("Dr. Smith lives on Elm St.", "Doctor Smith lives on Elm Street."),
    ("We met at St. Paul's on Main St. today.", "We met at Saint Paul's on Main Street today."),
    ("Visit St. Louis.", "Visit Saint Louis."),
    ("He lives at 42nd St. in town.", "He lives at forty second Street in town."),
    ("We drove down Mulholland Dr. Then we left.", "We drove down Mulholland Drive. Then we left."),
    ("Mr. and Mrs. Jones met Ms. Lee.", "Mister and Missus Jones met Miz Lee."),
    ("Prof. Brown, Smith Jr. and Acme Co. Ltd.", "Professor Brown, Smith Junior and Acme Company Limited."),
    ("Apples, pears, etc. Then more.", "Apples, pears, et cetera. Then more."),
    ("Cold, i.e. freezing, e.g. ice; cats vs. dogs.", "Cold, that is freezing, for example ice; cats versus dogs."),
    ("No. 5 and #7, Fig. 3", "number five and number seven, figure three"),
    ("See p. 4 and x².", "See page four and x squared."),
    # money and percent
    ("It costs $5.50, or 20%.", "It costs five dollars and fifty cents, or twenty percent."),
    ("$1 and $0.99 and $1,250", "one dollar and ninety nine cents and one thousand two hundred fifty dollars"),
    ("£3 and £3.50 and €2", "three pounds and three pounds and fifty pence and two euros"),
    ("$3.5 million and $2bn", "three point five million dollars and two billion dollars"),
    ("a 2.5% rise and 50¢", "a two point five percent rise and fifty cents"),
    # ordinals, years, decades, numbers
    ("The 1st, 2nd, 3rd and 22nd runners.", "The first, second, third and twenty second runners."),
    ("I was born in 1984.", "I was born in nineteen eighty four."),
    ("In 1905, 2000 and 2010.", "In nineteen oh five, two thousand and twenty ten."),
    ("The 1980s and the '90s.", "The nineteen eighties and the nineties."),
    ("123 people and 1,000,000 ants", "one hundred twenty three people and one million ants"),
    ("pi is 3.14 and -5 is cold, 007", "pi is three point one four and minus five is cold, zero zero seven"),
    ("Pages 10-20, 1990–1995", "Pages ten to twenty, nineteen ninety to nineteen ninety five"),
    ("2 1/2 cups, 3/4 and 1/3", "two and a half cups, three quarters and one third"),
    ("10 km at 60 mph", "ten kilometers at sixty miles per hour"),
    ("It was -5°C.", "It was minus five degrees Celsius."),
    # dates
    ("It happened on May 5, 2024.", "It happened on May fifth, twenty twenty four."),
    ("On 05/05/2024.", "On May fifth, twenty twenty four."),
    ("On 25/12/2023.", "On December twenty fifth, twenty twenty three."),
    ("On 2024-07-04.", "On July fourth, twenty twenty four."),
    ("On 5 May 2024.", "On the fifth of May twenty twenty four."),
    ("Jan. 1st", "January first"),
    # times
    ("The meeting is at 3:45 pm.", "The meeting is at three forty five PM."),
    ("Call at 10 a.m. Tomorrow is fine.", "Call at ten AM. Tomorrow is fine."),
    ("At 9:00 or 9:05.", "At nine o'clock or nine oh five."),
    ("At 14:30 and 12:15 AM", "At fourteen thirty and twelve fifteen AM"),
    # Roman numerals, initialisms, phone numbers
    ("Henry VIII fought in World War II, chapter IV.", "Henry the eighth fought in World War two, chapter four."),
    ("The U.S.A. and J. F. Kennedy", "The USA and J F Kennedy"),
    ("Call 555-123-4567.", "Call five five five, one two three, four five six seven."),
    # symbols, unicode, punctuation
    ("Tom & Jerry + 2 = fun", "Tom and Jerry plus two equals fun"),
    ("café naïve Zürich", "cafe naive Zurich"),
    ("“Wait…” she said — (really)!", "Wait, she said, really!"),
    ("Hello,world ... ok?!", "Hello, world, ok?"),
    ("THIS IS SHOUTED TEXT.", "this is shouted text."),
]


@pytest.mark.parametrize("text, expected", NORMALIZE_CASES)
def test_normalize(text: str, expected: str) -> None:
    assert normalize_text(text) == expected


def test_normalize_output_is_words_and_pause_punctuation_only() -> None:
    text = " ".join(t for t, _ in NORMALIZE_CASES) + " x^2 <b>bold</b> a*b_c ~5 {x} | 3.14.15 1/0 24/7"
    out = normalize_text(text)
    assert re.fullmatch(r"[A-Za-z' ,;:.!?-]+", out), out
    assert "  " not in out and out == out.strip()


def test_frontend_normalize_matches_function(fe: TextFrontend) -> None:
    assert fe.normalize("Dr. Jones paid $5.") == normalize_text("Dr. Jones paid $5.") == "Doctor Jones paid five dollars."


# ----------------------------------------------------------------------------------------------
# Phonemes (pinned)
# ----------------------------------------------------------------------------------------------

PHONEME_CASES = [
    ("Hello, world!", "hɛlˈoʊ, wˈɚld."),
    ("Dr. Smith lives on Elm St.", "dˈɑktɚ smˈɪθ lˈɪvz ˈɔn ˈɛlm stɹˈit."),
    ("Visit St. Louis!", "vˈɪzɪt sˈeɪnt lˈuɪs."),
    ("It costs $5.50 or 20%.", "ˈɪt kˈɔsts fˈaɪv dˈɑlɚz ˈænd fˈɪfti sˈɛnts ˈɔɹ twˈɛnti pɚsˈɛnt."),
    ("I was born in 1984.", "ˈaɪ wəz bˈɔɹn ˈɪn nˈaɪntˈin ˈeɪti fˈɔɹ."),
    ("The meeting is at 3:45 pm.", "ðə mˈitɪŋ ˈɪz ˈæt θɹˈi fˈɔɹti fˈaɪv pˈi ˈɛm."),
    ("It happened on May 5, 2024.", "ˈɪt hˈæpənd ˈɔn mˈeɪ fˈɪfθ, twˈɛnti twˈɛnti fˈɔɹ."),
    ("The 1st and 22nd.", "ðə fˈɚst ˈænd twˈɛnti sˈɛkənd."),
    ("NATO and the FBI.", "nˈeɪtoʊ ˈænd ðə ˈɛf bˈi ˈaɪ."),
    ("Mr. and Ms. Lee", "mˈɪstɚ ˈænd mˈɪz lˈi."),
    # heteronym by part of speech; ';' ':' -> short pause, '?' -> sentence end
    ("I read it yesterday; I will read it: fine?", "ˈaɪ ɹˈɛd ˈɪt jˈɛstɚdˌeɪ, ˈaɪ wˈɪl ɹˈid ˈɪt, fˈaɪn."),
    ("Go. Stop! Why?", "ɡˈoʊ. stˈɑp. wˈaɪ."),
]


@pytest.mark.parametrize("text, expected", PHONEME_CASES)
def test_phoneme_strings(fe: TextFrontend, text: str, expected: str) -> None:
    assert fe.to_string(fe.phonemize(text)) == expected


def test_phoneme_symbols_are_whole_phones(fe: TextFrontend) -> None:
    # stress belongs to the vowel, affricates and diphthongs are one symbol each
    assert fe.phonemize("Hello, world!") == ["h", "ɛ", "l", "ˈoʊ", ",", " ", "w", "ˈɚ", "l", "d", "."]
    assert fe.phonemize("judge") == ["d͡ʒ", "ˈʌ", "d͡ʒ", "."]


def test_phonemize_structure(fe: TextFrontend) -> None:
    for text in SENTENCES:
        symbols = fe.phonemize(text)
        assert set(symbols) <= set(SYMBOLS) - {PAD}
        assert symbols[-1] == SENTENCE_END and symbols[0] not in (WORD_BOUNDARY, SHORT_PAUSE, SENTENCE_END)
        joined = fe.to_string(symbols)
        assert "  " not in joined and " ," not in joined and ",," not in joined and ".." not in joined
        # every pause is followed by a word boundary (or ends the text)
        for i, s in enumerate(symbols[:-1]):
            if s in (SHORT_PAUSE, SENTENCE_END):
                assert symbols[i + 1] == WORD_BOUNDARY


def test_deterministic(fe: TextFrontend) -> None:
    first = [fe.encode(t) for t in SENTENCES]
    assert [fe.encode(t) for t in SENTENCES] == first
    assert [TextFrontend(leading_pause=False).encode(t) for t in SENTENCES[:3]] == first[:3]


def test_leading_pause_is_the_default_and_only_adds_the_opening_silence(fe: TextFrontend) -> None:
    """New front ends open every text with the short pause and a word boundary (the recording's
    leading silence gets a symbol of its own); the rest of the sequence is unchanged."""
    default = TextFrontend()
    assert default.leading_pause and not fe.leading_pause
    assert default.phonemize("Hello, world!") == [",", " ", "h", "ɛ", "l", "ˈoʊ", ",", " ", "w", "ˈɚ", "l", "d", "."]
    for text in SENTENCES:
        symbols = default.phonemize(text)
        assert symbols[:2] == [SHORT_PAUSE, WORD_BOUNDARY] and symbols[2:] == fe.phonemize(text)
        assert symbols.count(SHORT_PAUSE) == fe.phonemize(text).count(SHORT_PAUSE) + 1
        assert default.encode(text) == [2, 1] + fe.encode(text)
    # once per text, also when the text is several sentences or starts with punctuation
    assert default.to_string(default.phonemize("(Go.) Stop!")) == ", ɡˈoʊ. stˈɑp."
    with pytest.raises(ValueError, match="^leading_pause must be true or false, got 'yes'.$"):
        TextFrontend(leading_pause="yes")


def test_checkpoints_keep_their_leading_pause_setting() -> None:
    """The setting travels with a checkpoint; a front-end config from before it existed (the first
    default voice's) loads without it, so that model is fed what it was trained on."""
    for setting in (True, False):
        config = TextFrontend(leading_pause=setting).to_dict()
        assert config["leading_pause"] is setting
        restored, messages = _caught(TextFrontend.from_dict, config)
        assert messages == [] and restored.leading_pause is setting
    old = TextFrontend().to_dict()
    del old["leading_pause"]
    assert TextFrontend.from_dict(old).encode("Hello.") == [8, 64, 11, 41, 3]


# ----------------------------------------------------------------------------------------------
# Inventory and ids
# ----------------------------------------------------------------------------------------------


def test_inventory_layout_is_fixed() -> None:
    assert SYMBOLS[:4] == (PAD, " ", ",", ".")
    assert len(SYMBOLS) == len(set(SYMBOLS)) == 76
    for vowel in ("æ", "ə", "oʊ", "ɚ"):
        assert {vowel, "ˈ" + vowel, "ˌ" + vowel} <= set(SYMBOLS)
    # ids are part of every trained checkpoint: pin a few
    assert TextFrontend(leading_pause=False).encode("Hello.") == [8, 64, 11, 41, 3]


def test_inventory_covers_gruut_lexicon_and_g2p_model() -> None:
    import gruut_lang_en
    import pycrfsuite

    lang_dir = Path(gruut_lang_en.__file__).parent
    connection = sqlite3.connect(f"file:{lang_dir / 'lexicon.db'}?mode=ro", uri=True)
    lexicon = {p for (pron,) in connection.execute("SELECT phonemes FROM word_phonemes") for p in pron.split()}
    connection.close()
    tagger = pycrfsuite.Tagger()
    tagger.open(str(lang_dir / "g2p" / "model.crf"))
    g2p = {p for label in tagger.labels() for p in base64.b64decode(label).decode().split("|")} - {"_"}
    assert len(lexicon) > 60 and len(g2p) > 60
    assert lexicon <= set(SYMBOLS), lexicon - set(SYMBOLS)
    assert g2p <= set(SYMBOLS), g2p - set(SYMBOLS)


def test_encode_decode_round_trip(fe: TextFrontend) -> None:
    for text in SENTENCES:
        ids = fe.encode(text)
        assert all(0 < i < fe.num_symbols for i in ids)
        assert fe.decode(ids) == fe.phonemize(text)
        assert fe.decode([0] + ids + [0, 0]) == fe.phonemize(text)  # padding skipped
    with pytest.raises(ValueError, match="outside the inventory"):
        fe.decode([fe.num_symbols])


def test_ljspeech_sentences_have_no_unknown_symbols(fe: TextFrontend) -> None:
    if LJSPEECH.is_file():
        lines = LJSPEECH.read_text(encoding="utf-8").splitlines()
        texts = [line.split("|", 1)[1] for line in lines[:: max(1, len(lines) // 300)]][:300]
    else:
        texts = SENTENCES
    used: set[str] = set()
    for text in texts:
        symbols, messages = _caught(fe.phonemize, text)
        assert messages == [], (text, messages)
        used |= set(symbols)
    assert used <= set(SYMBOLS)
    if LJSPEECH.is_file():
        assert len(used) > 60  # a broad sample exercises nearly the whole inventory


# ----------------------------------------------------------------------------------------------
# Unknown symbols and errors
# ----------------------------------------------------------------------------------------------


def test_unknown_characters_dropped_with_one_warning(fe: TextFrontend) -> None:
    symbols, messages = _caught(fe.encode, "hello 😀 world 中文 Ω")
    assert len(messages) == 1
    for char in ("😀", "中", "文", "Ω"):
        assert repr(char) in messages[0]
    assert symbols == fe.encode("hello world")


def test_unknown_phonemes_dropped_with_one_warning() -> None:
    config = TextFrontend(leading_pause=False).to_dict()
    config["symbols"] = [s for s in config["symbols"] if s not in ("ˈoʊ", "ˈɚ")]
    small = TextFrontend.from_dict(config)
    ids, messages = _caught(small.encode, "Hello, world!")
    assert len(messages) == 1 and "'ˈoʊ'" in messages[0] and "'ˈɚ'" in messages[0]
    assert small.decode(ids) == ["h", "ɛ", "l", ",", " ", "w", "l", "d", "."]


@pytest.mark.parametrize("text", ["", "   ", "\n\t "])
def test_empty_text_is_an_error(fe: TextFrontend, text: str) -> None:
    with pytest.raises(ValueError, match="^no text to speak$"):
        fe.phonemize(text)
    with pytest.raises(ValueError, match="^no text to speak$"):
        fe.normalize(text)
    with pytest.raises(ValueError, match="^no text to speak$"):
        fe.split_sentences(text)


@pytest.mark.parametrize("text", ["...!?", " — ( ) ; ", "😀🎉", "中文"])
def test_text_without_words_is_an_error(fe: TextFrontend, text: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TextFrontendWarning)
        with pytest.raises(ValueError, match="nothing to pronounce"):
            fe.encode(text)


def test_odd_unicode_never_crashes(fe: TextFrontend) -> None:
    texts = [
        "👩‍👩‍👧 family", "Ａｂｃ １２３", "ﬁne ½ cup", "x\u200by\u00ad z", "שלום hello", "tab\there\x00nul",
        "Ünïcödé ÆØÅ straße", "\ufeffBOM start", "e\u0301\u0301 combining", "1²³ m²", "™ ® © ok",
    ]
    for text in texts:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", TextFrontendWarning)
            ids = fe.encode(text)
        assert ids and all(0 < i < fe.num_symbols for i in ids)


def test_frontend_pickles(fe: TextFrontend) -> None:
    import pickle

    clone = pickle.loads(pickle.dumps(fe))
    assert clone.encode(SENTENCES[0]) == fe.encode(SENTENCES[0])


def test_unsupported_language_is_an_error() -> None:
    with pytest.raises(ValueError, match="Unsupported language 'de'"):
        TextFrontend("de")
    assert TextFrontend("en_US").language == TextFrontend("EN").language == "en-us"


# ----------------------------------------------------------------------------------------------
# Sentence splitting
# ----------------------------------------------------------------------------------------------


def test_split_sentences_at_sentence_ends_only() -> None:
    text = (
        "Dr. Smith went to Washington, D.C. on Jan. 5. He met Mr. J. F. Kennedy! Was it fun? "
        "\"Yes.\" It was.\n\nA paragraph without an end\n\nThe U.S. Army costs $5.50. That is e.g. cheap."
    )
    assert split_sentences(text) == [
        "Dr. Smith went to Washington, D.C. on Jan. 5.",
        "He met Mr. J. F. Kennedy!",
        "Was it fun?",
        "\"Yes.\"",
        "It was.",
        "A paragraph without an end",
        "The U.S. Army costs $5.50.",
        "That is e.g. cheap.",
    ]


def test_split_long_text_keeps_every_word() -> None:
    base = " ".join(SENTENCES) + " " + (
        "A very long sentence without any full stop goes on and on, across several clauses; "
        "through a colon: and past a dash — and then simply keeps running with many plain words "
        "that have no punctuation between them at all so that it must be cut at spaces "
    ) * 3
    text = (base * 10)[:5000]
    assert len(text) == 5000
    for max_chars in (60, 120, 200):
        pieces = split_sentences(text, max_chars=max_chars)
        assert all(0 < len(p) <= max_chars and p == p.strip() for p in pieces)
        assert " ".join(pieces).split() == text.split()
    # a clause is cut evenly: no two-word tail
    pieces = split_sentences("one two three four five six seven eight nine ten eleven", max_chars=30)
    assert pieces == ["one two three four five six", "seven eight nine ten eleven"]


def test_split_sentences_edge_cases() -> None:
    assert split_sentences("Short.") == ["Short."]
    assert split_sentences("x" * 25, max_chars=10) == ["x" * 10, "x" * 10, "x" * 5]  # only case a word is cut
    pieces = split_sentences("Hello. ... World.", max_chars=50)
    assert all(re.search(r"\w", p) for p in pieces) and " ".join(pieces).split() == ["Hello.", "...", "World."]
    with pytest.raises(ValueError, match="max_chars"):
        split_sentences("Hello.", max_chars=0)


# ----------------------------------------------------------------------------------------------
# Checkpoint round trip
# ----------------------------------------------------------------------------------------------


def test_to_dict_from_dict_round_trip(fe: TextFrontend) -> None:
    config = json.loads(json.dumps(fe.to_dict()))
    assert config["language"] == "en-us" and config["frontend_version"] == fe.version
    assert config["gruut_version"] and config["gruut_lang_en_version"] and config["symbols"][0] == PAD
    restored, messages = _caught(TextFrontend.from_dict, config)
    assert messages == []
    assert restored.symbols == fe.symbols
    assert [restored.encode(t) for t in SENTENCES] == [fe.encode(t) for t in SENTENCES]


def test_from_dict_uses_the_stored_ids(fe: TextFrontend) -> None:
    config = fe.to_dict()
    config["symbols"] = [PAD] + config["symbols"][1:][::-1]  # same symbols, other ids
    restored = TextFrontend.from_dict(config)
    for text in SENTENCES[:3]:
        assert restored.phonemize(text) == fe.phonemize(text)
        assert restored.decode(restored.encode(text)) == fe.decode(fe.encode(text))
        assert restored.encode(text) != fe.encode(text)


def test_from_dict_warns_on_version_mismatch(fe: TextFrontend) -> None:
    config = fe.to_dict()
    config["gruut_version"] = "0.0.1"
    _, messages = _caught(TextFrontend.from_dict, config)
    assert len(messages) == 1 and "gruut 0.0.1" in messages[0]
    config = fe.to_dict()
    config["frontend_version"] = "0"
    _, messages = _caught(TextFrontend.from_dict, config)
    assert len(messages) == 1 and "version 0" in messages[0]


@pytest.mark.parametrize(
    "change, match",
    [
        ({"symbols": ["a", "<pad>"]}, "pad symbol"),
        ({"symbols": ["<pad>", " ", ",", ".", "a", "a"]}, "duplicate"),
        ({"symbols": ["<pad>", "a"]}, "lacks"),
        ({"language": "fr"}, "Unsupported language"),
        ({"format": "something-else"}, "Not a text front-end config"),
    ],
)
def test_from_dict_rejects_bad_configs(fe: TextFrontend, change: dict, match: str) -> None:
    config = {**fe.to_dict(), **change}
    with pytest.raises(ValueError, match=match):
        TextFrontend.from_dict(config)


# ----------------------------------------------------------------------------------------------
# Speed
# ----------------------------------------------------------------------------------------------


def test_phonemizing_100_sentences_is_fast(fe: TextFrontend) -> None:
    texts = (SENTENCES * 13)[:100]
    fe.phonemize("warm up")
    start = time.perf_counter()
    for text in texts:
        fe.encode(text)
    elapsed = time.perf_counter() - start
    print(f"phonemized 100 sentences in {elapsed:.2f} s")
    assert elapsed < 20.0  # ~1 s on 2 CPU cores; gruut's unindexed lexicon took ~8 s


def test_deferred_import_runs_the_module_on_first_use_only(tmp_path, monkeypatch) -> None:
    """gruut's unused dateparser import is deferred this way (~0.3 s of `synth` start-up)."""
    import sys

    from wavediff.text.g2p import _defer_import

    (tmp_path / "wd_deferred_probe.py").write_text("import sys\nsys.wd_probe_runs = getattr(sys, 'wd_probe_runs', 0) + 1\nVALUE = 42\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "wd_deferred_probe", raising=False)
    try:
        _defer_import("wd_deferred_probe")
        import wd_deferred_probe

        assert getattr(sys, "wd_probe_runs", 0) == 0  # bound, not run
        assert wd_deferred_probe.VALUE == 42 and sys.wd_probe_runs == 1
        assert sys.modules["wd_deferred_probe"].VALUE == 42  # the real module replaced the stand-in
        assert wd_deferred_probe.VALUE == 42 and sys.wd_probe_runs == 1  # run once
        _defer_import("wd_no_such_module_anywhere")
        assert "wd_no_such_module_anywhere" not in sys.modules  # a missing module still fails as usual
    finally:
        sys.modules.pop("wd_deferred_probe", None)
        if hasattr(sys, "wd_probe_runs"):
            del sys.wd_probe_runs


# ----------------------------------------------------------------------------------------------
# gruut's graphs: wavediff.text._digraph stands in for networkx
# ----------------------------------------------------------------------------------------------


def test_digraph_stand_in_matches_networkx() -> None:
    """The same operations give the same nodes, attributes, adjacency (in order), degrees, edges and
    depth-first preorders as networkx's DiGraph, self-loops, repeated and missing edges included."""
    import random

    import networkx as nx

    from wavediff.text._digraph import DiGraph, dfs_preorder_nodes

    rng = random.Random(0)
    for trial in range(30):
        ref, ours = nx.DiGraph(), DiGraph()
        for step in range(80):
            op, u, v = rng.random(), rng.randrange(15), rng.randrange(15)
            for g in (ref, ours):
                if op < 0.15:
                    g.add_node(u, data=(trial, step))
                elif op < 0.6:
                    g.add_edge(u, v)
                elif op < 0.7:
                    g.add_edges_from([(u, v), (v, u)])
                else:
                    g.remove_edges_from([(u, v), (v, 99)])
        assert list(ours.nodes) == list(ref.nodes) and len(ours) == len(ref)
        for n in ref.nodes:
            assert ours.nodes[n] == ref.nodes[n]
            assert list(ours.successors(n)) == list(ref.successors(n))
            assert list(ours.predecessors(n)) == list(ref.predecessors(n))
            assert ours.out_degree(n) == ref.out_degree(n)
            assert list(ours.out_edges(n)) == list(ref.out_edges(n))
            assert list(dfs_preorder_nodes(ours, n)) == list(nx.dfs_preorder_nodes(ref, n))


_PHONEMIZE = r"""
import json, sys
from wavediff.text import TextFrontend
fe = TextFrontend()
texts = json.loads(sys.stdin.read())
out = [fe.phonemize(t) for t in texts]
import gruut.text_processor
print(json.dumps({"graph": gruut.text_processor.nx.DiGraph.__module__,
                  "networkx_imported": "networkx" in sys.modules, "phonemes": out}))
"""


def test_front_end_reads_the_same_with_the_stand_in_and_with_networkx() -> None:
    """gruut with the stand-in (the default) and with networkx (WAVEDIFF_GRUUT_NETWORKX=1) phonemize the
    everyday set and the cases here identically; the stand-in is gruut's alone (networkx stays unimported)."""
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    texts = (root / "benchmarks" / "data" / "everyday_sentences.txt").read_text(encoding="utf-8").splitlines()
    texts = [t for t in texts if t.strip()] + SENTENCES + [text for text, _ in PHONEME_CASES]
    runs = {}
    for real in ("0", "1"):
        env = dict(os.environ, WAVEDIFF_GRUUT_NETWORKX=real)
        r = subprocess.run([sys.executable, "-c", _PHONEMIZE], input=json.dumps(texts), capture_output=True,
                           text=True, env=env, timeout=300)
        assert r.returncode == 0, r.stderr[-2000:]
        runs[real] = json.loads(r.stdout.strip().splitlines()[-1])
    assert runs["0"]["graph"] == "wavediff.text._digraph" and not runs["0"]["networkx_imported"]
    assert runs["1"]["graph"].startswith("networkx.")
    assert len(runs["0"]["phonemes"]) == len(texts) > 40
    assert runs["0"]["phonemes"] == runs["1"]["phonemes"]


# ----------------------------------------------------------------------------------------------
# The indexed lexicon, cached
# ----------------------------------------------------------------------------------------------


def test_indexed_lexicon_is_built_once_then_read_from_the_cache(tmp_path, monkeypatch) -> None:
    """The first build writes the indexed copy to the cache folder (atomically: no temporary file is
    left); later ones open it, and both answer lookups as the shipped lexicon does. A corrupt cache file
    is rebuilt; an unusable folder or WAVEDIFF_CACHE_DIR='' leaves the copy in memory."""
    from gruut.utils import find_lang_dir

    from wavediff.text import g2p

    source = Path(find_lang_dir("en-us")) / "lexicon.db"
    folder = tmp_path / "cache"
    monkeypatch.setenv("WAVEDIFF_CACHE_DIR", str(folder))
    assert g2p.cache_dir() == folder
    built = g2p._indexed_lexicon(source)
    files = sorted(folder.iterdir())
    assert [f.suffix for f in files] == [".db"] and files[0].name.startswith("gruut-lexicon-")
    cached = g2p._indexed_lexicon(source)
    assert built.execute("PRAGMA database_list").fetchone()[2] == ""  # in memory
    assert Path(cached.execute("PRAGMA database_list").fetchone()[2]) == files[0]  # the file, read-only
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        cached.execute("DELETE FROM word_phonemes")
    shipped = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    query = "SELECT phonemes FROM word_phonemes WHERE word = ? ORDER BY rowid"
    for word in ("read", "hello", "nasa", "zebra", "wavediffnotaword"):
        want = shipped.execute(query, (word,)).fetchall()
        assert built.execute(query, (word,)).fetchall() == want == cached.execute(query, (word,)).fetchall()
    plan = " ".join(str(row) for row in cached.execute("EXPLAIN QUERY PLAN " + query, ("read",)))
    assert "wavediff_word_index" in plan
    cached.close()

    files[0].write_bytes(b"not a database")  # e.g. truncated: rebuilt and rewritten
    again = g2p._indexed_lexicon(source)
    assert again.execute(query, ("hello",)).fetchall() == shipped.execute(query, ("hello",)).fetchall()
    assert g2p._indexed_lexicon(source).execute("PRAGMA database_list").fetchone()[2] == str(files[0])

    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("WAVEDIFF_CACHE_DIR", str(blocker / "cache"))  # cannot be created
    assert g2p._indexed_lexicon(source).execute(query, ("hello",)).fetchall()
    monkeypatch.setenv("WAVEDIFF_CACHE_DIR", "")
    assert g2p.cache_dir() is None
    assert g2p._indexed_lexicon(source).execute("PRAGMA database_list").fetchone()[2] == ""
