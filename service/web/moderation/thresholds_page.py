"""The suggested hold thresholds (``python -m classifier thresholds``) as a page, from the Overview.

The same suggestion as the command, over the moderators' labels of the moderator's own site and the
scores recorded when those comments were decided (the page never loads a model to rescore: the
command's ``--rescore`` does). Changing a threshold stays on the Site page, for admins.
"""

from __future__ import annotations

from typing import Any

from flask import render_template, request
from sqlalchemy import select

from classifier import thresholds as suggestions
from classifier.labelstore import LabelStoreError, load_site_labels
from service.db import DEFAULT_SITE, Comment, Site
from service.errors import NotFound
from service.sites import can_view, moderator_scope, site_thresholds
from service.web.context import current_runtime
from service.web.moderation.agreement import narrowed_to_site
from service.web.moderation.queries import QUEUES, queue_counts
from service.web.moderation.session import current_moderator


def _target(raw: str | None) -> tuple[float, str | None]:
    """The target approved error from ``?target=`` (default 1 %), and the error message if it is bad."""
    if not raw:
        return suggestions.DEFAULT_TARGET, None
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0.0 < value < 1.0:
        return suggestions.DEFAULT_TARGET, "target: a share between 0 and 1, e.g. 0.01"
    return value, None


def thresholds() -> tuple[str, int]:
    runtime = current_runtime()
    moderator = current_moderator()
    target, error = _target(request.args.get("target"))
    name = request.args.get("site") or None
    with runtime.session() as db:
        try:
            site, scope = narrowed_to_site(db, moderator_scope(db, moderator), name)
        except LookupError:
            raise NotFound(f"No site {name!r}.") from None
        if site is not None and not can_view(moderator, site):
            raise NotFound(f"No site {name!r}.")
        if site is None and moderator.site_id is not None:
            site = db.get(Site, moderator.site_id)
        overrides = (site.settings or {}) if site is not None else {}
        counts = queue_counts(db, scope=scope)
    site_name = site.name if site is not None else DEFAULT_SITE
    current = site_thresholds(runtime.settings.thresholds, overrides)

    def own_site(columns: Any) -> Any:
        return columns.comment_id.in_(select(Comment.id).where(scope))

    problem = None
    rows: list[Any] = []
    try:
        rows = load_site_labels(runtime.engine, where=own_site if scope is not None else None)
    except LabelStoreError as failure:
        problem = str(failure)
    scored = [row for row in rows if row.scores_at_time]
    found = suggestions.suggest_all(
        [row.example.labels for row in scored], [dict(row.scores_at_time) for row in scored], target
    )
    chosen = {item.attribute: item.suggested for item in found if item.suggested is not None}
    combined = suggestions.combined_human_share([dict(row.scores_at_time) for row in scored], chosen)
    body = render_template(
        "moderation/thresholds.html",
        target=target,
        error=error or problem,
        suggestions=found,
        current={item.attribute: current.hold_threshold(item.attribute) for item in found},
        combined=combined if chosen else None,
        labelled=len(rows),
        unscored=len(rows) - len(scored),
        site_name=site_name,
        chosen_site=name,
        moderator=moderator,
        queues=QUEUES,
        counts=counts,
    )
    return body, 422 if error else 200
