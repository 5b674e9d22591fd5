"""Our WordPress plugin, and WordPress's bundled Akismet plugin, on a real WordPress site.

Debian's WordPress 6.1 runs under PHP's built-in server on a fresh MariaDB database; comments are
posted through ``wp-comments-post.php`` as a reader's browser posts them, and moderators click the
Comments screen's links. The service is the real one (gunicorn, worker, Redis), scoring with the tiny
test model. See ``tests/wordpress_site.py``.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from service.db import Comment, Label, make_engine, make_session_factory
from service.webhooks import signature_header
from tests.wordpress_site import (
    PLUGIN,
    ModerationService,
    WordPressSite,
    running_service,
    wait_until,
    wordpress_site,
)

pytestmark = [pytest.mark.wordpress, pytest.mark.slow]

ORDINARY = (
    "Anna Smith",
    "anna@example.org",
    "",
    "Thanks for covering the council meeting, I did not know the library would close on Sundays.",
)
LINK_SPAM = (
    "Cheap Watches Online",
    "deals@cheap-replica-store.com",
    "http://cheap-replica-store.com",
    "Cheap replica watches and handbags at http://cheap-replica-store.com best prices, "
    "visit www.cash-earn-online.info today",
)
INSULT = ("troll", "troll@example.net", "", "You are a complete idiot and a moron, shut up you stupid fool")


@pytest.fixture(scope="module")
def service(tmp_path_factory, redis_database, tiny_registry) -> Iterator[ModerationService]:  # noqa: ANN001
    with running_service(tmp_path_factory.mktemp("service"), redis_database, tiny_registry.root) as service:
        yield service


@pytest.fixture(scope="module")
def site_key(service: ModerationService, site_placeholder: WordPressSite) -> dict[str, str]:
    return service.create_key(
        "--name",
        "riverside-news",
        "--scopes",
        "comments,moderate",
        "--webhook-url",
        site_placeholder.webhook_url,
    )


@pytest.fixture(scope="module")
def site_placeholder(tmp_path_factory) -> Iterator[WordPressSite]:  # noqa: ANN001
    with wordpress_site(tmp_path_factory.mktemp("wordpress")) as site:
        yield site


@pytest.fixture(scope="module")
def site(site_placeholder: WordPressSite, service: ModerationService, site_key) -> WordPressSite:  # noqa: ANN001
    """The news site with our plugin active and configured as a site owner would."""
    site = site_placeholder
    site.activate(PLUGIN)
    site.set_option(
        "moderation_service_settings",
        {
            "service_url": service.url,
            "api_key": site_key["key"],
            "webhook_secret": site_key["webhook secret"],
            "wait_seconds": 2,
            "comment_types": ["comment"],
        },
    )
    return site


def post(site: WordPressSite, comment: tuple[str, str, str, str], suffix: str = "") -> int:
    name, email, url, text = comment
    return site.post_comment(text + suffix, name, email, url)


def stored(service: ModerationService, external_id: str) -> Comment | None:
    engine = make_engine(service.database_url)
    try:
        with make_session_factory(engine)() as session:
            return session.scalars(select(Comment).where(Comment.external_id == external_id)).first()
    finally:
        engine.dispose()


def labels(service: ModerationService, comment_id: str) -> list[Label]:
    engine = make_engine(service.database_url)
    try:
        with make_session_factory(engine)() as session:
            return list(
                session.scalars(select(Label).where(Label.comment_id == comment_id).order_by(Label.id))
            )
    finally:
        engine.dispose()


# --- submit time ----------------------------------------------------------------------------------


def test_an_ordinary_comment_is_published(site, service):
    comment_id = post(site, ORDINARY)
    assert site.approved(comment_id) == "1"
    external_id = site.meta(comment_id, "external_id")
    assert external_id and re.fullmatch(r"[0-9a-f-]{36}", external_id)
    ours = stored(service, external_id)
    assert ours is not None and ours.status == "approved"
    # Everything WordPress knows went along.
    assert ours.author_name == "Anna Smith" and ours.author_email == "anna@example.org"
    assert ours.post_id == str(site.post_id) and ours.permalink.startswith(site.url)
    assert ours.author_ip == "127.0.0.1" and ours.user_agent.startswith("Mozilla/5.0")
    assert ours.referrer == f"{site.url}/?p={site.post_id}" and ours.language == "en-US"
    assert ours.created_at is not None


def test_link_spam_goes_to_spam(site, service):
    comment_id = post(site, LINK_SPAM)
    assert site.approved(comment_id) == "spam"
    assert site.meta(comment_id, "status") == "rejected"
    assert site.meta(comment_id, "reason") == "spam_reject"


def test_an_insult_waits_for_a_moderator(site, service):
    comment_id = post(site, INSULT)
    assert site.approved(comment_id) == "0"
    assert site.meta(comment_id, "status") == "held"
    assert site.meta(comment_id, "reason").startswith("toxicity_hold")


def test_a_reply_carries_its_parent(site, service):
    parent = post(site, ORDINARY, " (first)")
    reply = site.post_comment(
        "I agree, Sunday opening mattered to our family.", "Ben", "ben@example.org", parent=parent
    )
    ours = stored(service, site.meta(reply, "external_id"))
    assert ours is not None and ours.parent_id == str(parent)


def test_the_comments_screen_shows_status_reason_and_scores(site, service):
    comment_id = post(site, INSULT, " again")
    with site.admin() as admin:
        page = admin.get("/wp-admin/edit-comments.php", params={"comment_status": "all"}).text
    row = page[page.index(f"id='comment-{comment_id}'") :]
    row = row[: row.index("</tr>")]
    assert "moderation-service-status" in row and ">held<" in row
    assert "toxicity_hold" in row and "insult" in row


# --- the service unavailable ----------------------------------------------------------------------


def test_no_verdict_in_time_holds_then_the_webhook_applies_it(site, service):
    service.stop("worker")
    try:
        comment_id = post(site, ORDINARY, " Waiting for the worker.")
        assert site.approved(comment_id) == "0"  # held, never published unscored
        assert site.meta(comment_id, "status") == "pending"
    finally:
        service.start_worker()
    assert wait_until(lambda: site.approved(comment_id) == "1", timeout=60)
    assert site.meta(comment_id, "status") == "approved"


def test_service_down_holds_then_wp_cron_sends_it_and_the_webhook_applies_it(site, service):
    service.stop("api")
    try:
        comment_id = post(site, LINK_SPAM, " Posted while the service was down.")
        assert site.approved(comment_id) == "0"
        assert site.meta(comment_id, "state") == "unsent"
        assert site.run_sync()["sent"] == 0  # still down: nothing sent, nothing lost
    finally:
        service.start_api()
    assert site.run_sync()["sent"] == 1
    assert wait_until(lambda: site.approved(comment_id) == "spam", timeout=60)
    assert site.meta(comment_id, "state") == "sent"
    ours = stored(service, site.meta(comment_id, "external_id"))
    assert ours is not None and ours.status == "rejected"


def test_a_decision_in_our_moderator_pages_shows_in_wordpress(site, service):
    comment_id = post(site, INSULT, " Please review me.")
    assert site.approved(comment_id) == "0"
    token = _moderator_token(service)
    service_id = site.meta(comment_id, "id")
    answer = httpx.post(
        f"{service.url}/v1/comments/{service_id}/decision",
        json={"decision": "approve"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    assert wait_until(lambda: site.approved(comment_id) == "1", timeout=60)
    assert site.meta(comment_id, "decided_by") == "moderator"


_moderator_tokens: dict[str, str] = {}


def _moderator_token(service: ModerationService) -> str:
    if service.url not in _moderator_tokens:
        service.cli("moderators", "add", "maria", "--password-stdin", stdin="a long moderator password\n")
        _moderator_tokens[service.url] = service.cli("moderators", "token", "maria").split()[-1]
    return _moderator_tokens[service.url]


# --- the webhook ----------------------------------------------------------------------------------


def _delivery(site: WordPressSite, comment_id: int, status: str, decided_at: str) -> dict:
    return {
        "event": "comment.verdict",
        "comment": {
            "id": site.meta(comment_id, "id"),
            "external_id": site.meta(comment_id, "external_id"),
            "status": status,
            "reason": "moderator_spam",
            "scores": {"spam": 0.9},
            "decided_at": decided_at,
            "decided_by": "moderator",
        },
    }


def _send(site: WordPressSite, body: bytes, header: str) -> httpx.Response:
    return httpx.post(
        site.webhook_url,
        content=body,
        headers={"Content-Type": "application/json", "X-Moderation-Signature": header},
        timeout=10,
    )


def test_a_bad_signature_is_refused_and_changes_nothing(site, site_key):
    comment_id = post(site, ORDINARY, " Leave me alone.")
    body = json.dumps(_delivery(site, comment_id, "rejected", "2099-01-01T00:00:00+00:00")).encode()
    wrong = signature_header("whsec_not-the-secret", body)
    assert _send(site, body, wrong).status_code == 401
    assert _send(site, body, "t=1,v1=abc").status_code == 401
    old = signature_header(site_key["webhook secret"], body, timestamp=int(time.time()) - 3600)
    assert _send(site, body, old).status_code == 401
    assert site.approved(comment_id) == "1"


def test_a_replayed_delivery_is_refused_and_a_repeat_verdict_is_idempotent(site, site_key):
    comment_id = post(site, ORDINARY, " Replay target.")
    body = json.dumps(_delivery(site, comment_id, "rejected", "2099-01-01T00:00:00+00:00")).encode()
    now = int(time.time())
    header = signature_header(site_key["webhook secret"], body, timestamp=now - 10)
    first = _send(site, body, header)
    assert first.status_code == 200 and first.json()["outcome"] == "applied"
    assert site.approved(comment_id) == "spam"
    site.wp(f"wp_set_comment_status( {comment_id}, 'approve' );")
    assert _send(site, body, header).status_code == 409  # the same delivery again: refused
    assert site.approved(comment_id) == "1"
    # The same verdict, freshly signed (a retry), applies once more only if it is newer.
    again = _send(site, body, signature_header(site_key["webhook secret"], body, timestamp=now - 5))
    assert again.status_code == 200 and again.json()["outcome"] == "applied"
    older = json.dumps(_delivery(site, comment_id, "approved", "2000-01-01T00:00:00+00:00")).encode()
    stale = _send(site, older, signature_header(site_key["webhook secret"], older))
    assert stale.json()["outcome"] == "stale" and site.approved(comment_id) == "spam"


def test_a_webhook_for_an_unknown_comment_is_404_so_the_service_retries(site, site_key):
    body = json.dumps({"event": "comment.verdict", "comment": {"external_id": "nope", "status": "approved"}})
    answer = _send(site, body.encode(), signature_header(site_key["webhook secret"], body.encode()))
    assert answer.status_code == 404


# --- WordPress moderators' decisions become labels --------------------------------------------------


def test_a_wordpress_moderators_spam_and_approve_become_labels(site, service):
    comment_id = post(site, INSULT, " A moderator will change their mind.")
    assert site.approved(comment_id) == "0"
    service_id = site.meta(comment_id, "id")
    with site.admin() as admin:
        site.moderate(admin, comment_id, "spam")
        assert site.approved(comment_id) == "spam"
        assert wait_until(lambda: [label.decision for label in labels(service, service_id)] == ["spam"])
        site.moderate(admin, comment_id, "unspam")  # back to the moderation queue: "not spam"
        assert site.approved(comment_id) == "0"
        site.moderate(admin, comment_id, "approve")
    assert site.approved(comment_id) == "1"
    decisions = [label.decision for label in labels(service, service_id)]
    assert decisions == ["spam", "ham", "approve"]
    assert labels(service, service_id)[0].labels == {"spam": 1.0}
    ours = stored(service, site.meta(comment_id, "external_id"))
    assert ours is not None and ours.status == "approved" and ours.decided_by.startswith("api-key:")
    # The service's webhooks for these decisions come back, and are not applied over WordPress's own.
    time.sleep(1)
    assert site.approved(comment_id) == "1"


def test_unapprove_and_trash_are_sent_and_webhook_changes_are_not_echoed(site, service):
    comment_id = post(site, ORDINARY, " Trash me later.")
    service_id = site.meta(comment_id, "id")
    assert labels(service, service_id) == []  # the model's verdict applied at submit is no decision
    with site.admin() as admin:
        site.moderate(admin, comment_id, "unapprove")
        site.moderate(admin, comment_id, "trash")
    assert [label.decision for label in labels(service, service_id)] == ["hold", "trash"]
    ours = stored(service, site.meta(comment_id, "external_id"))
    assert ours is not None and ours.status == "rejected" and ours.reason == "moderator_trash"


def test_a_decision_taken_while_the_service_is_down_is_sent_later(site, service):
    comment_id = post(site, ORDINARY, " Decided during an outage.")
    service_id = site.meta(comment_id, "id")
    service.stop("api")
    try:
        with site.admin() as admin:
            site.moderate(admin, comment_id, "spam")
        assert site.approved(comment_id) == "spam"
        assert site.meta(comment_id, "pending_decision") == "spam"
    finally:
        service.start_api()
    assert site.run_sync()["decisions"] == 1
    assert [label.decision for label in labels(service, service_id)] == ["spam"]
    assert site.meta(comment_id, "pending_decision") is None


def test_settings_page_saves_through_the_settings_api(site, service, site_key):
    with site.admin() as admin:
        page = admin.get("/wp-admin/options-general.php", params={"page": "moderation-service"}).text
        assert "Service URL" in page and site.webhook_url in page
        nonce = re.search(r'name="_wpnonce" value="([^"]+)"', page).group(1)
        form = {
            "option_page": "moderation-service",
            "action": "update",
            "_wpnonce": nonce,
            "_wp_http_referer": "/wp-admin/options-general.php?page=moderation-service",
            "moderation_service_settings[service_url]": service.url + "/",
            "moderation_service_settings[api_key]": site_key["key"],
            "moderation_service_settings[webhook_secret]": site_key["webhook secret"],
            "moderation_service_settings[wait_seconds]": "99",
            "moderation_service_settings[comment_types][]": "comment",
        }
        answer = admin.post("/wp-admin/options.php", data=form)
        assert "between 0 and 10 seconds" in answer.text
    saved = json.loads(site.wp("echo wp_json_encode( Moderation_Service_Settings::get() );").splitlines()[-1])
    assert saved["service_url"] == service.url and saved["wait_seconds"] == 2
    assert saved["comment_types"] == ["comment"]


# --- WordPress's bundled Akismet plugin through the README's redirect ----------------------------------


@pytest.fixture(scope="module")
def akismet_site(tmp_path_factory, service: ModerationService) -> Iterator[WordPressSite]:  # noqa: ANN001
    with wordpress_site(tmp_path_factory.mktemp("akismet-site"), table_prefix="news_") as site:
        mu_plugin = Path(site.root, "wp-content/mu-plugins/akismet-endpoint.php")
        from tests.wordpress_site import _AKISMET_REDIRECT

        mu_plugin.write_text(_AKISMET_REDIRECT.replace("%s", service.url))
        site.activate("akismet/akismet.php")
        site.set_option("comment_previously_approved", "0")
        yield site


def test_akismet_plugin_with_a_12_character_key_from_keys_create(akismet_site, service):
    site = akismet_site
    # The plugin's key form keeps only hexadecimal digits (and checks the length is 12).
    secret = "4e9a0c1b7d3f"
    key = service.create_key("--name", "akismet", "--scopes", "analyze,submit", "--secret", secret)
    assert key["key"] == secret
    with site.admin() as admin:
        page = admin.get("/wp-admin/options-general.php", params={"page": "akismet-key-config"}).text
        nonce = re.search(r'id="_wpnonce" name="_wpnonce" value="([^"]+)"', page).group(1)
        answer = admin.post(
            "/wp-admin/options-general.php?page=akismet-key-config",
            data={"action": "enter-key", "_wpnonce": nonce, "key": secret},
        )
        text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", answer.text))
        assert "Akismet is now protecting your site from spam" in text
        assert "Status Active" in text  # from get-subscription
    assert site.wp("echo get_option( 'wordpress_api_key' );").strip().endswith(secret)
    ordinary = site.post_comment(ORDINARY[3], *ORDINARY[:3])
    spam = site.post_comment(LINK_SPAM[3], *LINK_SPAM[:3])
    assert site.approved(ordinary) == "1"
    assert site.approved(spam) == "spam"
    with site.admin() as admin:
        site.moderate(admin, ordinary, "spam")  # the plugin reports it: submit-spam
    assert wait_until(lambda: _akismet_labels(service) == ["spam"])


def _akismet_labels(service: ModerationService) -> list[str]:
    engine = make_engine(service.database_url)
    try:
        with make_session_factory(engine)() as session:
            return list(session.scalars(select(Label.decision).where(Label.source == "akismet")))
    finally:
        engine.dispose()
