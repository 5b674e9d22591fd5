"""Nothing is lost: Redis down, database down, no model, scoring errors, lost jobs, failing webhooks."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from rq import Queue
from rq.job import Job
from sqlalchemy import select, update

from service import jobs, queueing, store, webhooks
from service.db import APPROVED, HELD, PENDING, Comment, StatusChange, WebhookDelivery, utcnow
from service.keys import create_api_key, server_secret
from service.runtime import Runtime, bind_process_runtime
from service.store import StatusUpdate
from service.web.app import create_app
from tests.conftest import drain_queues, free_port

POLITE = {"name": "Grace", "email": "grace@example.com", "text": "Interesting, I learned something today."}


def final_changes(runtime, comment_id):
    with runtime.session() as session:
        return session.scalars(
            select(StatusChange).where(
                StatusChange.comment_id == comment_id, StatusChange.from_status == PENDING
            )
        ).all()


def make_stale(runtime, comment_id=None):
    """Pretend the last enqueue happened long ago (instead of sleeping through the grace period)."""
    statement = update(Comment).values(enqueued_at=utcnow() - timedelta(hours=1))
    if comment_id:
        statement = statement.where(Comment.id == comment_id)
    with runtime.session() as session:
        session.execute(statement)
        session.commit()


# --- Redis down ------------------------------------------------------------------------------------


def test_redis_down_still_stores_and_answers_202_then_reconciler_scores_it(settings, runtime, api_key):
    dead_redis = settings.with_overrides(redis_url=f"redis://127.0.0.1:{free_port()}/0")
    offline = create_app(dead_redis, runtime=Runtime.build(dead_redis))

    response = offline.test_client().post("/v1/comments", json=POLITE, headers=api_key.headers)

    assert response.status_code == 202
    comment_id = response.get_json()["id"]
    with runtime.session() as session:
        assert session.get(Comment, comment_id).status == PENDING
    # Redis is back (the healthy runtime); once the grace period has passed the reconciler requeues.
    assert jobs.reconcile(runtime).comments_requeued == 0
    make_stale(runtime, comment_id)
    assert jobs.reconcile(runtime).comments_requeued == 1
    drain_queues(runtime)
    with runtime.session() as session:
        assert session.get(Comment, comment_id).status == APPROVED


def test_ingest_reconnects_after_redis_drops_its_connection(runtime, client, api_key):
    # The API keeps one Redis connection per thread; a Redis restart or CLIENT KILL breaks it.
    first = client.post("/v1/comments", json=POLITE, headers=api_key.headers).get_json()["id"]
    killed = runtime.redis.client_kill_filter(_id=runtime.thread_redis.client_id())
    second = client.post("/v1/comments", json=POLITE, headers=api_key.headers).get_json()["id"]

    assert killed == 1
    inbox = runtime.redis.lrange(queueing.inbox_key(runtime.settings), 0, -1)
    assert [item.decode() for item in inbox] == [first, second]


def test_each_thread_keeps_its_own_redis_connection(runtime):
    clients = []
    thread = threading.Thread(target=lambda: clients.append(runtime.thread_redis))
    thread.start()
    thread.join()

    assert runtime.thread_redis is runtime.thread_redis
    assert clients[0] is not runtime.thread_redis
    assert clients[0].connection is not runtime.thread_redis.connection


def test_reconciler_survives_redis_down_and_loses_nothing(settings, runtime, client, api_key):
    comment_id = client.post("/v1/comments", json=POLITE, headers=api_key.headers).get_json()["id"]
    runtime.redis.flushdb()  # Redis restarted without persistence: the job is gone
    make_stale(runtime, comment_id)
    dead_redis = settings.with_overrides(redis_url=f"redis://127.0.0.1:{free_port()}/0")

    import redis as redis_lib

    with pytest.raises(redis_lib.RedisError):
        jobs.reconcile(Runtime.build(dead_redis))
    with runtime.session() as session:  # the failed attempt did not mark it as enqueued
        assert session.get(Comment, comment_id).enqueued_at < utcnow() - timedelta(minutes=30)

    jobs.reconcile(runtime)
    drain_queues(runtime)
    assert len(final_changes(runtime, comment_id)) == 1


# --- database down ---------------------------------------------------------------------------------


def test_database_down_is_503_with_retry_after(settings, runtime, api_key):
    down = settings.with_overrides(database_url=f"postgresql://postgres@127.0.0.1:{free_port()}/test")
    app = create_app(down, runtime=Runtime(down, *_lazy_database(down), runtime.redis, runtime.models))

    response = app.test_client().post("/v1/comments", json=POLITE, headers=api_key.headers)

    assert response.status_code == 503
    assert response.headers["Retry-After"].isdigit()
    assert response.get_json()["error"]["code"] == "database_unavailable"
    assert app.test_client().get("/readyz").status_code == 503


def _lazy_database(settings):
    from service.db import make_engine, make_session_factory

    engine = make_engine(settings.effective_database_url)  # no connection until first use
    return engine, make_session_factory(engine)


# --- cannot decide: hold for a human ---------------------------------------------------------------


def test_no_model_holds_as_unscored_never_approves(settings, api_key, tmp_path):
    empty = settings.with_overrides(model_dir=tmp_path / "no-models")
    runtime = Runtime.build(empty)
    bind_process_runtime(runtime)
    app = create_app(empty, runtime=runtime)
    comment_id = app.test_client().post("/v1/comments", json=POLITE, headers=api_key.headers).get_json()["id"]

    drain_queues(runtime)

    with runtime.session() as session:
        comment = session.get(Comment, comment_id)
        assert (comment.status, comment.reason) == (HELD, "unscored")
    assert app.test_client().get("/readyz").status_code == 503


class ExplodingModel:
    def __init__(self, version):
        self.version = version  # the active version, so the holder does not swap it out

    def score(self, comments, explain=True):
        raise RuntimeError("boom")


def test_scoring_error_holds_as_unscored(runtime, client, api_key):
    runtime.models._model = ExplodingModel(runtime.models.registry.active_version())
    comment_id = client.post("/v1/comments", json=POLITE, headers=api_key.headers).get_json()["id"]

    drain_queues(runtime)

    with runtime.session() as session:
        comment = session.get(Comment, comment_id)
        assert (comment.status, comment.reason) == (HELD, "unscored")
        assert comment.scores is None


def test_failed_job_routes_its_claimed_comments_to_a_human(runtime, client, api_key):
    comment_id = client.post("/v1/comments", json=POLITE, headers=api_key.headers).get_json()["id"]
    queue = Queue(queueing.SCORING_QUEUE, connection=runtime.redis)
    job = queue.jobs[0]
    job.meta["claimed"] = [comment_id]
    job.retries_left = 0

    jobs.hold_claimed_comments(job, runtime.redis, RuntimeError, RuntimeError("db gone"), None)

    with runtime.session() as session:
        assert session.get(Comment, comment_id).status == HELD


def test_failure_callback_waits_while_retries_remain(runtime, client, api_key):
    comment_id = client.post("/v1/comments", json=POLITE, headers=api_key.headers).get_json()["id"]
    job = Job.fetch(
        Queue(queueing.SCORING_QUEUE, connection=runtime.redis).job_ids[0], connection=runtime.redis
    )
    job.meta["claimed"] = [comment_id]

    jobs.hold_claimed_comments(job, runtime.redis, RuntimeError, RuntimeError("transient"), None)

    with runtime.session() as session:
        assert session.get(Comment, comment_id).status == PENDING


# --- exactly one verdict ---------------------------------------------------------------------------


def test_a_comment_enqueued_twice_gets_exactly_one_verdict(runtime, client, api_key):
    comment_id = client.post("/v1/comments", json=POLITE, headers=api_key.headers).get_json()["id"]
    queueing.enqueue_scoring(runtime.redis, runtime.settings, [comment_id, comment_id])
    make_stale(runtime, comment_id)
    jobs.reconcile(runtime)

    drain_queues(runtime)
    jobs.score_comments(runtime, [comment_id])  # a late duplicate job

    assert len(final_changes(runtime, comment_id)) == 1


def post_polite(client, headers, count):
    return [
        client.post(
            "/v1/comments", json={**POLITE, "text": f"{POLITE['text']} {i}"}, headers=headers
        ).get_json()["id"]
        for i in range(count)
    ]


def test_a_comment_decided_by_someone_else_mid_batch_keeps_that_decision(runtime, client, api_key):
    ids = post_polite(client, api_key.headers, 3)
    taken = ids[1]
    with runtime.session() as session:
        comments = store.pending_comments(session, ids)  # the batch is loaded, all pending
        verdict = StatusUpdate(APPROVED, "clean", actor="model:test", scores={"spam": 0.1})
        # ... and before its verdicts are written, a moderator decides one of its comments.
        with runtime.session() as other:
            assert store.change_status(
                other, other.get(Comment, taken), StatusUpdate(HELD, "moderator", actor="moderator:ada")
            )
            other.commit()
        assert store.change_statuses(session, [(c, verdict) for c in comments], PENDING) is None
        session.rollback()

        changes = jobs.record_verdicts(session, [(c, verdict) for c in comments])
        session.commit()

    assert sorted(change.comment.id for change in changes) == sorted(set(ids) - {taken})
    with runtime.session() as session:
        statuses = dict(session.execute(select(Comment.id, Comment.status).where(Comment.id.in_(ids))).all())
    assert statuses == {ids[0]: APPROVED, taken: HELD, ids[2]: APPROVED}
    assert [len(final_changes(runtime, comment_id)) for comment_id in ids] == [1, 1, 1]
    assert final_changes(runtime, taken)[0].actor == "moderator:ada"


def test_retried_job_finishes_the_batch_its_failed_attempt_claimed(runtime, client, api_key):
    comment_id = client.post("/v1/comments", json=POLITE, headers=api_key.headers).get_json()["id"]
    claimed = queueing.claim_from_inbox(runtime.redis, runtime.settings, 10)
    assert claimed == [comment_id]
    job = Job.fetch(
        Queue(queueing.SCORING_QUEUE, connection=runtime.redis).job_ids[0], connection=runtime.redis
    )
    job.meta["claimed"] = claimed  # what a killed first attempt leaves behind
    job.save_meta()

    drain_queues(runtime)

    with runtime.session() as session:
        assert session.get(Comment, comment_id).status == APPROVED


# --- webhooks --------------------------------------------------------------------------------------


@pytest.fixture
def hooked_key(runtime, webhook_receiver):
    with runtime.session() as session:
        new = create_api_key(
            session,
            "cms-with-hook",
            ["comments"],
            webhook_url=webhook_receiver.url,
            sealing_key=server_secret(runtime.settings),
        )
    return new


def test_verdict_is_sent_to_the_webhook_signed(runtime, client, hooked_key, webhook_receiver):
    headers = {"Authorization": f"Bearer {hooked_key.secret}"}
    comment_id = client.post(
        "/v1/comments", json={**POLITE, "external_id": "wp-1"}, headers=headers
    ).get_json()["id"]

    drain_queues(runtime)

    assert len(webhook_receiver.requests) == 1
    request = webhook_receiver.requests[0]
    body = webhook_receiver.bodies()[0]
    assert body["event"] == "comment.verdict"
    assert body["comment"]["id"] == comment_id
    assert body["comment"]["external_id"] == "wp-1"
    assert body["comment"]["status"] == APPROVED
    signature = request["headers"][webhooks.SIGNATURE_HEADER]
    assert webhooks.verify_signature(hooked_key.webhook_secret, signature, request["body"].encode())
    assert not webhooks.verify_signature("wrong-secret", signature, request["body"].encode())
    assert not webhooks.verify_signature(
        hooked_key.webhook_secret, signature, request["body"].encode() + b" "
    )


def test_failing_webhook_never_blocks_the_verdict_and_is_retried_with_backoff(
    runtime, client, hooked_key, webhook_receiver
):
    webhook_receiver.status = 500
    headers = {"Authorization": f"Bearer {hooked_key.secret}"}
    comment_id = client.post("/v1/comments", json=POLITE, headers=headers).get_json()["id"]

    drain_queues(runtime)

    with runtime.session() as session:
        assert session.get(Comment, comment_id).status == APPROVED
        delivery = session.scalars(select(WebhookDelivery)).one()
        assert (delivery.state, delivery.attempts) == ("pending", 1)
        assert delivery.next_attempt_at > utcnow() + timedelta(seconds=5)
    # The CMS comes back; when the attempt is due, the reconciler sends it again.
    webhook_receiver.status = 204
    with runtime.session() as session:
        session.execute(update(WebhookDelivery).values(next_attempt_at=utcnow() - timedelta(seconds=1)))
        session.commit()
    assert jobs.reconcile(runtime).webhooks_requeued == 1
    drain_queues(runtime)
    with runtime.session() as session:
        delivery = session.scalars(select(WebhookDelivery)).one()
        assert (delivery.state, delivery.attempts) == ("delivered", 2)
    assert len(webhook_receiver.requests) == 2


def test_webhook_backoff_lasts_more_than_an_hour_then_gives_up():
    total = timedelta()
    attempts = 1
    while (delay := webhooks.next_delay(attempts)) is not None:
        total += delay
        attempts += 1
    assert total > timedelta(hours=1)
    assert attempts == webhooks.MAX_ATTEMPTS
    assert all(a <= b for a, b in zip(webhooks.BACKOFF, webhooks.BACKOFF[1:], strict=False))


def test_webhook_outbox_row_is_written_with_the_verdict(runtime, client, hooked_key):
    headers = {"Authorization": f"Bearer {hooked_key.secret}"}
    comment_id = client.post("/v1/comments", json=POLITE, headers=headers).get_json()["id"]
    runtime.redis.flushdb()  # Redis loses everything before the delivery job runs
    jobs.score_comments(runtime, [comment_id])
    runtime.redis.flushdb()

    with runtime.session() as session:
        delivery = session.scalars(select(WebhookDelivery)).one()
        delivery.next_attempt_at = utcnow() - timedelta(seconds=1)
        session.commit()
    assert jobs.reconcile(runtime).webhooks_requeued == 1


def test_a_batch_writes_each_verdict_with_its_history_and_outbox_rows(runtime, client, hooked_key):
    ids = post_polite(client, {"Authorization": f"Bearer {hooked_key.secret}"}, 4)

    assert jobs.score_comments(runtime, ids) == 4

    with runtime.session() as session:
        statuses = session.scalars(select(Comment.status).where(Comment.id.in_(ids))).all()
        deliveries = session.scalars(select(WebhookDelivery)).all()
    assert len(statuses) == 4 and PENDING not in statuses
    assert [len(final_changes(runtime, comment_id)) for comment_id in ids] == [1, 1, 1, 1]
    assert sorted(delivery.comment_id for delivery in deliveries) == sorted(ids)
    assert {delivery.payload["comment"]["status"] for delivery in deliveries} == set(statuses)


def test_enqueue_reloads_its_script_after_redis_forgets_it(runtime):
    # A Redis restart (or SCRIPT FLUSH) drops loaded Lua scripts; the next enqueue must load it again.
    queueing.enqueue_scoring(runtime.redis, runtime.settings, ["first"])
    runtime.redis.script_flush()
    queueing.enqueue_scoring(runtime.redis, runtime.settings, ["second"])

    inbox = runtime.redis.lrange(queueing.inbox_key(runtime.settings), 0, -1)
    assert [item.decode() for item in inbox] == ["first", "second"]


def test_a_large_enqueue_keeps_every_id_in_order(runtime):
    ids = [f"c{i}" for i in range(10_000)]  # more than Lua can unpack in one call
    queueing.enqueue_scoring(runtime.redis, runtime.settings, ids)

    inbox = runtime.redis.lrange(queueing.inbox_key(runtime.settings), 0, -1)
    assert [item.decode() for item in inbox] == ids
