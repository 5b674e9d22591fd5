"""``python -m service keys create --secret``: the chosen secret is the key, and bad ones are refused."""

from __future__ import annotations

import pytest

from service import cli
from service.keys import InvalidSecret, create_api_key, find_api_key


def run_cli(settings, monkeypatch, *argv: str) -> int:  # noqa: ANN001
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    monkeypatch.setenv("REDIS_URL", settings.redis_url)
    monkeypatch.setenv("MODERATION_VAR_DIR", str(settings.var_dir))
    return cli.main(list(argv))


def test_keys_create_uses_the_given_secret(settings, runtime, monkeypatch, capsys):
    code = run_cli(settings, monkeypatch, "keys", "create", "--name", "wp", "--secret", "abcdef123456")
    assert code == 0
    assert "key: abcdef123456" in capsys.readouterr().out
    with runtime.session() as session:
        found = find_api_key(session, "abcdef123456")
        assert found is not None and found.name == "wp"


@pytest.mark.parametrize(
    ("secret", "problem"),
    [
        ("short", "12 to 200"),
        ("x" * 201, "12 to 200"),
        ("has a space 1", "printable"),
        ("ünïcödé12345", "printable"),
    ],
)
def test_keys_create_refuses_a_bad_secret(settings, runtime, monkeypatch, capsys, secret, problem):
    assert run_cli(settings, monkeypatch, "keys", "create", "--name", "wp", "--secret", secret) == 2
    assert problem in capsys.readouterr().err


def test_a_secret_already_taken_is_refused(runtime):
    with runtime.session() as session:
        create_api_key(session, "first", secret="abcdef123456")
        with pytest.raises(InvalidSecret, match="already taken"):
            create_api_key(session, "second", secret="abcdef123456")


def test_keys_create_takes_a_comment_rate_limit(settings, runtime, monkeypatch, capsys):
    argv = ["keys", "create", "--name", "cms", "--secret", "abcdef123456"]
    assert run_cli(settings, monkeypatch, *argv, "--comment-rate-limit", "many") == 2
    assert "comment_rate_limit must look like 100/second" in capsys.readouterr().err
    assert run_cli(settings, monkeypatch, *argv, "--comment-rate-limit", "20/second") == 0
    with runtime.session() as session:
        assert find_api_key(session, "abcdef123456").comment_rate_limit == "20/second"


def test_keys_limit_changes_and_clears_a_keys_limits(settings, runtime, monkeypatch, capsys):
    with runtime.session() as session:
        key_id = create_api_key(session, "cms", secret="abcdef123456", rate_limit="5/second").api_key.id
    key = str(key_id)

    assert run_cli(settings, monkeypatch, "keys", "limit", key, "--comment-rate-limit", "20/second") == 0
    assert "comment rate limit: 20/second" in capsys.readouterr().out
    with runtime.session() as session:
        found = find_api_key(session, "abcdef123456")
        assert (found.rate_limit, found.comment_rate_limit) == ("5/second", "20/second")

    assert run_cli(settings, monkeypatch, "keys", "limit", key, "--rate-limit", "off") == 0
    with runtime.session() as session:
        found = find_api_key(session, "abcdef123456")
        assert (found.rate_limit, found.comment_rate_limit) == (None, "20/second")
    assert run_cli(settings, monkeypatch, "keys", "list") == 0
    assert "rate limit: RATE_LIMIT; comment rate limit: 20/second" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "problem"),
    [
        (["--comment-rate-limit", "lots"], "comment_rate_limit must look like 100/second"),
        (["--rate-limit", "5 per fortnight"], "rate_limit must look like 100/second"),
        ([], "give --rate-limit, --comment-rate-limit or both"),
    ],
)
def test_keys_limit_refuses_what_it_cannot_apply(settings, runtime, monkeypatch, capsys, argv, problem):
    with runtime.session() as session:
        key_id = create_api_key(session, "cms", secret="abcdef123456").api_key.id
    assert run_cli(settings, monkeypatch, "keys", "limit", str(key_id), *argv) == 2
    assert problem in capsys.readouterr().err
    with runtime.session() as session:
        found = find_api_key(session, "abcdef123456")
        assert (found.rate_limit, found.comment_rate_limit) == (None, None)


def test_keys_limit_names_a_missing_key(settings, runtime, monkeypatch, capsys):
    assert run_cli(settings, monkeypatch, "keys", "limit", "999", "--rate-limit", "5/second") == 2
    assert "no key with id 999" in capsys.readouterr().err
