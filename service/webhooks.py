"""Signed webhook deliveries to the CMS.

Each request carries ``X-Moderation-Signature: t=<unix seconds>,v1=<hex>``, where ``v1`` is
HMAC-SHA256 over ``"<t>." + body`` with the key's webhook secret (the scheme Stripe made familiar).
The CMS recomputes it and rejects old timestamps, which stops both forgery and replay.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from datetime import timedelta
from typing import Any

SIGNATURE_HEADER = "X-Moderation-Signature"
EVENT_HEADER = "X-Moderation-Event"
DELIVERY_HEADER = "X-Moderation-Delivery"
#: Waits between attempts: 12 attempts over about 6.5 hours, so a CMS down for an hour still hears.
BACKOFF = tuple(timedelta(seconds=s) for s in (10, 30, 60, 120, 300, 600, 900, 1800, 3600, 3600, 7200))
MAX_ATTEMPTS = len(BACKOFF) + 1


def encode_body(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()


def signature(secret: str, timestamp: int, body: bytes) -> str:
    message = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signature_header(secret: str, body: bytes, timestamp: int | None = None) -> str:
    timestamp = int(time.time()) if timestamp is None else timestamp
    return f"t={timestamp},v1={signature(secret, timestamp, body)}"


def verify_signature(secret: str, header: str, body: bytes, tolerance_seconds: int = 300) -> bool:
    """What a CMS does on receipt (and what our tests do)."""
    try:
        parts = dict(item.split("=", 1) for item in header.split(","))
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs(time.time() - timestamp) > tolerance_seconds:
        return False
    return hmac.compare_digest(parts.get("v1", ""), signature(secret, timestamp, body))


def next_delay(attempts: int) -> timedelta | None:
    """The wait after ``attempts`` failed attempts, or None when we give up."""
    if attempts >= MAX_ATTEMPTS:
        return None
    return BACKOFF[attempts - 1]
