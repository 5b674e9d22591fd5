"""The OpenAPI 3.1 document for the CMS API. The request schema comes from the validating model."""

from __future__ import annotations

from functools import cache
from typing import Any

from service.web.validation import CommentIn

_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "fields": {
                    "type": "object",
                    "description": "Each invalid field, by name, with what is wrong with it.",
                    "additionalProperties": {"type": "string"},
                },
            },
        }
    },
}

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


def _error_response(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def _verdict_response(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Comment"}}},
    }


@cache
def openapi_document() -> dict[str, Any]:
    comment_in = CommentIn.model_json_schema(ref_template="#/components/schemas/{model}")
    comment_in.pop("$defs", None)
    unauthorized = _error_response("Missing or invalid API key.")
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Comment moderation API",
            "version": "1",
            "description": "Post reader comments; each is scored by the spam and toxicity models and "
            "approved, held for a moderator, or rejected as spam. Verdicts arrive by signed webhook "
            "(X-Moderation-Signature: t=<unix>,v1=<HMAC-SHA256 of '<t>.<body>'>) or by polling.",
        },
        "components": {
            "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer"}},
            "schemas": {"CommentIn": comment_in, "Comment": _VERDICT, "Error": _ERROR},
        },
        "security": [{"apiKey": []}],
        "paths": {
            "/v1/comments": {
                "post": {
                    "summary": "Submit a comment for moderation",
                    "parameters": [
                        {
                            "name": "wait",
                            "in": "query",
                            "required": False,
                            "description": "Wait up to this many seconds for the verdict (also "
                            "'Prefer: wait=N'). At most MAX_WAIT_SECONDS (default 10).",
                            "schema": {"type": "number", "minimum": 0},
                        }
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/CommentIn"}}
                        },
                    },
                    "responses": {
                        "200": _verdict_response("This key already posted this external_id; here it is."),
                        "201": _verdict_response("Stored, and the verdict arrived within 'wait'."),
                        "202": _verdict_response(
                            "Stored durably and queued; the verdict will follow. Only id, "
                            "external_id, status, received_at and links are given."
                        ),
                        "400": _error_response("The body is not valid JSON."),
                        "401": unauthorized,
                        "403": _error_response("The key lacks the 'comments' scope."),
                        "413": _error_response("The body is larger than the limit (64 KB by default)."),
                        "415": _error_response("The body is not application/json."),
                        "422": _error_response(
                            "Fields are missing, unknown or invalid; 'fields' names each."
                        ),
                        "429": _error_response(
                            "The key exceeded COMMENT_RATE_LIMIT (off by default); nothing was stored. "
                            "Retry after 'Retry-After' seconds."
                        ),
                        "503": _error_response("The database is unavailable; retry after 'Retry-After'."),
                    },
                }
            },
            "/v1/comments/{comment_id}": {
                "get": {
                    "summary": "Read a comment's status, scores, reasons and model version",
                    "parameters": [
                        {"name": "comment_id", "in": "path", "required": True, "schema": {"type": "string"}}
                    ],
                    "responses": {
                        "200": _verdict_response("The comment."),
                        "401": unauthorized,
                        "404": _error_response("No such comment for this key."),
                    },
                }
            },
            "/healthz": {
                "get": {
                    "summary": "Liveness",
                    "security": [],
                    "responses": {"200": {"description": "Alive."}},
                }
            },
            "/readyz": {
                "get": {
                    "summary": "Readiness: Redis, database and model reachable",
                    "security": [],
                    "responses": {"200": {"description": "Ready."}, "503": {"description": "Not ready."}},
                }
            },
        },
    }
