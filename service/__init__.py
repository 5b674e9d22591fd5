"""The comment moderation web service: CMS API, moderator pages and compatibility endpoints."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flask import Flask

    from service.settings import Settings


def create_app(settings: Settings | None = None) -> Flask:
    """``gunicorn "service:create_app()"`` entry point (imported lazily to keep imports light)."""
    from service.app import create_app as factory

    return factory(settings)
