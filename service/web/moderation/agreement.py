"""How often the moderators overrule the model, per ISO week of the model's decision (the Overview).

Every status change is a ``StatusChange`` row. The model's decision is a comment's first change by
a ``model:`` or ``system:`` actor (``system:`` holds a comment it could not score); the moderators'
verdict is the comment's last later change by a person, ``moderator:<name>`` on these pages or
``api-key:<id>`` when a CMS reports its own moderators' decisions. An undo that restores the model's
status therefore counts as agreement.

One grouped query for both of the Overview's figures: comments are found through
``ix_comments_received_id`` (a comment is decided soon after it arrives), their history through the
``comment_id`` index.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.orm import Session, aliased

from service import policy
from service.db import APPROVED, HELD, REJECTED, Comment, Site, StatusChange
from service.sites import comment_condition, find_site

DEFAULT_WEEKS = 12
MAX_WEEKS = 104
#: A comment received this long before the first week may still have been decided in it (a backlog).
ARRIVAL_MARGIN = timedelta(days=7)
MODEL_ACTORS = ("model:", "system:")
HUMAN_ACTORS = ("moderator:", "api-key:")
#: The site rules' reason codes (``service.rules``), in the order the Overview lists them.
RULE_REASONS = (
    policy.BANNED_WORD,
    policy.SUSPECT_WORD,
    policy.EMAIL_BANNED,
    policy.EMAIL_HELD,
    policy.DISPOSABLE_EMAIL,
    policy.EMAIL_ALIAS,
    policy.LINK_BLOCKED,
    policy.AUTHOR_BANNED,
    policy.TRUSTED_AUTHOR,
    policy.RECENT_REJECTIONS,
    policy.UNSUPPORTED_LANGUAGE,
)


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


@dataclass
class WeekAgreement:
    """One ISO week: what the model decided, and how many of those the moderators later reversed."""

    week: str  #: "2026-W49"
    start: date  #: the week's Monday
    model_approved: int = 0
    approved_then_rejected: int = 0
    model_held: int = 0
    held_then_approved: int = 0
    held_then_rejected: int = 0
    model_rejected: int = 0
    rejected_then_approved: int = 0

    @property
    def approved_then_rejected_share(self) -> float | None:
        return _share(self.approved_then_rejected, self.model_approved)

    @property
    def held_then_approved_share(self) -> float | None:
        return _share(self.held_then_approved, self.model_held)

    @property
    def held_then_rejected_share(self) -> float | None:
        return _share(self.held_then_rejected, self.model_held)

    @property
    def rejected_then_approved_share(self) -> float | None:
        return _share(self.rejected_then_approved, self.model_rejected)

    def as_json(self) -> dict[str, Any]:
        return {
            "week": self.week,
            "start": self.start.isoformat(),
            "model_approved": {
                "count": self.model_approved,
                "rejected_by_moderators": self.approved_then_rejected,
                "rejected_share": self.approved_then_rejected_share,
            },
            "model_held": {
                "count": self.model_held,
                "approved_by_moderators": self.held_then_approved,
                "approved_share": self.held_then_approved_share,
                "rejected_by_moderators": self.held_then_rejected,
                "rejected_share": self.held_then_rejected_share,
            },
            "model_rejected": {
                "count": self.model_rejected,
                "approved_by_moderators": self.rejected_then_approved,
                "approved_share": self.rejected_then_approved_share,
            },
        }


def narrowed_to_site(session: Session, scope: Any, name: str | None) -> tuple[Site | None, Any]:
    """``scope`` narrowed to the site called ``name`` (None: unchanged); raises LookupError if unknown.

    Both conditions hold together, so a site moderator naming another site sees nothing of it.
    """
    if not name:
        return None, scope
    site = find_site(session, name)
    if site is None:
        raise LookupError(name)
    condition = comment_condition(site)
    return site, condition if scope is None else and_(scope, condition)


def parse_weeks(raw: str | None) -> int:
    """The ``weeks`` query argument; raises ValueError (with the message for the field) when bad."""
    if raw is None or raw == "":
        return DEFAULT_WEEKS
    try:
        weeks = int(raw)
    except ValueError:
        weeks = 0
    if not 1 <= weeks <= MAX_WEEKS:
        raise ValueError(f"a whole number from 1 to {MAX_WEEKS}")
    return weeks


def first_week_start(now: datetime, weeks: int) -> datetime:
    """Midnight UTC of the Monday ``weeks - 1`` ISO weeks before the one ``now`` is in."""
    today = now.astimezone(UTC).date()
    monday = today - timedelta(days=today.weekday()) - timedelta(weeks=weeks - 1)
    return datetime(monday.year, monday.month, monday.day, tzinfo=UTC)


def _starts_with_any(column: Any, prefixes: tuple[str, ...]) -> Any:
    return or_(*(column.startswith(prefix) for prefix in prefixes))


def _decisions(dialect: str, start: datetime, scope: Any, api_key_id: int | None) -> Any:
    """Per comment received since ``start`` (less the margin): its model change id and last human one.

    Both forms start from ``comments.received_at``, so the cost follows the window rather than the
    whole (append-only, ever-growing) history. PostgreSQL hash-joins and groups the history rows (2-3
    times faster than a look-up per comment, ``bench/agreement.py``); SQLite would instead walk the
    entire history in ``comment_id`` order to group it, so there each comment looks up its own rows.
    """
    if dialect == "postgresql":
        statement = (
            select(
                StatusChange.comment_id.label("comment_id"),
                func.min(case((_starts_with_any(StatusChange.actor, MODEL_ACTORS), StatusChange.id))).label(
                    "model_id"
                ),
                func.max(case((_starts_with_any(StatusChange.actor, HUMAN_ACTORS), StatusChange.id))).label(
                    "human_id"
                ),
            )
            .join(Comment, Comment.id == StatusChange.comment_id)
            .group_by(StatusChange.comment_id)
        )
    else:
        change = aliased(StatusChange)

        def change_id(aggregate: Any, prefixes: tuple[str, ...]) -> Any:
            return (
                select(aggregate(change.id))
                .where(change.comment_id == Comment.id, _starts_with_any(change.actor, prefixes))
                .scalar_subquery()
            )

        statement = select(
            Comment.id.label("comment_id"),
            change_id(func.min, MODEL_ACTORS).label("model_id"),
            change_id(func.max, HUMAN_ACTORS).label("human_id"),
        )
    statement = statement.where(Comment.received_at >= start - ARRIVAL_MARGIN)
    if scope is not None:  # a site moderator's site (``service.sites.moderator_scope``)
        statement = statement.where(scope)
    if api_key_id is not None:  # a CMS key sees only its own comments
        statement = statement.where(Comment.api_key_id == api_key_id)
    return statement.subquery()


def _day(session: Session, column: Any) -> Any:
    """The UTC calendar day of a timestamp as 'YYYY-MM-DD' (ISO weeks are made from days in Python)."""
    if session.get_bind().dialect.name == "postgresql":
        return func.to_char(func.timezone("UTC", column), "YYYY-MM-DD")
    return func.strftime("%Y-%m-%d", column)


def agreement_and_rule_reasons(
    session: Session,
    scope: Any = None,
    weeks: int = DEFAULT_WEEKS,
    *,
    now: datetime | None = None,
    api_key_id: int | None = None,
) -> tuple[list[WeekAgreement], dict[str, int]]:
    """Both of the Overview's figures from one grouped query: :func:`agreement_by_week` and
    :func:`rule_reason_counts`."""
    weeks = max(1, min(weeks, MAX_WEEKS))
    start = first_week_start(now or datetime.now(UTC), weeks)
    decisions = _decisions(session.get_bind().dialect.name, start, scope, api_key_id)
    model, human = aliased(StatusChange), aliased(StatusChange)
    day = _day(session, model.created_at)
    rows = session.execute(
        select(day, model.to_status, human.to_status, model.reason, func.count())
        .select_from(decisions)
        .join(model, model.id == decisions.c.model_id)
        .outerjoin(human, and_(human.id == decisions.c.human_id, human.id > model.id))
        .where(model.created_at >= start)
        .group_by(day, model.to_status, human.to_status, model.reason)
    ).all()
    table: dict[tuple[int, int], WeekAgreement] = {}
    for index in range(weeks):
        monday = (start + timedelta(weeks=index)).date()
        year, number, _ = monday.isocalendar()
        table[(year, number)] = WeekAgreement(f"{year}-W{number:02d}", monday)
    reasons = dict.fromkeys(RULE_REASONS, 0)
    for key, decided, reviewed, reason, count in rows:
        year, number, _ = date.fromisoformat(key).isocalendar()
        week = table.get((year, number))
        if week is not None:
            _add(week, decided, reviewed, count)
        if reason in reasons:
            reasons[reason] += count
    return list(table.values()), reasons


def agreement_by_week(
    session: Session,
    scope: Any = None,
    weeks: int = DEFAULT_WEEKS,
    *,
    now: datetime | None = None,
    api_key_id: int | None = None,
) -> list[WeekAgreement]:
    """The last ``weeks`` ISO weeks, oldest first (empty weeks included), of model decisions and reversals."""
    return agreement_and_rule_reasons(session, scope, weeks, now=now, api_key_id=api_key_id)[0]


def rule_reason_counts(
    session: Session,
    scope: Any = None,
    weeks: int = DEFAULT_WEEKS,
    *,
    now: datetime | None = None,
    api_key_id: int | None = None,
) -> dict[str, int]:
    """How many model decisions of the last ``weeks`` weeks a site rule decided, per rule reason."""
    return agreement_and_rule_reasons(session, scope, weeks, now=now, api_key_id=api_key_id)[1]


def _add(week: WeekAgreement, decided: str, reviewed: str | None, count: int) -> None:
    if decided == APPROVED:
        week.model_approved += count
        if reviewed == REJECTED:
            week.approved_then_rejected += count
    elif decided == HELD:
        week.model_held += count
        if reviewed == APPROVED:
            week.held_then_approved += count
        elif reviewed == REJECTED:
            week.held_then_rejected += count
    elif decided == REJECTED:
        week.model_rejected += count
        if reviewed == APPROVED:
            week.rejected_then_approved += count
