"""Per-key rate limits and usage counters for the compatibility endpoints (Perspective, Akismet).

Limits are counted in Redis by the ``limits`` library's fixed-window strategy, keyed by the
authenticated API key's id. (Flask-Limiter wraps the same library, but it adds a check to every
route of the app, the CMS ingest path included, which uses no limit.) The check runs *after*
authentication, inside the view, because the key arrives in protocol-specific places (``?key=``, a
form field, the Host header) and because the limit itself is per key (``ApiKey.rate_limit``, else
``Settings.rate_limit``). Each blueprint turns :class:`RateLimited` into its own protocol's 429
answer, with ``Retry-After``.

The limiter itself is the app's one (``service.web.throttle``), which the CMS API shares.

Usage counters (``UsageCounter``: key, endpoint, day) are buffered in the process and written at most
every few seconds, so counting never puts a database commit on the scoring path.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from datetime import UTC, datetime

from flask import Flask, current_app
from limits.strategies import FixedWindowRateLimiter
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service.db import ApiKey, UsageCounter
from service.runtime import Runtime
from service.settings import Settings
from service.web.throttle import EXTENSION, RateLimited, enforce, init_limiter, remaining, storage_uri

__all__ = ["EXTENSION", "RateLimited", "storage_uri"]  # re-exported: the blueprints catch RateLimited

logger = logging.getLogger(__name__)

#: Buffered usage counts are written to the database at most this often (and before usage is read).
USAGE_FLUSH_SECONDS = 5.0


def init_rate_limits(app: Flask, runtime: Runtime) -> FixedWindowRateLimiter:
    """Create the app's limiter and usage buffer once (both compatibility blueprints call this)."""
    limiter = init_limiter(app, runtime)
    app.extensions.setdefault(EXTENSION + ".usage", UsageBuffer())
    return limiter


def key_limit(api_key: ApiKey, settings: Settings) -> str:
    return api_key.rate_limit or settings.rate_limit


def _identity(api_key: ApiKey, settings: Settings) -> tuple[str, str]:
    return (f"{settings.redis_prefix}:ratelimit", f"api-key:{api_key.id}")


def enforce_rate_limit(api_key: ApiKey, settings: Settings, cost: int = 1) -> None:
    """Count ``cost`` requests against the key's limit; raise :class:`RateLimited` when it is used up."""
    enforce(key_limit(api_key, settings), *_identity(api_key, settings), cost=cost)


def is_throttled(api_key: ApiKey, settings: Settings) -> bool:
    """Whether the key's current window is used up (for Akismet's usage-limit ``throttled``)."""
    left = remaining(key_limit(api_key, settings), *_identity(api_key, settings))
    return left is not None and left <= 0


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
