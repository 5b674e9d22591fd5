"""The Site page without a browser: roles, CSRF, escaping, errors shown in the page."""

from __future__ import annotations

from service.db import SiteRule
from service.moderators import create_moderator
from service.sites import add_entries, ensure_default_site
from tests.test_moderation_pages import PASSWORD, XSS_TEXT, csrf_from, login


def make_user(runtime, username: str, role: str) -> None:
    with runtime.session() as session:
        create_moderator(session, username, PASSWORD, role=role)


def test_an_admin_adds_and_removes_entries_with_the_csrf_token(client, runtime):
    make_user(runtime, "ada", "admin")
    login(client, "ada")
    page = client.get("/moderate/sites/default")
    assert page.status_code == 200
    token = csrf_from(page.get_data(as_text=True))
    missing = client.post("/moderate/sites/default/rules", data={"list": "banned_word", "entries": "idiot"})
    assert missing.status_code == 403
    added = client.post(
        "/moderate/sites/default/rules",
        data={"csrf_token": token, "list": "banned_word", "entries": "idiot\nmoron*"},
    )
    assert added.status_code == 302
    html = client.get("/moderate/sites/default").get_data(as_text=True)
    assert "moron*" in html and "moderator:ada" in html
    bad = client.post(
        "/moderate/sites/default/rules",
        data={"csrf_token": token, "list": "banned_word", "entries": "ok1\n**"},
    )
    assert bad.status_code == 422 and "entry 2" in bad.get_data(as_text=True)
    removed = client.post(
        "/moderate/sites/default/rules/remove",
        data={"csrf_token": token, "list": "banned_word", "entry": "idiot"},
    )
    assert removed.status_code == 302
    with runtime.session() as session:
        assert [row.value for row in session.query(SiteRule)] == ["moron*"]


def test_a_plain_moderator_sees_no_forms_and_cannot_post(client, runtime):
    make_user(runtime, "bob", "moderator")
    login(client, "bob")
    html = client.get("/moderate/sites/default").get_data(as_text=True)
    assert 'id="read-only"' in html and 'id="add-rules"' not in html
    token = csrf_from(html)
    for url, data in (
        ("/moderate/sites/default/rules", {"list": "banned_word", "entries": "x1"}),
        ("/moderate/sites/default/settings", {"max_links": "9"}),
    ):
        assert client.post(url, data={"csrf_token": token, **data}).status_code == 403
    with runtime.session() as session:
        assert session.query(SiteRule).count() == 0


def test_entries_and_tried_text_are_escaped(client, runtime):
    make_user(runtime, "ada", "admin")
    with runtime.session() as session:
        add_entries(
            session, ensure_default_site(session), "suspect_word", ["<b>bold"], actor='"><script>x</script>'
        )
    login(client, "ada")
    token = csrf_from(client.get("/moderate/sites/default").get_data(as_text=True))
    html = client.post("/moderate/sites/default/try", data={"csrf_token": token, "text": XSS_TEXT}).get_data(
        as_text=True
    )
    assert "<script>window.__xss" not in html and "<script>x</script>" not in html
    assert "&lt;script&gt;window.__xss" in html
    assert "Verdict:" in html
