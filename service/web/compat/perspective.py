"""A Perspective API (commentanalyzer v1alpha1) compatible endpoint, for Coral and other clients.

``POST /v1alpha1/comments:analyze?key=KEY`` scores a comment synchronously with the same models as
``/v1``; ``POST /v1alpha1/comments:suggestscore`` stores a moderator's correction as a training label.
Every answer, errors included, has Google's shapes, so a client only changes its endpoint URL and key.
"""

from __future__ import annotations

import json
import logging
import math
import re
import unicodedata
from collections.abc import Mapping
from typing import Any

from flask import Blueprint, Response, jsonify, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from classifier.comment import Comment as ClassifierComment
from service.db import ApiKey
from service.labels import DECISION_LABELS, record_label
from service.web.auth import InvalidKey, MissingKey, MissingScope, TooManyFailedKeys, authenticate_api_key
from service.web.compat import ratelimit
from service.web.context import current_runtime
from service.web.error_handlers import http_error_headers
from service.web.openapi import Part, json_response
from service.web.validation import contains_lone_surrogate

logger = logging.getLogger(__name__)

bp = Blueprint("perspective", __name__, url_prefix="/v1alpha1")

#: Perspective attribute names and the score each one reads.
ATTRIBUTES: dict[str, str] = {
    "TOXICITY": "toxicity",
    "SEVERE_TOXICITY": "severe_toxicity",
    "INSULT": "insult",
    "PROFANITY": "profanity",
    "THREAT": "threat",
    "IDENTITY_ATTACK": "identity_attack",
    "SPAM": "spam",
}
#: Moderation outcomes Coral sends to suggestscore instead of attribute names.
OUTCOMES = ("APPROVED", "DELETED")
SUPPORTED_LANGUAGES = ("en",)
#: Perspective's limit: 20 KB of text, counted in UTF-8 bytes.
MAX_COMMENT_BYTES = 20 * 1024

_ERROR_TYPE = "type.googleapis.com/google.commentanalyzer.v1alpha1.Error"
_ERROR_INFO = "type.googleapis.com/google.rpc.ErrorInfo"
_SERVICE = "commentanalyzer.googleapis.com"
_STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    405: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}


class PerspectiveError(Exception):
    """An error answered in Google's shape: ``{"error": {"code", "message", "status", "details"}}``."""

    def __init__(
        self,
        code: int,
        message: str,
        error_type: str | None = None,
        detail: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ):
        super().__init__(message)
        self.code = code
        self.message = message
        self.error_type = error_type
        self.detail = dict(detail or {})
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        error["status"] = _STATUS_NAMES.get(self.code, "UNKNOWN")
        details: list[dict[str, Any]] = []
        if self.error_type:
            details.append({"@type": _ERROR_TYPE, "errorType": self.error_type, **self.detail})
        elif self.detail:
            details.append(self.detail)
        if details:
            error["details"] = details
        return {"error": error}


def invalid_request(message: str) -> PerspectiveError:
    return PerspectiveError(400, message, "INVALID_REQUEST")


def _error_info(reason: str) -> dict[str, Any]:
    return {
        "@type": _ERROR_INFO,
        "reason": reason,
        "domain": "googleapis.com",
        "metadata": {"service": _SERVICE},
    }


@bp.errorhandler(PerspectiveError)
def _perspective_error(error: PerspectiveError) -> tuple[Response, int, dict[str, str]]:
    return jsonify(error.body()), error.code, error.headers


@bp.errorhandler(ratelimit.RateLimited)
def _rate_limited(error: ratelimit.RateLimited) -> tuple[Response, int, dict[str, str]]:
    quota = PerspectiveError(
        429,
        f"Quota exceeded: this API key may make {error.limit} requests.",
        detail=_error_info("RATE_LIMIT_EXCEEDED"),
        headers={"Retry-After": str(error.retry_after)},
    )
    return _perspective_error(quota)


@bp.errorhandler(HTTPException)
def http_error(error: HTTPException) -> tuple[Response, int, dict[str, str]]:
    """Any HTTP error in Google's shape; also the app's answer to a 404 or 405 under ``/v1alpha1/``."""
    if isinstance(error, RequestEntityTooLarge):
        return _perspective_error(PerspectiveError(400, "Comment text too long.", "COMMENT_TOO_LONG"))
    code = error.code if error.code in _STATUS_NAMES else 400
    message = error.description or error.name
    return _perspective_error(PerspectiveError(code, message, headers=http_error_headers(error)))


@bp.errorhandler(Exception)
def _unexpected(error: Exception) -> tuple[Response, int, dict[str, str]]:
    logger.exception("perspective unhandled error path=%s", request.path)
    return _perspective_error(PerspectiveError(500, "Internal error encountered."))


# --- keys ----------------------------------------------------------------------------------------


def _authenticate(scope: str) -> ApiKey:
    """The key from ``?key=`` (or the ``x-goog-api-key`` header), answered as Google's front end does."""
    secret = request.args.get("key") or request.headers.get("x-goog-api-key")
    try:
        api_key = authenticate_api_key(secret, scope)
    except MissingKey:
        raise PerspectiveError(
            403,
            "The request is missing a valid API key.",
            detail=_error_info("API_KEY_MISSING"),
        ) from None
    except InvalidKey:
        raise PerspectiveError(
            400, "API key not valid. Please pass a valid API key.", detail=_error_info("API_KEY_INVALID")
        ) from None
    except TooManyFailedKeys as error:
        raise PerspectiveError(
            429,
            "Quota exceeded: too many requests with keys that are not valid came from your address.",
            detail=_error_info("RATE_LIMIT_EXCEEDED"),
            headers={"Retry-After": str(error.retry_after)},
        ) from None
    except MissingScope:
        raise PerspectiveError(
            403,
            f"Requests from this API key to this method are blocked (it lacks the '{scope}' scope).",
            detail=_error_info("API_KEY_SERVICE_BLOCKED"),
        ) from None
    ratelimit.enforce_rate_limit(api_key, current_runtime().settings)
    return api_key


# --- request parsing -----------------------------------------------------------------------------


def _json_body() -> dict[str, Any]:
    # Google's front end reads only JSON bodies (any charset parameter is fine) and says so in a 400.
    if request.mimetype != "application/json":
        raise invalid_request(
            "Invalid JSON payload received: send the body with 'Content-Type: application/json'."
        )
    raw = request.get_data(cache=False)
    try:
        body = json.loads(raw or b"null")
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: nested too deep
        raise invalid_request("Invalid JSON payload received.") from None
    if not isinstance(body, dict):
        raise invalid_request("Invalid JSON payload received: the body must be a JSON object.")
    if contains_lone_surrogate(body):
        raise invalid_request("Invalid JSON payload received: a string holds a lone surrogate.")
    return body


def _optional(body: Mapping[str, Any], name: str, kind: type | tuple[type, ...], what: str) -> Any:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise invalid_request(f"Invalid value at '{name}': expected {what}.")
    return value


def _comment_text(body: Mapping[str, Any]) -> str:
    comment = _optional(body, "comment", dict, "an object")
    if comment is None:
        raise PerspectiveError(400, "Comment must be non-empty.", "COMMENT_EMPTY")
    text = _optional(comment, "text", str, "a string")
    comment_type = comment.get("type")
    if comment_type not in (None, "PLAIN_TEXT", "TEXT_TYPE_UNSPECIFIED"):
        raise invalid_request("Only PLAIN_TEXT comments are supported.")
    if not text or not text.strip():
        raise PerspectiveError(400, "Comment must be non-empty.", "COMMENT_EMPTY")
    if len(text.encode("utf-8", "surrogatepass")) > MAX_COMMENT_BYTES:
        raise PerspectiveError(
            400, f"Comment text too long: the limit is {MAX_COMMENT_BYTES} bytes.", "COMMENT_TOO_LONG"
        )
    return text


def _requested_attributes(body: Mapping[str, Any]) -> dict[str, float | None]:
    """Attribute name -> scoreThreshold (or None)."""
    requested = _optional(body, "requestedAttributes", dict, "a map of attribute names to parameters")
    if not requested:
        raise PerspectiveError(400, "Must request at least one attribute.", "NO_REQUESTED_ATTRIBUTES")
    attributes: dict[str, float | None] = {}
    for name, parameters in requested.items():
        if name not in ATTRIBUTES:
            raise invalid_request(
                f"Unknown attribute: {name}. Supported attributes: {', '.join(ATTRIBUTES)}."
            )
        parameters = parameters if parameters is not None else {}
        if not isinstance(parameters, dict):
            raise invalid_request(f"Invalid value at 'requestedAttributes[{name}]': expected an object.")
        score_type = parameters.get("scoreType")
        if score_type not in (None, "", "PROBABILITY"):
            raise invalid_request(f"Unsupported scoreType for {name}: only PROBABILITY is available.")
        threshold = parameters.get("scoreThreshold")
        if threshold is not None:
            if (
                isinstance(threshold, bool)
                or not isinstance(threshold, int | float)
                or not 0 <= threshold <= 1
            ):
                raise invalid_request(f"scoreThreshold for {name} must be a number from 0 to 1.")
            threshold = float(threshold)
        attributes[name] = threshold
    return attributes


def _languages(body: Mapping[str, Any]) -> list[str]:
    languages = _optional(body, "languages", list, "a list of language codes")
    if not languages:
        return []
    if not all(isinstance(code, str) and code.strip() for code in languages):
        raise invalid_request("Invalid value at 'languages': expected language codes such as 'en'.")
    # "EN", "en-US" and "en_GB" all mean English to Perspective.
    return [code.strip().replace("_", "-").split("-")[0].lower() for code in languages]


# --- language detection --------------------------------------------------------------------------

_SCRIPT_LANGUAGES = {
    "CYRILLIC": "ru",
    "GREEK": "el",
    "ARABIC": "ar",
    "HEBREW": "he",
    "CJK": "zh",
    "HIRAGANA": "ja",
    "KATAKANA": "ja",
    "HANGUL": "ko",
    "DEVANAGARI": "hi",
    "THAI": "th",
}
_FUNCTION_WORDS = {
    "en": "the and is are was were you your this that with for not have has but what they be of it".split(),
    "es": "el los las del que por para una pero como muy está son también porque esto usted".split(),
    "fr": "le les des est une pas pour que qui dans avec vous sont mais très cette aussi nous".split(),
    "de": "der die das und ist nicht ein eine ich sie mit auch auf für sind aber wie wir".split(),
    "pt": "os as que não uma para com você são mas muito isso também está por mais".split(),
    "it": "il che non una per con sono gli della anche questo molto ma come più".split(),
    "nl": "de het een en niet is dat van ik je zijn op met voor maar ook wat".split(),
}
_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)


def detect_language(text: str) -> str | None:
    """A small, honest guess: the script first, then common function words. None when unsure."""
    sample = text[:2000]
    scripts: dict[str, int] = {}
    letters = 0
    ascii_only = sample.isascii()
    for char in sample:
        if not char.isalpha():
            continue
        letters += 1
        if ascii_only:
            continue
        name = unicodedata.name(char, "")
        for script in _SCRIPT_LANGUAGES:
            if name.startswith(script):
                scripts[script] = scripts.get(script, 0) + 1
                break
    if letters == 0:
        return None
    if scripts:
        script, count = max(scripts.items(), key=lambda item: item[1])
        if count * 2 > letters:
            return _SCRIPT_LANGUAGES[script]
    words = [word.lower() for word in _WORD.findall(sample)]
    if len(words) < 3:
        return None
    hits = {
        code: sum(1 for word in words if word in vocabulary) for code, vocabulary in _FUNCTION_WORDS.items()
    }
    best = max(hits, key=lambda code: hits[code])
    if best != "en" and hits[best] >= 2 and hits[best] > 2 * hits["en"]:
        return best
    return "en" if hits["en"] >= 1 else None


def _check_languages(
    text: str, requested: list[str], attributes: Mapping[str, Any], drop_unsupported: bool
) -> tuple[list[str], list[str] | None, bool]:
    """(languages, detectedLanguages, supported). Raises LANGUAGE_NOT_SUPPORTED_BY_ATTRIBUTE."""
    detected: list[str] | None = None
    languages = requested
    if not languages:
        guess = detect_language(text)
        # When the guess is unsure we score as English (the only language we have a model for).
        detected = [guess] if guess else None
        languages = [guess or "en"]
    unsupported = [code for code in languages if code not in SUPPORTED_LANGUAGES]
    if not unsupported:
        return languages, detected, True
    if drop_unsupported:
        return languages, detected, False
    attribute = next(iter(attributes))
    raise PerspectiveError(
        400,
        f"Attribute {attribute} does not support request languages: {', '.join(languages)}. "
        f"This service scores English ({', '.join(SUPPORTED_LANGUAGES)}) only.",
        "LANGUAGE_NOT_SUPPORTED_BY_ATTRIBUTE",
        {"languageNotSupportedByAttributeError": {"detectedLanguages": languages, "attribute": attribute}},
    )


# --- scoring -------------------------------------------------------------------------------------

_SENTENCE = re.compile(r"[^.!?\n]+(?:[.!?]+|$)|[.!?]+", re.MULTILINE)


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """(begin, end) code-point offsets of each sentence, surrounding whitespace excluded."""
    spans = []
    for match in _SENTENCE.finditer(text):
        begin, end = match.span()
        while begin < end and text[begin].isspace():
            begin += 1
        while end > begin and text[end - 1].isspace():
            end -= 1
        if end > begin:
            spans.append((begin, end))
    return spans or [(0, len(text))]


#: At most this many spans per request: beyond it, neighbouring sentences are scored together, so a
#: 20 KB comment of one-word sentences cannot ask for thousands of scores and a megabytes-long answer.
MAX_SPANS = 50
#: Each request is one unit of the key's rate limit; span annotations cost one more per this many
#: spans, so that one key's expensive requests count as what they cost the service.
SPANS_PER_EXTRA_UNIT = 10


def bounded_spans(text: str, max_spans: int = MAX_SPANS) -> list[tuple[int, int]]:
    """Sentence spans, merged into at most ``max_spans`` runs of neighbouring sentences."""
    spans = sentence_spans(text)
    if len(spans) <= max_spans:
        return spans
    per_run = math.ceil(len(spans) / max_spans)
    return [
        (spans[start][0], spans[min(start + per_run, len(spans)) - 1][1])
        for start in range(0, len(spans), per_run)
    ]


def span_cost(spans: list[tuple[int, int]]) -> int:
    """Rate-limit units a span-annotated request costs beyond the one every request pays."""
    return math.ceil(len(spans) / SPANS_PER_EXTRA_UNIT) if len(spans) > 1 else 0


def _probability(value: float) -> float:
    return round(float(value), 6)


def _score(value: float) -> dict[str, Any]:
    return {"value": _probability(value), "type": "PROBABILITY"}


def _analyze_scores(
    api_key: ApiKey, text: str, attributes: Mapping[str, float | None], span_annotations: bool
) -> dict:
    spans = bounded_spans(text) if span_annotations else [(0, len(text))]
    extra_cost = span_cost(spans)
    if extra_cost:
        ratelimit.enforce_rate_limit(api_key, current_runtime().settings, cost=extra_cost)
    texts = [text] + ([text[begin:end] for begin, end in spans] if len(spans) > 1 else [])
    batch = current_runtime().models.score_synchronously([ClassifierComment(text=item) for item in texts])
    if batch.scores is None:
        logger.error("perspective scoring unavailable error=%s", batch.error)
        raise PerspectiveError(
            503, "The scoring model is unavailable; try again later.", headers={"Retry-After": "5"}
        )
    summary = batch.scores[0].values
    span_values = [score.values for score in batch.scores[1:]] or [summary]
    out: dict[str, Any] = {}
    for name, threshold in attributes.items():
        key = ATTRIBUTES[name]
        if threshold is not None and _probability(summary[key]) < threshold:
            continue  # Perspective leaves out attributes scored below the requested threshold
        span_scores = [
            {"begin": begin, "end": end, "score": _score(values[key])}
            for (begin, end), values in zip(spans, span_values, strict=True)
            if threshold is None or _probability(values[key]) >= threshold
        ]
        out[name] = {"spanScores": span_scores, "summaryScore": _score(summary[key])}
    return out


# --- endpoints -----------------------------------------------------------------------------------


@bp.post("/comments:analyze")
def analyze() -> tuple[Response, int]:
    api_key = _authenticate("analyze")
    body = _json_body()
    text = _comment_text(body)
    attributes = _requested_attributes(body)
    languages, detected, supported = _check_languages(
        text,
        _languages(body),
        attributes,
        bool(_optional(body, "dropUnsupportedAttributes", bool, "a boolean")),
    )
    span_annotations = bool(_optional(body, "spanAnnotations", bool, "a boolean"))
    _optional(body, "doNotStore", bool, "a boolean")  # nothing but counters is ever stored
    client_token = _optional(body, "clientToken", str, "a string")
    _optional(body, "sessionId", str, "a string")
    _optional(body, "context", dict, "an object")
    scores = _analyze_scores(api_key, text, attributes, span_annotations) if supported else {}
    runtime = current_runtime()
    ratelimit.count_usage(runtime, api_key, "perspective:analyze")
    answer: dict[str, Any] = {"attributeScores": scores, "languages": languages}
    if detected:
        answer["detectedLanguages"] = detected
    if client_token is not None:
        answer["clientToken"] = client_token
    return jsonify(answer), 200


def _suggested_labels(body: Mapping[str, Any]) -> tuple[str, dict[str, float]]:
    """(decision, labels) from ``attributeScores``; Coral's APPROVED/DELETED become decisions."""
    suggested = _optional(body, "attributeScores", dict, "a map of attribute names to scores")
    if not suggested:
        raise PerspectiveError(
            400, "Must suggest a score for at least one attribute.", "NO_REQUESTED_ATTRIBUTES"
        )
    decision = "suggest"
    labels: dict[str, float] = {}
    for name, scores in suggested.items():
        if name not in ATTRIBUTES and name not in OUTCOMES:
            raise invalid_request(
                f"Unknown attribute: {name}. Supported: {', '.join((*ATTRIBUTES, *OUTCOMES))}."
            )
        value = scores.get("summaryScore", {}).get("value") if isinstance(scores, dict) else None
        if isinstance(scores, dict) and not isinstance(scores.get("summaryScore", {}), dict):
            value = None
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
            raise invalid_request(f"attributeScores[{name}].summaryScore.value must be a number from 0 to 1.")
        if name == "APPROVED" and value >= 0.5:
            decision = "approve"
            labels = {**DECISION_LABELS["approve"], **labels}
        elif name == "DELETED" and value >= 0.5:
            # A deletion says "not acceptable" without saying why: no attribute is claimed.
            decision = "reject"
        elif name in ATTRIBUTES:
            labels[ATTRIBUTES[name]] = float(value)
    return decision, labels


@bp.post("/comments:suggestscore")
def suggest_score() -> tuple[Response, int]:
    api_key = _authenticate("submit")
    body = _json_body()
    text = _comment_text(body)
    decision, labels = _suggested_labels(body)
    client_token = _optional(body, "clientToken", str, "a string")
    community = _optional(body, "communityId", str, "a string")
    _languages(body)
    _optional(body, "context", dict, "an object")
    actor = f"api-key:{api_key.id}" + (f" community:{community}" if community else "")
    runtime = current_runtime()
    with runtime.session() as session:
        record_label(
            session,
            source="perspective",
            decision=decision,
            labels=labels,
            text=text,
            external_id=client_token[:200] if client_token else None,
            actor=actor[:200],
        )
        session.commit()
    ratelimit.count_usage(runtime, api_key, "perspective:suggestscore")
    logger.info("perspective suggestscore key=%s decision=%s labels=%s", api_key.id, decision, sorted(labels))
    return jsonify({"clientToken": client_token} if client_token is not None else {}), 200


# --- the contract --------------------------------------------------------------------------------

_GOOGLE_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "status"],
            "properties": {
                "code": {"type": "integer"},
                "message": {"type": "string"},
                "status": {"type": "string"},
                "details": {"type": "array", "items": {"type": "object"}},
            },
        }
    },
}
#: A language code Perspective reads as English ("en", "EN", "en-US", "en_GB"), the only one scored.
_ENGLISH = r"^\s*[Ee][Nn](?:[-_][\s\S]*)?$"


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


def _comment_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["text"],
        "properties": {
            "text": {
                "type": "string",
                "minLength": 1,
                # The limit is 20 KB of UTF-8; a JSON Schema length counts characters.
                "maxLength": MAX_COMMENT_BYTES,
                "pattern": r"\S",
                "description": f"Plain text, at most {MAX_COMMENT_BYTES} bytes as UTF-8, not only spaces.",
            },
            "type": _nullable({"type": "string", "enum": ["PLAIN_TEXT", "TEXT_TYPE_UNSPECIFIED"]}),
        },
    }


def openapi_part() -> Part:
    """``comments:analyze`` and ``comments:suggestscore``, in Google's request and error shapes."""
    security = [{"perspectiveKey": []}, {"googApiKey": []}]
    error = {"$ref": "#/components/schemas/GoogleError"}

    def errors(**extra: str) -> dict[str, Any]:
        answers = {
            "400": "INVALID_ARGUMENT: a field is not valid (details name the errorType), the body "
            "is not JSON, or the key is not valid (API_KEY_INVALID).",
            "403": "PERMISSION_DENIED: no key, or one without the scope.",
            "413": "The body is larger than the limit.",
            "429": "RESOURCE_EXHAUSTED: the key's rate limit, or too many keys that are not valid.",
            **extra,
        }
        return {status: json_response(text, error) for status, text in answers.items()}

    score = {
        "type": "object",
        "properties": {"value": {"type": "number"}, "type": {"type": "string"}},
    }
    attribute_names = {"type": "string", "enum": list(ATTRIBUTES)}
    common_fields = {
        "comment": {"$ref": "#/components/schemas/PerspectiveComment"},
        "clientToken": _nullable({"type": "string"}),
        "context": _nullable({"type": "object"}),
    }
    return {
        "components": {
            "securitySchemes": {
                "perspectiveKey": {"type": "apiKey", "in": "query", "name": "key"},
                "googApiKey": {"type": "apiKey", "in": "header", "name": "x-goog-api-key"},
            },
            "schemas": {"GoogleError": _GOOGLE_ERROR, "PerspectiveComment": _comment_schema()},
        },
        "paths": {
            f"{bp.url_prefix}/comments:analyze": {
                "post": {
                    "summary": "Perspective: score a comment (commentanalyzer v1alpha1)",
                    "description": "Without 'languages' the language is detected; a comment in a "
                    "language other than English is refused (LANGUAGE_NOT_SUPPORTED_BY_ATTRIBUTE) "
                    "unless 'dropUnsupportedAttributes' is set.",
                    "security": security,
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["comment", "requestedAttributes"],
                                    "properties": {
                                        **common_fields,
                                        "requestedAttributes": {
                                            "type": "object",
                                            "minProperties": 1,
                                            "propertyNames": attribute_names,
                                            "additionalProperties": _nullable(
                                                {
                                                    "type": "object",
                                                    "properties": {
                                                        "scoreType": _nullable(
                                                            {"type": "string", "enum": ["", "PROBABILITY"]}
                                                        ),
                                                        "scoreThreshold": _nullable(
                                                            {"type": "number", "minimum": 0, "maximum": 1}
                                                        ),
                                                    },
                                                }
                                            ),
                                        },
                                        "languages": _nullable(
                                            {
                                                "type": "array",
                                                "items": {"type": "string", "pattern": _ENGLISH},
                                            }
                                        ),
                                        "dropUnsupportedAttributes": _nullable({"type": "boolean"}),
                                        "spanAnnotations": _nullable({"type": "boolean"}),
                                        "doNotStore": _nullable({"type": "boolean"}),
                                        "sessionId": _nullable({"type": "string"}),
                                    },
                                }
                            }
                        },
                    },
                    "responses": {
                        "200": json_response(
                            "The scores of the requested attributes.",
                            {
                                "type": "object",
                                "required": ["attributeScores", "languages"],
                                "properties": {
                                    "attributeScores": {
                                        "type": "object",
                                        "propertyNames": attribute_names,
                                        "additionalProperties": {
                                            "type": "object",
                                            "properties": {
                                                "summaryScore": score,
                                                "spanScores": {
                                                    "type": "array",
                                                    "items": {
                                                        "type": "object",
                                                        "properties": {
                                                            "begin": {"type": "integer"},
                                                            "end": {"type": "integer"},
                                                            "score": score,
                                                        },
                                                    },
                                                },
                                            },
                                        },
                                    },
                                    "languages": {"type": "array", "items": {"type": "string"}},
                                    "detectedLanguages": {"type": "array", "items": {"type": "string"}},
                                    "clientToken": {"type": "string"},
                                },
                            },
                        ),
                        **errors(**{"503": "UNAVAILABLE: no scoring model; retry after 'Retry-After'."}),
                    },
                }
            },
            f"{bp.url_prefix}/comments:suggestscore": {
                "post": {
                    "summary": "Perspective: suggest a score (stored as a training label)",
                    "description": "Coral sends its moderation outcome as APPROVED or DELETED.",
                    "security": security,
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["comment", "attributeScores"],
                                    "properties": {
                                        **common_fields,
                                        "attributeScores": {
                                            "type": "object",
                                            "minProperties": 1,
                                            "propertyNames": {
                                                "type": "string",
                                                "enum": [*ATTRIBUTES, *OUTCOMES],
                                            },
                                            "additionalProperties": {
                                                "type": "object",
                                                "required": ["summaryScore"],
                                                "properties": {
                                                    "summaryScore": {
                                                        "type": "object",
                                                        "required": ["value"],
                                                        "properties": {
                                                            "value": {
                                                                "type": "number",
                                                                "minimum": 0,
                                                                "maximum": 1,
                                                            }
                                                        },
                                                    }
                                                },
                                            },
                                        },
                                        "languages": _nullable(
                                            {"type": "array", "items": {"type": "string", "pattern": r"\S"}}
                                        ),
                                        "communityId": _nullable({"type": "string"}),
                                    },
                                }
                            }
                        },
                    },
                    "responses": {
                        "200": json_response(
                            "Stored; the clientToken is echoed.",
                            {"type": "object", "properties": {"clientToken": {"type": "string"}}},
                        ),
                        **errors(),
                    },
                }
            },
        },
    }
