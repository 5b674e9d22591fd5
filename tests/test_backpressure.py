"""Back-pressure on POST /v1/comments: a per-key rate limit (off by default), 429 with Retry-After."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from service.db import Comment
from service.keys import NO_LIMIT, SCOPES, InvalidRateLimit, create_api_key, set_rate_limits
from service.settings import Settings, SettingsError
from tests.conftest import drain_queues

POLITE = {"name": "Grace", "email": "grace@example.com", "text": "Interesting, I learned something today."}


def stored(runtime) -> int:  # noqa: ANN001
    with runtime.session() as session:
        return session.scalar(select(func.count()).select_from(Comment))


def test_no_comment_limit_by_default(runtime, client, api_key):
    assert runtime.settings.comment_rate_limit == ""
    for _ in range(30):
        assert client.post("/v1/comments", json=POLITE, headers=api_key.headers).status_code == 202
    assert stored(runtime) == 30


def test_the_limit_answers_429_with_retry_after_per_key_and_stores_nothing_over_it(runtime, client, api_key):
    runtime.settings = runtime.settings.with_overrides(comment_rate_limit="3/minute")
    answers = [client.post("/v1/comments", json=POLITE, headers=api_key.headers) for _ in range(5)]
    assert [answer.status_code for answer in answers] == [202, 202, 202, 429, 429]
    refused = answers[3]
    assert refused.get_json()["error"]["code"] == "too_many_requests"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert stored(runtime) == 3
    # Another key has an allowance of its own.
    with runtime.session() as session:
        other = create_api_key(session, "other-cms", SCOPES)
    other_headers = {"Authorization": f"Bearer {other.secret}"}
    assert client.post("/v1/comments", json=POLITE, headers=other_headers).status_code == 202
    # Every accepted comment still gets its verdict.
    drain_queues(runtime)
    with runtime.session() as session:
        assert session.scalar(select(func.count()).where(Comment.status == "pending")) == 0


def test_the_limit_fails_open_when_redis_is_gone(runtime, client, api_key):
    runtime.settings = runtime.settings.with_overrides(comment_rate_limit="1/minute")
    assert client.post("/v1/comments", json=POLITE, headers=api_key.headers).status_code == 202
    limiter = client.application.extensions["moderation.ratelimit"]
    limiter.storage = type(limiter.storage)("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    # The limit cannot be checked: the comment is accepted (stored; the reconciler enqueues it).
    assert client.post("/v1/comments", json=POLITE, headers=api_key.headers).status_code == 202


def test_comment_rate_limit_setting():
    assert Settings.from_env({"COMMENT_RATE_LIMIT": "100/second"}).comment_rate_limit == "100/second"
    assert Settings.from_env({"COMMENT_RATE_LIMIT": ""}).comment_rate_limit == ""
    with pytest.raises(SettingsError, match="COMMENT_RATE_LIMIT"):
        Settings.from_env({"COMMENT_RATE_LIMIT": "lots"})
    assert Settings.from_env({}).ready_degraded_status == 200
    assert Settings.from_env({"READY_DEGRADED_STATUS": "503"}).ready_degraded_status == 503
    with pytest.raises(SettingsError, match="READY_DEGRADED_STATUS"):
        Settings.from_env({"READY_DEGRADED_STATUS": "500"})
    with pytest.raises(SettingsError, match="METRICS_ENABLED"):
        Settings.from_env({"METRICS_ENABLED": "maybe"})
    assert Settings.from_env({"METRICS_ENABLED": "false"}).metrics_enabled is False


def test_a_keys_own_limit_replaces_the_service_default(runtime, client, api_key):
    with runtime.session() as session:
        strict = create_api_key(session, "strict-cms", SCOPES, comment_rate_limit="2/minute")
    strict_headers = {"Authorization": f"Bearer {strict.secret}"}
    answers = [client.post("/v1/comments", json=POLITE, headers=strict_headers) for _ in range(3)]
    assert [answer.status_code for answer in answers] == [202, 202, 429]
    assert "2/minute" in answers[2].get_json()["error"]["message"]
    # The service default (off) still holds for the other key.
    for _ in range(5):
        assert client.post("/v1/comments", json=POLITE, headers=api_key.headers).status_code == 202
    # A busy site's key may get more than the service default.
    runtime.settings = runtime.settings.with_overrides(comment_rate_limit="1/minute")
    with runtime.session() as session:
        busy = create_api_key(session, "busy-cms", SCOPES, comment_rate_limit="100/minute")
    busy_headers = {"Authorization": f"Bearer {busy.secret}"}
    assert all(
        client.post("/v1/comments", json=POLITE, headers=busy_headers).status_code == 202 for _ in range(4)
    )
    assert stored(runtime) == 2 + 5 + 4


def test_a_limit_that_cannot_be_read_is_refused_when_the_key_is_made(runtime):
    with runtime.session() as session, pytest.raises(InvalidRateLimit, match="comment_rate_limit"):
        create_api_key(session, "typo", SCOPES, comment_rate_limit="lots")
    with runtime.session() as session, pytest.raises(InvalidRateLimit, match="rate_limit"):
        create_api_key(session, "typo", SCOPES, rate_limit="5 per fortnight")


def test_a_limit_set_after_the_key_was_made_applies_and_can_be_removed(runtime, client):
    with runtime.session() as session:
        new = create_api_key(session, "cms", SCOPES)
        set_rate_limits(session, new.api_key.id, comment_rate_limit="2/minute")
    headers = {"Authorization": f"Bearer {new.secret}"}
    answers = [client.post("/v1/comments", json=POLITE, headers=headers).status_code for _ in range(3)]
    assert answers == [202, 202, 429]

    with runtime.session() as session:
        set_rate_limits(session, new.api_key.id, comment_rate_limit=NO_LIMIT)
    runtime.api_keys.clear()  # what KEY_CACHE_SECONDS does in a running process
    assert client.post("/v1/comments", json=POLITE, headers=headers).status_code == 202
