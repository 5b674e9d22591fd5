"""Redis Sentinel: a real primary, replica and sentinel on loopback; the primary is killed mid-stream.

Every comment answered 2xx before, during and after the failover gets exactly one verdict.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from sqlalchemy import func, select

from service.db import PENDING, Comment, StatusChange
from service.jobs import reconcile
from service.keys import SCOPES, create_api_key
from service.runtime import Runtime, bind_process_runtime
from service.settings import Settings, SettingsError
from service.web.app import create_app
from service.web.throttle import storage_uri
from tests.conftest import drain_queues, free_port

pytestmark = pytest.mark.slow

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
REDIS_SENTINEL = shutil.which("redis-sentinel") or "/usr/bin/redis-sentinel"
SERVICE = "moderation-test"
ROOT = Path(__file__).resolve().parent.parent
POLITE = {"name": "Grace", "email": "grace@example.com", "text": "Interesting, I learned something today."}


@dataclass
class Cluster:
    primary_port: int
    replica_port: int
    sentinel_port: int
    processes: dict[str, subprocess.Popen]

    def primary_address(self) -> tuple[str, int]:
        client = redis.Redis(port=self.sentinel_port, socket_timeout=1)
        host, port = client.sentinel_get_master_addr_by_name(SERVICE)
        return host, int(port)


def _start(command: list[str], directory: Path) -> subprocess.Popen:
    return subprocess.Popen(command, cwd=directory, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _wait_for(condition, timeout: float, message: str) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except redis.RedisError:
            pass
        time.sleep(0.1)
    raise AssertionError(message)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    if not (Path(REDIS_SERVER).exists() and Path(REDIS_SENTINEL).exists()):
        if os.environ.get("CI"):  # .ci/run installs them: on CI a missing binary is a failure, not a skip
            pytest.fail("needs redis-server and redis-sentinel")
        pytest.skip("needs redis-server and redis-sentinel")
    primary, replica, sentinel = free_port(), free_port(), free_port()
    common = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--protected-mode", "no"]
    processes: dict[str, subprocess.Popen] = {}
    try:
        for name, port, extra in (
            ("primary", primary, []),
            ("replica", replica, ["--replicaof", "127.0.0.1", str(primary)]),
        ):
            directory = tmp_path / name
            directory.mkdir()
            processes[name] = _start([REDIS_SERVER, "--port", str(port), *common, *extra], directory)
        _wait_for(
            lambda: redis.Redis(port=replica).info("replication")["master_link_status"] == "up",
            20,
            "the replica never synced",
        )
        config = tmp_path / "sentinel.conf"
        config.write_text(
            f"port {sentinel}\nbind 127.0.0.1\nprotected-mode no\n"
            f"sentinel monitor {SERVICE} 127.0.0.1 {primary} 1\n"
            f"sentinel down-after-milliseconds {SERVICE} 1000\n"
            f"sentinel failover-timeout {SERVICE} 5000\n"
        )
        processes["sentinel"] = _start([REDIS_SENTINEL, str(config)], tmp_path)
        running = Cluster(primary, replica, sentinel, processes)
        _wait_for(lambda: running.primary_address()[1] == primary, 20, "sentinel never saw the primary")
        # The sentinel must know the replica before the primary dies, or it has nothing to promote.
        _wait_for(
            lambda: redis.Redis(port=sentinel).sentinel_slaves(SERVICE),
            20,
            "sentinel never discovered the replica",
        )
        yield running
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)


def test_sentinel_settings():
    settings = Settings.from_env(
        {"REDIS_SENTINELS": "10.0.0.1:26379, [::1]:26380", "REDIS_SENTINEL_SERVICE": "m"}
    )
    assert settings.redis_sentinels == (("10.0.0.1", 26379), ("::1", 26380))
    assert settings.redis_sentinel_service == "m"
    assert settings.external_redis
    assert Settings.from_env({}).redis_sentinels == ()
    with pytest.raises(SettingsError, match="REDIS_SENTINELS"):
        Settings.from_env({"REDIS_SENTINELS": "10.0.0.1"})


def sentinel_settings(cluster: Cluster, tmp_path: Path, database_url: str, registry, **overrides) -> Settings:  # noqa: ANN001
    """The service's settings for this cluster: Redis found through its sentinel."""
    return Settings(
        redis_sentinels=(("127.0.0.1", cluster.sentinel_port),),
        redis_sentinel_service=SERVICE,
        database_url=database_url,
        var_dir=tmp_path / "var",
        model_dir=registry.root,
        secret_key="test-secret",
        **overrides,
    )


def verdicts_per_comment(runtime: Runtime) -> dict[str, int]:
    """How many times each comment left ``pending``: exactly once is the promise."""
    with runtime.session() as session:
        return dict(
            session.execute(
                select(StatusChange.comment_id, func.count())
                .where(StatusChange.from_status == PENDING)
                .group_by(StatusChange.comment_id)
            ).all()
        )


def test_the_service_goes_on_after_the_primary_dies(cluster: Cluster, tmp_path, database_url, tiny_registry):
    settings = sentinel_settings(
        cluster,
        tmp_path,
        database_url,
        tiny_registry,
        # Re-enqueue at once whatever the dead primary had not passed on to its replica.
        reconcile_after_seconds=0.0,
        redis_prefix="sentinel",
        comment_rate_limit="1000/second",  # the limiter must follow the failover too
    )
    runtime = Runtime.build(settings)
    bind_process_runtime(runtime)
    try:
        assert runtime.redis.connection_pool.get_master_address()[1] == cluster.primary_port
        assert storage_uri(runtime) == f"redis+sentinel://127.0.0.1:{cluster.sentinel_port}/{SERVICE}"
        client = create_app(settings, runtime=runtime).test_client()
        with runtime.session() as session:
            key = create_api_key(session, "cms", SCOPES)
        headers = {"Authorization": f"Bearer {key.secret}"}

        def post(count: int) -> list[str]:
            ids = []
            for _ in range(count):
                answer = client.post("/v1/comments", json=POLITE, headers=headers)
                assert answer.status_code == 202, answer.get_json()
                ids.append(answer.get_json()["id"])
            return ids

        accepted = post(10)
        drain_queues(runtime)
        accepted += post(5)  # queued on the primary, not yet scored

        cluster.processes["primary"].kill()
        cluster.processes["primary"].wait(timeout=10)
        accepted += post(5)  # during the failover: stored, enqueue fails, the reconciler has them
        _wait_for(
            lambda: cluster.primary_address()[1] == cluster.replica_port,
            30,
            "sentinel never promoted the replica",
        )
        _wait_for(
            lambda: redis.Redis(port=cluster.replica_port).info("replication")["role"] == "master",
            30,
            "the replica never became a primary",
        )
        # Until the sentinel has finished the failover, clients are told there is no primary.
        _wait_for(
            lambda: runtime.redis.connection_pool.get_master_address()[1] == cluster.replica_port,
            30,
            "the client never found the new primary",
        )
        accepted += post(10)  # after: straight to the new primary
        inbox = redis.Redis(port=cluster.replica_port).lrange("sentinel:inbox", 0, -1)
        assert {item.decode() for item in inbox} >= set(accepted[-10:])

        for _ in range(3):
            reconcile(runtime)
            drain_queues(runtime)

        with runtime.session() as session:
            assert session.scalar(select(func.count()).where(Comment.status == PENDING)) == 0
        verdicts = verdicts_per_comment(runtime)
        assert len(accepted) == 30
        assert {comment_id: verdicts.get(comment_id) for comment_id in accepted} == dict.fromkeys(accepted, 1)
        assert client.get("/readyz").get_json()["checks"]["redis"]["ok"] is True
    finally:
        bind_process_runtime(None)
        runtime.close()


def _worker_environment(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS", "DATABASE", "MODERATION"))}
    env.update(
        REDIS_SENTINELS=",".join(f"{host}:{port}" for host, port in settings.redis_sentinels),
        REDIS_SENTINEL_SERVICE=settings.redis_sentinel_service,
        DATABASE_URL=settings.database_url,
        MODERATION_VAR_DIR=str(settings.var_dir),
        MODERATION_MODEL_DIR=str(settings.registry_dir),
        REDIS_PREFIX=settings.redis_prefix,
        SECRET_KEY=settings.secret_key,
        RECONCILE_INTERVAL_SECONDS="0.5",
        RECONCILE_AFTER_SECONDS="1",
        PYTHONPATH=str(ROOT),
    )
    return env


def test_a_real_worker_under_load_goes_on_after_the_primary_dies(
    cluster: Cluster, tmp_path, database_url, tiny_registry
):
    """worker.py, as deployed, through the failover: comments posted at a steady rate before, during
    and after it are all scored by that same process, each exactly once."""
    settings = sentinel_settings(
        cluster,
        tmp_path,
        database_url,
        tiny_registry,
        reconcile_after_seconds=1.0,
        redis_prefix="sentinel-load",
    )
    runtime = Runtime.build(settings)
    bind_process_runtime(runtime)
    worker = subprocess.Popen(
        [sys.executable, "worker.py"], env=_worker_environment(settings), cwd=ROOT, start_new_session=True
    )
    try:
        client = create_app(settings, runtime=runtime).test_client()
        with runtime.session() as session:
            key = create_api_key(session, "cms", SCOPES)
        headers = {"Authorization": f"Bearer {key.secret}"}
        accepted: list[str] = []
        refused: list[int] = []

        def post_steadily(seconds: float, rate: float = 25.0) -> None:
            started = time.monotonic()
            for i in range(int(seconds * rate)):
                time.sleep(max(0.0, started + i / rate - time.monotonic()))
                body = {**POLITE, "text": f"Comment {i}."}
                answer = client.post("/v1/comments", json=body, headers=headers)
                if answer.status_code == 202:
                    accepted.append(answer.get_json()["id"])
                else:
                    refused.append(answer.status_code)

        load = threading.Thread(target=post_steadily, args=(20.0,))
        load.start()
        time.sleep(5)
        cluster.processes["primary"].kill()
        cluster.processes["primary"].wait(timeout=10)
        load.join(timeout=120)
        assert not load.is_alive()

        def all_decided() -> bool:
            with runtime.session() as session:
                pending = session.scalar(
                    select(func.count()).where(Comment.id.in_(accepted), Comment.status == PENDING)
                )
            return pending == 0

        _wait_for(all_decided, 120, "comments still pending long after the failover")
        assert cluster.primary_address()[1] == cluster.replica_port
        assert worker.poll() is None, "the worker process died in the failover"
        verdicts = verdicts_per_comment(runtime)
        assert refused == [], "the API stores a comment and answers 202 even with no Redis primary"
        assert len(accepted) == 500
        assert {comment_id: verdicts.get(comment_id) for comment_id in accepted} == dict.fromkeys(accepted, 1)
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(timeout=10)
        bind_process_runtime(None)
        runtime.close()
