"""Sites end to end: keys and comments belong to a site, its rules decide through POST /v1/comments,
its moderators see only its comments, and old databases get the new columns."""

from __future__ import annotations

import pytest
from sqlalchemy import MetaData, Table, inspect, text

from service import cli
from service.db import APPROVED, HELD, REJECTED, Comment, Moderator, Site, add_missing_columns, make_engine
from service.keys import SCOPES, create_api_key, server_secret
from service.moderators import create_moderator, issue_token
from service.rules import AUTHOR_IP, BANNED, EMAIL_BAN, LINK_BLOCKED_KIND, LINK_TRUSTED, SUSPECT
from service.sites import add_entries, create_site, ensure_default_site, find_site, update_settings
from tests.conftest import Key, drain_queues

ENGLISH = "The council should publish the full budget before the vote next week."


def site_key(runtime, name: str = "gazette", webhook_url: str | None = None) -> Key:
    with runtime.session() as session:
        site = find_site(session, name) or create_site(session, name)
        new = create_api_key(
            session,
            f"{name}-cms",
            SCOPES,
            webhook_url=webhook_url,
            sealing_key=server_secret(runtime.settings),
            site_id=site.id,
        )
    return Key(new.secret, new.api_key.id, new.webhook_secret)


def add_rules(runtime, kind: str, *values: str, site: str = "gazette") -> None:
    with runtime.session() as session:
        add_entries(session, find_site(session, site), kind, values, actor="test")


def set_options(runtime, site: str = "gazette", **changes) -> None:
    with runtime.session() as session:
        update_settings(session, find_site(session, site), changes, runtime.settings.thresholds, actor="test")


def verdict(client, runtime, key: Key, **fields) -> dict:
    body = {"name": "Ada", "email": "ada@example.com", "text": ENGLISH, **fields}
    response = client.post("/v1/comments", json=body, headers=key.headers)
    assert response.status_code == 202, response.get_json()
    drain_queues(runtime)
    return client.get(f"/v1/comments/{response.get_json()['id']}", headers=key.headers).get_json()


def test_comments_record_their_site_and_language(client, runtime):
    key = site_key(runtime)
    result = verdict(client, runtime, key)
    assert (result["status"], result["reason"], result["language"], result["rules"]) == (
        APPROVED,
        "clean",
        "en",
        [],
    )
    with runtime.session() as session:
        comment = session.get(Comment, result["id"])
        assert comment.site_id == find_site(session, "gazette").id


def test_banned_word_rejects_with_the_matched_text_in_the_answer_and_the_webhook(
    client, runtime, webhook_receiver
):
    key = site_key(runtime, webhook_url=webhook_receiver.url)
    add_rules(runtime, BANNED, "idiot")
    result = verdict(client, runtime, key, text=ENGLISH + " Only a 1d10t would vote no.")
    assert (result["status"], result["reason"]) == (REJECTED, "banned_word")
    (hit,) = result["rules"]
    assert (hit["rule"], hit["entry"], hit["match"]) == ("banned_word", "idiot", "1d10t")
    start, end = hit["span"]
    assert (ENGLISH + " Only a 1d10t would vote no.")[start:end] == "1d10t"
    drain_queues(runtime)
    (delivered,) = webhook_receiver.bodies()
    assert delivered["comment"]["rules"][0]["match"] == "1d10t"


def test_rules_are_per_site(client, runtime, api_key):
    key = site_key(runtime)
    add_rules(runtime, BANNED, "budget")
    assert verdict(client, runtime, key)["status"] == REJECTED
    # The default site (a key without a site) has no such rule.
    assert verdict(client, runtime, api_key)["status"] == APPROVED


@pytest.mark.parametrize(
    ("kind", "entry", "fields", "status", "reason"),
    [
        (SUSPECT, "vote*", {}, HELD, "suspect_word"),
        (EMAIL_BAN, "example.com", {}, REJECTED, "email_banned"),
        (
            LINK_BLOCKED_KIND,
            "bad.example",
            {"text": ENGLISH + " http://bad.example/x"},
            REJECTED,
            "link_blocked",
        ),
        (AUTHOR_IP, "203.0.113.5", {"author_ip": "203.0.113.5"}, REJECTED, "author_banned"),
    ],
)
def test_each_list_decides_through_the_api(client, runtime, kind, entry, fields, status, reason):
    key = site_key(runtime)
    add_rules(runtime, kind, entry)
    result = verdict(client, runtime, key, **fields)
    assert (result["status"], result["reason"]) == (status, reason)


def test_trusted_domains_do_not_count_against_the_link_limit(client, runtime):
    key = site_key(runtime)
    links = " https://gazette.example/a https://gazette.example/b https://gazette.example/c"
    assert verdict(client, runtime, key, text=ENGLISH + links)["reason"] == "too_many_links"
    add_rules(runtime, LINK_TRUSTED, "gazette.example")
    assert verdict(client, runtime, key, text=ENGLISH + links)["status"] == APPROVED


def test_disposable_and_alias_emails_are_held_when_the_site_asks(client, runtime):
    key = site_key(runtime)
    assert verdict(client, runtime, key, email="x@mailinator.com")["status"] == APPROVED
    set_options(runtime, hold_disposable_email=True, hold_email_aliases=True)
    assert verdict(client, runtime, key, email="x@mailinator.com")["reason"] == "disposable_email"
    assert verdict(client, runtime, key, email="ada+x@example.org")["reason"] == "email_alias"


def test_regular_authors_are_trusted_and_mostly_rejected_ones_held(client, runtime):
    key = site_key(runtime)
    add_rules(runtime, SUSPECT, "budget")
    set_options(runtime, trusted_after_approved=1, recent_history_size=2)
    assert (
        verdict(client, runtime, key, text="Thanks for the clear article about the new library.")["status"]
        == APPROVED
    )
    assert verdict(client, runtime, key)["reason"] == "trusted_author"  # the suspect word is forgiven
    add_rules(runtime, BANNED, "troll")
    for _ in range(2):
        assert (
            verdict(client, runtime, key, email="t@example.net", text=ENGLISH + " troll")["status"]
            == REJECTED
        )
    assert verdict(client, runtime, key, email="t@example.net", text="A fair point about parking.")[
        "reason"
    ] == ("recent_rejections")


def test_french_is_held_as_unsupported_language_unless_the_site_scores_it(client, runtime):
    key = site_key(runtime)
    french = "Je pense que le conseil municipal doit publier le budget complet avant le vote."
    result = verdict(client, runtime, key, text=french)
    assert (result["status"], result["reason"], result["language"]) == (HELD, "unsupported_language", "fr")
    set_options(runtime, score_unsupported_languages=True)
    assert verdict(client, runtime, key, text=french)["reason"] != "unsupported_language"


def test_site_thresholds_default_to_the_settings_and_can_be_overridden(client, runtime):
    key = site_key(runtime)
    set_options(runtime, max_links=0)
    assert verdict(client, runtime, key, text=ENGLISH + " https://a.example/")["reason"] == "too_many_links"


def test_a_site_moderator_sees_and_decides_only_their_site(client, runtime, api_key):
    key = site_key(runtime)
    set_options(runtime, site="gazette", max_links=0)
    ours = verdict(client, runtime, key, text=ENGLISH + " https://a.example/")
    theirs = verdict(
        client, runtime, api_key, text=ENGLISH + " https://a.example/ https://b.example/ https://c.example/"
    )
    assert ours["status"] == theirs["status"] == HELD
    with runtime.session() as session:
        site = find_site(session, "gazette")
        create_moderator(session, "gail", "a long password", site_id=site.id)
        token = issue_token(session, "gail")
    headers = {"Authorization": f"Bearer {token}"}
    body = client.get("/v1/queues/held", headers=headers).get_json()
    assert [comment["id"] for comment in body["comments"]] == [ours["id"]]
    assert body["counts"]["held"] == 1
    assert client.get("/v1/queues/held?q=council", headers=headers).get_json()["count"] == 1
    response = client.post(
        f"/v1/comments/{theirs['id']}/decision", json={"decision": "spam"}, headers=headers
    )
    assert response.status_code == 404


def test_cli_sites_keys_and_moderators(settings, runtime, monkeypatch, capsys):
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    monkeypatch.setenv("REDIS_URL", settings.redis_url)
    monkeypatch.setattr("sys.stdin", __import__("io").StringIO("a long password\n"))
    assert cli.main(["sites", "add", "courier"]) == 0
    assert cli.main(["sites", "add", "courier"]) == 2
    assert cli.main(["keys", "create", "--name", "c", "--site", "courier"]) == 0
    assert cli.main(["keys", "create", "--name", "c", "--site", "nowhere"]) == 2
    assert (
        cli.main(["moderators", "add", "cat", "--site", "courier", "--role", "admin", "--password-stdin"])
        == 0
    )
    assert cli.main(["moderators", "role", "cat", "--role", "moderator"]) == 0
    assert cli.main(["moderators", "role", "cat", "--role", "admin", "--site", "courier"]) == 0
    assert cli.main(["sites", "list"]) == 0
    out = capsys.readouterr().out
    assert "courier" in out and "default" in out
    with runtime.session() as session:
        courier = find_site(session, "courier")
        moderator = session.query(Moderator).filter_by(username="cat").one()
        assert (moderator.site_id, moderator.role) == (courier.id, "admin")


def test_old_databases_get_the_new_nullable_columns(database_url):
    engine = make_engine(database_url)
    # The moderators table as the version before sites made it.
    old = MetaData()
    new_columns = {"site_id", "role"}
    Table("moderators", old, *[c._copy() for c in Moderator.__table__.columns if c.name not in new_columns])
    old.create_all(engine)
    assert add_missing_columns(engine) == ["moderators.site_id", "moderators.role"]
    columns = {column["name"] for column in inspect(engine).get_columns("moderators")}
    assert new_columns <= columns
    assert add_missing_columns(engine) == []  # idempotent
    with engine.begin() as connection:
        connection.execute(text("DROP TABLE moderators"))
    engine.dispose()


def test_the_default_site_exists_once(runtime):
    with runtime.session() as session:
        first = ensure_default_site(session)
        assert ensure_default_site(session).id == first.id
        assert session.query(Site).filter_by(name="default").count() == 1
