"""The JSON moderation API for CMS dashboards: read the queues, post decisions.

Authorised by ``Authorization: Bearer <token>`` with either a moderator's token (sees every comment;
decisions are the moderator's) or a CMS API key with the ``moderate`` scope (sees and decides only its
own comments; decisions are recorded as the key's).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any, TypeVar

from flask import Blueprint, Response, g, jsonify, request

from service.db import APPROVED, HELD, PENDING, REJECTED, Comment
from service.decisions import ALL_DECISIONS, decide
from service.errors import Conflict, Forbidden, InvalidComment, NotFound, Unauthorized
from service.keys import server_secret
from service.moderators import find_by_token
from service.privacy import erase_author
from service.sites import moderator_scope
from service.store import comment_summary
from service.web.auth import (
    BEARER_CHALLENGE,
    InvalidKey,
    MissingScope,
    TooManyFailedKeys,
    authenticate_api_key,
    bearer_token,
    too_many_failed_keys,
)
from service.web.context import current_runtime
from service.web.moderation.agreement import agreement_and_rule_reasons, narrowed_to_site, parse_weeks
from service.web.moderation.queries import (
    ATTRIBUTE_PATTERN,
    DAY_PATTERN,
    MAX_PAGE_SIZE,
    QUEUES,
    SORTS,
    list_queue,
    parse_filter,
    queue_counts,
)
from service.web.openapi import Part, error_response, json_response
from service.web.validation import not_space_pattern, read_json_object

bp = Blueprint("moderation_api", __name__, url_prefix="/v1")

F = TypeVar("F", bound=Callable[..., Any])
#: The statuses a decision's ``expected_status`` may name.
STATUSES = (PENDING, APPROVED, HELD, REJECTED)


@dataclass(frozen=True)
class Principal:
    actor: str
    #: Set for a CMS API key: it sees only its own comments.
    api_key_id: int | None
    #: Set for a site moderator: the WHERE clause of their site's comments.
    scope: Any = None


def require_moderation_access(view: F) -> F:
    """A moderator's token, or else an API key with the ``moderate`` scope; sets ``g.principal``."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        token = bearer_token()
        if token is None:
            raise Unauthorized(
                "Send a moderator token or an API key as 'Authorization: Bearer <token>'.",
                headers=BEARER_CHALLENGE,
            )
        g.principal = _principal(token)
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def _principal(token: str) -> Principal:
    with current_runtime().session() as session:
        moderator = find_by_token(session, token)
        if moderator is not None:
            return Principal(f"moderator:{moderator.username}", None, moderator_scope(session, moderator))
    try:
        api_key = authenticate_api_key(token, "moderate")
    except MissingScope:
        raise Forbidden("This API key lacks the 'moderate' scope.") from None
    except InvalidKey:
        raise Unauthorized("The token is not valid.", headers=BEARER_CHALLENGE) from None
    except TooManyFailedKeys as error:
        raise too_many_failed_keys(error) from None
    return Principal(f"api-key:{api_key.id}", api_key.id)


def moderation_summary(comment: Comment) -> dict[str, Any]:
    """What a dashboard needs to review a comment: the CMS summary plus the text and the author."""
    summary = comment_summary(comment)
    summary.update(
        {
            "text": comment.text,
            "permalink": comment.permalink,
            "uncertainty": comment.uncertainty,
            "author": {
                "name": comment.author_name,
                "email": comment.author_email,
                "url": comment.author_url,
                "ip": comment.author_ip,
            },
        }
    )
    return summary


@bp.get("/queues/<name>")
@require_moderation_access
def get_queue(name: str) -> Response:
    if name not in QUEUES:
        raise NotFound(f"No queue {name!r}; choose from {', '.join(QUEUES)}.")
    criteria, errors = parse_filter(request.args)
    if errors:
        raise InvalidComment("Bad queue filters.", errors)
    principal: Principal = g.principal
    with current_runtime().session() as session:
        try:
            page = list_queue(
                session,
                name,
                criteria,
                request.args.get("cursor") or None,
                principal.api_key_id,
                scope=principal.scope,
            )
        except ValueError as error:
            raise InvalidComment("Bad cursor.", {"cursor": str(error)}) from None
        counts = queue_counts(session, principal.api_key_id, scope=principal.scope)
        body = {
            "queue": name,
            "count": counts[name],
            "counts": counts,
            "comments": [moderation_summary(comment) for comment in page.comments],
            "next_cursor": page.next_cursor,
        }
    return jsonify(body)


@bp.get("/agreement")
@require_moderation_access
def get_agreement() -> Response:
    """Per ISO week of the model's decision: how many of its verdicts the moderators reversed."""
    try:
        weeks = parse_weeks(request.args.get("weeks"))
    except ValueError as error:
        raise InvalidComment("Bad weeks.", {"weeks": str(error)}) from None
    principal: Principal = g.principal
    name = request.args.get("site") or None
    with current_runtime().session() as session:
        try:
            _, scope = narrowed_to_site(session, principal.scope, name)
        except LookupError:
            raise NotFound(f"No site {name!r}.") from None
        table, reasons = agreement_and_rule_reasons(session, scope, weeks, api_key_id=principal.api_key_id)
    return jsonify({"site": name, "weeks": [week.as_json() for week in table], "rule_reasons": reasons})


@bp.post("/authors/erase")
@require_moderation_access
def erase_author_data() -> tuple[Response, int]:
    """Erase an author's e-mail, IP, name and URL (a CMS key: only from its own comments; a site's
    moderator: only from that site's)."""
    body = read_json_object(request)
    email = body.get("email")
    if not isinstance(email, str) or not email.strip() or len(email) > 320:
        raise InvalidComment(
            "Bad e-mail address.", {"email": "the author's e-mail address, 1 to 320 characters"}
        )
    principal: Principal = g.principal
    runtime = current_runtime()
    with runtime.session() as session:
        report = erase_author(
            session,
            email,
            principal.actor,
            server_secret(runtime.settings),
            api_key_id=principal.api_key_id,
            scope=principal.scope,
        )
    return jsonify({"erasure": report.erasure_id, "comments": report.comments, "labels": report.labels}), 200


@bp.post("/comments/<comment_id>/decision")
@require_moderation_access
def post_decision(comment_id: str) -> tuple[Response, int]:
    body = read_json_object(request)
    decision = body.get("decision")
    if decision not in ALL_DECISIONS:
        raise InvalidComment("Unknown decision.", {"decision": f"one of {', '.join(ALL_DECISIONS)}"})
    expected = body.get("expected_status")
    if expected is not None and expected not in STATUSES:
        raise InvalidComment("Bad expected_status.", {"expected_status": f"one of {', '.join(STATUSES)}"})
    principal: Principal = g.principal
    runtime = current_runtime()
    (outcome,) = decide(
        runtime,
        [comment_id],
        decision,
        principal.actor,
        expected_status=expected,
        api_key_id=principal.api_key_id,
        scope=principal.scope,
    )
    if outcome.error == "not_found":
        raise NotFound("No such comment.")
    if outcome.error is not None:
        messages = {
            "conflict": "The comment changed since you saw it; reload it and decide again.",
            "undo_expired": "The decision is too old to undo.",
            "nothing_to_undo": "There is no moderator decision to undo.",
        }
        raise Conflict(messages.get(outcome.error, outcome.error), {"decision": outcome.error})
    with runtime.session() as session:
        comment = session.get(Comment, comment_id)
        assert comment is not None
        summary = moderation_summary(comment)
    return jsonify({"decision": decision, "changed": outcome.changed, "comment": summary}), 200


# --- the contract --------------------------------------------------------------------------------

_STATUS = {"type": "string", "enum": list(STATUSES)}
_MODERATION_COMMENT = {
    "type": "object",
    "required": ["id", "status", "text", "author"],
    "properties": {
        "id": {"type": "string"},
        "external_id": {"type": ["string", "null"]},
        "post_id": {"type": ["string", "null"]},
        "status": _STATUS,
        "reason": {"type": ["string", "null"]},
        "scores": {"type": "object", "additionalProperties": {"type": "number"}},
        "reasons": {"type": "array", "items": {"type": "object"}},
        "model_version": {"type": ["string", "null"]},
        "received_at": {"type": ["string", "null"], "format": "date-time"},
        "decided_at": {"type": ["string", "null"], "format": "date-time"},
        "decided_by": {"type": ["string", "null"]},
        "text": {"type": "string"},
        "permalink": {"type": ["string", "null"]},
        "uncertainty": {"type": ["number", "null"]},
        "author": {
            "type": "object",
            "properties": {name: {"type": ["string", "null"]} for name in ("name", "email", "url", "ip")},
        },
    },
}


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


def _text_filter(name: str, limit: int, description: str) -> dict[str, Any]:
    return _query(name, {"type": "string", "maxLength": limit}, description)


def openapi_part() -> Part:
    """``GET /v1/queues/{name}``, ``POST /v1/comments/{id}/decision`` and ``POST /v1/authors/erase``."""
    security = [{"bearerKey": []}]
    score = {"type": "number", "minimum": 0, "maximum": 1}
    day = {"type": "string", "format": "date", "pattern": DAY_PATTERN}
    common = {
        "401": error_response("No token, or not a valid one."),
        "403": error_response("An API key without the 'moderate' scope."),
        "429": error_response("Too many requests with tokens that are not valid."),
    }
    return {
        "components": {"schemas": {"ModerationComment": _MODERATION_COMMENT}},
        "paths": {
            "/v1/queues/{name}": {
                "get": {
                    "summary": "A page of a moderation queue, with every queue's count",
                    "description": "A moderator's token sees every comment; an API key with the "
                    "'moderate' scope sees its own. The score range (min, max) needs 'attribute'.",
                    "security": security,
                    "parameters": [
                        {
                            "name": "name",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string", "enum": list(QUEUES)},
                        },
                        _text_filter("post", 200, "Only this post's comments."),
                        _text_filter("reason", 64, "Only comments with this reason."),
                        _query(
                            "attribute",
                            {"type": "string", "maxLength": 40, "pattern": ATTRIBUTE_PATTERN},
                            "The score attribute 'min' and 'max' apply to (spam, toxicity, ...).",
                        ),
                        _query("min", score, "Lowest score of 'attribute'."),
                        _query("max", score, "Highest score of 'attribute'."),
                        _query("since", day, "Received on or after this day (UTC)."),
                        _query(
                            "until",
                            {**day, "pattern": "^(?!9999-12-31)" + DAY_PATTERN.removeprefix("^")},
                            "Received on or before this day (UTC).",
                        ),
                        _text_filter("q", 200, "Text search."),
                        _query("sort", {"type": "string", "enum": list(SORTS)}, "The order."),
                        _query(
                            "limit", {"type": "integer", "minimum": 1, "maximum": MAX_PAGE_SIZE}, "Page size."
                        ),
                        _query(
                            "cursor",
                            {"type": "string"},
                            "The previous page's next_cursor, with the same sort (opaque).",
                        ),
                    ],
                    "responses": {
                        "200": json_response(
                            "The page.",
                            {
                                "type": "object",
                                "required": ["queue", "count", "counts", "comments", "next_cursor"],
                                "properties": {
                                    "queue": {"type": "string"},
                                    "count": {"type": "integer"},
                                    "counts": {"type": "object", "additionalProperties": {"type": "integer"}},
                                    "comments": {
                                        "type": "array",
                                        "items": {"$ref": "#/components/schemas/ModerationComment"},
                                    },
                                    "next_cursor": {"type": ["string", "null"]},
                                },
                            },
                        ),
                        **common,
                        "404": error_response("No such queue."),
                        "422": error_response("A filter or the cursor is not valid; 'fields' names each."),
                    },
                }
            },
            "/v1/authors/erase": {
                "post": {
                    "summary": "Erase an author's name, e-mail, URL and IP from comments and labels",
                    "description": "By e-mail address (compared without case). A moderator's token erases "
                    "it from every comment of the moderator's site (every site's, for a moderator of "
                    "all sites); an API key with the 'moderate' scope only from its own comments. "
                    "The texts and decisions stay, as training data.",
                    "security": security,
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["email"],
                                    "properties": {
                                        "email": {
                                            "type": "string",
                                            "minLength": 1,
                                            "maxLength": 320,
                                            "pattern": not_space_pattern(),
                                        }
                                    },
                                }
                            }
                        },
                    },
                    "responses": {
                        "200": json_response(
                            "Erased: how many comments and labels had the address (0 and 0 is fine).",
                            {
                                "type": "object",
                                "required": ["erasure", "comments", "labels"],
                                "properties": {
                                    "erasure": {"type": "integer"},
                                    "comments": {"type": "integer", "minimum": 0},
                                    "labels": {"type": "integer", "minimum": 0},
                                },
                            },
                        ),
                        "400": error_response("The body is not valid JSON."),
                        **common,
                        "413": error_response("The body is too large."),
                        "415": error_response("The body is not application/json."),
                        "422": error_response("No e-mail address, or a blank or too long one."),
                    },
                }
            },
            "/v1/comments/{comment_id}/decision": {
                "post": {
                    "summary": "Decide a comment (approve, reject as spam or abusive, hold, undo ...)",
                    "security": security,
                    "parameters": [
                        {"name": "comment_id", "in": "path", "required": True, "schema": {"type": "string"}}
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["decision"],
                                    "properties": {
                                        "decision": {"type": "string", "enum": list(ALL_DECISIONS)},
                                        "expected_status": {
                                            "anyOf": [_STATUS, {"type": "null"}],
                                            "description": "Refused (409) if the comment is no longer so.",
                                        },
                                    },
                                }
                            }
                        },
                    },
                    "responses": {
                        "200": json_response(
                            "Decided (or already so: 'changed' is false).",
                            {
                                "type": "object",
                                "required": ["decision", "changed", "comment"],
                                "properties": {
                                    "decision": {"type": "string"},
                                    "changed": {"type": "boolean"},
                                    "comment": {"$ref": "#/components/schemas/ModerationComment"},
                                },
                            },
                        ),
                        "400": error_response("The body is not valid JSON."),
                        **common,
                        "404": error_response("No such comment (for this key)."),
                        "409": error_response("The comment changed since, or there is nothing to undo."),
                        "413": error_response("The body is too large."),
                        "415": error_response("The body is not application/json."),
                        "422": error_response("An unknown decision or expected_status."),
                    },
                }
            },
        },
    }
