"""API keys for CMSs: created by the CLI, stored as SHA-256 hashes, checked on every request.

A key is 32 random bytes, so a fast hash is safe here (no dictionary to attack), unlike passwords.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.db import ApiKey, utcnow

KEY_PREFIX = "mk_"
#: comments: post and read comments; moderate: the JSON moderation API; analyze: Perspective-style
#: scoring and Akismet comment-check; submit: labels through suggestscore and submit-spam/ham.
SCOPES = ("comments", "moderate", "analyze", "submit")
DEFAULT_SCOPES = ("comments", "analyze", "submit")


#: A secret given by the operator (``keys create --secret``): long enough not to be guessed, short
#: enough for every client, printable so it survives headers, forms and host names.
MIN_SECRET_CHARS = 12
MAX_SECRET_CHARS = 200


class InvalidScope(ValueError):
    pass


class InvalidSecret(ValueError):
    """A chosen secret that is too short, too long, not printable ASCII, or already some key's."""


@dataclass(frozen=True)
class NewKey:
    """A freshly created key. ``secret`` and ``webhook_secret`` are shown once and never again."""

    api_key: ApiKey
    secret: str
    webhook_secret: str | None


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def create_api_key(
    session: Session,
    name: str,
    scopes: Iterable[str] = DEFAULT_SCOPES,
    webhook_url: str | None = None,
    rate_limit: str | None = None,
    secret: str | None = None,
) -> NewKey:
    """Create and commit a key. ``secret`` may be given (e.g. a fixed development key)."""
    scope_list = sorted(set(scopes))
    unknown = [scope for scope in scope_list if scope not in SCOPES]
    if unknown:
        raise InvalidScope(f"unknown scope(s): {', '.join(unknown)}; choose from {', '.join(SCOPES)}")
    if secret is not None:
        check_chosen_secret(session, secret)
    secret = secret or KEY_PREFIX + secrets.token_urlsafe(32)
    webhook_secret = "whsec_" + secrets.token_urlsafe(32) if webhook_url else None
    api_key = ApiKey(
        name=name,
        key_hash=hash_key(secret),
        key_prefix=secret[:10],
        scopes=",".join(scope_list),
        webhook_url=webhook_url,
        webhook_secret=webhook_secret,
        rate_limit=rate_limit,
    )
    session.add(api_key)
    session.commit()
    return NewKey(api_key, secret, webhook_secret)


def check_chosen_secret(session: Session, secret: str) -> None:
    """Raise :class:`InvalidSecret` unless ``secret`` can be a new key's secret."""
    if not MIN_SECRET_CHARS <= len(secret) <= MAX_SECRET_CHARS:
        raise InvalidSecret(f"the secret must be {MIN_SECRET_CHARS} to {MAX_SECRET_CHARS} characters")
    if not all("!" <= char <= "~" for char in secret):
        raise InvalidSecret("the secret must be printable ASCII without spaces")
    # Keys are found by their hash, so two keys with one secret would make one of them unreachable.
    if session.scalars(select(ApiKey.id).where(ApiKey.key_hash == hash_key(secret))).first() is not None:
        raise InvalidSecret("that secret is already taken by another key")


def find_api_key(session: Session, secret: str | None) -> ApiKey | None:
    """The active key matching ``secret``, or None."""
    if not secret or len(secret) > 200:
        return None
    api_key = session.scalars(select(ApiKey).where(ApiKey.key_hash == hash_key(secret))).first()
    if api_key is None or api_key.disabled_at is not None:
        return None
    return api_key


def list_api_keys(session: Session) -> list[ApiKey]:
    return list(session.scalars(select(ApiKey).order_by(ApiKey.id)))


def disable_api_key(session: Session, key_id: int) -> bool:
    api_key = session.get(ApiKey, key_id)
    if api_key is None:
        return False
    api_key.disabled_at = utcnow()
    session.commit()
    return True


#: How long a looked-up key (or its absence) is trusted in one process. A disabled key or a changed
#: scope takes at most this long to take effect.
KEY_CACHE_SECONDS = 10.0


class ApiKeyCache:
    """``find_api_key`` results per process for a few seconds.

    Every comment a site receives authenticates; without the cache a database round trip per request
    would be a large share of ingest and of the compatibility endpoints' latency.
    """

    def __init__(self, sessions: Callable[[], Session], ttl: float = KEY_CACHE_SECONDS):
        self.sessions = sessions
        self.ttl = ttl
        self._entries: dict[str, tuple[float, ApiKey | None]] = {}
        self._lock = threading.Lock()

    def find(self, secret: str | None) -> ApiKey | None:
        if not secret or len(secret) > 200:
            return None
        digest = hash_key(secret)
        now = time.monotonic()
        with self._lock:
            entry = self._entries.get(digest)
        if entry is not None and now - entry[0] < self.ttl:
            return entry[1]
        with self.sessions() as session:
            api_key = find_api_key(session, secret)
        with self._lock:
            if len(self._entries) > 10_000:  # bounded: unknown keys must not grow it forever
                self._entries.clear()
            self._entries[digest] = (now, api_key)
        return api_key

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
