"""The moderators' review pages: login, the queues, the overview, and the pages' JSON actions.

This module holds the blueprint and its routes; what they show comes from ``queries`` (the queues),
``presenters`` (how a comment is shown), ``charts`` (the overview) and ``models_page`` (the Models
page), and who may see them from ``session``. Templates and static files live beside this module.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, Response, jsonify, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from sqlalchemy import select

from service.db import Comment, utcnow
from service.decisions import ALL_DECISIONS, reject_author_pending
from service.decisions import decide as apply_decision
from service.errors import InvalidComment, NotFound
from service.keys import server_secret
from service.moderators import LoginGuard, authenticate
from service.sites import can_view, list_sites, moderator_scope
from service.web.context import current_runtime
from service.web.moderation import models_page, site_page, thresholds_page
from service.web.moderation.agreement import agreement_and_rule_reasons, narrowed_to_site
from service.web.moderation.charts import CHART_COLOURS, chart_rects
from service.web.moderation.presenters import REASON_TITLES, age, comment_views, reason_title
from service.web.moderation.queries import (
    OVERVIEW_STATUSES,
    QUEUES,
    SORTS,
    hourly_counts,
    list_queue,
    oldest_held_at,
    parse_filter,
    queue_counts,
)
from service.web.moderation.session import (
    actor,
    csrf_token,
    current_moderator,
    end_session,
    require_login,
    safe_next,
    start_session,
)

logger = logging.getLogger(__name__)

bp = Blueprint(
    "moderation",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/moderate/static",
)
bp.before_request(require_login)

#: The pages' policy: no inline script or style at all, so injected markup could not run even if
#: escaping ever failed.
PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
_PAGE_HEADERS = {
    "Content-Security-Policy": PAGE_CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}


def page_headers(endpoint: str | None) -> dict[str, str]:
    """The security headers of this blueprint's answers (the app's one header hook sets them)."""
    if endpoint == "moderation.static":
        return dict(_PAGE_HEADERS)
    # The pages show personal data: keep them out of shared and back-button caches.
    return {**_PAGE_HEADERS, "Cache-Control": "no-store"}


@bp.app_context_processor
def _template_helpers() -> dict[str, Any]:
    return {"csrf_token": csrf_token, "age": age, "reason_title": reason_title}


# --- login ---------------------------------------------------------------------------------------


@bp.get("/login")
def login_form() -> str:
    return render_template("moderation/login.html", next=request.args.get("next", ""), error=None)


@bp.post("/login")
def login() -> ResponseReturnValue:
    username = (request.form.get("username") or "").strip()[:100]
    password = (request.form.get("password") or "")[:1000]
    target = request.form.get("next")
    runtime = current_runtime()
    guard = LoginGuard(runtime.redis, runtime.settings.redis_prefix)
    # The client's address (ProxyFix has put X-Forwarded-For's here when TRUSTED_PROXIES is set).
    address = request.remote_addr or "unknown"
    with runtime.session() as db:
        result = authenticate(db, guard, username, password, address)
    if result.moderator is None:
        logger.info("login failed outcome=%s", result.outcome)
        if result.outcome == "throttled":
            # Said the same way for every name, real or not: only this address waits, not the account.
            message = "Too many failed logins from your address: wait a few minutes and try again."
            page = render_template("moderation/login.html", next=target or "", error=message)
            return page, 429, {"Retry-After": str(result.retry_after)}
        message = "Wrong username or password."
        return render_template("moderation/login.html", next=target or "", error=message), 401
    start_session(result.moderator)
    logger.info("login moderator=%s", result.moderator.id)
    return redirect(safe_next(target))


@bp.post("/logout")
def logout() -> ResponseReturnValue:
    end_session()
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
            scope = moderator_scope(db, current_moderator())
            page = list_queue(db, name, criteria, cursor, scope=scope)
        except ValueError:
            errors["cursor"] = "that page link is no longer valid; showing the first page"
            cursor = None
            page = list_queue(db, name, criteria, scope=scope)
        counts = queue_counts(db, scope=scope)
        views = comment_views(db, page.comments, runtime.settings.thresholds, server_secret(runtime.settings))
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
        moderator=current_moderator(),
        reasons=sorted(REASON_TITLES),
        # Built once, not per comment: url_for is a noticeable share of rendering 50 comments.
        comments_url=url_for("moderation.contact", comment_id="-").removesuffix("-/contact"),
    )


@bp.get("/moderate/counts")
def counts() -> Response:
    with current_runtime().session() as db:
        return jsonify(queue_counts(db, scope=moderator_scope(db, current_moderator())))


@bp.get("/moderate/comments/<comment_id>/contact")
def contact(comment_id: str) -> Response:
    """The unmasked e-mail, URL and IP, fetched only when the moderator asks (and logged)."""
    with current_runtime().session() as db:
        scope = moderator_scope(db, current_moderator())
        query = select(Comment).where(Comment.id == comment_id)
        comment = db.scalars(query.where(scope) if scope is not None else query).first()
    if comment is None:
        raise NotFound("No such comment.")
    logger.info("contact revealed comment=%s moderator=%s", comment.id, current_moderator().id)
    return jsonify({"email": comment.author_email, "url": comment.author_url, "ip": comment.author_ip})


def _json_object_or_none() -> dict[str, Any] | None:
    """The JSON body if it is an object; None if it is not, cannot be parsed, or is nested too deep."""
    try:
        body = request.get_json(silent=True)
    except RecursionError:
        return None
    return body if isinstance(body, dict) else None


def _decision_request() -> tuple[list[str], str, bool]:
    """``(ids, decision, wants_json)`` from a JSON body (scripts) or a form (no JavaScript)."""
    if request.is_json:
        body = _json_object_or_none()
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
    with runtime.session() as db:
        scope = moderator_scope(db, current_moderator())
    outcomes = apply_decision(runtime, ids, decision, actor(), scope=scope)
    if not wants_json:
        return redirect(safe_next(request.form.get("next")))
    with runtime.session() as db:
        totals = queue_counts(db, scope=scope)
    return jsonify({"results": [outcome.as_json() for outcome in outcomes], "counts": totals})


@bp.post("/moderate/comments/<comment_id>/reject-author")
def reject_author(comment_id: str) -> ResponseReturnValue:
    body = _json_object_or_none() if request.is_json else request.form
    if body is None:
        raise InvalidComment("Send a JSON object.", {"body": "a JSON object"})
    decision = body.get("decision") or "spam"
    if decision not in ("spam", "abusive"):
        raise InvalidComment("Authors are rejected as spam or as abusive.", {"decision": "spam or abusive"})
    runtime = current_runtime()
    with runtime.session() as db:
        scope = moderator_scope(db, current_moderator())
    outcomes = reject_author_pending(runtime, comment_id, actor(), decision, scope=scope)
    if outcomes and outcomes[0].error == "not_found" and len(outcomes) == 1:
        raise NotFound("No such comment.")
    if not request.is_json:
        return redirect(safe_next(request.form.get("next")))
    with runtime.session() as db:
        totals = queue_counts(db, scope=scope)
    return jsonify({"results": [outcome.as_json() for outcome in outcomes], "counts": totals})


# --- the overview --------------------------------------------------------------------------------


@bp.get("/moderate/overview")
def overview() -> str:
    now = utcnow()
    moderator = current_moderator()
    with current_runtime().session() as db:
        sites = [site.name for site in list_sites(db) if can_view(moderator, site)]
        # A moderator of every site sees them together, or one site with ?site=.
        name = request.args.get("site") or None
        try:
            site, scope = narrowed_to_site(db, moderator_scope(db, moderator), name)
        except LookupError:
            raise NotFound(f"No site {name!r}.") from None
        if site is not None and not can_view(moderator, site):
            raise NotFound(f"No site {name!r}.")
        bars = hourly_counts(db, now, scope=scope)
        counts = queue_counts(db, scope=scope)
        oldest_held = oldest_held_at(db, scope=scope)
        agreement, rule_reasons = agreement_and_rule_reasons(db, scope, now=now)
    totals = {status: sum(bar.counts[status] for bar in bars) for status in OVERVIEW_STATUSES}
    everything = sum(totals.values())
    shares = {status: (totals[status] / everything if everything else 0.0) for status in OVERVIEW_STATUSES}
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
        statuses=OVERVIEW_STATUSES,
        oldest_held=oldest_held,
        oldest_held_age=age(oldest_held, now) if oldest_held else None,
        moderator=moderator,
        # Newest week first: the one an editor looks at after changing a threshold.
        agreement=list(reversed(agreement)),
        rule_reasons=rule_reasons,
        sites=sites,
        site=site.name if site is not None else None,
    )


# The threshold suggestion from the moderators' labels, linked from the overview's agreement table.
bp.add_url_rule("/moderate/thresholds", view_func=thresholds_page.thresholds)

# The Models page (its own module: versions, cards, the guard's reports), on this blueprint.
bp.add_url_rule("/moderate/models", view_func=models_page.models)
bp.add_url_rule("/moderate/models/<version>", view_func=models_page.model)
bp.add_url_rule("/moderate/reports/<name>", view_func=models_page.report)

# The Site page (its own module: rule lists, thresholds, try it, audit log), on this blueprint.
bp.add_url_rule("/moderate/site", view_func=site_page.home)
bp.add_url_rule("/moderate/sites/<name>", view_func=site_page.site_page)
bp.add_url_rule("/moderate/sites/<name>/rules", view_func=site_page.add_rules, methods=["POST"])
bp.add_url_rule("/moderate/sites/<name>/rules/remove", view_func=site_page.remove_rule, methods=["POST"])
bp.add_url_rule("/moderate/sites/<name>/settings", view_func=site_page.save_settings, methods=["POST"])
bp.add_url_rule("/moderate/sites/<name>/import", view_func=site_page.import_rules, methods=["POST"])
bp.add_url_rule("/moderate/sites/<name>/rules.csv", view_func=site_page.export_rules)
bp.add_url_rule("/moderate/sites/<name>/try", view_func=site_page.try_rules, methods=["POST"])
