"""Hostile input that used to end in a 500 (issue #12, finding 6): each is a 4xx in its endpoint's shape."""

from __future__ import annotations

import base64

import pytest

from service.db import HELD, Comment
from tests.test_moderation_pages import add_comment, logged_in

DEEP = "[" * 1000 + "]" * 1000
DEEP_OBJECT = '{"a": ' + DEEP + "}"
LONE_SURROGATE = '"text \\ud800 here"'


def perspective_url(secret: str, method: str = "analyze") -> str:
    return f"/v1alpha1/comments:{method}?key={secret}"


def assert_google_shape(response, status: int = 400) -> None:  # noqa: ANN001
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert body["error"]["code"] == status
    assert body["error"]["status"] == "INVALID_ARGUMENT"


def assert_v1_shape(response, status: int) -> None:  # noqa: ANN001
    assert response.status_code == status, response.get_data(as_text=True)
    assert set(response.get_json()["error"]) >= {"code", "message"}


def test_deeply_nested_json_to_analyze_is_a_google_400(client, api_key):
    response = client.post(perspective_url(api_key.secret), data=DEEP_OBJECT, content_type="application/json")
    assert_google_shape(response)


def test_deeply_nested_json_to_comment_check_is_an_akismet_400(client, api_key):
    # Before the key check: the body is read first, to find the key in it.
    response = client.post("/1.1/comment-check", data=DEEP_OBJECT, content_type="application/json")
    assert response.status_code == 400
    assert response.get_data(as_text=True) == "invalid"
    assert response.headers["X-akismet-debug-help"]


def test_deeply_nested_json_to_the_moderator_decisions_is_a_422(client, runtime):
    csrf = logged_in(client, runtime)
    response = client.post(
        "/moderate/decisions",
        data=DEEP_OBJECT,
        content_type="application/json",
        headers={"X-CSRF-Token": csrf},
    )
    assert_v1_shape(response, 422)


def test_deeply_nested_json_to_reject_author_is_a_422_and_rejects_nobody(client, runtime):
    csrf = logged_in(client, runtime)
    comment_id = add_comment(runtime)
    response = client.post(
        f"/moderate/comments/{comment_id}/reject-author",
        data=DEEP_OBJECT,
        content_type="application/json",
        headers={"X-CSRF-Token": csrf},
    )
    assert_v1_shape(response, 422)
    with runtime.session() as session:
        assert session.get(Comment, comment_id).status == HELD


def test_deeply_nested_cursor_is_a_422(client, api_key):
    cursor = base64.urlsafe_b64encode(DEEP.encode()).decode().rstrip("=")
    response = client.get(f"/v1/queues/held?cursor={cursor}", headers=api_key.headers)
    assert_v1_shape(response, 422)
    assert "cursor" in response.get_json()["error"]["fields"]


def test_lone_surrogate_to_suggestscore_is_a_google_400(client, api_key):
    body = (
        '{"comment": {"text": '
        + LONE_SURROGATE
        + '}, "attributeScores": {"TOXICITY": {"summaryScore": {"value": 1}}}}'
    )
    response = client.post(
        perspective_url(api_key.secret, "suggestscore"), data=body, content_type="application/json"
    )
    assert_google_shape(response)


def test_lone_surrogate_in_a_json_submit_spam_is_an_akismet_400(client, api_key):
    body = (
        '{"api_key": "'
        + api_key.secret
        + '", "blog": "https://example.com", "comment_content": '
        + LONE_SURROGATE
        + "}"
    )
    response = client.post("/1.1/submit-spam", data=body, content_type="application/json")
    assert response.status_code == 400
    assert response.get_data(as_text=True) == "invalid"
    assert "surrogate" in response.headers["X-akismet-debug-help"]


@pytest.mark.parametrize("created_at", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"])
def test_created_at_that_leaves_the_calendar_in_utc_is_a_422(client, api_key, created_at):
    body = {"name": "Ada", "email": "ada@example.com", "text": "Hello there", "created_at": created_at}
    response = client.post("/v1/comments", json=body, headers=api_key.headers)
    assert_v1_shape(response, 422)
    assert "created_at" in response.get_json()["error"]["fields"]


def test_until_the_last_day_of_the_calendar_on_the_queue_api_is_a_422(client, api_key):
    response = client.get("/v1/queues/held?until=9999-12-31", headers=api_key.headers)
    assert_v1_shape(response, 422)
    assert "until" in response.get_json()["error"]["fields"]


def test_until_the_last_day_of_the_calendar_on_the_queue_page_is_shown_as_a_filter_error(client, runtime):
    logged_in(client, runtime)
    response = client.get("/moderate/?until=9999-12-31")
    assert response.status_code == 200
    assert "YYYY-MM-DD" in response.get_data(as_text=True)
