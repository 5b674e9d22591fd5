"""The Site page in a real browser: an admin bans a word and trusts a domain, comments follow the
new rules (the match highlighted in the queue), a plain moderator cannot edit, French is held."""

from __future__ import annotations

from typing import Any

import pytest

from service.db import APPROVED, HELD, REJECTED, Comment
from service.moderators import create_moderator
from tests import test_moderation_browser as browser_tests
from tests.conftest import drain_queues
from tests.test_moderation_pages import PASSWORD

expect = pytest.importorskip("playwright.sync_api").expect
pytestmark = browser_tests.pytestmark
Watched = browser_tests.Watched
# The browser tests' fixtures: Chromium, the app on loopback, a logged-out page, SQLite only.
browser = browser_tests.browser
live_server = browser_tests.live_server
page = browser_tests.page
database_url = browser_tests.database_url


def log_in_as(watched: Watched, base: str, username: str, path: str = "/moderate/site") -> None:
    page = watched.page
    page.goto(f"{base}/login?next={path}")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/moderate/sites/default")


def post_comment(client: Any, runtime: Any, api_key: Any, text: str) -> Comment:
    body = {"name": "Ada", "email": "ada@example.com", "text": text}
    response = client.post("/v1/comments", json=body, headers=api_key.headers)
    assert response.status_code == 202
    drain_queues(runtime)
    with runtime.session() as session:
        return session.get(Comment, response.get_json()["id"])


def test_admin_bans_a_word_and_trusts_a_domain_in_the_page(page, live_server, runtime, client, api_key):
    with runtime.session() as session:
        create_moderator(session, "ada", PASSWORD, role="admin")
    log_in_as(page, live_server, "ada")
    p = page.page
    p.select_option("#add-rules select[name=list]", "banned_word")
    p.fill("#add-rules textarea[name=entries]", "scoundrel")
    p.click("#add-rules button[type=submit]")
    expect(p.locator("ul.rules[data-list=banned_word] li")).to_contain_text("scoundrel")
    p.select_option("#add-rules select[name=list]", "link_trusted_domain")
    p.fill("#add-rules textarea[name=entries]", "gazette.example")
    p.click("#add-rules button[type=submit]")
    expect(p.locator("ul.rules[data-list=link_trusted_domain] li")).to_contain_text("gazette.example")
    expect(p.locator("#audit tbody tr")).to_have_count(2)

    banned = post_comment(
        client, runtime, api_key, "The council member is a sc0undrel and should resign before the vote."
    )
    assert (banned.status, banned.reason) == (REJECTED, "banned_word")
    links = " ".join(f"https://gazette.example/story/{n}" for n in range(4))
    regular = post_comment(client, runtime, api_key, f"The council covered this well last year: {links}")
    assert regular.status == APPROVED
    french = post_comment(
        client, runtime, api_key, "Je pense que le conseil municipal doit publier le budget avant le vote."
    )
    assert (french.status, french.reason) == (HELD, "unsupported_language")

    p.goto(f"{live_server}/moderate/queue/rejected")
    mark = p.locator(f"#c-{banned.id} mark").first
    expect(mark).to_have_text("sc0undrel")
    assert "banned_word" in (mark.get_attribute("title") or "")

    # The try-it box gives the same answer as the pipeline.
    p.goto(f"{live_server}/moderate/sites/default")
    p.fill("form[action$='/try'] textarea[name=text]", "What a scoundrel.")
    p.click("form[action$='/try'] button[type=submit]")
    expect(p.locator("#tried")).to_contain_text("banned_word")
    page.assert_nothing_ran()


def test_a_plain_moderator_cannot_edit_rules(page, live_server, runtime):
    log_in_as(page, live_server, "alice")
    p = page.page
    expect(p.locator("#read-only")).to_be_visible()
    expect(p.locator("#add-rules")).to_have_count(0)
    expect(p.locator("#settings button[type=submit]")).to_have_count(0)
    # Posting anyway, with the page's own CSRF token, is refused.
    token = p.locator("meta[name=csrf-token]").get_attribute("content")
    response = p.request.post(
        f"{live_server}/moderate/sites/default/rules",
        form={"csrf_token": token, "list": "banned_word", "entries": "x1"},
    )
    assert response.status == 403
