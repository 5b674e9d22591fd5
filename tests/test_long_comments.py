"""Every character of a comment is judged (issue #12, finding 1): no unseen tail past Akismet."""

from __future__ import annotations

import pytest

from classifier.comment import Comment as ClassifierComment
from service.db import APPROVED
from service.policy import apply_policy
from service.web.compat.perspective import MAX_COMMENT_BYTES
from service.web.validation import MAX_TEXT_CHARS

HAM = "Thank you for this lovely article, I enjoyed reading it with my morning coffee. "
ABUSE = "You are a stupid idiot and a moron, shut up you pathetic loser. "


def harmless(chars: int) -> str:
    return (HAM * (chars // len(HAM) + 1))[:chars]


def comment_check(client, secret: str, text: str):  # noqa: ANN001, ANN201
    return client.post(
        "/1.1/comment-check",
        data={"api_key": secret, "blog": "https://example.com", "comment_content": text},
    )


def test_links_after_the_first_20000_characters_are_counted(client, api_key):
    text = harmless(MAX_TEXT_CHARS) + " see www.a.biz www.b.biz www.c.biz"
    response = comment_check(client, api_key.secret, text)
    assert response.status_code == 200
    assert response.get_data(as_text=True) == "true"
    assert response.headers["X-Moderation-Reason"] in ("too_many_links", "spam_hold")


def test_an_abusive_tail_after_20000_harmless_characters_is_not_approved(client, api_key, runtime):
    tail = ABUSE * 40
    alone = runtime.models.score([ClassifierComment(text=tail)], explain=False).scores[0].values
    assert apply_policy(alone, tail, runtime.settings.thresholds).status != APPROVED  # the model sees it
    assert comment_check(client, api_key.secret, harmless(100)).get_data(as_text=True) == "false"

    response = comment_check(client, api_key.secret, harmless(MAX_TEXT_CHARS) + tail)
    assert response.status_code == 200
    assert response.get_data(as_text=True) == "true", response.headers.get("X-Moderation-Reason")


def test_v1_still_refuses_over_long_text(client, api_key):
    body = {"name": "Ada", "email": "ada@example.com", "text": harmless(MAX_TEXT_CHARS + 1)}
    response = client.post("/v1/comments", json=body, headers=api_key.headers)
    assert response.status_code == 422
    assert "text" in response.get_json()["error"]["fields"]


@pytest.mark.parametrize("span_annotations", [False, True])
def test_perspective_still_refuses_over_long_text(client, api_key, span_annotations):
    body = {
        "comment": {"text": harmless(MAX_COMMENT_BYTES + 1)},
        "requestedAttributes": {"TOXICITY": {}},
        "spanAnnotations": span_annotations,
    }
    response = client.post(f"/v1alpha1/comments:analyze?key={api_key.secret}", json=body)
    assert response.status_code == 400
    assert response.get_json()["error"]["details"][0]["errorType"] == "COMMENT_TOO_LONG"
