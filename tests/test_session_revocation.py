"""Moderator sessions end on the server: a cookie captured earlier opens nothing afterwards."""

from __future__ import annotations

from typing import Any

from service.moderators import set_disabled, set_password
from tests.test_moderation_pages import PASSWORD, csrf_from, logged_in, login


def capture(client: Any) -> str:
    cookie = client.get_cookie("session")
    assert cookie is not None
    return cookie.value


def replay(app: Any, cookie: str) -> Any:
    """The captured cookie, sent by another client (an attacker who copied it)."""
    other = app.test_client()
    other.set_cookie("session", cookie)
    return other.get("/moderate/")


def test_the_captured_cookie_works_before(app, client, runtime):
    logged_in(client, runtime)
    assert replay(app, capture(client)).status_code == 200


def test_logout_ends_the_session_on_the_server(app, client, runtime):
    csrf = logged_in(client, runtime)
    cookie = capture(client)
    assert client.post("/logout", data={"csrf_token": csrf}).status_code == 302
    assert replay(app, cookie).status_code == 302


def test_logout_ends_only_that_session(app, client, runtime):
    csrf = logged_in(client, runtime)
    second = app.test_client()
    assert login(second).status_code == 302
    client.post("/logout", data={"csrf_token": csrf})
    assert second.get("/moderate/").status_code == 200


def test_a_password_change_ends_every_session(app, client, runtime):
    logged_in(client, runtime)
    cookie = capture(client)
    with runtime.session() as session:
        set_password(session, "alice", PASSWORD)  # even the same password again: the sessions end
    assert replay(app, cookie).status_code == 302
    assert client.get("/moderate/").status_code == 302


def test_disabling_ends_every_session_and_enabling_does_not_revive_it(app, client, runtime):
    logged_in(client, runtime)
    cookie = capture(client)
    with runtime.session() as session:
        set_disabled(session, "alice", True)
        set_disabled(session, "alice", False)
    assert replay(app, cookie).status_code == 302


def test_a_session_forged_from_a_moderator_id_opens_nothing(app, client, runtime):
    """Even with the signing key, a cookie names a server-side session, not a moderator."""
    logged_in(client, runtime)
    other = app.test_client()
    with other.session_transaction() as forged:
        forged["moderator_id"] = 1
        forged["login_at"] = 2**31
        forged["csrf"] = "x"
    assert other.get("/moderate/").status_code == 302
    assert csrf_from(client.get("/moderate/").get_data(as_text=True))
