"""The moderation queues as queries: filters, keyset pages and counts (the pages and the JSON API).

A queue is a status (and, for "spam", a reason); a page is found by keyset pagination on the
``ix_comments_status_*`` indexes, so every page is as fast as the first. Cursors are opaque to
clients and checked on the way back in.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import Select, and_, case, func, literal, or_, select, tuple_
from sqlalchemy.orm import Session

from service.db import APPROVED, HELD, PENDING, REJECTED, Comment
from service.policy import SPAM_REASONS

PAGE_SIZE = 50
MAX_PAGE_SIZE = 200


@dataclass(frozen=True)
class Queue:
    name: str
    title: str


QUEUES = {
    queue.name: queue
    for queue in (
        Queue("held", "Held"),
        Queue("spam", "Rejected as spam"),
        Queue("rejected", "All rejected"),
        Queue("approved", "Approved"),
        Queue("all", "All"),
    )
}
SORTS = {"newest": "Newest first", "oldest": "Oldest first", "uncertain": "Most uncertain first"}

ATTRIBUTE_PATTERN = r"^[a-z][a-z0-9_]{0,39}$"
_ATTRIBUTE = re.compile(ATTRIBUTE_PATTERN)
#: A day as YYYY-MM-DD (RFC 3339 full-date), as ``/openapi.json`` describes ``since`` and ``until``.
DAY_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
_DAY = re.compile(DAY_PATTERN)


@dataclass(frozen=True)
class QueueFilter:
    post: str | None = None
    reason: str | None = None
    attribute: str | None = None
    min_score: float | None = None
    max_score: float | None = None
    since: datetime | None = None
    until: datetime | None = None
    search: str | None = None
    sort: str = "newest"
    limit: int = PAGE_SIZE

    def as_args(self) -> dict[str, str]:
        """Back to query-string arguments (for links that keep the filters)."""
        args = {
            "post": self.post,
            "reason": self.reason,
            "attribute": self.attribute,
            "min": _number_arg(self.min_score),
            "max": _number_arg(self.max_score),
            "since": self.since.date().isoformat() if self.since else None,
            "until": (self.until - timedelta(days=1)).date().isoformat() if self.until else None,
            "q": self.search,
            "sort": self.sort if self.sort != "newest" else None,
        }
        return {key: value for key, value in args.items() if value}


def _number_arg(value: float | None) -> str | None:
    return None if value is None else f"{value:g}"


def parse_filter(args: Mapping[str, str]) -> tuple[QueueFilter, dict[str, str]]:
    """Filters from query arguments; returns the filter (bad values dropped) and the field errors."""
    errors: dict[str, str] = {}

    def text(name: str, limit: int = 200) -> str | None:
        raw = args.get(name) or ""
        value = raw.strip()
        if len(raw) > limit:  # as sent, as the document's maxLength counts it
            errors[name] = f"at most {limit} characters"
            return None
        return value or None

    def score(name: str) -> float | None:
        raw = (args.get(name) or "").strip()
        if not raw:
            return None
        try:
            value = float(raw)
        except ValueError:
            value = -1.0
        if not 0.0 <= value <= 1.0:
            errors[name] = "a score from 0 to 1"
            return None
        return value

    def day(name: str) -> date | None:
        raw = (args.get(name) or "").strip()
        if not raw:
            return None
        try:
            if not _DAY.fullmatch(raw):
                raise ValueError(raw)
            value = date.fromisoformat(raw)
        except ValueError:
            errors[name] = "a date as YYYY-MM-DD"
            return None
        if value == date.max:  # "until" is exclusive of the next day, which does not exist
            errors[name] = "a date as YYYY-MM-DD, before 9999-12-31"
            return None
        return value

    attribute = text("attribute", 40)
    if attribute is not None and not _ATTRIBUTE.match(attribute):
        errors["attribute"] = "an attribute name such as spam or toxicity"
        attribute = None
    sort = args.get("sort") or "newest"
    if sort not in SORTS:
        errors["sort"] = f"one of {', '.join(SORTS)}"
        sort = "newest"
    limit = PAGE_SIZE
    if args.get("limit"):
        try:
            limit = int(args["limit"])
        except ValueError:
            limit = 0
        if not 1 <= limit <= MAX_PAGE_SIZE:
            errors["limit"] = f"a whole number from 1 to {MAX_PAGE_SIZE}"
            limit = PAGE_SIZE
    since, until = day("since"), day("until")
    min_score, max_score = score("min"), score("max")
    if (min_score is not None or max_score is not None) and attribute is None and "attribute" not in errors:
        errors["attribute"] = "choose the attribute the score range applies to"
    return (
        QueueFilter(
            post=text("post"),
            reason=text("reason", 64),
            attribute=attribute,
            min_score=min_score,
            max_score=max_score,
            since=datetime(since.year, since.month, since.day, tzinfo=UTC) if since else None,
            until=datetime(until.year, until.month, until.day, tzinfo=UTC) + timedelta(days=1)
            if until
            else None,
            search=text("q"),
            sort=sort,
            limit=limit,
        ),
        errors,
    )


def queue_condition(name: str) -> Any:
    if name == "held":
        return Comment.status == HELD
    if name == "spam":
        return and_(Comment.status == REJECTED, Comment.reason.in_(SPAM_REASONS))
    if name == "rejected":
        return Comment.status == REJECTED
    if name == "approved":
        return Comment.status == APPROVED
    return None


def _sort_columns(sort: str) -> list[Any]:
    if sort == "uncertain":
        # Unscored comments (no uncertainty) count as the most uncertain: they need a human most.
        return [func.coalesce(Comment.uncertainty, 1.0), Comment.received_at, Comment.id]
    return [Comment.received_at, Comment.id]


def encode_cursor(sort: str, comment: Comment) -> str:
    values: list[Any] = [comment.received_at.isoformat(), comment.id]
    if sort == "uncertain":
        values.insert(0, 1.0 if comment.uncertainty is None else comment.uncertainty)
    raw = json.dumps([sort, *values], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(sort: str, cursor: str) -> list[Any]:
    """The sort key values a cursor carries; raises ValueError for a cursor of another sort or forged."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        decoded = json.loads(raw)
    except (binascii.Error, ValueError, RecursionError) as error:  # RecursionError: nested too deep
        raise ValueError("bad cursor") from error
    if not isinstance(decoded, list) or not decoded or decoded[0] != sort:
        raise ValueError("the cursor belongs to another sort order")
    values = decoded[1:]
    expected = 3 if sort == "uncertain" else 2
    if len(values) != expected:
        raise ValueError("bad cursor")
    try:
        if sort == "uncertain":
            values[0] = float(values[0])
        values[-2] = datetime.fromisoformat(str(values[-2]))
        values[-1] = str(values[-1])
    except (TypeError, ValueError) as error:
        raise ValueError("bad cursor") from error
    if values[-2].tzinfo is None:  # every cursor we write carries the offset
        raise ValueError("bad cursor")
    return values


def filtered_query(
    statement: Select[Any],
    queue: str,
    criteria: QueueFilter,
    api_key_id: int | None = None,
    scope: Any = None,
) -> Select[Any]:
    condition = queue_condition(queue)
    if condition is not None:
        statement = statement.where(condition)
    if scope is not None:  # a site moderator's site (``service.sites.moderator_scope``)
        statement = statement.where(scope)
    if api_key_id is not None:
        statement = statement.where(Comment.api_key_id == api_key_id)
    if criteria.post:
        statement = statement.where(Comment.post_id == criteria.post)
    if criteria.reason:
        statement = statement.where(Comment.reason == criteria.reason)
    if criteria.attribute:
        score = Comment.scores[criteria.attribute].as_float()
        statement = statement.where(score.is_not(None))
        if criteria.min_score is not None:
            statement = statement.where(score >= criteria.min_score)
        if criteria.max_score is not None:
            statement = statement.where(score <= criteria.max_score)
    if criteria.since:
        statement = statement.where(Comment.received_at >= criteria.since)
    if criteria.until:
        statement = statement.where(Comment.received_at < criteria.until)
    if criteria.search:
        statement = statement.where(
            or_(
                Comment.text.icontains(criteria.search, autoescape=True),
                Comment.author_name.icontains(criteria.search, autoescape=True),
                Comment.author_email.icontains(criteria.search, autoescape=True),
            )
        )
    return statement


@dataclass
class QueuePage:
    comments: list[Comment]
    next_cursor: str | None


def list_queue(
    session: Session,
    queue: str,
    criteria: QueueFilter,
    cursor: str | None = None,
    api_key_id: int | None = None,
    scope: Any = None,
) -> QueuePage:
    """One page of a queue, by keyset pagination (fast at any depth). Raises ValueError on a bad cursor."""
    columns = _sort_columns(criteria.sort)
    # Ids first, then the rows: the sort and the keyset condition run on an index alone (see the
    # ix_comments_status_* indexes), and only one page of wide rows (text, scores) is read.
    statement = filtered_query(select(Comment.id), queue, criteria, api_key_id, scope)
    if cursor:
        values = decode_cursor(criteria.sort, cursor)
        bound = [literal(value, column.type) for value, column in zip(values, columns, strict=True)]
        if criteria.sort == "oldest":
            statement = statement.where(tuple_(*columns) > tuple_(*bound))
        else:
            statement = statement.where(tuple_(*columns) < tuple_(*bound))
    order = [column.asc() if criteria.sort == "oldest" else column.desc() for column in columns]
    ids = list(session.scalars(statement.order_by(*order).limit(criteria.limit + 1)))
    found = {comment.id: comment for comment in session.scalars(select(Comment).where(Comment.id.in_(ids)))}
    rows = [found[comment_id] for comment_id in ids if comment_id in found]
    next_cursor = None
    if len(rows) > criteria.limit:
        rows = rows[: criteria.limit]
        next_cursor = encode_cursor(criteria.sort, rows[-1])
    return QueuePage(rows, next_cursor)


def queue_counts(session: Session, api_key_id: int | None = None, scope: Any = None) -> dict[str, int]:
    """How many comments each queue holds (one grouped query)."""
    is_spam = case((Comment.reason.in_(SPAM_REASONS), 1), else_=0)
    statement = select(Comment.status, is_spam, func.count()).group_by(Comment.status, is_spam)
    if scope is not None:
        statement = statement.where(scope)
    if api_key_id is not None:
        statement = statement.where(Comment.api_key_id == api_key_id)
    counts = dict.fromkeys((*QUEUES, PENDING), 0)
    for status, spam, count in session.execute(statement):
        counts["all"] += count
        if status in (HELD, APPROVED, REJECTED, PENDING):
            counts[status] += count
        if status == REJECTED and spam:
            counts["spam"] += count
    return counts


@dataclass(frozen=True)
class HistoryRow:
    id: str
    author_email: str
    author_ip: str | None
    status: str
    reason: str | None
    received_at: datetime
    excerpt: str


def author_history(session: Session, emails: set[str], ips: set[str], limit: int) -> list[HistoryRow]:
    """The newest ``limit`` comments by any of these e-mail addresses or IPs, newest first."""
    conditions = []
    if emails:
        conditions.append(Comment.author_email.in_(emails))
    if ips:
        conditions.append(Comment.author_ip.in_(ips))
    if not conditions:
        return []
    rows = session.execute(
        select(
            Comment.id,
            Comment.author_email,
            Comment.author_ip,
            Comment.status,
            Comment.reason,
            Comment.received_at,
            func.substr(Comment.text, 1, 100),
        )
        .where(or_(*conditions))
        .order_by(Comment.received_at.desc())
        .limit(limit)
    ).all()
    return [HistoryRow(*row) for row in rows]


# --- the overview's counts ---------------------------------------------------------------------------


@dataclass(frozen=True)
class HourBar:
    start: datetime
    counts: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.counts.values())


OVERVIEW_HOURS = 24
#: The statuses the overview counts, in the order its chart stacks them.
OVERVIEW_STATUSES = (APPROVED, HELD, REJECTED, PENDING)


def hourly_counts(
    session: Session, now: datetime, hours: int = OVERVIEW_HOURS, scope: Any = None
) -> list[HourBar]:
    """Comments received per hour and status, for the last ``hours`` hours (UTC)."""
    start = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=hours - 1)
    if session.get_bind().dialect.name == "postgresql":
        hour = func.to_char(func.timezone("UTC", Comment.received_at), "YYYY-MM-DD HH24")
    else:
        hour = func.strftime("%Y-%m-%d %H", Comment.received_at)
    rows = session.execute(
        select(hour, Comment.status, func.count())
        .where(Comment.received_at >= start, *([scope] if scope is not None else []))
        .group_by(hour, Comment.status)
    ).all()
    buckets = {
        (start + timedelta(hours=index)).strftime("%Y-%m-%d %H"): dict.fromkeys(OVERVIEW_STATUSES, 0)
        for index in range(hours)
    }
    for key, status, count in rows:
        if key in buckets and status in buckets[key]:
            buckets[key][status] += count
    return [
        HourBar(datetime.strptime(key, "%Y-%m-%d %H").replace(tzinfo=UTC), counts)
        for key, counts in buckets.items()
    ]


def oldest_held_at(session: Session, scope: Any = None) -> datetime | None:
    statement = select(func.min(Comment.received_at)).where(Comment.status == HELD)
    return session.scalar(statement.where(scope) if scope is not None else statement)
