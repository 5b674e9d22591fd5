"""Which model version is active, service-wide, and how a promotion reaches every process.

The registry's ``active`` pointer is where a promotion starts (the retrain job, or ``python -m
classifier models promote``). The service records it in ``model_versions`` and announces it on Redis
(:func:`service.queueing.active_model_key`, and a message on the ``model_activated_channel``).
Every process's ``ModelHolder`` follows the announced version (:func:`follow_announced_version`): it
refreshes between batches (workers) or every few seconds (web), loading the artifact into a new object
before swapping the reference, so a batch is never scored by a half-loaded model.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

import redis
from sqlalchemy import select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from classifier.errors import ClassifierError
from service import queueing
from service.db import ModelVersion, utcnow
from service.scoring import ModelHolder
from service.settings import Settings

logger = logging.getLogger(__name__)


class Services(Protocol):
    """What activation needs of a process's ``service.runtime.Runtime`` (which builds on this module)."""

    settings: Settings
    redis: redis.Redis
    models: ModelHolder

    def session(self) -> Session: ...


def announced_version(services: Services) -> str | None:
    """The active version as announced on Redis, else as recorded in the database, else None."""
    try:
        value = services.redis.get(queueing.active_model_key(services.settings))
        if value:
            return value.decode() if isinstance(value, bytes) else str(value)
    except redis.RedisError:
        pass
    try:
        with services.session() as session:
            return session.scalars(
                select(ModelVersion.version)
                .where(ModelVersion.state == "active")
                .order_by(ModelVersion.activated_at.desc())
                .limit(1)
            ).first()
    except SQLAlchemyError:
        return None


def follow_announced_version(services: Services) -> None:
    """Make this process's model holder prefer the announced version to the registry's (idempotent)."""
    if services.models.announced is None:
        services.models.announced = lambda: announced_version(services)


def record_activation(
    services: Services, version: str, card: dict[str, Any] | None, report_path: str | None
) -> None:
    """``version`` is active, every other active row is retired; then announce it on Redis."""
    now = utcnow()
    with services.session() as session:
        session.execute(
            update(ModelVersion)
            .where(ModelVersion.state == "active", ModelVersion.version != version)
            .values(state="retired")
        )
        row = session.get(ModelVersion, version)
        if row is None:
            row = ModelVersion(version=version, card=card)
            session.add(row)
        row.state, row.activated_at = "active", now
        row.card = card if card is not None else row.card
        row.report_path = report_path or row.report_path
        session.commit()
    announce(services, version)


def announce(services: Services, version: str) -> None:
    settings = services.settings
    pipe = services.redis.pipeline(transaction=True)
    pipe.set(queueing.active_model_key(settings), version)
    pipe.publish(queueing.model_activated_channel(settings), version)
    pipe.execute()
    logger.info("model announced version=%s", version)


def record_candidate(services: Services, version: str, card: dict[str, Any], report_path: str | None) -> None:
    with services.session() as session:
        row = session.get(ModelVersion, version)
        if row is None:
            session.add(ModelVersion(version=version, state="candidate", card=card, report_path=report_path))
        else:
            row.report_path = report_path
        session.commit()


def sync_active_version(services: Services) -> None:
    """Follow a promotion or rollback made by hand (``python -m classifier models ...``): the registry's
    pointer is the truth, and the database and Redis are brought in line with it."""
    registry = services.models.registry
    version = registry.active_version()
    if version is None or version == announced_version(services):
        return
    try:
        card = registry.card(version)
    except ClassifierError as error:
        logger.error("active model unreadable version=%s error=%s", version, error)
        return
    record_activation(services, version, card, None)
