"""``MAX_BODY_BYTES`` on the bytes received, whatever the framing.

Flask checks ``Content-Length`` against ``MAX_CONTENT_LENGTH``, but a chunked body has no length:
werkzeug then reads it up to the limit and hands the view a body cut off there, which the view would
store or judge as if it were the whole. :class:`BoundedBody` (WSGI middleware) reads a chunked body
before the app sees it, at most one byte past the limit, and hands the app the whole of it with its
length, or, when it is over the limit, an empty body and a mark; :func:`refuse_marked_bodies` turns
the mark into the ``413`` that each blueprint answers in its own protocol's shape.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from typing import Any

from flask import Flask, request
from werkzeug.exceptions import RequestEntityTooLarge

#: Set in the WSGI environ when a body without a length went over the limit.
OVER_LIMIT = "moderation.body_over_limit"
_READ_SIZE = 64 * 1024


def install(app: Flask, limit: int) -> None:
    """Bound every request body of ``app`` to ``limit`` bytes, chunked bodies included."""
    app.wsgi_app = BoundedBody(app.wsgi_app, limit)  # type: ignore[method-assign]
    app.before_request(refuse_marked_bodies)


class BoundedBody:
    def __init__(self, app: Any, limit: int):
        self.app = app
        self.limit = limit

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        # A server that passes on a body of no stated length (chunked) says the stream ends by itself.
        if not environ.get("CONTENT_LENGTH") and environ.get("wsgi.input_terminated"):
            body = _read_at_most(environ["wsgi.input"], self.limit + 1)
            if len(body) > self.limit:
                environ[OVER_LIMIT] = True
                body = b""
            environ["wsgi.input"] = io.BytesIO(body)
            environ["CONTENT_LENGTH"] = str(len(body))
        return self.app(environ, start_response)  # type: ignore[no-any-return]


def _read_at_most(stream: Any, size: int) -> bytes:
    parts: list[bytes] = []
    remaining = size
    while remaining > 0:
        part = stream.read(min(remaining, _READ_SIZE))
        if not part:
            break
        parts.append(part)
        remaining -= len(part)
    return b"".join(parts)


def refuse_marked_bodies() -> None:
    if request.environ.get(OVER_LIMIT):
        raise RequestEntityTooLarge()
