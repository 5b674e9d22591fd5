"""The decision policy: one function, per-attribute thresholds, a named reason for every verdict."""

from __future__ import annotations

import pytest

from service.db import APPROVED, HELD, REJECTED
from service.policy import apply_policy, count_links, uncertainty
from service.settings import Thresholds

CALM = {
    "spam": 0.1,
    "toxicity": 0.1,
    "severe_toxicity": 0.0,
    "insult": 0.1,
    "profanity": 0.0,
    "threat": 0.0,
    "identity_attack": 0.0,
}


@pytest.mark.parametrize(
    ("changes", "text", "expected"),
    [
        ({}, "Thanks!", (APPROVED, "clean")),
        ({"spam": 0.97}, "x", (REJECTED, "spam_reject")),
        ({"spam": 0.9699}, "x", (HELD, "spam_hold")),
        ({"spam": 0.5}, "x", (HELD, "spam_hold")),
        ({"spam": 0.4999}, "x", (APPROVED, "clean")),
        ({"toxicity": 0.6}, "x", (HELD, "toxicity_hold:toxicity")),
        ({"threat": 0.7, "insult": 0.65}, "x", (HELD, "toxicity_hold:threat")),
        ({"insult": 0.59}, "x", (APPROVED, "clean")),
        ({}, "see http://a.example http://b.example and www.c.example", (HELD, "too_many_links")),
        ({}, "see http://a.example and http://b.example", (APPROVED, "clean")),
        ({"spam": 0.99, "toxicity": 0.99}, "x", (REJECTED, "spam_reject")),
    ],
)
def test_policy_rules(changes, text, expected):
    verdict = apply_policy({**CALM, **changes}, text, Thresholds())

    assert (verdict.status, verdict.reason) == expected


@pytest.mark.parametrize("scores", [None, {}, {"toxicity": 0.0}])
def test_missing_scores_are_held_as_unscored_never_approved(scores):
    verdict = apply_policy(scores, "Thanks!", Thresholds())

    assert (verdict.status, verdict.reason) == (HELD, "unscored")


def test_thresholds_come_from_settings():
    strict = Thresholds(
        spam_reject=0.8, spam_hold=0.3, toxicity_hold=0.4, max_links=0, attribute_hold={"threat": 0.2}
    )

    assert apply_policy({**CALM, "spam": 0.85}, "x", strict).status == REJECTED
    assert apply_policy({**CALM, "spam": 0.35}, "x", strict).reason == "spam_hold"
    assert apply_policy({**CALM, "threat": 0.25}, "x", strict).reason == "toxicity_hold:threat"
    assert apply_policy(CALM, "one link http://a.example", strict).reason == "too_many_links"


def test_links_are_counted_like_wordpress():
    assert count_links('<a href="http://a">x</a> https://b.example/path www.c.example plain.example') == 3


def test_uncertainty_is_highest_near_a_threshold():
    near = uncertainty({**CALM, "spam": 0.51}, Thresholds())
    far = uncertainty({**CALM, "spam": 0.01, "toxicity": 0.01}, Thresholds())

    assert near > far
