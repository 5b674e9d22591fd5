"""The Site page: a site's rule lists, thresholds, a "try it" box and the audit log.

Everyone with access to the site sees it; only admins get the forms that change it, and the POST
routes check the role again (a hidden form is not a permission). Plain forms, with the session's CSRF
token like every page; every value shown is escaped by the templates.
"""

from __future__ import annotations

from typing import Any

from flask import Response, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from service.db import DEFAULT_SITE, Comment, Site
from service.errors import Forbidden, NotFound
from service.jobs import preview_verdict
from service.rules import RULE_KINDS
from service.sites import (
    MAX_CSV_BYTES,
    OPTION_FIELDS,
    THRESHOLD_FIELDS,
    SiteError,
    add_entries,
    audit_log,
    can_edit,
    can_view,
    export_csv,
    find_site,
    import_csv,
    list_sites,
    moderator_scope,
    remove_entry,
    rule_entries,
    site_options,
    site_thresholds,
    update_settings,
)
from service.web.context import current_runtime
from service.web.moderation.queries import QUEUES, queue_counts
from service.web.moderation.session import actor, current_moderator

MAX_TRY_CHARS = 10_000


def _site(name: str, edit: bool = False) -> Site:
    moderator = current_moderator()
    with current_runtime().session() as db:
        site = find_site(db, name)
    if site is None or not can_view(moderator, site):
        raise NotFound(f"No site {name!r}.")
    if edit and not can_edit(moderator, site):
        raise Forbidden("Only admins change a site's rules and thresholds.")
    return site


def home() -> ResponseReturnValue:
    """The moderator's own site, or the default site for moderators of every site."""
    moderator = current_moderator()
    with current_runtime().session() as db:
        sites = [site for site in list_sites(db) if can_view(moderator, site)]
    name = next((site.name for site in sites if site.id == moderator.site_id), None) or DEFAULT_SITE
    return redirect(url_for("moderation.site_page", name=name))


def _render(
    name: str, errors: dict[str, str] | None = None, tried: dict[str, Any] | None = None, status: int = 200
):
    runtime = current_runtime()
    moderator = current_moderator()
    with runtime.session() as db:
        site = find_site(db, name)
        assert site is not None
        overrides = site.settings or {}
        thresholds = site_thresholds(runtime.settings.thresholds, overrides)
        options = site_options(overrides)
        body = render_template(
            "moderation/site.html",
            site=site,
            sites=[item.name for item in list_sites(db) if can_view(moderator, item)],
            lists=rule_entries(db, site),
            kinds=RULE_KINDS,
            thresholds={field: getattr(thresholds, field) for field in THRESHOLD_FIELDS},
            options={field: getattr(options, field) for field in OPTION_FIELDS},
            overrides=overrides,
            audit=audit_log(db, site, limit=50),
            editable=can_edit(moderator, site),
            errors=errors or {},
            tried=tried,
            form=request.form if request.method == "POST" else {},
            max_csv_bytes=MAX_CSV_BYTES,
            queues=QUEUES,
            counts=queue_counts(db, scope=moderator_scope(db, moderator)),
            moderator=moderator,
            site_page=True,
        )
    return body, status


def site_page(name: str) -> ResponseReturnValue:
    _site(name)
    return _render(name)


def _back(name: str) -> ResponseReturnValue:
    return redirect(url_for("moderation.site_page", name=name))


def add_rules(name: str) -> ResponseReturnValue:
    site = _site(name, edit=True)
    kind = request.form.get("list", "")
    lines = [line for line in (request.form.get("entries") or "").splitlines() if line.strip()]
    labels = [f"entry {index}" for index in range(1, len(lines) + 1)]
    with current_runtime().session() as db:
        try:
            add_entries(db, db.get(Site, site.id), kind, lines, actor(), labels=labels)
        except SiteError as error:
            return _render(name, {"entries": str(error), **error.fields}, status=422)
    return _back(name)


def remove_rule(name: str) -> ResponseReturnValue:
    site = _site(name, edit=True)
    with current_runtime().session() as db:
        try:
            remove_entry(
                db,
                db.get(Site, site.id),
                request.form.get("list", ""),
                request.form.get("entry", ""),
                actor(),
            )
        except SiteError as error:
            return _render(name, {"remove": str(error), **error.fields}, status=422)
    return _back(name)


def _form_settings() -> tuple[dict[str, Any], dict[str, str]]:
    """Typed settings from the form; an empty field means "the default"."""
    changes: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for field, kind in {**THRESHOLD_FIELDS, **OPTION_FIELDS}.items():
        if kind is bool:
            changes[field] = request.form.get(field) == "on"
            continue
        raw = (request.form.get(field) or "").strip()
        if not raw:
            changes[field] = None
            continue
        try:
            if kind is list:
                changes[field] = [item.strip() for item in raw.split(",") if item.strip()]
            else:
                changes[field] = kind(raw)
        except ValueError:
            errors[field] = "a number"
    return changes, errors


def save_settings(name: str) -> ResponseReturnValue:
    site = _site(name, edit=True)
    changes, errors = _form_settings()
    if errors:
        return _render(name, errors, status=422)
    runtime = current_runtime()
    with runtime.session() as db:
        try:
            update_settings(db, db.get(Site, site.id), changes, runtime.settings.thresholds, actor())
        except SiteError as error:
            return _render(name, {"settings": str(error), **error.fields}, status=422)
    return _back(name)


def import_rules(name: str) -> ResponseReturnValue:
    site = _site(name, edit=True)
    upload = request.files.get("file")
    if upload is None:
        return _render(name, {"file": "choose a CSV file"}, status=422)
    raw = upload.read(MAX_CSV_BYTES + 1)
    with current_runtime().session() as db:
        try:
            import_csv(db, db.get(Site, site.id), raw, actor())
        except SiteError as error:
            return _render(name, {"file": str(error), **error.fields}, status=422)
    return _back(name)


def export_rules(name: str) -> Response:
    site = _site(name)
    with current_runtime().session() as db:
        body = export_csv(db, site)
    response = Response(body, mimetype="text/csv")
    response.headers["Content-Disposition"] = "attachment; filename=rules.csv"
    return response


def try_rules(name: str) -> ResponseReturnValue:
    site = _site(name)
    text = request.form.get("text") or ""
    email = (request.form.get("email") or "")[:320]
    if not text.strip() or len(text) > MAX_TRY_CHARS:
        return _render(name, {"text": f"1 to {MAX_TRY_CHARS} characters"}, status=422)
    sample = Comment(text=text, author_name="", author_email=email, author_ip=None)
    verdict, extra = preview_verdict(current_runtime(), site.id, sample)
    tried = {"status": verdict.status, "reason": verdict.reason, "hits": verdict.hits, **extra}
    return _render(name, tried=tried)
