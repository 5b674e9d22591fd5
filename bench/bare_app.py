"""The ingest baseline: a bare Flask endpoint that only does one RQ enqueue, served like ours."""

from __future__ import annotations

import os

import redis
from flask import Flask, request
from rq import Queue


def noop(body: dict) -> None:
    """The job the bare endpoint enqueues; nothing ever runs it."""


def create_app() -> Flask:
    app = Flask(__name__)
    queue = Queue("bare", connection=redis.Redis.from_url(os.environ["REDIS_URL"]))

    @app.post("/enqueue")
    def enqueue() -> tuple[dict, int]:
        job = queue.enqueue(noop, request.get_json())
        return {"id": job.id, "status": "pending"}, 202

    return app
