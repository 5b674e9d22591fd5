"""Liveness, readiness (with the backlog), Prometheus metrics and the OpenAPI document."""

from __future__ import annotations

import logging

import redis
from flask import Blueprint, Response, jsonify
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from service import metrics
from service.errors import NotFound
from service.runtime import Runtime
from service.web.context import current_runtime
from service.web.openapi import Part, current_document, json_response

logger = logging.getLogger(__name__)

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> Response:
    """The process is alive and serving; says nothing about its dependencies."""
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz() -> tuple[Response, int]:
    """Redis, the database and the active model are all reachable, and the backlog is short.

    "unavailable" (503) when a dependency is down. "degraded" when only the backlog is too old: the
    process still accepts comments, and nothing accepted is dropped, so by default a load balancer
    should keep sending (200); ``READY_DEGRADED_STATUS=503`` makes it a failure for those that must act.
    """
    runtime = current_runtime()
    checks = {
        "redis": _check_redis(runtime),
        "database": _check_database(runtime),
        "model": _check_model(runtime),
    }
    if not all(check["ok"] for check in checks.values()):
        return jsonify({"status": "unavailable", "checks": checks}), 503
    checks["backlog"] = _check_backlog(runtime)
    if checks["backlog"]["ok"]:
        return jsonify({"status": "ready", "checks": checks}), 200
    return jsonify({"status": "degraded", "checks": checks}), runtime.settings.ready_degraded_status


def _check_backlog(runtime: Runtime) -> dict[str, object]:
    backlog = metrics.read_backlog(runtime.session, runtime.redis, runtime.settings)
    if backlog is None:  # a dependency failed between the checks above and now
        return {"ok": False, "error": "backlog unreadable"}
    limit = runtime.settings.ready_max_backlog_seconds
    return {
        "ok": backlog.oldest_pending_seconds <= limit,
        "pending": backlog.pending,
        "oldest_pending_seconds": round(backlog.oldest_pending_seconds, 3),
        "max_backlog_seconds": limit,
    }


@bp.get("/metrics")
def prometheus_metrics() -> Response:
    """Prometheus' text format: every process's counters (multiprocess mode) and the backlog now.

    No API key (Prometheus scrapes with none): restrict it at the proxy, or ``METRICS_ENABLED=false``.
    """
    runtime = current_runtime()
    if not runtime.settings.metrics_enabled:
        raise NotFound("Metrics are turned off (METRICS_ENABLED).")
    registry = metrics.scrape_registry(
        runtime.settings.metrics_multiprocess_dir, [metrics.runtime_collector(runtime)]
    )
    return Response(metrics.render(registry), content_type=metrics.CONTENT_TYPE)


def _check_redis(runtime: Runtime) -> dict[str, object]:
    try:
        runtime.redis.ping()
        return {"ok": True}
    except redis.RedisError as error:
        return {"ok": False, "error": type(error).__name__}


def _check_database(runtime: Runtime) -> dict[str, object]:
    try:
        with runtime.session() as session:
            session.execute(text("SELECT 1"))
        return {"ok": True}
    except SQLAlchemyError as error:
        return {"ok": False, "error": type(error).__name__}


def _check_model(runtime: Runtime) -> dict[str, object]:
    model = runtime.models.model
    if model is None:
        return {"ok": False, "error": "no active model; run `make model`"}
    return {"ok": True, "version": model.version}


@bp.get("/openapi.json")
def openapi() -> Response:
    return jsonify(current_document())


def openapi_part() -> Part:
    """The health checks and the document itself: no key."""
    checks = {
        "type": "object",
        "required": ["status", "checks"],
        "properties": {"status": {"type": "string"}, "checks": {"type": "object"}},
    }
    return {
        "paths": {
            "/healthz": {
                "get": {
                    "summary": "Liveness",
                    "security": [],
                    "responses": {
                        "200": json_response(
                            "Alive.", {"type": "object", "properties": {"status": {"type": "string"}}}
                        )
                    },
                }
            },
            "/readyz": {
                "get": {
                    "summary": "Readiness: Redis, database and model reachable",
                    "security": [],
                    "responses": {
                        "200": json_response("Ready.", checks),
                        "503": json_response("Not ready.", checks),
                    },
                }
            },
            "/openapi.json": {
                "get": {
                    "summary": "This document",
                    "security": [],
                    "responses": {"200": json_response("The OpenAPI 3.1 document.", {"type": "object"})},
                }
            },
        }
    }
