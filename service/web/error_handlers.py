"""The one place that turns every error into a JSON answer, for every blueprint without a protocol
of its own (Akismet and Perspective register their own handlers, in their protocols' shapes).

Every error body has the shape ``{"error": {"code", "message", "fields"?}}``. No request can produce
a stack trace: unexpected exceptions are logged with their traceback and answered with a bare 500.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from flask import Flask, Response, jsonify, request
from flask.typing import ResponseReturnValue
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from werkzeug.exceptions import HTTPException

from service.errors import ServiceError

logger = logging.getLogger(__name__)


def error_body(code: str, message: str, fields: dict[str, str] | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if fields:
        error["fields"] = fields
    return {"error": error}


#: Answers an HTTP error in a protocol's own shape.
HTTPErrorShape = Callable[[HTTPException], ResponseReturnValue]


def http_error_headers(error: HTTPException) -> dict[str, str]:
    """The headers an HTTP error carries besides its body's type: ``Allow`` on a 405 (RFC 9110)."""
    return {name: value for name, value in error.get_headers() if name.lower() != "content-type"}


def register_error_handlers(app: Flask, protocol_shapes: Mapping[str, HTTPErrorShape] | None = None) -> None:
    """Answer every error as JSON; blueprints with their own protocol (Akismet, Perspective) override.

    A URL that matches no route (404) or no method (405) belongs to no blueprint, so its blueprint's
    handlers never see it: ``protocol_shapes`` maps a path prefix (``/v1alpha1/``) to the handler
    that answers such errors in that protocol's shape.
    """
    shapes = sorted((protocol_shapes or {}).items(), key=lambda item: -len(item[0]))

    @app.errorhandler(ServiceError)
    def _service_error(error: ServiceError) -> tuple[Response, int, dict[str, str]]:
        return jsonify(error_body(error.code, error.message, error.fields)), error.status, error.headers

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException) -> ResponseReturnValue:
        if request.blueprint is None:
            for prefix, shape in shapes:
                if request.path.startswith(prefix):
                    return shape(error)
        code = (error.name or "error").lower().replace(" ", "_")
        if error.code == 413:
            code = "payload_too_large"
        body = jsonify(error_body(code, error.description or error.name))
        return body, error.code or 500, http_error_headers(error)

    @app.errorhandler(OperationalError)
    @app.errorhandler(PoolTimeoutError)
    def _database_down(error: Exception) -> tuple[Response, int, dict[str, str]]:
        # The transaction was rolled back by the session; nothing was half-written.
        logger.error("database unavailable path=%s error=%s", request.path, type(error).__name__)
        body = error_body("database_unavailable", "The database is unavailable; try again shortly.")
        return jsonify(body), 503, {"Retry-After": "5"}

    @app.errorhandler(DBAPIError)
    def _database_error(error: DBAPIError) -> tuple[Response, int, dict[str, str]]:
        if error.connection_invalidated:
            return _database_down(error)
        logger.exception("database error path=%s", request.path)
        return jsonify(error_body("internal_error", "Internal error.")), 500, {}

    @app.errorhandler(Exception)
    def _unexpected(error: Exception) -> tuple[Response, int]:
        logger.exception("unhandled error path=%s", request.path)
        return jsonify(error_body("internal_error", "Internal error.")), 500
