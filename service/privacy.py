"""Authors' personal data: erasure on request, and pseudonyms for old e-mail addresses and IPs.

- :func:`erase_author` removes the e-mail address, IP, name, URL and user agent from every comment and
  label of one author (found by e-mail address, or by its pseudonym), keeps the comments, their status
  history and the labels' judgements, and records who asked and when (``AuthorErasure``), never whose
  data it was. ``python -m service authors erase --email …`` and ``POST /v1/authors/erase``.
- :func:`apply_retention` replaces e-mail addresses and IPs older than ``Settings.retention_days`` by
  ``hmac:<hex>``: HMAC-SHA256 under the server's secret, so an author's old and new comments still
  link up (the pages look up both the address and its pseudonym) while nothing readable is left. The
  worker's reconciler runs it hourly (:func:`maybe_apply_retention`); ``authors retention`` runs it now.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from redis import Redis
from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from service.db import AuthorErasure, Comment, Label, utcnow
from service.settings import Settings

logger = logging.getLogger(__name__)

PSEUDONYM_MARK = "hmac:"
#: Rows pseudonymised per batch (one transaction each).
RETENTION_BATCH = 500
#: How often the reconciler runs retention, across every worker process.
RETENTION_INTERVAL_SECONDS = 3600


def pseudonym(value: str, sealing_key: str) -> str:
    """The keyed hash that stands for an e-mail address or IP once it is old: 45 characters."""
    normalised = value.strip().lower()
    digest = hmac.new(
        sealing_key.encode(), b"author:" + normalised.encode("utf-8", "surrogatepass"), hashlib.sha256
    )
    return PSEUDONYM_MARK + digest.hexdigest()[:40]


def is_pseudonym(value: str | None) -> bool:
    return bool(value) and value.startswith(PSEUDONYM_MARK)  # type: ignore[union-attr]


def lookup_values(value: str, sealing_key: str) -> set[str]:
    """What a stored e-mail address or IP may look like: as given, or as its pseudonym."""
    return {value, pseudonym(value, sealing_key)} if value and not is_pseudonym(value) else {value}


@dataclass(frozen=True)
class ErasureReport:
    erasure_id: int
    comments: int
    labels: int


def erase_author(
    session: Session,
    email: str,
    actor: str,
    sealing_key: str,
    api_key_id: int | None = None,
    scope: ColumnElement[bool] | None = None,
) -> ErasureReport:
    """Erase the author with this e-mail address; commits.

    Only from ``api_key_id``'s comments, if given, and only from the comments ``scope`` selects (a site
    moderator's site), if given: nobody erases another site's data.
    """
    email = email.strip()
    if not email:
        raise ValueError("an e-mail address is needed")
    hashed = pseudonym(email, sealing_key)
    same_author = or_(func.lower(Comment.author_email) == email.lower(), Comment.author_email == hashed)
    query = select(Comment.id).where(same_author)
    if api_key_id is not None:
        query = query.where(Comment.api_key_id == api_key_id)
    if scope is not None:
        query = query.where(scope)
    comment_ids = list(session.scalars(query))
    for start in range(0, len(comment_ids), RETENTION_BATCH):
        chunk = comment_ids[start : start + RETENTION_BATCH]
        session.execute(
            update(Comment)
            .where(Comment.id.in_(chunk))
            .values(author_email="", author_name="", author_url=None, author_ip=None, user_agent=None)
        )
    # The labels copied from those comments, and (for the operator or a moderator) any other label
    # carrying the address, such as imported ones.
    label_match: list[ColumnElement[bool]] = [Label.comment_id.in_(comment_ids)] if comment_ids else []
    if api_key_id is None and scope is None:
        label_match.append(or_(func.lower(Label.author_email) == email.lower(), Label.author_email == hashed))
    labels = 0
    if label_match:
        result = session.execute(
            update(Label)
            .where(or_(*label_match))
            .values(author_email=None, author_name=None, author_url=None)
        )
        labels = int(result.rowcount or 0)  # type: ignore[attr-defined]
    record = AuthorErasure(actor=actor, api_key_id=api_key_id, comments=len(comment_ids), labels=labels)
    session.add(record)
    session.commit()
    logger.info(
        "author erased erasure=%s actor=%s comments=%d labels=%d", record.id, actor, len(comment_ids), labels
    )
    return ErasureReport(record.id, len(comment_ids), labels)


@dataclass(frozen=True)
class RetentionReport:
    comments: int = 0
    labels: int = 0


def apply_retention(
    session: Session,
    settings: Settings,
    sealing_key: str,
    now: datetime | None = None,
    max_batches: int | None = None,
) -> RetentionReport:
    """Pseudonymise e-mail addresses and IPs older than ``settings.retention_days``; commits per batch.

    Stops after ``max_batches`` batches (each of comments and of labels) if given, so that a periodic
    run stays short; the next run goes on where it stopped.
    """
    if settings.retention_days <= 0:
        return RetentionReport()
    cutoff = (now or utcnow()) - timedelta(days=settings.retention_days)
    comments = labels = 0
    batches = 0
    while max_batches is None or batches < max_batches:
        done_comments = _pseudonymise_comments(session, cutoff, sealing_key)
        done_labels = _pseudonymise_labels(session, cutoff, sealing_key)
        session.commit()
        comments, labels, batches = comments + done_comments, labels + done_labels, batches + 1
        if done_comments < RETENTION_BATCH and done_labels < RETENTION_BATCH:
            break
    if comments or labels:
        logger.info(
            "retention comments=%d labels=%d older_than_days=%d", comments, labels, settings.retention_days
        )
    return RetentionReport(comments, labels)


def _readable(column: Any) -> ColumnElement[bool]:
    return and_(column.is_not(None), column != "", ~column.startswith(PSEUDONYM_MARK, autoescape=True))


def _pseudonymise_comments(session: Session, cutoff: datetime, sealing_key: str) -> int:
    rows = session.execute(
        select(Comment.id, Comment.author_email, Comment.author_ip)
        .where(
            Comment.received_at < cutoff, or_(_readable(Comment.author_email), _readable(Comment.author_ip))
        )
        .limit(RETENTION_BATCH)
    ).all()
    for comment_id, email, ip in rows:
        session.execute(
            update(Comment)
            .where(Comment.id == comment_id)
            .values(author_email=_hidden(email, sealing_key), author_ip=_hidden(ip, sealing_key))
        )
    return len(rows)


def _pseudonymise_labels(session: Session, cutoff: datetime, sealing_key: str) -> int:
    rows = session.execute(
        select(Label.id, Label.author_email)
        .where(Label.created_at < cutoff, _readable(Label.author_email))
        .limit(RETENTION_BATCH)
    ).all()
    for label_id, email in rows:
        session.execute(
            update(Label).where(Label.id == label_id).values(author_email=_hidden(email, sealing_key))
        )
    return len(rows)


def _hidden(value: str | None, sealing_key: str) -> str | None:
    if not value or is_pseudonym(value):
        return value
    return pseudonym(value, sealing_key)


def retention_lock_key(settings: Settings) -> str:
    return f"{settings.redis_prefix}:retention-lock"


def maybe_apply_retention(session: Session, connection: Redis, settings: Settings, sealing_key: str) -> bool:
    """Apply retention if no process did in the last hour (the worker's reconciler calls this)."""
    if settings.retention_days <= 0:
        return False
    if not connection.set(retention_lock_key(settings), "1", nx=True, ex=RETENTION_INTERVAL_SECONDS):
        return False
    report = apply_retention(session, settings, sealing_key, max_batches=4)
    if report.comments >= 4 * RETENTION_BATCH or report.labels >= 4 * RETENTION_BATCH:
        connection.delete(retention_lock_key(settings))  # more to do: go on next interval
    return True
