"""The Flask application factory: ``create_app``, also the gunicorn entry ``service:create_app()``."""

from __future__ import annotations

import gc
import time

from flask import Flask, Request, Response, request
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from werkzeug.middleware.proxy_fix import ProxyFix

from service import metrics
from service.keys import server_secret
from service.logs import configure_logging
from service.runtime import Runtime
from service.settings import Settings
from service.web import api, body_limit, health, openapi
from service.web.compat import akismet, coral, perspective, ratelimit
from service.web.context import RUNTIME_EXTENSION
from service.web.error_handlers import register_error_handlers
from service.web.moderation import json_api, pages, site_api


def create_app(settings: Settings | None = None, runtime: Runtime | None = None) -> Flask:
    """Build the app from ``settings`` (and an existing ``runtime``, which tests and benches share).

    With no arguments this is the production entry point (``gunicorn "service:create_app()"``): it
    reads the environment, configures logging, and freezes the objects loaded at start-up.
    """
    entry_point = settings is None and runtime is None
    if settings is None:
        settings = runtime.settings if runtime is not None else Settings.from_env()
        configure_logging(settings)
    runtime = runtime or Runtime.build(settings)
    app = Flask(__name__)
    app.config.update(
        MAX_CONTENT_LENGTH=settings.max_body_bytes,
        SECRET_KEY=server_secret(settings),
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.secure_cookies,
    )
    app.json.sort_keys = False  # type: ignore[attr-defined]  # answers keep their documented order
    app.session_interface = _CookieOnlyWhenPresent()
    app.extensions[RUNTIME_EXTENSION] = runtime
    register_error_handlers(
        app,
        {
            f"{perspective.bp.url_prefix}/": perspective.http_error,
            "/1.1/": akismet.http_error,
            "/1.2/": akismet.http_error,
        },
    )
    body_limit.install(app, settings.max_body_bytes)
    if settings.trusted_proxies:  # the client address (failed-key limits) from X-Forwarded-For
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=settings.trusted_proxies)  # type: ignore[method-assign]
    _set_up_compat_endpoints(app, runtime)
    for blueprint in (
        health.bp,
        api.bp,
        pages.bp,
        json_api.bp,
        site_api.bp,
        perspective.bp,
        akismet.bp,
        coral.bp,
    ):
        app.register_blueprint(blueprint)
    openapi.register(
        app,
        (
            health.openapi_part,
            api.openapi_part,
            json_api.openapi_part,
            site_api.openapi_part,
            perspective.openapi_part,
            akismet.openapi_part,
            coral.openapi_part,
        ),
    )
    app.after_request(_security_headers)
    if settings.metrics_enabled:
        app.before_request(_start_clock)
        app.after_request(_count_request)
    if entry_point:
        _freeze_start_up_objects()
    return app


def _set_up_compat_endpoints(app: Flask, runtime: Runtime) -> None:
    """The compatibility endpoints score in the request: their rate limiter, and the model, loaded now.

    Under ``gunicorn --preload`` that is once, in the master, before it forks its workers.
    """
    ratelimit.init_rate_limits(app, runtime)
    runtime.models.refresh()


def _freeze_start_up_objects() -> None:
    # Everything loaded so far (the model, scikit-learn, SQLAlchemy) lives as long as the process.
    # Freezing it keeps the garbage collector from walking ~170k long-lived objects in the middle of
    # requests (it cost the moderator queue page 200+ ms at p95), and keeps forked gunicorn workers
    # from dirtying the pages they share with the --preload master.
    gc.collect()
    gc.freeze()


_STARTED = "moderation.started"


def _start_clock() -> None:
    request.environ[_STARTED] = time.perf_counter()


def _count_request(response: Response) -> Response:
    """Requests by URL rule (not the raw path, which would make a label per comment id) and status."""
    started = request.environ.get(_STARTED)
    if started is not None:
        rule = request.url_rule.rule if request.url_rule is not None else None
        metrics.observe_request(rule, request.method, response.status_code, started)
    return response


#: Every answer's security headers: the APIs answer JSON or text, never a page to render.
API_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'; base-uri 'none'",
}


def _security_headers(response: Response) -> Response:
    """The one hook that sets security headers: the moderator pages' own set, else the APIs'."""
    if request.blueprint == pages.bp.name:
        headers = pages.page_headers(request.endpoint)
        response.headers.update(headers)
        return response
    for name, value in API_HEADERS.items():
        response.headers.setdefault(name, value)
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
