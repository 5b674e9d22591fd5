"""API-key authentication: the one check every endpoint that takes a CMS's key goes through.

:func:`authenticate_api_key` looks the key up in the process's key cache (``Runtime.api_keys``),
checks its scope and records it as the request's key. It raises a :class:`KeyRejected` saying what
was wrong; each protocol answers that in its own shape (the CMS API with 401/403 JSON through
:func:`require_api_key`, Perspective with Google's errors, Akismet with ``invalid``, the JSON
moderation API like the CMS API). Where the key travels differs by protocol; the check does not.

Failed checks are limited per client address (``Settings.failed_key_limit``), so that keys cannot be
guessed online: past the limit, every key check from that address raises :class:`TooManyFailedKeys`
(each protocol answers 429 in its shape) until the window ends. The count is shared in Redis; each
process also remembers the addresses it saw go over, so the hot path (a valid key) costs no Redis
round trip.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import current_app, request
from limits import parse

from service.db import ApiKey
from service.errors import Forbidden, TooManyRequests, Unauthorized
from service.runtime import Runtime
from service.web.context import current_runtime, set_current_api_key

logger = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])
FAILED_KEYS_EXTENSION = "moderation.failed_keys"

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


class TooManyFailedKeys(KeyRejected):
    """This client address sent too many keys that were not valid; ``retry_after`` in seconds."""

    def __init__(self, retry_after: int):
        super().__init__("too many failed key checks from this address")
        self.retry_after = retry_after


class FailedKeyChecks:
    """Failed key checks per client address: counted in Redis, blocked addresses remembered here."""

    def __init__(self) -> None:
        self._blocked_until: dict[str, float] = {}
        self._lock = threading.Lock()

    def retry_after(self, address: str) -> int:
        """Seconds until ``address`` may check keys again; 0 if it may now."""
        with self._lock:
            until = self._blocked_until.get(address, 0.0)
        return max(0, round(until - time.monotonic() + 0.5)) if until else 0

    def record_failure(self, runtime: Runtime, address: str) -> None:
        limit = parse(runtime.settings.failed_key_limit)
        counter = f"{runtime.settings.redis_prefix}:failed-keys:{address}"
        try:
            pipe = runtime.redis.pipeline()
            pipe.set(counter, 0, ex=limit.get_expiry(), nx=True)
            pipe.incr(counter)
            pipe.ttl(counter)
            _created, failures, ttl = pipe.execute()
        except Exception as error:  # availability beats strictness, as for the rate limits
            logger.warning("failed-key count not recorded address=%s error=%s", address, error)
            return
        if failures >= limit.amount:
            with self._lock:
                if len(self._blocked_until) > 10_000:  # bounded, like the key cache
                    self._blocked_until.clear()
                self._blocked_until[address] = time.monotonic() + max(int(ttl), 1)


def failed_key_checks() -> FailedKeyChecks:
    return current_app.extensions.setdefault(FAILED_KEYS_EXTENSION, FailedKeyChecks())  # type: ignore[no-any-return]


def authenticate_api_key(secret: str | None, scope: str) -> ApiKey:
    """The active key ``secret`` names, if it has ``scope``; it becomes ``current_api_key()``."""
    if not secret:
        raise MissingKey("no API key sent")
    address = request.remote_addr or "unknown"
    guard = failed_key_checks()
    retry_after = guard.retry_after(address)
    if retry_after:
        raise TooManyFailedKeys(retry_after)
    runtime = current_runtime()
    api_key = runtime.api_keys.find(secret)
    if api_key is None:
        guard.record_failure(runtime, address)
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
            except TooManyFailedKeys as error:
                raise too_many_failed_keys(error) from None
            except MissingScope:
                raise Forbidden(f"This API key lacks the '{scope}' scope.") from None
            return view(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorator


def too_many_failed_keys(error: TooManyFailedKeys) -> TooManyRequests:
    """The JSON APIs' answer to an address that failed too many key checks."""
    return TooManyRequests(
        "Too many requests with keys that are not valid came from your address; retry later.",
        headers={"Retry-After": str(error.retry_after)},
    )
