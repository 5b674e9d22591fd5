"""A Coral (coralproject/talk v7+) external moderation phase: ``POST /coral/v1/phase?key=KEY``.

Coral calls every enabled external phase for each new or edited comment, after its own phases, and
applies the answer within the phase's timeout. The protocol, from Coral's source and docs:

* ``docs/docs/external-moderation-phases.md`` (older layout: ``EXTERNAL_MODERATION_PHASES.md``) and
  ``server/src/core/server/services/comments/pipeline/phases/external.ts``: the request body is
  ``{"action": "NEW"|"EDIT", "comment": {"body", "parentID"}, "author": {"id", "role"},
  "story": {"id", "url"}, "site": {"id"}, "tenantID", "tenantDomain"}``. Coral validates the answer
  with Joi (``ExternalModerationResponseSchema``): optional ``status`` (a ``COMMENT_STATUS``: NONE,
  APPROVED, REJECTED, PREMOD, SYSTEM_WITHHELD), ``actions`` (``{"actionType": "FLAG", "reason":
  "COMMENT_DETECTED_TOXIC"|"COMMENT_DETECTED_SPAM"}``) and ``tags``. A 204, an empty body or ``{}``
  means "no opinion"; a non-2xx answer or a timeout makes Coral skip the phase.
* ``server/src/core/server/services/fetch/fetch.ts`` (``generateFetchOptions``) and
  ``server/src/core/server/models/settings/signingSecret/helpers.ts`` (``generateSignatures``): the
  body is ``JSON.stringify(request, null, 2)``, and ``X-Coral-Signature`` is
  ``sha256=<hex HMAC-SHA256 of the raw body>``, one per active signing secret, joined by ``,`` (two
  while a rotated secret is still active). ``docs/docs/webhooks.md`` says how to verify it.

Coral signs no timestamp and no nonce, so a captured request cannot be told from a resend by its age.
Replays are made harmless instead: a signed body is stored once here (its SHA-256 is the comment's
``external_id``), so sending it again stores nothing new and gets the decision already recorded, never
a fresh one. (A 409 would be worse: Coral would skip the phase and publish the comment.)

Decisions, following what Coral's own spam and toxicity phases answer (``phases/spam.ts``,
``phases/toxic.ts``): rejected as spam is ``REJECTED`` with a spam flag; held is ``SYSTEM_WITHHELD``
with a spam or toxic flag; approved is 204 (no opinion, so Coral's other settings still apply);
unscored (no model, scoring failed) is ``PREMOD``: a person decides, never the absence of a model.

Every answered comment is stored in our comments table with its verdict (``api_key_id`` the key,
``post_id`` the story, ``meta.coral`` the rest), so held ones are in the moderators' queue and each
decision there is a training label. The comment's home is Coral: decisions made here are not sent
back to Coral. If our database cannot store it, the answer is still a hold (``PREMOD``): an error
would make Coral skip the phase and publish an unchecked comment.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from flask import Blueprint, Response, jsonify, request
from pydantic import AfterValidator, BaseModel, ConfigDict, StringConstraints, ValidationError
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.exceptions import HTTPException

from classifier.comment import Comment as ClassifierComment
from service import jobs
from service.db import APPROVED, HELD, REJECTED, ApiKey
from service.errors import Forbidden, InvalidComment, ServiceError, TooManyRequests, Unauthorized
from service.policy import SPAM_HOLD, SPAM_REASONS, TOO_MANY_LINKS, UNSCORED, apply_policy, uncertainty
from service.runtime import Runtime
from service.store import StatusUpdate, create_decided_comment
from service.web.auth import (
    InvalidKey,
    MissingKey,
    MissingScope,
    TooManyFailedKeys,
    authenticate_api_key,
    too_many_failed_keys,
)
from service.web.compat import ratelimit
from service.web.compat.akismet import text_windows
from service.web.context import current_runtime
from service.web.error_handlers import error_body
from service.web.openapi import Part, error_response, json_response
from service.web.validation import field_errors, read_json_object

logger = logging.getLogger(__name__)

bp = Blueprint("coral", __name__, url_prefix="/coral/v1")

#: The key scope the phase needs: it stores comments, as ``POST /v1/comments`` does.
SCOPE = "comments"
SIGNATURE_HEADER = "X-Coral-Signature"
USAGE_ENDPOINT = "coral:phase"
#: Prefix of the ``external_id`` of a comment stored from a phase request (then the body's SHA-256).
EXTERNAL_ID_PREFIX = "coral-sha256:"
FLAG_SPAM = {"actionType": "FLAG", "reason": "COMMENT_DETECTED_SPAM"}
FLAG_TOXIC = {"actionType": "FLAG", "reason": "COMMENT_DETECTED_TOXIC"}
_HTTP_URL = re.compile(r"(?i)^https?://[^\s/]+")


class SignatureRejected(Unauthorized):
    code = "invalid_signature"


class PhaseNotConfigured(ServiceError):
    status = 503
    code = "coral_not_configured"


# --- the request ---------------------------------------------------------------------------------


def _no_lone_surrogate(value: str) -> str:
    if re.search(r"[\ud800-\udfff]", value):
        raise ValueError("contains invalid Unicode (a lone surrogate)")
    return value


_VALID_UNICODE = AfterValidator(_no_lone_surrogate)
# JSON strings only (strict: never a number or a boolean coerced to one), bounded, valid Unicode.
#: The comment body; MAX_BODY_BYTES bounds it, and a long one is scored in windows.
BodyText = Annotated[str, StringConstraints(strict=True, max_length=1_000_000), _VALID_UNICODE]
Identifier = Annotated[str, StringConstraints(strict=True, min_length=1, max_length=200), _VALID_UNICODE]
Role = Annotated[str, StringConstraints(strict=True, min_length=1, max_length=50), _VALID_UNICODE]
StoryUrl = Annotated[str, StringConstraints(strict=True, max_length=2000), _VALID_UNICODE]
Domain = Annotated[str, StringConstraints(strict=True, min_length=1, max_length=255), _VALID_UNICODE]


class _Part(BaseModel):
    # Coral may add fields in a later version; what we do not read must not break the phase.
    model_config = ConfigDict(extra="ignore", strict=True)


class CoralComment(_Part):
    body: BodyText
    parentID: Identifier | None = None  # noqa: N815 - Coral's field names


class CoralAuthor(_Part):
    id: Identifier
    role: Role


class CoralStory(_Part):
    id: Identifier
    url: StoryUrl


class CoralSite(_Part):
    id: Identifier


class PhaseRequest(_Part):
    """What Coral sends (``ExternalModerationRequest`` in ``phases/external.ts``)."""

    action: Literal["NEW", "EDIT"]
    comment: CoralComment
    author: CoralAuthor
    story: CoralStory
    site: CoralSite
    tenantID: Identifier  # noqa: N815
    tenantDomain: Domain  # noqa: N815


# --- errors, in the service's JSON shape -----------------------------------------------------------


@bp.errorhandler(ServiceError)
def _service_error(error: ServiceError) -> tuple[Response, int, dict[str, str]]:
    return jsonify(error_body(error.code, error.message, error.fields)), error.status, error.headers


@bp.errorhandler(ratelimit.RateLimited)
def _rate_limited(error: ratelimit.RateLimited) -> tuple[Response, int, dict[str, str]]:
    limited = TooManyRequests(
        f"This API key is limited to {error.limit} requests; retry after {error.retry_after} s.",
        headers={"Retry-After": str(error.retry_after)},
    )
    return _service_error(limited)


@bp.errorhandler(HTTPException)
def _http_error(error: HTTPException) -> tuple[Response, int]:
    code = "payload_too_large" if error.code == 413 else (error.name or "error").lower().replace(" ", "_")
    return jsonify(error_body(code, error.description or error.name)), error.code or 400


# --- key and signature ---------------------------------------------------------------------------


def _authenticate() -> ApiKey:
    """The key from ``?key=``: Coral's phase settings are a URL and a signing secret, nothing else."""
    try:
        return authenticate_api_key(request.args.get("key"), SCOPE)
    except MissingKey:
        raise Unauthorized("Put your API key in the phase URL: /coral/v1/phase?key=<key>.") from None
    except InvalidKey:
        raise Unauthorized("The API key is not valid.") from None
    except TooManyFailedKeys as error:
        raise too_many_failed_keys(error) from None
    except MissingScope:
        raise Forbidden(f"This API key lacks the '{SCOPE}' scope.") from None


def header_signatures(header: str) -> list[str]:
    """The ``sha256=`` values of an ``X-Coral-Signature`` header (Coral joins several with ``,``)."""
    values = []
    for element in header.split(","):
        prefix, _, value = element.strip().partition("=")
        if prefix == "sha256" and value:
            values.append(value.strip().lower())
    return values


def sign(secret: str, body: bytes) -> str:
    """The signature Coral sends for ``body`` with ``secret``: hex HMAC-SHA256 of the raw body."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def signature_matches(secrets: Sequence[str], header: str, body: bytes) -> bool:
    """Whether any signature in the header is the body's HMAC under any of our secrets (constant time)."""
    sent = header_signatures(header)
    expected = [sign(secret, body) for secret in secrets]
    # Every pair is compared, so the time taken does not depend on where a match is.
    matched = False
    for value in sent:
        for candidate in expected:
            matched |= hmac.compare_digest(value.encode(), candidate.encode())
    return matched


def _verify_signature(secrets: Sequence[str], body: bytes) -> None:
    if not secrets:
        raise PhaseNotConfigured(
            "No Coral signing secret is configured here: set CORAL_SIGNING_SECRET to the phase's secret."
        )
    header = request.headers.get(SIGNATURE_HEADER, "")
    if not header_signatures(header):
        raise SignatureRejected(f"Missing {SIGNATURE_HEADER} header (sha256=<hex HMAC of the body>).")
    if not signature_matches(secrets, header, body):
        raise SignatureRejected(f"{SIGNATURE_HEADER} does not match the body and the signing secret.")


def _parse(body: dict[str, Any]) -> PhaseRequest:
    try:
        return PhaseRequest.model_validate(body)
    except ValidationError as error:
        raise InvalidComment("Some fields are missing or invalid.", field_errors(error)) from None


# --- the decision --------------------------------------------------------------------------------


def phase_answer(status: str, reason: str | None) -> dict[str, Any] | None:
    """Our verdict in Coral's ``ExternalModerationResponse`` shape; None for "no opinion" (204)."""
    if status == APPROVED:
        return None
    if status == REJECTED:
        flag = FLAG_SPAM if reason in SPAM_REASONS else FLAG_TOXIC
        return {"status": "REJECTED", "actions": [flag]}
    if status == HELD and reason not in (None, UNSCORED) and not reason.startswith("moderator_"):
        # Too many links is a spam signal; Coral's external schema has no links reason.
        flag = FLAG_SPAM if reason in (SPAM_HOLD, TOO_MANY_LINKS) else FLAG_TOXIC
        return {"status": "SYSTEM_WITHHELD", "actions": [flag]}
    # Unscored, still pending, or held by a person: pre-moderation, with nothing detected to flag.
    return {"status": "PREMOD"}


def _answer(answer: dict[str, Any] | None, headers: Mapping[str, str]) -> Response:
    if answer is None:
        response = Response(status=204)
    else:
        response = jsonify(answer)
    response.headers.update(headers)
    return response


def _classifier_comments(text: str) -> list[ClassifierComment]:
    # Coral sends no name, e-mail or URL: the author is an id, which says nothing about spam.
    return [ClassifierComment(text=window) for window in text_windows(text)]


@dataclass(frozen=True)
class Scored:
    """The worst window's score per attribute, and the reasons when the text was scored whole."""

    scores: dict[str, float]
    explanations: list[dict[str, Any]]
    model_version: str | None


def _score(runtime: Runtime, text: str) -> Scored | None:
    comments = _classifier_comments(text)
    # Reasons (the terms moderators see highlighted) cost about 0.2 ms; their character spans are
    # only right for a text scored whole, not for windows of it.
    batch = runtime.models.score_synchronously(comments, explain=len(comments) == 1)
    if batch.scores is None:
        logger.error("coral phase unscored error=%s", batch.error)
        return None
    # Per attribute the worst window: one bad part makes the comment bad.
    names = batch.scores[0].values
    scores = {name: max(score.values[name] for score in batch.scores) for name in names}
    explanations = [reason.to_dict() for reason in batch.scores[0].reasons] if len(comments) == 1 else []
    return Scored(scores, explanations, batch.model_version)


def _comment_fields(phase: PhaseRequest, external_id: str) -> dict[str, Any]:
    url = phase.story.url.strip()
    return {
        "external_id": external_id,
        "post_id": phase.story.id,
        "permalink": url if _HTTP_URL.match(url) and len(url) <= 2000 else None,
        "parent_id": phase.comment.parentID,
        # Coral sends an author id, no name or e-mail. One stable pseudonymous address per Coral user
        # and tenant keeps "this author's other comments" meaning the same person here.
        "name": f"Coral user {phase.author.id}"[:200],
        "email": f"{_address_part(phase.author.id)}@{_address_part(phase.tenantDomain)}.coral.invalid"[:320],
        "text": phase.comment.body,
        "meta": {
            "coral": {
                "action": phase.action,
                "author_id": phase.author.id,
                "author_role": phase.author.role,
                "story_id": phase.story.id,
                "site_id": phase.site.id,
                "tenant_id": phase.tenantID,
                "tenant_domain": phase.tenantDomain,
            }
        },
    }


def _address_part(value: str) -> str:
    return re.sub(r"[^A-Za-z0-9.-]", "-", value)[:100] or "unknown"


@dataclass(frozen=True)
class Outcome:
    """What became of a phase request here: the stored comment (if any) and the status it answers."""

    comment_id: str | None
    status: str
    reason: str
    created: bool


def _record(runtime: Runtime, api_key: ApiKey, phase: PhaseRequest, external_id: str) -> Outcome:
    """Score the comment, then store it with its verdict in one transaction (one commit).

    Scoring first costs a replay a millisecond of scoring, and saves every new comment a second
    transaction: stored pending and then decided, a comment cost two commits and, on SQLite, two
    connections with their WAL checkpoints. Either way it is committed before the answer.
    """
    scored = _score(runtime, phase.comment.body)
    scores = scored.scores if scored is not None else None
    # The policy counts links in the whole text; an HTML body's <a href> anchors count once each.
    verdict = apply_policy(scores, phase.comment.body, runtime.settings.thresholds)
    decided = StatusUpdate(
        status=verdict.status,
        reason=verdict.reason,
        actor=f"model:{scored.model_version}" if scored is not None else "system:scorer",
        scores=scores,
        explanations=scored.explanations if scored is not None else None,
        model_version=scored.model_version if scored is not None else None,
        uncertainty=uncertainty(scores, runtime.settings.thresholds) if scores is not None else None,
    )
    try:
        with runtime.session() as session:
            comment, change = create_decided_comment(
                session, api_key, _comment_fields(phase, external_id), decided
            )
    except SQLAlchemyError as error:
        logger.error("coral phase not stored key=%s error=%s (held)", api_key.id, type(error).__name__)
        return Outcome(None, HELD, UNSCORED, False)
    if change is None:
        # The same signed body again (a replay, or Coral sending an identical comment): the decision
        # recorded for it, which may by now be a moderator's.
        return Outcome(comment.id, comment.status, comment.reason or UNSCORED, False)
    if change.delivery is not None:
        jobs.after_commit(runtime, [change])
    return Outcome(comment.id, comment.status, verdict.reason, True)


HOLD_HEADERS = {"X-Moderation-Status": HELD, "X-Moderation-Reason": UNSCORED}


@bp.post("/phase")
def phase() -> Response:
    runtime = current_runtime()
    raw = request.get_data(cache=True)
    try:
        api_key = _authenticate()
    except SQLAlchemyError as error:
        # The key cannot be looked up (database down, key not cached). A valid signature still
        # proves the request is Coral's, and a hold is the one answer that cannot publish anything.
        _verify_signature(runtime.settings.coral_signing_secrets, raw)
        logger.error("coral phase key not checked error=%s (held)", type(error).__name__)
        return _answer(phase_answer(HELD, UNSCORED), HOLD_HEADERS)
    # The signature covers the raw bytes, so it is checked before the body is parsed at all; and
    # before the rate limit, so that someone who has only the phase URL cannot use up the key's
    # allowance and make Coral skip the phase for real comments.
    _verify_signature(runtime.settings.coral_signing_secrets, raw)
    ratelimit.enforce_rate_limit(api_key, runtime.settings)
    phase_request = _parse(read_json_object(request))
    external_id = EXTERNAL_ID_PREFIX + hashlib.sha256(raw).hexdigest()
    outcome = _record(runtime, api_key, phase_request, external_id)
    ratelimit.count_usage(runtime, api_key, USAGE_ENDPOINT)
    logger.info(
        "coral phase key=%s action=%s comment=%s status=%s reason=%s created=%s",
        api_key.id,
        phase_request.action,
        outcome.comment_id,
        outcome.status,
        outcome.reason,
        outcome.created,
    )
    headers = {"X-Moderation-Status": outcome.status, "X-Moderation-Reason": outcome.reason}
    if outcome.comment_id is not None:
        headers["X-Moderation-Comment"] = outcome.comment_id
    return _answer(phase_answer(outcome.status, outcome.reason), headers)


# --- the contract --------------------------------------------------------------------------------


def _string(min_length: int, max_length: int) -> dict[str, Any]:
    return {"type": "string", "minLength": min_length, "maxLength": max_length}


def _object(required: list[str], properties: dict[str, Any]) -> dict[str, Any]:
    # Coral may add fields in a later version: unknown ones are ignored, as the models do.
    return {"type": "object", "required": required, "properties": properties}


def _phase_request_schema() -> dict[str, Any]:
    identifier = _string(1, 200)
    return _object(
        ["action", "comment", "author", "story", "site", "tenantID", "tenantDomain"],
        {
            "action": {"type": "string", "enum": ["NEW", "EDIT"]},
            "comment": _object(
                ["body"],
                {"body": _string(0, 1_000_000), "parentID": {"anyOf": [identifier, {"type": "null"}]}},
            ),
            "author": _object(["id", "role"], {"id": identifier, "role": _string(1, 50)}),
            "story": _object(["id", "url"], {"id": identifier, "url": _string(0, 2000)}),
            "site": _object(["id"], {"id": identifier}),
            "tenantID": identifier,
            "tenantDomain": _string(1, 255),
        },
    )


def openapi_part() -> Part:
    """``POST /coral/v1/phase``: Coral's external moderation phase, signed by Coral."""
    flag = {
        "type": "object",
        "required": ["actionType", "reason"],
        "properties": {
            "actionType": {"const": "FLAG"},
            "reason": {"enum": [FLAG_SPAM["reason"], FLAG_TOXIC["reason"]]},
        },
    }
    status_headers = {
        "X-Moderation-Status": {"description": "Our verdict.", "schema": {"type": "string"}},
        "X-Moderation-Reason": {"description": "Why.", "schema": {"type": "string"}},
    }
    return {
        "components": {
            "securitySchemes": {
                "coralKey": {"type": "apiKey", "in": "query", "name": "key"},
                "coralSignature": {
                    "type": "apiKey",
                    "in": "header",
                    "name": SIGNATURE_HEADER,
                    "description": "sha256=<hex HMAC-SHA256 of the raw body> under the phase's signing "
                    "secret (CORAL_SIGNING_SECRET); several joined by ',' while a secret rotates.",
                },
            },
            "schemas": {"CoralPhaseRequest": _phase_request_schema()},
        },
        "paths": {
            f"{bp.url_prefix}/phase": {
                "post": {
                    "summary": "Coral (talk v7+) external moderation phase",
                    "description": "Scores and stores the comment, and answers in Coral's "
                    "ExternalModerationResponse shape. The same signed body again gets the decision "
                    "already recorded. Approved is 204 (no opinion); unscored is PREMOD.",
                    "security": [{"coralKey": [], "coralSignature": []}],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/CoralPhaseRequest"}}
                        },
                    },
                    "responses": {
                        "200": json_response(
                            "Rejected, withheld or pre-moderated.",
                            {
                                "type": "object",
                                "required": ["status"],
                                "properties": {
                                    "status": {"enum": ["REJECTED", "SYSTEM_WITHHELD", "PREMOD"]},
                                    "actions": {"type": "array", "items": flag},
                                },
                            },
                            status_headers,
                        ),
                        "204": {
                            "description": "Approved: no opinion, Coral's settings apply.",
                            "headers": status_headers,
                        },
                        "400": error_response("The body is not valid JSON."),
                        "401": error_response("No key or signature, or one that is not valid."),
                        "403": error_response(f"An API key without the '{SCOPE}' scope."),
                        "413": error_response("The body is too large."),
                        "415": error_response("The body is not application/json."),
                        "422": error_response("A field is missing or not valid ('fields' names each)."),
                        "429": error_response("The key's rate limit, or too many keys that are not valid."),
                        "503": error_response("No signing secret is configured here."),
                    },
                }
            }
        },
    }
