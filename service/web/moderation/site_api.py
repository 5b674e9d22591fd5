"""The JSON API for a site's rules and thresholds: read, edit (admins only), CSV, "try it", audit.

Moderator tokens only (``Authorization: Bearer mt_...``): a CMS API key moderates comments, it does
not set a site's policy. A site moderator sees only their own site; every site is a 404 otherwise.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request

from service.db import Comment, Moderator, Site, SiteAudit
from service.errors import (
    Forbidden,
    InvalidComment,
    NotFound,
    PayloadTooLarge,
    Unauthorized,
    UnsupportedMediaType,
)
from service.jobs import preview_verdict
from service.moderators import find_by_token
from service.rules import RULE_KINDS
from service.sites import (
    MAX_CSV_BYTES,
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
    remove_entry,
    rule_entries,
    site_options,
    site_thresholds,
    update_settings,
)
from service.web.auth import BEARER_CHALLENGE, bearer_token
from service.web.context import current_runtime
from service.web.validation import read_json_object

bp = Blueprint("site_api", __name__, url_prefix="/v1/sites")

#: Longest sample the "try it" endpoint takes (as a comment).
MAX_TRY_CHARS = 10_000


def _moderator() -> Moderator:
    token = bearer_token()
    if token is None:
        raise Unauthorized(
            "Send a moderator token as 'Authorization: Bearer <token>'.", headers=BEARER_CHALLENGE
        )
    with current_runtime().session() as session:
        moderator = find_by_token(session, token)
    if moderator is None:
        raise Unauthorized("Site rules need a moderator's token.", headers=BEARER_CHALLENGE)
    return moderator


def _site(name: str, edit: bool = False) -> tuple[Moderator, str]:
    """Check access to the site; returns the moderator and the site's name."""
    moderator = _moderator()
    with current_runtime().session() as session:
        site = find_site(session, name)
        if site is None or not can_view(moderator, site):
            raise NotFound(f"No site {name!r}.")
        if edit and not can_edit(moderator, site):
            raise Forbidden("Only admins change a site's rules and thresholds.")
    return moderator, name


def _actor(moderator: Moderator) -> str:
    return f"moderator:{moderator.username}"


def site_view(session: Any, site: Site) -> dict[str, Any]:
    overrides = site.settings or {}
    thresholds = site_thresholds(current_runtime().settings.thresholds, overrides)
    options = site_options(overrides)
    return {
        "name": site.name,
        "lists": rule_entries(session, site),
        "overrides": overrides,
        "thresholds": {name: getattr(thresholds, name) for name in THRESHOLD_FIELDS},
        "options": {**options.__dict__, "supported_languages": list(options.supported_languages)},
        "version": site.rules_version,
    }


def audit_view(row: SiteAudit) -> dict[str, Any]:
    return {
        "actor": row.actor,
        "action": row.action,
        "before": row.before,
        "after": row.after,
        "at": row.created_at.isoformat(),
    }


def _site_error(error: SiteError) -> InvalidComment:
    return InvalidComment(str(error), error.fields)


@bp.get("")
def get_sites() -> Response:
    moderator = _moderator()
    with current_runtime().session() as session:
        names = [site.name for site in list_sites(session) if can_view(moderator, site)]
    return jsonify({"sites": names})


@bp.get("/<name>")
def get_site(name: str) -> Response:
    _site(name)
    with current_runtime().session() as session:
        return jsonify(site_view(session, find_site(session, name)))


@bp.post("/<name>/rules")
def post_rules(name: str) -> tuple[Response, int]:
    moderator, _ = _site(name, edit=True)
    body = read_json_object(request)
    kind, entries = body.get("list"), body.get("entries")
    if kind not in RULE_KINDS:
        raise InvalidComment("Unknown list.", {"list": f"one of {', '.join(RULE_KINDS)}"})
    if not isinstance(entries, list) or not entries or not all(isinstance(item, str) for item in entries):
        raise InvalidComment("Give the entries.", {"entries": "a non-empty list of strings"})
    with current_runtime().session() as session:
        try:
            added = add_entries(session, find_site(session, name), kind, entries, _actor(moderator))
        except SiteError as error:
            raise _site_error(error) from None
    return jsonify({"list": kind, "added": added}), 201


@bp.delete("/<name>/rules")
def delete_rule(name: str) -> Response:
    moderator, _ = _site(name, edit=True)
    body = read_json_object(request)
    kind, entry = body.get("list"), body.get("entry")
    if kind not in RULE_KINDS:
        raise InvalidComment("Unknown list.", {"list": f"one of {', '.join(RULE_KINDS)}"})
    if not isinstance(entry, str):
        raise InvalidComment("Give the entry.", {"entry": "a string"})
    with current_runtime().session() as session:
        try:
            removed = remove_entry(session, find_site(session, name), kind, entry, _actor(moderator))
        except SiteError as error:
            raise _site_error(error) from None
    return jsonify({"list": kind, "removed": removed})


@bp.get("/<name>/rules.csv")
def get_rules_csv(name: str) -> Response:
    _site(name)
    with current_runtime().session() as session:
        body = export_csv(session, find_site(session, name))
    response = Response(body, mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="rules-{name}.csv"'.encode(
        "ascii", "replace"
    ).decode()
    return response


def read_rule_file() -> bytes:
    """The raw CSV body, up to ``MAX_CSV_BYTES`` (more than the API's usual body limit)."""
    if request.mimetype not in ("text/csv", "text/plain", "application/octet-stream"):
        raise UnsupportedMediaType("Send the rule file as 'Content-Type: text/csv'.")
    length = request.content_length
    if length is not None and length > MAX_CSV_BYTES:
        raise PayloadTooLarge(
            f"The file is {length:,} bytes; rule files may have at most {MAX_CSV_BYTES:,}.",
            {"file": "too large"},
        )
    request.max_content_length = MAX_CSV_BYTES
    return request.get_data(cache=False)


@bp.post("/<name>/rules.csv")
def post_rules_csv(name: str) -> tuple[Response, int]:
    moderator, _ = _site(name, edit=True)
    raw = read_rule_file()
    with current_runtime().session() as session:
        try:
            added = import_csv(session, find_site(session, name), raw, _actor(moderator))
        except SiteError as error:
            raise _site_error(error) from None
    return jsonify({"added": len(added)}), 201


@bp.patch("/<name>/settings")
def patch_settings(name: str) -> Response:
    moderator, _ = _site(name, edit=True)
    body = read_json_object(request)
    runtime = current_runtime()
    with runtime.session() as session:
        site = find_site(session, name)
        try:
            update_settings(session, site, body, runtime.settings.thresholds, _actor(moderator))
        except SiteError as error:
            raise _site_error(error) from None
        return jsonify(site_view(session, site))


@bp.post("/<name>/try")
def try_comment(name: str) -> Response:
    """What a sample comment would get on this site now; nothing is stored."""
    _site(name)
    body = read_json_object(request)
    text, email, ip = body.get("text"), body.get("email", ""), body.get("ip")
    errors = {}
    if not isinstance(text, str) or not text.strip() or len(text) > MAX_TRY_CHARS:
        errors["text"] = f"1 to {MAX_TRY_CHARS} characters"
    if not isinstance(email, str) or len(email) > 320:
        errors["email"] = "an e-mail address"
    if ip is not None and (not isinstance(ip, str) or len(ip) > 64):
        errors["ip"] = "an IP address"
    if errors:
        raise InvalidComment("Bad sample.", errors)
    runtime = current_runtime()
    with runtime.session() as session:
        site_id = find_site(session, name).id
    sample = Comment(text=text, author_name="", author_email=email, author_ip=ip)
    verdict, extra = preview_verdict(runtime, site_id, sample)
    return jsonify(
        {
            "status": verdict.status,
            "reason": verdict.reason,
            "rules": [hit.to_dict() for hit in verdict.hits],
            **extra,
        }
    )


@bp.get("/<name>/audit")
def get_audit(name: str) -> Response:
    _site(name)
    with current_runtime().session() as session:
        rows = audit_log(session, find_site(session, name))
    return jsonify({"changes": [audit_view(row) for row in rows]})
