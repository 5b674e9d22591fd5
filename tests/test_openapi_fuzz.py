"""Schemathesis against our own OpenAPI document: no generated request gets a 5xx (issue #12).

Bounded (``MAX_EXAMPLES`` per operation and generation mode) so that it runs in `make test` in well
under a minute. It runs in-process through WSGI against the real Redis and databases, with a real
API key, derandomized so that CI runs the same examples each time. (Schemathesis's pytest plugin
does not run under pytest 9, so hypothesis drives each operation's strategy here.)
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

MAX_EXAMPLES = 50


def operations(app):  # noqa: ANN001, ANN201
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app)
    return [result.ok() for result in schema.get_all_operations()]


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_generated_request_gets_a_server_error(app, api_key, mode):  # noqa: ANN001
    found = operations(app)
    assert len(found) >= 4
    statuses: list[int] = []
    for operation in found:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
            derandomize=True,
        )
        def check(case) -> None:  # noqa: ANN001
            response = case.call(headers=api_key.headers)
            statuses.append(response.status_code)
            case.validate_response(response, checks=[not_a_server_error])

        try:
            check()
        except Unsatisfiable:
            # An operation with no input at all (GET /healthz) has no invalid request to make.
            assert mode == GenerationMode.NEGATIVE, operation.label
    assert len(statuses) > 2 * len(found)  # the requests were made
    if mode == GenerationMode.NEGATIVE:
        assert any(400 <= status < 500 for status in statuses)
