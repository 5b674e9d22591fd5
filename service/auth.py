"""API-key authentication for the CMS-facing JSON API."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import g, request

from service.db import ApiKey
from service.errors import Forbidden, Unauthorized

F = TypeVar("F", bound=Callable[..., Any])

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="moderation"'}


def bearer_token() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def require_api_key(scope: str) -> Callable[[F], F]:
    """Authenticate with ``Authorization: Bearer <key>`` and require ``scope``; sets ``g.api_key``."""

    def decorator(view: F) -> F:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            from service.app import current_runtime

            token = bearer_token()
            if token is None:
                raise Unauthorized("Send your API key as 'Authorization: Bearer <key>'.", headers=_CHALLENGE)
            api_key = current_runtime().api_keys.find(token)
            if api_key is None:
                raise Unauthorized("The API key is not valid.", headers=_CHALLENGE)
            if not api_key.has_scope(scope):
                raise Forbidden(f"This API key lacks the '{scope}' scope.")
            g.api_key = api_key
            return view(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorator


def current_api_key() -> ApiKey:
    return g.api_key
