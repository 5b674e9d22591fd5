"""Liveness, readiness and the OpenAPI document."""

from __future__ import annotations

import logging

import redis
from flask import Blueprint, Response, jsonify
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

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
    """Redis, the database and the active model are all reachable."""
    runtime = current_runtime()
    checks = {
        "redis": _check_redis(runtime),
        "database": _check_database(runtime),
        "model": _check_model(runtime),
    }
    ready = all(check["ok"] for check in checks.values())
    return jsonify({"status": "ready" if ready else "unavailable", "checks": checks}), 200 if ready else 503


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
