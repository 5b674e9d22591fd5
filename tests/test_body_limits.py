"""MAX_BODY_BYTES holds for chunked bodies too (issue #12, finding 2), on a real HTTP server."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import func, select

from service.db import Comment, Label
from tests.test_akismet import serve
from tests.test_slow_clients import free_port


@pytest.fixture
def port(app) -> Iterator[int]:  # noqa: ANN001
    yield from serve(app)


def post_chunked(port: int, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes, dict]:
    """POST ``body`` with ``Transfer-Encoding: chunked`` (no Content-Length), in 8 KB chunks."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    chunks = (body[start : start + 8192] for start in range(0, len(body), 8192))
    connection.request("POST", path, body=chunks, headers=headers, encode_chunked=True)
    response = connection.getresponse()
    answer = (response.status, response.read(), dict(response.getheaders()))
    connection.close()
    return answer


def comment_body(text_chars: int) -> bytes:
    return json.dumps({"name": "Ada", "email": "ada@example.com", "text": "a" * text_chars}).encode()


def stored(runtime, model) -> int:  # noqa: ANN001
    with runtime.session() as session:
        return session.scalar(select(func.count()).select_from(model))


def test_a_chunked_comment_under_the_limit_is_accepted_whole(port, runtime, api_key):
    headers = {"Content-Type": "application/json", **api_key.headers}
    status, body, _ = post_chunked(port, "/v1/comments", comment_body(15_000), headers)
    assert status == 202, body
    with runtime.session() as session:
        assert len(session.scalars(select(Comment.text)).one()) == 15_000


def test_a_chunked_comment_over_the_limit_is_413_and_nothing_is_stored(port, runtime, api_key):
    over = runtime.settings.max_body_bytes + 10
    headers = {"Content-Type": "application/json", **api_key.headers}
    status, body, _ = post_chunked(port, "/v1/comments", comment_body(over), headers)
    assert status == 413
    assert json.loads(body)["error"]["code"] == "payload_too_large"
    assert stored(runtime, Comment) == 0


def test_a_chunked_akismet_body_over_the_limit_is_413_in_akismet_shape(port, runtime, api_key):
    fields = f"api_key={api_key.secret}&blog=https://example.com&comment_content=" + "a" * (
        runtime.settings.max_body_bytes + 10
    )
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    for path in ("/1.1/comment-check", "/1.1/submit-spam"):
        status, body, answer_headers = post_chunked(port, path, fields.encode(), headers)
        assert status == 413, path
        assert body == b"invalid"
        assert "X-akismet-debug-help" in answer_headers
    assert stored(runtime, Label) == 0


def test_a_chunked_perspective_body_over_the_limit_is_comment_too_long(port, runtime, api_key):
    body = json.dumps(
        {"comment": {"text": "a" * runtime.settings.max_body_bytes}, "requestedAttributes": {"TOXICITY": {}}}
    ).encode()
    path = f"/v1alpha1/comments:analyze?key={api_key.secret}"
    status, answer, _ = post_chunked(port, path, body, {"Content-Type": "application/json"})
    assert status == 400
    assert json.loads(answer)["error"]["details"][0]["errorType"] == "COMMENT_TOO_LONG"


@pytest.fixture
def gunicorn_port(settings, api_key) -> Iterator[int]:  # noqa: ANN001
    """The production server (the Dockerfile's gunicorn) on this test's database and Redis."""
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url,
        "REDIS_PREFIX": settings.redis_prefix,
        "MODERATION_MODEL_DIR": str(settings.model_dir),
        "MODERATION_VAR_DIR": str(settings.var_dir),
        "SECRET_KEY": settings.secret_key,
    }
    command = [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--threads", "2"]
    process = subprocess.Popen([*command, "service:create_app()"], env=env, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and process.poll() is None:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            pytest.fail("gunicorn did not start")
        yield port
    finally:
        process.terminate()
        process.wait(timeout=20)


def test_gunicorn_also_answers_413_for_chunked_bodies_over_the_limit(gunicorn_port, runtime, api_key):
    over = runtime.settings.max_body_bytes + 10
    headers = {"Content-Type": "application/json", **api_key.headers}
    status, body, _ = post_chunked(gunicorn_port, "/v1/comments", comment_body(over), headers)
    assert status == 413
    assert json.loads(body)["error"]["code"] == "payload_too_large"
    fields = f"api_key={api_key.secret}&comment_content=" + "a" * over
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    status, body, _ = post_chunked(gunicorn_port, "/1.1/comment-check", fields.encode(), form)
    assert (status, body) == (413, b"invalid")
    status, _, _ = post_chunked(gunicorn_port, "/v1/comments", comment_body(15_000), headers)
    assert status == 202
    assert stored(runtime, Comment) == 1
