"""Request validation for the CMS API: untrusted JSON in, clean values or a 4xx naming each field out.

One pydantic model describes ``POST /v1/comments``; the same model produces the JSON Schema in
``/openapi.json``, so the document cannot drift from the behaviour.
"""

from __future__ import annotations

import ipaddress
import json
import re
import unicodedata
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from functools import cache
from typing import Annotated, Any

from email_validator import SPECIAL_USE_DOMAIN_NAMES, EmailNotValidError, validate_email
from email_validator.rfc_constants import CASE_INSENSITIVE_MAILBOX_NAMES
from flask import Request
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    WithJsonSchema,
    field_validator,
)
from werkzeug.exceptions import RequestEntityTooLarge

from service.errors import InvalidComment, InvalidJSON, PayloadTooLarge, UnsupportedMediaType

MAX_TEXT_CHARS = 20_000
MAX_META_BYTES = 4 * 1024

# C0 and C1 control characters, DEL and a few invisible troublemakers, but not tab and newlines.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ufeff\ufffe\uffff]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")
_LANGUAGE = re.compile(r"^[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{1,8})*$")
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
# A plain ASCII address: dot-atom local part, host-name labels, an alphabetic top-level domain.
_PLAIN_ADDRESS = re.compile(
    rf"(?P<local>{_ATEXT}(?:\.{_ATEXT})*)@(?P<domain>(?:[A-Za-z0-9](?:[A-Za-z0-9-]{{0,61}}[A-Za-z0-9])?\.)+[A-Za-z]{{2,63}})"
)


def clean_text(value: str) -> str:
    """Strip control characters and normalise line endings; refuse lone surrogates."""
    if _SURROGATE.search(value):
        # Lone surrogates cannot be stored as UTF-8; a real client never sends them.
        raise ValueError("contains invalid Unicode (a lone surrogate)")
    return _CONTROL.sub("", value.replace("\r\n", "\n").replace("\r", "\n"))


def contains_lone_surrogate(value: Any) -> bool:
    """Whether any string (key or value) in parsed JSON holds a lone surrogate, which no database stores.

    Iterative, so a body nested as deep as the parser allows cannot exhaust the stack here.
    """
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                return True
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return False


def _string(max_chars: int, required: bool = False, min_chars: int = 0):  # type: ignore[no-untyped-def]
    def check(value: Any) -> Any:
        if value is None and not required:
            return None
        if not isinstance(value, str):
            raise ValueError("must be a string")
        # The length as sent, as the document's maxLength counts it (cleaning only ever shortens).
        if len(value) > max_chars:
            raise ValueError(f"must be at most {max_chars} characters")
        cleaned = clean_text(value).strip()
        if len(cleaned) < min_chars:
            raise ValueError(
                "must not be empty" if min_chars == 1 else f"must be at least {min_chars} characters"
            )
        return cleaned if cleaned or required else None

    return BeforeValidator(check)


@cache
def _char_class(predicate: Callable[[str], bool], negate: bool = False) -> str:
    """A regular-expression class of every code point ``predicate`` holds for, as ranges.

    Built from the validator's own predicates, so the document's patterns say exactly what is
    checked.
    """
    codes = (code for code in range(0x110000) if not 0xD800 <= code <= 0xDFFF and predicate(chr(code)))
    return _class_of(codes, negate)


def _class_of(codes: Iterable[int], negate: bool = False) -> str:
    """The class of ``codes`` (ascending). Code points above the BMP are written as themselves
    (ECMA-262 has no \\U escape)."""
    ranges: list[tuple[int, int]] = []
    for code in codes:
        if ranges and ranges[-1][1] == code - 1:
            ranges[-1] = (ranges[-1][0], code)
        else:
            ranges.append((code, code))

    def char(code: int) -> str:
        return f"\\u{code:04x}" if code <= 0xFFFF else chr(code)

    body = "".join(char(a) if a == b else f"{char(a)}-{char(b)}" for a, b in ranges)
    return f"[{'^' if negate else ''}{body}]"


#: Characters written escaped inside a regular-expression class.
_CLASS_ESCAPES = {"\r": "\\r", "\n": "\\n", **{char: "\\" + char for char in "\\]^[-(){}?.*+|/$"}}


def printable_pattern(excluded: str = "", space: bool = True) -> str:
    """One character ``str.isprintable`` allows, but ``excluded`` (and the space, unless ``space``).

    Python's printable characters are those outside the Unicode categories C and Z, and the
    space: written with ECMA-262 property escapes, as OpenAPI 3.1's JSON Schema reads them.
    """
    escaped = "".join(_CLASS_ESCAPES.get(char, char) for char in excluded)
    solid = f"[^\\p{{C}}\\p{{Z}}{escaped}]"
    return f"(?:{solid}| )" if space else solid


@cache
def space_class(excluded: str = "") -> str:
    """The characters ``str.strip`` removes (``str.isspace``), except ``excluded``."""
    return _class_of(code for code in _space_codes() if chr(code) not in excluded)


@cache
def _space_codes() -> tuple[int, ...]:
    return tuple(code for code in range(0x110000) if chr(code).isspace())


def _is_blank(char: str) -> bool:
    """Removed by cleaning and trimming: a control character or white space."""
    return char.isspace() or _CONTROL.match(char) is not None


def not_blank_pattern() -> str:
    """Matches a string that keeps at least one character after cleaning and trimming."""
    return _char_class(_is_blank, negate=True)


def blank_pattern() -> str:
    """Matches a string that is empty after cleaning and trimming (an optional field is then absent)."""
    return f"^{_char_class(_is_blank)}*$"


def not_space_pattern() -> str:
    """Matches a string that ``str.strip`` leaves something of (Python's white space, not ECMA's)."""
    return _class_of(_space_codes(), negate=True)


def _is_blank_or_slash(char: str) -> bool:
    return char == "/" or _is_blank(char)


def url_pattern() -> str:
    """Matches what ``_url`` accepts: once control characters are removed and white space trimmed,
    ``http://`` or ``https://`` (any case; Python's ``(?i)`` also takes the long s) and a host."""
    control = "[\\u0000-\\u0008\\u000b\\u000c\\u000e-\\u001f\\u007f-\\u009f\\ufeff\\ufffe\\uffff]"
    scheme = "".join(f"[{char.upper()}{char}]{control}*" for char in "http") + f"(?:[Ss\\u017f]{control}*)?"
    slashes = f":{control}*/{control}*/{control}*"
    return f"^{_char_class(_is_blank)}*{scheme}{slashes}{_char_class(_is_blank_or_slash, negate=True)}"


def visible_pattern() -> str:
    """Matches a string with at least one visible character (see ``is_visible_text``).

    ECMA-262 Unicode property escapes, which OpenAPI 3.1's JSON Schema reads: the same categories
    as ``is_visible_text``, written in a few characters instead of ~750 ranges.
    """
    return r"[^\p{M}\p{C}\p{Z}]"


def _any_case(word: str) -> str:
    return "".join(f"[{char.upper()}{char.lower()}]" if char.isalpha() else char for char in word)


#: What ``_PLAIN_ADDRESS`` accepts: a dot-atom local part (email-validator takes one longer than
#: 64 characters too) and host-name labels under an alphabetic top-level domain, none special-use
#: (RFC 6761) and none with "--" (which only punycode may have).
EMAIL_PATTERN = (
    r"^(?![^@]*@.*--)"
    rf"(?!.*[.@](?:{'|'.join(_any_case(name) for name in sorted(SPECIAL_USE_DOMAIN_NAMES))})$)"
    rf"{_ATEXT}(?:\.{_ATEXT})*@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{{0,61}}[A-Za-z0-9])?\.)+[A-Za-z]{{2,63}}$"
)
_YEAR = r"(?:000[2-9]|00[1-9][0-9]|0[1-9][0-9]{2}|[1-8][0-9]{3}|9[0-8][0-9]{2})"
_TIME = r"(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]{1,6})?"
#: An RFC 3339 date-time with its offset (the "date-time" format says which days exist), years 0002
#: to 9989 so that every offset stays inside the calendar once converted to UTC.
DATE_TIME_PATTERN = rf"^{_YEAR}-[0-9]{{2}}-[0-9]{{2}}[Tt ]{_TIME}(?:[Zz]|[+-][0-9]{{2}}:[0-9]{{2}})$"
#: The same without an offset (read as UTC), which no format describes: the pattern names the days
#: (all but 29 February, which it cannot tell from a leap year's).
LOCAL_DATE_TIME_PATTERN = (
    rf"^{_YEAR}-(?:(?:0[1-9]|1[0-2])-(?:0[1-9]|1[0-9]|2[0-8])|(?:0[13-9]|1[0-2])-(?:29|30)"
    rf"|(?:0[13578]|1[02])-31)[Tt ]{_TIME}$"
)
_DATE_TIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}"
    r"(?:\.[0-9]{1,6})?(?:[Zz]|[+-][0-9]{2}:[0-9]{2})?"
)


def _identifier(value: Any) -> Any:
    """CMS ids are numbers in some systems (WordPress) and strings in others; store them as text."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError("must be a string or an integer")
    raw = str(value)
    if len(raw) > 200:
        raise ValueError("must be at most 200 characters")
    text = clean_text(raw).strip()
    if not text:
        raise ValueError("must not be empty")
    return text


def _url(value: Any) -> Any:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValueError("must be a string")
    if len(value) > 2000:
        raise ValueError("must be at most 2000 characters")
    url = clean_text(value).strip()
    if not re.match(r"(?i)^https?://[^\s/]+", url):
        # Refuses javascript:, data: and friends, which would be dangerous wherever a URL is linked.
        raise ValueError("must be an http or https URL")
    return url


Identifier = Annotated[
    str | None,
    BeforeValidator(_identifier),
    WithJsonSchema({"type": ["string", "integer", "null"], "maxLength": 200}),
]
Url = Annotated[
    str | None,
    BeforeValidator(_url),
    WithJsonSchema(
        {
            "type": ["string", "null"],
            "format": "uri",
            "pattern": "^[Hh][Tt][Tt][Pp][Ss]?://",
            "maxLength": 2000,
        }
    ),
]


class CommentIn(BaseModel):
    """A reader comment as the CMS posts it."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, _string(200, required=True, min_chars=1)] = Field(
        min_length=1, max_length=200, description="Author's display name."
    )
    email: Annotated[str, _string(320, required=True, min_chars=1)] = Field(
        min_length=1, max_length=320, description="Author's e-mail; checked for syntax only (no DNS lookup)."
    )
    text: Annotated[str, _string(MAX_TEXT_CHARS, required=True, min_chars=1)] = Field(
        min_length=1,
        max_length=MAX_TEXT_CHARS,
        description="The comment, 1 to 20,000 characters after trimming; control characters are stripped.",
    )
    external_id: Identifier = Field(
        None, description="The CMS's own id; re-posting it returns the same comment."
    )
    post_id: Identifier = None
    parent_id: Identifier = None
    permalink: Url = None
    author_url: Url = None
    referrer: Url = None
    author_ip: Annotated[str | None, _string(64)] = None
    user_agent: Annotated[str | None, _string(1000)] = None
    language: Annotated[str | None, _string(35)] = Field(
        None, description="BCP 47 tag, e.g. 'en' or 'pt-BR'."
    )
    created_at: datetime | None = Field(None, description="ISO 8601; assumed UTC without an offset.")
    meta: dict[str, Any] | None = Field(None, description="Free-form object, at most 4 KB as JSON.")

    @field_validator("text")
    @classmethod
    def _visible_text(cls, value: str) -> str:
        if not is_visible_text(value):
            raise ValueError("must contain visible characters, not only spaces or invisible marks")
        return value

    @field_validator("email")
    @classmethod
    def _email_syntax(cls, value: str) -> str:
        try:
            return normalized_email(value)
        except EmailNotValidError as error:
            raise ValueError(f"is not a valid e-mail address ({error})") from None

    @field_validator("author_ip")
    @classmethod
    def _ip_address(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return str(ipaddress.ip_address(value))
        except ValueError:
            raise ValueError("is not a valid IPv4 or IPv6 address") from None

    @field_validator("language")
    @classmethod
    def _language_tag(cls, value: str | None) -> str | None:
        if value is not None and not _LANGUAGE.match(value):
            raise ValueError("is not a language tag such as 'en' or 'pt-BR'")
        return value

    @field_validator("created_at", mode="before")
    @classmethod
    def _timestamp_text(cls, value: Any) -> Any:
        # Only the RFC 3339 form: pydantic alone would also read "0" or "1700000000" as a time.
        if value is not None and (not isinstance(value, str) or not _DATE_TIME.fullmatch(value)):
            raise ValueError("must be an ISO 8601 date-time string such as 2026-11-28T10:00:00Z")
        return value

    @field_validator("created_at")
    @classmethod
    def _assume_utc(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        try:
            # Stored in UTC: an offset can push the first or last day of the calendar out of range.
            return value.astimezone(UTC)
        except OverflowError:
            raise ValueError("is outside the range of dates that can be stored in UTC") from None

    @field_validator("meta")
    @classmethod
    def _meta_size(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is None:
            return None
        try:
            # NaN and Infinity are not JSON: stored, they would break every strict reader of the row.
            encoded = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        except ValueError:
            raise ValueError("must not hold NaN or Infinity (not standard JSON)") from None
        if _SURROGATE.search(encoded) or "\\u0000" in encoded or "\x00" in encoded:
            raise ValueError("contains invalid Unicode (a lone surrogate or NUL)")
        if len(encoded.encode("utf-8")) > MAX_META_BYTES:
            raise ValueError(f"must be at most {MAX_META_BYTES} bytes as JSON")
        return value


def comment_in_schemas() -> dict[str, dict[str, Any]]:
    """Each ``CommentIn`` field's JSON Schema, as strict as the checks above (``/openapi.json``).

    Strings are trimmed and cleaned of control characters before they are checked, so a required
    string must keep a character through that, and an optional one that does not counts as absent.
    """
    blank = {"type": "string", "pattern": blank_pattern()}
    null = {"type": "null"}

    def text(max_chars: int, pattern: str, description: str) -> dict[str, Any]:
        return {
            "type": "string",
            "minLength": 1,
            "maxLength": max_chars,
            "pattern": pattern,
            "description": description,
        }

    def optional(schema: dict[str, Any], description: str) -> dict[str, Any]:
        return {"anyOf": [schema, blank, null], "default": None, "description": description}

    identifier = {
        "type": ["string", "integer", "null"],
        "minLength": 1,
        "maxLength": 200,
        "pattern": not_blank_pattern(),
        "default": None,
    }
    url = {"type": "string", "maxLength": 2000, "pattern": url_pattern()}
    return {
        "name": text(200, not_blank_pattern(), "Author's display name."),
        "email": {
            # No "format": "email": validators' formats refuse a local part over 64 characters,
            # which email-validator (and so this service) accepts.
            "type": "string",
            "maxLength": 254,
            "pattern": EMAIL_PATTERN,
            "description": "Author's e-mail; checked for syntax only (no DNS lookup). Internationalised "
            "addresses (IDNA domains, non-ASCII local parts) are also accepted where email-validator "
            "accepts them.",
        },
        "text": text(
            MAX_TEXT_CHARS,
            visible_pattern(),
            "The comment, at most 20,000 characters with at least one visible one; control "
            "characters are stripped and the ends trimmed.",
        ),
        "external_id": {
            **identifier,
            "description": "The CMS's own id; re-posting it returns the same comment.",
        },
        "post_id": identifier,
        "parent_id": identifier,
        "permalink": {"anyOf": [url, {"type": "string", "maxLength": 0}, null], "default": None},
        "author_url": {"anyOf": [url, {"type": "string", "maxLength": 0}, null], "default": None},
        "referrer": {"anyOf": [url, {"type": "string", "maxLength": 0}, null], "default": None},
        "author_ip": optional(
            {"type": "string", "maxLength": 64, "anyOf": [{"format": "ipv4"}, {"format": "ipv6"}]},
            "IPv4 or IPv6 address.",
        ),
        "user_agent": {"type": ["string", "null"], "maxLength": 1000, "default": None},
        "language": optional(
            {"type": "string", "maxLength": 35, "pattern": _LANGUAGE.pattern},
            "BCP 47 tag, e.g. 'en' or 'pt-BR'.",
        ),
        "created_at": {
            "anyOf": [
                {"type": "string", "format": "date-time", "pattern": DATE_TIME_PATTERN},
                {"type": "string", "pattern": LOCAL_DATE_TIME_PATTERN},
                null,
            ],
            "default": None,
            "description": "RFC 3339; assumed UTC without an offset.",
        },
        "meta": {
            "anyOf": [META_OBJECT, null],
            "default": None,
            "description": f"Free-form object, at most {MAX_META_BYTES} bytes as JSON, with no NUL "
            "character in any key or string (no database stores one in JSON).",
        },
    }


_NO_NUL = {"type": "string", "pattern": "^[^\\u0000]*$"}
#: A JSON object with no NUL in any key or string, at any depth (``#/components/schemas/MetaValue``).
META_OBJECT = {
    "type": "object",
    "propertyNames": _NO_NUL,
    "additionalProperties": {"$ref": "#/components/schemas/MetaValue"},
}
META_VALUE = {
    "anyOf": [
        _NO_NUL,
        {"type": ["number", "boolean", "null"]},
        {"type": "array", "items": {"$ref": "#/components/schemas/MetaValue"}},
        META_OBJECT,
    ]
}


def normalized_email(address: str) -> str:
    """The address as email-validator normalises it (syntax only, no DNS); raises EmailNotValidError.

    Plain ASCII addresses, nearly all of them, are checked by one pattern: email-validator's full
    path (IDNA, quoted local parts, every RFC corner) takes about a tenth of an ingest request's CPU.
    Anything the pattern does not cover, punycode labels included, goes to email-validator, and a
    test checks that both agree.
    """
    match = _PLAIN_ADDRESS.fullmatch(address)
    if match is not None and len(address) <= 254 and len(match["local"]) <= 64:
        local, domain = match["local"], match["domain"].lower()
        if (
            "--" not in domain
            and not _is_special_use(domain)
            and local.lower() not in CASE_INSENSITIVE_MAILBOX_NAMES  # "Postmaster" becomes lower case
        ):
            return f"{local}@{domain}"
    return validate_email(address, check_deliverability=False).normalized


def _is_special_use(domain: str) -> bool:
    return any(domain == name or domain.endswith("." + name) for name in SPECIAL_USE_DOMAIN_NAMES)


def read_json_object(request: Request) -> dict[str, Any]:
    """The request body as a JSON object, or the right 4xx (415, 413, 400, 422)."""
    if request.mimetype != "application/json":
        raise UnsupportedMediaType("Send the body as JSON with 'Content-Type: application/json'.")
    try:
        raw = request.get_data(cache=True)
    except RequestEntityTooLarge:
        raise PayloadTooLarge("The request body is too large.") from None
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError) as error:
        raise InvalidJSON(f"The body is not valid JSON: {error}") from None
    if not isinstance(body, dict):
        raise InvalidComment("The body must be a JSON object.", {"body": "must be a JSON object"})
    return body


def parse_comment(body: dict[str, Any]) -> dict[str, Any]:
    """Validate a comment body; raise ``InvalidComment`` naming every bad field."""
    try:
        comment = CommentIn.model_validate(body)
    except ValidationError as error:
        raise InvalidComment("Some fields are missing or invalid.", field_errors(error)) from None
    return comment.model_dump()


def field_errors(error: ValidationError) -> dict[str, str]:
    fields: dict[str, str] = {}
    for item in error.errors(include_url=False):
        name = ".".join(str(part) for part in item["loc"]) or "body"
        if item["type"] == "missing":
            message = "is required"
        elif item["type"] == "extra_forbidden":
            message = "is not a known field"
        else:
            message = str(item["msg"]).removeprefix("Value error, ")
        fields.setdefault(name, message)
    return fields


def is_visible_text(value: str) -> bool:
    """True when ``value`` has at least one character that is not a mark, format or separator."""
    return any(unicodedata.category(char)[0] not in {"M", "C", "Z"} for char in value)
