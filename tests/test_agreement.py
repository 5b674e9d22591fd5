"""Agreement with moderators per ISO week, and rule reasons, on the Overview and the JSON API."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from classifier.labelstore import text_hash
from service.db import APPROVED, HELD, PENDING, REJECTED, Comment, StatusChange, new_id
from service.decisions import decide
from service.moderators import create_moderator, issue_token
from service.sites import create_site
from service.web.moderation.agreement import agreement_by_week, first_week_start, rule_reason_counts
from tests.conftest import drain_queues
from tests.test_moderation_pages import PASSWORD, add_comment, csrf_from, login

#: A Wednesday; its ISO week is 2026-W49 (Monday 30 November).
NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
THIS_WEEK = NOW - timedelta(days=1)
LAST_WEEK = NOW - timedelta(days=8)


def decided(
    runtime: Any,
    model_status: str,
    at: datetime,
    *later: tuple[str, str],
    reason: str = "clean",
    site_id: int | None = None,
    actor: str = "model:v1",
) -> str:
    """A comment the model decided at ``at``, then changed by each ``(actor, status)`` an hour apart."""
    comment_id = new_id()
    text = f"comment {comment_id}"
    with runtime.session() as session:
        session.add(
            Comment(
                id=comment_id,
                author_name="Ann",
                author_email="ann@example.com",
                text=text,
                text_hash=text_hash(text),
                status=later[-1][1] if later else model_status,
                reason=reason,
                received_at=at - timedelta(seconds=5),
                site_id=site_id,
            )
        )
        session.flush()
        session.add(
            StatusChange(
                comment_id=comment_id,
                from_status=PENDING,
                to_status=model_status,
                reason=reason,
                actor=actor,
                created_at=at,
            )
        )
        previous = model_status
        for hours, (who, status) in enumerate(later, start=1):
            session.add(
                StatusChange(
                    comment_id=comment_id,
                    from_status=previous,
                    to_status=status,
                    reason="moderator_decision",
                    actor=who,
                    created_at=at + timedelta(hours=hours),
                )
            )
            session.flush()  # ids in the order the changes happened
            previous = status
        session.commit()
    return comment_id


MOD = "moderator:alice"


def test_counts_and_shares_per_iso_week_of_the_models_decision(runtime):
    # This week: 4 approved (1 later rejected), 3 held (1 approved, 1 rejected, 1 untouched),
    # 2 rejected (1 approved).
    for _ in range(3):
        decided(runtime, APPROVED, THIS_WEEK)
    decided(runtime, APPROVED, THIS_WEEK, (MOD, REJECTED))
    decided(runtime, HELD, THIS_WEEK, (MOD, APPROVED))
    decided(runtime, HELD, THIS_WEEK, ("api-key:3", REJECTED))  # a CMS's own moderators count too
    decided(runtime, HELD, THIS_WEEK)
    decided(runtime, REJECTED, THIS_WEEK)
    decided(runtime, REJECTED, THIS_WEEK, (MOD, APPROVED))
    # Last week: an approval rejected and then undone back to approved counts as agreement.
    decided(runtime, APPROVED, LAST_WEEK, (MOD, REJECTED), (MOD, APPROVED))
    decided(runtime, HELD, LAST_WEEK, (MOD, APPROVED), (MOD, REJECTED))  # the last word counts
    # Held unscored by the service is the model side's decision too.
    decided(runtime, HELD, LAST_WEEK, (MOD, APPROVED), actor="system:scorer")
    # Older than the window: not counted.
    decided(runtime, APPROVED, NOW - timedelta(weeks=13), (MOD, REJECTED))
    with runtime.session() as session:
        weeks = agreement_by_week(session, now=NOW)
    assert len(weeks) == 12
    assert [week.week for week in weeks[-2:]] == ["2026-W48", "2026-W49"]
    assert weeks[-1].start.isoformat() == "2026-11-30"
    this, last = weeks[-1], weeks[-2]
    assert (this.model_approved, this.approved_then_rejected, this.approved_then_rejected_share) == (
        4,
        1,
        0.25,
    )
    assert (this.model_held, this.held_then_approved, this.held_then_rejected) == (3, 1, 1)
    assert this.held_then_approved_share == round(1 / 3, 4)
    assert (this.model_rejected, this.rejected_then_approved, this.rejected_then_approved_share) == (
        2,
        1,
        0.5,
    )
    assert (last.model_approved, last.approved_then_rejected) == (1, 0)
    assert (last.model_held, last.held_then_approved, last.held_then_rejected) == (2, 1, 1)
    assert last.model_rejected == 0 and last.rejected_then_approved_share is None
    assert all(week.model_approved == week.model_held == 0 for week in weeks[:-2])
    assert sum(week.model_approved for week in weeks) == 5


def test_a_week_boundary_is_monday_midnight_utc(runtime):
    monday = first_week_start(NOW, 1)
    assert monday == datetime(2026, 11, 30, tzinfo=UTC)
    decided(runtime, APPROVED, monday - timedelta(seconds=1), (MOD, REJECTED))
    decided(runtime, APPROVED, monday + timedelta(seconds=1))
    with runtime.session() as session:
        last, this = agreement_by_week(session, weeks=2, now=NOW)
    assert (last.model_approved, last.approved_then_rejected) == (1, 1)
    assert (this.model_approved, this.approved_then_rejected) == (1, 0)


def test_a_site_moderator_sees_only_their_site(client, runtime):
    with runtime.session() as session:
        gazette = create_site(session, "gazette").id
        create_moderator(session, "gail", PASSWORD, site_id=gazette)
        create_moderator(session, "root", PASSWORD)
        gail_token = issue_token(session, "gail")
        root_token = issue_token(session, "root")
    recent = datetime.now(UTC) - timedelta(seconds=1)
    decided(runtime, APPROVED, recent, (MOD, REJECTED), site_id=gazette)
    decided(runtime, HELD, recent, (MOD, APPROVED), reason="suspect_word", site_id=gazette)
    decided(runtime, APPROVED, recent, (MOD, REJECTED))  # the default site
    decided(runtime, REJECTED, recent, reason="banned_word")  # the default site
    gail = client.get("/v1/agreement", headers={"Authorization": f"Bearer {gail_token}"}).get_json()
    root = client.get("/v1/agreement", headers={"Authorization": f"Bearer {root_token}"}).get_json()
    assert gail["weeks"][-1]["model_approved"] == {
        "count": 1,
        "rejected_by_moderators": 1,
        "rejected_share": 1.0,
    }
    assert gail["weeks"][-1]["model_held"]["approved_by_moderators"] == 1
    assert gail["weeks"][-1]["model_rejected"]["count"] == 0
    assert gail["rule_reasons"]["suspect_word"] == 1 and gail["rule_reasons"]["banned_word"] == 0
    assert root["weeks"][-1]["model_approved"]["count"] == 2
    assert root["rule_reasons"]["banned_word"] == 1
    assert len(gail["weeks"]) == 12
    three = client.get("/v1/agreement?weeks=3", headers={"Authorization": f"Bearer {gail_token}"})
    assert len(three.get_json()["weeks"]) == 3
    # A moderator of every site can look at one; a site moderator cannot look past theirs.
    picked = client.get("/v1/agreement?site=gazette", headers={"Authorization": f"Bearer {root_token}"})
    assert picked.get_json()["weeks"][-1] == gail["weeks"][-1]
    other = client.get("/v1/agreement?site=default", headers={"Authorization": f"Bearer {gail_token}"})
    assert other.get_json()["weeks"][-1]["model_approved"]["count"] == 0
    assert set(other.get_json()["rule_reasons"].values()) == {0}
    missing = client.get("/v1/agreement?site=nowhere", headers={"Authorization": f"Bearer {root_token}"})
    assert missing.status_code == 404


def test_the_overview_of_one_site(client, runtime):
    with runtime.session() as session:
        gazette = create_site(session, "gazette").id
        create_moderator(session, "gail", PASSWORD, site_id=gazette)
        create_moderator(session, "root", PASSWORD)
    recent = datetime.now(UTC) - timedelta(seconds=1)
    decided(runtime, APPROVED, recent, (MOD, REJECTED), site_id=gazette)
    for _ in range(3):
        decided(runtime, APPROVED, recent)
    login(client, "root")
    every = client.get("/moderate/overview").get_data(as_text=True)
    assert 'id="overview-site"' in every and "1 of 4" in every
    one = client.get("/moderate/overview?site=gazette").get_data(as_text=True)
    assert "1 of 1 (100.0%)" in one and 'href="/moderate/thresholds?site=gazette"' in one
    assert client.get("/moderate/overview?site=nowhere").status_code == 404
    client.post("/logout", data={"csrf_token": csrf_from(one)})
    login(client, "gail")
    own = client.get("/moderate/overview").get_data(as_text=True)
    assert 'id="overview-site"' not in own and "1 of 1 (100.0%)" in own
    assert client.get("/moderate/overview?site=default").status_code == 404
    assert client.get("/moderate/thresholds?site=default").status_code == 404


def test_bad_weeks_get_a_422_naming_the_field(client, runtime):
    with runtime.session() as session:
        create_moderator(session, "root", PASSWORD)
        token = issue_token(session, "root")
    for value in ("0", "x", "1000"):
        response = client.get(f"/v1/agreement?weeks={value}", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 422, value
        assert "weeks" in response.get_data(as_text=True)
    assert client.get("/v1/agreement").status_code == 401


def test_the_overview_shows_the_table_escaped_with_the_thresholds_link(client, runtime):
    with runtime.session() as session:
        create_moderator(session, "root", PASSWORD)
    recent = datetime.now(UTC) - timedelta(seconds=1)
    decided(runtime, APPROVED, recent, (MOD, REJECTED))
    decided(runtime, APPROVED, recent)
    decided(runtime, REJECTED, recent, reason="banned_word")
    login(client, "root")
    html = client.get("/moderate/overview").get_data(as_text=True)
    assert 'id="agreement"' in html
    assert 'href="/moderate/thresholds"' in html
    assert "1 of 2" in html and "50.0%" in html
    assert 'id="rule-reasons"' in html and "Banned word" in html


def test_real_verdicts_then_moderator_decisions(client, runtime, api_key):
    """End to end: the worker decides, a moderator overrules it through the JSON API."""
    ids = []
    for text in ("Thanks for the thoughtful article, I learned a lot.", "Great read, well argued."):
        body = {"name": "Ann", "email": "ann@example.com", "text": text}
        response = client.post("/v1/comments", json=body, headers=api_key.headers)
        assert response.status_code == 202
        ids.append(response.get_json()["id"])
    drain_queues(runtime)
    with runtime.session() as session:
        statuses = [session.get(Comment, comment_id).status for comment_id in ids]
        create_moderator(session, "root", PASSWORD)
        token = issue_token(session, "root")
    assert statuses == [APPROVED, APPROVED]
    headers = {"Authorization": f"Bearer {token}"}
    decision = client.post(f"/v1/comments/{ids[0]}/decision", json={"decision": "spam"}, headers=headers)
    assert decision.status_code == 200
    with runtime.session() as session:
        (week,) = agreement_by_week(session, weeks=1)
        reasons = rule_reason_counts(session, weeks=1)
    assert (week.model_approved, week.approved_then_rejected, week.approved_then_rejected_share) == (
        2,
        1,
        0.5,
    )
    assert week.model_held == week.model_rejected == 0
    assert set(reasons.values()) == {0}


def labelled(runtime: Any, spam: float, decision: str, site_id: int | None = None) -> None:
    """A held comment with recorded scores, then a moderator's label for it."""
    text = f"comment {new_id()} scoring {spam}"
    comment_id = add_comment(runtime, text=text, scores={"spam": spam}, site_id=site_id)
    (outcome,) = decide(runtime, [comment_id], decision, "moderator:alice")
    assert outcome.changed


def test_the_thresholds_suggestion_uses_only_the_moderators_own_site(client, runtime):
    with runtime.session() as session:
        gazette = create_site(session, "gazette").id
        create_moderator(session, "gail", PASSWORD, site_id=gazette)
    for index in range(10):
        labelled(runtime, index / 20, "approve", site_id=gazette)  # 0.00 .. 0.45: fine
        labelled(runtime, 0.6 + index / 40, "spam", site_id=gazette)  # 0.60 .. 0.83: spam
    labelled(runtime, 0.1, "spam")  # another site's label would break the gazette's suggestion
    login(client, "gail")
    overview = client.get("/moderate/overview").get_data(as_text=True)
    assert 'href="/moderate/thresholds"' in overview
    page = client.get("/moderate/thresholds")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "20 labelled comments" in html
    assert 'id="suggest-spam"' in html
    # The highest threshold approving none of the gazette's spam: 0.60 (0.10 with the other site's label).
    assert "suggested: <strong>0.60</strong>" in html
    assert 'href="/moderate/sites/gazette"' in html


def test_a_bad_target_is_a_422_shown_in_the_page_escaped(client, runtime):
    with runtime.session() as session:
        create_moderator(session, "root", PASSWORD)
    login(client, "root")
    page = client.get('/moderate/thresholds?target="><script>x</script>')
    html = page.get_data(as_text=True)
    assert page.status_code == 422
    assert 'id="thresholds-error"' in html and "<script>x</script>" not in html
    assert "No labelled comments" in html
