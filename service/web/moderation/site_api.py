"""The JSON API for a site's rules and thresholds: read, edit (admins only), CSV, "try it", audit.

Moderator tokens only (``Authorization: Bearer mt_...``): a CMS API key moderates comments, it does
not set a site's policy. A site moderator sees only their own site; every site is a 404 otherwise.
"""

from __future__ import annotations

from functools import cache
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
from service.rules import AUTHOR_EMAIL, AUTHOR_IP, DOMAIN_KINDS, MAX_ENTRY_CHARS, RULE_KINDS, WORD_KINDS
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
    remove_entry,
    rule_entries,
    site_options,
    site_thresholds,
    update_settings,
)
from service.web.auth import BEARER_CHALLENGE, bearer_token
from service.web.context import current_runtime
from service.web.openapi import Part, error_response, json_response
from service.web.validation import not_space_pattern, printable_pattern, read_json_object, space_class

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


# --- the contract --------------------------------------------------------------------------------


#: Characters that make a word entry look like a regular expression (``rules._REGEX_LOOKING``).
_REGEX_CHARS = "\\^[](){}?"
_LABEL = "[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"


@cache
def _entry_pattern(group: str, forbidden: str = "") -> str:
    """What ``rules.normalize_entry`` accepts for a list of ``group``, without anchors.

    Trimmed of white space, then printable; ``forbidden`` characters (a CSV file's separators)
    are left out. Words: no regular expression, not only wildcards. Domains: a domain name
    (ASCII), bare or in a URL. E-mail: local@domain. Addresses: IPv4 or IPv6.
    """

    space = space_class(forbidden)
    if group == "word":
        inner = printable_pattern(forbidden + _REGEX_CHARS)
        edge = printable_pattern(forbidden + _REGEX_CHARS, space=False)
        # Not ".*" or ".+", and something besides wildcards.
        not_only_stars = printable_pattern(forbidden + _REGEX_CHARS + "*", space=False)
        return f"(?![^\\n]*\\.[*+])(?=[^\\n]*{not_only_stars}){space}*{edge}(?:{inner}*{edge})?{space}*"
    if group == "domain":
        tail = f"(?:[:/?#](?:{printable_pattern(forbidden)}*{printable_pattern(forbidden, space=False)})?)?"
        scheme = "(?:[A-Za-z][A-Za-z0-9+.-]*://)?"
        return f"{space}*@?{scheme}{_LABEL}(?:\\.{_LABEL})+\\.?{tail}{space}*"
    if group == "email":
        part = printable_pattern(forbidden + "@", space=False)
        # At most 64 characters before the "@" (the whole entry has at most 200).
        return f"{space}*(?=[^@]{{1,64}}@){part}+@{part}+{space}*"
    raise ValueError(group)


#: The lists of each group of entries.
_GROUPS = {"word": WORD_KINDS, "domain": DOMAIN_KINDS, "email": (AUTHOR_EMAIL,)}


def _entry(group: str) -> dict[str, Any]:
    if group == "ip":
        return {"anyOf": [{"type": "string", "format": "ipv4"}, {"type": "string", "format": "ipv6"}]}
    return {"type": "string", "maxLength": MAX_ENTRY_CHARS, "pattern": f"^{_entry_pattern(group)}$"}


def _entries_body(field: str, many: bool) -> dict[str, Any]:
    """``{"list", "entries"}`` (or ``"entry"``), each list with the entries it takes."""
    variants = []
    for group, kinds in {**_GROUPS, "ip": (AUTHOR_IP,)}.items():
        entry = _entry(group)
        value = {"type": "array", "minItems": 1, "uniqueItems": True, "items": entry} if many else entry
        variants.append({"properties": {"list": {"enum": list(kinds)}, field: value}})
    return {
        "type": "object",
        "required": ["list", field],
        "properties": {"list": {"type": "string", "enum": list(RULE_KINDS)}},
        "oneOf": variants,
    }


def _rule_file_pattern() -> str:
    """A rule file: an optional ``list,entry`` header, then ``list,entry`` lines (no quoting)."""
    separators = ',"\r\n'
    lines = [f"(?:{'|'.join(kinds)}),{_entry_pattern(group, separators)}" for group, kinds in _GROUPS.items()]
    octet = "(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
    # IPv4 only here: IPv6 addresses are described in the JSON form (``format: ipv6``).
    lines.append(f"{AUTHOR_IP},{octet}(?:\\.{octet}){{3}}")
    line = f"(?:{'|'.join(lines)})"
    return f"^\ufeff?(?:list,entry\\r?\\n)?{line}(?:\\r?\\n{line})*(?:\\r?\\n)?$"


def _setting(kind: type) -> dict[str, Any]:
    if kind is bool:
        value: dict[str, Any] = {"type": "boolean"}
    elif kind is int:
        value = {"type": "integer", "minimum": 0, "maximum": 1000}
    elif kind is float:
        value = {"type": "number", "minimum": 0, "maximum": 1}
    else:  # the supported languages
        value = {
            "type": "array",
            "minItems": 1,
            "maxItems": 50,
            "items": {"type": "string", "pattern": "^\\p{L}{1,8}$"},
        }
    return {"anyOf": [value, {"type": "null"}], "description": "null removes the site's override."}


def _site_schema() -> dict[str, Any]:
    number = {"type": "number"}
    return {
        "type": "object",
        "required": ["name", "lists", "overrides", "thresholds", "options", "version"],
        "properties": {
            "name": {"type": "string"},
            "lists": {
                "type": "object",
                "propertyNames": {"enum": list(RULE_KINDS)},
                "additionalProperties": {"type": "array", "items": {"type": "string"}},
            },
            "overrides": {"type": "object"},
            "thresholds": {
                "type": "object",
                "required": list(THRESHOLD_FIELDS),
                "properties": {name: number for name in THRESHOLD_FIELDS},
            },
            "options": {"type": "object"},
            "version": {"type": ["integer", "null"]},
        },
    }


def openapi_part() -> Part:
    """The site rules API: sites, rule lists (JSON and CSV), settings, "try it", the audit log."""
    security = [{"moderatorToken": []}]
    name = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
    kind = {"type": "string", "enum": list(RULE_KINDS)}
    read = {
        "401": error_response("No token, or not a moderator's token (API keys are refused)."),
        "404": error_response("No such site, or not the moderator's site."),
    }
    edit = {**read, "403": error_response("Only admins change a site's rules and settings.")}
    body = {
        "400": error_response("The body is not valid JSON."),
        "413": error_response("The body is too large."),
        "415": error_response("The body is not application/json."),
    }

    def json_body(schema: dict[str, Any]) -> dict[str, Any]:
        return {"required": True, "content": {"application/json": {"schema": schema}}}

    site = {"$ref": "#/components/schemas/Site"}
    settings_fields = {**THRESHOLD_FIELDS, **OPTION_FIELDS}
    return {
        "components": {
            "securitySchemes": {
                "moderatorToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A moderator's token (mt_...); a CMS API key is refused here.",
                }
            },
            "schemas": {"Site": _site_schema()},
        },
        "paths": {
            bp.url_prefix: {
                "get": {
                    "summary": "The sites this moderator sees",
                    "security": security,
                    "responses": {
                        "200": json_response(
                            "Their names.",
                            {
                                "type": "object",
                                "required": ["sites"],
                                "properties": {"sites": {"type": "array", "items": {"type": "string"}}},
                            },
                        ),
                        "401": read["401"],
                    },
                }
            },
            f"{bp.url_prefix}/{{name}}": {
                "get": {
                    "summary": "A site's rule lists, overrides and effective thresholds",
                    "security": security,
                    "parameters": [name],
                    "responses": {"200": json_response("The site.", site), **read},
                }
            },
            f"{bp.url_prefix}/{{name}}/rules": {
                "post": {
                    "summary": "Add entries to one of the site's lists (all or none; admins)",
                    "security": security,
                    "parameters": [name],
                    "requestBody": json_body(_entries_body("entries", many=True)),
                    "responses": {
                        "201": json_response(
                            "Added: the entries as stored (normalised).",
                            {
                                "type": "object",
                                "required": ["list", "added"],
                                "properties": {
                                    "list": kind,
                                    "added": {"type": "array", "items": {"type": "string"}},
                                },
                            },
                        ),
                        **edit,
                        **body,
                        "422": error_response(
                            "An unknown list, or bad entries ('fields' names each: entries[i]), "
                            "duplicates or entries already on the list; nothing was saved."
                        ),
                    },
                },
                "delete": {
                    "summary": "Remove one entry from one of the site's lists (admins)",
                    "security": security,
                    "parameters": [name],
                    "requestBody": json_body(_entries_body("entry", many=False)),
                    "responses": {
                        "200": json_response(
                            "Removed.",
                            {
                                "type": "object",
                                "required": ["list", "removed"],
                                "properties": {"list": kind, "removed": {"type": "string"}},
                            },
                        ),
                        **edit,
                        **body,
                        "422": error_response("An unknown list, a bad entry, or one not on the list."),
                    },
                },
            },
            f"{bp.url_prefix}/{{name}}/rules.csv": {
                "get": {
                    "summary": "Every list of the site as CSV (list,entry)",
                    "security": security,
                    "parameters": [name],
                    "responses": {
                        "200": {
                            "description": "The rule file.",
                            "content": {"text/csv": {"schema": {"type": "string"}}},
                        },
                        **read,
                    },
                },
                "post": {
                    "summary": "Import a rule file (list,entry per line; all or none; admins)",
                    "description": "Also accepted as text/plain or application/octet-stream. Checked "
                    "whole before anything is saved: a bad line is named ('line N').",
                    "security": security,
                    "parameters": [name],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "text/csv": {
                                "schema": {
                                    "type": "string",
                                    # Characters, not bytes: a quarter of the limit is under it.
                                    "maxLength": MAX_CSV_BYTES // 4,
                                    "pattern": _rule_file_pattern(),
                                }
                            }
                        },
                    },
                    "responses": {
                        "201": json_response(
                            "Imported.",
                            {
                                "type": "object",
                                "required": ["added"],
                                "properties": {"added": {"type": "integer", "minimum": 1}},
                            },
                        ),
                        **edit,
                        "413": error_response(f"The file is larger than {MAX_CSV_BYTES:,} bytes."),
                        "415": error_response("The body is not CSV (text/csv)."),
                        "422": error_response("Bad lines, not UTF-8, or no entries; nothing was saved."),
                    },
                },
            },
            f"{bp.url_prefix}/{{name}}/settings": {
                "patch": {
                    "summary": "Change the site's thresholds and rule options (admins)",
                    "security": security,
                    "parameters": [name],
                    "requestBody": json_body(
                        {
                            "type": "object",
                            "additionalProperties": False,
                            "properties": {field: _setting(kind) for field, kind in settings_fields.items()},
                        }
                    ),
                    "responses": {
                        "200": json_response("The site as it is now.", site),
                        **edit,
                        **body,
                        "422": error_response(
                            "A bad setting ('fields' names each), or spam_hold above spam_reject."
                        ),
                    },
                }
            },
            f"{bp.url_prefix}/{{name}}/try": {
                "post": {
                    "summary": "What a sample comment would get on this site now (nothing is stored)",
                    "security": security,
                    "parameters": [name],
                    "requestBody": json_body(
                        {
                            "type": "object",
                            "required": ["text"],
                            "properties": {
                                "text": {
                                    "type": "string",
                                    "minLength": 1,
                                    "maxLength": MAX_TRY_CHARS,
                                    "pattern": not_space_pattern(),
                                },
                                "email": {"type": "string", "maxLength": 320},
                                "ip": {"type": ["string", "null"], "maxLength": 64},
                            },
                        }
                    ),
                    "responses": {
                        "200": json_response(
                            "The verdict, the rules that matched and the scores.",
                            {
                                "type": "object",
                                "required": ["status", "reason", "rules"],
                                "properties": {
                                    "status": {"type": "string"},
                                    "reason": {"type": ["string", "null"]},
                                    "rules": {"type": "array", "items": {"type": "object"}},
                                    "scores": {"type": "object", "additionalProperties": {"type": "number"}},
                                    "language": {"type": ["string", "null"]},
                                    "model_version": {"type": ["string", "null"]},
                                },
                            },
                        ),
                        **read,
                        **body,
                        "422": error_response("A bad text, e-mail or IP ('fields' names each)."),
                    },
                }
            },
            f"{bp.url_prefix}/{{name}}/audit": {
                "get": {
                    "summary": "The site's last 100 changes, newest first",
                    "security": security,
                    "parameters": [name],
                    "responses": {
                        "200": json_response(
                            "The changes.",
                            {
                                "type": "object",
                                "required": ["changes"],
                                "properties": {
                                    "changes": {
                                        "type": "array",
                                        "items": {
                                            "type": "object",
                                            "required": ["actor", "action", "at"],
                                            "properties": {
                                                "actor": {"type": "string"},
                                                "action": {"type": "string"},
                                                "at": {"type": "string"},
                                            },
                                        },
                                    }
                                },
                            },
                        ),
                        **read,
                    },
                }
            },
        },
    }
