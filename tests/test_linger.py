"""A drain job that finds the inbox empty waits a little for more, so a trickle of comments shares one job.

Every comment pushed while a job waits, or just as it stops waiting, is still scored: by that job, or by a
drain job the API enqueues once the wait is over.
"""

from __future__ import annotations

import threading
import time
from dataclasses import replace

import pytest
import redis
from rq import Queue
from sqlalchemy import select

from service import jobs, queueing
from service.db import PENDING, Comment
from service.runtime import Runtime, bind_process_runtime
from service.settings import Settings, SettingsError
from service.web.app import create_app
from tests.conftest import drain_queues

POLITE = {"name": "Grace", "email": "grace@example.com", "text": "Interesting, I learned something today."}


@pytest.fixture
def lingering(runtime, settings):  # noqa: ARG001 - after `runtime` (which api_key uses), so it binds last
    waiting = Runtime.build(replace(settings, score_linger_seconds=1.0))
    bind_process_runtime(waiting)
    yield waiting
    bind_process_runtime(None)
    waiting.close()


@pytest.fixture
def lingering_client(lingering):
    app = create_app(lingering.settings, runtime=lingering)
    app.config["TESTING"] = True
    return app.test_client()


def drain_flag_set(runtime) -> bool:
    return bool(runtime.redis.exists(queueing.drain_flag_key(runtime.settings)))


def scoring_jobs(runtime) -> int:
    return Queue(queueing.SCORING_QUEUE, connection=runtime.redis).count


def statuses(runtime, ids):
    with runtime.session() as session:
        return dict(session.execute(select(Comment.id, Comment.status).where(Comment.id.in_(ids))).all())


class DrainInThread(threading.Thread):
    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.decided: int | None = None

    def run(self) -> None:
        self.decided = jobs.score_inbox()


def wait_until(condition, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def post(client, headers, text: str) -> str:
    response = client.post("/v1/comments", json={**POLITE, "text": text}, headers=headers)
    assert response.status_code == 202
    return response.get_json()["id"]


def test_a_comment_that_arrives_while_a_drain_job_waits_is_scored_by_it(lingering, lingering_client, api_key):
    drain = DrainInThread()
    drain.start()
    wait_until(lambda: drain_flag_set(lingering))

    comment_id = post(lingering_client, api_key.headers, "Thanks for the clear explanation.")
    drain.join(timeout=10)

    assert drain.decided == 1
    assert statuses(lingering, [comment_id])[comment_id] != PENDING
    assert scoring_jobs(lingering) == 0, "the waiting job took it: the API enqueued no job"


def test_after_the_wait_the_flag_is_cleared_and_the_next_comment_enqueues_a_job(
    lingering, lingering_client, api_key
):
    drain = DrainInThread()
    drain.start()
    drain.join(timeout=10)
    assert drain.decided == 0
    assert not drain_flag_set(lingering)

    comment_id = post(lingering_client, api_key.headers, "A second thought on this.")
    assert scoring_jobs(lingering) == 1
    drain_queues(lingering)
    assert statuses(lingering, [comment_id])[comment_id] != PENDING


class LateArrival(redis.Redis):
    """Real Redis; an id is pushed just after the blocking pop gives up, while the drain flag is still set."""

    def blpop(self, keys, timeout=0):  # noqa: ANN001, ANN201
        result = super().blpop(keys, timeout)
        self.rpush(keys[0], "late-comment")
        return result


def test_an_id_pushed_as_the_wait_ends_is_still_taken(settings, redis_url):
    connection = LateArrival.from_url(redis_url)
    try:
        inbox = queueing.InboxClaims(connection, settings, linger_until=time.monotonic() + 0.05)
        assert inbox.next_batch() == ["late-comment"]
        assert not connection.exists(queueing.drain_flag_key(settings))
        assert connection.llen(queueing.inbox_key(settings)) == 0
        assert inbox.next_batch() == []
    finally:
        connection.close()


def test_a_steady_trickle_does_not_keep_one_job_running(lingering, lingering_client, api_key):
    """The wait counts from the job's start: other queues (webhooks) get the worker back."""
    drain = DrainInThread()
    drain.start()
    wait_until(lambda: drain_flag_set(lingering))
    ids = []
    queued_while_it_ran = []
    trickle_until = time.monotonic() + 4.0
    while time.monotonic() < trickle_until:
        ids.append(post(lingering_client, api_key.headers, f"Comment number {len(ids)} on the story."))
        if drain.is_alive():
            queued_while_it_ran.append(scoring_jobs(lingering))
        time.sleep(0.05)
    job_ended_during_trickle = not drain.is_alive()
    drain.join(timeout=10)

    assert job_ended_during_trickle
    # No drain job piled up in front of the other queues while this one took the trickle.
    assert queued_while_it_ran and set(queued_while_it_ran) == {0}
    assert 0 < drain.decided < len(ids)
    drain_queues(lingering)
    assert PENDING not in statuses(lingering, ids).values(), "the rest went to jobs the API enqueued"


@pytest.mark.parametrize("raw", ["-0.1", "1.5", "soon"])
def test_linger_is_bounded(raw):
    with pytest.raises(SettingsError):
        Settings.from_env({"SCORE_LINGER_SECONDS": raw})


def test_linger_defaults_to_half_a_second():
    assert Settings.from_env({}).score_linger_seconds == 0.5


def test_a_backlog_that_outlasts_the_wait_lets_the_next_comment_start_another_job(settings, runtime):
    """Past its wait the job gives up the flag even while it still drains, so more workers join in."""
    small = replace(settings, score_batch_size=2)
    inbox = queueing.InboxClaims(runtime.redis, small, linger_until=time.monotonic() + 0.3)
    ids = [f"c{i}" for i in range(6)]
    burst = threading.Timer(0.05, queueing.enqueue_scoring, (runtime.redis, small, ids))
    burst.start()
    assert inbox.next_batch() == ["c0", "c1"]
    assert drain_flag_set(runtime), "held while the job is within its wait"
    time.sleep(0.3)
    assert inbox.next_batch() == ["c2", "c3"]
    assert not drain_flag_set(runtime)
    burst.join()
