"""The answers the contract promises (issue #12, finding 10): ``Allow`` on every 405, each protocol's own
error shape for URLs and methods it does not have, JSON-only Perspective bodies, and no NaN stored."""

from __future__ import annotations

import json

import jsonschema_rs
import pytest
from sqlalchemy import select

from service.db import Label
from tests.test_site_api import token_headers

GOOGLE_STATUS = {404: "NOT_FOUND", 405: "INVALID_ARGUMENT"}


def allowed(response) -> set[str]:  # noqa: ANN001
    return {method.strip() for method in response.headers.get("Allow", "").split(",") if method.strip()}


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("delete", "/v1/comments", {"POST"}),
        ("put", "/v1/comments/abc", {"GET"}),
        ("get", "/v1/comments/abc/decision", {"POST"}),
        ("delete", "/v1/queues/held", {"GET"}),
        ("post", "/healthz", {"GET"}),
        ("get", "/v1alpha1/comments:analyze", {"POST"}),
        ("put", "/v1alpha1/comments:suggestscore", {"POST"}),
        ("get", "/1.1/comment-check", {"POST"}),
        ("delete", "/1.1/verify-key", {"POST"}),
        ("get", "/v1/authors/erase", {"POST"}),
        ("post", "/v1/sites", {"GET"}),
        ("put", "/v1/sites/gazette/rules", {"POST", "DELETE"}),
        ("put", "/v1/sites/gazette/rules.csv", {"GET", "POST"}),
        ("post", "/v1/sites/gazette/settings", {"PATCH"}),
        ("get", "/v1/sites/gazette/try", {"POST"}),
        ("post", "/v1/sites/gazette/audit", {"GET"}),
        ("get", "/coral/v1/phase", {"POST"}),
    ],
)
def test_every_405_says_which_methods_the_url_has(client, method, path, expected):  # noqa: ANN001
    response = getattr(client, method)(path)
    assert response.status_code == 405
    assert expected <= allowed(response) <= expected | {"HEAD", "OPTIONS"}


def test_v1_404_and_405_keep_the_generic_shape(client):  # noqa: ANN001
    for response, code in ((client.get("/v1/nowhere"), "not_found"), (client.delete("/v1/comments"), None)):
        error = response.get_json()["error"]
        assert set(error) >= {"code", "message"}
        assert code is None or error["code"] == code


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("post", "/v1alpha1/comments:nonsense", 404),
        ("get", "/v1alpha1/nowhere/at/all", 404),
        ("get", "/v1alpha1/comments:analyze", 405),
        ("delete", "/v1alpha1/comments:suggestscore", 405),
    ],
)
def test_perspective_urls_answer_unknown_paths_and_methods_in_googles_shape(client, method, path, status):  # noqa: ANN001
    response = getattr(client, method)(path)
    assert response.status_code == status
    assert response.is_json
    error = response.get_json()["error"]
    assert error["code"] == status
    assert error["status"] == GOOGLE_STATUS[status]
    assert isinstance(error["message"], str) and error["message"]


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("post", "/1.1/nonsense", 404),
        ("get", "/1.2/nowhere", 404),
        ("get", "/1.1/comment-check", 405),
        ("put", "/1.1/submit-spam", 405),
    ],
)
def test_akismet_urls_answer_unknown_paths_and_methods_in_akismets_shape(client, method, path, status):  # noqa: ANN001
    response = getattr(client, method)(path)
    assert response.status_code == status
    assert response.mimetype == "text/plain"
    assert response.get_data(as_text=True) == "invalid"
    assert response.headers["X-akismet-debug-help"]


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data", None]
)
@pytest.mark.parametrize("path", ["/v1alpha1/comments:analyze", "/v1alpha1/comments:suggestscore"])
def test_perspective_refuses_a_body_that_is_not_sent_as_json(client, api_key, path, content_type):  # noqa: ANN001
    body = {"comment": {"text": "hello there"}, "requestedAttributes": {"TOXICITY": {}}}
    headers = {"Content-Type": content_type} if content_type else {}
    response = client.post(path, data=json.dumps(body), query_string={"key": api_key.secret}, headers=headers)
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["status"] == "INVALID_ARGUMENT"
    assert "Content-Type" in error["message"]


def test_perspective_accepts_json_with_a_charset(client, api_key):  # noqa: ANN001
    body = {"comment": {"text": "hello there"}, "requestedAttributes": {"TOXICITY": {}}}
    response = client.post(
        "/v1alpha1/comments:analyze",
        data=json.dumps(body),
        query_string={"key": api_key.secret},
        headers={"Content-Type": "application/json; charset=utf-8"},
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    assert "TOXICITY" in response.get_json()["attributeScores"]


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity"])
def test_nan_in_meta_is_refused_naming_the_field(client, api_key, number):  # noqa: ANN001
    raw = (
        '{"name": "Ann", "email": "ann@example.com", "text": "Nice post.", '
        f'"meta": {{"score": {number}, "nested": [1, 2]}}}}'
    )
    response = client.post(
        "/v1/comments", data=raw, headers={**api_key.headers, "Content-Type": "application/json"}
    )
    assert response.status_code == 422, response.get_data(as_text=True)
    fields = response.get_json()["error"]["fields"]
    assert "meta" in fields
    assert "NaN" in fields["meta"]


def test_a_nul_in_a_suggested_or_submitted_text_is_stored_without_it(client, api_key, runtime):  # noqa: ANN001
    body = {
        "comment": {"text": "bad\x00 words"},
        "attributeScores": {"TOXICITY": {"summaryScore": {"value": 1}}},
    }
    response = client.post(
        "/v1alpha1/comments:suggestscore",
        data=json.dumps(body),
        query_string={"key": api_key.secret},
        content_type="application/json",
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    form = {"api_key": api_key.secret, "comment_content": "buy\x00 now", "comment_author": "A\x00nn"}
    response = client.post("/1.1/submit-spam", data=form)
    assert response.status_code == 200, response.get_data(as_text=True)
    with runtime.session() as session:
        texts = {label.text for label in session.scalars(select(Label))}
        authors = {label.author_name for label in session.scalars(select(Label))}
    assert texts == {"bad words", "buy now"}
    assert "Ann" in authors


GOOD = {"name": "Ada", "email": "ada@example.com", "text": "A fine comment."}


@pytest.mark.parametrize(
    "change",
    [
        {},
        {"email": "0"},  # the example: schema-valid, refused
        {"email": "ada@example.test"},
        {"email": "a--b@example.com"},
        {"email": "ada@ex--ample.com"},
        {"email": "x" * 65 + "@example.com"},
        {"text": "\u200b\u0301 "},
        {"text": "😂"},
        {"name": " \x00\t"},
        {"name": "x" * 200},
        {"name": "x" * 199 + "  "},
        {"author_ip": ""},
        {"author_ip": "2001:db8::1"},
        {"author_ip": "1.2.3"},
        {"permalink": ""},
        {"permalink": "ftp://news.example/a"},
        {"created_at": "0"},
        {"created_at": "1700000000"},
        {"created_at": "2026-11-28T10:00:00Z"},
        {"created_at": "2026-11-28T10:00:00"},
        {"created_at": "2026-02-30T10:00:00"},
        {"created_at": "2026-11-28T10:00:60Z"},
        {"created_at": "0001-01-01T00:00:00+14:00"},
        {"meta": {"a": "\x00"}},
        {"meta": {"a": [1, {"b": "c", "d": None}]}},
        {"language": "pt-BR"},
        {"language": "english!"},
        {"external_id": 12},
        {"external_id": " "},
    ],
)
def test_the_document_and_the_validator_agree(client, api_key, change):  # noqa: ANN001
    document = client.get("/openapi.json").get_json()
    validator = jsonschema_rs.validator_for(
        {"$ref": "#/components/schemas/CommentIn", "components": document["components"]},
        validate_formats=True,
    )
    body = {**GOOD, **change}
    response = client.post("/v1/comments", json=body, headers=api_key.headers)
    assert response.status_code in (202, 422), response.get_data(as_text=True)
    assert validator.is_valid(body) == (response.status_code == 202), response.get_data(as_text=True)


def _validator(document: dict, schema: dict):  # noqa: ANN202
    return jsonschema_rs.validator_for(
        {**schema, "components": document["components"]}, validate_formats=True
    )


@pytest.mark.parametrize(
    "url",
    [
        "https://news.example/a",
        "HTTP://x",
        "\x00 http://x",
        "ht\x00tp://x",
        "httP://\x05\x9f",
        "http:// x",
        "ftp://x",
    ],
)
def test_the_document_and_the_validator_agree_on_urls(client, api_key, url):  # noqa: ANN001
    document = client.get("/openapi.json").get_json()
    validator = _validator(document, {"$ref": "#/components/schemas/CommentIn"})
    body = {**GOOD, "permalink": url}
    response = client.post("/v1/comments", json=body, headers=api_key.headers)
    assert response.status_code in (202, 422), response.get_data(as_text=True)
    assert validator.is_valid(body) == (response.status_code == 202), response.get_data(as_text=True)


@pytest.mark.parametrize(
    ("kind", "entry"),
    [
        ("banned_word", "idiot"),
        ("banned_word", "  buy * now "),
        ("banned_word", "a.b"),
        ("banned_word", "a.*b"),
        ("banned_word", "(x|y)"),
        ("banned_word", "* *"),
        ("banned_word", "bad\x00word"),
        ("banned_word", "tab\tinside"),
        ("banned_word", " "),
        ("banned_word", "x" * 201),
        ("email_ban_domain", "Example.COM"),
        ("email_ban_domain", "https://www.example.com/path?q=1"),
        ("email_ban_domain", "@example.com"),
        ("email_ban_domain", "localhost"),
        ("email_ban_domain", "-bad-.com"),
        ("author_banned_email", "Ann@Example.com"),
        ("author_banned_email", "a" * 65 + "@example.com"),
        ("author_banned_email", "no-at-sign"),
        ("author_banned_email", "a b@example.com"),
        ("author_banned_ip", "192.0.2.1"),
        ("author_banned_ip", "2001:db8::1"),
        ("author_banned_ip", "192.0.2.256"),
        ("author_banned_ip", "01.2.3.4"),
        ("nonsense_list", "idiot"),
    ],
)
def test_the_document_and_the_rules_api_agree_on_entries(client, runtime, kind, entry):  # noqa: ANN001
    document = client.get("/openapi.json").get_json()
    operation = document["paths"]["/v1/sites/{name}/rules"]["post"]
    validator = _validator(document, operation["requestBody"]["content"]["application/json"]["schema"])
    body = {"list": kind, "entries": [entry]}
    response = client.post(
        "/v1/sites/gazette/rules", json=body, headers=token_headers(runtime, "ada", "admin")
    )
    assert response.status_code in (201, 422), response.get_data(as_text=True)
    assert validator.is_valid(body) == (response.status_code == 201), response.get_data(as_text=True)


@pytest.mark.parametrize(
    "change",
    [
        {"max_links": 30},
        {"max_links": 30.0},  # JSON has one kind of number: 30.0 is the integer 30
        {"max_links": 30.5},
        {"max_links": 1001},
        {"spam_reject": 1},
        {"spam_reject": True},
        {"supported_languages": ["en", "de"]},
        {"supported_languages": []},
        {"supported_languages": ["en-GB"]},
        {"hold_disposable_email": None},
        {"unknown": 1},
    ],
)
def test_the_document_and_the_settings_api_agree(client, runtime, change):  # noqa: ANN001
    document = client.get("/openapi.json").get_json()
    operation = document["paths"]["/v1/sites/{name}/settings"]["patch"]
    validator = _validator(document, operation["requestBody"]["content"]["application/json"]["schema"])
    headers = token_headers(runtime, "ada", "admin")
    response = client.patch("/v1/sites/gazette/settings", json=change, headers=headers)
    assert response.status_code in (200, 422), response.get_data(as_text=True)
    assert validator.is_valid(change) == (response.status_code == 200), response.get_data(as_text=True)


@pytest.mark.parametrize("email", ["ann@example.com", " ", "\x1c", "\u3000x", "x" * 321, "", 12])
def test_the_document_and_the_erase_api_agree(client, api_key, email):  # noqa: ANN001
    document = client.get("/openapi.json").get_json()
    operation = document["paths"]["/v1/authors/erase"]["post"]
    validator = _validator(document, operation["requestBody"]["content"]["application/json"]["schema"])
    response = client.post("/v1/authors/erase", json={"email": email}, headers=api_key.headers)
    assert response.status_code in (200, 422), response.get_data(as_text=True)
    assert validator.is_valid({"email": email}) == (response.status_code == 200)


def test_wait_has_the_configured_maximum(client, runtime):  # noqa: ANN001
    document = client.get("/openapi.json").get_json()
    (wait,) = document["paths"]["/v1/comments"]["post"]["parameters"]
    assert wait["schema"]["maximum"] == runtime.settings.max_wait_seconds
