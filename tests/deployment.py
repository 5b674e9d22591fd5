"""The production deployment of README "Running in production", on several hosts of one machine.

Each host is a network namespace of its own (``ip netns``), joined to a bridge in the root namespace,
where the test or bench runs (and receives webhooks):

    root (test, webhook receiver) 10.A.B.1 ─┐
    db   PostgreSQL on 10.A.B.2 ────────────┤ bridge, 10.A.B.0/25
    api  gunicorn  on 10.A.B.3 ─────────────┤
    w1…  python worker.py on 10.A.B.4… ─────┘
    api 10.A.B.130 ══ its own link ══ 10.A.B.129 db: Redis

Redis listens only on the db host's end of a link of its own to the API host; the workers and the
root namespace reach it through the db host's bridge address. Taking that link down therefore cuts
the API from Redis and from nothing else: PostgreSQL, on the bridge, stays reachable, and so does
Redis for the workers. The db host's end goes down, so the API's packets vanish silently, as in a
real partition, rather than failing fast with "network unreachable".

Names carry the pid (namespaces ``moderation-<pid>-<host>``, links ``mh<pid>…``, and the subnet is
derived from it), so concurrent runs do not meet. Everything is torn down on leaving
:func:`deployment`, whatever happened; what a run killed before its teardown left behind is removed
by the next. Needs root and ``ip`` (iproute2).
"""

from __future__ import annotations

import contextlib
import glob
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REDIS_SERVER = "/usr/bin/redis-server"
SECRET_KEY = "several-hosts-secret"
DATABASE = "moderation"
API_PORT = 8000
REDIS_PORT = 6379
POSTGRES_PORT = 5432
#: The link's name on both of its ends (each end lives in its own namespace).
REDIS_LINK = "redis0"


def missing_requirements() -> list[str]:
    """What this machine lacks to run a deployment (empty when it can)."""
    missing = []
    if os.geteuid() != 0:
        missing.append("root (network namespaces)")
    if shutil.which("ip") is None:
        missing.append("ip (iproute2)")
    if shutil.which("runuser") is None:
        missing.append("runuser (util-linux)")
    if not Path(REDIS_SERVER).exists():
        missing.append(REDIS_SERVER)
    if postgres_bin_dir() is None:
        missing.append("/usr/lib/postgresql/*/bin/postgres")
    return missing


def postgres_bin_dir() -> Path | None:
    """The newest installed PostgreSQL's ``bin`` directory (Debian's layout)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"), key=lambda p: int(p.split("/")[4]))
    return Path(found[-1]).parent if found else None


# --- addresses -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Addresses:
    """One run's 10.A.B.0/24, derived from the pid so that concurrent runs differ."""

    prefix: str  # "10.A.B"

    @classmethod
    def for_pid(cls, pid: int) -> Addresses:
        return cls(f"10.{100 + (pid >> 8) % 100}.{pid & 255}")

    @property
    def bridge_network(self) -> str:
        return f"{self.prefix}.0/25"

    @property
    def root(self) -> str:
        return f"{self.prefix}.1"

    @property
    def db(self) -> str:
        return f"{self.prefix}.2"

    @property
    def api(self) -> str:
        return f"{self.prefix}.3"

    def worker(self, index: int) -> str:
        return f"{self.prefix}.{3 + index}"  # worker 1 is .4

    @property
    def redis_network(self) -> str:
        return f"{self.prefix}.128/30"

    @property
    def redis(self) -> str:
        return f"{self.prefix}.129"  # the db host's end of the Redis link

    @property
    def api_redis_end(self) -> str:
        return f"{self.prefix}.130"


# --- commands --------------------------------------------------------------------------------------


def run(*command: str) -> str:
    """Run a command to completion; its stderr in the exception when it fails."""
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)}: exit {result.returncode}: {result.stderr.strip()}")
    return result.stdout


def in_namespace(namespace: str, *command: str) -> str:
    return run("ip", "netns", "exec", namespace, *command)


def namespace_pids(namespace: str) -> list[int]:
    try:
        return [int(pid) for pid in run("ip", "netns", "pids", namespace).split()]
    except RuntimeError:  # the namespace is gone
        return []


def remove_leftovers() -> None:
    """Stop and delete what runs killed before their teardown left: their servers would run on."""
    for line in run("ip", "netns", "list").splitlines():
        match = re.match(r"(moderation-(\d+)-\S+)", line)
        if match and not _alive(int(match.group(2))):
            for pid in namespace_pids(match.group(1)):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            subprocess.run(["ip", "netns", "del", match.group(1)], capture_output=True)
    for line in run("ip", "-o", "link", "show", "type", "bridge").splitlines():
        match = re.match(r"\d+: (mh(\d+)br):", line)
        if match and not _alive(int(match.group(2))):
            subprocess.run(["ip", "link", "del", match.group(1)], capture_output=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def wait_for_port(address: str, port: int, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((address, port), timeout=0.5):
            return
        time.sleep(0.1)
    raise RuntimeError(f"{what} does not listen on {address}:{port} after {timeout:.0f} s")


# --- the webhook receiver (a CMS, in the root namespace) --------------------------------------------


@dataclass
class Delivery:
    delivery_id: str
    signature: str
    body: bytes

    @property
    def comment(self) -> dict:
        return json.loads(self.body)["comment"]


@dataclass
class WebhookRecorder:
    """Records every webhook POST it is sent and answers 200."""

    url: str = ""
    deliveries: list[Delivery] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, delivery: Delivery) -> None:
        with self.lock:
            self.deliveries.append(delivery)

    def received(self) -> list[Delivery]:
        with self.lock:
            return list(self.deliveries)


@contextlib.contextmanager
def webhook_recorder(address: str) -> Iterator[WebhookRecorder]:
    recorder = WebhookRecorder()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            recorder.record(
                Delivery(
                    self.headers.get("X-Moderation-Delivery", ""),
                    self.headers.get("X-Moderation-Signature", ""),
                    body,
                )
            )
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer((address, 0), Handler)
    server.daemon_threads = True
    recorder.url = f"http://{address}:{server.server_address[1]}/hooks/moderation"
    thread = threading.Thread(target=server.serve_forever, name="webhook-recorder", daemon=True)
    thread.start()
    try:
        yield recorder
    finally:
        server.shutdown()
        server.server_close()


# --- the deployment --------------------------------------------------------------------------------


@dataclass
class Host:
    name: str
    namespace: str
    address: str
    processes: list[subprocess.Popen] = field(default_factory=list)


@dataclass
class Deployment:
    run_id: str
    workdir: Path
    addresses: Addresses
    model_dir: Path
    worker_hosts: int
    extra_env: dict[str, str]
    hosts: dict[str, Host] = field(default_factory=dict)
    links: list[str] = field(default_factory=list)

    @property
    def bridge(self) -> str:
        return f"{self.run_id}br"

    @property
    def redis_url(self) -> str:
        return f"redis://{self.addresses.redis}:{REDIS_PORT}/0"

    @property
    def database_url(self) -> str:
        return f"postgresql://postgres@{self.addresses.db}:{POSTGRES_PORT}/{DATABASE}"

    @property
    def api_address(self) -> tuple[str, int]:
        return self.addresses.api, API_PORT

    def worker_host_names(self) -> list[str]:
        return [f"w{index}" for index in range(1, self.worker_hosts + 1)]

    def env(self, host: str) -> dict[str, str]:
        """The same service settings for every process (README "Running in production")."""
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "C.UTF-8",
            "HOME": str(self.workdir),
            "PYTHONPATH": str(ROOT),
            "REDIS_URL": self.redis_url,
            "DATABASE_URL": self.database_url,
            "SECRET_KEY": SECRET_KEY,
            "MODERATION_MODEL_DIR": str(self.model_dir),
            "MODERATION_VAR_DIR": str(self.workdir / host / "var"),
            "LOG_LEVEL": "WARNING",
            # One BLAS thread per process: two cores, several processes.
            "OMP_NUM_THREADS": "1",
            "OPENBLAS_NUM_THREADS": "1",
        }
        env.update(self.extra_env)
        return env

    # --- network ---

    def add_host(self, name: str, address: str) -> Host:
        namespace = f"moderation-{os.getpid()}-{name}"
        host = Host(name, namespace, address)
        self.hosts[name] = host  # before it exists, so teardown deletes a half-made one too
        run("ip", "netns", "add", namespace)
        in_namespace(namespace, "ip", "link", "set", "lo", "up")
        outer, inner = f"{self.run_id}{name}", f"{self.run_id}{name}i"
        run("ip", "link", "add", outer, "type", "veth", "peer", "name", inner)
        self.links.append(outer)
        run("ip", "link", "set", inner, "netns", namespace)
        run("ip", "link", "set", outer, "master", self.bridge, "up")
        in_namespace(namespace, "ip", "link", "set", inner, "name", "eth0")
        in_namespace(namespace, "ip", "addr", "add", f"{address}/25", "dev", "eth0")
        in_namespace(namespace, "ip", "link", "set", "eth0", "up")
        (self.workdir / name).mkdir()
        return host

    def build_network(self) -> None:
        run("ip", "link", "add", self.bridge, "type", "bridge")
        self.links.append(self.bridge)
        run("ip", "addr", "add", f"{self.addresses.root}/25", "dev", self.bridge)
        run("ip", "link", "set", self.bridge, "up")
        db = self.add_host("db", self.addresses.db)
        api = self.add_host("api", self.addresses.api)
        for index, name in enumerate(self.worker_host_names(), start=1):
            self.add_host(name, self.addresses.worker(index))
        # The API's own link to Redis, the only way it reaches Redis.
        db_end, api_end = f"{self.run_id}rd", f"{self.run_id}ra"
        run("ip", "link", "add", db_end, "type", "veth", "peer", "name", api_end)
        self.links.append(db_end)
        for host, end, address in (
            (db, db_end, self.addresses.redis),
            (api, api_end, self.addresses.api_redis_end),
        ):
            run("ip", "link", "set", end, "netns", host.namespace)
            in_namespace(host.namespace, "ip", "link", "set", end, "name", REDIS_LINK)
            in_namespace(host.namespace, "ip", "addr", "add", f"{address}/30", "dev", REDIS_LINK)
            in_namespace(host.namespace, "ip", "link", "set", REDIS_LINK, "up")
        # Everyone else reaches Redis through the db host's bridge address (a host accepts packets
        # for any of its addresses on any of its links).
        for name in ("root", *self.worker_host_names()):
            route = ("ip", "route", "add", self.addresses.redis_network, "via", self.addresses.db)
            if name == "root":
                run(*route)
            else:
                in_namespace(self.hosts[name].namespace, *route)

    def cut_api_from_redis(self) -> None:
        in_namespace(self.hosts["db"].namespace, "ip", "link", "set", REDIS_LINK, "down")

    def restore_api_to_redis(self) -> None:
        in_namespace(self.hosts["db"].namespace, "ip", "link", "set", REDIS_LINK, "up")

    # --- processes ---

    def start(
        self, host: str, command: list[str], log_name: str, user: str | None = None
    ) -> subprocess.Popen:
        """Start ``command`` in ``host``'s namespace, its output in ``<workdir>/<host>/<log_name>.log``."""
        prefix = ["runuser", "-u", user, "--"] if user else []
        with open(self.workdir / host / f"{log_name}.log", "ab") as log:
            process = subprocess.Popen(
                ["ip", "netns", "exec", self.hosts[host].namespace, *prefix, *command],
                env=self.env(host),
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.hosts[host].processes.append(process)
        return process

    def start_database_host(self) -> None:
        bin_dir = postgres_bin_dir()
        assert bin_dir is not None
        data = self.workdir / "db" / "pgdata"
        data.mkdir(mode=0o700)
        shutil.chown(data, "postgres", "postgres")
        run("runuser", "-u", "postgres", "--", str(bin_dir / "initdb"), "-D", str(data), "-A", "trust",
            "-U", "postgres", "--no-sync")  # fmt: skip
        with open(data / "pg_hba.conf", "a") as hba:
            hba.write(f"host all all {self.addresses.bridge_network} trust\n")
        postgres = [
            str(bin_dir / "postgres"),
            "-D", str(data),
            "-c", f"listen_addresses={self.addresses.db}",
            "-c", f"port={POSTGRES_PORT}",
            "-c", f"unix_socket_directories={data}",
            "-c", "max_connections=200",
        ]  # fmt: skip
        self.start("db", postgres, "postgres", user="postgres")
        redis_dir = self.workdir / "db" / "redis"
        redis_dir.mkdir()
        redis_server = [
            REDIS_SERVER,
            "--bind", self.addresses.redis,
            "--port", str(REDIS_PORT),
            "--protected-mode", "no",
            "--appendonly", "yes",
            "--save", "",
            "--dir", str(redis_dir),
        ]  # fmt: skip
        self.start("db", redis_server, "redis")
        wait_for_port(self.addresses.db, POSTGRES_PORT, 60, "PostgreSQL")
        wait_for_port(self.addresses.redis, REDIS_PORT, 30, "Redis")
        create_database(self.addresses.db)
        # The schema once, before the processes that would all race to create it.
        from service.connections import connect_database

        connect_database(self.settings()).dispose()

    def start_api_host(self, web_workers: int = 2, threads: int = 4) -> None:
        multiprocess_dir = self.workdir / "api" / "prometheus"
        multiprocess_dir.mkdir()
        self.extra_env.setdefault("PROMETHEUS_MULTIPROC_DIR", str(multiprocess_dir))
        gunicorn = [
            sys.executable, "-m", "gunicorn",
            "--bind", f"{self.addresses.api}:{API_PORT}",
            "--workers", str(web_workers),
            "--threads", str(threads),
            "--preload",
            "--log-level", "warning",
            "service:create_app()",
        ]  # fmt: skip
        self.start("api", gunicorn, "gunicorn")
        wait_for_port(self.addresses.api, API_PORT, 60, "gunicorn")

    def start_worker_host(self, name: str) -> None:
        """``python worker.py --processes 1``; its reconciler thread runs in the same process."""
        self.start(name, [sys.executable, "worker.py", "--processes", "1"], "worker")

    def wait_for_workers(self, count: int, timeout: float = 60.0) -> None:
        """Until ``count`` RQ workers are registered (each has loaded its model by then)."""
        import redis
        from rq import Worker

        connection = redis.Redis.from_url(self.redis_url, socket_timeout=2)
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                alive = [
                    worker for worker in Worker.all(connection=connection) if worker.get_state() != "dead"
                ]
                if len(alive) >= count:
                    return
                time.sleep(0.2)
        finally:
            connection.close()
        raise RuntimeError(
            f"fewer than {count} workers registered after {timeout:.0f} s:\n{self.log_tails()}"
        )

    def kill_host(self, name: str) -> list[int]:
        """SIGKILL every process in the host, as when a machine loses power; returns their pids.

        Again until none is left: a process may fork between the listing and the kill (RQ starts its
        scheduler in a child a moment after the worker), and its child must die too.
        """
        killed: list[int] = []
        deadline = time.monotonic() + 10
        while (pids := namespace_pids(self.hosts[name].namespace)) and time.monotonic() < deadline:
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            killed += [pid for pid in pids if pid not in killed]
            time.sleep(0.05)
        for process in self.hosts[name].processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=10)
        self.hosts[name].processes.clear()
        return killed

    def stop_host(self, name: str, timeout: float = 20.0) -> None:
        """SIGTERM every process in the host (a clean shutdown), then SIGKILL whatever is left."""
        host = self.hosts[name]
        for pid in namespace_pids(host.namespace):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while namespace_pids(host.namespace) and time.monotonic() < deadline:
            time.sleep(0.1)
        self.kill_host(name)

    def settings(self):  # noqa: ANN201 - service.settings is imported late, after sys.path is set
        from service.settings import Settings

        return Settings(
            redis_url=self.redis_url,
            database_url=self.database_url,
            secret_key=SECRET_KEY,
            var_dir=self.workdir,
        )

    def log_tails(self, lines: int = 15) -> str:
        """The last lines of every process's log, for a failure message."""
        out = []
        for log in sorted(self.workdir.glob("*/*.log")):
            tail = log.read_text(errors="replace").splitlines()[-lines:]
            out.append(f"--- {log.relative_to(self.workdir)}\n" + "\n".join(tail))
        return "\n".join(out)

    # --- teardown ---

    def tear_down(self) -> None:
        """Stop everything, delete the namespaces and links. Safe on a half-built deployment."""
        for name in reversed(list(self.hosts)):  # the db host last: its clients go first
            if name == "db":
                # A fast shutdown lets PostgreSQL release its shared memory; SIGKILL would leave it.
                _signal_postmaster(self.workdir / "db" / "pgdata")
            with contextlib.suppress(Exception):
                self.stop_host(name, timeout=10.0 if name == "db" else 3.0)
        for host in self.hosts.values():
            subprocess.run(["ip", "netns", "del", host.namespace], capture_output=True)
        for link in reversed(self.links):
            subprocess.run(["ip", "link", "del", link], capture_output=True)  # gone with its peer, mostly
        subprocess.run(["ip", "route", "del", self.addresses.redis_network], capture_output=True)


def _signal_postmaster(data: Path) -> None:
    """SIGINT (fast shutdown) to the postmaster named in ``postmaster.pid``."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        pid = int((data / "postmaster.pid").read_text().splitlines()[0])
        os.kill(pid, signal.SIGINT)


def create_database(address: str) -> None:
    from sqlalchemy import text

    from service.db import make_engine

    admin = make_engine(f"postgresql://postgres@{address}:{POSTGRES_PORT}/postgres")
    deadline = time.monotonic() + 30
    try:
        while True:
            try:
                with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
                    connection.execute(text(f"CREATE DATABASE {DATABASE}"))
                return
            except Exception:
                if time.monotonic() > deadline:  # still starting up (the port opens first)
                    raise
                time.sleep(0.2)
    finally:
        admin.dispose()


@contextlib.contextmanager
def deployment(
    model_dir: Path,
    worker_hosts: int = 2,
    extra_env: dict[str, str] | None = None,
    start_workers: bool = True,
) -> Iterator[Deployment]:
    """The whole deployment, started (databases, API, ``worker_hosts`` worker hosts); torn down after."""
    pid = os.getpid()
    workdir = Path(tempfile.mkdtemp(prefix=f"moderation-hosts-{pid}-"))
    workdir.chmod(0o711)  # the postgres user must reach its data directory inside
    remove_leftovers()
    # Link names are at most 15 characters: "mh<pid><host>i" is at most 13.
    run_id = f"mh{pid}"
    built = Deployment(
        run_id, workdir, Addresses.for_pid(pid), model_dir, worker_hosts, dict(extra_env or {})
    )
    try:
        built.build_network()
        built.start_database_host()
        built.start_api_host()
        if start_workers:
            for name in built.worker_host_names():
                built.start_worker_host(name)
            built.wait_for_workers(worker_hosts)
        yield built
    finally:
        built.tear_down()
        shutil.rmtree(workdir, ignore_errors=True)


# --- a CMS client ----------------------------------------------------------------------------------


class ApiClient:
    """A keep-alive HTTP/1.1 client of the API host; one per thread."""

    def __init__(self, address: tuple[str, int], api_key: str, timeout: float = 30.0):
        self.address = address
        self.timeout = timeout
        self.headers = {"Content-Type": "application/json", "Authorization": f"Bearer {api_key}"}
        self.connection = http.client.HTTPConnection(*address, timeout=timeout)

    def post_comment(self, body: dict) -> tuple[int, dict | None]:
        """(status, JSON answer); status 0 when the request failed without an answer."""
        try:
            self.connection.request("POST", "/v1/comments", body=json.dumps(body), headers=self.headers)
            response = self.connection.getresponse()
            raw = response.read()
        except (OSError, http.client.HTTPException):
            self.connection.close()
            self.connection = http.client.HTTPConnection(*self.address, timeout=self.timeout)
            return 0, None
        try:
            return response.status, json.loads(raw) if raw else None
        except ValueError:
            return response.status, None

    def close(self) -> None:
        self.connection.close()


@dataclass(frozen=True)
class CmsKey:
    secret: str
    id: int


def make_api_key(deployment: Deployment, webhook_url: str | None = None) -> CmsKey:
    """A CMS key (every scope), with a webhook when ``webhook_url`` is given."""
    from service.connections import connect_database
    from service.db import make_session_factory
    from service.keys import SCOPES, create_api_key

    engine = connect_database(deployment.settings())
    try:
        with make_session_factory(engine)() as session:
            new = create_api_key(
                session, "several-hosts", SCOPES, webhook_url=webhook_url, sealing_key=SECRET_KEY
            )
            return CmsKey(new.secret, new.api_key.id)
    finally:
        engine.dispose()
