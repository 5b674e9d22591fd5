"""No secret in a log line, data files readable by their owner only, no webhook secret in the database."""

from __future__ import annotations

import io
import logging
import stat
from pathlib import Path

import pytest
from sqlalchemy import text

from service.keys import SCOPES, create_api_key, server_secret, webhook_secret
from service.logs import configure_logging
from service.runtime import Runtime
from service.settings import Settings

SECRETS = ("AIzaSECRETone", "SECRETtwo12", "SECRETthree", "SECRETfour", "SECRETfive")
LINE = (
    '127.0.0.1 "POST /v1alpha1/comments:analyze?key=AIzaSECRETone&alt=json HTTP/1.1" 200 '
    "/1.1/comment-check?api_key=SECRETtwo12 /x?a=1&token=SECRETthree;secret=SECRETfour "
    "/login?Password=SECRETfive"
)


@pytest.fixture
def restore_logging():  # noqa: ANN201
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.parametrize("name", ["werkzeug", "waitress", "gunicorn.access", "service.web.api"])
def test_query_string_secrets_are_redacted_in_every_log_line(name, capsys, restore_logging):
    configure_logging(Settings())
    logging.getLogger(name).warning("%s", LINE)
    written = capsys.readouterr().err
    assert "alt=json" in written and "a=1" in written
    for secret in SECRETS:
        assert secret not in written
    assert "key=[redacted]" in written and "api_key=[redacted]" in written


def test_a_server_access_log_of_its_own_is_redacted_too(restore_logging):
    """gunicorn's --access-logfile puts its own handler on ``gunicorn.access``, beside ours."""
    configure_logging(Settings())
    stream = io.StringIO()
    access = logging.getLogger("gunicorn.access")
    handler = logging.StreamHandler(stream)
    access.addHandler(handler)
    access.propagate = False
    try:
        # As gunicorn logs: a format string with a dict of atoms.
        access.info(
            "%(r)s %(s)s", {"r": "GET /v1alpha1/comments:analyze?key=AIzaSECRETone HTTP/1.1", "s": "200"}
        )
    finally:
        access.removeHandler(handler)
        access.propagate = True
    assert "AIzaSECRETone" not in stream.getvalue()
    assert "?key=[redacted] HTTP/1.1 200" in stream.getvalue()


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_embedded_data_files_are_private(tmp_path, tiny_registry):
    var = tmp_path / "var"
    var.mkdir(mode=0o755)
    (var / "moderation.db").touch(mode=0o644)  # left by an earlier version: tightened at start-up
    (var / "moderation.db").chmod(0o644)
    settings = Settings(var_dir=var, model_dir=tiny_registry.root, redis_prefix="private")
    runtime = Runtime.build(settings)
    try:
        with runtime.session() as session:
            create_api_key(session, "dev", SCOPES)
        runtime.redis.set("private:probe", "1")
        runtime.redis.save()
        # A connection left open keeps the -wal and -shm files, as a serving process does.
        keeper = runtime.engine.raw_connection()
        keeper.cursor().execute("SELECT count(*) FROM api_keys")
        files = [
            var / "moderation.db",
            var / "moderation.db-wal",
            var / "moderation.db-shm",
            var / "redis.db",
        ]
        for path in files:
            assert path.exists(), path
            assert _mode(path) == 0o600, (path, oct(_mode(path)))
        assert _mode(var) == 0o700
        keeper.close()
        redis_settings = var / "redis.db.settings"
        if redis_settings.exists():
            assert _mode(redis_settings) & 0o077 == 0
    finally:
        runtime.redis.shutdown(nosave=True)
        runtime.close()


def test_a_database_read_does_not_yield_the_webhook_secret(runtime):
    sealing = server_secret(runtime.settings)
    with runtime.session() as session:
        new = create_api_key(
            session, "cms", ["comments"], webhook_url="https://cms.example/hook", sealing_key=sealing
        )
        assert new.webhook_secret and new.webhook_secret.startswith("whsec_")
        row = session.execute(text("SELECT * FROM api_keys WHERE id = :id"), {"id": new.api_key.id}).one()
        assert not any(new.webhook_secret in str(value) for value in row)
        assert not any(new.webhook_secret.removeprefix("whsec_") in str(value) for value in row)
        # The service itself still signs with it: the stored part and the server's secret together.
        assert webhook_secret(new.api_key, sealing) == new.webhook_secret
        assert webhook_secret(new.api_key, sealing + "x") != new.webhook_secret


def test_a_webhook_key_needs_the_server_secret(runtime):
    with runtime.session() as session, pytest.raises(ValueError):
        create_api_key(session, "cms", ["comments"], webhook_url="https://cms.example/hook")
