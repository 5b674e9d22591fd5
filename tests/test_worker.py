"""The real worker process: forking RQ worker, SIGKILL mid-job, and the ``?wait=`` path end to end."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import redis
from rq.registry import StartedJobRegistry
from sqlalchemy import select

from service import jobs, queueing
from service.db import APPROVED, PENDING, Comment, StatusChange
from service.runtime import Runtime
from service.web.app import create_app
from tests.conftest import drain_queues, free_port

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
POLITE = {"name": "Linus", "email": "linus@example.com", "text": "Nice write-up, thanks for sharing it."}


def worker_environment(settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS", "DATABASE", "MODERATION"))}
    env.update(
        REDIS_URL=settings.redis_url,
        DATABASE_URL=settings.database_url,
        MODERATION_VAR_DIR=str(settings.var_dir),
        MODERATION_MODEL_DIR=str(settings.registry_dir),
        REDIS_PREFIX=settings.redis_prefix,
        RECONCILE_INTERVAL_SECONDS="0.5",
        RECONCILE_AFTER_SECONDS=str(settings.reconcile_after_seconds),
        PYTHONPATH=str(ROOT),
    )
    return env


def start_worker(
    settings,
    tmp_path: Path,
    slow_marker: Path | None = None,
    options: tuple[str, ...] = (),
    extra_env: dict[str, str] | None = None,
) -> subprocess.Popen:
    """Start ``worker.py`` (a real forking RQ worker) in its own process group.

    With ``slow_marker``, scoring first touches that file and then sleeps: the only change from the
    production worker, so the test can kill it while a job is certainly in progress.
    """
    script = tmp_path / "run_worker.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import sys, time
            sys.path.insert(0, {str(ROOT)!r})
            import worker
            from service import scoring

            marker = {str(slow_marker) if slow_marker else None!r}
            if marker:
                def slow_score(self, comments, explain=True):
                    open(marker, "w").write("scoring")
                    time.sleep(120)
                scoring.ModelHolder.score = slow_score
            sys.exit(worker.main({list(options)!r}))
            """
        )
    )
    env = {**worker_environment(settings), **(extra_env or {})}
    return subprocess.Popen([sys.executable, str(script)], env=env, cwd=ROOT, start_new_session=True)


def wait_until(predicate, timeout: float = 30.0, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False


@pytest.mark.parametrize("options", [("--fork",), ()], ids=["forking-worker", "default-worker"])
def test_sigkilled_worker_mid_job_loses_nothing_and_records_one_verdict(
    runtime, client, api_key, tmp_path, options
):
    marker = tmp_path / "scoring-started"
    comment_id = client.post("/v1/comments", json=POLITE, headers=api_key.headers).get_json()["id"]
    process = start_worker(runtime.settings, tmp_path, slow_marker=marker, options=options)
    try:
        assert wait_until(marker.exists), "the worker never started scoring"
        registry = StartedJobRegistry(queueing.SCORING_QUEUE, connection=runtime.redis)
        assert registry.get_job_ids(), "the job should be in progress"
        os.killpg(process.pid, signal.SIGKILL)  # the worker and its work horse, with no warning
        process.wait(timeout=10)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)

    with runtime.session() as session:
        assert session.get(Comment, comment_id).status == PENDING  # not lost, not decided
    assert runtime.redis.llen(queueing.inbox_key(runtime.settings)) == 0  # the claim died with it

    # A healthy worker takes over: the reconciler finds the comment once its grace period is over.
    grace = runtime.settings.with_overrides(reconcile_after_seconds=0.0)
    runtime.settings = grace
    assert jobs.reconcile(runtime).comments_requeued == 1
    drain_queues(runtime)
    registry.cleanup()  # RQ notices the dead worker's abandoned job; its callback must not re-decide

    with runtime.session() as session:
        assert session.get(Comment, comment_id).status == APPROVED
        verdicts = session.scalars(
            select(StatusChange).where(
                StatusChange.comment_id == comment_id, StatusChange.from_status == PENDING
            )
        ).all()
    assert len(verdicts) == 1
    with runtime.session() as session:
        assert session.scalars(select(Comment).where(Comment.status == PENDING)).all() == []


def test_real_worker_answers_a_waiting_post(runtime, client, api_key, tmp_path):
    process = start_worker(runtime.settings, tmp_path)
    try:
        # Warm-up: the first comment also waits for the worker's start-up (model load).
        first = client.post("/v1/comments?wait=10", json=POLITE, headers=api_key.headers)
        location = first.headers["Location"]

        def first_decided() -> bool:
            return client.get(location, headers=api_key.headers).get_json()["status"] != PENDING

        assert wait_until(first_decided, timeout=60)
        response = client.post(
            "/v1/comments?wait=5", json={**POLITE, "text": "Second comment."}, headers=api_key.headers
        )
        assert response.status_code == 201
        assert response.get_json()["status"] == APPROVED
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


def test_real_worker_reconciler_picks_up_comments_stored_while_redis_was_away(
    runtime, client, api_key, tmp_path
):
    comment_id = client.post("/v1/comments", json=POLITE, headers=api_key.headers).get_json()["id"]
    runtime.redis.flushdb()  # the queue is gone, as after a Redis restart without persistence
    process = start_worker(runtime.settings.with_overrides(reconcile_after_seconds=1.0), tmp_path)
    try:

        def decided() -> bool:
            with runtime.session() as session:
                return session.get(Comment, comment_id).status != PENDING

        assert wait_until(decided, timeout=60)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
    with runtime.session() as session:
        verdicts = session.scalars(
            select(StatusChange).where(
                StatusChange.comment_id == comment_id, StatusChange.from_status == PENDING
            )
        ).all()
    assert len(verdicts) == 1  # re-enqueued every second while pending, decided once


def test_unknown_queue_names_are_refused():
    import worker

    with pytest.raises(SystemExit) as exit_info:
        worker.main(["--queues", "scoring,nope"])
    assert exit_info.value.code == 2


def start_redis(port: int, directory: Path) -> subprocess.Popen:
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        cwd=directory,
        stdout=subprocess.DEVNULL,
    )
    assert wait_until(lambda: _pings(port), timeout=10), "redis-server did not start"
    return server


def _pings(port: int) -> bool:
    try:
        return bool(redis.Redis(port=port, socket_timeout=0.5).ping())
    except redis.RedisError:
        return False


def test_a_worker_that_loses_redis_mid_job_starts_again(settings, api_key, tmp_path):
    """RQ retries a lost connection only while it waits for a job; one lost in a job used to end the
    process. Redis dies here while a drain job waits for more comments, and comes back."""
    port = free_port()
    server = start_redis(port, tmp_path)
    own = settings.with_overrides(redis_url=f"redis://127.0.0.1:{port}", reconcile_after_seconds=1.0)
    runtime = Runtime.build(own)
    client = create_app(own, runtime=runtime).test_client()
    process = start_worker(own, tmp_path, extra_env={"SCORE_LINGER_SECONDS": "1"})

    def post(text: str) -> str:
        answer = client.post("/v1/comments", json={**POLITE, "text": text}, headers=api_key.headers)
        return answer.get_json()["id"]

    def decided(comment_id: str) -> bool:
        with runtime.session() as session:
            return session.get(Comment, comment_id).status != PENDING

    try:
        first = post("The first comment, while the worker loads its model.")
        assert wait_until(lambda: decided(first), timeout=60)
        second = post("A second one: the job that scores it then waits for more.")
        waiting = lambda: decided(second) and bool(runtime.redis.exists(queueing.drain_flag_key(own)))  # noqa: E731
        assert wait_until(waiting, timeout=10, interval=0.005), "no drain job was waiting"
        server.kill()
        server.wait(timeout=10)
        time.sleep(2)
        server = start_redis(port, tmp_path)

        third = post("After Redis came back.")
        assert wait_until(lambda: decided(third), timeout=60), "nobody scored the comment"
        assert process.poll() is None, "the worker process ended"
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        server.kill()
        runtime.close()


def test_a_worker_stops_when_asked_while_redis_is_gone(settings, api_key, tmp_path):
    """Starting RQ's loop again after a Redis loss must not outlive a SIGTERM (``make run`` stopping)."""
    port = free_port()
    server = start_redis(port, tmp_path)
    own = settings.with_overrides(redis_url=f"redis://127.0.0.1:{port}")
    runtime = Runtime.build(own)
    client = create_app(own, runtime=runtime).test_client()
    process = start_worker(own, tmp_path, extra_env={"SCORE_LINGER_SECONDS": "1"})
    try:
        comment_id = client.post("/v1/comments", json=POLITE, headers=api_key.headers).get_json()["id"]

        def decided() -> bool:
            with runtime.session() as session:
                return session.get(Comment, comment_id).status != PENDING

        assert wait_until(decided, timeout=60), "the worker never scored the first comment"
        time.sleep(1.5)  # the drain job is over: the worker waits for the next job
        # As when `make run` stops: the worker is asked to stop and its Redis goes away with it, so
        # RQ's own shutdown fails on Redis.
        process.send_signal(signal.SIGTERM)
        server.kill()
        server.wait(timeout=10)
        assert wait_until(lambda: process.poll() is not None, timeout=20), "the worker ignored SIGTERM"
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        server.kill()
        runtime.close()
