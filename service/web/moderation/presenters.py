"""How the review pages show a comment: highlighted reasons, score bars, masked contact details.

Comment text is hostile: nothing here marks it safe. The templates escape every piece, and masking
keeps the author's e-mail, URL and IP off the page until a moderator asks for them.
"""

from __future__ import annotations

import ipaddress
import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy.orm import Session

from service import policy
from service.db import Comment, utcnow
from service.privacy import lookup_values
from service.settings import Thresholds
from service.web.moderation.queries import author_history

REASON_TITLES = {
    policy.SPAM_REJECT: "Spam (rejected by the model)",
    policy.SPAM_HOLD: "Possibly spam",
    policy.TOO_MANY_LINKS: "Too many links",
    policy.UNSCORED: "Not scored (the model was unavailable)",
    policy.CLEAN: "Clean",
    policy.RECEIVED: "Received",
    policy.MODERATOR_APPROVED: "Approved by a moderator",
    policy.MODERATOR_SPAM: "Spam (moderator)",
    policy.MODERATOR_ABUSIVE: "Abusive (moderator)",
    policy.BANNED_WORD: "Banned word (site rule)",
    policy.SUSPECT_WORD: "Suspect word (site rule)",
    policy.EMAIL_BANNED: "Banned e-mail domain",
    policy.EMAIL_HELD: "E-mail domain held for review",
    policy.DISPOSABLE_EMAIL: "Disposable e-mail address",
    policy.EMAIL_ALIAS: "E-mail alias (+)",
    policy.LINK_BLOCKED: "Blocked link domain",
    policy.AUTHOR_BANNED: "Banned author",
    policy.TRUSTED_AUTHOR: "Trusted author",
    policy.RECENT_REJECTIONS: "Author mostly rejected recently",
    policy.UNSUPPORTED_LANGUAGE: "Language the models do not know",
}

_BIDI_CONTROLS = re.compile("[\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c]")


@dataclass(frozen=True)
class Segment:
    text: str
    #: The reasons covering this stretch of text ("toxicity: idiot +1.20"), empty if none.
    reasons: tuple[str, ...] = ()


def highlight_segments(text: str, explanations: Sequence[Mapping[str, Any]] | None) -> list[Segment]:
    """Split ``text`` at the classifier's reason spans; the template escapes each piece and marks
    the covered ones. Spans out of range or malformed are ignored, never trusted."""
    covering: dict[tuple[int, int], list[str]] = {}
    for reason in explanations or []:
        if not isinstance(reason, Mapping):
            continue
        title = _reason_title(reason)
        for span in reason.get("spans") or []:
            if not isinstance(span, list | tuple) or len(span) != 2:
                continue
            begin, end = span
            if not isinstance(begin, int) or not isinstance(end, int):
                continue
            begin, end = max(0, begin), min(len(text), end)
            if begin < end:
                covering.setdefault((begin, end), []).append(title)
    if not covering:
        return [Segment(text)]
    cuts = sorted({0, len(text), *(point for span in covering for point in span)})
    segments: list[Segment] = []
    for begin, end in zip(cuts, cuts[1:], strict=False):
        titles = tuple(
            dict.fromkeys(
                title
                for (low, high), names in covering.items()
                if low <= begin and end <= high
                for title in names
            )
        )
        if segments and segments[-1].reasons == titles:
            segments[-1] = Segment(segments[-1].text + text[begin:end], titles)
        else:
            segments.append(Segment(text[begin:end], titles))
    return segments


def _rule_highlights(hits: Sequence[Any] | None) -> list[dict[str, Any]]:
    """Site rules that fired, shaped like the classifier's reasons, so their matches are highlighted too."""
    out = []
    for hit in hits or []:
        if not isinstance(hit, Mapping):
            continue
        span = hit.get("span")
        out.append(
            {
                "attribute": str(hit.get("rule", "?")),
                "feature": str(hit.get("match", "?")),
                "spans": [span] if isinstance(span, list) else [],
            }
        )
    return out


def _reason_title(reason: Mapping[str, Any]) -> str:
    weight = reason.get("weight")
    weight_text = f" {weight:+.2f}" if isinstance(weight, int | float) else ""
    return f"{reason.get('attribute', '?')}: {reason.get('feature', '?')}{weight_text}"


def mask_ip(ip: str | None) -> str:
    if not ip:
        return "—"
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return "•••"
    if address.version == 4:
        first, second, _, _ = str(address).split(".")
        return f"{first}.{second}.•.•"
    groups = address.exploded.split(":")
    return ":".join(groups[:2]) + ":•:•"


def mask_email(email: str | None) -> str:
    if not email:
        return "—"
    local, _, domain = email.rpartition("@")
    if not local:
        return "•••"
    return f"{local[0]}•••@{domain}"


def mask_url(url: str | None) -> str:
    if not url:
        return "—"
    parts = urlsplit(url)
    if parts.scheme.lower() in ("http", "https") and parts.hostname:
        return f"{parts.hostname}/…"
    return "(not a web address)"


def web_link(url: str | None) -> str | None:
    """``url`` if it is safe to put in an href (http or https with a host), else None."""
    if not url or any(ord(char) < 32 for char in url):
        return None
    parts = urlsplit(url)
    if parts.scheme.lower() in ("http", "https") and parts.hostname:
        return url
    return None


@dataclass(frozen=True)
class ScoreBar:
    attribute: str
    value: float
    threshold: float

    @property
    def over(self) -> bool:
        return self.value >= self.threshold


@dataclass(frozen=True)
class HistoryEntry:
    comment_id: str
    status: str
    reason: str | None
    received_at: datetime
    excerpt: str
    same: str


@dataclass
class CommentView:
    comment: Comment
    segments: list[Segment]
    scores: list[ScoreBar]
    reasons: list[str]
    has_bidi: bool
    permalink: str | None
    history: list[HistoryEntry] = field(default_factory=list)
    history_counts: dict[str, int] = field(default_factory=dict)

    @property
    def masked_email(self) -> str:
        return mask_email(self.comment.author_email)

    @property
    def masked_url(self) -> str:
        return mask_url(self.comment.author_url)

    @property
    def masked_ip(self) -> str:
        return mask_ip(self.comment.author_ip)

    @property
    def reason_title(self) -> str:
        return reason_title(self.comment.reason)


def reason_title(reason: str | None) -> str:
    if not reason:
        return "—"
    if reason.startswith(policy.TOXICITY_HOLD + ":"):
        return "Held for " + reason.split(":", 1)[1].replace("_", " ")
    return REASON_TITLES.get(reason, reason)


HISTORY_LIMIT = 500
HISTORY_SHOWN = 5


def comment_views(
    session: Session, comments: Sequence[Comment], thresholds: Thresholds, sealing_key: str = ""
) -> list[CommentView]:
    views = []
    for comment in comments:
        scores = [
            ScoreBar(name, float(value), thresholds.hold_threshold(name))
            for name, value in sorted((comment.scores or {}).items())
            if isinstance(value, int | float)
        ]
        explanations = [reason for reason in comment.explanations or [] if isinstance(reason, Mapping)]
        top = sorted(explanations, key=lambda reason: -abs(float(reason.get("weight") or 0)))[:8]
        rule_hits = _rule_highlights(comment.rule_hits)
        views.append(
            CommentView(
                comment=comment,
                segments=highlight_segments(comment.text, rule_hits + explanations),
                scores=scores,
                reasons=[_reason_title(reason) for reason in rule_hits + top],
                has_bidi=bool(
                    _BIDI_CONTROLS.search(comment.text) or _BIDI_CONTROLS.search(comment.author_name)
                ),
                permalink=web_link(comment.permalink),
            )
        )
    _add_history(session, views, sealing_key)
    return views


def _add_history(session: Session, views: list[CommentView], sealing_key: str) -> None:
    """Earlier comments by the same e-mail or IP, in one query for the whole page.

    Old comments keep only a pseudonym of the address (``service.privacy``): both forms are looked up.
    """
    emails: dict[str, set[str]] = {}
    ips: dict[str, set[str]] = {}
    for view in views:
        comment = view.comment
        if comment.author_email:
            emails[comment.author_email] = lookup_values(comment.author_email, sealing_key)
        if comment.author_ip:
            ips[comment.author_ip] = lookup_values(comment.author_ip, sealing_key)
    rows = author_history(
        session, set().union(*emails.values()), set().union(*ips.values()), HISTORY_LIMIT
    )  # newest first
    entries = [HistoryEntry(row.id, row.status, row.reason, row.received_at, row.excerpt, "") for row in rows]
    by_email: dict[str, list[int]] = defaultdict(list)
    by_ip: dict[str, list[int]] = defaultdict(list)
    for index, row in enumerate(rows):
        by_email[row.author_email].append(index)
        if row.author_ip:
            by_ip[row.author_ip].append(index)
    for view in views:
        comment = view.comment
        same_email = {
            index for value in emails.get(comment.author_email, ()) for index in by_email.get(value, ())
        }
        same_ip = {index for value in ips.get(comment.author_ip or "", ()) for index in by_ip.get(value, ())}
        counts: dict[str, int] = defaultdict(int)
        for index in sorted(same_email | same_ip):
            entry = entries[index]
            if entry.comment_id == comment.id or entry.received_at >= comment.received_at:
                continue
            counts[entry.status] += 1
            if len(view.history) < HISTORY_SHOWN:
                view.history.append(replace(entry, same="e-mail" if index in same_email else "IP"))
        view.history_counts = dict(counts)


def age(value: datetime | None, now: datetime | None = None) -> str:
    if value is None:
        return "—"
    seconds = max(0, int(((now or utcnow()) - value).total_seconds()))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min"
    if seconds < 86400:
        return f"{seconds // 3600} h {seconds % 3600 // 60} min"
    return f"{seconds // 86400} d {seconds % 86400 // 3600} h"
