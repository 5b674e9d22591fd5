"""API keys cannot be recovered from the database nor guessed online (issue #12, finding 4)."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys

import pytest
from sqlalchemy import select

from service.connections import connect_database
from service.db import ApiKey
from service.keys import (
    KEY_CACHE_SECONDS,
    SCOPES,
    SHOWN_PREFIX_CHARS,
    InvalidSecret,
    create_api_key,
    find_api_key,
    hash_key,
)

SHORT = "a1b2c3d4e5f6"  # the WordPress plugin's 12 characters


def stored(runtime, key_id: int) -> ApiKey:  # noqa: ANN001
    with runtime.session() as session:
        return session.get(ApiKey, key_id)


def verify_key(client, secret: str, address: str = "198.51.100.1") -> tuple[int, str]:  # noqa: ANN001
    response = client.post(
        "/1.1/verify-key",
        data={"key": secret, "blog": "https://example.com"},
        environ_base={"REMOTE_ADDR": address},
    )
    return response.status_code, response.get_data(as_text=True)


def test_a_short_key_is_stored_with_a_salted_slow_hash_and_shows_nothing(runtime):
    with runtime.session() as session:
        first = create_api_key(session, "wp-one", SCOPES, secret=SHORT).api_key.id
        second = create_api_key(session, "wp-two", SCOPES, secret="zz9yy8xx7ww6").api_key.id
    row = stored(runtime, first)
    assert row.key_hash.startswith("a2$") and len(row.key_hash) <= 64
    assert row.key_hash != hash_key(SHORT)
    assert row.key_prefix == ""
    assert stored(runtime, second).key_hash.split("$")[1] != row.key_hash.split("$")[1]  # own salts
    with runtime.session() as session:
        assert find_api_key(session, SHORT).id == first
        assert find_api_key(session, "zz9yy8xx7ww6").id == second
        assert find_api_key(session, "a1b2c3d4e5f7") is None


def test_generated_keys_keep_only_a_short_prefix(runtime, api_key):
    row = stored(runtime, api_key.id)
    assert len(row.key_prefix) == SHOWN_PREFIX_CHARS == 7
    assert row.key_hash == hash_key(api_key.secret)


def test_keys_shorter_than_twelve_characters_are_refused(runtime):
    with runtime.session() as session, pytest.raises(InvalidSecret):
        create_api_key(session, "tiny", SCOPES, secret="short")


def test_keys_stored_before_keep_working_and_lose_what_they_showed(settings, runtime, client):
    long_secret = "mk_" + "L" * 43
    with runtime.session() as session:
        for name, secret in (("legacy-wp", SHORT), ("legacy-long", long_secret)):
            session.add(
                ApiKey(name=name, key_hash=hash_key(secret), key_prefix=secret[:10], scopes="analyze")
            )
        session.commit()

    connect_database(settings)  # every process runs the migration at start-up
    with runtime.session() as session:
        prefixes = {name: prefix for name, prefix in session.execute(select(ApiKey.name, ApiKey.key_prefix))}
    assert prefixes == {"legacy-wp": "", "legacy-long": long_secret[:SHOWN_PREFIX_CHARS]}

    assert verify_key(client, SHORT) == (200, "valid")
    assert verify_key(client, long_secret) == (200, "valid")
    with runtime.session() as session:
        upgraded = session.scalars(select(ApiKey).where(ApiKey.name == "legacy-wp")).one()
    assert upgraded.key_hash.startswith("a2$")  # re-hashed on first use
    runtime.api_keys.clear()
    assert verify_key(client, SHORT) == (200, "valid")


def test_the_key_cache_answers_without_the_database_for_ten_seconds(runtime):
    with runtime.session() as session:
        secret = create_api_key(session, "cached", SCOPES, secret=SHORT).secret
    assert runtime.api_keys.ttl == KEY_CACHE_SECONDS == 10.0
    assert runtime.api_keys.find(secret) is not None
    with runtime.session() as session:
        session.delete(session.get(ApiKey, runtime.api_keys.find(secret).id))
        session.commit()
    assert runtime.api_keys.find(secret) is not None  # still cached
    runtime.api_keys.clear()
    assert runtime.api_keys.find(secret) is None


@pytest.fixture
def strict_client(runtime):  # noqa: ANN001, ANN201
    from service.web.app import create_app

    strict = dataclasses.replace(
        runtime, settings=runtime.settings.with_overrides(failed_key_limit="5/minute")
    )
    return create_app(strict.settings, runtime=strict).test_client()


def test_failed_key_checks_are_limited_per_client_address(strict_client, api_key):
    attacker, other = "203.0.113.7", "198.51.100.20"
    for guess in range(5):
        assert verify_key(strict_client, f"guess-{guess:08d}", attacker) == (200, "invalid")
    response = strict_client.post(
        "/1.1/verify-key", data={"key": "guess-00000005"}, environ_base={"REMOTE_ADDR": attacker}
    )
    assert (response.status_code, response.get_data(as_text=True)) == (429, "throttled")
    assert 0 < int(response.headers["Retry-After"]) <= 60
    # Even the right key is refused from that address until the window ends: a guess cannot succeed.
    assert verify_key(strict_client, api_key.secret, attacker)[0] == 429
    assert verify_key(strict_client, api_key.secret, other) == (200, "valid")


def test_a_blocked_address_gets_429_in_each_protocols_shape(strict_client, api_key):
    attacker = {"REMOTE_ADDR": "203.0.113.8"}
    for guess in range(5):
        strict_client.get(
            "/v1/comments/x", headers={"Authorization": f"Bearer bad-{guess}"}, environ_base=attacker
        )
    v1 = strict_client.get("/v1/comments/x", headers=api_key.headers, environ_base=attacker)
    assert v1.status_code == 429 and v1.get_json()["error"]["code"] == "too_many_requests"
    assert v1.headers["Retry-After"]
    perspective = strict_client.post(
        f"/v1alpha1/comments:analyze?key={api_key.secret}",
        json={"comment": {"text": "hi"}, "requestedAttributes": {"TOXICITY": {}}},
        environ_base=attacker,
    )
    assert perspective.status_code == 429
    assert perspective.get_json()["error"]["status"] == "RESOURCE_EXHAUSTED"
    queue = strict_client.get("/v1/queues/held", headers=api_key.headers, environ_base=attacker)
    assert queue.status_code == 429


def test_the_cli_creates_a_short_key_and_lists_nothing_of_it(tmp_path):
    env = {**os.environ, "MODERATION_VAR_DIR": str(tmp_path / "var")}
    env.pop("DATABASE_URL", None)

    def cli(*args: str) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "service", "keys", *args]
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)

    created = cli("create", "--name", "wordpress", "--scopes", "analyze,submit", "--secret", SHORT)
    assert created.returncode == 0, created.stderr
    assert f"key: {SHORT}" in created.stdout
    assert cli("create", "--name", "tiny", "--secret", "short").returncode == 2
    assert cli("create", "--name", "again", "--secret", SHORT).returncode == 2  # taken (salted hashes too)
    listing = cli("list").stdout
    assert "wordpress" in listing and "(short key)" in listing
    assert SHORT[:4] not in listing


def test_behind_a_trusted_proxy_the_limit_counts_forwarded_client_addresses(runtime, api_key):
    from service.web.app import create_app

    fronted = dataclasses.replace(
        runtime, settings=runtime.settings.with_overrides(failed_key_limit="3/minute", trusted_proxies=1)
    )
    client = create_app(fronted.settings, runtime=fronted).test_client()
    proxy = {"REMOTE_ADDR": "10.0.0.2"}

    def check(secret: str, forwarded_for: str) -> int:
        response = client.post(
            "/1.1/verify-key",
            data={"key": secret},
            headers={"X-Forwarded-For": forwarded_for},
            environ_base=proxy,
        )
        return response.status_code

    assert [check(f"bad-guess-{n}", "203.0.113.50") for n in range(4)] == [200, 200, 200, 429]
    # The proxy's other clients are not locked out by one of them.
    assert check(api_key.secret, "198.51.100.60") == 200
