"""The comment moderation web service: CMS API, moderator pages and compatibility endpoints."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flask import Flask

    from service.settings import Settings


def create_app(settings: Settings | None = None) -> Flask:
    """``gunicorn "service:create_app()"`` entry point (imported lazily to keep imports light)."""
    import gc

    from service.app import create_app as factory

    app = factory(settings)
    # Everything loaded so far (the model, scikit-learn, SQLAlchemy) lives as long as the process.
    # Freezing it keeps the garbage collector from walking ~170k long-lived objects in the middle of
    # requests (it cost the moderator queue page 200+ ms at p95), and keeps forked gunicorn workers
    # from dirtying the pages they share with the --preload master.
    gc.collect()
    gc.freeze()
    return app
