"""What a moderator's decision does: the one place that applies approve, spam, abusive and undo.

A decision appends a label (the training data), changes the comment's status through
``store.change_status`` (compare-and-set, history row, webhook outbox row), commits, and then starts
the CMS webhook. The review pages and the JSON moderation API both call :func:`decide`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from service import jobs
from service.db import APPROVED, HELD, PENDING, REJECTED, Comment, Label, StatusChange, utcnow
from service.labels import record_label
from service.policy import (
    MODERATOR_ABUSIVE,
    MODERATOR_APPROVED,
    MODERATOR_HELD,
    MODERATOR_NOT_SPAM,
    MODERATOR_SPAM,
    MODERATOR_TRASH,
    MODERATOR_UNDO,
)
from service.runtime import Runtime
from service.store import Change, StatusUpdate, change_status

logger = logging.getLogger(__name__)

APPROVE = "approve"
SPAM = "spam"
ABUSIVE = "abusive"
UNDO = "undo"
#: A CMS's own moderators have more buttons than ours (WordPress: unapprove, not spam, trash).
HOLD = "hold"
HAM = "ham"
TRASH = "trash"
#: Each decision's status and reason.
DECISIONS: dict[str, StatusUpdate] = {
    APPROVE: StatusUpdate(APPROVED, MODERATOR_APPROVED, actor=""),
    SPAM: StatusUpdate(REJECTED, MODERATOR_SPAM, actor=""),
    ABUSIVE: StatusUpdate(REJECTED, MODERATOR_ABUSIVE, actor=""),
    HOLD: StatusUpdate(HELD, MODERATOR_HELD, actor=""),
    HAM: StatusUpdate(APPROVED, MODERATOR_NOT_SPAM, actor=""),
    TRASH: StatusUpdate(REJECTED, MODERATOR_TRASH, actor=""),
}
ALL_DECISIONS = (*DECISIONS, UNDO)
#: How long a decision can be taken back with "undo".
UNDO_WINDOW = timedelta(minutes=5)
#: At most this many comments in one (bulk) decision.
MAX_BULK = 500
#: "Reject all pending from this author" covers comments still waiting for anyone's verdict.
AWAITING = (PENDING, HELD)


@dataclass(frozen=True)
class Outcome:
    """What happened to one comment. ``error`` is "not_found", "conflict" or "undo_expired"."""

    comment_id: str
    decision: str
    status: str | None
    changed: bool
    error: str | None = None
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def as_json(self) -> dict[str, object]:
        return {
            "id": self.comment_id,
            "decision": self.decision,
            "ok": self.ok,
            "changed": self.changed,
            "status": self.status,
            "reason": self.reason,
            "error": self.error,
        }


def decide(
    runtime: Runtime,
    comment_ids: Iterable[str],
    decision: str,
    actor: str,
    *,
    expected_status: str | None = None,
    api_key_id: int | None = None,
    scope: Any = None,
) -> list[Outcome]:
    """Apply ``decision`` to each comment, in one transaction, then notify the CMS.

    ``expected_status`` refuses comments no longer in that status (someone else decided first).
    ``api_key_id`` limits the decision to that CMS's own comments (others count as not found).
    """
    if decision not in ALL_DECISIONS:
        raise ValueError(f"unknown decision {decision!r}")
    ids = list(dict.fromkeys(comment_ids))[:MAX_BULK]
    outcomes: list[Outcome] = []
    changes: list[Change] = []
    with runtime.session() as session:
        query = select(Comment).where(Comment.id.in_(ids))
        if api_key_id is not None:
            query = query.where(Comment.api_key_id == api_key_id)
        if scope is not None:  # a site moderator decides only their site's comments
            query = query.where(scope)
        found = {comment.id: comment for comment in session.scalars(query)}
        for comment_id in ids:
            comment = found.get(comment_id)
            if comment is None:
                outcomes.append(Outcome(comment_id, decision, None, False, "not_found"))
                continue
            if expected_status is not None and comment.status != expected_status:
                outcomes.append(Outcome(comment_id, decision, comment.status, False, "conflict"))
                continue
            if decision == UNDO:
                outcome, change = _undo(session, comment, actor)
            else:
                outcome, change = _apply(session, comment, decision, actor)
            outcomes.append(outcome)
            if change is not None:
                changes.append(change)
        session.commit()
    jobs.after_commit(runtime, changes)
    for outcome in outcomes:
        if outcome.changed:
            logger.info(
                "comment=%s decision=%s status=%s actor=%s",
                outcome.comment_id,
                decision,
                outcome.status,
                actor,
            )
    return outcomes


def _apply(session: Session, comment: Comment, decision: str, actor: str) -> tuple[Outcome, Change | None]:
    target = DECISIONS[decision]
    previous = comment.status
    if previous == target.status and comment.reason == target.reason:
        # Already decided this way (a double click, two moderators agreeing): nothing to record.
        return Outcome(comment.id, decision, previous, False, reason=comment.reason), None
    change = change_status(
        session,
        comment,
        StatusUpdate(target.status, target.reason, actor=actor),
        expected_status=previous,
    )
    if change is None:
        return Outcome(comment.id, decision, None, False, "conflict"), None
    record_label(
        session,
        source="moderator",
        decision=decision,
        comment=comment,
        actor=actor,
        previous_status=previous,
        scores_at_time=comment.scores,
    )
    return Outcome(comment.id, decision, comment.status, True, reason=comment.reason), change


def _undo(session: Session, comment: Comment, actor: str) -> tuple[Outcome, Change | None]:
    """Restore the status a moderator's decision replaced, if the decision is recent and still current."""
    last = session.scalars(
        select(Label)
        .where(Label.comment_id == comment.id, Label.source == "moderator")
        .order_by(Label.id.desc())
        .limit(1)
    ).first()
    if last is None or last.decision not in DECISIONS or last.previous_status is None:
        return Outcome(comment.id, UNDO, comment.status, False, "nothing_to_undo"), None
    if last.created_at < utcnow() - UNDO_WINDOW:
        return Outcome(comment.id, UNDO, comment.status, False, "undo_expired"), None
    decided = DECISIONS[last.decision]
    if comment.status != decided.status or comment.reason != decided.reason:
        # Something else changed the comment since; undoing would overwrite that.
        return Outcome(comment.id, UNDO, comment.status, False, "conflict"), None
    current = comment.status
    restored_reason = _reason_before(session, comment.id, decided.reason) or MODERATOR_UNDO
    change = change_status(
        session,
        comment,
        StatusUpdate(last.previous_status, restored_reason, actor=actor),
        expected_status=current,
    )
    if change is None:
        return Outcome(comment.id, UNDO, None, False, "conflict"), None
    record_label(
        session,
        source="moderator",
        decision=UNDO,
        labels={},
        comment=comment,
        actor=actor,
        previous_status=current,
        scores_at_time=comment.scores,
    )
    return Outcome(comment.id, UNDO, comment.status, True, reason=comment.reason), change


def _reason_before(session: Session, comment_id: str, decided_reason: str) -> str | None:
    """The reason the comment had before the moderator's decision (from the status history)."""
    rows = session.scalars(
        select(StatusChange).where(StatusChange.comment_id == comment_id).order_by(StatusChange.id.desc())
    ).all()
    for index, row in enumerate(rows):
        if row.reason == decided_reason and index + 1 < len(rows):
            return rows[index + 1].reason
    return None


def pending_from_author(
    session: Session, comment: Comment, api_key_id: int | None = None, limit: int = MAX_BULK
) -> list[str]:
    """Ids of the comments still awaiting a verdict by the same author (same e-mail, or same IP)."""
    # An erased author (no e-mail left) is nobody's namesake.
    same_author = [Comment.author_email == comment.author_email] if comment.author_email else []
    if comment.author_ip:
        same_author.append(Comment.author_ip == comment.author_ip)
    if not same_author:
        return [comment.id] if comment.status in AWAITING else []
    query = select(Comment.id).where(Comment.status.in_(AWAITING), or_(*same_author))
    if api_key_id is not None:
        query = query.where(Comment.api_key_id == api_key_id)
    return list(session.scalars(query.order_by(Comment.received_at).limit(limit)))


def reject_author_pending(
    runtime: Runtime,
    comment_id: str,
    actor: str,
    decision: str = SPAM,
    api_key_id: int | None = None,
    scope: Any = None,
) -> list[Outcome]:
    """Reject (as spam, or as abusive) every comment by this comment's author that awaits a verdict."""
    if decision not in (SPAM, ABUSIVE):
        raise ValueError("authors are rejected as spam or as abusive")
    with runtime.session() as session:
        comment = session.get(Comment, comment_id)
        if comment is None or (api_key_id is not None and comment.api_key_id != api_key_id):
            return [Outcome(comment_id, decision, None, False, "not_found")]
        ids = pending_from_author(session, comment, api_key_id)
    return decide(runtime, ids, decision, actor, api_key_id=api_key_id, scope=scope)
