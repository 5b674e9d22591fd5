"""Schemathesis against our own OpenAPI document, with every check (issue #12, finding 10).

Every public operation (the CMS API, the moderation API, Perspective, Akismet, the health checks)
is fuzzed with valid and with invalid requests, and each answer goes through all of schemathesis's
checks: no 5xx, status codes, content types, headers and bodies as documented, every valid request
accepted, every invalid one refused, and authentication enforced where it is declared.

Bounded (``MAX_EXAMPLES`` per operation and generation mode) so that the file runs in `make test`
in well under three minutes; derandomized, so that CI runs the same examples each time. It runs
in-process through WSGI against the real Redis and databases, with a real API key given through
schemathesis's own auth configuration (so its checks know the key is a real one). Schemathesis's
pytest plugin does not run under pytest 9, so hypothesis drives each operation's strategy here.
"""

from __future__ import annotations

import copy
import dataclasses

import pytest
import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.config import SchemathesisConfig
from schemathesis.core.failures import FailureGroup
from schemathesis.openapi.checks import RejectedPositiveData
from schemathesis.specs.openapi.checks import ignored_auth, negative_data_rejection, positive_data_acceptance

from service.settings import Settings

MAX_EXAMPLES = 15
BEARER_SCHEMES = ("bearerKey",)
QUERY_KEY_SCHEMES = ("perspectiveKey", "googApiKey", "akismetApiKey", "akismetKey")
EVERY_OPERATION = {
    "POST /v1/comments",
    "GET /v1/comments/{comment_id}",
    "GET /v1/queues/{name}",
    "POST /v1/comments/{comment_id}/decision",
    "POST /v1alpha1/comments:analyze",
    "POST /v1alpha1/comments:suggestscore",
    "POST /1.1/verify-key",
    "POST /1.1/comment-check",
    "POST /1.1/submit-spam",
    "POST /1.1/submit-ham",
    "GET /1.1/test",
    "POST /1.1/test",
    "GET /1.1/get-subscription",
    "POST /1.1/get-subscription",
    "GET /1.2/usage-limit",
    "POST /1.2/usage-limit",
    "GET /healthz",
    "GET /readyz",
}  # and GET /openapi.json, which schemathesis leaves out: it is the document it was loaded from

NO_INPUT = {"GET /healthz", "GET /readyz", "GET /1.1/test", "POST /1.1/test"}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # The rate limits have tests of their own; here they would only turn answers into 429s. A
    # short MAX_WAIT_SECONDS keeps ?wait= from making each request wait for a worker that is not
    # running (the document's maximum follows it).
    return dataclasses.replace(
        settings, rate_limit="1000000/second", failed_key_limit="1000000/minute", max_wait_seconds=0.05
    )


def load_schema(app, secret: str, document: dict | None = None):  # noqa: ANN001, ANN201
    """The app's document (or ``document``, sent to the app), with the key for every scheme."""
    schemes = {name: {"bearer": secret} for name in BEARER_SCHEMES}
    schemes.update({name: {"api_key": secret} for name in QUERY_KEY_SCHEMES})
    config = SchemathesisConfig.from_dict({"auth": {"openapi": schemes}})
    if document is None:
        return schemathesis.openapi.from_wsgi("/openapi.json", app, config=config)
    schema = schemathesis.openapi.from_dict(document, config=config)
    schema.app = app
    return schema


def fuzz(operation, mode: GenerationMode, statuses: dict[str, list[int]]) -> None:  # noqa: ANN001
    """Up to ``MAX_EXAMPLES`` requests to ``operation``, each answer through every check."""

    @given(case=operation.as_strategy(generation_mode=mode))
    @hypothesis_settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
        derandomize=True,
    )
    def check(case) -> None:  # noqa: ANN001
        response = case.call()
        statuses.setdefault(operation.label, []).append(response.status_code)
        # No `checks=`: schemathesis 4 then runs every check its configuration enables (all).
        case.validate_response(response, excluded_checks=excluded_checks(operation.path, response))

    try:
        check()
    except Unsatisfiable:
        # An operation with no input at all (GET /healthz) has no invalid request to make.
        assert mode == GenerationMode.NEGATIVE, operation.label


def excluded_checks(operation_path: str, response) -> list:  # noqa: ANN001
    """Checks that cannot apply to this answer, each for a reason a JSON Schema cannot express."""
    excluded = []
    if operation_path.startswith(("/1.1/", "/1.2/", "/v1alpha1/")):
        # The protocols answer key problems outside 401/403: Akismet with HTTP 200 "invalid" (and
        # X-akismet-debug-help), Google with 400 API_KEY_INVALID. tests/test_akismet.py and
        # tests/test_perspective.py check those answers; this check would call them a bypass.
        excluded.append(ignored_auth)
    if (
        operation_path.startswith(("/1.1/", "/1.2/"))
        and response.text == "invalid"
        and "x-akismet-debug-help" in response.headers  # lower-cased by schemathesis
    ):
        # A request without its key is schema-violating (the key is required), and Akismet answers
        # it HTTP 200 "invalid": its clients read the body, not the status.
        excluded.append(negative_data_rejection)
    if response.status_code in (400, 422) and _refused_for_what_no_schema_says(response):
        excluded.append(positive_data_acceptance)
    return excluded


def _refused_for_what_no_schema_says(response) -> bool:  # noqa: ANN001
    """A valid-looking request refused for a reason the document cannot give schemathesis:

    * the language a text is in (only English is scored);
    * a cursor that no page handed out (cursors are opaque);
    * a score range without the attribute it applies to (query parameters cannot depend on each
      other in OpenAPI);
    * a text with no visible character: the document says so exactly, ``[^\\p{M}\\p{C}\\p{Z}]``,
      but schemathesis generates from an approximation of those classes (a few blocks of marks,
      ASCII spaces and C0/C1 controls), so it takes, say, an unassigned code point for visible.
    """
    try:
        body = response.json()
    except ValueError:
        return False
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return False
    details = error.get("details") or []
    if any(detail.get("errorType") == "LANGUAGE_NOT_SUPPORTED_BY_ATTRIBUTE" for detail in details):
        return True
    fields = error.get("fields") or {}
    return fields in (
        {"cursor": fields.get("cursor")},
        {"attribute": "choose the attribute the score range applies to"},
        {"text": "must contain visible characters, not only spaces or invisible marks"},
    )


def test_the_document_describes_every_public_operation(app, api_key):  # noqa: ANN001
    schema = load_schema(app, api_key.secret)
    labels = {result.ok().label for result in schema.get_all_operations()}
    assert labels == EVERY_OPERATION


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_every_operation_passes_every_check(app, api_key, mode):  # noqa: ANN001
    schema = load_schema(app, api_key.secret)
    statuses: dict[str, list[int]] = {}
    for result in schema.get_all_operations():
        fuzz(result.ok(), mode, statuses)
    # Every operation was called (those without any input have no invalid request to make).
    assert set(statuses) == EVERY_OPERATION - (NO_INPUT if mode == GenerationMode.NEGATIVE else set())
    if mode == GenerationMode.POSITIVE:
        # Valid requests were scored and stored, not just refused.
        assert any(status in (200, 201, 202) for status in statuses["POST /v1/comments"])
        assert 200 in statuses["POST /v1alpha1/comments:analyze"]
    else:
        assert any(400 <= status < 500 for status in statuses["POST /v1/comments"])


def test_the_checks_catch_a_document_looser_than_the_code(app, client, api_key):  # noqa: ANN001
    """The issue's own example: with no maximum on ``wait``, valid-looking requests get 422."""
    document = copy.deepcopy(client.get("/openapi.json").get_json())
    (wait,) = document["paths"]["/v1/comments"]["post"]["parameters"]
    del wait["schema"]["maximum"]
    schema = load_schema(app, api_key.secret, document)
    operation = schema["/v1/comments"]["POST"]
    with pytest.raises(FailureGroup) as caught:
        fuzz(operation, GenerationMode.POSITIVE, {})
    assert {type(failure) for failure in caught.value.exceptions} == {RejectedPositiveData}
