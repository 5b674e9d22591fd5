"""The decision policy: the one function that turns scores into approve, hold or reject.

Also the home of every reason code a comment can carry (``Comment.reason``): the policy's rules, and
the moderators' decisions, which the review pages and the API report the same way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

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
# A site's own rules (``service.rules``): each names the list or check that fired.
BANNED_WORD = "banned_word"
SUSPECT_WORD = "suspect_word"
EMAIL_BANNED = "email_banned"
EMAIL_HELD = "email_held"
DISPOSABLE_EMAIL = "disposable_email"
EMAIL_ALIAS = "email_alias"
LINK_BLOCKED = "link_blocked"
AUTHOR_BANNED = "author_banned"
TRUSTED_AUTHOR = "trusted_author"
RECENT_REJECTIONS = "recent_rejections"
UNSUPPORTED_LANGUAGE = "unsupported_language"
#: What each site rule does when it fires.
REJECT = "reject"
HOLD = "hold"
#: The reasons behind a comment rejected as spam (the moderators' "Rejected as spam" queue).
SPAM_REASONS = (SPAM_REJECT, MODERATOR_SPAM)
#: Akismet's documented test values were answered without the model (a header, never stored).
AKISMET_TEST = "akismet_test"


@dataclass(frozen=True, slots=True)
class RuleHit:
    """A site rule that fired: which (``rule`` is its reason code), the entry, and the matched text.

    ``span`` is the ``[begin, end)`` range of the match in the comment's original text, when the
    match is in the text (words), so moderators see it highlighted.
    """

    rule: str
    action: str
    entry: str
    match: str
    span: tuple[int, int] | None = None

    def to_dict(self) -> dict[str, object]:
        return {
            "rule": self.rule,
            "action": self.action,
            "entry": self.entry,
            "match": self.match,
            "span": list(self.span) if self.span is not None else None,
        }


@dataclass(frozen=True)
class RuleOutcome:
    """What a site's rules found in a comment (``service.rules``), for :func:`apply_policy`."""

    hits: Sequence[RuleHit] = ()
    #: Links that count against the limit (links to trusted domains do not); None = count them all.
    link_count: int | None = None
    #: The author has enough approved comments on this site to be trusted.
    trusted_author: bool = False


@dataclass(frozen=True)
class Verdict:
    status: str
    reason: str
    #: Every site rule that fired (the first deciding one is ``reason``).
    hits: Sequence[RuleHit] = field(default=())


def apply_policy(
    scores: Mapping[str, float] | None,
    text: str,
    thresholds: Thresholds,
    rules: RuleOutcome | None = None,
) -> Verdict:
    """Decide a comment's fate. No scores (no model, scoring failed) always means a human decides.

    With a site's ``rules``: a rejecting rule wins over everything; then a language the models do
    not know holds the comment (its scores mean little); a trusted author is approved unless the
    scores say spam-reject or toxic; otherwise a holding rule holds it before the model's holds.
    """
    rules = rules or RuleOutcome()
    hits = tuple(rules.hits)
    rejecting = [hit for hit in hits if hit.action == REJECT]
    if rejecting:
        return Verdict(REJECTED, rejecting[0].rule, hits)
    if any(hit.rule == UNSUPPORTED_LANGUAGE for hit in hits):
        return Verdict(HELD, UNSUPPORTED_LANGUAGE, hits)
    if not scores:
        return Verdict(HELD, UNSCORED, hits)
    spam = scores.get("spam")
    if spam is None:
        return Verdict(HELD, UNSCORED, hits)
    if spam >= thresholds.spam_reject:
        return Verdict(REJECTED, SPAM_REJECT, hits)
    over = [
        (value - thresholds.hold_threshold(name), name)
        for name, value in scores.items()
        if name != "spam" and value >= thresholds.hold_threshold(name)
    ]
    if rules.trusted_author and not over:
        return Verdict(APPROVED, TRUSTED_AUTHOR, hits)
    if hits:
        return Verdict(HELD, hits[0].rule, hits)
    if spam >= thresholds.spam_hold:
        return Verdict(HELD, SPAM_HOLD, hits)
    if over:
        _, attribute = max(over)
        return Verdict(HELD, f"{TOXICITY_HOLD}:{attribute}", hits)
    links = count_links(text) if rules.link_count is None else rules.link_count
    if links > thresholds.max_links:
        return Verdict(HELD, TOO_MANY_LINKS, hits)
    return Verdict(APPROVED, CLEAN, hits)


def uncertainty(scores: Mapping[str, float] | None, thresholds: Thresholds) -> float:
    """How close the nearest score sits to its threshold: 1 means exactly on it, 0 means far away.

    Moderators sort by this ("most uncertain first"): that is where their label teaches the model most.
    """
    if not scores:
        return 1.0
    nearest = min(abs(value - thresholds.hold_threshold(name)) for name, value in scores.items())
    return round(1.0 - min(nearest, 1.0), 6)
