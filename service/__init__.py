"""The comment moderation service.

The core (this package's modules: settings, runtime, store, queueing, jobs, policy, ...) serves both
the web processes and the workers; ``service.web`` is the web side and builds on the core, never the
other way round. ``worker.py`` and ``python -m service`` are the other entry points.
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    """``service.create_app`` is ``service.web.app.create_app``, for ``gunicorn "service:create_app()"``.

    Resolved on first use rather than imported here: the worker and the CLI import ``service.*``
    modules too, and must not load Flask and every blueprint to do it.
    """
    if name == "create_app":
        from service.web.app import create_app

        return create_app
    raise AttributeError(f"module 'service' has no attribute {name!r}")
