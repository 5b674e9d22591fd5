"""Reading and writing comments, their status history and the webhook outbox.

Every status change goes through :func:`change_status`, which updates the comment only if it is still
in the status the caller saw (a compare-and-set), appends a ``StatusChange`` row and writes the webhook
outbox row, all in the caller's transaction. That is what makes verdicts exactly-once: a comment
scored twice (a retried job, a reconciler re-enqueue) gets its verdict recorded by whichever write
commits first, and the other write changes nothing.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, Table, bindparam, func, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from classifier.labelstore import text_hash
from service.db import (
    PENDING,
    ApiKey,
    Comment,
    RowInserter,
    StatusChange,
    WebhookDelivery,
    new_id,
    utcnow,
)

logger = logging.getLogger(__name__)

WEBHOOK_EVENT_VERDICT = "comment.verdict"
#: A delivery handed to the queue is not handed again before this; the reconciler retries after.
WEBHOOK_VISIBILITY = timedelta(seconds=60)


@dataclass(frozen=True)
class StatusUpdate:
    """What a verdict or a moderator's decision sets on a comment."""

    status: str
    reason: str
    actor: str
    scores: Mapping[str, float] | None = None
    explanations: Sequence[Mapping[str, Any]] | None = None
    model_version: str | None = None
    uncertainty: float | None = None
    #: The site rules that fired (``RuleHit.to_dict()``), and the detected language: set with scores.
    rule_hits: Sequence[Mapping[str, Any]] | None = None
    language: str | None = None


@dataclass(frozen=True, slots=True)
class NewComment:
    """A comment just stored as pending: what the API answers with, without an ORM object.

    Building a mapped ``Comment`` (instance state, attribute events) took about 4% of an ingest
    request's CPU, for an object nothing on that path needs.
    """

    id: str
    external_id: str | None
    status: str
    received_at: datetime
    text: str


def find_by_external_id(session: Session, api_key_id: int, external_id: str) -> Comment | None:
    return session.scalars(
        select(Comment).where(Comment.api_key_id == api_key_id, Comment.external_id == external_id)
    ).first()


def create_comment(
    session: Session, api_key: ApiKey, fields: Mapping[str, Any], autocommit_engine: Engine | None = None
) -> tuple[Comment | NewComment, bool]:
    """Store a new comment as pending, durably, before returning. Returns ``(comment, created)``.

    Posting an ``external_id`` this key already used returns the stored comment (``created`` False),
    so a CMS that retries a timed-out request never creates a duplicate. Without an ``external_id``
    this is :func:`insert_comment`, which needs no session.
    """
    external_id = fields.get("external_id")
    if external_id is not None:
        existing = find_by_external_id(session, api_key.id, external_id)
        if existing is not None:
            return existing, False
    engine = autocommit_engine or cast(Engine, session.get_bind())  # sessions here are bound to an Engine
    try:
        return insert_comment(engine, api_key.id, fields, api_key.site_id), True
    except IntegrityError:
        # Two requests with the same external_id raced; the other one won. Return its comment.
        if external_id is not None:
            session.rollback()
            existing = find_by_external_id(session, api_key.id, external_id)
            if existing is not None:
                return existing, False
        raise


def create_decided_comment(
    session: Session, api_key: ApiKey, fields: Mapping[str, Any], decided: StatusUpdate
) -> tuple[Comment, Change | None]:
    """Store a comment that already has its verdict (scored in the request), in one transaction.

    For endpoints that decide while the client waits (the Coral phase): the row, its first history
    row (``from_status`` pending) and its webhook outbox row are committed together, so the comment
    is never seen half-decided and costs one commit. Requires an ``external_id``: when this key
    already stored it, nothing is written and the stored comment is returned with ``None``.
    """
    external_id = fields["external_id"]
    existing = find_by_external_id(session, api_key.id, external_id)
    if existing is not None:
        return existing, None
    now = utcnow()
    comment = Comment(
        id=new_id(),
        api_key_id=api_key.id,
        text_hash=text_hash(fields["text"]),
        received_at=now,
        status=decided.status,
        reason=decided.reason,
        scores=dict(decided.scores) if decided.scores is not None else None,
        explanations=list(decided.explanations) if decided.explanations is not None else None,
        model_version=decided.model_version,
        uncertainty=decided.uncertainty,
        decided_at=now,
        decided_by=decided.actor,
        updated_at=now,
        **({"site_id": api_key.site_id} if api_key.site_id is not None else {}),
        **_comment_columns(fields),
    )
    session.add(comment)
    session.add(_history_row(comment.id, PENDING, decided, now))
    try:
        session.flush()  # the comment first: the outbox row refers to it
        delivery = _add_webhook(session, comment)
        session.commit()
    except IntegrityError:
        # Another request stored the same external_id first (two identical requests raced).
        session.rollback()
        existing = find_by_external_id(session, api_key.id, external_id)
        if existing is None:
            raise
        return existing, None
    return comment, Change(comment, delivery)


def _history_row(comment_id: str, from_status: str, update: StatusUpdate, now: datetime) -> StatusChange:
    """The status history row of one change: who moved the comment from what to what, and why."""
    return StatusChange(
        comment_id=comment_id,
        from_status=from_status,
        to_status=update.status,
        reason=update.reason,
        actor=update.actor,
        model_version=update.model_version,
        scores=dict(update.scores) if update.scores is not None else None,
        created_at=now,
    )


def insert_comment(
    engine: Engine, api_key_id: int, fields: Mapping[str, Any], site_id: int | None = None
) -> NewComment:
    """INSERT a new pending comment and return it once it is committed (no duplicate check).

    The row is written by one INSERT through :class:`~service.db.RowInserter`, on an autocommit
    engine in the API: ingest is bounded by per-request CPU and database round trips, and a single
    statement is atomic on its own, so BEGIN/COMMIT would only add two more round trips. Arrival is
    recorded on the row itself (``received_at``, ``api_key_id``); the status history starts with the
    first verdict.
    """
    now = utcnow()
    values = {
        "id": new_id(),
        "api_key_id": api_key_id,
        "text_hash": text_hash(fields["text"]),
        "received_at": now,
        # Set before the enqueue, not after it, to keep ingest at one write: if the enqueue fails
        # (Redis down), the reconciler finds the comment once this is older than its grace period.
        "enqueued_at": now,
        "status": PENDING,
        "updated_at": now,
        **({"site_id": site_id} if site_id is not None else {}),
        **_comment_columns(fields),
    }
    _insert_comment_row(engine, values)
    return NewComment(values["id"], values.get("external_id"), PENDING, now, values["text"])


_comment_inserters: weakref.WeakKeyDictionary[Engine, RowInserter] = weakref.WeakKeyDictionary()


def _insert_comment_row(engine: Engine, values: dict[str, Any]) -> None:
    """INSERT one comment; once more on a fresh connection if the pooled one had been dropped.

    Autocommit engines do not ping connections before use (a round trip per request), so a
    connection the database closed (a restart, an idle timeout) surfaces here. It is invalidated,
    and one retry gets a new connection. The row keeps its id, so if the first attempt committed
    before the connection died, the retry finds that row, and the comment is stored once.
    """
    inserter = _comment_inserters.get(engine)
    if inserter is None:
        inserter = _comment_inserters[engine] = RowInserter(engine, cast(Table, Comment.__table__))
    for attempt in (1, 2):
        try:
            inserter.insert(values)
            return
        except IntegrityError:
            if attempt == 2 and _comment_exists(engine, values["id"]):
                return
            raise
        except DBAPIError as error:
            if attempt == 2 or not error.connection_invalidated:
                raise
            logger.warning("database connection dropped; retrying the insert on a new one")


def _comment_exists(engine: Engine, comment_id: str) -> bool:
    with engine.connect() as connection:
        return connection.scalar(select(Comment.id).where(Comment.id == comment_id)) is not None


_COMMENT_FIELDS = {
    "external_id": "external_id",
    "post_id": "post_id",
    "permalink": "permalink",
    "parent_id": "parent_id",
    "name": "author_name",
    "email": "author_email",
    "author_url": "author_url",
    "author_ip": "author_ip",
    "user_agent": "user_agent",
    "referrer": "referrer",
    "language": "language",
    "text": "text",
    "meta": "meta",
    "created_at": "created_at",
}


def _comment_columns(fields: Mapping[str, Any]) -> dict[str, Any]:
    return {
        column: fields.get(name) for name, column in _COMMENT_FIELDS.items() if fields.get(name) is not None
    }


def get_comment(session: Session, comment_id: str) -> Comment | None:
    return session.get(Comment, comment_id)


def pending_comments(session: Session, comment_ids: Iterable[str]) -> list[Comment]:
    """The comments among ``comment_ids`` that still await a verdict, in a stable order.

    Their API keys come in the same query and prime the session's webhook-key cache, so recording
    the verdicts looks up no key: a lookup was one more round trip per batch, and it autoflushed.
    """
    ids = list(dict.fromkeys(comment_ids))
    if not ids:
        return []
    rows = session.execute(
        select(Comment, ApiKey)
        .outerjoin(ApiKey, ApiKey.id == Comment.api_key_id)
        .where(Comment.id.in_(ids), Comment.status == PENDING)
        .order_by(Comment.id)
    )
    keys = _webhook_keys(session)
    comments = []
    for comment, api_key in rows:
        if comment.api_key_id is not None:
            keys.setdefault(comment.api_key_id, api_key)
        comments.append(comment)
    return comments


def _status_update(*columns: str) -> Any:
    """``UPDATE comments SET <columns> WHERE id = :comment_id AND status = :expected_status``."""
    return (
        update(Comment)
        .where(Comment.id == bindparam("comment_id"), Comment.status == bindparam("expected_status"))
        .values({column: bindparam(column) for column in columns})
    )


_STATUS_COLUMNS = ("status", "reason", "decided_at", "decided_by", "updated_at")
_SET_STATUS = _status_update(*_STATUS_COLUMNS)
_SET_STATUS_AND_SCORES = _status_update(
    *_STATUS_COLUMNS,
    "scores",
    "explanations",
    "model_version",
    "uncertainty",
    "rule_hits",
    "detected_language",
)


@dataclass(frozen=True)
class Change:
    """A status change that was written; ``delivery`` is its webhook outbox row, if the key has one."""

    comment: Comment
    delivery: WebhookDelivery | None


def change_status(
    session: Session,
    comment: Comment,
    update_to: StatusUpdate,
    expected_status: str | None = None,
) -> Change | None:
    """Set a comment's status if it is still ``expected_status`` (default: what ``comment`` holds).

    Appends the history row and the webhook outbox row in the same transaction. Returns None, and
    writes nothing, when another writer changed the status first. The caller commits.
    """
    expected = comment.status if expected_status is None else expected_status
    now = utcnow()
    statement, values = _status_values(update_to, now)
    # On the session's connection (Core), not through the ORM: no autoflush per call, so the history
    # and outbox rows of a whole batch are inserted together at commit. The statement is built once.
    result: CursorResult = session.connection().execute(
        statement, {**values, "comment_id": comment.id, "expected_status": expected}
    )
    if result.rowcount != 1:
        return None
    return _record_change(session, comment, update_to, expected, values, now)


def change_statuses(
    session: Session, updates: Sequence[tuple[Comment, StatusUpdate]], expected_status: str
) -> list[Change] | None:
    """:func:`change_status` for a batch of comments that are all ``expected_status``, in one go.

    The compare-and-set UPDATEs go out as one ``executemany`` (one round trip in psycopg's pipeline
    mode) rather than one statement and round trip per comment. Returns None when fewer rows matched
    than comments were given, which happens only when another writer decided one of them first: the
    rows that did match are then changed in the caller's transaction, so the caller must roll back
    (and may fall back to :func:`change_status` one by one, which tells which comment was taken).
    """
    now = utcnow()
    by_statement: dict[Any, list[tuple[Comment, StatusUpdate, dict[str, Any]]]] = {}
    for comment, update_to in updates:
        statement, values = _status_values(update_to, now)
        by_statement.setdefault(statement, []).append((comment, update_to, values))
    connection = session.connection()
    for statement, group in by_statement.items():
        parameters = [
            {**values, "comment_id": comment.id, "expected_status": expected_status}
            for comment, _, values in group
        ]
        result: CursorResult = connection.execute(statement, parameters)
        if result.rowcount != len(group):
            return None
    return [
        _record_change(session, comment, update_to, expected_status, values, now)
        for group in by_statement.values()
        for comment, update_to, values in group
    ]


def _status_values(update_to: StatusUpdate, now: datetime) -> tuple[Any, dict[str, Any]]:
    """The UPDATE statement for a change and the column values it sets."""
    values: dict[str, Any] = {
        "status": update_to.status,
        "reason": update_to.reason,
        "decided_at": now,
        "decided_by": update_to.actor,
        "updated_at": now,
    }
    if update_to.scores is None and update_to.rule_hits is None:
        return _SET_STATUS, values
    values["scores"] = dict(update_to.scores) if update_to.scores is not None else None
    values["rule_hits"] = list(update_to.rule_hits or [])
    values["detected_language"] = update_to.language
    values["explanations"] = list(update_to.explanations or [])
    values["model_version"] = update_to.model_version
    values["uncertainty"] = update_to.uncertainty
    return _SET_STATUS_AND_SCORES, values


def _record_change(
    session: Session,
    comment: Comment,
    update_to: StatusUpdate,
    from_status: str,
    values: dict[str, Any],
    now: datetime,
) -> Change:
    """What follows a written status change: its history row, the loaded object, the outbox row."""
    session.add(_history_row(comment.id, from_status, update_to, now))
    for key, value in values.items():
        # The row already holds these values: update the object without making it dirty, or the
        # next flush would write the same UPDATE a second time.
        set_committed_value(comment, key, value)
    return Change(comment, _add_webhook(session, comment))


def _webhook_keys(session: Session) -> dict[int, ApiKey | None]:
    """The session's API keys by id, for webhook rows (see :func:`pending_comments`)."""
    cache: dict[int, ApiKey | None] = session.info.setdefault("webhook_keys", {})
    return cache


def _webhook_key(session: Session, api_key_id: int) -> ApiKey | None:
    # Cached per session: a batch of verdicts mostly shares one key, and a lookup per verdict
    # would also autoflush the pending history rows one by one.
    cache = _webhook_keys(session)
    if api_key_id not in cache:
        cache[api_key_id] = session.get(ApiKey, api_key_id)
    return cache[api_key_id]


def _add_webhook(session: Session, comment: Comment) -> WebhookDelivery | None:
    if comment.api_key_id is None:
        return None
    api_key = _webhook_key(session, comment.api_key_id)
    if api_key is None or not api_key.webhook_url:
        return None
    delivery = WebhookDelivery(
        comment_id=comment.id,
        api_key_id=api_key.id,
        url=api_key.webhook_url,
        event=WEBHOOK_EVENT_VERDICT,
        payload={"event": WEBHOOK_EVENT_VERDICT, "comment": comment_summary(comment)},
        next_attempt_at=utcnow() + WEBHOOK_VISIBILITY,
    )
    session.add(delivery)
    return delivery


def comment_summary(comment: Comment) -> dict[str, Any]:
    """The verdict as the CMS sees it, in webhooks and in ``GET /v1/comments/<id>``."""
    return {
        "id": comment.id,
        "external_id": comment.external_id,
        "post_id": comment.post_id,
        "status": comment.status,
        "reason": comment.reason,
        "scores": comment.scores or {},
        "reasons": comment.explanations or [],
        "rules": comment.rule_hits or [],
        "language": comment.detected_language,
        "model_version": comment.model_version,
        "received_at": _iso(comment.received_at),
        "decided_at": _iso(comment.decided_at),
        "decided_by": _public_actor(comment.decided_by),
    }


def pending_summary(comment: Comment | NewComment) -> dict[str, Any]:
    """What the API answers for a comment still waiting for its verdict (``202 Accepted``)."""
    return {
        "id": comment.id,
        "external_id": comment.external_id,
        "status": comment.status,
        "received_at": _iso(comment.received_at),
    }


def _public_actor(actor: str | None) -> str | None:
    # The CMS learns whether a model or a person decided, not which moderator.
    if actor is None:
        return None
    return actor.split(":", 1)[0]


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def stale_pending_ids(session: Session, older_than: datetime, limit: int) -> list[str]:
    """Pending comments last enqueued before ``older_than``: their job was lost or never sent."""
    return list(
        session.scalars(
            select(Comment.id)
            .where(Comment.status == PENDING, Comment.enqueued_at < older_than)
            .order_by(Comment.enqueued_at)
            .limit(limit)
        )
    )


def mark_enqueued(session: Session, comment_ids: Sequence[str]) -> None:
    if comment_ids:
        session.execute(
            update(Comment)
            .where(Comment.id.in_(list(comment_ids)))
            .values(enqueued_at=utcnow())
            .execution_options(synchronize_session=False)
        )


def pending_backlog(session: Session, cap: int) -> tuple[int, datetime | None]:
    """How many comments are pending (counted up to ``cap``) and the oldest one's ``received_at``.

    Both use the (status, received_at) index; the cap keeps a huge backlog from making the count slow.
    """
    capped = select(Comment.id).where(Comment.status == PENDING).limit(cap).subquery()
    count = session.scalar(select(func.count()).select_from(capped)) or 0
    oldest = session.scalar(
        select(Comment.received_at).where(Comment.status == PENDING).order_by(Comment.received_at).limit(1)
    )
    return int(count), oldest
