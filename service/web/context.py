"""What a request runs with: the process's ``Runtime`` and the API key that authenticated it.

This module imports only Flask, so every blueprint can use it without importing the app factory.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from flask import current_app, g

if TYPE_CHECKING:
    from service.db import ApiKey
    from service.runtime import Runtime

#: The key of the process's ``Runtime`` in ``app.extensions``.
RUNTIME_EXTENSION = "moderation"


def current_runtime() -> Runtime:
    """The runtime the app was built with (settings, database, Redis, models, key cache)."""
    return current_app.extensions[RUNTIME_EXTENSION]  # type: ignore[no-any-return]


def set_current_api_key(api_key: ApiKey) -> None:
    g.api_key = api_key


def current_api_key() -> ApiKey:
    """The API key this request authenticated with (see ``service.web.auth``)."""
    return g.api_key  # type: ignore[no-any-return]
