"""The Akismet-compatible endpoint, driven by the real ``akismet`` client from PyPI over loopback.

The client's base URL is fixed (``https://rest.akismet.com``). As the library's own test clients do,
we hand it an ``httpx.Client`` with a custom transport; ours rewrites each request's URL to our live
server on 127.0.0.1 (keeping the ``Host: rest.akismet.com`` header), so every call crosses a real
socket into the real app: no mocks.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator

import akismet
import httpx
import pytest
from sqlalchemy import select
from werkzeug.serving import make_server

from service.db import Label
from service.keys import create_api_key
from service.settings import Thresholds

BLOG = "https://blog.example.com"
HAM_TEXT = "Thank you for this lovely article, I enjoyed reading it with my morning coffee."


class LoopbackTransport(httpx.BaseTransport):
    """Sends every request to ``127.0.0.1:port`` over HTTP; the Host header stays what the client set."""

    def __init__(self, port: int):
        self.port = port
        self._transport = httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request.url = request.url.copy_with(scheme="http", host="127.0.0.1", port=self.port)
        return self._transport.handle_request(request)

    def close(self) -> None:
        self._transport.close()


def serve(app) -> Iterator[int]:  # noqa: ANN001
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_port
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def port(app) -> Iterator[int]:  # noqa: ANN001
    yield from serve(app)


def http_client(port: int) -> httpx.Client:
    return httpx.Client(
        transport=LoopbackTransport(port), headers={"User-Agent": akismet.USER_AGENT}, timeout=10.0
    )


def akismet_client(port: int, key: str) -> akismet.SyncClient:
    return akismet.SyncClient(config=akismet.Config(key=key, url=BLOG), http_client=http_client(port))


def raw(port: int, path: str, **kwargs) -> httpx.Response:  # noqa: ANN003
    with http_client(port) as client:
        return client.post(f"https://rest.akismet.com{path}", **kwargs)


# --- the real client, call by call ---------------------------------------------------------------


def test_every_client_call_works_against_the_live_server(port, api_key, runtime):
    with akismet.SyncClient.validated_client(
        config=akismet.Config(key=api_key.secret, url=BLOG), http_client=http_client(port)
    ) as client:
        assert client.verify_key() is True
        assert client.verify_key("mk_wrong", BLOG) is False

        assert (
            client.comment_check("203.0.113.9", comment_author="viagra-test-123")
            == akismet.CheckResponse.SPAM
        )
        assert (
            client.comment_check(
                "203.0.113.9",
                comment_author_email="akismet-guaranteed-spam@example.com",
                comment_content="hello",
            )
            == akismet.CheckResponse.SPAM
        )
        assert (
            client.comment_check(
                "203.0.113.9", comment_content="buy pills", user_role="administrator", is_test=True
            )
            == akismet.CheckResponse.HAM
        )
        assert client.comment_check(
            "203.0.113.9",
            user_agent="Mozilla/5.0",
            referrer="https://www.google.com/",
            permalink=f"{BLOG}/2026/11/budget",
            comment_type="comment",
            comment_author="Ana",
            comment_author_email="ana@example.org",
            comment_content=HAM_TEXT,
            comment_date_gmt="2026-11-28T10:00:00Z",
            blog_lang="en",
            blog_charset="UTF-8",
        ) in (akismet.CheckResponse.HAM, akismet.CheckResponse.SPAM, akismet.CheckResponse.DISCARD)

        assert (
            client.submit_spam(
                "203.0.113.9", comment_content="cheap pills at www.pills.biz", comment_author="pills4u"
            )
            is True
        )
        assert client.submit_ham("203.0.113.9", comment_content=HAM_TEXT, comment_author="Ana") is True

        usage = client.usage_limit()
    assert usage == {"limit": "none", "usage": 4, "percentage": "0.00", "throttled": False}
    with runtime.session() as session:
        labels = session.scalars(select(Label).order_by(Label.id)).all()
    assert [(label.source, label.decision, label.labels) for label in labels] == [
        ("akismet", "spam", {"spam": 1.0}),
        ("akismet", "ham", {"spam": 0.0}),
    ]
    assert labels[0].author_name == "pills4u"
    assert labels[1].text == HAM_TEXT
    assert labels[0].actor == f"api-key:{api_key.id}"


def test_verdicts_follow_the_v1_policy(port, api_key, runtime):
    from classifier.comment import Comment as ClassifierComment
    from service.policy import apply_policy

    client = akismet_client(port, api_key.secret)
    for text in (
        HAM_TEXT,
        "CHEAP VIAGRA!!! buy now www.cheap-pills.biz www.pills.biz www.meds.biz",
        "you idiot",
    ):
        scores = runtime.models.score([ClassifierComment(text=text)], explain=False).scores[0].values
        verdict = apply_policy(scores, text, runtime.settings.thresholds)
        expected = {
            "approved": akismet.CheckResponse.HAM,
            "held": akismet.CheckResponse.SPAM,
            "rejected": akismet.CheckResponse.DISCARD,
        }[verdict.status]
        assert client.comment_check("198.51.100.7", comment_content=text) == expected, (text, verdict)


def test_discard_when_policy_rejects_outright(runtime, api_key):
    from service.web.app import create_app

    strict = dataclasses.replace(
        runtime,
        settings=runtime.settings.with_overrides(thresholds=Thresholds(spam_reject=0.0, spam_hold=0.0)),
    )
    for port in serve(create_app(strict.settings, runtime=strict)):
        client = akismet_client(port, api_key.secret)
        assert client.comment_check("198.51.100.7", comment_content=HAM_TEXT) == akismet.CheckResponse.DISCARD
        response = raw(port, "/1.1/comment-check", data={"api_key": api_key.secret, "comment_content": "hi"})
        assert response.text == "true"
        assert response.headers["X-akismet-pro-tip"] == "discard"
        assert response.headers["X-Moderation-Reason"] == "spam_reject"


def test_filled_honeypot_is_spam_and_unknown_fields_are_accepted(port, api_key):
    fields = {
        "api_key": api_key.secret,
        "blog": BLOG,
        "user_ip": "203.0.113.9",
        "comment_content": HAM_TEXT,
        "honeypot_field_name": "hidden_website",
        "hidden_website": "http://spam.example",
        "some_plugin_field": "whatever",
    }
    response = raw(port, "/1.1/comment-check", data=fields)
    assert (response.status_code, response.text) == (200, "true")
    assert response.headers["content-type"].startswith("text/plain")
    response = raw(
        port, "/1.1/comment-check", data={**fields, "hidden_website": "", "user_role": "administrator"}
    )
    assert response.text == "false"


def test_json_body_and_key_in_host_header(port, api_key):
    response = raw(
        port,
        "/1.1/comment-check",
        json={"api_key": api_key.secret, "comment_author": "viagra-test-123", "is_test": True},
    )
    assert response.text == "true"
    response = raw(
        port,
        "/1.1/comment-check",
        data={"comment_author": "viagra-test-123"},
        headers={"Host": f"{api_key.secret}.rest.akismet.com"},
    )
    assert response.text == "true"
    response = raw(
        port, "/1.1/verify-key", data={"blog": BLOG}, headers={"Host": f"{api_key.secret}.rest.akismet.com"}
    )
    assert response.text == "valid"


@pytest.mark.parametrize("path", ["/1.1/comment-check", "/1.1/submit-spam", "/1.1/submit-ham"])
def test_bad_keys_answer_invalid_with_debug_help_and_http_200(port, api_key, runtime, path):
    with runtime.session() as session:
        no_scopes = create_api_key(session, "comments-only", ["comments"]).secret
    for data in (
        {"comment_content": "hi"},
        {"api_key": "mk_wrong", "comment_content": "hi"},
        {"api_key": no_scopes, "comment_content": "hi"},
    ):
        response = raw(port, path, data=data)
        assert (response.status_code, response.text) == (200, "invalid")
        assert response.headers["X-akismet-debug-help"]
    with pytest.raises(akismet.APIKeyError):
        akismet_client(port, "mk_wrong").comment_check("203.0.113.9", comment_content="hi")
    with pytest.raises(akismet.APIKeyError):
        akismet.SyncClient.validated_client(
            config=akismet.Config(key=no_scopes, url=BLOG), http_client=http_client(port)
        )


def test_malformed_json_answers_in_akismet_shape(port, api_key):
    response = raw(port, "/1.1/comment-check", content=b"{oops", headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.text == "invalid"
    assert response.headers["X-akismet-debug-help"]


def test_unscored_comment_is_never_answered_false(runtime, api_key, tmp_path):
    from classifier.registry import Registry
    from service.scoring import ModelHolder
    from service.web.app import create_app

    (tmp_path / "no-models").mkdir()
    empty = dataclasses.replace(runtime, models=ModelHolder(Registry(tmp_path / "no-models")))
    for port in serve(create_app(empty.settings, runtime=empty)):
        response = raw(
            port, "/1.1/comment-check", data={"api_key": api_key.secret, "comment_content": HAM_TEXT}
        )
        assert response.status_code == 503
        assert response.text == "unavailable"
        assert response.headers["Retry-After"]
        assert response.headers["X-akismet-debug-help"]
        with pytest.raises(akismet.RequestError):
            akismet_client(port, api_key.secret).comment_check("203.0.113.9", comment_content=HAM_TEXT)
        # The test conventions need no model.
        client = akismet_client(port, api_key.secret)
        assert (
            client.comment_check("203.0.113.9", comment_author="viagra-test-123")
            == akismet.CheckResponse.SPAM
        )


def test_get_subscription_answers_the_wordpress_settings_page(port, api_key):
    """WordPress's Akismet settings page asks for the account; a valid key is an active plan."""
    answer = raw(port, "/1.1/get-subscription", data={"key": api_key.secret, "blog": BLOG})
    assert answer.status_code == 200
    assert answer.json()["status"] == "active"
    refused = raw(port, "/1.1/get-subscription", data={"key": "mk_wrong", "blog": BLOG})
    assert refused.text == "invalid"
