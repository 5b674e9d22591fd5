"""The rules engine (``service.rules``) and how the policy weighs its hits: pure, no database."""

from __future__ import annotations

import pytest

from service.db import APPROVED, HELD, REJECTED
from service.languages import detect_language
from service.policy import RuleOutcome, apply_policy
from service.rules import (
    AUTHOR_EMAIL,
    AUTHOR_IP,
    BANNED,
    EMAIL_BAN,
    EMAIL_HOLD,
    LINK_BLOCKED_KIND,
    LINK_TRUSTED,
    SUSPECT,
    AuthorHistory,
    CommentFacts,
    InvalidEntry,
    RuleOptions,
    RuleSet,
    WordList,
    normalize_entry,
)
from service.settings import Thresholds

CLEAN_SCORES = {"spam": 0.1, "toxicity": 0.1}


def rules(options: RuleOptions | None = None, **lists: list[str]) -> RuleSet:
    kinds = {
        "banned": BANNED,
        "suspect": SUSPECT,
        "email_ban": EMAIL_BAN,
        "email_hold": EMAIL_HOLD,
        "trusted": LINK_TRUSTED,
        "blocked": LINK_BLOCKED_KIND,
        "emails": AUTHOR_EMAIL,
        "ips": AUTHOR_IP,
    }
    entries = {
        kinds[name]: [normalize_entry(kinds[name], value) for value in values]
        for name, values in lists.items()
    }
    return RuleSet.compile(entries, options)


def hits(ruleset: RuleSet, text: str, **facts) -> list[tuple[str, str, str]]:
    outcome = ruleset.evaluate(CommentFacts(text, **facts))
    return [(hit.rule, hit.entry, hit.match) for hit in outcome.hits]


@pytest.mark.parametrize(
    "text",
    ["You idiot", "You 1d10t!", "You ıdіоt", "You id\u200biot", "YOU IDIOT", "you &lt;b&gt;idiot"],
)
def test_banned_words_match_through_evasion(text):
    found = hits(rules(banned=["idiot"]), text)
    assert [rule for rule, _, _ in found] == ["banned_word"]


def test_whole_words_by_default_and_wildcards_inside_words():
    ruleset = rules(banned=["idiot"], suspect=["moron*", "*scam"])
    assert hits(ruleset, "an idiotic idea") == []
    assert hits(ruleset, "morons and a bigscam") == [
        ("suspect_word", "moron*", "morons"),
        ("suspect_word", "*scam", "bigscam"),
    ]


def test_phrases_match_across_line_breaks_and_report_the_original_span():
    ruleset = rules(banned=["buy now"])
    outcome = ruleset.evaluate(CommentFacts("Please BUY\nNOW."))
    (hit,) = outcome.hits
    assert hit.match == "BUY\nNOW" and hit.span == (7, 14)


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ("*", "wildcards only"),
        ("* *", "wildcards only"),
        ("(foo|bar)", "regular expressions"),
        ("a.*b", "regular expressions"),
        ("", "empty"),
        ("x" * 201, "longer than"),
        ("a\x00b", "control"),
    ],
)
def test_bad_word_entries_are_refused(raw, problem):
    with pytest.raises(InvalidEntry, match=problem):
        normalize_entry(BANNED, raw)


def test_entries_are_stored_normalised_so_variants_are_duplicates():
    assert normalize_entry(BANNED, "1D10T") == normalize_entry(BANNED, "idiot") == "idiot"
    assert normalize_entry(EMAIL_BAN, "@WWW.Example.COM") == "example.com"
    assert normalize_entry(AUTHOR_IP, "2001:db8::0001") == "2001:db8::1"
    with pytest.raises(InvalidEntry):
        normalize_entry(EMAIL_BAN, "not a domain")


def test_thousands_of_entries_share_one_automaton():
    entries = [f"w{index}x" for index in range(3000)] + ["needle", "need*"]
    words = WordList((entry, entry) for entry in entries)
    assert words.size == 3002
    found = sorted(tag for tag, _, _ in words.find("a needles and w17x here"))
    assert found == ["need*", "w17x"]


def test_email_domain_rules_cover_subdomains():
    ruleset = rules(
        RuleOptions(hold_disposable_email=True, hold_email_aliases=True),
        email_ban=["spam.example"],
        email_hold=["free.example"],
    )
    assert hits(ruleset, "hi", email="a@mx.spam.example") == [
        ("email_banned", "spam.example", "mx.spam.example")
    ]
    assert hits(ruleset, "hi", email="a@free.example") == [("email_held", "free.example", "free.example")]
    assert hits(ruleset, "hi", email="a@mailinator.com")[0][0] == "disposable_email"
    assert hits(ruleset, "hi", email="ada+news@example.org") == [("email_alias", "+", "+news")]
    assert hits(rules(), "hi", email="a@mailinator.com") == []  # off unless the site turns it on


def test_link_rules_trusted_domains_do_not_count_and_blocked_ones_reject():
    ruleset = rules(trusted=["ourpaper.example"], blocked=["bad.example"])
    text = "see https://ourpaper.example/a https://www.ourpaper.example/b https://other.example/c"
    assert ruleset.evaluate(CommentFacts(text)).link_count == 1
    assert hits(ruleset, "go to http://x.bad.example/deal now") == [
        ("link_blocked", "bad.example", "http://x.bad.example/deal")
    ]


def test_banned_authors_by_email_or_ip():
    ruleset = rules(emails=["Troll@Example.com"], ips=["203.0.113.9"])
    assert hits(ruleset, "hi", email="troll@example.com")[0][0] == "author_banned"
    assert hits(ruleset, "hi", ip="203.0.113.9")[0][0] == "author_banned"
    assert hits(ruleset, "hi", email="ok@example.com", ip="203.0.113.10") == []


def test_author_history_trust_and_recent_rejections():
    ruleset = rules(RuleOptions(trusted_after_approved=3, recent_history_size=4), suspect=["crap"])
    trusted = ruleset.evaluate(CommentFacts("crap idea", history=AuthorHistory(approved=3)))
    assert trusted.trusted_author
    assert apply_policy(CLEAN_SCORES, "crap idea", Thresholds(), trusted).status == APPROVED
    # ... but not past a high score, nor a banned word.
    assert apply_policy({"spam": 0.99}, "x", Thresholds(), trusted).status == REJECTED
    assert apply_policy({"spam": 0.1, "toxicity": 0.9}, "x", Thresholds(), trusted).status == HELD
    recent = ruleset.evaluate(
        CommentFacts("fine", history=AuthorHistory(recent=["rejected"] * 3 + ["approved"]))
    )
    assert [hit.rule for hit in recent.hits] == ["recent_rejections"]
    assert apply_policy(CLEAN_SCORES, "fine", Thresholds(), recent).reason == "recent_rejections"


def test_languages_other_than_the_supported_ones_are_held_unless_the_site_scores_them():
    outcome = rules().evaluate(CommentFacts("bonjour", language="fr"))
    verdict = apply_policy(CLEAN_SCORES, "bonjour", Thresholds(), outcome)
    assert (verdict.status, verdict.reason) == (HELD, "unsupported_language")
    anyway = rules(RuleOptions(score_unsupported_languages=True)).evaluate(
        CommentFacts("bonjour", language="fr")
    )
    assert apply_policy(CLEAN_SCORES, "bonjour", Thresholds(), anyway).status == APPROVED
    assert rules().evaluate(CommentFacts("hello", language=None)).hits == []


def test_policy_rejecting_rules_win_and_every_hit_is_kept():
    ruleset = rules(banned=["idiot"], suspect=["crap"])
    outcome = ruleset.evaluate(CommentFacts("crap from an idiot"))
    verdict = apply_policy(CLEAN_SCORES, "crap from an idiot", Thresholds(), outcome)
    assert (verdict.status, verdict.reason) == (REJECTED, "banned_word")
    assert [hit.rule for hit in verdict.hits] == ["banned_word", "suspect_word"]
    # No scores never means approval, whatever the rules say.
    assert apply_policy(None, "x", Thresholds(), RuleOutcome()).status == HELD


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("The council should publish the full budget before the vote next week.", "en"),
        ("Je pense que le conseil municipal doit publier le budget avant le vote.", "fr"),
        ("Das ist ein sehr guter Artikel, vielen Dank dafür, ich bin nicht sicher.", "de"),
        ("ok", None),  # too short to tell
    ],
)
def test_languages_are_detected_or_left_unknown(text, language):
    assert detect_language(text) == language
