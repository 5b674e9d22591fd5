"""The review page in a real browser: Playwright driving Debian's Chromium against the app on loopback."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from werkzeug.serving import make_server

from service.db import APPROVED, HELD, PENDING, REJECTED, Comment, Label
from service.keys import SCOPES, create_api_key, server_secret
from tests.conftest import drain_queues
from tests.test_moderation_pages import PASSWORD, XSS_TEXT, add_comment, make_moderator

expect = pytest.importorskip("playwright.sync_api").expect

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"Chromium is not installed at {CHROMIUM}"),
]


@pytest.fixture(params=["sqlite"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """SQLite only here: the browser tests are about the page, and the queries run on both elsewhere."""
    yield f"sqlite:///{tmp_path / 'browser.db'}"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright  # noqa: I001 - imported only when the tests run

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking"],
        )
        yield browser
        browser.close()


@pytest.fixture
def live_server(app) -> Iterator[str]:  # noqa: ANN001
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=5)


class Watched:
    """A page, with every dialog and CSP violation it produced."""

    def __init__(self, page: Any):
        self.page = page
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        page.on("dialog", self._dialog)
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        page.add_init_script(
            "window.__violations = [];"
            "document.addEventListener('securitypolicyviolation',"
            " e => window.__violations.push(e.violatedDirective + ' ' + e.blockedURI));"
        )

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    def assert_nothing_ran(self) -> None:
        assert self.dialogs == []
        assert self.page.evaluate("window.__xss") is None
        assert self.page.evaluate("window.__violations") == []
        assert self.errors == []


@pytest.fixture
def page(browser, live_server, runtime) -> Iterator[Watched]:  # noqa: ANN001
    make_moderator(runtime)
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    watched = Watched(context.new_page())
    watched.page.set_default_timeout(15_000)
    yield watched
    context.close()


def log_in(watched: Watched, base: str, path: str = "/moderate/") -> None:
    page = watched.page
    page.goto(f"{base}/login?next={path}")
    page.fill("input[name=username]", "alice")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}{path}")


def wait_for_done(page: Any, count: int) -> None:
    # Locator waits, not wait_for_function: the page's CSP (rightly) forbids the eval that needs.
    page.locator("article.comment.done").nth(count - 1).wait_for()


def wait_until_none_decided(page: Any) -> None:
    page.locator("article.comment.decided").first.wait_for(state="detached")


def test_login_page_refuses_wrong_password(page, live_server):
    page.page.goto(f"{live_server}/moderate/")
    assert "/login" in page.page.url
    page.page.fill("input[name=username]", "alice")
    page.page.fill("input[name=password]", "not the password")
    page.page.click("button[type=submit]")
    assert "Wrong username or password" in page.page.text_content("[role=alert]")
    page.assert_nothing_ran()


def test_clear_a_queue_of_50_with_the_keyboard_alone(page, live_server, runtime, webhook_receiver):
    with runtime.session() as session:
        key = create_api_key(
            session,
            "cms",
            SCOPES,
            webhook_url=webhook_receiver.url,
            sealing_key=server_secret(runtime.settings),
        ).api_key
    ids = [
        add_comment(
            runtime, api_key_id=key.id, external_id=f"wp-{i}", author_email=f"author{i % 7}@example.com"
        )
        for i in range(50)
    ]
    log_in(page, live_server)
    browser_page = page.page
    assert browser_page.locator("article.comment").count() == 50
    ARTIFACTS.mkdir(exist_ok=True)
    browser_page.screenshot(path=str(ARTIFACTS / "queue.png"))

    # The shortcut list opens with ? and closes with Escape.
    browser_page.keyboard.press("?")
    assert browser_page.is_visible("#shortcuts")
    browser_page.keyboard.press("Escape")
    assert not browser_page.is_visible("#shortcuts")

    articles = browser_page.locator("article.comment")
    first_id = articles.nth(0).get_attribute("data-id")
    second_id = articles.nth(1).get_attribute("data-id")
    assert browser_page.evaluate("document.activeElement.dataset.id") == first_id
    browser_page.keyboard.press("j")
    assert browser_page.evaluate("document.activeElement.dataset.id") == second_id
    browser_page.keyboard.press("k")
    assert browser_page.evaluate("document.activeElement.dataset.id") == first_id

    keys = {"a": APPROVED, "s": REJECTED, "r": REJECTED}
    expected: dict[str, str] = {}
    for index in range(50):
        key_name = "asr"[index % 3]
        focused = browser_page.evaluate("document.activeElement.dataset.id")
        expected[focused] = keys[key_name]
        browser_page.keyboard.press(key_name)
        wait_for_done(browser_page, index + 1)
        if index < 49:
            # Focus moved on to the next comment by itself.
            assert (
                browser_page.evaluate("document.activeElement.dataset.id")
                == ids_in_page_order(browser_page)[index + 1]
            )

    assert browser_page.is_visible("#page-done")
    assert browser_page.text_content("h1 [data-count=held]").strip() == "0"
    with runtime.session() as session:
        statuses = dict(session.execute(select(Comment.id, Comment.status)).all())
        assert statuses == expected and set(statuses) == set(ids)
        labels = session.scalars(select(Label)).all()
        assert len(labels) == 50 and {label.comment_id for label in labels} == set(ids)
        assert {label.actor for label in labels} == {"moderator:alice"}
    drain_queues(runtime)
    delivered = {body["comment"]["id"]: body["comment"]["status"] for body in webhook_receiver.bodies()}
    assert delivered == expected
    page.assert_nothing_ran()


def ids_in_page_order(browser_page: Any) -> list[str]:
    return browser_page.eval_on_selector_all("article.comment", "items => items.map(item => item.dataset.id)")


def test_bulk_approve_and_undo(page, live_server, runtime):
    ids = [add_comment(runtime, reason="spam_hold") for _ in range(5)]
    log_in(page, live_server)
    browser_page = page.page
    order = ids_in_page_order(browser_page)
    # Select three with the keyboard (x, j), then approve them all with a.
    for _ in range(3):
        browser_page.keyboard.press("x")
        browser_page.keyboard.press("j")
    assert browser_page.text_content("#selected-count") == "3 selected"
    browser_page.keyboard.press("a")
    wait_for_done(browser_page, 3)
    with runtime.session() as session:
        for comment_id in order[:3]:
            assert session.get(Comment, comment_id).status == APPROVED
        for comment_id in order[3:]:
            assert session.get(Comment, comment_id).status == HELD

    # Undo from the toast puts all three back.
    browser_page.click("#toast [data-action=undo]")
    wait_until_none_decided(browser_page)
    with runtime.session() as session:
        for comment_id in ids:
            comment = session.get(Comment, comment_id)
            assert (comment.status, comment.reason) == (HELD, "spam_hold")
        assert session.scalar(select(func.count()).select_from(Label).where(Label.decision == "undo")) == 3

    # Bulk with the mouse: select all, then the toolbar's button.
    browser_page.check("#select-all")
    browser_page.click("#bulk button[value=spam]")
    wait_for_done(browser_page, 5)
    # And undo with the keyboard.
    browser_page.keyboard.press("u")
    wait_until_none_decided(browser_page)
    with runtime.session() as session:
        assert {session.get(Comment, comment_id).status for comment_id in ids} == {HELD}
    page.assert_nothing_ran()


def test_hostile_comments_are_inert(page, live_server, runtime, api_key):
    # Posted through the real API, as a CMS would (they wait for the model, so they show under All)...
    payloads = [
        XSS_TEXT,
        '<svg onload="window.__xss=2"></svg><iframe src="javascript:window.__xss=3"></iframe>',
        '\u202eevil\u202c <b>bold?</b> "><script>window.__xss=4</script>',
    ]
    for index, text in enumerate(payloads):
        response = httpx.post(
            f"{live_server}/v1/comments",
            json={
                "name": f"<img src=x onerror=window.__xss=5>{index}",
                "email": f"x{index}@example.com",
                "text": text,
            },
            headers=api_key.headers,
        )
        assert response.status_code == 202, response.text
    # ...and a held row with what the API refuses: a javascript: author URL, reason spans over the payload.
    held = add_comment(
        runtime,
        text=XSS_TEXT,
        author_name="\u202eevil name",
        author_url="javascript:window.__xss=6",
        permalink="javascript:window.__xss=7",
        explanations=[{"attribute": "spam", "feature": "script", "weight": 2.0, "spans": [[0, 8], [20, 40]]}],
    )
    log_in(page, live_server, "/moderate/queue/all")
    browser_page = page.page
    assert browser_page.locator("article.comment").count() == 4
    texts = browser_page.locator("article.comment .text").all_inner_texts()
    assert any(text.startswith("<script>window.__xss = 1; alert(1)</script>") for text in texts)
    assert any("<svg onload=" in text for text in texts)
    assert (
        browser_page.locator(
            "article.comment .text script, article.comment .text img, iframe, svg[onload]"
        ).count()
        == 0
    )
    assert (
        browser_page.eval_on_selector(
            f"#c-{held} .text bdi", "element => getComputedStyle(element).unicodeBidi"
        )
        == "isolate"
    )
    assert browser_page.locator(f"#c-{held} a[href^=javascript]").count() == 0

    # Revealing the contact details shows the javascript: URL as text, not as a link.
    browser_page.click(f"#c-{held} [data-action=reveal]")
    expect(browser_page.locator(f"#c-{held} [data-field=url]")).to_contain_text("javascript:window.__xss=6")
    assert browser_page.locator(f"#c-{held} .contact a").count() == 0
    assert browser_page.text_content(f"#c-{held} [data-field=ip]") == "203.0.113.77"

    # Clicking around (the text, the highlighted terms) runs nothing either.
    browser_page.click(f"#c-{held} .text")
    browser_page.goto(f"{live_server}/moderate/")
    assert browser_page.locator("article.comment").count() == 1
    with runtime.session() as session:
        assert session.scalar(select(func.count()).select_from(Comment).where(Comment.status == PENDING)) == 3
    page.assert_nothing_ran()


def test_overview_chart_renders(page, live_server, runtime):
    add_comment(runtime)
    add_comment(runtime, status=APPROVED, reason="clean")
    log_in(page, live_server, "/moderate/overview")
    assert page.page.locator("svg rect").count() >= 1
    ARTIFACTS.mkdir(exist_ok=True)
    page.page.screenshot(path=str(ARTIFACTS / "overview.png"))
    page.assert_nothing_ran()
