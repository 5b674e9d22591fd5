"""The CMS API end to end on a real Redis and a real database (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import threading
import time

import pytest
from flask import url_for
from sqlalchemy import func, select, text

from service import queueing
from service.db import APPROVED, HELD, PENDING, REJECTED, Comment, StatusChange
from service.jobs import score_comments
from tests.conftest import drain_queues

POLITE = {
    "name": "Ada Lovelace",
    "email": "ada@example.com",
    "text": "Thank you for this thoughtful article.",
}
SPAM = {
    "name": "Cheap Watches Online",
    "email": "deals@mailinator.com",
    "author_url": "http://cheap-watches.example.shop/",
    "text": "BUY CHEAP WATCHES NOW!!! http://cheap-watches.example.shop/ best price free shipping click here",
}


def post(client, key, body, **kwargs):
    return client.post("/v1/comments", json=body, headers=key.headers, **kwargs)


def test_post_answers_202_only_after_storing(client, runtime, api_key):
    response = post(client, api_key, POLITE)

    assert response.status_code == 202
    body = response.get_json()
    assert body["status"] == "pending"
    assert body["links"]["self"] == f"/v1/comments/{body['id']}"
    assert response.headers["Location"] == body["links"]["self"]
    with runtime.session() as session:
        comment = session.get(Comment, body["id"])
        assert comment.status == PENDING
        assert comment.author_email == "ada@example.com"
        assert comment.received_at is not None and comment.api_key_id == api_key.id


def test_links_match_the_url_map_behind_a_path_prefix(app, client, api_key):
    # The API builds its links by hand (cheaper than url_for); they must be what url_for builds,
    # also when the app is mounted under a prefix (SCRIPT_NAME) behind a proxy.
    body = client.post(
        "/v1/comments", json=POLITE, headers=api_key.headers, base_url="http://localhost/moderation/"
    ).get_json()
    with app.test_request_context("/", base_url="http://localhost/moderation/"):
        expected = url_for("api.get_comment_status", comment_id=body["id"])
    assert expected.startswith("/moderation/v1/")
    assert body["links"]["self"] == expected


def test_worker_reaches_a_verdict_the_cms_can_read(client, runtime, api_key):
    comment_id = post(client, api_key, POLITE).get_json()["id"]

    drain_queues(runtime)

    body = client.get(f"/v1/comments/{comment_id}", headers=api_key.headers).get_json()
    assert body["status"] == APPROVED
    assert body["reason"] == "clean"
    with runtime.session() as session:
        history = session.scalars(select(StatusChange).where(StatusChange.comment_id == comment_id)).all()
    assert [(h.from_status, h.to_status, h.actor) for h in history] == [
        (PENDING, APPROVED, f"model:{runtime.models.version}")
    ]
    assert set(body["scores"]) >= {"spam", "toxicity", "insult", "threat", "identity_attack"}
    assert body["model_version"] == runtime.models.version
    assert body["decided_by"] == "model"
    assert body["received_at"] and body["decided_at"]


def test_spam_is_not_approved_and_the_reason_is_returned(client, runtime, api_key):
    comment_id = post(client, api_key, SPAM).get_json()["id"]

    drain_queues(runtime)

    body = client.get(f"/v1/comments/{comment_id}", headers=api_key.headers).get_json()
    assert body["status"] in {HELD, REJECTED}
    assert body["reason"] in {"spam_reject", "spam_hold"}
    assert body["scores"]["spam"] > 0.5
    assert any(reason["attribute"] == "spam" for reason in body["reasons"])


def test_many_comments_are_scored_in_one_batch_job(client, runtime, api_key):
    ids = [
        post(client, api_key, {**POLITE, "text": f"Good point number {i}."}).get_json()["id"]
        for i in range(30)
    ]

    assert len(runtime.redis.keys("rq:job:score-*")) == 1  # one drain job for the whole burst
    drain_queues(runtime)

    with runtime.session() as session:
        statuses = session.scalars(select(Comment.status).where(Comment.id.in_(ids))).all()
    assert len(statuses) == 30 and PENDING not in statuses


def test_same_external_id_returns_the_existing_comment_without_a_second_job(client, runtime, api_key):
    first = post(client, api_key, {**POLITE, "external_id": 42})
    again = post(client, api_key, {**POLITE, "external_id": "42"})

    assert first.get_json()["id"] == again.get_json()["id"]
    assert again.status_code == 202  # still pending, so still "accepted"
    assert runtime.redis.llen(queueing.inbox_key(runtime.settings)) == 1
    with runtime.session() as session:
        assert session.scalar(select(func.count()).select_from(Comment)) == 1
    drain_queues(runtime)
    assert post(client, api_key, {**POLITE, "external_id": 42}).status_code == 200


def test_external_ids_are_per_key(client, runtime, api_key):
    from service.keys import create_api_key

    with runtime.session() as session:
        other = create_api_key(session, "other-site", ["comments"]).secret
    first = post(client, api_key, {**POLITE, "external_id": "7"}).get_json()["id"]
    second = client.post(
        "/v1/comments", json={**POLITE, "external_id": "7"}, headers={"Authorization": f"Bearer {other}"}
    ).get_json()["id"]

    assert first != second
    assert (
        client.get(f"/v1/comments/{first}", headers={"Authorization": f"Bearer {other}"}).status_code == 404
    )


def test_wait_returns_the_verdict_when_it_arrives_in_time(client, runtime, api_key):
    def score_soon() -> None:
        # Play the worker: wait for the comment to be queued, then score it.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            claimed = queueing.claim_from_inbox(runtime.redis, runtime.settings, 10)
            if claimed:
                score_comments(runtime, claimed)
                return
            time.sleep(0.02)

    scorer = threading.Thread(target=score_soon)
    scorer.start()
    response = client.post("/v1/comments?wait=3", json=POLITE, headers=api_key.headers)
    scorer.join()

    assert response.status_code == 201
    assert response.get_json()["status"] == APPROVED


def test_wait_gives_up_with_202_when_no_worker_answers(client, api_key):
    started = time.monotonic()
    response = client.post("/v1/comments", json=POLITE, headers={**api_key.headers, "Prefer": "wait=0.3"})

    assert response.status_code == 202
    assert time.monotonic() - started >= 0.3


@pytest.mark.parametrize("wait", ["-1", "abc", "nan", "99999"])
def test_bad_wait_is_a_422_naming_wait(client, api_key, wait):
    response = client.post(f"/v1/comments?wait={wait}", json=POLITE, headers=api_key.headers)

    assert response.status_code == 422
    assert "wait" in response.get_json()["error"]["fields"]


# --- authentication ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "header", [None, "Bearer", "Bearer nope", "Basic Zm9vOmJhcg==", "Bearer " + "x" * 5000]
)
def test_missing_or_bad_key_is_401(client, header):
    headers = {"Authorization": header} if header else {}
    response = client.post("/v1/comments", json=POLITE, headers=headers)

    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "unauthorized"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_key_without_scope_is_403(client, runtime):
    from service.keys import create_api_key

    with runtime.session() as session:
        secret = create_api_key(session, "analyze-only", ["analyze"]).secret
    response = client.post("/v1/comments", json=POLITE, headers={"Authorization": f"Bearer {secret}"})

    assert response.status_code == 403


def test_disabled_key_is_401(client, runtime, api_key):
    from service.keys import disable_api_key

    with runtime.session() as session:
        disable_api_key(session, api_key.id)

    assert post(client, api_key, POLITE).status_code == 401


def test_keys_are_stored_hashed(runtime, api_key):
    from service.db import ApiKey

    with runtime.session() as session:
        stored = session.get(ApiKey, api_key.id)
    assert api_key.secret not in (stored.key_hash, stored.key_prefix)
    assert len(stored.key_hash) == 64


def test_unknown_comment_is_404_json(client, api_key):
    response = client.get("/v1/comments/does-not-exist", headers=api_key.headers)

    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "not_found"


# --- health and the OpenAPI document -------------------------------------------------------------


def test_healthz_and_readyz(client):
    assert client.get("/healthz").get_json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert all(check["ok"] for check in ready.get_json()["checks"].values())


def test_openapi_document_describes_the_real_request_schema(client, api_key):
    document = client.get("/openapi.json").get_json()
    schema = document["components"]["schemas"]["CommentIn"]

    assert document["openapi"].startswith("3.")
    assert set(schema["required"]) == {"name", "email", "text"}
    assert schema["additionalProperties"] is False
    # Every documented property is accepted, and every documented status code is one we can produce.
    example = {
        "name": "Ada",
        "email": "ada@example.com",
        "text": "Hello",
        "external_id": "e-1",
        "post_id": 12,
        "parent_id": "p-1",
        "permalink": "https://news.example/a#c1",
        "author_url": "https://ada.example",
        "referrer": "https://news.example/a",
        "author_ip": "2001:db8::1",
        "user_agent": "Mozilla/5.0",
        "language": "en",
        "created_at": "2026-11-28T10:00:00Z",
        "meta": {"section": "politics"},
    }
    assert set(example) == set(schema["properties"])
    assert post(client, api_key, example).status_code == 202
    responses = document["paths"]["/v1/comments"]["post"]["responses"]
    assert {"202", "400", "401", "413", "415", "422", "503"} <= set(responses)


def test_responses_carry_security_headers(client):
    response = client.get("/healthz")

    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]


def test_comment_meta_and_fields_round_trip(client, runtime, api_key):
    body = {
        **POLITE,
        "meta": {"section": "science", "tags": ["a", "b"]},
        "author_ip": "192.0.2.1",
        "post_id": 99,
    }
    comment_id = post(client, api_key, body).get_json()["id"]

    with runtime.session() as session:
        comment = session.get(Comment, comment_id)
        assert comment.meta == {"section": "science", "tags": ["a", "b"]}
        assert comment.post_id == "99"
        assert comment.author_ip == "192.0.2.1"


def test_hostile_html_is_stored_verbatim_and_returned_only_as_json(client, runtime, api_key):
    hostile = "<script>alert(1)</script><img src=x onerror=alert(2)> \u202eevil"
    comment_id = post(client, api_key, {**POLITE, "text": hostile}).get_json()["id"]

    response = client.get(f"/v1/comments/{comment_id}", headers=api_key.headers)
    assert response.mimetype == "application/json"
    with runtime.session() as session:
        assert session.get(Comment, comment_id).text == hostile


def test_json_body_is_decoded_even_with_charset_parameter(client, api_key):
    response = client.post(
        "/v1/comments",
        data=json.dumps(POLITE),
        headers={**api_key.headers, "Content-Type": "application/json; charset=utf-8"},
    )
    assert response.status_code == 202


def test_a_stored_comment_reads_back_exactly_as_sent(client, runtime, api_key):
    # New comments are written through the DBAPI cursor (service.db.RowInserter), not the ORM;
    # what the ORM reads back must be what was sent: JSON, odd Unicode, aware UTC timestamps.
    body = {
        **POLITE,
        "external_id": "wp-9",
        "post_id": "p-1",
        "author_ip": "2001:db8::1",
        "created_at": "2026-11-28T10:00:00+02:00",
        "meta": {"nested": {"list": [1, 2.5, None, True]}, "emoji": "😀", "rtl": "\u202eabc"},
        "text": "Zażółć gęślą jaźń — 😀 <b>bold</b> 'quotes' \"double\" \\ backslash",
    }
    comment_id = post(client, api_key, body).get_json()["id"]

    with runtime.session() as session:
        comment = session.get(Comment, comment_id)
        assert comment.meta == body["meta"]
        assert comment.text == body["text"]
        assert (comment.external_id, comment.post_id, comment.author_ip) == ("wp-9", "p-1", "2001:db8::1")
        assert comment.created_at.utcoffset().total_seconds() == 0
        assert comment.created_at.isoformat() == "2026-11-28T08:00:00+00:00"
        assert comment.received_at.tzinfo is not None and comment.status == PENDING


def test_ingest_survives_the_database_dropping_its_connection(client, runtime, api_key):
    # Ingest connections are not pinged before use; one the server closed must cost a retry, not a 5xx.
    if runtime.autocommit_engine.dialect.name != "postgresql":
        pytest.skip("needs a database server that can close a client's connection")
    assert post(client, api_key, POLITE).status_code == 202  # a pooled connection now exists
    with runtime.session() as session:
        killed = session.scalar(
            text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid() AND state = 'idle'"
            )
        )
    assert killed >= 1

    response = post(client, api_key, {**POLITE, "external_id": "after-drop"})

    assert response.status_code == 202
    with runtime.session() as session:
        assert session.scalar(select(func.count()).where(Comment.external_id == "after-drop")) == 1
