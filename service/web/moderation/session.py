"""Moderator logins on the review pages: the session cookie, its CSRF token, and who is logged in.

Pages need a session login (a CMS API key or a moderator token opens nothing here). Every POST carries
the session's CSRF token, as a form field or an ``X-CSRF-Token`` header. A session ends after
``SESSION_MAX_AGE``, at logout, and as soon as the moderator's password changes or the account is
disabled: the cookie only names a session row on the server (``ModeratorSession``), which those delete,
so a cookie copied before any of them opens nothing afterwards.
"""

from __future__ import annotations

import hmac
import secrets
from datetime import timedelta
from urllib.parse import urlsplit

from flask import g, redirect, request, session, url_for
from flask.typing import ResponseReturnValue

from service.db import Moderator
from service.errors import Forbidden, Unauthorized
from service.moderators import close_session, find_by_session, open_session
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
        session.pop("sid", None)
        if request.endpoint in _JSON_ENDPOINTS or request.method != "GET":
            raise Unauthorized("Log in first.")
        return redirect(url_for("moderation.login_form", next=request.full_path.rstrip("?")))
    g.moderator = moderator
    return None


def _session_moderator() -> Moderator | None:
    session_id = session.get("sid")
    if not session_id:
        return None
    with current_runtime().session() as db:
        return find_by_session(db, session_id)


def start_session(moderator: Moderator) -> None:
    """Log ``moderator`` in: a fresh session (no fixation) recorded on the server, with a new CSRF token."""
    with current_runtime().session() as db:
        close_session(db, session.get("sid"))  # a login over an earlier one replaces it
        session_id = open_session(db, moderator, SESSION_MAX_AGE)
    session.clear()
    session.permanent = False
    session["sid"] = session_id
    session["csrf"] = secrets.token_urlsafe(32)


def end_session() -> None:
    """Log out: the server forgets the session, so a copy of the cookie is worthless too."""
    with current_runtime().session() as db:
        close_session(db, session.get("sid"))
    session.clear()


def current_moderator() -> Moderator:
    """The logged-in moderator (set by :func:`require_login`)."""
    return g.moderator  # type: ignore[no-any-return]


def actor() -> str:
    """The logged-in moderator as a status change's actor."""
    return f"moderator:{current_moderator().username}"
