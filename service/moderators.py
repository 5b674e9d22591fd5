"""Moderator accounts: passwords hashed with argon2, logins counted and locked, API tokens.

Managed with ``python -m service moderators add|list|disable|enable|password|token`` (``service.cli``).
A moderator logs in to the review pages with a password, and may be issued an API token for the JSON
moderation API. Tokens are 32 random bytes, so (as for API keys) only their SHA-256 is stored;
passwords get argon2id.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from dataclasses import dataclass
from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import select
from sqlalchemy.orm import Session

from service.db import ROLE_MODERATOR, ROLES, Moderator, utcnow

logger = logging.getLogger(__name__)

#: Failed logins in a row that lock an account, and for how long.
MAX_FAILED_LOGINS = 5
LOCKOUT = timedelta(minutes=15)
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
    #: "ok", "invalid" (unknown user or wrong password), "locked" or "disabled".
    outcome: str


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
    if not disabled:
        moderator.failed_logins = 0
        moderator.locked_until = None
    session.commit()
    return moderator


def set_password(session: Session, username: str, password: str) -> Moderator:
    moderator = find_moderator(session, username)
    if moderator is None:
        raise ModeratorError(f"no moderator {username!r}")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ModeratorError(f"passwords need at least {MIN_PASSWORD_LENGTH} characters")
    moderator.password_hash = hash_password(password)
    moderator.failed_logins = 0
    moderator.locked_until = None
    session.commit()
    return moderator


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


def authenticate(session: Session, username: str, password: str) -> LoginResult:
    """Check a login and count failures; commits the counters. Locked accounts are not even checked."""
    moderator = find_moderator(session, username) if username else None
    if moderator is None:
        _verify(_DUMMY_HASH, password)
        return LoginResult(None, "invalid")
    now = utcnow()
    locked_until = moderator.locked_until
    if locked_until is not None and locked_until > now:
        return LoginResult(None, "locked")
    if not _verify(moderator.password_hash, password):
        moderator.failed_logins = (moderator.failed_logins or 0) + 1
        if moderator.failed_logins >= MAX_FAILED_LOGINS:
            moderator.locked_until = now + LOCKOUT
            moderator.failed_logins = 0
            logger.warning("moderator=%s locked after repeated failed logins", moderator.id)
        session.commit()
        return LoginResult(None, "invalid")
    if moderator.disabled:
        return LoginResult(None, "disabled")
    moderator.failed_logins = 0
    moderator.locked_until = None
    moderator.last_login_at = now
    if _hasher.check_needs_rehash(moderator.password_hash):
        moderator.password_hash = hash_password(password)
    session.commit()
    return LoginResult(moderator, "ok")


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
