"""API keys for CMSs: created by the CLI, stored as SHA-256 hashes, checked on every request.

A key is 32 random bytes, so a fast hash is safe here (no dictionary to attack), unlike passwords.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.db import ApiKey, utcnow

KEY_PREFIX = "mk_"
#: comments: post and read comments; moderate: the JSON moderation API; analyze: Perspective-style
#: scoring and Akismet comment-check; submit: labels through suggestscore and submit-spam/ham.
SCOPES = ("comments", "moderate", "analyze", "submit")
DEFAULT_SCOPES = ("comments", "analyze", "submit")


class InvalidScope(ValueError):
    pass


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
