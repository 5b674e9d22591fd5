"""The long-lived objects a process needs, built once from ``Settings``.

The web app keeps one in ``app.extensions`` (``service.web.context.current_runtime``). The worker
builds one before it starts and binds it as the process runtime (:func:`bind_process_runtime`), which
the job functions read; forked work horses inherit it, with the model already in memory.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field

from redis import Redis
from redis.sentinel import SentinelConnectionPool
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from classifier.registry import Registry
from service.activation import follow_announced_version
from service.connections import connect_database, connect_redis
from service.db import make_engine, make_session_factory
from service.keys import ApiKeyCache
from service.scoring import ModelHolder
from service.settings import Settings
from service.sites import SiteCache


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    session_factory: sessionmaker
    redis: Redis
    models: ModelHolder
    pid: int = field(default_factory=os.getpid)
    api_keys: ApiKeyCache = field(init=False)
    #: Each site's compiled rules and thresholds, refreshed once per scoring batch.
    sites: SiteCache = field(init=False)
    _autocommit_engine: Engine = field(init=False, repr=False)
    _per_thread: threading.local = field(init=False, repr=False, default_factory=threading.local)

    def __post_init__(self) -> None:
        self.api_keys = ApiKeyCache(self.session)
        self.sites = SiteCache(self.settings.thresholds)
        self._autocommit_engine = make_engine(self.settings.effective_database_url, autocommit=True)

    @classmethod
    def build(cls, settings: Settings, redis_client: Redis | None = None) -> Runtime:
        engine = connect_database(settings)
        runtime = cls(
            settings=settings,
            engine=engine,
            session_factory=make_session_factory(engine),
            redis=redis_client if redis_client is not None else connect_redis(settings),
            models=ModelHolder(Registry(settings.registry_dir)),
        )
        # Every process follows the version the service announced (Redis, then the database) before
        # the registry's own pointer, so a promotion reaches web processes and workers alike.
        follow_announced_version(runtime)
        return runtime

    def session(self) -> Session:
        self._check_fork()
        return self.session_factory()

    @property
    def autocommit_engine(self) -> Engine:
        """For single-statement writes (a new comment): see ``make_engine(autocommit=True)``."""
        self._check_fork()
        return self._autocommit_engine

    @property
    def thread_redis(self) -> Redis:
        """A client on the same server that keeps one connection for the calling thread.

        For the one command each new comment sends: a client on the shared pool checks a connection
        out and back in around every command, nearly as much CPU as the command itself. Unlike the
        pool, it does not test the connection first, so a command on one Redis has dropped fails
        once and the next command reconnects (``api._enqueue`` retries once).
        """
        if isinstance(self.redis.connection_pool, SentinelConnectionPool):
            # A client pinned to one Sentinel-managed connection keeps dialling the dead primary
            # after a failover (redis-py 8, seen in tests/test_sentinel.py); the pool asks Sentinel.
            return self.redis
        local = self._per_thread
        if getattr(local, "pid", None) != os.getpid():  # new thread, or a fork inherited this one's
            local.redis = Redis(connection_pool=self.redis.connection_pool, single_connection_client=True)
            local.pid = os.getpid()
        return local.redis  # type: ignore[no-any-return]

    def _check_fork(self) -> None:
        # Database connections must not be shared across a fork (an RQ work horse is a fork).
        if os.getpid() != self.pid:
            self.engine.dispose(close=False)
            self._autocommit_engine.dispose(close=False)
            self.pid = os.getpid()

    def close(self) -> None:
        self.engine.dispose()
        self._autocommit_engine.dispose()


_process_runtime: Runtime | None = None


def bind_process_runtime(runtime: Runtime | None) -> None:
    """Give this process's job functions their runtime (the worker does this once, before forking)."""
    global _process_runtime
    _process_runtime = runtime


def process_runtime() -> Runtime:
    """The runtime the worker bound; built from the environment if none was (a plain ``rq worker``)."""
    global _process_runtime
    if _process_runtime is None:
        _process_runtime = Runtime.build(Settings.from_env())
    return _process_runtime
