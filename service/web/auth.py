"""API-key authentication: the one check every endpoint that takes a CMS's key goes through.

:func:`authenticate_api_key` looks the key up in the process's key cache (``Runtime.api_keys``),
checks its scope and records it as the request's key. It raises a :class:`KeyRejected` saying what
was wrong; each protocol answers that in its own shape (the CMS API with 401/403 JSON through
:func:`require_api_key`, Perspective with Google's errors, Akismet with ``invalid``, the JSON
moderation API like the CMS API). Where the key travels differs by protocol; the check does not.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import request

from service.db import ApiKey
from service.errors import Forbidden, Unauthorized
from service.web.context import current_runtime, set_current_api_key

F = TypeVar("F", bound=Callable[..., Any])

#: The ``WWW-Authenticate`` challenge of the Bearer-authenticated JSON APIs.
BEARER_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="moderation"'}


class KeyRejected(Exception):
    """The request's API key was not accepted."""


class MissingKey(KeyRejected):
    """No key was sent."""


class InvalidKey(KeyRejected):
    """The key is unknown or disabled."""


class MissingScope(KeyRejected):
    """The key is valid but lacks the scope the endpoint needs."""

    def __init__(self, scope: str):
        super().__init__(f"the key lacks the '{scope}' scope")
        self.scope = scope


def authenticate_api_key(secret: str | None, scope: str) -> ApiKey:
    """The active key ``secret`` names, if it has ``scope``; it becomes ``current_api_key()``."""
    if not secret:
        raise MissingKey("no API key sent")
    api_key = current_runtime().api_keys.find(secret)
    if api_key is None:
        raise InvalidKey("the API key is not valid")
    if not api_key.has_scope(scope):
        raise MissingScope(scope)
    set_current_api_key(api_key)
    return api_key


def bearer_token() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def require_api_key(scope: str) -> Callable[[F], F]:
    """Authenticate with ``Authorization: Bearer <key>`` and require ``scope`` (the CMS API)."""

    def decorator(view: F) -> F:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                authenticate_api_key(bearer_token(), scope)
            except MissingKey:
                raise Unauthorized(
                    "Send your API key as 'Authorization: Bearer <key>'.", headers=BEARER_CHALLENGE
                ) from None
            except InvalidKey:
                raise Unauthorized("The API key is not valid.", headers=BEARER_CHALLENGE) from None
            except MissingScope:
                raise Forbidden(f"This API key lacks the '{scope}' scope.") from None
            return view(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorator
