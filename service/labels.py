"""The label store: every human judgement becomes training data for the learning loop.

Moderator decisions, Akismet ``submit-spam``/``submit-ham``, Perspective ``suggestscore`` and
imported comment history all land here through :func:`record_label`. Rows are append-only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy.orm import Session

from classifier.labelstore import text_hash
from service.db import Comment, Label

# Decisions and what they teach. Attributes that a decision says nothing about are left out.
DECISION_LABELS: dict[str, dict[str, float]] = {
    "approve": {"spam": 0.0, "toxicity": 0.0},
    "spam": {"spam": 1.0},
    "abusive": {"spam": 0.0, "toxicity": 1.0},
    "ham": {"spam": 0.0},
    # Unapproving or trashing says something is wrong, not what: nothing to learn, but kept as a record.
    "hold": {},
    "trash": {},
}


def _storable(value: str | None) -> str | None:
    """``value`` without NUL characters, which PostgreSQL text cannot hold (and which say nothing).

    Akismet's and Perspective's bodies reach here uncleaned: their protocols have no such rule.
    """
    return value.replace("\x00", "") if value and "\x00" in value else value


def record_label(
    session: Session,
    *,
    source: str,
    decision: str,
    labels: Mapping[str, float] | None = None,
    comment: Comment | None = None,
    text: str | None = None,
    author_name: str | None = None,
    author_email: str | None = None,
    author_url: str | None = None,
    external_id: str | None = None,
    actor: str | None = None,
    previous_status: str | None = None,
    scores_at_time: Mapping[str, Any] | None = None,
    model_version: str | None = None,
) -> Label:
    """Append a label (the caller commits). With ``comment``, its text, author and scores are copied,
    so the label stays meaningful for training even if the comment is later deleted."""
    if labels is None:
        labels = DECISION_LABELS.get(decision, {})
    if comment is not None:
        text = comment.text if text is None else text
        author_name = author_name or comment.author_name
        author_email = author_email or comment.author_email
        author_url = author_url or comment.author_url
        external_id = external_id or comment.external_id
        previous_status = previous_status or comment.status
        scores_at_time = scores_at_time if scores_at_time is not None else comment.scores
        model_version = model_version or comment.model_version
    text, author_name, author_email, author_url, external_id, actor = (
        _storable(value) for value in (text, author_name, author_email, author_url, external_id, actor)
    )
    label = Label(
        comment_id=comment.id if comment is not None else None,
        source=source,
        decision=decision,
        labels=dict(labels),
        text=text,
        text_hash=text_hash(text) if text else None,
        author_name=author_name,
        author_email=author_email,
        author_url=author_url,
        external_id=external_id,
        actor=actor,
        previous_status=previous_status,
        scores_at_time=dict(scores_at_time) if scores_at_time is not None else None,
        model_version=model_version,
    )
    session.add(label)
    return label
