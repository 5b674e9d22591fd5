"""An Akismet-compatible endpoint (REST API 1.1/1.2), for WordPress and every other Akismet client.

Answers are Akismet's: plain-text ``true``/``false``/``valid``/``invalid``, ``X-akismet-pro-tip:
discard`` for comments our policy rejects outright, and ``invalid`` with ``X-akismet-debug-help``
(still HTTP 200, as Akismet does) for key problems. Scores come from the same models and the same
policy as ``/v1``.

When no comment can be scored (no model, or scoring failed), comment-check answers HTTP 503 rather
than ``false`` or ``true``: ``false`` would publish an unchecked comment and ``true`` would bury a
probably good one in the spam folder, while an error makes clients fall back to their own safe path
(the WordPress plugin holds the comment in the moderation queue and retries the check later).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from classifier.comment import Comment as ClassifierComment
from service.db import APPROVED, REJECTED, ApiKey
from service.labels import record_label
from service.policy import AKISMET_TEST, apply_policy
from service.web.auth import KeyRejected, MissingKey, MissingScope, TooManyFailedKeys, authenticate_api_key
from service.web.compat import ratelimit
from service.web.context import current_runtime
from service.web.error_handlers import http_error_headers
from service.web.openapi import Part, json_response
from service.web.validation import MAX_TEXT_CHARS, contains_lone_surrogate

logger = logging.getLogger(__name__)

bp = Blueprint("akismet", __name__)

SUBMISSION_THANKS = "Thanks for making the web a better place."
#: Akismet's documented test values.
TEST_SPAM_AUTHOR = "viagra-test-123"
TEST_SPAM_EMAIL = "akismet-guaranteed-spam@example.com"
#: A Host of ``{key}.rest.akismet.com`` carries the key (Akismet's original key-in-hostname form).
KEY_HOST_SUFFIX = ".rest.akismet.com"
#: Endpoints that count as API calls for usage-limit (Akismet counts comment checks).
CHECK_ENDPOINT = "akismet:comment-check"


class AkismetError(Exception):
    """An answer in Akismet's shape: a short text body plus ``X-akismet-debug-help``."""

    def __init__(
        self, body: str, help_text: str, status: int = 200, headers: Mapping[str, str] | None = None
    ):
        super().__init__(help_text)
        self.body = body
        self.help_text = help_text
        self.status = status
        self.headers = dict(headers or {})


def _text(body: str, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    response = Response(body, status=status, mimetype="text/plain")
    response.headers.update(headers or {})
    return response


@bp.errorhandler(AkismetError)
def _akismet_error(error: AkismetError) -> Response:
    return _text(error.body, error.status, {"X-akismet-debug-help": error.help_text, **error.headers})


@bp.errorhandler(ratelimit.RateLimited)
def _rate_limited(error: ratelimit.RateLimited) -> Response:
    return _akismet_error(
        AkismetError(
            "throttled",
            f"This API key is limited to {error.limit} requests; retry after {error.retry_after} s.",
            429,
            {"Retry-After": str(error.retry_after)},
        )
    )


@bp.errorhandler(HTTPException)
def http_error(error: HTTPException) -> Response:
    """Any HTTP error in Akismet's shape; also the app's answer to a 404 or 405 under ``/1.1/``."""
    help_text = error.description or error.name
    return _akismet_error(AkismetError("invalid", help_text, error.code or 400, http_error_headers(error)))


@bp.errorhandler(Exception)
def _unexpected(error: Exception) -> Response:
    logger.exception("akismet unhandled error path=%s", request.path)
    return _akismet_error(AkismetError("error", "Internal error; try again later.", 500))


# --- request fields and keys ---------------------------------------------------------------------


def _fields() -> dict[str, str]:
    """Form-encoded (or JSON) body, plus query parameters; every value as a string."""
    fields: dict[str, str] = dict(request.args.items())
    if request.is_json:
        try:
            body = json.loads(request.get_data(cache=True) or b"{}")
        except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: nested too deep
            raise AkismetError("invalid", "The JSON body could not be parsed.", 400) from None
        if not isinstance(body, dict):
            raise AkismetError("invalid", "The JSON body must be an object of fields.", 400)
        if contains_lone_surrogate(body):
            raise AkismetError("invalid", "A JSON string holds a lone surrogate (invalid Unicode).", 400)
        for name, value in body.items():
            if isinstance(value, bool):
                fields[name] = "1" if value else "0"
            elif isinstance(value, str | int | float):
                fields[name] = str(value)
    else:
        fields.update(request.form.items())
    return fields


def _host_key() -> str | None:
    # The raw header: werkzeug's request.host rejects the "_" that URL-safe keys may contain.
    host = request.headers.get("Host", "")
    host = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    # Keys are case-sensitive, so only the suffix is compared case-insensitively.
    if host.lower().endswith(KEY_HOST_SUFFIX):
        return host[: -len(KEY_HOST_SUFFIX)] or None
    return None


def _secret(fields: Mapping[str, str], *names: str) -> str | None:
    for name in names:
        if fields.get(name):
            return fields[name]
    return _host_key()


def _authenticate(fields: Mapping[str, str], scope: str, *names: str) -> ApiKey:
    """The key from the named fields (default ``api_key``) or the Host, answered as Akismet does."""
    secret = _secret(fields, *(names or ("api_key",)))
    try:
        api_key = authenticate_api_key(secret, scope)
    except MissingKey:
        raise AkismetError("invalid", f'Empty "{names[0] if names else "api_key"}" value') from None
    except MissingScope:
        raise AkismetError("invalid", f"This API key lacks the '{scope}' scope needed here.") from None
    except TooManyFailedKeys as error:
        raise AkismetError(
            "throttled",
            "Too many keys that are not valid came from your address; retry later.",
            429,
            {"Retry-After": str(error.retry_after)},
        ) from None
    except KeyRejected:
        raise AkismetError("invalid", "We were unable to verify your API key.") from None
    return api_key


# --- endpoints -----------------------------------------------------------------------------------


@bp.post("/1.1/verify-key")
def verify_key() -> Response:
    # verify-key answers "invalid" for a key that cannot check comments, as Akismet does.
    _authenticate(_fields(), "analyze", "key", "api_key")
    return _text("valid")


def _test_verdict(fields: Mapping[str, str]) -> bool | None:
    """Akismet's test conventions, answered without the model."""
    if fields.get("comment_author", "").strip().lower() == TEST_SPAM_AUTHOR:
        return True
    if fields.get("comment_author_email", "").strip().lower() == TEST_SPAM_EMAIL:
        return True
    if fields.get("user_role", "").strip().lower() == "administrator":
        return False
    honeypot = fields.get("honeypot_field_name", "").strip()
    if honeypot and fields.get(honeypot, "").strip():
        return True
    return None


#: A comment longer than the model's input (``MAX_TEXT_CHARS``) is scored in windows this long that
#: overlap, each on its own, so that a short bad part is not diluted by the rest of a long comment.
WINDOW_CHARS = 2_000
WINDOW_OVERLAP_CHARS = 200


def text_windows(text: str) -> list[str]:
    """The whole text: itself if it fits the model's input, else overlapping windows of all of it.

    Akismet has no length limit and WordPress publishes every character, so every character is
    scored: 20,000 harmless characters must not carry an unseen spam or abusive tail past the check.
    (The body limit, ``MAX_BODY_BYTES``, bounds the number of windows.)
    """
    if len(text) <= MAX_TEXT_CHARS:
        return [text]
    step = WINDOW_CHARS - WINDOW_OVERLAP_CHARS
    return [text[start : start + WINDOW_CHARS] for start in range(0, len(text) - WINDOW_OVERLAP_CHARS, step)]


def _classifier_comments(fields: Mapping[str, str]) -> list[ClassifierComment]:
    """One classifier comment per window of the text, each with the same author fields."""
    language = fields.get("blog_lang", "").split(",")[0].strip() or None
    return [
        ClassifierComment(
            text=window,
            name=fields.get("comment_author", "")[:200],
            email=fields.get("comment_author_email", "")[:320],
            url=fields.get("comment_author_url", "")[:2000],
            language=language[:35] if language else None,
        )
        for window in text_windows(fields.get("comment_content", ""))
    ]


def _worst_scores(scores: list[Mapping[str, float]]) -> dict[str, float]:
    """Per attribute, the highest score of any window: one bad part makes the comment bad."""
    return {name: max(values[name] for values in scores) for name in scores[0]}


@bp.post("/1.1/comment-check")
def comment_check() -> Response:
    fields = _fields()
    api_key = _authenticate(fields, "analyze")
    runtime = current_runtime()
    ratelimit.enforce_rate_limit(api_key, runtime.settings)
    ratelimit.count_usage(runtime, api_key, CHECK_ENDPOINT)
    test_verdict = _test_verdict(fields)
    if test_verdict is not None:
        return _text("true" if test_verdict else "false", headers={"X-Moderation-Reason": AKISMET_TEST})
    batch = runtime.models.score_synchronously(_classifier_comments(fields))
    if batch.scores is None:
        logger.error("akismet comment-check unscored key=%s error=%s", api_key.id, batch.error)
        raise AkismetError(
            "unavailable",
            "The comment could not be checked (no scoring model); hold it and check again later.",
            503,
            {"Retry-After": "5"},
        )
    scores = _worst_scores([score.values for score in batch.scores])
    # The policy counts links in the whole text, as WordPress does.
    verdict = apply_policy(scores, fields.get("comment_content", ""), runtime.settings.thresholds)
    headers = {"X-Moderation-Status": verdict.status, "X-Moderation-Reason": verdict.reason}
    if verdict.status == REJECTED:
        headers["X-akismet-pro-tip"] = "discard"
    # Akismet is binary: anything our policy would not approve goes to the site's spam queue,
    # where a moderator can still rescue it; "false" would publish it.
    return _text("false" if verdict.status == APPROVED else "true", headers=headers)


def _submit(decision: str) -> Response:
    fields = _fields()
    api_key = _authenticate(fields, "submit")
    runtime = current_runtime()
    ratelimit.enforce_rate_limit(api_key, runtime.settings)
    with runtime.session() as session:
        record_label(
            session,
            source="akismet",
            decision=decision,
            text=fields.get("comment_content") or None,
            author_name=fields.get("comment_author", "")[:200] or None,
            author_email=fields.get("comment_author_email", "")[:320] or None,
            author_url=fields.get("comment_author_url", "")[:2000] or None,
            actor=f"api-key:{api_key.id}",
        )
        session.commit()
    ratelimit.count_usage(runtime, api_key, f"akismet:submit-{decision}")
    logger.info("akismet submit key=%s decision=%s", api_key.id, decision)
    return _text(SUBMISSION_THANKS)


@bp.post("/1.1/submit-spam")
def submit_spam() -> Response:
    return _submit("spam")


@bp.post("/1.1/submit-ham")
def submit_ham() -> Response:
    return _submit("ham")


@bp.route("/1.1/test", methods=["GET", "POST"])
def connectivity_test() -> Response:
    """The WordPress plugin's "can this site reach Akismet?" check, made before a key is entered."""
    return _text("connected")


@bp.route("/1.1/get-subscription", methods=["GET", "POST"])
def get_subscription() -> Response:
    """What WordPress's Akismet settings page asks for its account box: one active, unlimited plan."""
    fields = _fields()
    secret = _secret(fields, "key", "api_key")
    api_key = current_runtime().api_keys.find(secret) if secret else None
    if api_key is None or not api_key.has_scope("analyze"):
        # Akismet's own answer to a bad key; the plugin then shows its "invalid key" notice.
        return _text("invalid", headers={"X-akismet-debug-help": "We were unable to verify your API key."})
    return jsonify(
        {
            "account_id": api_key.id,
            "account_name": api_key.name,
            "account_type": "self-hosted",
            "status": "active",
            "next_billing_date": None,
            "limit_reached": False,
        }
    )


@bp.route("/1.2/usage-limit", methods=["GET", "POST"])
def usage_limit() -> Response:
    fields = _fields()
    api_key = _authenticate(fields, "analyze")
    runtime = current_runtime()
    ratelimit.enforce_rate_limit(api_key, runtime.settings)
    first_day = datetime.now(UTC).strftime("%Y-%m-01")
    usage = ratelimit.usage_since(runtime, api_key, (CHECK_ENDPOINT,), first_day)
    # Our limits are per second, not per month: there is no monthly cap to report.
    return jsonify(
        {
            "limit": "none",
            "usage": usage,
            "percentage": "0.00",
            "throttled": ratelimit.is_throttled(api_key, runtime.settings),
        }
    )


# --- the contract --------------------------------------------------------------------------------

#: The comment fields Akismet's clients send (all optional here; unknown fields are ignored).
COMMENT_FIELDS = (
    "blog",
    "user_ip",
    "user_agent",
    "referrer",
    "permalink",
    "comment_type",
    "comment_author",
    "comment_author_email",
    "comment_author_url",
    "comment_content",
    "comment_date_gmt",
    "comment_post_modified_gmt",
    "blog_lang",
    "blog_charset",
    "user_role",
    "is_test",
    "recheck_reason",
    "honeypot_field_name",
)
_KEY_NOTE = (
    "The key goes in the form field (or query parameter) named by the security scheme, or in the "
    "Host as {key}.rest.akismet.com. A key problem is answered HTTP 200 'invalid' with "
    "X-akismet-debug-help, as Akismet does."
)


def _plain(description: str, values: list[str] | None = None, headers: dict[str, Any] | None = None) -> dict:
    schema: dict[str, Any] = {"type": "string"}
    if values:
        schema["enum"] = values
    response: dict[str, Any] = {"description": description, "content": {"text/plain": {"schema": schema}}}
    if headers:
        response["headers"] = headers
    return response


def openapi_part() -> Part:
    """The Akismet REST API 1.1 (and 1.2's usage-limit) as WordPress and other clients call it."""
    header = {"schema": {"type": "string"}}
    debug = {"X-akismet-debug-help": {**header, "description": "Why the key or request was refused."}}
    verdict_headers = {
        "X-akismet-pro-tip": {**header, "description": "'discard': our policy rejects it outright."},
        "X-Moderation-Status": header,
        "X-Moderation-Reason": header,
        **debug,
    }
    form = {
        "application/x-www-form-urlencoded": {
            "schema": {
                "type": "object",
                "properties": {name: {"type": "string"} for name in COMMENT_FIELDS},
            }
        }
    }
    refused = {
        "400": _plain("'invalid': the JSON body could not be read.", ["invalid"], debug),
        "413": _plain("'invalid': the body is larger than the limit.", ["invalid"], debug),
        "429": _plain("'throttled': the key's rate limit, or too many keys that are not valid.", None, debug),
    }
    api_key = [{"akismetApiKey": []}]
    either_key = [{"akismetKey": []}, {"akismetApiKey": []}]

    def submit(decision: str) -> dict[str, Any]:
        return {
            "post": {
                "summary": f"Akismet: report a {decision} the filter got wrong (stored as a training label)",
                "description": _KEY_NOTE,
                "security": api_key,
                "requestBody": {"required": False, "content": form},
                "responses": {
                    "200": _plain(f"'{SUBMISSION_THANKS}', or 'invalid' for a key problem.", None, debug),
                    **refused,
                },
            }
        }

    def both(operation: dict[str, Any]) -> dict[str, Any]:
        return {"get": operation, "post": {**operation, "requestBody": {"required": False, "content": form}}}

    subscription = {
        "type": "object",
        "properties": {
            "account_id": {"type": "integer"},
            "account_name": {"type": "string"},
            "account_type": {"type": "string"},
            "status": {"type": "string"},
            "next_billing_date": {"type": "null"},
            "limit_reached": {"type": "boolean"},
        },
    }
    usage = {
        "type": "object",
        "properties": {
            "limit": {"type": "string"},
            "usage": {"type": "integer"},
            "percentage": {"type": "string"},
            "throttled": {"type": "boolean"},
        },
    }

    def json_or_invalid(description: str, schema: dict[str, Any]) -> dict[str, Any]:
        answer = json_response(description, schema, debug)
        answer["content"]["text/plain"] = {"schema": {"type": "string", "enum": ["invalid"]}}
        return answer

    return {
        "components": {
            "securitySchemes": {
                "akismetApiKey": {
                    "type": "apiKey",
                    "in": "query",
                    "name": "api_key",
                    "description": _KEY_NOTE,
                },
                "akismetKey": {"type": "apiKey", "in": "query", "name": "key", "description": _KEY_NOTE},
            }
        },
        "paths": {
            "/1.1/verify-key": {
                "post": {
                    "summary": "Akismet: check a key",
                    "description": _KEY_NOTE,
                    "security": either_key,
                    "requestBody": {"required": False, "content": form},
                    "responses": {
                        "200": _plain("'valid' or 'invalid'.", ["valid", "invalid"], debug),
                        **refused,
                    },
                }
            },
            "/1.1/comment-check": {
                "post": {
                    "summary": "Akismet: is this comment spam? ('true' or 'false')",
                    "description": "'false' only for a comment our policy approves; anything it would "
                    "hold or reject is 'true' (the site's spam queue). " + _KEY_NOTE,
                    "security": api_key,
                    "requestBody": {"required": False, "content": form},
                    "responses": {
                        "200": _plain(
                            "'true', 'false', or 'invalid' for a key problem.",
                            ["true", "false", "invalid"],
                            verdict_headers,
                        ),
                        **refused,
                        "503": _plain(
                            "'unavailable': no scoring model; hold the comment and check again later.",
                            ["unavailable"],
                            {**debug, "Retry-After": header},
                        ),
                    },
                }
            },
            "/1.1/submit-spam": submit("spam"),
            "/1.1/submit-ham": submit("ham"),
            "/1.1/test": {
                method: {
                    "summary": "Akismet: can this site reach the service? (no key needed)",
                    "security": [],
                    "responses": {"200": _plain("'connected'.", ["connected"])},
                }
                for method in ("get", "post")
            },
            "/1.1/get-subscription": both(
                {
                    "summary": "Akismet: the key's account (one active, unlimited plan)",
                    "description": _KEY_NOTE,
                    "security": either_key,
                    "responses": {
                        "200": json_or_invalid("The account, or 'invalid' for a key problem.", subscription),
                        **refused,
                    },
                }
            ),
            "/1.2/usage-limit": both(
                {
                    "summary": "Akismet: this month's comment checks (no monthly cap)",
                    "description": _KEY_NOTE,
                    "security": api_key,
                    "responses": {
                        "200": json_or_invalid("The usage, or 'invalid' for a key problem.", usage),
                        **refused,
                    },
                }
            ),
        },
    }
