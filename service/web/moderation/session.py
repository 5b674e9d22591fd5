"""Moderator logins on the review pages: the session cookie, its CSRF token, and who is logged in.

Pages need a session login (a CMS API key or a moderator token opens nothing here). Every POST carries
the session's CSRF token, as a form field or an ``X-CSRF-Token`` header. A session ends after
``SESSION_MAX_AGE``, and as soon as the moderator's password changes or the account is disabled.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from datetime import timedelta
from urllib.parse import urlsplit

from flask import g, redirect, request, session, url_for
from flask.typing import ResponseReturnValue

from service.db import Moderator
from service.errors import Forbidden, Unauthorized
from service.web.context import current_runtime

#: A login lasts at most this long, however active the moderator is.
SESSION_MAX_AGE = timedelta(hours=12)

#: Pages anyone may open.
_PUBLIC = {"moderation.login", "moderation.login_form", "moderation.static"}
#: Endpoints that answer JSON to scripts, so a missing login is a 401 rather than a redirect.
_JSON_ENDPOINTS = {
    "moderation.decisions",
    "moderation.reject_author",
    "moderation.contact",
    "moderation.counts",
}


def csrf_token() -> str:
    token = session.get("csrf")
    if not token:
        token = secrets.token_urlsafe(32)
        session["csrf"] = token
    return token


def _check_csrf() -> None:
    sent = request.headers.get("X-CSRF-Token") or request.form.get("csrf_token") or ""
    expected = session.get("csrf") or ""
    if not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
        raise Forbidden("The form has expired or did not come from this site; reload the page.")


def _fingerprint(moderator: Moderator) -> str:
    # A new password (or a disabled account) ends the sessions that were opened with the old one.
    return hashlib.sha256(moderator.password_hash.encode()).hexdigest()[:16]


def safe_next(target: str | None) -> str:
    """Where to go after login: only a path on this site under /moderate, else the held queue."""
    default = url_for("moderation.queue_page")
    if not target or len(target) > 2000:
        return default
    if any(ord(char) < 32 or char == "\\" for char in target):
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return default
    if not (parts.path == "/moderate" or parts.path.startswith("/moderate/")):
        return default
    return target


def require_login() -> ResponseReturnValue | None:
    """The pages' ``before_request``: check CSRF on writes, then the login (or send to the login page)."""
    if request.method not in ("GET", "HEAD", "OPTIONS"):
        _check_csrf()
    if request.endpoint in _PUBLIC:
        return None
    moderator = _session_moderator()
    if moderator is None:
        session.pop("moderator_id", None)
        if request.endpoint in _JSON_ENDPOINTS or request.method != "GET":
            raise Unauthorized("Log in first.")
        return redirect(url_for("moderation.login_form", next=request.full_path.rstrip("?")))
    g.moderator = moderator
    return None


def _session_moderator() -> Moderator | None:
    moderator_id = session.get("moderator_id")
    login_at = session.get("login_at", 0)
    if not moderator_id or time.time() - login_at > SESSION_MAX_AGE.total_seconds():
        return None
    with current_runtime().session() as db:
        moderator = db.get(Moderator, moderator_id)
    if moderator is None or moderator.disabled:
        return None
    if not hmac.compare_digest(session.get("auth", ""), _fingerprint(moderator)):
        return None
    return moderator


def start_session(moderator: Moderator) -> None:
    """Log ``moderator`` in: a fresh session (no fixation) with a new CSRF token."""
    session.clear()
    session.permanent = False
    session["moderator_id"] = moderator.id
    session["auth"] = _fingerprint(moderator)
    session["login_at"] = int(time.time())
    session["csrf"] = secrets.token_urlsafe(32)


def end_session() -> None:
    session.clear()


def current_moderator() -> Moderator:
    """The logged-in moderator (set by :func:`require_login`)."""
    return g.moderator  # type: ignore[no-any-return]


def actor() -> str:
    """The logged-in moderator as a status change's actor."""
    return f"moderator:{current_moderator().username}"
