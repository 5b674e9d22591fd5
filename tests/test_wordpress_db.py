"""``python -m classifier import wp-db``: a real WordPress site's ``wp_comments`` from MariaDB."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from service.db import Base, Label, make_engine, make_session_factory
from tests.wordpress_site import ROOT, WordPressSite, wordpress_site

pytestmark = pytest.mark.wordpress

# (text, comment_approved, comment_type)
HISTORY = [
    ("The bypass consultation closes on Friday, worth replying.", "1", "comment"),
    ("Thanks for the update on the ferry timetable.", "1", "comment"),
    ("Cheap replica watches http://cheap-replica-store.com", "spam", "comment"),
    ("Payday loans online http://paydayloans-now.xyz", "spam", "comment"),
    ("Still waiting for a moderator.", "0", "comment"),
    ("Removed by a moderator.", "trash", "comment"),
    ("Linked from another blog.", "1", "pingback"),
    ("thanks for the update on the   FERRY timetable.", "1", "comment"),  # the same text again
]


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Iterator[WordPressSite]:  # noqa: ANN001
    with wordpress_site(tmp_path_factory.mktemp("wp-db"), table_prefix="news_") as site:
        inserts = "".join(
            f"wp_insert_comment( array( 'comment_post_ID' => {site.post_id}, 'comment_content' => {text!r}, "
            f"'comment_approved' => {approved!r}, 'comment_type' => {kind!r}, 'comment_author' => 'Reader', "
            "'comment_author_email' => 'reader@example.org', 'comment_author_IP' => '203.0.113.7' ) );\n"
            for text, approved, kind in HISTORY
        )
        # Without WordPress's sample comment ("Hi, this is a comment."), the history is exactly HISTORY.
        site.wp("wp_delete_comment( 1, true );\n" + inserts)
        yield site


@pytest.fixture
def label_store(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'labels.db'}"
    engine = make_engine(url)
    Base.metadata.create_all(engine)
    engine.dispose()
    return url


def import_wp_db(site: WordPressSite, label_store: str, *options: str) -> subprocess.CompletedProcess:
    url = f"mysql://root@127.0.0.1:3306/{site.database}"
    return subprocess.run(
        [sys.executable, "-m", "classifier", "import", "wp-db", url, "--database-url", label_store, *options],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def stored_labels(label_store: str) -> list[Label]:
    engine = make_engine(label_store)
    try:
        with make_session_factory(engine)() as session:
            return list(session.scalars(select(Label).order_by(Label.id)))
    finally:
        engine.dispose()


def test_imports_approved_and_spam_and_reports_what_it_skipped(site, label_store):
    done = import_wp_db(site, label_store, "--table-prefix", "news_")
    assert done.returncode == 0, done.stderr
    assert "imported 4 rows, skipped 4" in done.stdout
    assert "skipped 1: duplicate text in file" in done.stdout
    assert "skipped 1: pending (not moderated yet)" in done.stdout
    assert "skipped 1: trash (moderator removed, reason unknown)" in done.stdout
    assert "skipped 1: pingback (not a reader comment)" in done.stdout
    labels = stored_labels(label_store)
    assert sorted((label.text, label.labels["spam"]) for label in labels) == sorted(
        (text, 1.0 if approved == "spam" else 0.0) for text, approved, _ in HISTORY[:4]
    )
    assert {label.source for label in labels} == {"import:wp-db"}
    assert all(label.author_email == "reader@example.org" for label in labels)


def test_a_second_import_adds_nothing(site, label_store):
    assert import_wp_db(site, label_store, "--table-prefix", "news_").returncode == 0
    again = import_wp_db(site, label_store, "--table-prefix", "news_")
    assert again.returncode == 0 and "imported 0 rows" in again.stdout
    assert len(stored_labels(label_store)) == 4


def test_a_wrong_table_prefix_says_so(site, label_store):
    done = import_wp_db(site, label_store)  # the default wp_ prefix: this site uses news_
    assert done.returncode == 2
    assert "wp_comments" in done.stderr and "--table-prefix" in done.stderr
    assert "Traceback" not in done.stderr


def test_an_unreachable_database_or_bad_url_is_a_clear_error(label_store):
    for url in ("mysql://root:secret@127.0.0.1:1/wordpress", "postgres://x/y", "mysql://127.0.0.1/"):
        done = subprocess.run(
            [sys.executable, "-m", "classifier", "import", "wp-db", url, "--database-url", label_store],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 2, done.stderr
        assert done.stderr.startswith("error: ") and "Traceback" not in done.stderr
        assert "secret" not in done.stderr
