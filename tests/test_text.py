"""Text normalisation: evasion is undone, hostile Unicode never raises, offsets map back."""

from __future__ import annotations

import random

import pytest

from classifier.text import URL_TOKEN, normalize, normalize_text

HOSTILE = [
    "",
    "\x00\x00abc\x00",
    "lone \ud800 surrogate \udfff here",
    "\u202eevil rtl override\u202c and \u2066isolates\u2069",
    "a" + "\u0301" * 20_000,
    "\u200b\u200c\u200d\ufeff" * 500,
    "<script>alert(1)</script>&#0;&#x110000;&bogus;&amp;&#55296;",
    "𝕿𝖍𝖎𝖘 𝖎𝖘 𝖋𝖗𝖆𝖐𝖙𝖚𝖗" * 100,
    "\U0010ffff\ue000\U000e0001",
    "x" * 50_000,
]


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_unicode_never_raises_and_offsets_stay_in_range(text: str) -> None:
    normalized = normalize(text)
    assert len(normalized.begins) == len(normalized.text) == len(normalized.ends)
    assert all(0 <= b < e <= len(normalized.original) for b, e in zip(normalized.begins, normalized.ends))
    normalized.text.encode("utf-8")  # no surrogates left


def test_non_string_input_is_tolerated() -> None:
    assert normalize_text(None) == ""
    assert normalize_text(42) == "42"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Y0u 1d10t", "you idiot"),
        ("sh!t happens", "shit happens"),
        ("ｆｒｅｅ ＭＯＮＥＹ", "free money"),
        ("іdіоt", "idiot"),  # Cyrillic look-alikes
        ("i\u200bd\u200ci\u200do\ufefft", "idiot"),
        ("sooooo goooood", "soo good"),
        ("caf\u00e9 na\u0131ve", "cafe naive"),
        ("Tom &amp; Jerry<br />rock", "tom & jerry rock"),
        ("Great song\ufeff", "great song"),
    ],
)
def test_evasion_is_normalised(raw: str, expected: str) -> None:
    assert " ".join(normalize_text(raw).split()) == expected


def test_numbers_and_prices_survive_leetspeak_undoing() -> None:
    assert normalize_text("In 2016 it cost $5, call 911!") == "in 2016 it cost $5, call 911!"


def test_urls_become_a_token() -> None:
    for raw in ("see http://bit.ly/abc now", "see www.example.com/page now", "see cheap-shoes.com now"):
        assert normalize_text(raw).split() == ["see", URL_TOKEN, "now"]


def test_offsets_map_back_to_the_original_text() -> None:
    raw = "<b>Hey</b> Y0U &amp; 1DIIIIOT, visit http://spam.example.com/x ｉｄｉｏｔ"
    normalized = normalize(raw)
    text = normalized.text
    start = text.index("idiiot")  # leetspeak undone, the run of I squeezed to two
    begin, end = normalized.span(start, start + len("idiiot"))
    assert raw[begin:end] == "1DIIIIOT"
    start = text.index("you")
    assert raw[slice(*normalized.span(start, start + 3))] == "Y0U"
    start = text.index(URL_TOKEN)
    assert raw[slice(*normalized.span(start, start + len(URL_TOKEN)))] == "http://spam.example.com/x"
    start = text.rindex("idiot")
    assert raw[slice(*normalized.span(start, start + 5))] == "ｉｄｉｏｔ"


@pytest.mark.parametrize("word", ["150p", "1st", "10am", "txt80082", "0800free", "2nite"])
def test_numbers_with_units_are_not_leetspeak(word: str) -> None:
    assert normalize_text(word) == word


def test_spans_found_through_the_pieces_match_the_expanded_lists():
    rng = random.Random(5)
    alphabet = list("abc 1!@") + ["&amp;", "<b>", "http://x.com/a ", "ﬁ", "ｆ", "\u200b", "é", "ааа"]
    for _ in range(300):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 40)))
        lazy, expanded = normalize(text), normalize(text)
        if not lazy.text:
            continue
        expanded.begins  # noqa: B018 - forces the per-character lists
        for _ in range(5):
            begin = rng.randrange(len(lazy.text))
            end = rng.randint(begin + 1, len(lazy.text))
            assert lazy.span(begin, end) == expanded.span(begin, end), (text, begin, end)
