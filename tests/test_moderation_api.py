"""The JSON moderation API: moderator tokens, API keys with the moderate scope, queues and decisions."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from service.db import APPROVED, HELD, REJECTED, Comment, Label, utcnow
from service.keys import create_api_key
from service.moderators import issue_token
from tests.test_moderation_pages import add_comment, make_moderator


@pytest.fixture
def moderator_headers(runtime) -> dict[str, str]:
    make_moderator(runtime, "bob")
    with runtime.session() as session:
        token = issue_token(session, "bob")
    return {"Authorization": f"Bearer {token}"}


def test_requires_a_token(client):
    response = client.get("/v1/queues/held")
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "unauthorized"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    response = client.get("/v1/queues/held", headers={"Authorization": "Bearer mt_not-a-token"})
    assert response.status_code == 401


def test_api_key_needs_the_moderate_scope(client, runtime):
    with runtime.session() as session:
        secret = create_api_key(session, "cms", ["comments"]).secret
    response = client.get("/v1/queues/held", headers={"Authorization": f"Bearer {secret}"})
    assert response.status_code == 403
    assert response.get_json()["error"]["code"] == "forbidden"


def test_disabled_moderator_token_stops_working(client, runtime, moderator_headers):
    from service.moderators import set_disabled

    assert client.get("/v1/queues/held", headers=moderator_headers).status_code == 200
    with runtime.session() as session:
        set_disabled(session, "bob", True)
    assert client.get("/v1/queues/held", headers=moderator_headers).status_code == 401


def test_queue_with_filters_and_cursor_pagination(client, runtime, moderator_headers):
    now = utcnow()
    ids = [
        add_comment(runtime, received_at=now - timedelta(minutes=i), post_id=f"p{i % 2}") for i in range(7)
    ]
    add_comment(runtime, status=APPROVED, reason="clean")

    seen = []
    url: str | None = "/v1/queues/held?limit=3"
    while url:
        response = client.get(url, headers=moderator_headers)
        assert response.status_code == 200
        body = response.get_json()
        assert body["queue"] == "held" and body["count"] == 7
        seen += [comment["id"] for comment in body["comments"]]
        url = f"/v1/queues/held?limit=3&cursor={body['next_cursor']}" if body["next_cursor"] else None
    assert seen == ids

    body = client.get("/v1/queues/held?post=p1&sort=oldest", headers=moderator_headers).get_json()
    assert [comment["id"] for comment in body["comments"]] == [ids[5], ids[3], ids[1]]
    first = body["comments"][0]
    assert first["text"] and first["author"]["email"] == "mallory@example.com"
    assert first["scores"]["insult"] == 0.91 and first["reasons"][0]["spans"] == [[11, 16]]
    assert body["counts"]["approved"] == 1


def test_queue_errors_are_json(client, moderator_headers):
    response = client.get("/v1/queues/held?min=7&sort=up", headers=moderator_headers)
    assert response.status_code == 422
    assert set(response.get_json()["error"]["fields"]) >= {"min", "sort"}
    response = client.get("/v1/queues/held?cursor=garbage", headers=moderator_headers)
    assert response.status_code == 422
    assert response.get_json()["error"]["fields"]["cursor"]
    assert client.get("/v1/queues/trash", headers=moderator_headers).status_code == 404


def test_moderator_decision_and_undo(client, runtime, moderator_headers):
    comment_id = add_comment(runtime)
    response = client.post(
        f"/v1/comments/{comment_id}/decision", json={"decision": "spam"}, headers=moderator_headers
    )
    assert response.status_code == 200
    body = response.get_json()
    assert body["changed"] is True
    assert (body["comment"]["status"], body["comment"]["reason"]) == (REJECTED, "moderator_spam")

    response = client.post(
        f"/v1/comments/{comment_id}/decision", json={"decision": "undo"}, headers=moderator_headers
    )
    assert response.status_code == 200
    assert response.get_json()["comment"]["status"] == HELD
    with runtime.session() as session:
        labels = session.scalars(select(Label).order_by(Label.id)).all()
        assert [(label.decision, label.actor) for label in labels] == [
            ("spam", "moderator:bob"),
            ("undo", "moderator:bob"),
        ]


def test_decision_errors(client, runtime, moderator_headers):
    comment_id = add_comment(runtime)
    url = f"/v1/comments/{comment_id}/decision"
    response = client.post(url, json={"decision": "burn"}, headers=moderator_headers)
    assert response.status_code == 422
    assert response.get_json()["error"]["fields"]["decision"]
    assert client.post(url, data="decision=spam", headers=moderator_headers).status_code == 415
    response = client.post("/v1/comments/nope/decision", json={"decision": "spam"}, headers=moderator_headers)
    assert response.status_code == 404
    response = client.post(
        url, json={"decision": "approve", "expected_status": "pending"}, headers=moderator_headers
    )
    assert response.status_code == 409
    assert response.get_json()["error"]["fields"]["decision"] == "conflict"
    response = client.post(url, json={"decision": "undo"}, headers=moderator_headers)
    assert response.status_code == 409


def test_api_key_sees_and_decides_only_its_own_comments(client, runtime, api_key):
    own = add_comment(runtime, api_key_id=api_key.id)
    with runtime.session() as session:
        other_key = create_api_key(session, "other-cms", ["comments"]).api_key
    foreign = add_comment(runtime, api_key_id=other_key.id)

    body = client.get("/v1/queues/held", headers=api_key.headers).get_json()
    assert [comment["id"] for comment in body["comments"]] == [own]
    assert body["count"] == 1

    response = client.post(
        f"/v1/comments/{foreign}/decision", json={"decision": "approve"}, headers=api_key.headers
    )
    assert response.status_code == 404
    response = client.post(
        f"/v1/comments/{own}/decision", json={"decision": "approve"}, headers=api_key.headers
    )
    assert response.status_code == 200
    with runtime.session() as session:
        assert session.get(Comment, own).decided_by == f"api-key:{api_key.id}"
        assert session.get(Comment, foreign).status == HELD
        label = session.scalars(select(Label)).one()
        assert (label.decision, label.actor, label.previous_status) == (
            "approve",
            f"api-key:{api_key.id}",
            HELD,
        )
