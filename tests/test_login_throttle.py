"""Moderator logins under attack: no lock-out by strangers, no way to tell which names exist."""

from __future__ import annotations

import re
from typing import Any

import pytest

from service import moderators
from tests.test_moderation_pages import PASSWORD, csrf_from, make_moderator

OWNER = "192.0.2.10"
STRANGER = "198.51.100.66"


def attempt(client: Any, username: str, password: str, address: str) -> Any:
    """One login from ``address`` in a fresh session, as a scripted attacker would send it."""
    client.delete_cookie("session")
    environ = {"REMOTE_ADDR": address}
    token = csrf_from(client.get("/login", environ_base=environ).get_data(as_text=True))
    return client.post(
        "/login",
        data={"username": username, "password": password, "csrf_token": token},
        environ_base=environ,
    )


def _page(response: Any) -> str:
    # The CSRF token differs per session; everything else must be the same.
    return re.sub(r'(value|content)="[^"]*"', r'\1=""', response.get_data(as_text=True))


def test_a_stranger_cannot_lock_the_owner_out(client, runtime):
    make_moderator(runtime)
    for _ in range(moderators.MAX_FAILED_LOGINS * 3):
        attempt(client, "alice", "wrong password!", STRANGER)
    assert attempt(client, "alice", PASSWORD, OWNER).status_code == 302


def test_the_guessing_address_is_throttled_for_that_account(client, runtime):
    make_moderator(runtime)
    for _ in range(moderators.MAX_FAILED_LOGINS):
        assert attempt(client, "alice", "wrong password!", STRANGER).status_code == 401
    # From the guessing address even the right password no longer gets in, for a while.
    response = attempt(client, "alice", PASSWORD, STRANGER)
    assert response.status_code == 429
    assert "Too many failed logins" in response.get_data(as_text=True)
    assert int(response.headers["Retry-After"]) > 0


def test_unknown_and_real_names_answer_alike(client, runtime):
    make_moderator(runtime)
    real = [attempt(client, "alice", "wrong password!", STRANGER) for _ in range(7)]
    unknown = [attempt(client, "nobody-here", "wrong password!", STRANGER) for _ in range(7)]
    assert [r.status_code for r in real] == [r.status_code for r in unknown]
    assert [_page(r) for r in real] == [_page(r) for r in unknown]
    assert real[-1].status_code == 429  # both were throttled, not only the real account


def test_every_answer_costs_one_password_hash(client, runtime, monkeypatch):
    """Same work, so the same time, whether the name exists, the password is wrong, or it is throttled."""
    make_moderator(runtime)
    verified: list[str] = []
    original = moderators._verify

    def counting(password_hash: str, password: str) -> bool:
        verified.append(password_hash)
        return original(password_hash, password)

    monkeypatch.setattr(moderators, "_verify", counting)
    for username in ("alice", "nobody-here"):
        for _ in range(moderators.MAX_FAILED_LOGINS + 2):
            attempt(client, username, "wrong password!", STRANGER)
    assert len(verified) == 2 * (moderators.MAX_FAILED_LOGINS + 2)


def test_one_address_cannot_spray_many_names(client, runtime):
    make_moderator(runtime)
    names = [f"user{number}" for number in range(moderators.MAX_FAILED_LOGINS_PER_ADDRESS)]
    for name in names:
        attempt(client, name, "wrong password!", STRANGER)
    assert attempt(client, "alice", PASSWORD, STRANGER).status_code == 429
    assert attempt(client, "alice", PASSWORD, OWNER).status_code == 302


def test_many_addresses_guessing_do_not_lock_out_an_address_the_owner_used(client, runtime, monkeypatch):
    monkeypatch.setattr(moderators, "MAX_FAILED_LOGINS_PER_ACCOUNT", 12)
    make_moderator(runtime)
    assert attempt(client, "alice", PASSWORD, OWNER).status_code == 302  # the owner's address is known now
    for number in range(12):
        attempt(client, "alice", "wrong password!", f"203.0.113.{number}")
    # Too many guesses at the account overall: new addresses wait, the owner's known address does not.
    assert attempt(client, "alice", PASSWORD, "203.0.113.200").status_code == 429
    assert attempt(client, "alice", PASSWORD, OWNER).status_code == 302


@pytest.mark.parametrize("username", ["alice", "nobody-here"])
def test_throttling_works_behind_the_trusted_proxy(runtime, username):
    from service.web.app import create_app

    make_moderator(runtime)
    app = create_app(runtime.settings.with_overrides(trusted_proxies=1), runtime=runtime)
    client = app.test_client()

    def forwarded(address: str, password: str) -> Any:
        client.delete_cookie("session")
        environ = {"REMOTE_ADDR": "10.0.0.2", "HTTP_X_FORWARDED_FOR": address}
        token = csrf_from(client.get("/login", environ_base=environ).get_data(as_text=True))
        return client.post(
            "/login",
            data={"username": username, "password": password, "csrf_token": token},
            environ_base=environ,
        )

    for _ in range(moderators.MAX_FAILED_LOGINS):
        forwarded(STRANGER, "wrong password!")
    assert forwarded(STRANGER, "wrong password!").status_code == 429
    # The proxy's own address is not the client: another client behind it is not throttled.
    assert forwarded(OWNER, PASSWORD).status_code == (302 if username == "alice" else 401)
