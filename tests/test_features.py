"""Metadata features: the nature of the name, URL, e-mail and links, not their presence."""

from __future__ import annotations

import numpy as np
import pytest

from classifier.comment import Comment
from classifier.features import (
    META_NAMES,
    CommentVectorizer,
    char_ngrams,
    metadata_values,
    metadata_vector,
    name_looks_like_keywords,
)


@pytest.mark.parametrize(
    "name",
    ["Cheap Watches Online", "Computer & Internet", "best payday loans", "Business For Sale", "buy viagra"],
)
def test_keyword_names_are_flagged(name: str) -> None:
    assert name_looks_like_keywords(name)


@pytest.mark.parametrize("name", ["Anna Smith", "John", "Maria Garcia", "dave99", "J. R. Hartley", ""])
def test_personal_names_are_not_flagged(name: str) -> None:
    assert not name_looks_like_keywords(name)


def test_links_domains_and_shorteners_are_counted() -> None:
    values = metadata_values(Comment("see http://bit.ly/a and http://bit.ly/b and www.cheap-shoes-store.com"))
    assert values["links"] == 3
    assert values["domains"] == 2
    assert values["link_shortener"] == 1.0
    assert values["link_shop"] == 1.0


def test_author_url_email_and_repetition() -> None:
    spammy = metadata_values(
        Comment(
            "Buy cheap watches online today, cheap watches online!",
            name="Cheap Watches Online",
            url="http://cheap-watches-store.com/",
            email="someone@mailinator.com",
        )
    )
    assert spammy["url_shop"] == 1.0
    assert spammy["email_disposable"] == 1.0
    assert spammy["text_repeats_name"] == 1.0
    assert spammy["name_keywords"] == 1.0


def test_a_real_reader_with_website_and_email_looks_clean() -> None:
    values = metadata_values(
        Comment(
            "I think the council got this one wrong.",
            name="Anna Smith",
            url="https://annasmith.net",
            email="anna.smith@gmail.com",
        )
    )
    flags = (
        "name_keywords",
        "name_commercial",
        "name_web_address",
        "text_repeats_name",
        "url_shop",
        "url_shortener",
        "url_keyword_path",
        "email_disposable",
    )
    assert all(values[flag] == 0.0 for flag in flags)


def test_capitals_repeats_and_length() -> None:
    values = metadata_values(Comment("WOW THIS IS AMAZING!!!!! BEST EVER!!!"))
    assert values["caps_share"] > 0.9
    assert values["repeated_chars"] >= 1
    vector = metadata_vector(values)
    assert len(vector) == len(META_NAMES)
    assert all(0.0 <= v <= 1.0 for v in vector)


def test_hostile_metadata_never_raises() -> None:
    comment = Comment("\ud800\x00" * 100, name="\u202e" * 300, url="http://[::1", email="@@@\ud800")
    assert len(metadata_vector(metadata_values(comment))) == len(META_NAMES)


def test_char_ngrams_pad_words_like_char_wb() -> None:
    assert char_ngrams("idiot", 3, 3) == [" id", "idi", "dio", "iot", "ot "]


def test_vectorizer_shapes_and_terms() -> None:
    comments = [Comment("you are an idiot"), Comment("a perfectly nice comment"), Comment("idiot idiot")]
    vectorizer = CommentVectorizer(word_bits=10, char_bits=11, min_df=1).fit(comments)
    matrix = vectorizer.transform(comments)
    assert matrix.shape == (3, 1024 + 2048 + len(META_NAMES))
    assert matrix.dtype == np.float32
    from classifier.text import normalize

    normalized = normalize("You are an 1d10t")
    terms = vectorizer.terms(normalized)
    words = {word for entries in terms.values() for word, _, _ in entries}
    assert "idiot" in words


@pytest.mark.parametrize(
    "name",
    [
        "Yuliana Andrea Caucali Acosta",
        "Mary Ann de la Cruz",
        "Quinn and Mia",
        "Sandra Price",
        "The Silhouette",
    ],
)
def test_long_names_and_joiners_alone_are_not_keywords(name: str) -> None:
    assert not name_looks_like_keywords(name)


@pytest.mark.parametrize(
    "name",
    [
        "cheap airline flights",
        "Technology",
        "arts and learning",
        "easy boom beach hack",
        "how To lose 10 pounds a month naturally",
        "medical uses of steroids",
    ],
)
def test_more_keyword_names_are_flagged(name: str) -> None:
    assert name_looks_like_keywords(name)


def test_www_in_links_is_not_repeated_characters() -> None:
    linked = Comment("see www.example.com and http://www.bbc.co.uk/news")
    assert metadata_values(linked)["repeated_chars"] == 0
    assert metadata_values(Comment("sooooo good"))["repeated_chars"] == 1


@pytest.mark.parametrize("name", ["mary ann smith", "Socrates", "john price", "Ann-Marie O'Neil"])
def test_lower_case_and_classical_names_are_not_keywords(name: str) -> None:
    assert not name_looks_like_keywords(name)


@pytest.mark.parametrize(
    "url",
    [
        "https://www.google.com/fusiontables/DataSource?docid=1SQmDFTDw61",
        "http://Wiki.example.org/index.php?title=How_to_lose_weight",
        "http://aliexqress.ru/reversemortgage99462",
        "http://example.com/?option=com_k2&view=itemlist&task=user&id=1",
        "https://example.com/how-to-win-big-today",
    ],
)
def test_author_urls_into_keyword_or_profile_pages_are_flagged(url: str) -> None:
    assert metadata_values(Comment("Nice.", name="Ann", url=url))["url_keyword_path"] == 1.0


@pytest.mark.parametrize(
    "url",
    [
        "https://annasmith.net",
        "https://annasmith.net/about",
        "http://twitter.com/anna",
        "https://www.facebook.com/anna.smith",
    ],
)
def test_a_readers_own_site_or_profile_is_not_a_keyword_page(url: str) -> None:
    assert metadata_values(Comment("Nice.", name="Ann", url=url))["url_keyword_path"] == 0.0
