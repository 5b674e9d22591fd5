"""The OpenAPI 3.1 document for every public operation: the CMS API, the moderation API, Perspective and
Akismet, and the health checks.

Each blueprint describes its own operations next to the code that checks them (its
``openapi_part``); :func:`register` collects the parts when the app is built, and
:func:`current_document` assembles them once, on the first request for ``/openapi.json``. Request
schemas are as strict as the checks, so that every request the document allows is accepted and
every request it forbids is refused (schemathesis checks both, in ``tests/test_openapi_fuzz.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask, current_app

#: The keys of the document's parts, and of the document once built, in ``app.extensions``.
PARTS_EXTENSION = "moderation.openapi_parts"
DOCUMENT_EXTENSION = "moderation.openapi"

#: One blueprint's share of the document: ``{"paths": ..., "components": {...}}``.
Part = dict[str, Any]

ERROR = {
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


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def json_response(description: str, schema: dict[str, Any], headers: dict[str, Any] | None = None) -> dict:
    response: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": schema}},
    }
    if headers:
        response["headers"] = headers
    return response


def error_response(description: str) -> dict[str, Any]:
    """A JSON error in the generic ``{"error": {"code", "message", "fields"?}}`` shape."""
    return json_response(description, ref("Error"))


def retry_after() -> dict[str, Any]:
    return {"Retry-After": {"description": "Seconds to wait.", "schema": {"type": "string"}}}


def register(app: Flask, parts: Iterable[Callable[[], Part]]) -> None:
    """Keep the functions that describe each blueprint; the document is built when first asked for."""
    app.extensions[PARTS_EXTENSION] = tuple(parts)


def current_document() -> dict[str, Any]:
    """The app's document, built from its parts on first use (its character classes take a second).

    Two threads may both build it the first time; they build the same document.
    """
    document = current_app.extensions.get(DOCUMENT_EXTENSION)
    if document is None:
        parts = current_app.extensions[PARTS_EXTENSION]
        document = current_app.extensions[DOCUMENT_EXTENSION] = build_document(part() for part in parts)
    return document  # type: ignore[no-any-return]


def build_document(parts: Iterable[Part]) -> dict[str, Any]:
    components: dict[str, dict[str, Any]] = {"securitySchemes": {}, "schemas": {"Error": ERROR}}
    paths: dict[str, Any] = {}
    for part in parts:
        paths.update(part["paths"])
        for kind, entries in part.get("components", {}).items():
            components.setdefault(kind, {}).update(entries)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Comment moderation API",
            "version": "1",
            "description": "Post reader comments; each is scored by the spam and toxicity models and "
            "approved, held for a moderator, or rejected as spam. Verdicts arrive by signed webhook "
            "(X-Moderation-Signature: t=<unix>,v1=<HMAC-SHA256 of '<t>.<body>'>) or by polling. "
            "The same models answer a Perspective-compatible API (/v1alpha1) and an "
            "Akismet-compatible one (/1.1, /1.2), each in its own protocol's shapes, and Coral's "
            "external moderation phase (/coral/v1/phase, signed by Coral).",
        },
        "components": components,
        "paths": paths,
    }
