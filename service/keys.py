"""API keys for CMSs: created by the CLI, stored hashed, checked on every request.

A generated key is 32 random bytes, so a fast hash (SHA-256) is safe for it: there is nothing to
guess. A short key (the WordPress Akismet plugin insists on 12 characters, given with ``--secret``)
has far less to guess, so it is stored as argon2id with a salt of its own, and a listing shows no
character of it. Only a few characters of a generated key are stored in clear (``key_prefix``), to
tell keys apart. Keys stored before this (an unsalted SHA-256 of a short key, a 10-character
prefix) keep working: :func:`protect_stored_keys` trims the prefixes at start-up, and a short key's
hash is replaced by argon2id the first time the key is used.

A key's webhook secret is not stored either: the database keeps a random salt, and the secret is
HMAC-SHA256 of that salt under the server's secret (``SECRET_KEY``, or ``var/secret-key``), so a copy
of the database alone signs nothing. Webhook secrets stored in clear by earlier versions keep working.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from argon2.low_level import Type, hash_secret_raw
from limits import parse
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from service.db import ApiKey, utcnow
from service.settings import Settings

KEY_PREFIX = "mk_"
#: comments: post and read comments; moderate: the JSON moderation API; analyze: Perspective-style
#: scoring and Akismet comment-check; submit: labels through suggestscore and submit-spam/ham.
SCOPES = ("comments", "moderate", "analyze", "submit")
DEFAULT_SCOPES = ("comments", "analyze", "submit")
#: Keys at least this long are random enough for SHA-256 (a generated key has 46 characters).
LONG_KEY_CHARS = 32
#: Characters of a generated key kept in clear: "mk_" and 4 of its 43 random ones.
SHOWN_PREFIX_CHARS = len(KEY_PREFIX) + 4
#: A short key's stored hash: "a2$<salt>$<argon2id hash>", URL-safe base64, 63 characters (the
#: column holds 64). The parameters are OWASP's minimum for argon2id; "a2" names them.
SLOW_HASH_MARK = "a2$"
_ARGON2_TIME_COST, _ARGON2_MEMORY_KIB, _ARGON2_PARALLELISM = 2, 19 * 1024, 1


#: A secret given by the operator (``keys create --secret``): long enough not to be guessed, short
#: enough for every client, printable so it survives headers, forms and host names.
MIN_SECRET_CHARS = 12
MAX_SECRET_CHARS = 200


class InvalidScope(ValueError):
    pass


class InvalidSecret(ValueError):
    """A chosen secret that is too short, too long, not printable ASCII, or already some key's."""


class InvalidRateLimit(ValueError):
    """A rate limit the limiter cannot read, such as "lots" or "5 per fortnight"."""


def check_rate_limit(value: str | None, option: str) -> None:
    """Raise :class:`InvalidRateLimit` unless ``value`` is empty or reads like "100/second"."""
    if not value:
        return
    try:
        parse(value)
    except ValueError:
        raise InvalidRateLimit(f"{option} must look like 100/second or 5/minute, got {value!r}") from None


@dataclass(frozen=True)
class NewKey:
    """A freshly created key. ``secret`` and ``webhook_secret`` are shown once and never again."""

    api_key: ApiKey
    secret: str
    webhook_secret: str | None


def hash_key(secret: str) -> str:
    """The fast hash: of a long key as stored, and of any key as the in-process cache's index."""
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def is_short(secret: str) -> bool:
    return len(secret) < LONG_KEY_CHARS


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _slow_digest(secret: str, salt: bytes) -> bytes:
    return hash_secret_raw(
        secret.encode("utf-8", "surrogatepass"),
        salt,
        time_cost=_ARGON2_TIME_COST,
        memory_cost=_ARGON2_MEMORY_KIB,
        parallelism=_ARGON2_PARALLELISM,
        hash_len=32,
        type=Type.ID,
    )


def slow_hash(secret: str) -> str:
    """argon2id of ``secret`` with a fresh salt, in the form stored in ``key_hash``."""
    salt = secrets.token_bytes(12)
    return f"{SLOW_HASH_MARK}{_b64(salt)}${_b64(_slow_digest(secret, salt))}"


def matches_slow_hash(secret: str, stored: str) -> bool:
    try:
        salt_text, digest_text = stored.removeprefix(SLOW_HASH_MARK).split("$")
        salt = base64.urlsafe_b64decode(salt_text + "=" * (-len(salt_text) % 4))
    except ValueError:
        return False
    return hmac.compare_digest(_b64(_slow_digest(secret, salt)), digest_text)


def stored_hash(secret: str) -> str:
    return slow_hash(secret) if is_short(secret) else hash_key(secret)


def shown_prefix(secret: str) -> str:
    """What a listing may show of a key: a generated key's first few characters, nothing of others."""
    return secret[:SHOWN_PREFIX_CHARS] if secret.startswith(KEY_PREFIX) and not is_short(secret) else ""


#: A stored webhook secret that is only the salt of a derived one: "d1$<salt>".
DERIVED_WEBHOOK_MARK = "d1$"
WEBHOOK_SECRET_PREFIX = "whsec_"
SECRET_KEY_FILE = "secret-key"


def server_secret(settings: Settings) -> str:
    """``SECRET_KEY``, else a random one kept in ``var/secret-key`` (created once, owner-only)."""
    if settings.secret_key:
        return settings.secret_key
    path = settings.var_dir / SECRET_KEY_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process of this service created it first
            pass
        else:
            with os.fdopen(descriptor, "w") as file:
                file.write(secrets.token_urlsafe(48))
    return path.read_text().strip()


def _derive_webhook_secret(salt: str, sealing_key: str) -> str:
    digest = hmac.new(sealing_key.encode(), b"webhook-secret:" + salt.encode(), hashlib.sha256).digest()
    return WEBHOOK_SECRET_PREFIX + _b64(digest)


def webhook_secret(api_key: ApiKey, sealing_key: str) -> str | None:
    """The secret the key's webhooks are signed with (``sealing_key``: :func:`server_secret`)."""
    stored = api_key.webhook_secret
    if not stored:
        return None
    if stored.startswith(DERIVED_WEBHOOK_MARK):
        return _derive_webhook_secret(stored.removeprefix(DERIVED_WEBHOOK_MARK), sealing_key)
    return stored  # stored in clear by an earlier version


def create_api_key(
    session: Session,
    name: str,
    scopes: Iterable[str] = DEFAULT_SCOPES,
    webhook_url: str | None = None,
    rate_limit: str | None = None,
    secret: str | None = None,
    sealing_key: str | None = None,
    site_id: int | None = None,
    comment_rate_limit: str | None = None,
) -> NewKey:
    """Create and commit a key. ``secret`` may be given (e.g. a fixed development key).

    A key with a ``webhook_url`` needs ``sealing_key`` (:func:`server_secret`), which its webhook
    secret is derived with.
    """
    if webhook_url and not sealing_key:
        raise ValueError("a key with a webhook needs the server's secret to derive its webhook secret")
    check_rate_limit(rate_limit, "rate_limit")
    check_rate_limit(comment_rate_limit, "comment_rate_limit")
    scope_list = sorted(set(scopes))
    unknown = [scope for scope in scope_list if scope not in SCOPES]
    if unknown:
        raise InvalidScope(f"unknown scope(s): {', '.join(unknown)}; choose from {', '.join(SCOPES)}")
    if secret is not None:
        check_chosen_secret(session, secret)
    secret = secret or KEY_PREFIX + secrets.token_urlsafe(32)
    salt = secrets.token_urlsafe(24) if webhook_url else None
    signing_secret = _derive_webhook_secret(salt, sealing_key or "") if salt else None
    api_key = ApiKey(
        name=name,
        key_hash=stored_hash(secret),
        key_prefix=shown_prefix(secret),
        scopes=",".join(scope_list),
        webhook_url=webhook_url,
        webhook_secret=DERIVED_WEBHOOK_MARK + salt if salt else None,
        rate_limit=rate_limit,
        comment_rate_limit=comment_rate_limit or None,
        site_id=site_id,
    )
    session.add(api_key)
    session.commit()
    return NewKey(api_key, secret, signing_secret)


def check_chosen_secret(session: Session, secret: str) -> None:
    """Raise :class:`InvalidSecret` unless ``secret`` can be a new key's secret."""
    if not MIN_SECRET_CHARS <= len(secret) <= MAX_SECRET_CHARS:
        raise InvalidSecret(f"the secret must be {MIN_SECRET_CHARS} to {MAX_SECRET_CHARS} characters")
    if not all("!" <= char <= "~" for char in secret):
        raise InvalidSecret("the secret must be printable ASCII without spaces")
    # Keys are found by their hash, so two keys with one secret would make one of them unreachable.
    taken = session.scalars(select(ApiKey.id).where(ApiKey.key_hash == hash_key(secret))).first() is not None
    if taken or (is_short(secret) and _find_short_key(session, secret, disabled_too=True) is not None):
        raise InvalidSecret("that secret is already taken by another key")


def find_api_key(session: Session, secret: str | None) -> ApiKey | None:
    """The active key matching ``secret``, or None."""
    if not secret or len(secret) > 200:
        return None
    api_key = session.scalars(select(ApiKey).where(ApiKey.key_hash == hash_key(secret))).first()
    if api_key is not None and is_short(secret):
        _rehash_legacy_short_key(session, api_key, secret)
    elif api_key is None and is_short(secret):
        api_key = _find_short_key(session, secret)
    if api_key is None or api_key.disabled_at is not None:
        return None
    return api_key


def _find_short_key(session: Session, secret: str, disabled_too: bool = False) -> ApiKey | None:
    """A short key has a salt of its own, so each active short key's hash is computed and compared.

    There are few short keys (one per WordPress site), and failed checks are limited per client
    address (``service.web.auth``), which bounds what an unknown key can cost.
    """
    query = select(ApiKey).where(ApiKey.key_hash.startswith(SLOW_HASH_MARK))
    candidates = session.scalars(query if disabled_too else query.where(ApiKey.disabled_at.is_(None)))
    return next((key for key in candidates if matches_slow_hash(secret, key.key_hash)), None)


def _rehash_legacy_short_key(session: Session, api_key: ApiKey, secret: str) -> None:
    """A short key stored as an unsalted SHA-256 (before argon2id) gets its slow hash on first use."""
    api_key.key_hash = slow_hash(secret)
    api_key.key_prefix = ""
    session.commit()


def protect_stored_keys(session: Session) -> int:
    """Trim every stored prefix to what :func:`shown_prefix` allows; returns the rows changed.

    Keys stored before it kept 10 characters of every key, short ones included. Idempotent.
    """
    generated = ApiKey.key_prefix.startswith(KEY_PREFIX)
    trimmed = session.execute(
        update(ApiKey)
        .where(generated, func.length(ApiKey.key_prefix) > SHOWN_PREFIX_CHARS)
        .values(key_prefix=func.substr(ApiKey.key_prefix, 1, SHOWN_PREFIX_CHARS))
    ).rowcount  # type: ignore[attr-defined]
    cleared = session.execute(
        update(ApiKey).where(~generated, ApiKey.key_prefix != "").values(key_prefix="")
    ).rowcount  # type: ignore[attr-defined]
    session.commit()
    return int(trimmed) + int(cleared)


def list_api_keys(session: Session) -> list[ApiKey]:
    return list(session.scalars(select(ApiKey).order_by(ApiKey.id)))


#: Given for a limit in :func:`set_rate_limits`, removes the key's own limit (the setting applies again).
NO_LIMIT = "off"


def set_rate_limits(
    session: Session, key_id: int, rate_limit: str | None = None, comment_rate_limit: str | None = None
) -> ApiKey | None:
    """Change a key's own limits and commit; None leaves a limit as it is, :data:`NO_LIMIT` removes it.

    Raises :class:`InvalidRateLimit` for a limit the limiter cannot read. Returns None for no such key.
    Processes that cached the key see the change within :data:`KEY_CACHE_SECONDS`.
    """
    changes = {"rate_limit": rate_limit, "comment_rate_limit": comment_rate_limit}
    for option, value in changes.items():
        if value != NO_LIMIT:
            check_rate_limit(value, option)
    api_key = session.get(ApiKey, key_id)
    if api_key is None:
        return None
    for column, value in changes.items():
        if value is not None:
            setattr(api_key, column, None if value == NO_LIMIT else value)
    session.commit()
    return api_key


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
