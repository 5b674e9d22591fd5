"""The JSON API for site rules: admins edit, moderators read and try, CSV in and out, the audit log,
and bad rule files refused whole with the line named."""

from __future__ import annotations

import pytest

from service.db import Site, SiteRule
from service.moderators import create_moderator, issue_token
from service.sites import create_site, find_site
from tests.test_sites import ENGLISH, site_key, verdict


def token_headers(runtime, username: str, role: str, site: str | None = "gazette") -> dict[str, str]:
    with runtime.session() as session:
        site_row = (find_site(session, site) or create_site(session, site)) if site else None
        create_moderator(
            session, username, "a long password", site_id=site_row.id if site_row else None, role=role
        )
        return {"Authorization": f"Bearer {issue_token(session, username)}"}


@pytest.fixture
def admin(runtime) -> dict[str, str]:
    return token_headers(runtime, "ada", "admin")


@pytest.fixture
def moderator(runtime) -> dict[str, str]:
    return token_headers(runtime, "bob", "moderator")


def stored_rules(runtime) -> list[tuple[str, str]]:
    with runtime.session() as session:
        return sorted((row.kind, row.value) for row in session.query(SiteRule))


def test_admin_adds_a_banned_word_and_the_next_comment_is_rejected(client, runtime, admin):
    key = site_key(runtime)
    response = client.post(
        "/v1/sites/gazette/rules", json={"list": "banned_word", "entries": ["Budget"]}, headers=admin
    )
    assert response.status_code == 201 and response.get_json()["added"] == ["budget"]
    assert verdict(client, runtime, key)["reason"] == "banned_word"
    body = client.get("/v1/sites/gazette", headers=admin).get_json()
    assert body["lists"]["banned_word"] == ["budget"]
    assert body["thresholds"]["spam_reject"] == runtime.settings.thresholds.spam_reject
    deleted = client.delete(
        "/v1/sites/gazette/rules", json={"list": "banned_word", "entry": "budget"}, headers=admin
    )
    assert deleted.status_code == 200
    assert verdict(client, runtime, key)["status"] == "approved"


def test_a_plain_moderator_reads_and_tries_but_cannot_edit(client, runtime, moderator):
    site_key(runtime)
    assert client.get("/v1/sites/gazette", headers=moderator).status_code == 200
    for method, url, body in (
        ("post", "/v1/sites/gazette/rules", {"list": "banned_word", "entries": ["x1"]}),
        ("delete", "/v1/sites/gazette/rules", {"list": "banned_word", "entry": "x1"}),
        ("patch", "/v1/sites/gazette/settings", {"max_links": 5}),
    ):
        response = getattr(client, method)(url, json=body, headers=moderator)
        assert response.status_code == 403, (method, url)
        assert response.get_json()["error"]["code"] == "forbidden"
    response = client.post(
        "/v1/sites/gazette/rules.csv", data=b"banned_word,x1\n", content_type="text/csv", headers=moderator
    )
    assert response.status_code == 403
    assert stored_rules(runtime) == []
    tried = client.post("/v1/sites/gazette/try", json={"text": ENGLISH}, headers=moderator).get_json()
    assert tried["status"] == "approved" and tried["language"] == "en"


def test_a_site_moderator_cannot_see_another_site(client, runtime, admin):
    with runtime.session() as session:
        create_site(session, "courier")
    assert client.get("/v1/sites/courier", headers=admin).status_code == 404
    assert client.get("/v1/sites", headers=admin).get_json()["sites"] == ["gazette"]
    assert client.get("/v1/sites/gazette").status_code == 401


def test_try_it_shows_the_rule_and_match_without_storing_anything(client, runtime, admin):
    client.post("/v1/sites/gazette/rules", json={"list": "suspect_word", "entries": ["vot*"]}, headers=admin)
    tried = client.post(
        "/v1/sites/gazette/try", json={"text": ENGLISH, "email": "a@b.example"}, headers=admin
    )
    body = tried.get_json()
    assert (body["status"], body["reason"]) == ("held", "suspect_word")
    assert body["rules"][0]["match"] == "vote"
    assert client.post("/v1/sites/gazette/try", json={"text": ""}, headers=admin).get_json()["error"][
        "fields"
    ] == {"text": "1 to 10000 characters"}


def test_settings_changes_are_checked_and_audited_with_before_and_after(client, runtime, admin):
    response = client.patch(
        "/v1/sites/gazette/settings", json={"max_links": 5, "spam_hold": 0.6}, headers=admin
    )
    assert response.status_code == 200 and response.get_json()["thresholds"]["max_links"] == 5
    bad = client.patch("/v1/sites/gazette/settings", json={"spam_hold": 2, "colour": "red"}, headers=admin)
    assert bad.status_code == 422
    assert set(bad.get_json()["error"]["fields"]) == {"spam_hold", "colour"}
    client.post(
        "/v1/sites/gazette/rules",
        json={"list": "email_ban_domain", "entries": ["spam.example"]},
        headers=admin,
    )
    changes = client.get("/v1/sites/gazette/audit", headers=admin).get_json()["changes"]
    assert [change["action"] for change in changes] == ["add", "settings"]
    assert changes[0]["actor"] == "moderator:ada"
    assert changes[0]["after"] == [{"list": "email_ban_domain", "entry": "spam.example"}]
    assert changes[1]["before"] == {} and changes[1]["after"] == {"max_links": 5, "spam_hold": 0.6}


def test_csv_import_and_export_round_trip(client, runtime, admin):
    csv = "list,entry\nbanned_word,idiot\nsuspect_word,buy now\nlink_trusted_domain,gazette.example\n"
    response = client.post(
        "/v1/sites/gazette/rules.csv", data=csv.encode(), content_type="text/csv", headers=admin
    )
    assert response.status_code == 201 and response.get_json() == {"added": 3}
    exported = client.get("/v1/sites/gazette/rules.csv", headers=admin)
    assert exported.mimetype == "text/csv"
    assert set(exported.get_data(as_text=True).splitlines()) == set(csv.splitlines())


@pytest.mark.parametrize(
    ("body", "line", "problem"),
    [
        (b"banned_word,ok\nbanned_word,(a|b)\n", "line 2", "regular expressions"),
        (b"banned_word,ok\nbanned_word,**\n", "line 2", "wildcards only"),
        (b"banned_word,ok\nbanned_word,\xff\xfe\n", "line 2", "not UTF-8"),
        (b"list,entry\nbanned_word,idiot\nbanned_word,1D10T\n", "line 3", "duplicate of line 2"),
        (b"banned_word,ok\nbanned_word\n", "line 2", "two columns"),
        (b"banned_word,ok\nno_such_list,x\n", "line 2", "unknown list"),
    ],
)
def test_bad_rule_files_name_the_line_and_save_nothing(client, runtime, admin, body, line, problem):
    response = client.post("/v1/sites/gazette/rules.csv", data=body, content_type="text/csv", headers=admin)
    assert response.status_code == 422
    fields = response.get_json()["error"]["fields"]
    assert problem in fields[line], fields
    assert stored_rules(runtime) == []
    with runtime.session() as session:
        assert session.query(Site).filter_by(name="gazette").one().rules_version == 0


def test_an_entry_already_stored_is_a_duplicate_too(client, runtime, admin):
    client.post("/v1/sites/gazette/rules", json={"list": "banned_word", "entries": ["idiot"]}, headers=admin)
    response = client.post(
        "/v1/sites/gazette/rules", json={"list": "banned_word", "entries": ["fine", "idiot"]}, headers=admin
    )
    assert response.status_code == 422
    assert "already on the banned_word list" in response.get_json()["error"]["fields"]["entries[1]"]
    assert stored_rules(runtime) == [("banned_word", "idiot")]


def test_a_10_mb_rule_file_is_refused_before_it_is_read(client, runtime, admin):
    body = b"banned_word,spam\n" * (10 * 1024 * 1024 // 17 + 1)
    response = client.post("/v1/sites/gazette/rules.csv", data=body, content_type="text/csv", headers=admin)
    assert response.status_code == 413
    assert response.get_json()["error"]["fields"] == {"file": "too large"}
    assert stored_rules(runtime) == []


def test_a_rule_file_larger_than_the_api_body_limit_but_within_the_file_limit_is_accepted(
    client, runtime, admin
):
    # Distinct after normalisation (digits would be read as leetspeak, and "111" squeezed to "ii").
    words = ("".join("bcdfghjklm"[int(digit)] + "a" for digit in f"{index:04d}") for index in range(5000))
    body = "".join(f"banned_word,{word}\n" for word in words).encode()
    assert len(body) > runtime.settings.max_body_bytes
    response = client.post("/v1/sites/gazette/rules.csv", data=body, content_type="text/csv", headers=admin)
    assert response.status_code == 201 and response.get_json() == {"added": 5000}
