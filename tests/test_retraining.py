"""The retrain job, its scheduler, the announcement, and a hot swap in the middle of a scoring stream."""

from __future__ import annotations

import threading
import time
from dataclasses import asdict
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from classifier.training import train
from service import activation, jobs, queueing, retraining
from service.db import PENDING, Comment, ModelVersion
from service.keys import SCOPES, create_api_key
from service.labels import record_label
from service.runtime import Runtime
from service.store import create_comment
from tests.conftest import TINY, drain_queues, public_examples, site_labels


def add_comments(runtime: Runtime, count: int, prefix: str = "c") -> list[str]:
    with runtime.session() as session:
        key = create_api_key(session, f"cms-{prefix}", SCOPES).api_key
        ids = []
        for i in range(count):
            comment, _ = create_comment(
                session,
                key,
                {
                    "name": "Ann",
                    "email": "ann@example.test",
                    "text": f"Comment {prefix}{i}: the ferry was late",
                },
            )
            ids.append(comment.id)
        session.commit()
    queueing.enqueue_scoring(runtime.redis, runtime.settings, ids)
    return ids


def add_site_labels(runtime: Runtime, count: int = 160) -> None:
    start = datetime.now(UTC) - timedelta(days=30)
    with runtime.session() as session:
        for i, site in enumerate(site_labels(count)):
            spam = site.example.labels["spam"] >= 0.5
            label = record_label(
                session,
                source="moderator",
                decision="spam" if spam else "ham",
                text=site.example.comment.text,
                actor="mod",
            )
            label.created_at = start + timedelta(hours=i)
        session.commit()


def test_promotion_mid_stream_never_mixes_versions_in_a_batch(loop_runtime, registry, monkeypatch):
    runtime = loop_runtime
    old = registry.active_version()
    assert runtime.models.refresh() and runtime.models.version == old
    new = registry.save(train(public_examples(), TINY))
    batches: list[list[str]] = []
    promoter = threading.Thread(
        target=lambda: (
            registry.activate(new),
            activation.record_activation(runtime, new, registry.card(new), None),
            runtime.models.refresh(),  # what the worker's reconciler thread does each interval
        )
    )
    score_comments = jobs.score_comments

    def recording(rt, comment_ids):  # noqa: ANN001, ANN202
        batches.append(list(comment_ids))
        if len(batches) == 3:
            promoter.start()  # the new artifact loads while the next batches are being scored
        return score_comments(rt, comment_ids)

    monkeypatch.setattr(jobs, "score_comments", recording)
    ids = add_comments(runtime, 60)
    drain_queues(runtime)
    promoter.join(timeout=30)
    ids += add_comments(runtime, 10, prefix="late")
    drain_queues(runtime)

    with runtime.session() as session:
        versions = dict(session.execute(select(Comment.id, Comment.model_version)).all())
        pending = session.scalars(select(Comment.id).where(Comment.status == PENDING)).all()
    assert not pending and set(versions) == set(ids)  # no comment lost
    per_batch = [{versions[i] for i in batch} for batch in batches]
    assert all(len(seen) == 1 for seen in per_batch), per_batch  # never a mix within a batch
    order = [seen.pop() for seen in per_batch]
    assert set(order) == {old, new} and order == sorted(order, key=lambda v: v == new)  # old, then new only
    assert runtime.models.version == new


def test_retrain_job_promotes_records_and_announces(loop_runtime, registry):
    runtime = loop_runtime
    old = registry.active_version()
    activation.sync_active_version(runtime)  # the install's first model, as the worker records it
    add_site_labels(runtime)
    messages = runtime.redis.pubsub()
    messages.subscribe(queueing.model_activated_channel(runtime.settings))
    job = queueing.enqueue_retraining(runtime.redis, params=asdict(TINY))
    drain_queues(runtime, [queueing.TRAINING_QUEUE])
    job.refresh()
    summary = job.return_value()
    assert summary["promoted"], summary
    new = summary["candidate"]
    assert registry.active_version() == new and summary["site_labels"]["frozen"] > 0
    with runtime.session() as session:
        states = dict(session.execute(select(ModelVersion.version, ModelVersion.state)).all())
        active_row = session.get(ModelVersion, new)
    assert states == {old: "retired", new: "active"}
    assert active_row.report_path.endswith(f"model-{new}-vs-{old}.md") and active_row.card["version"] == new
    assert runtime.redis.get(queueing.active_model_key(runtime.settings)) == new.encode()
    deadline = time.monotonic() + 5
    received = []
    while time.monotonic() < deadline and not received:
        message = messages.get_message(timeout=0.5)
        if message and message["type"] == "message":
            received.append(message["data"])
    assert received == [new.encode()]
    # Hot swap without restart: the holder follows the announcement.
    activation.follow_announced_version(runtime)
    assert runtime.models.refresh() and runtime.models.version == new
    assert not runtime.redis.exists(queueing.retrain_lock_key(runtime.settings))


def test_a_broken_announced_artifact_keeps_the_old_model(loop_runtime, registry, caplog):
    runtime = loop_runtime
    old = registry.active_version()
    assert runtime.models.refresh()
    broken = registry.save(train(public_examples(), TINY))
    (registry.root / broken / "model.skops").write_bytes(b"not a model")
    activation.follow_announced_version(runtime)
    activation.announce(runtime, broken)
    assert not runtime.models.refresh()
    assert runtime.models.version == old
    assert "model load failed" in caplog.text


def test_scheduler_counts_labels_and_holds_one_lock(loop_runtime):
    runtime = loop_runtime
    now = time.time()
    assert retraining.maybe_schedule_retraining(runtime, now=now, labels_before_retrain=3) is None  # first
    add_site_labels(runtime, 2)
    assert retraining.maybe_schedule_retraining(runtime, now=now + 1, labels_before_retrain=3) is None
    add_site_labels(runtime, 2)
    job_id = retraining.maybe_schedule_retraining(runtime, now=now + 2, labels_before_retrain=3)
    assert job_id is not None
    queue_jobs = runtime.redis.lrange(f"rq:queue:{queueing.TRAINING_QUEUE}", 0, -1)
    assert [j.decode() for j in queue_jobs] == [job_id]
    # Due again by time, but the first is still queued: the lock keeps it to one.
    assert retraining.maybe_schedule_retraining(runtime, now=now + 90000) is None
    runtime.redis.delete(queueing.retrain_lock_key(runtime.settings))
    assert retraining.maybe_schedule_retraining(runtime, now=now + 90000) is not None
