"""The learning loop, service side: when to retrain, the retrain job, and announcing the active model.

- :func:`maybe_schedule_retraining` runs in the worker's reconciler thread (one process per interval):
  it enqueues :func:`retrain_and_maybe_promote` on the low-priority training queue after
  :data:`LABELS_BEFORE_RETRAIN` new labels or :data:`RETRAIN_INTERVAL_SECONDS` after the last run.
  A Redis lock (taken when the job is enqueued, released when it ends) keeps one retrain at a time.
- The job trains a candidate on the public sets plus the site's labels, runs the promotion guard, and
  on a promotion records the versions in ``model_versions`` and announces the new one on Redis
  (``<prefix>:active-model`` and a message on ``<prefix>:model-activated``).
- :func:`attach` makes a process's ``ModelHolder`` prefer the announced version; every holder already
  refreshes between batches (workers) or every few seconds (web), loading the artifact into a new
  object before swapping the reference, so a batch is never scored by a half-loaded model.
"""

from __future__ import annotations

import logging
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis
from rq import Queue
from sqlalchemy import select, update
from sqlalchemy.exc import SQLAlchemyError

from classifier import datasets, labelstore, learning
from classifier.comment import ATTRIBUTES, LabelledComment
from classifier.errors import ClassifierError
from classifier.promotion import GuardConfig
from classifier.registry import Registry
from classifier.training import TrainParams
from service import queueing
from service.db import ModelVersion, utcnow
from service.runtime import Runtime
from service.settings import Settings

logger = logging.getLogger(__name__)

#: Retrain after this many new labels ...
LABELS_BEFORE_RETRAIN = 200
#: ... or this long after the last run (nightly).
RETRAIN_INTERVAL_SECONDS = 24 * 3600
RETRAIN_JOB_TIMEOUT = queueing.TRAINING_JOB_TIMEOUT
#: Keep the job's result (its summary) for a week, like failures, so an operator can see the last run.
RETRAIN_RESULT_TTL = 7 * 24 * 3600
RETRAIN_FAILURE_TTL = queueing.FAILURE_TTL
#: The lock outlives the job's timeout a little, so a killed job cannot block retraining forever.
LOCK_TTL_SECONDS = RETRAIN_JOB_TIMEOUT + 300


def lock_key(settings: Settings) -> str:
    return f"{settings.redis_prefix}:retrain-lock"


def state_key(settings: Settings) -> str:
    return f"{settings.redis_prefix}:retrain-state"


def active_key(settings: Settings) -> str:
    return f"{settings.redis_prefix}:active-model"


def activated_channel(settings: Settings) -> str:
    return f"{settings.redis_prefix}:model-activated"


def reports_dir(settings: Settings) -> Path:
    return settings.var_dir / "reports"


# --- announcing the active version ------------------------------------------------------------------


def announced_version(runtime: Runtime) -> str | None:
    """The active version as announced on Redis, else as recorded in the database, else None."""
    try:
        value = runtime.redis.get(active_key(runtime.settings))
        if value:
            return value.decode() if isinstance(value, bytes) else str(value)
    except redis.RedisError:
        pass
    try:
        with runtime.session() as session:
            return session.scalars(
                select(ModelVersion.version)
                .where(ModelVersion.state == "active")
                .order_by(ModelVersion.activated_at.desc())
                .limit(1)
            ).first()
    except SQLAlchemyError:
        return None


def attach(runtime: Runtime) -> None:
    """Make this process's model holder follow the announced active version (idempotent)."""
    if runtime.models.announced is None:
        runtime.models.announced = lambda: announced_version(runtime)


def record_activation(
    runtime: Runtime, version: str, card: dict[str, Any] | None, report_path: str | None
) -> None:
    """``version`` is active, every other active row is retired; then announce it on Redis."""
    now = utcnow()
    with runtime.session() as session:
        session.execute(
            update(ModelVersion)
            .where(ModelVersion.state == "active", ModelVersion.version != version)
            .values(state="retired")
        )
        row = session.get(ModelVersion, version)
        if row is None:
            row = ModelVersion(version=version, card=card)
            session.add(row)
        row.state, row.activated_at = "active", now
        row.card = card if card is not None else row.card
        row.report_path = report_path or row.report_path
        session.commit()
    announce(runtime, version)


def announce(runtime: Runtime, version: str) -> None:
    settings = runtime.settings
    pipe = runtime.redis.pipeline(transaction=True)
    pipe.set(active_key(settings), version)
    pipe.publish(activated_channel(settings), version)
    pipe.execute()
    logger.info("model announced version=%s", version)


def record_candidate(runtime: Runtime, version: str, card: dict[str, Any], report_path: str | None) -> None:
    with runtime.session() as session:
        row = session.get(ModelVersion, version)
        if row is None:
            session.add(ModelVersion(version=version, state="candidate", card=card, report_path=report_path))
        else:
            row.report_path = report_path
        session.commit()


def sync_active_version(runtime: Runtime) -> None:
    """Follow a promotion or rollback made by hand (``python -m classifier models ...``): the registry's
    pointer is the truth, and the database and Redis are brought in line with it."""
    registry: Registry = runtime.models.registry
    version = registry.active_version()
    if version is None or version == announced_version(runtime):
        return
    try:
        card = registry.card(version)
    except ClassifierError as error:
        logger.error("active model unreadable version=%s error=%s", version, error)
        return
    record_activation(runtime, version, card, None)


# --- scheduling --------------------------------------------------------------------------------------


def maybe_schedule_retraining(
    runtime: Runtime,
    now: float | None = None,
    labels_before_retrain: int = LABELS_BEFORE_RETRAIN,
    interval_seconds: float = RETRAIN_INTERVAL_SECONDS,
) -> str | None:
    """Enqueue a retrain when enough new labels arrived or a day passed; returns the job id, if any.

    Called by the worker's reconciler thread each interval. Raises Redis/database errors (the caller
    logs them and tries again next interval).
    """
    attach(runtime)
    sync_active_version(runtime)
    settings = runtime.settings
    now = time.time() if now is None else now
    raw: dict[Any, Any] = runtime.redis.hgetall(state_key(settings))  # type: ignore[assignment]
    state = {_text(k): _text(v) for k, v in raw.items()}
    if "last_run_at" not in state:
        # First sight of this install: start counting from here rather than retrain at once.
        _, top = labelstore.count_labels(runtime.engine)
        runtime.redis.hset(state_key(settings), mapping={"last_run_at": now, "last_label_id": top})
        return None
    new_labels, _ = labelstore.count_labels(runtime.engine, int(state.get("last_label_id", 0)))
    due_by_time = now - float(state["last_run_at"]) >= interval_seconds
    if new_labels < labels_before_retrain and not due_by_time:
        return None
    token = uuid.uuid4().hex
    if not runtime.redis.set(lock_key(settings), token, nx=True, ex=LOCK_TTL_SECONDS):
        return None  # one is queued or running
    job_id = f"retrain-{int(now)}"
    enqueue_retraining(runtime.redis, token, job_id)
    logger.info("retrain scheduled job=%s new_labels=%d due_by_time=%s", job_id, new_labels, due_by_time)
    return job_id


def enqueue_retraining(
    connection: redis.Redis, lock_token: str | None = None, job_id: str | None = None, **options: Any
) -> Any:
    """Put the retrain job on the training queue (listened to last: it never delays scoring)."""
    return Queue(queueing.TRAINING_QUEUE, connection=connection).enqueue_call(
        "service.retraining.retrain_and_maybe_promote",
        kwargs={"lock_token": lock_token, **options},
        job_id=job_id or f"retrain-{int(time.time())}",
        timeout=RETRAIN_JOB_TIMEOUT,
        result_ttl=RETRAIN_RESULT_TTL,
        failure_ttl=RETRAIN_FAILURE_TTL,
    )


# --- the job -----------------------------------------------------------------------------------------


def load_public_examples(settings: Settings, sets: list[str] | None = None) -> list[LabelledComment]:
    """The public training sets from ``settings.data_dir`` (tests replace this with tiny examples)."""
    return datasets.load_public(settings.data_dir, sets)


def guard_config(settings: Settings) -> GuardConfig:
    return GuardConfig(hold_thresholds={a: settings.thresholds.hold_threshold(a) for a in ATTRIBUTES})


def retrain_and_maybe_promote(
    lock_token: str | None = None,
    sets: list[str] | None = None,
    params: dict[str, Any] | None = None,
    site_weight: float = learning.DEFAULT_SITE_WEIGHT,
) -> dict[str, Any]:
    """Train a candidate from the public sets and the site's labels; promote it if the guard passes.

    Runs on the training queue. Exceptions propagate to RQ's failed-job registry; the lock is released
    either way.
    """
    from service import jobs

    runtime = jobs.current_runtime()
    settings = runtime.settings
    key = lock_key(settings)
    if lock_token is None:  # enqueued by hand: take the lock now
        lock_token = uuid.uuid4().hex
        if not runtime.redis.set(key, lock_token, nx=True, ex=LOCK_TTL_SECONDS):
            logger.warning("retrain skipped: another retrain holds the lock")
            return {"skipped": "another retrain is running"}
    try:
        started = time.monotonic()
        _, top_label = labelstore.count_labels(runtime.engine)
        site_labels = labelstore.load_site_labels(runtime.engine, weight=site_weight)
        public = load_public_examples(settings, sets)
        registry = Registry(settings.registry_dir)
        candidate = learning.train_candidate(
            registry,
            public,
            site_labels,
            site_weight,
            TrainParams(**(params or {})),
            card_extra={
                "trained_by": "service.retraining",
                "public_sets": sets or list(datasets.PUBLIC_SETS),
            },
        )
        outcome = learning.promote_if_better(
            registry,
            candidate.version,
            site_labels,
            candidate.public_holdout,
            reports_dir(settings),
            guard_config(settings),
            candidate_model=candidate.model,
        )
        card = registry.card(candidate.version)
        report = str(outcome.report_path)
        if outcome.promoted:
            record_activation(runtime, candidate.version, card, report)
        else:
            record_candidate(runtime, candidate.version, card, report)
        runtime.redis.hset(
            state_key(settings), mapping={"last_run_at": time.time(), "last_label_id": top_label}
        )
        summary = {
            "candidate": candidate.version,
            "active_before": outcome.active_before,
            "promoted": outcome.promoted,
            "reasons": outcome.guard.reasons,
            "report": report,
            "site_labels": {
                "train": len(candidate.split.train),
                "recent": len(candidate.split.recent),
                "frozen": len(candidate.split.frozen),
            },
            "seconds": round(time.monotonic() - started, 1),
            "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        logger.info(
            "retrain candidate=%s promoted=%s seconds=%.1f",
            candidate.version,
            outcome.promoted,
            summary["seconds"],
        )
        return summary
    finally:
        _release(runtime.redis, key, lock_token)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _release(connection: redis.Redis, key: str, token: str) -> None:
    # Only the holder releases it (a compare-and-delete), so an expired-and-retaken lock is left alone.
    connection.eval(
        "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0",
        1,
        key,
        token,
    )
