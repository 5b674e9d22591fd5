"""Moderator accounts: passwords hashed with argon2, failed logins throttled, API tokens.

Managed with ``python -m service moderators add|list|disable|enable|password|token`` (``service.cli``).
A moderator logs in to the review pages with a password, and may be issued an API token for the JSON
moderation API. Tokens are 32 random bytes, so (as for API keys) only their SHA-256 is stored;
passwords get argon2id.

Failed logins are throttled by :class:`LoginGuard` in Redis, never by locking the account itself: a
lock that anyone can trigger is a way to shut a moderator out. Failures count per (client address,
username) pair, per address, and per username; the per-username limit does not apply to addresses the
moderator logged in from before. Counters are keyed by the name typed, whether or not it exists, and
every attempt verifies one argon2 hash, so answers and their timing say nothing about which names exist.
(The ``failed_logins`` and ``locked_until`` columns are no longer used.)
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from dataclasses import dataclass
from datetime import timedelta

import redis
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from service.db import ROLE_MODERATOR, ROLES, Moderator, ModeratorSession, utcnow

logger = logging.getLogger(__name__)

#: Failed logins one address may make at one username within ``LOCKOUT`` before it must wait.
MAX_FAILED_LOGINS = 5
#: Failed logins one address may make at any usernames (password spraying) within ``LOCKOUT``.
MAX_FAILED_LOGINS_PER_ADDRESS = 20
#: Failed logins at one username from all addresses together (a distributed guess) within ``LOCKOUT``;
#: then only addresses the moderator has logged in from before may try it.
MAX_FAILED_LOGINS_PER_ACCOUNT = 100
LOCKOUT = timedelta(minutes=15)
#: How long an address the moderator logged in from stays "known" (exempt from the per-username limit).
KNOWN_ADDRESS_TTL = timedelta(days=90)
MIN_PASSWORD_LENGTH = 10
TOKEN_PREFIX = "mt_"

_hasher = PasswordHasher()
# Verified when the username is unknown, so that a miss costs as much time as a wrong password.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


class ModeratorError(ValueError):
    """A moderator account cannot be created or changed as asked."""


@dataclass(frozen=True)
class LoginResult:
    moderator: Moderator | None
    #: "ok", "invalid" (unknown user or wrong password), "throttled" or "disabled".
    outcome: str
    #: Seconds until a throttled address may try again.
    retry_after: int = 0


class LoginGuard:
    """Counts failed logins in Redis (fixed windows of ``LOCKOUT``) and says when to refuse an attempt.

    Redis keys hold SHA-256 digests of addresses and names, not the values. If Redis fails, attempts
    are allowed (and logged): the password check itself still stands, and availability of the review
    pages beats a counter, as for the API's rate limits.
    """

    def __init__(self, connection: redis.Redis, prefix: str):
        self._redis = connection
        self._prefix = f"{prefix}:login"

    def _keys(self, username: str, address: str) -> tuple[str, str, str, str]:
        name, where = _digest(username), _digest(address)
        return (
            f"{self._prefix}:pair:{where}:{name}",
            f"{self._prefix}:address:{where}",
            f"{self._prefix}:account:{name}",
            f"{self._prefix}:known:{name}:{where}",
        )

    def retry_after(self, username: str, address: str) -> int:
        """Seconds the attempt must wait (0: it may go ahead)."""
        pair, per_address, account, known = self._keys(username, address)
        try:
            pipe = self._redis.pipeline(transaction=False)
            for key in (pair, per_address, account):
                pipe.get(key)
                pipe.ttl(key)
            pipe.exists(known)
            values = pipe.execute()
        except redis.RedisError as error:
            logger.warning("login throttle not checked error=%s (allowed)", type(error).__name__)
            return 0
        counts = [int(values[index] or 0) for index in (0, 2, 4)]
        ttls = [max(int(values[index]), 1) for index in (1, 3, 5)]
        limits = [MAX_FAILED_LOGINS, MAX_FAILED_LOGINS_PER_ADDRESS, MAX_FAILED_LOGINS_PER_ACCOUNT]
        if values[6]:  # the moderator logged in from here before: a distributed guess does not stop them
            limits[2] = 0
        over = zip(counts, ttls, limits, strict=True)
        waits = [ttl for count, ttl, limit in over if limit and count >= limit]
        return max(waits, default=0)

    def record_failure(self, username: str, address: str) -> None:
        window = int(LOCKOUT.total_seconds())
        try:
            pipe = self._redis.pipeline(transaction=False)
            for key in self._keys(username, address)[:3]:
                pipe.set(key, 0, ex=window, nx=True)
                pipe.incr(key)
            pipe.execute()
        except redis.RedisError as error:
            logger.warning("failed login not counted error=%s", type(error).__name__)

    def record_success(self, username: str, address: str) -> None:
        pair, _per_address, _account, known = self._keys(username, address)
        try:
            pipe = self._redis.pipeline(transaction=False)
            pipe.delete(pair)
            pipe.set(known, 1, ex=int(KNOWN_ADDRESS_TTL.total_seconds()))
            pipe.execute()
        except redis.RedisError as error:
            logger.warning("login not recorded error=%s", type(error).__name__)


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def find_moderator(session: Session, username: str) -> Moderator | None:
    return session.scalars(select(Moderator).where(Moderator.username == username)).first()


def create_moderator(
    session: Session, username: str, password: str, site_id: int | None = None, role: str = ROLE_MODERATOR
) -> Moderator:
    """Create and commit an account (of one site, or of every site when ``site_id`` is None)."""
    if role not in ROLES:
        raise ModeratorError(f"roles are {', '.join(ROLES)}")
    username = username.strip()
    if not username or len(username) > 100 or not username.isprintable() or " " in username:
        raise ModeratorError("usernames are 1 to 100 printable characters without spaces")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ModeratorError(f"passwords need at least {MIN_PASSWORD_LENGTH} characters")
    if find_moderator(session, username) is not None:
        raise ModeratorError(f"moderator {username!r} exists already")
    moderator = Moderator(
        username=username, password_hash=hash_password(password), site_id=site_id, role=role
    )
    session.add(moderator)
    session.commit()
    return moderator


def list_moderators(session: Session) -> list[Moderator]:
    return list(session.scalars(select(Moderator).order_by(Moderator.username)))


def set_disabled(session: Session, username: str, disabled: bool) -> Moderator:
    moderator = find_moderator(session, username)
    if moderator is None:
        raise ModeratorError(f"no moderator {username!r}")
    moderator.disabled = disabled
    if disabled:
        end_all_sessions(session, moderator)
    session.commit()
    return moderator


def set_password(session: Session, username: str, password: str) -> Moderator:
    moderator = find_moderator(session, username)
    if moderator is None:
        raise ModeratorError(f"no moderator {username!r}")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ModeratorError(f"passwords need at least {MIN_PASSWORD_LENGTH} characters")
    moderator.password_hash = hash_password(password)
    end_all_sessions(session, moderator)
    session.commit()
    return moderator


def open_session(session: Session, moderator: Moderator, lifetime: timedelta) -> str:
    """Record a new login session for ``moderator`` and commit; returns its id (for the cookie only)."""
    now = utcnow()
    # Expired rows of anyone go here, so the table stays as small as the live sessions.
    session.execute(delete(ModeratorSession).where(ModeratorSession.expires_at <= now))
    session_id = secrets.token_urlsafe(32)
    session.add(
        ModeratorSession(id_hash=hash_token(session_id), moderator_id=moderator.id, expires_at=now + lifetime)
    )
    session.commit()
    return session_id


def find_by_session(session: Session, session_id: str | None) -> Moderator | None:
    """The active moderator whose live session ``session_id`` is, or None."""
    if not session_id or not isinstance(session_id, str) or len(session_id) > 100:
        return None
    row = session.get(ModeratorSession, hash_token(session_id))
    if row is None or row.expires_at <= utcnow():
        return None
    moderator = session.get(Moderator, row.moderator_id)
    if moderator is None or moderator.disabled:
        return None
    return moderator


def close_session(session: Session, session_id: str | None) -> None:
    """End one session (logout) and commit."""
    if session_id and isinstance(session_id, str):
        session.execute(delete(ModeratorSession).where(ModeratorSession.id_hash == hash_token(session_id)))
        session.commit()


def end_all_sessions(session: Session, moderator: Moderator) -> None:
    """End every session of ``moderator`` (the caller commits)."""
    session.execute(delete(ModeratorSession).where(ModeratorSession.moderator_id == moderator.id))


def set_role(session: Session, username: str, role: str, site_id: int | None) -> Moderator:
    """Change a moderator's role and site (None: every site)."""
    if role not in ROLES:
        raise ModeratorError(f"roles are {', '.join(ROLES)}")
    moderator = find_moderator(session, username)
    if moderator is None:
        raise ModeratorError(f"no moderator {username!r}")
    moderator.role = role
    moderator.site_id = site_id
    session.commit()
    return moderator


def issue_token(session: Session, username: str) -> str:
    """A new API token for the moderator (replacing any earlier one); shown once, stored hashed."""
    moderator = find_moderator(session, username)
    if moderator is None:
        raise ModeratorError(f"no moderator {username!r}")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    moderator.token_hash = hash_token(token)
    session.commit()
    return token


def find_by_token(session: Session, token: str | None) -> Moderator | None:
    """The active moderator holding ``token``, or None."""
    if not token or not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    moderator = session.scalars(select(Moderator).where(Moderator.token_hash == hash_token(token))).first()
    if moderator is None or moderator.disabled:
        return None
    return moderator


def authenticate(
    session: Session, guard: LoginGuard, username: str, password: str, address: str
) -> LoginResult:
    """Check a login from client ``address``; failures are counted by ``guard``.

    Every call verifies exactly one argon2 hash (a dummy one for unknown names), throttled or not, so
    that the time taken does not tell real names from unknown ones.
    """
    moderator = find_moderator(session, username) if username else None
    correct = _verify(moderator.password_hash if moderator is not None else _DUMMY_HASH, password)
    retry_after = guard.retry_after(username, address)
    if retry_after:
        return LoginResult(None, "throttled", retry_after)
    if moderator is None or not correct:
        guard.record_failure(username, address)
        return LoginResult(None, "invalid")
    if moderator.disabled:
        return LoginResult(None, "disabled")
    guard.record_success(username, address)
    moderator.last_login_at = utcnow()
    if _hasher.check_needs_rehash(moderator.password_hash):
        moderator.password_hash = hash_password(password)
    session.commit()
    return LoginResult(moderator, "ok")


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
