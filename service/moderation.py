"""The moderators' review pages: login, the queues, the overview, and the page's JSON actions.

Pages need a session login (a CMS API key or a moderator token opens nothing here). Every POST carries
the session's CSRF token, as a form field or an ``X-CSRF-Token`` header. Comment text is hostile: the
templates autoescape it, never mark it safe, and isolate it from the page's own text direction.

The queue query (:func:`list_queue`, :func:`queue_counts`) is shared with the JSON moderation API.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import json
import logging
import re
import secrets
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Response,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.typing import ResponseReturnValue
from sqlalchemy import Select, and_, case, func, literal, or_, select, tuple_
from sqlalchemy.orm import Session

from service.app import current_runtime
from service.db import APPROVED, HELD, PENDING, REJECTED, Comment, Moderator, utcnow
from service.decisions import ALL_DECISIONS, reject_author_pending
from service.decisions import decide as apply_decision
from service.errors import Forbidden, InvalidComment, NotFound, Unauthorized
from service.moderators import authenticate
from service.settings import Thresholds

logger = logging.getLogger(__name__)

bp = Blueprint(
    "moderation",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/moderate/static",
)

#: The pages' policy: no inline script or style at all, so injected markup could not run even if
#: escaping ever failed.
PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
#: A login lasts at most this long, however active the moderator is.
SESSION_MAX_AGE = timedelta(hours=12)
PAGE_SIZE = 50
MAX_PAGE_SIZE = 200

SPAM_REASONS = ("spam_reject", "moderator_spam")


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

REASON_TITLES = {
    "spam_reject": "Spam (rejected by the model)",
    "spam_hold": "Possibly spam",
    "too_many_links": "Too many links",
    "unscored": "Not scored (the model was unavailable)",
    "clean": "Clean",
    "received": "Received",
    "moderator_approved": "Approved by a moderator",
    "moderator_spam": "Spam (moderator)",
    "moderator_abusive": "Abusive (moderator)",
}

_ATTRIBUTE = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
_BIDI_CONTROLS = re.compile("[\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c]")


# --- the queue query, shared with the JSON API ---------------------------------------------------


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
        value = (args.get(name) or "").strip()
        if len(value) > limit:
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
            return date.fromisoformat(raw[:10])
        except ValueError:
            errors[name] = "a date as YYYY-MM-DD"
            return None

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
    values: list[Any] = [_aware(comment.received_at).isoformat(), comment.id]
    if sort == "uncertain":
        values.insert(0, 1.0 if comment.uncertainty is None else comment.uncertainty)
    raw = json.dumps([sort, *values], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(sort: str, cursor: str) -> list[Any]:
    """The sort key values a cursor carries; raises ValueError for a cursor of another sort or forged."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        decoded = json.loads(raw)
    except (binascii.Error, ValueError) as error:
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
        values[-2] = _aware(datetime.fromisoformat(str(values[-2])))
        values[-1] = str(values[-1])
    except (TypeError, ValueError) as error:
        raise ValueError("bad cursor") from error
    return values


def filtered_query(
    statement: Select[Any], queue: str, criteria: QueueFilter, api_key_id: int | None = None
) -> Select[Any]:
    condition = queue_condition(queue)
    if condition is not None:
        statement = statement.where(condition)
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
) -> QueuePage:
    """One page of a queue, by keyset pagination (fast at any depth). Raises ValueError on a bad cursor."""
    columns = _sort_columns(criteria.sort)
    # Ids first, then the rows: the sort and the keyset condition run on an index alone (see the
    # ix_comments_status_* indexes), and only one page of wide rows (text, scores) is read.
    statement = filtered_query(select(Comment.id), queue, criteria, api_key_id)
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


def queue_counts(session: Session, api_key_id: int | None = None) -> dict[str, int]:
    """How many comments each queue holds (one grouped query)."""
    is_spam = case((Comment.reason.in_(SPAM_REASONS), 1), else_=0)
    statement = select(Comment.status, is_spam, func.count()).group_by(Comment.status, is_spam)
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


# --- how a comment is shown ----------------------------------------------------------------------


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
    if reason.startswith("toxicity_hold:"):
        return "Held for " + reason.split(":", 1)[1].replace("_", " ")
    return REASON_TITLES.get(reason, reason)


HISTORY_LIMIT = 500
HISTORY_SHOWN = 5


def comment_views(session: Session, comments: Sequence[Comment], thresholds: Thresholds) -> list[CommentView]:
    views = []
    for comment in comments:
        scores = [
            ScoreBar(name, float(value), thresholds.hold_threshold(name))
            for name, value in sorted((comment.scores or {}).items())
            if isinstance(value, int | float)
        ]
        explanations = [reason for reason in comment.explanations or [] if isinstance(reason, Mapping)]
        top = sorted(explanations, key=lambda reason: -abs(float(reason.get("weight") or 0)))[:8]
        views.append(
            CommentView(
                comment=comment,
                segments=highlight_segments(comment.text, explanations),
                scores=scores,
                reasons=[_reason_title(reason) for reason in top],
                has_bidi=bool(
                    _BIDI_CONTROLS.search(comment.text) or _BIDI_CONTROLS.search(comment.author_name)
                ),
                permalink=web_link(comment.permalink),
            )
        )
    _add_history(session, views)
    return views


def _add_history(session: Session, views: list[CommentView]) -> None:
    """Earlier comments by the same e-mail or IP, in one query for the whole page."""
    emails = {view.comment.author_email for view in views if view.comment.author_email}
    ips = {view.comment.author_ip for view in views if view.comment.author_ip}
    if not emails and not ips:
        return
    conditions = []
    if emails:
        conditions.append(Comment.author_email.in_(emails))
    if ips:
        conditions.append(Comment.author_ip.in_(ips))
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
        .limit(HISTORY_LIMIT)
    ).all()
    entries = [
        HistoryEntry(row[0], row[3], row[4], _aware(row[5]), row[6], "") for row in rows
    ]  # newest first
    by_email: dict[str, list[int]] = defaultdict(list)
    by_ip: dict[str, list[int]] = defaultdict(list)
    for index, row in enumerate(rows):
        by_email[row[1]].append(index)
        if row[2]:
            by_ip[row[2]].append(index)
    for view in views:
        comment = view.comment
        received = _aware(comment.received_at)
        same_email = set(by_email.get(comment.author_email, ()))
        same_ip = set(by_ip.get(comment.author_ip, ())) if comment.author_ip else set()
        counts: dict[str, int] = defaultdict(int)
        for index in sorted(same_email | same_ip):
            entry = entries[index]
            if entry.comment_id == comment.id or entry.received_at >= received:
                continue
            counts[entry.status] += 1
            if len(view.history) < HISTORY_SHOWN:
                view.history.append(replace(entry, same="e-mail" if index in same_email else "IP"))
        view.history_counts = dict(counts)


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def age(value: datetime | None, now: datetime | None = None) -> str:
    if value is None:
        return "—"
    seconds = max(0, int(((now or utcnow()) - _aware(value)).total_seconds()))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min"
    if seconds < 86400:
        return f"{seconds // 3600} h {seconds % 3600 // 60} min"
    return f"{seconds // 86400} d {seconds % 86400 // 3600} h"


# --- login, sessions and CSRF --------------------------------------------------------------------


def csrf_token() -> str:
    token = session.get("csrf")
    if not token:
        token = secrets.token_urlsafe(32)
        session["csrf"] = token
    return token


def _check_csrf() -> None:
    sent = request.headers.get("X-CSRF-Token") or request.form.get("csrf_token") or ""
    expected = session.get("csrf") or ""
    if not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
        raise Forbidden("The form has expired or did not come from this site; reload the page.")


def _fingerprint(moderator: Moderator) -> str:
    # A new password (or a disabled account) ends the sessions that were opened with the old one.
    return hashlib.sha256(moderator.password_hash.encode()).hexdigest()[:16]


def safe_next(target: str | None) -> str:
    """Where to go after login: only a path on this site under /moderate, else the held queue."""
    default = url_for("moderation.queue_page")
    if not target or len(target) > 2000:
        return default
    if any(ord(char) < 32 or char == "\\" for char in target):
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return default
    if not (parts.path == "/moderate" or parts.path.startswith("/moderate/")):
        return default
    return target


_PUBLIC = {"moderation.login", "moderation.login_form", "moderation.static"}
#: Endpoints that answer JSON to scripts, so a missing login is a 401 rather than a redirect.
_JSON_ENDPOINTS = {
    "moderation.decisions",
    "moderation.reject_author",
    "moderation.contact",
    "moderation.counts",
}


@bp.before_request
def _authenticate() -> ResponseReturnValue | None:
    if request.method not in ("GET", "HEAD", "OPTIONS"):
        _check_csrf()
    if request.endpoint in _PUBLIC:
        return None
    moderator = _session_moderator()
    if moderator is None:
        session.pop("moderator_id", None)
        if request.endpoint in _JSON_ENDPOINTS or request.method != "GET":
            raise Unauthorized("Log in first.")
        return redirect(url_for("moderation.login_form", next=request.full_path.rstrip("?")))
    g.moderator = moderator
    return None


def _session_moderator() -> Moderator | None:
    moderator_id = session.get("moderator_id")
    login_at = session.get("login_at", 0)
    if not moderator_id or time.time() - login_at > SESSION_MAX_AGE.total_seconds():
        return None
    with current_runtime().session() as db:
        moderator = db.get(Moderator, moderator_id)
    if moderator is None or moderator.disabled:
        return None
    if not hmac.compare_digest(session.get("auth", ""), _fingerprint(moderator)):
        return None
    return moderator


@bp.after_request
def _page_headers(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = PAGE_CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "same-origin"
    if request.endpoint != "moderation.static":
        # The pages show personal data: keep them out of shared and back-button caches.
        response.headers["Cache-Control"] = "no-store"
    return response


@bp.app_context_processor
def _template_helpers() -> dict[str, Any]:
    return {"csrf_token": csrf_token, "age": age, "reason_title": reason_title}


def actor() -> str:
    return f"moderator:{g.moderator.username}"


@bp.get("/login")
def login_form() -> str:
    return render_template("moderation/login.html", next=request.args.get("next", ""), error=None)


@bp.post("/login")
def login() -> ResponseReturnValue:
    username = (request.form.get("username") or "").strip()[:100]
    password = (request.form.get("password") or "")[:1000]
    target = request.form.get("next")
    with current_runtime().session() as db:
        result = authenticate(db, username, password)
    if result.moderator is None:
        logger.info("login failed outcome=%s", result.outcome)
        message = "Wrong username or password."
        if result.outcome == "locked":
            message = "Too many failed logins: this account is locked for a while."
        return render_template("moderation/login.html", next=target or "", error=message), 401
    moderator = result.moderator
    session.clear()
    session.permanent = False
    session["moderator_id"] = moderator.id
    session["auth"] = _fingerprint(moderator)
    session["login_at"] = int(time.time())
    session["csrf"] = secrets.token_urlsafe(32)
    logger.info("login moderator=%s", moderator.id)
    return redirect(safe_next(target))


@bp.post("/logout")
def logout() -> ResponseReturnValue:
    session.clear()
    return redirect(url_for("moderation.login_form"))


# --- pages ---------------------------------------------------------------------------------------


@bp.get("/moderate/")
@bp.get("/moderate/queue/<name>")
def queue_page(name: str = "held") -> str:
    if name not in QUEUES:
        raise NotFound(f"No queue {name!r}.")
    criteria, errors = parse_filter(request.args)
    cursor = request.args.get("cursor") or None
    runtime = current_runtime()
    with runtime.session() as db:
        try:
            page = list_queue(db, name, criteria, cursor)
        except ValueError:
            errors["cursor"] = "that page link is no longer valid; showing the first page"
            cursor = None
            page = list_queue(db, name, criteria)
        counts = queue_counts(db)
        views = comment_views(db, page.comments, runtime.settings.thresholds)
    return render_template(
        "moderation/queue.html",
        queue=QUEUES[name],
        queues=QUEUES,
        sorts=SORTS,
        counts=counts,
        views=views,
        criteria=criteria,
        filter_args=criteria.as_args(),
        errors=errors,
        cursor=cursor,
        next_cursor=page.next_cursor,
        moderator=g.moderator,
        reasons=sorted(REASON_TITLES),
        # Built once, not per comment: url_for is a noticeable share of rendering 50 comments.
        comments_url=url_for("moderation.contact", comment_id="-").removesuffix("-/contact"),
    )


@bp.get("/moderate/counts")
def counts() -> Response:
    with current_runtime().session() as db:
        return jsonify(queue_counts(db))


@bp.get("/moderate/comments/<comment_id>/contact")
def contact(comment_id: str) -> Response:
    """The unmasked e-mail, URL and IP, fetched only when the moderator asks (and logged)."""
    with current_runtime().session() as db:
        comment = db.get(Comment, comment_id)
    if comment is None:
        raise NotFound("No such comment.")
    logger.info("contact revealed comment=%s moderator=%s", comment.id, g.moderator.id)
    return jsonify({"email": comment.author_email, "url": comment.author_url, "ip": comment.author_ip})


def _decision_request() -> tuple[list[str], str, bool]:
    """``(ids, decision, wants_json)`` from a JSON body (scripts) or a form (no JavaScript)."""
    if request.is_json:
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            raise InvalidComment("Send a JSON object.", {"body": "a JSON object"})
        ids = body.get("ids")
        decision = body.get("decision")
        wants_json = True
    else:
        ids = request.form.getlist("ids")
        decision = request.form.get("decision")
        wants_json = False
    if not isinstance(ids, list) or not ids or not all(isinstance(item, str) and item for item in ids):
        raise InvalidComment("Choose at least one comment.", {"ids": "a list of comment ids"})
    if decision not in ALL_DECISIONS:
        raise InvalidComment("Unknown decision.", {"decision": f"one of {', '.join(ALL_DECISIONS)}"})
    return ids, decision, wants_json


@bp.post("/moderate/decisions")
def decisions() -> ResponseReturnValue:
    ids, decision, wants_json = _decision_request()
    runtime = current_runtime()
    outcomes = apply_decision(runtime, ids, decision, actor())
    if not wants_json:
        return redirect(safe_next(request.form.get("next")))
    with runtime.session() as db:
        totals = queue_counts(db)
    return jsonify({"results": [outcome.as_json() for outcome in outcomes], "counts": totals})


@bp.post("/moderate/comments/<comment_id>/reject-author")
def reject_author(comment_id: str) -> ResponseReturnValue:
    body = request.get_json(silent=True) if request.is_json else request.form
    decision = (body or {}).get("decision") or "spam"
    if decision not in ("spam", "abusive"):
        raise InvalidComment("Authors are rejected as spam or as abusive.", {"decision": "spam or abusive"})
    runtime = current_runtime()
    outcomes = reject_author_pending(runtime, comment_id, actor(), decision)
    if outcomes and outcomes[0].error == "not_found" and len(outcomes) == 1:
        raise NotFound("No such comment.")
    if not request.is_json:
        return redirect(safe_next(request.form.get("next")))
    with runtime.session() as db:
        totals = queue_counts(db)
    return jsonify({"results": [outcome.as_json() for outcome in outcomes], "counts": totals})


# --- the overview --------------------------------------------------------------------------------


@dataclass(frozen=True)
class HourBar:
    start: datetime
    counts: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.counts.values())


OVERVIEW_HOURS = 24
CHART_STATUSES = (APPROVED, HELD, REJECTED, PENDING)
CHART_COLOURS = {APPROVED: "#2e7d32", HELD: "#e0a100", REJECTED: "#c62828", PENDING: "#9e9e9e"}


def hourly_counts(session: Session, now: datetime, hours: int = OVERVIEW_HOURS) -> list[HourBar]:
    start = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=hours - 1)
    if session.get_bind().dialect.name == "postgresql":
        hour = func.to_char(func.timezone("UTC", Comment.received_at), "YYYY-MM-DD HH24")
    else:
        hour = func.strftime("%Y-%m-%d %H", Comment.received_at)
    rows = session.execute(
        select(hour, Comment.status, func.count())
        .where(Comment.received_at >= start)
        .group_by(hour, Comment.status)
    ).all()
    buckets = {
        (start + timedelta(hours=index)).strftime("%Y-%m-%d %H"): dict.fromkeys(CHART_STATUSES, 0)
        for index in range(hours)
    }
    for key, status, count in rows:
        if key in buckets and status in buckets[key]:
            buckets[key][status] += count
    return [
        HourBar(datetime.strptime(key, "%Y-%m-%d %H").replace(tzinfo=UTC), counts)
        for key, counts in buckets.items()
    ]


@dataclass(frozen=True)
class ChartRect:
    x: float
    y: float
    width: float
    height: float
    colour: str
    title: str


def chart_rects(bars: Sequence[HourBar], width: int, height: int) -> tuple[list[ChartRect], int]:
    """Stacked bars (approved, held, rejected, pending) per hour, scaled to the busiest hour."""
    peak = max((bar.total for bar in bars), default=0) or 1
    slot = width / max(len(bars), 1)
    rects = []
    for index, bar in enumerate(bars):
        y = float(height)
        for status in CHART_STATUSES:
            count = bar.counts.get(status, 0)
            if not count:
                continue
            size = count / peak * height
            y -= size
            rects.append(
                ChartRect(
                    x=round(index * slot + 1, 2),
                    y=round(y, 2),
                    width=round(slot - 2, 2),
                    height=round(size, 2),
                    colour=CHART_COLOURS[status],
                    title=f"{bar.start:%H}:00 UTC — {count} {status} of {bar.total}",
                )
            )
    return rects, peak


@bp.get("/moderate/overview")
def overview() -> str:
    now = utcnow()
    with current_runtime().session() as db:
        bars = hourly_counts(db, now)
        counts = queue_counts(db)
        oldest_held = db.scalar(select(func.min(Comment.received_at)).where(Comment.status == HELD))
    totals = {status: sum(bar.counts[status] for bar in bars) for status in CHART_STATUSES}
    everything = sum(totals.values())
    shares = {status: (totals[status] / everything if everything else 0.0) for status in CHART_STATUSES}
    rects, peak = chart_rects(bars, width=720, height=200)
    return render_template(
        "moderation/overview.html",
        queues=QUEUES,
        counts=counts,
        bars=bars,
        rects=rects,
        peak=peak,
        totals=totals,
        shares=shares,
        everything=everything,
        colours=CHART_COLOURS,
        statuses=CHART_STATUSES,
        oldest_held=oldest_held,
        oldest_held_age=age(oldest_held, now) if oldest_held else None,
        moderator=g.moderator,
    )


from service import models_page  # noqa: E402, F401 - registers the Models page routes on bp
