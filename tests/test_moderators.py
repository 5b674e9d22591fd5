"""Moderator accounts: argon2 passwords, lockout, tokens, and the CLI."""

from __future__ import annotations

import argparse
import hashlib
import io

import pytest

from service.cli import COMMANDS
from service.db import Moderator
from service.moderators import (
    MAX_FAILED_LOGINS,
    LoginGuard,
    ModeratorError,
    create_moderator,
    find_by_token,
    issue_token,
    list_moderators,
    set_disabled,
)
from service.moderators import authenticate as _authenticate

PASSWORD = "correct horse battery staple"


ADDRESS = "192.0.2.1"


@pytest.fixture
def session(runtime):  # noqa: ANN001, ANN201
    with runtime.session() as session:
        yield session


@pytest.fixture
def guard(runtime) -> LoginGuard:  # noqa: ANN001
    return LoginGuard(runtime.redis, runtime.settings.redis_prefix)


def authenticate(session, username: str, password: str, guard: LoginGuard):  # noqa: ANN001, ANN201
    return _authenticate(session, guard, username, password, ADDRESS)


def test_passwords_are_stored_as_argon2(session, guard):
    moderator = create_moderator(session, "alice", PASSWORD)
    assert moderator.password_hash.startswith("$argon2id$")
    assert PASSWORD not in moderator.password_hash
    assert authenticate(session, "alice", PASSWORD, guard).outcome == "ok"
    assert authenticate(session, "alice", "wrong", guard).outcome == "invalid"
    assert authenticate(session, "nobody", PASSWORD, guard).outcome == "invalid"


def test_account_rules(session):
    create_moderator(session, "alice", PASSWORD)
    with pytest.raises(ModeratorError):
        create_moderator(session, "alice", PASSWORD)
    with pytest.raises(ModeratorError):
        create_moderator(session, "bob", "short")
    with pytest.raises(ModeratorError):
        create_moderator(session, "has space", PASSWORD)
    assert [moderator.username for moderator in list_moderators(session)] == ["alice"]


def test_repeated_failures_throttle_the_address_not_the_account(session, guard):
    create_moderator(session, "alice", PASSWORD)
    for _ in range(MAX_FAILED_LOGINS):
        assert authenticate(session, "alice", "wrong password", guard).outcome == "invalid"
    result = authenticate(session, "alice", PASSWORD, guard)
    assert result.outcome == "throttled" and result.retry_after > 0
    assert _authenticate(session, guard, "alice", PASSWORD, "198.51.100.1").outcome == "ok"
    moderator = session.query(Moderator).one()
    assert moderator.locked_until is None


def test_success_resets_the_failure_count(session, guard):
    create_moderator(session, "alice", PASSWORD)
    for _ in range(MAX_FAILED_LOGINS - 1):
        authenticate(session, "alice", "wrong password", guard)
    assert authenticate(session, "alice", PASSWORD, guard).outcome == "ok"
    for _ in range(MAX_FAILED_LOGINS - 1):
        authenticate(session, "alice", "wrong password", guard)
    assert authenticate(session, "alice", PASSWORD, guard).outcome == "ok"


def test_disabled_moderator_cannot_log_in(session, guard):
    create_moderator(session, "alice", PASSWORD)
    set_disabled(session, "alice", True)
    assert authenticate(session, "alice", PASSWORD, guard).outcome == "disabled"


def test_tokens_are_stored_hashed(session):
    create_moderator(session, "alice", PASSWORD)
    token = issue_token(session, "alice")
    moderator = session.query(Moderator).one()
    assert moderator.token_hash == hashlib.sha256(token.encode()).hexdigest()
    found = find_by_token(session, token)
    assert found is not None and found.username == "alice"
    assert find_by_token(session, token + "x") is None
    assert find_by_token(session, "") is None
    # A new token replaces the old one.
    assert find_by_token(session, issue_token(session, "alice")) is not None
    assert find_by_token(session, token) is None


def _cli(settings, capsys, monkeypatch, *argv: str, stdin: str = "") -> tuple[int, str]:  # noqa: ANN001
    add_arguments, run = COMMANDS["moderators"]
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    code = run(parser.parse_args(list(argv)), settings)
    out = capsys.readouterr()
    return code, out.out + out.err


def test_cli_add_list_disable_token(settings, runtime, capsys, monkeypatch):
    code, out = _cli(settings, capsys, monkeypatch, "add", "carol", "--password-stdin", stdin=PASSWORD + "\n")
    assert code == 0 and "created moderator carol" in out
    code, out = _cli(settings, capsys, monkeypatch, "add", "carol", "--password-stdin", stdin=PASSWORD + "\n")
    assert code == 2 and "exists already" in out
    code, token = _cli(settings, capsys, monkeypatch, "token", "carol")
    assert code == 0 and token.startswith("mt_")
    code, out = _cli(settings, capsys, monkeypatch, "list")
    assert "carol\tactive\ttoken" in out
    code, out = _cli(settings, capsys, monkeypatch, "disable", "carol")
    assert code == 0
    code, out = _cli(settings, capsys, monkeypatch, "list")
    assert "carol\tdisabled" in out
    with runtime.session() as session:
        assert find_by_token(session, token.strip()) is None


def test_cli_registers_the_command_group():
    assert "moderators" in COMMANDS
