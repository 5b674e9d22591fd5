"""Domain errors: each carries the HTTP status and the error code it is answered with.

``service.web.error_handlers`` turns them into ``{"error": {"code", "message", "fields"?}}``.
"""

from __future__ import annotations


class ServiceError(Exception):
    status = 500
    code = "internal_error"

    def __init__(
        self, message: str, fields: dict[str, str] | None = None, headers: dict[str, str] | None = None
    ):
        super().__init__(message)
        self.message = message
        self.fields = fields or {}
        self.headers = headers or {}


class InvalidJSON(ServiceError):
    status = 400
    code = "invalid_json"


class Unauthorized(ServiceError):
    status = 401
    code = "unauthorized"


class Forbidden(ServiceError):
    status = 403
    code = "forbidden"


class NotFound(ServiceError):
    status = 404
    code = "not_found"


class Conflict(ServiceError):
    status = 409
    code = "conflict"


class PayloadTooLarge(ServiceError):
    status = 413
    code = "payload_too_large"


class UnsupportedMediaType(ServiceError):
    status = 415
    code = "unsupported_media_type"


class InvalidComment(ServiceError):
    status = 422
    code = "invalid_fields"


class TooManyRequests(ServiceError):
    status = 429
    code = "too_many_requests"
