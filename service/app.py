"""The Flask application factory."""

from __future__ import annotations

import logging
import secrets
import sys

from flask import Flask, Request, current_app
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface

from service.errors import register_error_handlers
from service.runtime import Runtime
from service.settings import Settings

EXTENSION = "moderation"


def create_app(settings: Settings | None = None, runtime: Runtime | None = None) -> Flask:
    """Build the app. ``gunicorn "service:create_app()"`` reads settings from the environment."""
    if settings is None:
        settings = runtime.settings if runtime is not None else Settings.from_env()
        configure_logging(settings)
    runtime = runtime or Runtime.build(settings)
    app = Flask(__name__)
    app.config.update(
        MAX_CONTENT_LENGTH=settings.max_body_bytes,
        SECRET_KEY=settings.secret_key or _local_secret_key(settings),
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.secure_cookies,
    )
    app.json.sort_keys = False  # type: ignore[attr-defined]  # answers keep their documented order
    app.session_interface = _CookieOnlyWhenPresent()
    app.extensions[EXTENSION] = runtime
    register_error_handlers(app)
    _register_blueprints(app)
    app.after_request(_security_headers)
    return app


def _local_secret_key(settings: Settings) -> str:
    """With no SECRET_KEY set, a random one kept in var/ (so sessions survive restarts of `make run`)."""
    path = settings.var_dir / "secret-key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(48))
        path.chmod(0o600)
    return path.read_text().strip()


def _register_blueprints(app: Flask) -> None:
    from service import akismet, api, health, moderation, moderation_api, perspective

    app.register_blueprint(health.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(moderation.bp)
    app.register_blueprint(moderation_api.bp)
    app.register_blueprint(perspective.bp)
    app.register_blueprint(akismet.bp)


_SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'; base-uri 'none'",
}


def _security_headers(response):  # type: ignore[no-untyped-def]
    headers = response.headers
    for name, value in _SECURITY_HEADERS.items():
        if name not in headers:  # pages set their own Content-Security-Policy
            headers[name] = value
    return response


class _CookieOnlyWhenPresent(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, minus the work for requests that carry no session cookie.

    The CMS API never has one, and Flask would otherwise build a signing serializer on every
    request; an empty session behaves the same, and saving one sets no cookie.
    """

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        if self.get_cookie_name(app) not in request.cookies:
            return self.session_class() if app.secret_key else None
        return super().open_session(app, request)


def current_runtime() -> Runtime:
    return current_app.extensions[EXTENSION]


class _JobIdFilter(logging.Filter):
    """Adds the RQ job id (when inside a job) to every record, as ``job=...``."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            from rq import get_current_job

            job = get_current_job()
        except Exception:
            job = None
        record.job = job.id if job is not None else "-"
        return True


def configure_logging(settings: Settings) -> None:
    """Entry points call this once; modules only ever do ``logging.getLogger(__name__)``."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_JobIdFilter())
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s job=%(job)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level)
