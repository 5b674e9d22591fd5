"""Shared fixtures: real Redis, real databases (SQLite and PostgreSQL), the app, tiny models.

Services: Redis on 127.0.0.1:6379 and PostgreSQL on 127.0.0.1:5432 (database ``test``), which
``.ci/run`` starts. Override with ``TEST_REDIS_URL`` / ``TEST_POSTGRES_URL``. Tests never touch
``os.environ``: they build their own ``Settings``.
"""

from __future__ import annotations

import json
import os
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import redis
from sqlalchemy import text

from service.db import Base, make_engine
from service.settings import Settings

TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/13")
TEST_POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


# --- services ------------------------------------------------------------------------------------


@pytest.fixture
def redis_url() -> Iterator[str]:
    """A real Redis database, flushed before and after each test."""
    client = redis.Redis.from_url(TEST_REDIS_URL)
    try:
        client.flushdb()
    except redis.ConnectionError:
        pytest.fail(f"Redis is not running at {TEST_REDIS_URL}; start it (see .ci/run)")
    yield TEST_REDIS_URL
    client.flushdb()
    client.close()


@pytest.fixture(scope="session")
def postgres_url() -> str:
    engine = make_engine(TEST_POSTGRES_URL)
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as error:  # pragma: no cover - environment problem, said plainly
        pytest.fail(f"PostgreSQL is not reachable at {TEST_POSTGRES_URL}: {error}")
    finally:
        engine.dispose()
    return TEST_POSTGRES_URL


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Each database-backed test runs on SQLite (the embedded default) and on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.db'}"
        return
    url = request.getfixturevalue("postgres_url")
    engine = make_engine(url)
    Base.metadata.drop_all(engine)
    engine.dispose()
    yield url
    engine = make_engine(url)
    Base.metadata.drop_all(engine)
    engine.dispose()


# --- the application -----------------------------------------------------------------------------


@pytest.fixture
def settings(tmp_path: Path, redis_url: str, database_url: str, tiny_registry) -> Settings:  # noqa: ANN001
    return Settings(
        redis_url=redis_url,
        database_url=database_url,
        var_dir=tmp_path / "var",
        model_dir=tiny_registry.root,
        secret_key="test-secret",
        reconcile_after_seconds=30.0,
        redis_prefix="test",
    )


@pytest.fixture
def runtime(settings: Settings):  # noqa: ANN201
    from service import jobs
    from service.runtime import Runtime

    runtime = Runtime.build(settings)
    jobs.bind_runtime(runtime)
    yield runtime
    jobs.bind_runtime(None)
    runtime.close()


@pytest.fixture
def app(runtime):  # noqa: ANN001, ANN201
    from service.app import create_app

    app = create_app(runtime.settings, runtime=runtime)
    app.config["TESTING"] = True
    return app


@pytest.fixture
def client(app):  # noqa: ANN001, ANN201
    return app.test_client()


@dataclass
class Key:
    secret: str
    id: int
    webhook_secret: str | None = None

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.secret}"}


@pytest.fixture
def api_key(runtime) -> Key:  # noqa: ANN001
    from service.keys import SCOPES, create_api_key

    with runtime.session() as session:
        new = create_api_key(session, "test-cms", SCOPES)
    return Key(new.secret, new.api_key.id)


def drain_queues(runtime) -> None:  # noqa: ANN001
    """Run every queued job in this process (RQ's SimpleWorker, burst mode)."""
    from rq import SimpleWorker

    from service.queueing import WORKER_QUEUES

    SimpleWorker(list(WORKER_QUEUES), connection=runtime.redis).work(burst=True, logging_level="WARNING")


# --- a CMS that receives webhooks ----------------------------------------------------------------


@dataclass
class WebhookReceiver:
    url: str
    requests: list[dict] = field(default_factory=list)
    #: HTTP status to answer with; tests flip it to simulate a CMS that is down.
    status: int = 200

    def bodies(self) -> list[dict]:
        return [json.loads(item["body"]) for item in self.requests]


@pytest.fixture
def webhook_receiver() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            receiver.requests.append({"headers": dict(self.headers), "body": body.decode()})
            self.send_response(receiver.status)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/moderation"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield receiver
    server.shutdown()
    server.server_close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
