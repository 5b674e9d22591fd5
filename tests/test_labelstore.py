"""``python -m classifier import``: history files into the label store, de-duplicated, with clear errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from classifier import labelstore
from classifier.__main__ import main
from service.db import Label, create_schema, make_engine, make_session_factory
from service.labels import record_label
from tests.test_datasets import WXR, wp_comment, write


@pytest.fixture
def store_url(database_url: str) -> str:
    engine = make_engine(database_url)
    create_schema(engine)
    engine.dispose()
    return database_url


def rows(url: str) -> list[Label]:
    engine = make_engine(url)
    with make_session_factory(engine)() as session:
        out = list(session.scalars(select(Label).order_by(Label.id)))
    engine.dispose()
    return out


def wxr_file(tmp_path: Path) -> Path:
    comments = "\n".join(
        [
            wp_comment(1, "1", "Great article, thanks"),
            wp_comment(2, "spam", "Cheap watches online"),
            wp_comment(3, "0", "pending one"),
            wp_comment(4, "1", "linked here", ctype="pingback"),
        ]
    )
    return write(tmp_path / "export.xml", WXR.format(comments=comments))


def test_import_wxr_then_again_skips_duplicates(tmp_path, store_url, capsys):
    path = wxr_file(tmp_path)
    assert main(["import", "wxr", str(path), "--database-url", store_url]) == 0
    out = capsys.readouterr().out
    assert "imported 2 rows, skipped 2" in out
    assert "skipped 1: pending (not moderated yet)" in out and "pingback" in out
    labels = rows(store_url)
    assert [(r.source, r.decision, r.labels, r.external_id) for r in labels] == [
        ("import:wxr", "ham", {"spam": 0}, "1"),
        ("import:wxr", "spam", {"spam": 1}, "2"),
    ]
    assert labels[0].created_at.year == 2020 and labels[0].text_hash  # the comment's own date
    assert labels[0].author_name == "Reader 1"

    assert main(["import", "wxr", str(path), "--database-url", store_url]) == 0
    out = capsys.readouterr().out
    assert "imported 0 rows, skipped 4" in out and "skipped 2: external id already in the store" in out
    assert len(rows(store_url)) == 2


def test_duplicates_within_the_file_and_against_moderator_labels(tmp_path, store_url, capsys):
    engine = make_engine(store_url)
    with make_session_factory(engine)() as session:
        record_label(session, source="moderator", decision="spam", text="Buy   cheap PILLS now")
        session.commit()
    engine.dispose()
    path = write(
        tmp_path / "history.csv",
        "id,text,spam,toxicity,created_at\n"
        "a1,Nice piece on the harbour,0,,2024-01-01T10:00:00Z\n"
        "a2,nice piece on the   harbour,0,,2024-01-02T10:00:00Z\n"
        "a1,A different text with a reused id,1,,2024-01-03T10:00:00Z\n"
        "a4,buy cheap pills NOW,1,,2024-01-04T10:00:00Z\n"
        "a5,You are an idiot,0,1,2024-01-05T10:00:00Z\n"
        "a6,,1,,2024-01-06T10:00:00Z\n",
    )
    assert main(["import", "csv", str(path), "--database-url", store_url]) == 0
    out = capsys.readouterr().out
    assert "imported 2 rows, skipped 4" in out
    for reason in ("duplicate text in file", "duplicate external id in file", "text already in the store"):
        assert f"skipped 1: {reason}" in out
    imported = [r for r in rows(store_url) if r.source == "import:csv"]
    assert [(r.external_id, r.decision) for r in imported] == [("a1", "ham"), ("a5", "abusive")]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_errors_are_one_line_with_exit_2(tmp_path, store_url, capsys):
    bad = write(tmp_path / "bad.jsonl", '{"text": "a", "label": "spam"}\n{"text": "b", "label": \n')
    assert main(["import", "jsonl", str(bad), "--database-url", store_url]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and f"{bad}:2: invalid JSON" in err and "Traceback" not in err
    assert main(["import", "csv", str(tmp_path / "missing.csv"), "--database-url", store_url]) == 2
    assert "no such file" in capsys.readouterr().err
    empty = f"sqlite:///{tmp_path / 'empty.db'}"
    good = write(tmp_path / "ok.csv", "text,label\nhello,ham\n")
    assert main(["import", "csv", str(good), "--database-url", empty]) == 2
    assert "has no labels table" in capsys.readouterr().err
    assert rows(store_url) == []


def test_site_labels_newest_row_wins(store_url):
    engine = make_engine(store_url)
    start = datetime(2025, 1, 1, tzinfo=UTC)
    with make_session_factory(engine)() as session:
        for offset, (text, decision, labels) in enumerate(
            [
                ("first text", "spam", None),
                ("first text", "ham", None),  # changed mind: ham
                ("second text", "abusive", None),
                ("second text", "undo", {}),  # withdrawn
                ("third text", "approve", None),
            ]
        ):
            label = record_label(session, source="moderator", decision=decision, text=text, labels=labels)
            label.created_at = start + timedelta(minutes=offset)
        session.commit()
    engine.dispose()
    store = labelstore.connect(store_url)
    site = labelstore.load_site_labels(store, weight=3.0)
    store.dispose()
    assert [(s.example.comment.text, s.example.labels, s.decision) for s in site] == [
        ("first text", {"spam": 0.0}, "ham"),
        ("third text", {"spam": 0.0, "toxicity": 0.0}, "approve"),
    ]
    assert all(s.example.weight == 3.0 and s.created_at.tzinfo is not None for s in site)
