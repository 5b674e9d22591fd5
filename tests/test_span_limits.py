"""Perspective span annotations are bounded and paid for (issue #12, finding 5)."""

from __future__ import annotations

from service.keys import SCOPES, create_api_key
from service.web.compat.perspective import MAX_COMMENT_BYTES, MAX_SPANS, SPANS_PER_EXTRA_UNIT

ANALYZE = "/v1alpha1/comments:analyze"
#: 20 KB of one-word sentences: about 6,800 of them.
MANY_SENTENCES = ("Ok. " * (MAX_COMMENT_BYTES // 4)).strip()


def analyze(client, secret: str, text: str, spans: bool = True):  # noqa: ANN001, ANN201
    body = {
        "comment": {"text": text},
        "requestedAttributes": {"TOXICITY": {}, "INSULT": {}, "SPAM": {}},
        "spanAnnotations": spans,
    }
    return client.post(f"{ANALYZE}?key={secret}", json=body)


def test_spans_are_bounded_and_still_cover_the_whole_text(client, api_key):
    response = analyze(client, api_key.secret, MANY_SENTENCES)
    assert response.status_code == 200
    for attribute in response.get_json()["attributeScores"].values():
        spans = attribute["spanScores"]
        assert 1 < len(spans) <= MAX_SPANS
        assert spans[0]["begin"] == 0 and spans[-1]["end"] == len(MANY_SENTENCES)
        assert all(left["end"] < right["begin"] for left, right in zip(spans, spans[1:], strict=False))
    assert len(response.get_data()) < 50_000  # was 5 MB for one request


def test_span_requests_are_charged_by_what_they_cost(client, runtime):
    # One span request with MAX_SPANS spans costs 1 + MAX_SPANS / SPANS_PER_EXTRA_UNIT units.
    allowance = 1 + MAX_SPANS // SPANS_PER_EXTRA_UNIT
    with runtime.session() as session:
        secret = create_api_key(session, "spans", SCOPES, rate_limit=f"{allowance}/minute").secret
    assert analyze(client, secret, MANY_SENTENCES).status_code == 200
    throttled = analyze(client, secret, "Hello there.", spans=False)
    assert throttled.status_code == 429
    assert throttled.get_json()["error"]["status"] == "RESOURCE_EXHAUSTED"


def test_a_plain_request_costs_one_unit(client, runtime):
    with runtime.session() as session:
        secret = create_api_key(session, "plain", SCOPES, rate_limit="3/minute").secret
    statuses = [analyze(client, secret, MANY_SENTENCES, spans=False).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
