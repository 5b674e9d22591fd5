"""Authors' personal data: erased on request (CLI and API), pseudonymised once old."""

from __future__ import annotations

import argparse
import threading
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, text

import worker
from service.cli import COMMANDS
from service.db import APPROVED, AuthorErasure, Comment, Label, Site, StatusChange, utcnow
from service.decisions import decide
from service.keys import create_api_key, server_secret
from service.moderators import create_moderator, issue_token
from service.privacy import PSEUDONYM_MARK, apply_retention, erase_author, maybe_apply_retention, pseudonym
from service.sites import create_site
from tests.test_moderation_pages import add_comment, logged_in, make_moderator

ADA = "Ada.Lovelace@example.com"
ADA_IP = "203.0.113.5"
PERSONAL = ("ada.lovelace@example.com", ADA_IP, "Ada Lovelace", "https://ada.example/")


def ada_comment(runtime: Any, **fields: Any) -> str:
    values = {
        "author_email": ADA,
        "author_ip": ADA_IP,
        "author_name": "Ada Lovelace",
        "author_url": "https://ada.example/",
        "user_agent": "Mozilla/5.0 (Ada's laptop)",
    }
    values.update(fields)
    return add_comment(runtime, **values)


def all_text(runtime: Any, table: str) -> str:
    """Every value of every row, as a database dump would show it."""
    with runtime.engine.connect() as connection:
        return " ".join(
            str(value) for row in connection.execute(text(f"SELECT * FROM {table}")) for value in row
        )


def decided_twice(runtime: Any) -> tuple[str, str, str]:
    """Two comments of Ada (one decided by a moderator, so it has a label) and one of someone else."""
    first = ada_comment(runtime)
    second = ada_comment(runtime, author_email=ADA.upper())  # the same address, spelled differently
    other = add_comment(
        runtime, author_email="grace@example.com", author_ip="198.51.100.9", author_name="Grace"
    )
    decide(runtime, [first], "spam", "moderator:alice")
    return first, second, other


def _cli(settings: Any, *argv: str) -> int:
    add_arguments, run = COMMANDS["authors"]
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return run(parser.parse_args(list(argv)), settings)


def test_cli_erase_removes_the_author_everywhere_and_keeps_the_history(runtime, settings, capsys):
    first, second, other = decided_twice(runtime)
    with runtime.session() as session:
        history_before = session.scalar(select(func.count()).select_from(StatusChange))
        labels_before = session.scalar(select(func.count()).select_from(Label))
    assert _cli(settings, "erase", "--email", "ada.lovelace@example.com", "--actor", "dpo") == 0
    assert "2 comments, 1 labels" in capsys.readouterr().out

    for table in ("comments", "labels", "author_erasures"):
        dump = all_text(runtime, table).lower()
        for value in PERSONAL:
            assert value.lower() not in dump, (table, value)
    assert "ada's laptop" not in all_text(runtime, "comments").lower()
    with runtime.session() as session:
        erased = session.get(Comment, first)
        assert erased is not None and erased.status == "rejected" and erased.text  # the comment stays
        assert session.get(Comment, other).author_email == "grace@example.com"  # type: ignore[union-attr]
        assert session.scalar(select(func.count()).select_from(StatusChange)) == history_before
        assert session.scalar(select(func.count()).select_from(Label)) == labels_before
        label = session.scalars(select(Label).where(Label.comment_id == first)).one()
        assert label.decision == "spam" and label.labels == {"spam": 1}
        (record,) = session.scalars(select(AuthorErasure)).all()
        assert record.actor == "operator:dpo" and record.comments == 2 and record.labels == 1
        assert record.created_at is not None


def test_erased_comments_are_nobodys_history(client, runtime):
    logged_in(client, runtime)
    ada_comment(runtime, status=APPROVED, received_at=utcnow() - timedelta(days=1), text="Ada's old note")
    with runtime.session() as session:
        erase_author(session, ADA, "operator:test", server_secret(runtime.settings))
    add_comment(runtime, author_email="", author_ip=None, text="Another erased author's comment, idiot")
    html = client.get("/moderate/?q=idiot").get_data(as_text=True)
    assert "Ada&#39;s old note" not in html and "Ada's old note" not in html


def test_api_erase_with_a_moderator_token(client, runtime):
    ada_comment(runtime)
    make_moderator(runtime)
    with runtime.session() as session:
        token = issue_token(session, "alice")
    response = client.post(
        "/v1/authors/erase", json={"email": ADA}, headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 200
    assert response.get_json()["comments"] == 1
    with runtime.session() as session:
        (record,) = session.scalars(select(AuthorErasure)).all()
        assert record.actor == "moderator:alice"
    assert ADA.lower() not in all_text(runtime, "comments").lower()


def test_api_erase_by_a_cms_key_covers_only_its_own_comments(client, runtime):
    with runtime.session() as session:
        mine = create_api_key(session, "mine", ["comments", "moderate"])
        theirs = create_api_key(session, "theirs", ["comments"])
    ada_comment(runtime, api_key_id=mine.api_key.id)
    kept = ada_comment(runtime, api_key_id=theirs.api_key.id)
    headers = {"Authorization": f"Bearer {mine.secret}"}
    response = client.post("/v1/authors/erase", json={"email": ADA}, headers=headers)
    assert response.status_code == 200 and response.get_json()["comments"] == 1
    with runtime.session() as session:
        assert session.get(Comment, kept).author_email == ADA  # type: ignore[union-attr]
        assert session.scalars(select(AuthorErasure)).one().api_key_id == mine.api_key.id


@pytest.mark.parametrize("body", [{}, {"email": ""}, {"email": 7}, {"email": "x" * 400}])
def test_api_erase_names_the_bad_field(client, runtime, body):
    with runtime.session() as session:
        key = create_api_key(session, "mine", ["moderate"])
    response = client.post("/v1/authors/erase", json=body, headers={"Authorization": f"Bearer {key.secret}"})
    assert response.status_code == 422
    assert "email" in response.get_json()["error"]["fields"]


def test_api_erase_needs_the_moderate_scope(client, runtime):
    with runtime.session() as session:
        key = create_api_key(session, "plain", ["comments"])
    response = client.post(
        "/v1/authors/erase", json={"email": ADA}, headers={"Authorization": f"Bearer {key.secret}"}
    )
    assert response.status_code == 403
    assert client.post("/v1/authors/erase", json={"email": ADA}).status_code == 401


def test_retention_pseudonymises_old_addresses_and_keeps_author_history(client, runtime, settings):
    logged_in(client, runtime)
    now = utcnow()
    old = ada_comment(runtime, status=APPROVED, received_at=now - timedelta(days=120), text="Ada from spring")
    recent = ada_comment(runtime, status=APPROVED, received_at=now - timedelta(days=10), text="Ada last week")
    with runtime.session() as session:
        old_comment = session.get(Comment, old)
        decide(runtime, [old], "spam", "moderator:alice")
        session.execute(
            Label.__table__.update()
            .where(Label.comment_id == old)
            .values(created_at=now - timedelta(days=100))
        )
        session.commit()
        assert old_comment is not None
    assert _cli(settings, "retention") == 0

    sealing = server_secret(runtime.settings)
    with runtime.session() as session:
        aged = session.get(Comment, old)
        fresh = session.get(Comment, recent)
        assert aged is not None and fresh is not None
        assert aged.author_email == pseudonym(ADA, sealing) and aged.author_email.startswith(PSEUDONYM_MARK)
        assert aged.author_ip == pseudonym(ADA_IP, sealing)
        assert fresh.author_email == ADA and fresh.author_ip == ADA_IP  # younger than 90 days: kept
        label = session.scalars(select(Label).where(Label.comment_id == old)).one()
        assert label.author_email == pseudonym(ADA, sealing)
    dump = " ".join(
        str(value)
        for row in runtime.engine.connect().execute(
            text("SELECT author_email, author_ip FROM comments WHERE id = :id"), {"id": old}
        )
        for value in row
    )
    assert "ada" not in dump.lower() and ADA_IP not in dump
    # Running again changes nothing; a new comment by Ada still sees her old one in its history.
    with runtime.session() as session:
        assert apply_retention(session, runtime.settings, sealing).comments == 0
    add_comment(runtime, author_email=ADA, author_ip="192.0.2.200", received_at=now)
    html = client.get("/moderate/?q=idiot").get_data(as_text=True)
    assert "Ada from spring" in html


def test_retention_age_is_a_setting(runtime):
    sealing = server_secret(runtime.settings)
    old = ada_comment(runtime, received_at=utcnow() - timedelta(days=20))
    with runtime.session() as session:
        assert apply_retention(session, runtime.settings, sealing).comments == 0
        shorter = runtime.settings.with_overrides(retention_days=14)
        assert apply_retention(session, shorter, sealing).comments == 1
        assert session.get(Comment, old).author_email.startswith(PSEUDONYM_MARK)  # type: ignore[union-attr]
        off = runtime.settings.with_overrides(retention_days=0)
        ada_comment(runtime, received_at=utcnow() - timedelta(days=400))
        assert apply_retention(session, off, sealing).comments == 0


def test_the_periodic_run_happens_once_an_interval(runtime):
    sealing = server_secret(runtime.settings)
    ada_comment(runtime, received_at=utcnow() - timedelta(days=200))
    with runtime.session() as session:
        assert maybe_apply_retention(session, runtime.redis, runtime.settings, sealing)
        assert not maybe_apply_retention(session, runtime.redis, runtime.settings, sealing)
    assert ADA.lower() not in all_text(runtime, "comments").lower()


def test_the_worker_reconciler_runs_retention(runtime):
    ada_comment(runtime, received_at=utcnow() - timedelta(days=200))
    fast = runtime.settings.with_overrides(reconcile_interval_seconds=0.1)
    runtime.settings = fast
    stop = threading.Event()
    thread = threading.Thread(target=worker.reconcile_forever, args=(runtime, stop), daemon=True)
    thread.start()
    try:
        for _ in range(100):
            if ADA.lower() not in all_text(runtime, "comments").lower():
                break
            stop.wait(0.1)
    finally:
        stop.set()
        thread.join(timeout=10)
    assert ADA.lower() not in all_text(runtime, "comments").lower()


def test_api_erase_by_a_site_moderator_covers_only_that_site(client, runtime):
    with runtime.session() as session:
        gazette = create_site(session, "gazette")
        create_site(session, "courier")
        create_moderator(session, "gail", "a long password", site_id=gazette.id)
        token = issue_token(session, "gail")
        courier = session.scalars(select(Site).where(Site.name == "courier")).one()
        courier_id = courier.id
    ours = ada_comment(runtime, site_id=gazette.id)
    kept = ada_comment(runtime, site_id=courier_id)
    response = client.post(
        "/v1/authors/erase", json={"email": ADA}, headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 200 and response.get_json()["comments"] == 1
    with runtime.session() as session:
        assert session.get(Comment, ours).author_email == ""  # type: ignore[union-attr]
        assert session.get(Comment, kept).author_email == ADA  # type: ignore[union-attr]
