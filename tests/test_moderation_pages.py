"""The moderators' review pages through the Flask test client, on SQLite and PostgreSQL."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from classifier.labelstore import text_hash
from service.db import (
    APPROVED,
    HELD,
    PENDING,
    REJECTED,
    Comment,
    Label,
    StatusChange,
    WebhookDelivery,
    new_id,
    utcnow,
)
from service.decisions import UNDO_WINDOW
from service.keys import SCOPES, create_api_key, server_secret
from service.moderators import create_moderator
from tests.conftest import drain_queues

PASSWORD = "correct horse battery staple"
XSS_TEXT = (
    "<script>window.__xss = 1; alert(1)</script> <img src=x onerror=\"alert('img')\"> "
    "<a href=\"javascript:alert('link')\">click</a> \u202eevil reversed text"
)


# --- helpers, shared with the API and browser tests ------------------------------------------------


def make_moderator(runtime: Any, username: str = "alice", password: str = PASSWORD) -> None:
    with runtime.session() as session:
        create_moderator(session, username, password)


def add_comment(runtime: Any, **fields: Any) -> str:
    """A comment row as the worker would leave it (held, scored) unless ``fields`` say otherwise."""
    text = fields.pop("text", "You are an idiot and this article is spam, buy pills")
    values: dict[str, Any] = {
        "id": new_id(),
        "author_name": "Mallory",
        "author_email": "mallory@example.com",
        "author_ip": "203.0.113.77",
        "author_url": "https://mallory.example/",
        "post_id": "post-1",
        "permalink": "https://blog.example/post-1#comment",
        "text": text,
        "text_hash": text_hash(text),
        "status": HELD,
        "reason": "toxicity_hold:insult",
        "scores": {"spam": 0.31, "toxicity": 0.82, "insult": 0.91},
        "explanations": [
            {"attribute": "insult", "feature": "idiot", "weight": 1.7, "spans": [[11, 16]]},
            {"attribute": "spam", "feature": "pills", "weight": 0.4, "spans": [[47, 52]]},
        ],
        "uncertainty": 0.5,
        "model_version": "test-1",
        "received_at": utcnow(),
    }
    values.update(fields)
    with runtime.session() as session:
        session.add(Comment(**values))
        session.flush()
        # The history the worker would have written, so that undo can find the reason to restore.
        session.add(
            StatusChange(
                comment_id=values["id"],
                from_status=PENDING,
                to_status=values["status"],
                reason=values["reason"],
                actor="model:test-1",
            )
        )
        session.commit()
    return values["id"]


def csrf_from(html: str) -> str:
    match = re.search(r'name="csrf-token" content="([^"]+)"', html) or re.search(
        r'name="csrf_token" value="([^"]+)"', html
    )
    assert match, "no CSRF token in the page"
    return match.group(1)


def login(client: Any, username: str = "alice", password: str = PASSWORD, next_url: str = "") -> Any:
    token = csrf_from(client.get("/login").get_data(as_text=True))
    return client.post(
        "/login",
        data={"csrf_token": token, "username": username, "password": password, "next": next_url},
    )


def logged_in(client: Any, runtime: Any) -> str:
    """Log ``alice`` in; returns the page's CSRF token for scripted POSTs."""
    make_moderator(runtime)
    assert login(client).status_code == 302
    return csrf_from(client.get("/moderate/").get_data(as_text=True))


def decide(client: Any, csrf: str, ids: list[str], decision: str) -> Any:
    return client.post(
        "/moderate/decisions", json={"ids": ids, "decision": decision}, headers={"X-CSRF-Token": csrf}
    )


# --- login, sessions, headers ------------------------------------------------------------------------


def test_pages_require_login(client):
    response = client.get("/moderate/queue/held?sort=oldest")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=")
    assert client.get("/moderate/counts").status_code == 401
    assert client.get("/moderate/overview").status_code == 302


def test_a_cms_api_key_or_moderator_token_cannot_open_the_pages(client, runtime, api_key):
    assert client.get("/moderate/", headers=api_key.headers).status_code == 302
    response = client.post(
        "/moderate/decisions", json={"ids": ["x"], "decision": "approve"}, headers=api_key.headers
    )
    assert response.status_code in (401, 403)


def test_login_sets_a_locked_down_session_cookie(runtime):
    from service.web.app import create_app

    make_moderator(runtime)
    app = create_app(runtime.settings.with_overrides(secure_cookies=True), runtime=runtime)
    client = app.test_client()
    response = login(client)
    assert response.status_code == 302
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert "Secure" in cookie


def test_login_without_csrf_token_is_refused(client, runtime):
    make_moderator(runtime)
    client.get("/login")
    response = client.post("/login", data={"username": "alice", "password": PASSWORD})
    assert response.status_code == 403
    assert response.get_json()["error"]["code"] == "forbidden"


def test_wrong_password_and_throttling(client, runtime):
    make_moderator(runtime)
    for _ in range(5):
        assert login(client, password="wrong password!").status_code == 401
    response = login(client)  # the right password, but this address must wait now
    assert response.status_code == 429
    assert "Too many failed logins" in response.get_data(as_text=True)


@pytest.mark.parametrize(
    "target",
    [
        "//evil.example",
        "https://evil.example",
        "/\\evil.example",
        "javascript:alert(1)",
        "/\t/evil.example",
        "http:/evil.example",
        "/login",
    ],
)
def test_no_open_redirect_after_login(client, runtime, target):
    make_moderator(runtime)
    response = login(client, next_url=target)
    assert response.status_code == 302
    assert response.headers["Location"] == "/moderate/"


def test_login_returns_to_the_page_asked_for(client, runtime):
    make_moderator(runtime)
    response = login(client, next_url="/moderate/queue/all?sort=oldest")
    assert response.headers["Location"] == "/moderate/queue/all?sort=oldest"


def test_logout_needs_csrf_and_ends_the_session(client, runtime):
    csrf = logged_in(client, runtime)
    assert client.post("/logout").status_code == 403
    assert client.post("/logout", data={"csrf_token": csrf}).status_code == 302
    assert client.get("/moderate/").status_code == 302


def test_disabled_moderator_is_logged_out(client, runtime):
    from service.moderators import set_disabled

    logged_in(client, runtime)
    with runtime.session() as session:
        set_disabled(session, "alice", True)
    assert client.get("/moderate/").status_code == 302


def test_security_headers_on_pages(client, runtime):
    logged_in(client, runtime)
    response = client.get("/moderate/")
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp
    assert "default-src 'self'" in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cache-Control"] == "no-store"
    html = response.get_data(as_text=True)
    assert not re.search(r"<script(?![^>]*\bsrc=)", html), "inline script found"
    assert not re.search(r"\son[a-z]+=", html), "inline event handler found"
    assert "style=" not in html


# --- the queue page -----------------------------------------------------------------------------------


def test_hostile_comment_renders_as_inert_text(client, runtime):
    logged_in(client, runtime)
    add_comment(
        runtime,
        text=XSS_TEXT,
        author_name="<img src=x onerror=alert(2)>\u202eevil",
        author_url="javascript:alert(3)",
        permalink="javascript:alert(4)",
        explanations=[
            {"attribute": "spam", "feature": "script", "weight": 1.0, "spans": [[1, 7], [-5, 99999]]}
        ],
    )
    html = client.get("/moderate/").get_data(as_text=True)
    assert "<script>window.__xss" not in html
    assert "window.__xss = 1; alert(1)&lt;/script&gt;" in html
    assert "<img src=x" not in html
    assert "javascript:" not in re.sub(r">[^<]*<", "><", html), "javascript: URL inside markup"
    assert 'href="javascript' not in html
    assert "&lt;img src=x onerror=alert(2)&gt;" in html
    # Hostile text is isolated so an RTL override cannot flip the surrounding interface.
    assert re.search(r"<bdi class=\"author\">[^<]*\u202eevil</bdi>", html)
    assert re.search(r"<p class=\"text\" dir=\"auto\"><bdi>", html)
    assert "text-direction characters" in html


def test_reason_terms_are_highlighted(client, runtime):
    logged_in(client, runtime)
    add_comment(runtime)
    html = client.get("/moderate/").get_data(as_text=True)
    assert '<mark title="insult: idiot +1.70">idiot</mark>' in html
    assert '<mark title="spam: pills +0.40">pills</mark>' in html
    assert 'class="over"' in html and "<meter" in html
    assert "Held for insult" in html


def test_contact_details_are_masked_until_revealed(client, runtime):
    logged_in(client, runtime)
    comment_id = add_comment(runtime)
    html = client.get("/moderate/").get_data(as_text=True)
    assert "203.0.113.77" not in html
    assert "mallory@example.com" not in html
    assert "203.0.•.•" in html and "m•••@example.com" in html
    body = client.get(f"/moderate/comments/{comment_id}/contact").get_json()
    assert body == {"email": "mallory@example.com", "url": "https://mallory.example/", "ip": "203.0.113.77"}


def test_author_history_shows_earlier_comments_and_outcomes(client, runtime):
    logged_in(client, runtime)
    now = utcnow()
    add_comment(
        runtime, status=APPROVED, reason="clean", received_at=now - timedelta(days=2), text="Nice post"
    )
    add_comment(
        runtime, status=REJECTED, reason="spam_reject", received_at=now - timedelta(days=1), text="Old spam"
    )
    add_comment(runtime, author_email="other@example.com", author_ip="198.51.100.1", text="Someone else")
    add_comment(runtime, received_at=now)
    html = client.get("/moderate/?q=idiot").get_data(as_text=True)
    assert "1 approved · 1 rejected" in html
    assert "Old spam" in html and "Nice post" in html
    assert "Someone else" not in html


def test_queues_counts_filters_and_sorting(client, runtime):
    logged_in(client, runtime)
    now = utcnow()
    near = add_comment(runtime, uncertainty=0.99, post_id="post-2", received_at=now - timedelta(hours=3))
    far = add_comment(
        runtime, uncertainty=0.1, text="Totally benign words", received_at=now - timedelta(hours=1)
    )
    unscored = add_comment(
        runtime, scores=None, explanations=None, uncertainty=None, reason="unscored", received_at=now
    )
    spam = add_comment(runtime, status=REJECTED, reason="spam_reject", scores={"spam": 0.99})
    abusive = add_comment(runtime, status=REJECTED, reason="moderator_abusive")
    approved = add_comment(runtime, status=APPROVED, reason="clean", author_name="Zed Searchable")

    counts = client.get("/moderate/counts").get_json()
    assert counts["held"] == 3 and counts["spam"] == 1 and counts["rejected"] == 2
    assert counts["approved"] == 1 and counts["all"] == 6

    def ids(url: str) -> list[str]:
        return re.findall(
            r'<article class="comment[^"]*" id="c-([0-9a-f]+)"', client.get(url).get_data(as_text=True)
        )

    assert ids("/moderate/") == [unscored, far, near]
    assert ids("/moderate/?sort=oldest") == [near, far, unscored]
    assert ids("/moderate/?sort=uncertain") == [unscored, near, far]
    assert ids("/moderate/?post=post-2") == [near]
    assert ids("/moderate/?reason=unscored") == [unscored]
    assert ids("/moderate/?attribute=insult&min=0.9") == [far, near]
    assert ids("/moderate/?attribute=spam&max=0.2") == []
    assert ids("/moderate/?q=BENIGN") == [far]
    assert ids("/moderate/queue/all?q=searchable") == [approved]
    assert ids("/moderate/queue/all?q=%25") == []  # LIKE wildcards are literal
    assert ids("/moderate/queue/spam") == [spam]
    assert set(ids("/moderate/queue/rejected")) == {spam, abusive}
    # A one-day filter finds each comment on the (UTC) day it arrived. Each comment's own day, not
    # "today" for both: between 00:00 and 01:00 UTC, `far` (an hour old) arrived yesterday.
    for comment_id, received_at in ((far, now - timedelta(hours=1)), (unscored, now)):
        day = received_at.date().isoformat()
        assert comment_id in ids(f"/moderate/queue/all?since={day}&until={day}")
    assert ids("/moderate/queue/all?until=2000-01-01") == []
    bad = client.get("/moderate/?min=2&sort=sideways")
    assert bad.status_code == 200
    assert "a score from 0 to 1" in bad.get_data(as_text=True)
    assert client.get("/moderate/queue/nope").status_code == 404


@pytest.mark.parametrize("sort", ["newest", "oldest", "uncertain"])
def test_cursor_pagination_visits_every_comment_once(client, runtime, sort):
    logged_in(client, runtime)
    same_time = utcnow()
    created = {
        add_comment(
            runtime,
            received_at=same_time if i % 3 == 0 else same_time - timedelta(minutes=i),
            uncertainty=None if i % 4 == 0 else (i % 5) / 5,
        )
        for i in range(23)
    }
    seen: list[str] = []
    url = f"/moderate/?limit=5&sort={sort}"
    for _ in range(10):
        html = client.get(url).get_data(as_text=True)
        seen += re.findall(r'<article class="comment[^"]*" id="c-([0-9a-f]+)"', html)
        match = re.search(r'href="([^"]+)" id="next-page"', html)
        if not match:
            break
        url = match.group(1).replace("&amp;", "&")
    assert len(seen) == len(created) and set(seen) == created


# --- decisions from the page ---------------------------------------------------------------------------


def test_decision_changes_status_records_label_and_history(client, runtime):
    csrf = logged_in(client, runtime)
    comment_id = add_comment(runtime)
    response = decide(client, csrf, [comment_id], "abusive")
    assert response.status_code == 200
    body = response.get_json()
    assert body["results"][0]["ok"] and body["results"][0]["status"] == REJECTED
    assert body["counts"]["held"] == 0
    with runtime.session() as session:
        comment = session.get(Comment, comment_id)
        assert (comment.status, comment.reason, comment.decided_by) == (
            REJECTED,
            "moderator_abusive",
            "moderator:alice",
        )
        label = session.scalars(select(Label).where(Label.comment_id == comment_id)).one()
        assert (label.source, label.decision, label.actor, label.previous_status) == (
            "moderator",
            "abusive",
            "moderator:alice",
            HELD,
        )
        assert label.labels == {"spam": 0.0, "toxicity": 1.0}
        assert label.scores_at_time == {"spam": 0.31, "toxicity": 0.82, "insult": 0.91}
        history = session.scalars(select(StatusChange).where(StatusChange.comment_id == comment_id)).all()
        assert [(row.from_status, row.to_status, row.actor) for row in history] == [
            (PENDING, HELD, "model:test-1"),
            (HELD, REJECTED, "moderator:alice"),
        ]


def test_decisions_need_the_csrf_header(client, runtime):
    logged_in(client, runtime)
    comment_id = add_comment(runtime)
    response = client.post("/moderate/decisions", json={"ids": [comment_id], "decision": "approve"})
    assert response.status_code == 403
    response = decide(client, "not-the-token", [comment_id], "approve")
    assert response.status_code == 403
    with runtime.session() as session:
        assert session.get(Comment, comment_id).status == HELD


def test_bad_decision_is_a_json_error(client, runtime):
    csrf = logged_in(client, runtime)
    response = decide(client, csrf, ["x"], "delete")
    assert response.status_code == 422
    assert response.get_json()["error"]["fields"]["decision"]


def test_form_decision_works_without_javascript(client, runtime):
    csrf = logged_in(client, runtime)
    comment_id = add_comment(runtime)
    response = client.post(
        "/moderate/decisions",
        data={"csrf_token": csrf, "ids": comment_id, "decision": "spam", "next": "/moderate/queue/held?"},
    )
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/moderate/queue/held")
    with runtime.session() as session:
        assert session.get(Comment, comment_id).reason == "moderator_spam"


def test_bulk_approve_then_undo(client, runtime):
    csrf = logged_in(client, runtime)
    ids = [add_comment(runtime, reason="spam_hold") for _ in range(4)]
    body = decide(client, csrf, ids[:3], "approve").get_json()
    assert [result["status"] for result in body["results"]] == [APPROVED] * 3
    # A second approval of the same comment changes nothing and records nothing.
    assert decide(client, csrf, ids[:1], "approve").get_json()["results"][0]["changed"] is False

    body = decide(client, csrf, ids[:3], "undo").get_json()
    assert all(result["changed"] for result in body["results"])
    with runtime.session() as session:
        for comment_id in ids[:3]:
            comment = session.get(Comment, comment_id)
            assert (comment.status, comment.reason) == (HELD, "spam_hold")
        decisions = session.scalars(select(Label.decision).order_by(Label.id)).all()
        assert decisions == ["approve"] * 3 + ["undo"] * 3
        undo = session.scalars(select(Label).where(Label.decision == "undo")).first()
        assert undo.previous_status == APPROVED and undo.labels == {}
    # Nothing left to undo.
    assert decide(client, csrf, ids[:1], "undo").get_json()["results"][0]["error"] == "nothing_to_undo"


def test_undo_only_within_the_window(client, runtime):
    csrf = logged_in(client, runtime)
    comment_id = add_comment(runtime)
    decide(client, csrf, [comment_id], "spam")
    with runtime.session() as session:
        label = session.scalars(select(Label)).one()
        label.created_at = utcnow() - UNDO_WINDOW - timedelta(seconds=1)
        session.commit()
    result = decide(client, csrf, [comment_id], "undo").get_json()["results"][0]
    assert result["error"] == "undo_expired"
    with runtime.session() as session:
        assert session.get(Comment, comment_id).status == REJECTED


def test_reject_all_pending_from_this_author(client, runtime):
    csrf = logged_in(client, runtime)
    first = add_comment(runtime)
    pending = add_comment(runtime, status=PENDING, reason=None, author_email="alias@example.com")
    approved = add_comment(runtime, status=APPROVED, reason="clean")
    stranger = add_comment(runtime, author_email="x@example.com", author_ip="198.51.100.3")
    response = client.post(
        f"/moderate/comments/{first}/reject-author", json={"decision": "spam"}, headers={"X-CSRF-Token": csrf}
    )
    assert response.status_code == 200
    changed = {result["id"] for result in response.get_json()["results"] if result["changed"]}
    assert changed == {first, pending}  # same e-mail, or same IP
    with runtime.session() as session:
        assert session.get(Comment, approved).status == APPROVED
        assert session.get(Comment, stranger).status == HELD
        assert session.scalar(select(func.count()).select_from(Label)) == 2


def test_decision_reaches_the_cms_webhook(client, runtime, webhook_receiver):
    csrf = logged_in(client, runtime)
    with runtime.session() as session:
        key = create_api_key(
            session,
            "cms",
            SCOPES,
            webhook_url=webhook_receiver.url,
            sealing_key=server_secret(runtime.settings),
        ).api_key
    comment_id = add_comment(runtime, api_key_id=key.id, external_id="wp-7")
    decide(client, csrf, [comment_id], "approve")
    with runtime.session() as session:
        assert session.scalar(select(func.count()).select_from(WebhookDelivery)) == 1
    drain_queues(runtime)
    bodies = webhook_receiver.bodies()
    assert len(bodies) == 1
    comment = bodies[0]["comment"]
    assert (comment["external_id"], comment["status"], comment["reason"]) == (
        "wp-7",
        APPROVED,
        "moderator_approved",
    )
    assert comment["decided_by"] == "moderator"  # the CMS learns a person decided, not who


def test_overview_draws_a_chart(client, runtime):
    logged_in(client, runtime)
    now = utcnow()
    add_comment(runtime, received_at=now - timedelta(hours=5))
    add_comment(runtime, status=APPROVED, reason="clean", received_at=now - timedelta(minutes=5))
    add_comment(runtime, status=REJECTED, reason="spam_reject", received_at=now - timedelta(hours=30))
    response = client.get("/moderate/overview")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "<svg" in html and html.count("<rect") == 2
    assert "approved 1 (50%)" in html and "held 1 (50%)" in html
    assert "5 h" in html  # the oldest held comment's age
