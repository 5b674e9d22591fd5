"""The Coral external moderation phase, driven with requests built the way Coral builds them.

Coral (coralproject/talk, ``server/src/core/server/services/comments/pipeline/phases/external.ts`` and
``services/fetch/fetch.ts``) POSTs ``JSON.stringify(request, null, 2)`` with ``Content-Type:
application/json`` and ``X-Coral-Signature: sha256=<hex HMAC-SHA256 of the body>`` (one per active
signing secret, comma-separated; ``models/settings/signingSecret/helpers.ts``). It validates the answer
with Joi (``ExternalModerationResponseSchema``); :func:`assert_coral_accepts` checks the same rules.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json

import pytest
from sqlalchemy import select

from service.db import APPROVED, HELD, REJECTED, Comment, StatusChange
from service.keys import create_api_key
from service.policy import MODERATOR_APPROVED, UNSCORED, apply_policy
from service.settings import Settings, SettingsError, Thresholds
from service.store import StatusUpdate, change_status
from service.web.compat.coral import phase_answer

PHASE = "/coral/v1/phase"
SECRET = "ems_" + "3f9a" * 16
OTHER_SECRET = "ems_" + "77c1" * 16
ORDINARY = "I disagree with the council's decision on the new budget, the schools need more money."
LINK_SPAM = "CHEAP VIAGRA!!! buy now www.cheap-pills.biz www.pills.biz www.meds.biz"
INSULT = "You are a complete idiot and a moron, shut up."
#: What Coral's Joi schema allows (GQLCOMMENT_STATUS, ACTION_TYPE.FLAG, the two detected reasons).
CORAL_STATUSES = {"NONE", "APPROVED", "REJECTED", "PREMOD", "SYSTEM_WITHHELD"}
CORAL_FLAG_REASONS = {"COMMENT_DETECTED_TOXIC", "COMMENT_DETECTED_SPAM"}


def coral_request(
    text: str,
    action: str = "NEW",
    parent_id: str | None = None,
    author_id: str = "baf4e943-3594-4fcc-b2ba-3e8de7a76352",
) -> dict:
    """An ``ExternalModerationRequest``, field for field as ``processPhase`` builds it."""
    return {
        "action": action,
        "comment": {"body": text, "parentID": parent_id},
        "author": {"id": author_id, "role": "COMMENTER"},
        "story": {"id": "245b3856-b0a0-4d2f-a6bb-58c71f18d6a6", "url": "https://news.example.org/a-story/"},
        "site": {"id": "a4bede88-2d2c-4424-bc18-4322a9e285a6"},
        "tenantID": "19ba5794-7eeb-4d46-a81b-c00c61672501",
        "tenantDomain": "news.example.org",
    }


def serialize(request: dict) -> bytes:
    # JSON.stringify(data, null, 2): two-space indent, ", " never, ": " after keys, raw UTF-8.
    return json.dumps(request, indent=2, ensure_ascii=False).encode()


def coral_signature(body: bytes, *secrets: str) -> str:
    """``generateSignatures``: ``sha256=<hex>`` per active secret, joined by ``,``."""
    return ",".join("sha256=" + hmac.new(s.encode(), body, hashlib.sha256).hexdigest() for s in secrets)


def send(client, body: bytes, key: str | None, signature: str | None = None, **kwargs):  # noqa: ANN001, ANN201
    headers = {"User-Agent": "Coral Moderation/9.0.0"}
    if signature is not None:
        headers["X-Coral-Signature"] = signature
    return client.post(
        PHASE,
        data=body,
        query_string={"key": key} if key is not None else {},
        headers=headers,
        content_type=kwargs.pop("content_type", "application/json"),
        **kwargs,
    )


def send_signed(client, request: dict | bytes, key: str, *secrets: str):  # noqa: ANN001, ANN201
    body = request if isinstance(request, bytes) else serialize(request)
    return send(client, body, key, coral_signature(body, *(secrets or (SECRET,))))


def assert_coral_accepts(response) -> dict | None:  # noqa: ANN001
    """The answer passes Coral's checks; returns the parsed body, None for "no opinion"."""
    if response.status_code == 204:
        assert response.get_data() == b""
        return None
    assert response.status_code == 200, response.get_data(as_text=True)
    answer = response.get_json()
    assert set(answer) <= {"status", "actions", "tags"}
    assert answer.get("status", "NONE") in CORAL_STATUSES
    for action in answer.get("actions", []):
        assert action == {"actionType": "FLAG", "reason": action["reason"]}
        assert action["reason"] in CORAL_FLAG_REASONS
    return answer


def assert_error(response, status: int, code: str) -> dict:  # noqa: ANN001
    assert response.status_code == status, response.get_data(as_text=True)
    error = response.get_json()["error"]
    assert error["code"] == code
    assert error["message"]
    return error


def stored(runtime) -> list[Comment]:  # noqa: ANN001
    with runtime.session() as session:
        return list(session.scalars(select(Comment).order_by(Comment.received_at)))


def phase_app(runtime, secrets: tuple[str, ...] = (SECRET,), **overrides):  # noqa: ANN001, ANN003, ANN201
    from service.web.app import create_app

    changed = dataclasses.replace(
        runtime, settings=runtime.settings.with_overrides(coral_signing_secrets=secrets, **overrides)
    )
    app = create_app(changed.settings, runtime=changed)
    app.config["TESTING"] = True
    return app


@pytest.fixture
def coral_key(runtime) -> str:  # noqa: ANN001
    with runtime.session() as session:
        return create_api_key(session, "coral", ["comments"]).secret


@pytest.fixture
def coral(runtime):  # noqa: ANN001, ANN201
    return phase_app(runtime).test_client()


# --- verdicts ------------------------------------------------------------------------------------


def test_each_verdict_is_answered_as_the_policy_decides(coral, coral_key, runtime):
    from classifier.comment import Comment as ClassifierComment

    for text in (ORDINARY, LINK_SPAM, INSULT):
        response = send_signed(coral, coral_request(text), coral_key)
        answer = assert_coral_accepts(response)
        scores = runtime.models.score([ClassifierComment(text=text)], explain=False).scores[0].values
        verdict = apply_policy(scores, text, runtime.settings.thresholds)
        assert answer == phase_answer(verdict.status, verdict.reason), (text, verdict)
        assert response.headers["X-Moderation-Status"] == verdict.status
    assert send_signed(coral, coral_request(ORDINARY), coral_key).status_code == 204
    # Three links are held at least (WordPress's rule), and flagged as spam unless toxicity fired.
    link_answer = phase_answer(*_verdict(runtime, LINK_SPAM))
    assert link_answer is not None and link_answer["status"] in {"REJECTED", "SYSTEM_WITHHELD"}
    insult_answer = phase_answer(*_verdict(runtime, INSULT))
    assert insult_answer == {
        "status": "SYSTEM_WITHHELD",
        "actions": [{"actionType": "FLAG", "reason": "COMMENT_DETECTED_TOXIC"}],
    }


def _verdict(runtime, text: str) -> tuple[str, str]:  # noqa: ANN001
    from classifier.comment import Comment as ClassifierComment

    scores = runtime.models.score([ClassifierComment(text=text)], explain=False).scores[0].values
    verdict = apply_policy(scores, text, runtime.settings.thresholds)
    return verdict.status, verdict.reason


def test_every_answered_comment_is_stored_with_its_verdict(coral, coral_key, runtime):
    send_signed(coral, coral_request(ORDINARY), coral_key)
    response = send_signed(
        coral, coral_request(INSULT, parent_id="d79b787f-f406-49a0-a179-72e3652e54be"), coral_key
    )
    ordinary, insult = stored(runtime)
    assert ordinary.status == APPROVED and ordinary.reason == "clean"
    assert insult.status == HELD and insult.reason.startswith("toxicity_hold:")
    assert insult.id == response.headers["X-Moderation-Comment"]
    assert insult.scores and insult.model_version and insult.decided_by.startswith("model:")
    # The terms behind the score, with spans into the stored text, for the moderators' highlighting.
    begin, end = insult.explanations[0]["spans"][0]
    assert insult.text[begin:end].lower() in INSULT.lower()
    assert insult.parent_id == "d79b787f-f406-49a0-a179-72e3652e54be"
    assert insult.post_id == "245b3856-b0a0-4d2f-a6bb-58c71f18d6a6"
    assert insult.permalink == "https://news.example.org/a-story/"
    assert insult.meta["coral"]["action"] == "NEW"
    assert insult.meta["coral"]["tenant_domain"] == "news.example.org"
    # One pseudonymous address per Coral user: "this author's other comments" means that user.
    assert insult.author_email == ordinary.author_email
    assert insult.author_email.endswith(".coral.invalid")
    # Its history starts with the verdict, as a comment the worker scored does.
    with runtime.session() as session:
        (change,) = session.scalars(select(StatusChange).where(StatusChange.comment_id == insult.id))
    assert (change.from_status, change.to_status, change.reason) == ("pending", HELD, insult.reason)


def test_held_comments_reach_the_moderators_and_their_decision_answers_a_resend(coral, coral_key, runtime):
    from service.moderators import issue_token
    from tests.test_moderation_pages import logged_in

    html_insult = "<script>alert(1)</script> " + INSULT
    body = serialize(coral_request(html_insult))
    first = send(coral, body, coral_key, coral_signature(body, SECRET))
    assert assert_coral_accepts(first)["status"] == "SYSTEM_WITHHELD"
    comment_id = first.headers["X-Moderation-Comment"]
    logged_in(coral, runtime)
    page = coral.get("/moderate/").get_data(as_text=True)
    assert comment_id in page and "&lt;script&gt;" in page and "<script>alert(1)" not in page
    with runtime.session() as session:
        token = issue_token(session, "alice")
    decided = coral.post(
        f"/v1/comments/{comment_id}/decision",
        json={"decision": "spam"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert decided.status_code == 200, decided.get_data(as_text=True)
    again = send(coral, body, coral_key, coral_signature(body, SECRET))
    assert assert_coral_accepts(again) == {
        "status": "REJECTED",
        "actions": [{"actionType": "FLAG", "reason": "COMMENT_DETECTED_SPAM"}],
    }


def test_spam_the_policy_rejects_is_rejected_with_a_spam_flag(runtime, coral_key):
    client = phase_app(runtime, thresholds=Thresholds(spam_reject=0.0, spam_hold=0.0)).test_client()
    response = send_signed(client, coral_request(LINK_SPAM), coral_key)
    assert assert_coral_accepts(response) == {
        "status": "REJECTED",
        "actions": [{"actionType": "FLAG", "reason": "COMMENT_DETECTED_SPAM"}],
    }
    assert stored(runtime)[0].status == REJECTED


def test_toxicity_is_withheld_with_a_toxic_flag_and_a_clean_comment_gets_no_opinion(runtime, coral_key):
    toxic = phase_app(runtime, thresholds=Thresholds(spam_reject=1.0, spam_hold=1.0, toxicity_hold=0.0))
    answer = assert_coral_accepts(send_signed(toxic.test_client(), coral_request(ORDINARY), coral_key))
    assert answer == {
        "status": "SYSTEM_WITHHELD",
        "actions": [{"actionType": "FLAG", "reason": "COMMENT_DETECTED_TOXIC"}],
    }
    lenient = phase_app(runtime, thresholds=Thresholds(spam_reject=1.0, spam_hold=1.0, toxicity_hold=1.0))
    response = send_signed(lenient.test_client(), coral_request(INSULT), coral_key)
    # Approved is "no opinion" (204), never a forced APPROVED: Coral's own settings still apply.
    assert response.status_code == 204
    assert assert_coral_accepts(response) is None


def test_an_edited_comment_is_scored_again_and_stored_as_an_edit(coral, coral_key, runtime):
    assert send_signed(coral, coral_request(ORDINARY), coral_key).status_code == 204
    response = send_signed(coral, coral_request(INSULT, action="EDIT"), coral_key)
    assert assert_coral_accepts(response)["status"] == "SYSTEM_WITHHELD"
    new, edit = stored(runtime)
    assert (new.meta["coral"]["action"], edit.meta["coral"]["action"]) == ("NEW", "EDIT")
    assert edit.status == HELD


def test_html_body_and_non_ascii_text_are_accepted(coral, coral_key, runtime):
    html = '<p>Très bien écrit, merci ! Voir <a href="https://www.gov.uk/report">le rapport</a>.</p>'
    assert_coral_accepts(send_signed(coral, coral_request(html), coral_key))
    assert stored(runtime)[0].text == html


def test_without_a_model_the_comment_is_held_for_premoderation(runtime, coral_key, tmp_path):
    from classifier.registry import Registry
    from service.scoring import ModelHolder
    from service.web.app import create_app

    (tmp_path / "no-models").mkdir()
    empty = dataclasses.replace(
        runtime,
        models=ModelHolder(Registry(tmp_path / "no-models")),
        settings=runtime.settings.with_overrides(coral_signing_secrets=(SECRET,)),
    )
    client = create_app(empty.settings, runtime=empty).test_client()
    response = send_signed(client, coral_request(ORDINARY), coral_key)
    assert assert_coral_accepts(response) == {"status": "PREMOD"}
    (comment,) = stored(runtime)
    assert (comment.status, comment.reason) == (HELD, UNSCORED)


def test_with_the_database_down_a_signed_request_is_still_held(runtime, coral_key):
    from service.db import make_engine, make_session_factory
    from service.web.app import create_app

    # Nothing listens on port 1: every connection is refused, the key lookup's included.
    unreachable = make_session_factory(make_engine("postgresql://postgres@127.0.0.1:1/none"))
    down = dataclasses.replace(
        runtime,
        session_factory=unreachable,
        settings=runtime.settings.with_overrides(coral_signing_secrets=(SECRET,)),
    )
    client = create_app(down.settings, runtime=down).test_client()
    response = send_signed(client, coral_request(ORDINARY), coral_key)
    # An error would make Coral skip the phase and publish the comment unchecked.
    assert assert_coral_accepts(response) == {"status": "PREMOD"}
    # The signature is still checked: without one, nothing is answered but the refusal.
    unsigned = send(client, serialize(coral_request(ORDINARY)), coral_key, "sha256=" + "0" * 64)
    assert_error(unsigned, 401, "invalid_signature")


def test_when_the_comment_cannot_be_stored_the_answer_is_a_hold(runtime, coral_key, database_url):
    from sqlalchemy import event

    from service.db import make_engine, make_session_factory
    from service.web.app import create_app

    if not database_url.startswith("sqlite"):
        pytest.skip("a read-only SQLite connection stands in for a database that refuses writes")
    read_only = make_engine(database_url)
    event.listen(read_only, "connect", lambda connection, _record: connection.execute("PRAGMA query_only=ON"))
    refusing = dataclasses.replace(
        runtime,
        session_factory=make_session_factory(read_only),
        settings=runtime.settings.with_overrides(coral_signing_secrets=(SECRET,)),
    )
    client = create_app(refusing.settings, runtime=refusing).test_client()
    response = send_signed(client, coral_request(ORDINARY), coral_key)
    assert assert_coral_accepts(response) == {"status": "PREMOD"}
    assert response.headers["X-Moderation-Status"] == HELD
    assert stored(runtime) == []


# --- signatures and replays ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "signature",
    [
        None,
        "",
        "sha256=",
        "t=1700000000,s=abc",
        "sha1=" + hmac.new(SECRET.encode(), b"x", hashlib.sha1).hexdigest(),
        "sha256=" + "0" * 64,
        "sha256=not-hex",
    ],
)
def test_a_missing_or_bad_signature_is_refused_and_nothing_is_stored(coral, coral_key, runtime, signature):
    response = send(coral, serialize(coral_request(ORDINARY)), coral_key, signature)
    assert_error(response, 401, "invalid_signature")
    assert stored(runtime) == []


def test_a_signature_by_another_secret_or_for_another_body_is_refused(coral, coral_key, runtime):
    body = serialize(coral_request(ORDINARY))
    assert_error(send(coral, body, coral_key, coral_signature(body, OTHER_SECRET)), 401, "invalid_signature")
    tampered = serialize(coral_request(INSULT))
    assert_error(send(coral, tampered, coral_key, coral_signature(body, SECRET)), 401, "invalid_signature")
    # Re-serialising changes the bytes: the signature covers the raw body, not its meaning.
    compact = json.dumps(coral_request(ORDINARY)).encode()
    assert_error(send(coral, compact, coral_key, coral_signature(body, SECRET)), 401, "invalid_signature")
    assert stored(runtime) == []


def test_rotated_secrets_are_accepted_on_either_side(runtime, coral_key):
    # Coral signs with the old and the new secret while the old one is still active.
    client = phase_app(runtime).test_client()
    assert_coral_accepts(send_signed(client, coral_request(ORDINARY), coral_key, OTHER_SECRET, SECRET))
    # Here both secrets may be configured while Coral moves to the new one.
    both = phase_app(runtime, secrets=(OTHER_SECRET, SECRET)).test_client()
    assert_coral_accepts(send_signed(both, coral_request(INSULT), coral_key, SECRET))
    assert len(stored(runtime)) == 2


def test_a_replayed_request_stores_nothing_new_and_gets_the_recorded_decision(coral, coral_key, runtime):
    body = serialize(coral_request(INSULT))
    first = send(coral, body, coral_key, coral_signature(body, SECRET))
    again = send(coral, body, coral_key, coral_signature(body, SECRET))
    assert again.status_code == first.status_code
    assert again.get_json() == first.get_json()
    assert again.headers["X-Moderation-Comment"] == first.headers["X-Moderation-Comment"]
    (comment,) = stored(runtime)
    # A moderator here approves it: the same request now gets no opinion, not a fresh score.
    with runtime.session() as session:
        held = session.get(Comment, comment.id)
        change_status(session, held, StatusUpdate(APPROVED, MODERATOR_APPROVED, actor="moderator:alice"))
        session.commit()
    assert send(coral, body, coral_key, coral_signature(body, SECRET)).status_code == 204
    assert len(stored(runtime)) == 1


def test_without_a_configured_secret_every_request_is_refused(runtime, coral_key):
    client = phase_app(runtime, secrets=()).test_client()
    response = send_signed(client, coral_request(ORDINARY), coral_key)
    assert_error(response, 503, "coral_not_configured")
    assert stored(runtime) == []


# --- keys and limits -----------------------------------------------------------------------------


def test_the_key_must_be_valid_and_have_the_comments_scope(coral, coral_key, runtime):
    request = coral_request(ORDINARY)
    assert_error(send_signed(coral, request, None), 401, "unauthorized")  # type: ignore[arg-type]
    assert_error(send_signed(coral, request, "mk_not-a-key"), 401, "unauthorized")
    with runtime.session() as session:
        analyze_only = create_api_key(session, "perspective", ["analyze"]).secret
    assert_error(send_signed(coral, request, analyze_only), 403, "forbidden")
    assert stored(runtime) == []


def test_over_the_rate_limit_the_answer_is_429_with_retry_after(coral, runtime):
    with runtime.session() as session:
        key = create_api_key(session, "coral", ["comments"], rate_limit="1/minute").secret
    assert_coral_accepts(send_signed(coral, coral_request(ORDINARY), key))
    response = send_signed(coral, coral_request(INSULT), key)
    assert_error(response, 429, "too_many_requests")
    assert int(response.headers["Retry-After"]) >= 1
    assert len(stored(runtime)) == 1


def test_unsigned_requests_do_not_use_up_the_rate_limit(coral, runtime):
    with runtime.session() as session:
        key = create_api_key(session, "coral", ["comments"], rate_limit="1/minute").secret
    body = serialize(coral_request(ORDINARY))
    for _ in range(3):  # someone with the phase URL, but not the secret
        assert_error(send(coral, body, key, "sha256=" + "0" * 64), 401, "invalid_signature")
    assert_coral_accepts(send_signed(coral, coral_request(ORDINARY), key))


# --- bad input -----------------------------------------------------------------------------------


def _without(request: dict, *path: str) -> dict:
    part = request
    for name in path[:-1]:
        part = part[name]
    del part[path[-1]]
    return request


@pytest.mark.parametrize(
    ("request_body", "field"),
    [
        (_without(coral_request(ORDINARY), "comment", "body"), "comment.body"),
        (_without(coral_request(ORDINARY), "comment"), "comment"),
        (_without(coral_request(ORDINARY), "author", "id"), "author.id"),
        (_without(coral_request(ORDINARY), "tenantID"), "tenantID"),
        ({**coral_request(ORDINARY), "comment": {"body": 42, "parentID": None}}, "comment.body"),
        ({**coral_request(ORDINARY), "comment": {"body": True, "parentID": None}}, "comment.body"),
        ({**coral_request(ORDINARY), "comment": "hello"}, "comment"),
        ({**coral_request(ORDINARY), "comment": {"body": "hi", "parentID": 7}}, "comment.parentID"),
        ({**coral_request(ORDINARY), "action": "DELETE"}, "action"),
        ({**coral_request(ORDINARY), "story": {"id": "s", "url": ["x"]}}, "story.url"),
        ({**coral_request(ORDINARY), "tenantDomain": ""}, "tenantDomain"),
        (
            {**coral_request(ORDINARY), "comment": {"body": "bad \ud800 text", "parentID": None}},
            "comment.body",
        ),
    ],
)
def test_bad_fields_get_422_naming_the_field(coral, coral_key, runtime, request_body, field):
    body = json.dumps(request_body, indent=2).encode()  # ASCII escapes keep a lone surrogate sendable
    error = assert_error(send_signed(coral, body, coral_key), 422, "invalid_fields")
    assert field in error["fields"], error
    assert stored(runtime) == []


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"{not json", 400, "invalid_json"),
        (b"", 400, "invalid_json"),
        (b"[" * 30_000 + b"]" * 30_000, 400, "invalid_json"),
        (b'{"a":' * 10_000 + b"1" + b"}" * 10_000, 400, "invalid_json"),
        (b'["a list"]', 422, "invalid_fields"),
        (b"\xff\xfe not utf-8", 400, "invalid_json"),
    ],
)
def test_malformed_bodies_get_a_4xx_never_a_500(coral, coral_key, runtime, body, status, code):
    assert_error(send_signed(coral, body, coral_key), status, code)
    assert stored(runtime) == []


def test_a_body_that_is_not_json_gets_415(coral, coral_key):
    body = b"action=NEW"
    response = send(coral, body, coral_key, coral_signature(body, SECRET), content_type="text/plain")
    assert_error(response, 415, "unsupported_media_type")


def test_a_body_over_the_limit_gets_413(coral, coral_key, runtime):
    body = serialize(coral_request("x" * (runtime.settings.max_body_bytes + 10)))
    assert send_signed(coral, body, coral_key).status_code == 413
    assert stored(runtime) == []


# --- settings ------------------------------------------------------------------------------------


def test_signing_secrets_come_from_the_environment():
    assert Settings.from_env({}).coral_signing_secrets == ()
    env = {"CORAL_SIGNING_SECRET": f" {SECRET} ,{OTHER_SECRET}"}
    assert Settings.from_env(env).coral_signing_secrets == (SECRET, OTHER_SECRET)
    with pytest.raises(SettingsError, match="CORAL_SIGNING_SECRET"):
        Settings.from_env({"CORAL_SIGNING_SECRET": "short"})


def test_phase_answers_cover_every_status_coral_can_be_told():
    assert phase_answer(APPROVED, "clean") is None
    assert phase_answer(HELD, UNSCORED) == {"status": "PREMOD"}
    assert phase_answer("pending", UNSCORED) == {"status": "PREMOD"}
    assert phase_answer(HELD, "moderator_held") == {"status": "PREMOD"}
    assert phase_answer(HELD, "too_many_links")["actions"][0]["reason"] == "COMMENT_DETECTED_SPAM"
    assert phase_answer(REJECTED, "moderator_abusive")["actions"][0]["reason"] == "COMMENT_DETECTED_TOXIC"
    assert phase_answer(REJECTED, "spam_reject")["actions"][0]["reason"] == "COMMENT_DETECTED_SPAM"
