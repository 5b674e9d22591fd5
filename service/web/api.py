"""The CMS API, versioned under /v1: post a comment, read its verdict."""

from __future__ import annotations

import json
import logging
import re
from typing import Any

import redis
from flask import Blueprint, Response, request

from service import metrics, queueing
from service.db import PENDING, Comment
from service.errors import InvalidComment, NotFound, TooManyRequests
from service.runtime import Runtime
from service.store import (
    NewComment,
    comment_summary,
    create_comment,
    get_comment,
    insert_comment,
    pending_summary,
)
from service.web import throttle
from service.web.auth import require_api_key
from service.web.context import current_api_key, current_runtime
from service.web.openapi import Part, error_response, json_response, ref, retry_after
from service.web.validation import (
    META_VALUE,
    CommentIn,
    comment_in_schemas,
    parse_comment,
    read_json_object,
)

logger = logging.getLogger(__name__)

bp = Blueprint("api", __name__, url_prefix="/v1")

# What jsonify writes, from one encoder: json.dumps with options builds a new encoder per call.
_JSON = json.JSONEncoder(separators=(",", ":"))
_PREFER_WAIT = re.compile(r"(?:^|[,;\s])wait\s*=\s*([0-9.]+)", re.IGNORECASE)


@bp.post("/comments")
@require_api_key("comments")
def post_comment() -> tuple[Response, int, dict[str, str]]:
    limit_comments()
    wait = requested_wait()
    fields = parse_comment(read_json_object(request))
    runtime = current_runtime()
    api_key = current_api_key()
    comment: Comment | NewComment
    if fields.get("external_id") is None:
        # Nothing to deduplicate: no session, one INSERT.
        comment, created = (
            insert_comment(runtime.autocommit_engine, api_key.id, fields, api_key.site_id),
            True,
        )
    else:
        with runtime.session() as session:
            comment, created = create_comment(session, api_key, fields, runtime.autocommit_engine)
    if created:
        _enqueue(runtime, comment.id)
        metrics.COMMENTS_RECEIVED.labels(metrics.site_label(api_key.site_id)).inc()
        logger.info("comment=%s received key=%s length=%d", comment.id, api_key.id, len(comment.text))
    if wait > 0 and comment.status == PENDING:
        comment = wait_for_verdict(runtime, comment.id, wait) or comment
    return _comment_response(comment, created)


def limit_comments() -> None:
    """Back-pressure: the key's own comment limit, else ``COMMENT_RATE_LIMIT`` (off when neither is set).

    A 429 stores nothing.
    """
    settings = current_runtime().settings
    api_key = current_api_key()
    limit = api_key.comment_rate_limit or settings.comment_rate_limit
    if not limit:
        return
    namespace = f"{settings.redis_prefix}:comment-limit"
    try:
        throttle.enforce(limit, namespace, f"api-key:{api_key.id}")
    except throttle.RateLimited as error:
        raise TooManyRequests(
            f"Rate limit {error.limit} exceeded; retry in {error.retry_after} s.",
            headers={"Retry-After": str(error.retry_after)},
        ) from None


def _enqueue(runtime: Runtime, comment_id: str) -> None:
    try:
        client = runtime.thread_redis  # connects on a thread's first use
        was_connected = client.connection is not None and client.connection.is_connected
        try:
            queueing.enqueue_scoring(client, runtime.settings, [comment_id])
        except redis.ConnectionError:
            if not was_connected:
                raise
            # This thread's connection had gone stale (Redis restarted, or dropped it while idle);
            # the client reconnects on the next command. Should the first push have landed after
            # all, the id is queued twice, which is harmless: a verdict is recorded once.
            queueing.enqueue_scoring(client, runtime.settings, [comment_id])
    except redis.RedisError as error:
        # The comment is stored; the reconciler enqueues it once Redis is back.
        logger.warning("comment=%s enqueue failed error=%s (reconciler will retry)", comment_id, error)


def requested_wait() -> float:
    """Seconds to wait for the verdict: ``?wait=N`` or ``Prefer: wait=N`` (RFC 7240)."""
    raw = request.args.get("wait") if request.query_string else None
    if raw is None:
        prefer = request.headers.get("Prefer")
        match = _PREFER_WAIT.search(prefer) if prefer else None
        raw = match.group(1) if match else None
    if raw is None:
        return 0.0
    limit = current_runtime().settings.max_wait_seconds
    try:
        wait = float(raw)
    except ValueError:
        wait = -1.0
    if not 0 <= wait <= limit or wait != wait:
        raise InvalidComment("Bad wait.", {"wait": f"must be a number of seconds from 0 to {limit:g}"})
    return wait


def wait_for_verdict(runtime: Runtime, comment_id: str, seconds: float) -> Comment | None:
    """The comment once the worker has decided it, or as it stands after ``seconds``."""

    def load() -> Comment | None:
        with runtime.session() as session:
            return get_comment(session, comment_id)

    return queueing.wait_for_verdict(runtime.redis, runtime.settings, comment_id, seconds, load)


def comment_location(comment_id: str) -> str:
    # What url_for("api.get_comment_status", ...) builds, without a URL-map lookup per request
    # (ids are hex, so nothing needs quoting); test_api checks both agree.
    return f"{request.script_root}{bp.url_prefix}/comments/{comment_id}"


def _comment_response(comment: Comment | NewComment, created: bool) -> tuple[Response, int, dict[str, str]]:
    location = comment_location(comment.id)
    if isinstance(comment, NewComment) or comment.status == PENDING:
        # Nothing is decided yet, so the answer carries only what is known; GET the link for more.
        body = pending_summary(comment)
        status = 202
    else:
        body = comment_summary(comment)
        status = 201 if created else 200
    body["links"] = {"self": location}
    return _json_response(body), status, {"Location": location}


@bp.get("/comments/<comment_id>")
@require_api_key("comments")
def get_comment_status(comment_id: str) -> tuple[Response, int]:
    with current_runtime().session() as session:
        comment = get_comment(session, comment_id) if len(comment_id) <= 64 else None
    # Another key's comment is indistinguishable from a missing one.
    if comment is None or comment.api_key_id != current_api_key().id:
        raise NotFound("No such comment.")
    body = comment_summary(comment)
    body["links"] = {"self": comment_location(comment.id)}
    return _json_response(body), 200


def _json_response(body: dict[str, Any]) -> Response:
    return Response(_JSON.encode(body) + "\n", mimetype="application/json")


# --- the contract --------------------------------------------------------------------------------

_VERDICT = {
    "type": "object",
    "required": ["id", "status", "links"],
    "properties": {
        "id": {"type": "string"},
        "external_id": {"type": ["string", "null"]},
        "post_id": {"type": ["string", "null"]},
        "status": {"type": "string", "enum": ["pending", "approved", "held", "rejected"]},
        "reason": {
            "type": ["string", "null"],
            "description": "The rule behind the status: clean, spam_reject, spam_hold, "
            "toxicity_hold:<attribute>, too_many_links, unscored, or a moderator's decision.",
        },
        "scores": {"type": "object", "additionalProperties": {"type": "number"}},
        "reasons": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "attribute": {"type": "string"},
                    "feature": {"type": "string"},
                    "weight": {"type": "number"},
                    "spans": {"type": "array", "items": {"type": "array", "items": {"type": "integer"}}},
                },
            },
        },
        "model_version": {"type": ["string", "null"]},
        "received_at": {"type": ["string", "null"], "format": "date-time"},
        "decided_at": {"type": ["string", "null"], "format": "date-time"},
        "decided_by": {"type": ["string", "null"], "enum": ["model", "moderator", "system", None]},
        "links": {"type": "object", "properties": {"self": {"type": "string"}}},
    },
}


def comment_in_schema() -> dict[str, Any]:
    """``CommentIn``'s fields and required ones from pydantic, each field's constraints exact."""
    schema = CommentIn.model_json_schema(ref_template="#/components/schemas/{model}")
    schema.pop("$defs", None)
    exact = comment_in_schemas()
    schema["properties"] = {
        name: {"title": prop.get("title"), **exact[name]} for name, prop in schema["properties"].items()
    }
    return schema


def openapi_part() -> Part:
    """``POST /v1/comments`` and ``GET /v1/comments/{id}``, with a bearer API key."""
    limit = current_runtime().settings.max_wait_seconds
    unauthorized = error_response("Missing or invalid API key.")
    security = [{"bearerKey": []}]

    def verdict(description: str) -> dict[str, Any]:
        location = {"Location": {"description": "The comment's URL.", "schema": {"type": "string"}}}
        return json_response(description, ref("Comment"), location)

    return {
        "components": {
            "securitySchemes": {
                "bearerKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A CMS API key (`python -m service keys create`), or for the "
                    "moderation API a moderator's token.",
                }
            },
            "schemas": {"CommentIn": comment_in_schema(), "MetaValue": META_VALUE, "Comment": _VERDICT},
        },
        "paths": {
            "/v1/comments": {
                "post": {
                    "summary": "Submit a comment for moderation",
                    "security": security,
                    "parameters": [
                        {
                            "name": "wait",
                            "in": "query",
                            "required": False,
                            "description": "Wait up to this many seconds for the verdict (also "
                            f"'Prefer: wait=N'). At most MAX_WAIT_SECONDS (here {limit:g}).",
                            "schema": {"type": "number", "minimum": 0, "maximum": limit},
                        }
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": ref("CommentIn")}},
                    },
                    "responses": {
                        "200": verdict("This key already posted this external_id; here it is."),
                        "201": verdict("Stored, and the verdict arrived within 'wait'."),
                        "202": verdict(
                            "Stored durably and queued; the verdict will follow. Only id, "
                            "external_id, status, received_at and links are given."
                        ),
                        "400": error_response("The body is not valid JSON."),
                        "401": unauthorized,
                        "403": error_response("The key lacks the 'comments' scope."),
                        "413": error_response("The body is larger than the limit (64 KB by default)."),
                        "415": error_response("The body is not application/json."),
                        "422": error_response("Fields are missing, unknown or invalid; 'fields' names each."),
                        "429": {
                            **error_response(
                                "Too many requests with keys that are not valid, or the key exceeded "
                                "COMMENT_RATE_LIMIT (off by default); nothing was stored."
                            ),
                            "headers": retry_after(),
                        },
                        "503": {
                            **error_response("The database is unavailable; retry after 'Retry-After'."),
                            "headers": retry_after(),
                        },
                    },
                }
            },
            "/v1/comments/{comment_id}": {
                "get": {
                    "summary": "Read a comment's status, scores, reasons and model version",
                    "security": security,
                    "parameters": [
                        {"name": "comment_id", "in": "path", "required": True, "schema": {"type": "string"}}
                    ],
                    "responses": {
                        "200": json_response("The comment.", ref("Comment")),
                        "401": unauthorized,
                        "403": error_response("The key lacks the 'comments' scope."),
                        "404": error_response("No such comment for this key."),
                        "429": error_response("Too many requests with keys that are not valid."),
                    },
                }
            },
        },
    }
