"""The Perspective-compatible endpoint, driven with the request bodies real clients send.

Coral (coralproject/talk, ``src/core/server/services/perspective/``) builds its URL as
``{endpoint}/comments:analyze?key={key}`` and sends, with ``Content-Type: application/json``:

* analyze: ``{"comment": {"text": ...}, "doNotStore": <bool>, "requestedAttributes": {MODEL: {}},
  "languages": [LANG]}`` where MODEL is the configured model (e.g. ``TOXICITY``) and LANG is the
  tenant's locale mapped to ``en``/``es``/``fr``/``de``/``pt``; it reads
  ``attributeScores[MODEL].summaryScore.value``.
* suggestscore (moderation feedback): ``{"comment": {"text": ...}, "context": {"entries": [{"text":
  "<JSON with url, reply_to_id_Coral_comment_id, Coral_comment_id>"}]}, "attributeScores":
  {"APPROVED" | "DELETED": {"summaryScore": {"value": 1}}}, "languages": ["EN"], "communityId":
  "Coral:<tenant URL>", "clientToken": "comment:<comment id>"}``; it checks the echoed clientToken.

The response and error shapes follow Google's commentanalyzer v1alpha1 reference: errors are
``{"error": {"code", "message", "status", "details": [{"@type": ...v1alpha1.Error, "errorType"}]}}``.
"""

from __future__ import annotations

import dataclasses
import json

import pytest
from sqlalchemy import func, select

from service.db import Comment, Label, UsageCounter
from service.keys import create_api_key

ANALYZE = "/v1alpha1/comments:analyze"
SUGGEST = "/v1alpha1/comments:suggestscore"
ERROR_TYPE = "type.googleapis.com/google.commentanalyzer.v1alpha1.Error"
ALL_ATTRIBUTES = ["TOXICITY", "SEVERE_TOXICITY", "INSULT", "PROFANITY", "THREAT", "IDENTITY_ATTACK", "SPAM"]


def coral_analyze_body(text: str, model: str = "TOXICITY", language: str = "en") -> dict:
    return {
        "comment": {"text": text},
        "doNotStore": True,
        "requestedAttributes": {model: {}},
        "languages": [language],
    }


def coral_suggest_body(text: str, status: str, tenant: str, comment_id: str) -> dict:
    return {
        "comment": {"text": text},
        "context": {
            "entries": [
                {
                    "text": json.dumps(
                        {
                            "url": f"https://{tenant}/story?commentID={comment_id}",
                            "reply_to_id_Coral_comment_id": None,
                            "Coral_comment_id": comment_id,
                        }
                    )
                }
            ]
        },
        "attributeScores": {status: {"summaryScore": {"value": 1}}},
        "languages": ["EN"],
        "communityId": f"Coral:https://{tenant}/",
        "clientToken": f"comment:{comment_id}",
    }


def post(client, path, body, key, **kwargs):  # noqa: ANN001, ANN201
    data = body if isinstance(body, str | bytes) else json.dumps(body)
    query = {"key": key} if key is not None else {}
    return client.post(path, data=data, query_string=query, content_type="application/json", **kwargs)


def assert_google_error(response, code: int, status: str, error_type: str | None = None) -> dict:  # noqa: ANN001
    assert response.status_code == code, response.get_data(as_text=True)
    assert response.is_json
    error = response.get_json()["error"]
    assert error["code"] == code
    assert error["status"] == status
    assert isinstance(error["message"], str) and error["message"]
    if error_type is not None:
        assert error["details"][0]["@type"] == ERROR_TYPE
        assert error["details"][0]["errorType"] == error_type
    return error


def count(runtime, model) -> int:  # noqa: ANN001
    with runtime.session() as session:
        return session.scalar(select(func.count()).select_from(model))


# --- analyze -------------------------------------------------------------------------------------


def test_coral_analyze_request_gets_a_well_formed_answer_and_stores_no_text(client, api_key, runtime, app):
    text = "Thanks for the thoughtful article, I learned a lot about the city budget."
    response = post(client, ANALYZE, coral_analyze_body(text), api_key.secret)
    assert response.status_code == 200, response.get_data(as_text=True)
    answer = response.get_json()
    assert set(answer["attributeScores"]) == {"TOXICITY"}
    summary = answer["attributeScores"]["TOXICITY"]["summaryScore"]
    assert summary["type"] == "PROBABILITY"
    assert 0.0 <= summary["value"] <= 1.0
    assert answer["attributeScores"]["TOXICITY"]["spanScores"] == [
        {"begin": 0, "end": len(text), "score": summary}
    ]
    assert answer["languages"] == ["en"]
    # Nothing but counters is kept.
    assert count(runtime, Comment) == 0
    assert count(runtime, Label) == 0
    from service.web.compat import ratelimit

    with app.app_context():
        app.extensions[ratelimit.EXTENSION + ".usage"].flush(runtime)
    with runtime.session() as session:
        rows = session.scalars(select(UsageCounter)).all()
    assert [(row.api_key_id, row.endpoint, row.count) for row in rows] == [
        (api_key.id, "perspective:analyze", 1)
    ]


@pytest.mark.parametrize("model", ["TOXICITY", "SEVERE_TOXICITY"])
def test_coral_models_score_with_the_same_model_as_v1(client, api_key, runtime, model):
    from classifier.comment import Comment as ClassifierComment

    text = "You are an idiot and everybody hates you"
    response = post(client, ANALYZE, coral_analyze_body(text, model), api_key.secret)
    value = response.get_json()["attributeScores"][model]["summaryScore"]["value"]
    expected = runtime.models.score([ClassifierComment(text=text)], explain=False).scores[0]
    assert value == pytest.approx(expected.values[model.lower()], abs=1e-6)


def test_toxic_text_scores_above_friendly_text(client, api_key):
    def toxicity(text: str) -> float:
        body = {"comment": {"text": text}, "requestedAttributes": {"TOXICITY": {}}}
        return post(client, ANALYZE, body, api_key.secret).get_json()["attributeScores"]["TOXICITY"][
            "summaryScore"
        ]["value"]

    assert toxicity("you stupid idiot, shut up, I hate you") > toxicity("Thank you, what a lovely day")


def test_all_attributes_client_token_and_header_key(client, api_key):
    body = {
        "comment": {"text": "Buy cheap pills now, they are the best for you at www.example.biz"},
        "requestedAttributes": {name: {"scoreType": "PROBABILITY"} for name in ALL_ATTRIBUTES},
        "clientToken": "abc-123",
        "sessionId": "session-1",
        "context": {"entries": [{"text": "parent comment"}]},
        "doNotStore": False,
    }
    response = post(client, ANALYZE, body, None, headers={"x-goog-api-key": api_key.secret})
    assert response.status_code == 200
    answer = response.get_json()
    assert set(answer["attributeScores"]) == set(ALL_ATTRIBUTES)
    assert answer["clientToken"] == "abc-123"
    assert answer["detectedLanguages"] == ["en"]


def test_score_threshold_leaves_attributes_out(client, api_key):
    text = "This is a perfectly normal comment about the weather."
    everything = post(
        client,
        ANALYZE,
        {"comment": {"text": text}, "requestedAttributes": {n: {} for n in ALL_ATTRIBUTES}},
        api_key.secret,
    ).get_json()["attributeScores"]
    values = {name: everything[name]["summaryScore"]["value"] for name in ALL_ATTRIBUTES}
    cut = sorted(values.values())[len(values) // 2]
    body = {
        "comment": {"text": text},
        "requestedAttributes": {n: {"scoreThreshold": cut} for n in ALL_ATTRIBUTES},
    }
    kept = post(client, ANALYZE, body, api_key.secret).get_json()["attributeScores"]
    assert set(kept) == {name for name, value in values.items() if value >= cut}
    assert set(kept) != set(ALL_ATTRIBUTES) or cut == min(values.values())


def test_span_annotations_score_each_sentence(client, api_key, runtime):
    from classifier.comment import Comment as ClassifierComment

    text = "What a lovely garden.  You are a stupid idiot!\nSee you tomorrow"
    body = {"comment": {"text": text}, "requestedAttributes": {"INSULT": {}}, "spanAnnotations": True}
    spans = post(client, ANALYZE, body, api_key.secret).get_json()["attributeScores"]["INSULT"]["spanScores"]
    pieces = [text[span["begin"] : span["end"]] for span in spans]
    assert pieces == ["What a lovely garden.", "You are a stupid idiot!", "See you tomorrow"]
    alone = runtime.models.score([ClassifierComment(text=piece) for piece in pieces], explain=False).scores
    for span, score in zip(spans, alone, strict=True):
        assert span["score"]["value"] == pytest.approx(score.values["insult"], abs=1e-6)
        assert span["score"]["type"] == "PROBABILITY"


# --- analyze errors ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "error_type"),
    [
        ({"comment": {"text": ""}, "requestedAttributes": {"TOXICITY": {}}}, "COMMENT_EMPTY"),
        ({"comment": {"text": "   "}, "requestedAttributes": {"TOXICITY": {}}}, "COMMENT_EMPTY"),
        ({"requestedAttributes": {"TOXICITY": {}}}, "COMMENT_EMPTY"),
        ({"comment": {"text": "x" * 20481}, "requestedAttributes": {"TOXICITY": {}}}, "COMMENT_TOO_LONG"),
        # 6,827 three-byte characters: few characters, but more than 20 KB of UTF-8, as Perspective counts.
        ({"comment": {"text": "€" * 6827}, "requestedAttributes": {"TOXICITY": {}}}, "COMMENT_TOO_LONG"),
        ({"comment": {"text": "hello there"}}, "NO_REQUESTED_ATTRIBUTES"),
        ({"comment": {"text": "hello there"}, "requestedAttributes": {}}, "NO_REQUESTED_ATTRIBUTES"),
        ({"comment": {"text": "hello there"}, "requestedAttributes": {"FLIRTATION": {}}}, "INVALID_REQUEST"),
        ({"comment": "hello", "requestedAttributes": {"TOXICITY": {}}}, "INVALID_REQUEST"),
        ({"comment": {"text": 42}, "requestedAttributes": {"TOXICITY": {}}}, "INVALID_REQUEST"),
        ({"comment": {"text": "hi there"}, "requestedAttributes": ["TOXICITY"]}, "INVALID_REQUEST"),
        (
            {"comment": {"text": "hi there"}, "requestedAttributes": {"TOXICITY": {"scoreThreshold": 2}}},
            "INVALID_REQUEST",
        ),
        (
            {"comment": {"text": "hi there"}, "requestedAttributes": {"TOXICITY": {"scoreType": "STD_DEV"}}},
            "INVALID_REQUEST",
        ),
        (
            {"comment": {"text": "hi there"}, "requestedAttributes": {"TOXICITY": {}}, "languages": "en"},
            "INVALID_REQUEST",
        ),
        (
            {"comment": {"text": "hi there"}, "requestedAttributes": {"TOXICITY": {}}, "doNotStore": "yes"},
            "INVALID_REQUEST",
        ),
        ("{not json", "INVALID_REQUEST"),
        ("[1, 2]", "INVALID_REQUEST"),
    ],
)
def test_request_errors_in_googles_shape(client, api_key, body, error_type):
    assert_google_error(post(client, ANALYZE, body, api_key.secret), 400, "INVALID_ARGUMENT", error_type)


def test_coral_tenant_in_another_language_is_told_honestly(client, api_key):
    response = post(client, ANALYZE, coral_analyze_body("Hola, ¿cómo estás?", language="es"), api_key.secret)
    error = assert_google_error(response, 400, "INVALID_ARGUMENT", "LANGUAGE_NOT_SUPPORTED_BY_ATTRIBUTE")
    assert error["details"][0]["languageNotSupportedByAttributeError"] == {
        "detectedLanguages": ["es"],
        "attribute": "TOXICITY",
    }


@pytest.mark.parametrize(
    "text",
    [
        "Das ist nicht gut, und ich bin auch nicht der Meinung, dass die Regierung das Problem löst.",
        "Это очень плохая статья, автор ничего не понимает",
    ],
)
def test_detected_non_english_is_not_supported(client, api_key, text):
    body = {"comment": {"text": text}, "requestedAttributes": {"TOXICITY": {}}}
    assert_google_error(
        post(client, ANALYZE, body, api_key.secret),
        400,
        "INVALID_ARGUMENT",
        "LANGUAGE_NOT_SUPPORTED_BY_ATTRIBUTE",
    )


def test_english_variants_are_accepted_and_unsupported_can_be_dropped(client, api_key):
    body = {
        "comment": {"text": "hello there"},
        "requestedAttributes": {"TOXICITY": {}},
        "languages": ["en-GB"],
    }
    assert post(client, ANALYZE, body, api_key.secret).status_code == 200
    body = {**body, "languages": ["fr"], "dropUnsupportedAttributes": True}
    response = post(client, ANALYZE, body, api_key.secret)
    assert response.status_code == 200
    assert response.get_json() == {"attributeScores": {}, "languages": ["fr"]}


def test_key_errors_in_googles_shape(client, runtime):
    body = coral_analyze_body("hello there")
    error = assert_google_error(post(client, ANALYZE, body, None), 403, "PERMISSION_DENIED")
    assert error["details"][0]["reason"] == "API_KEY_MISSING"
    error = assert_google_error(post(client, ANALYZE, body, "mk_not-a-real-key"), 400, "INVALID_ARGUMENT")
    assert error["details"][0]["reason"] == "API_KEY_INVALID"
    with runtime.session() as session:
        comments_only = create_api_key(session, "cms", ["comments"]).secret
    assert_google_error(post(client, ANALYZE, body, comments_only), 403, "PERMISSION_DENIED")
    assert_google_error(
        post(client, SUGGEST, coral_suggest_body("x", "APPROVED", "t", "1"), comments_only),
        403,
        "PERMISSION_DENIED",
    )


def test_no_model_is_a_503_in_googles_shape(runtime, api_key, tmp_path):
    from classifier.registry import Registry
    from service.scoring import ModelHolder
    from service.web.app import create_app

    (tmp_path / "no-models").mkdir()
    empty = dataclasses.replace(runtime, models=ModelHolder(Registry(tmp_path / "no-models")))
    client = create_app(empty.settings, runtime=empty).test_client()
    response = post(client, ANALYZE, coral_analyze_body("hello there"), api_key.secret)
    assert_google_error(response, 503, "UNAVAILABLE")
    assert response.headers["Retry-After"]


def test_unknown_path_and_oversized_body_answer_in_googles_shape(client, api_key, app):
    response = client.post("/v1alpha1/comments:nonsense", query_string={"key": api_key.secret})
    assert response.status_code == 404
    response = post(
        client,
        ANALYZE,
        {
            "comment": {"text": "a" * (app.config["MAX_CONTENT_LENGTH"] + 10)},
            "requestedAttributes": {"TOXICITY": {}},
        },
        api_key.secret,
    )
    assert_google_error(response, 400, "INVALID_ARGUMENT", "COMMENT_TOO_LONG")


# --- suggestscore --------------------------------------------------------------------------------


@pytest.mark.parametrize(("status", "decision"), [("APPROVED", "approve"), ("DELETED", "reject")])
def test_coral_moderation_feedback_is_stored_as_a_label(client, api_key, runtime, status, decision):
    body = coral_suggest_body("<p>stripped text of the comment</p>", status, "news.example", "c0ffee-42")
    response = post(client, SUGGEST, body, api_key.secret)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json() == {"clientToken": "comment:c0ffee-42"}
    with runtime.session() as session:
        label = session.scalars(select(Label)).one()
    assert label.source == "perspective"
    assert label.decision == decision
    assert label.external_id == "comment:c0ffee-42"
    assert "community:Coral:https://news.example/" in label.actor
    assert f"api-key:{api_key.id}" in label.actor
    assert label.text == "<p>stripped text of the comment</p>"
    if decision == "approve":
        assert label.labels == {"spam": 0.0, "toxicity": 0.0}
    else:
        assert label.labels == {}


def test_attribute_suggestions_become_labels(client, api_key, runtime):
    body = {
        "comment": {"text": "you absolute clown"},
        "attributeScores": {"INSULT": {"summaryScore": {"value": 1}}, "SPAM": {"summaryScore": {"value": 0}}},
        "clientToken": "t-1",
        "communityId": "forum-7",
    }
    assert post(client, SUGGEST, body, api_key.secret).get_json() == {"clientToken": "t-1"}
    with runtime.session() as session:
        label = session.scalars(select(Label)).one()
    assert label.labels == {"insult": 1.0, "spam": 0.0}
    assert label.decision == "suggest"


@pytest.mark.parametrize(
    ("body", "error_type"),
    [
        (
            {"comment": {"text": ""}, "attributeScores": {"INSULT": {"summaryScore": {"value": 1}}}},
            "COMMENT_EMPTY",
        ),
        ({"comment": {"text": "hi"}}, "NO_REQUESTED_ATTRIBUTES"),
        (
            {"comment": {"text": "hi"}, "attributeScores": {"NICE": {"summaryScore": {"value": 1}}}},
            "INVALID_REQUEST",
        ),
        (
            {"comment": {"text": "hi"}, "attributeScores": {"INSULT": {"summaryScore": {"value": 3}}}},
            "INVALID_REQUEST",
        ),
        ({"comment": {"text": "hi"}, "attributeScores": {"INSULT": 1}}, "INVALID_REQUEST"),
        ("nope", "INVALID_REQUEST"),
    ],
)
def test_suggestscore_errors_in_googles_shape(client, api_key, runtime, body, error_type):
    assert_google_error(post(client, SUGGEST, body, api_key.secret), 400, "INVALID_ARGUMENT", error_type)
    assert count(runtime, Label) == 0


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("I think the mayor is right about the new bus lanes, they are useful.", "en"),
        ("No estoy de acuerdo con el autor, pero el artículo es muy interesante para los lectores.", "es"),
        ("Je ne suis pas d'accord avec vous, mais cette idée est très intéressante pour nous.", "fr"),
        ("Это очень плохая статья", "ru"),
        ("これはとても良い記事です", "ja"),
        ("ok", None),
        ("12345 !!!", None),
    ],
)
def test_language_guess(text, language):
    from service.web.compat.perspective import detect_language

    assert detect_language(text) == language


def test_sentence_spans_cover_sentences_without_surrounding_space():
    from service.web.compat.perspective import sentence_spans

    text = "  First one.  Second?! third without end  "
    assert [text[b:e] for b, e in sentence_spans(text)] == ["First one.", "Second?!", "third without end"]
    assert sentence_spans("") == [(0, 0)]
