"""The decision policy: the one function that turns scores into approve, hold or reject.

Also the home of every reason code a comment can carry (``Comment.reason``): the policy's rules, and
the moderators' decisions, which the review pages and the API report the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from classifier.text import count_links
from service.db import APPROVED, HELD, REJECTED
from service.settings import Thresholds

# Reasons, as returned to the CMS. Each names the rule that fired.
SPAM_REJECT = "spam_reject"
SPAM_HOLD = "spam_hold"
TOXICITY_HOLD = "toxicity_hold"  # suffixed with the attribute, e.g. "toxicity_hold:insult"
TOO_MANY_LINKS = "too_many_links"
UNSCORED = "unscored"
CLEAN = "clean"
#: A moderator's decision, and "undo" when the reason before it is unknown.
MODERATOR_APPROVED = "moderator_approved"
MODERATOR_SPAM = "moderator_spam"
MODERATOR_ABUSIVE = "moderator_abusive"
MODERATOR_UNDO = "moderator_undo"
# A CMS's own moderators (WordPress: unapprove, not spam, trash), reported through /v1 decisions.
MODERATOR_HELD = "moderator_held"
MODERATOR_NOT_SPAM = "moderator_not_spam"
MODERATOR_TRASH = "moderator_trash"
#: Written on arrival by earlier versions; rows stored then may still carry it.
RECEIVED = "received"
#: The reasons behind a comment rejected as spam (the moderators' "Rejected as spam" queue).
SPAM_REASONS = (SPAM_REJECT, MODERATOR_SPAM)
#: Akismet's documented test values were answered without the model (a header, never stored).
AKISMET_TEST = "akismet_test"


@dataclass(frozen=True)
class Verdict:
    status: str
    reason: str


def apply_policy(scores: Mapping[str, float] | None, text: str, thresholds: Thresholds) -> Verdict:
    """Decide a comment's fate. No scores (no model, scoring failed) always means a human decides."""
    if not scores:
        return Verdict(HELD, UNSCORED)
    spam = scores.get("spam")
    if spam is None:
        return Verdict(HELD, UNSCORED)
    if spam >= thresholds.spam_reject:
        return Verdict(REJECTED, SPAM_REJECT)
    if spam >= thresholds.spam_hold:
        return Verdict(HELD, SPAM_HOLD)
    over = [
        (value - thresholds.hold_threshold(name), name)
        for name, value in scores.items()
        if name != "spam" and value >= thresholds.hold_threshold(name)
    ]
    if over:
        _, attribute = max(over)
        return Verdict(HELD, f"{TOXICITY_HOLD}:{attribute}")
    if count_links(text) > thresholds.max_links:
        return Verdict(HELD, TOO_MANY_LINKS)
    return Verdict(APPROVED, CLEAN)


def uncertainty(scores: Mapping[str, float] | None, thresholds: Thresholds) -> float:
    """How close the nearest score sits to its threshold: 1 means exactly on it, 0 means far away.

    Moderators sort by this ("most uncertain first"): that is where their label teaches the model most.
    """
    if not scores:
        return 1.0
    nearest = min(abs(value - thresholds.hold_threshold(name)) for name, value in scores.items())
    return round(1.0 - min(nearest, 1.0), 6)
