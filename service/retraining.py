"""The learning loop, service side: when to retrain, and the retrain job.

- :func:`maybe_schedule_retraining` runs in the worker's reconciler thread (one process per interval):
  it enqueues :func:`retrain_and_maybe_promote` on the low-priority training queue after
  :data:`LABELS_BEFORE_RETRAIN` new labels or :data:`RETRAIN_INTERVAL_SECONDS` after the last run.
  A Redis lock (taken when the job is enqueued, released when it ends) keeps one retrain at a time.
- The job trains a candidate on the public sets plus the site's labels, runs the promotion guard, and
  on a promotion records and announces the new version (``service.activation``).
"""

from __future__ import annotations

import logging
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis

from classifier import datasets, labelstore, learning
from classifier.comment import ATTRIBUTES, LabelledComment
from classifier.promotion import GuardConfig
from classifier.registry import Registry
from classifier.training import TrainParams
from service import activation, queueing
from service.runtime import Runtime, process_runtime
from service.settings import Settings

logger = logging.getLogger(__name__)

#: Retrain after this many new labels ...
LABELS_BEFORE_RETRAIN = 200
#: ... or this long after the last run (nightly).
RETRAIN_INTERVAL_SECONDS = 24 * 3600


def reports_dir(settings: Settings) -> Path:
    """Where the promotion guard writes its reports (the moderators' Models page reads them)."""
    return settings.var_dir / "reports"


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
    activation.follow_announced_version(runtime)
    activation.sync_active_version(runtime)
    settings = runtime.settings
    now = time.time() if now is None else now
    raw: dict[Any, Any] = runtime.redis.hgetall(queueing.retrain_state_key(settings))  # type: ignore[assignment]
    state = {_text(k): _text(v) for k, v in raw.items()}
    if "last_run_at" not in state:
        # First sight of this install: start counting from here rather than retrain at once.
        _, top = labelstore.count_labels(runtime.engine)
        runtime.redis.hset(
            queueing.retrain_state_key(settings), mapping={"last_run_at": now, "last_label_id": top}
        )
        return None
    new_labels, _ = labelstore.count_labels(runtime.engine, int(state.get("last_label_id", 0)))
    due_by_time = now - float(state["last_run_at"]) >= interval_seconds
    if new_labels < labels_before_retrain and not due_by_time:
        return None
    token = uuid.uuid4().hex
    if not runtime.redis.set(
        queueing.retrain_lock_key(settings), token, nx=True, ex=queueing.RETRAIN_LOCK_TTL
    ):
        return None  # one is queued or running
    job_id = f"retrain-{int(now)}"
    queueing.enqueue_retraining(runtime.redis, token, job_id)
    logger.info("retrain scheduled job=%s new_labels=%d due_by_time=%s", job_id, new_labels, due_by_time)
    return job_id


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
    runtime = process_runtime()
    settings = runtime.settings
    key = queueing.retrain_lock_key(settings)
    if lock_token is None:  # enqueued by hand: take the lock now
        lock_token = uuid.uuid4().hex
        if not runtime.redis.set(key, lock_token, nx=True, ex=queueing.RETRAIN_LOCK_TTL):
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
            activation.record_activation(runtime, candidate.version, card, report)
        else:
            activation.record_candidate(runtime, candidate.version, card, report)
        runtime.redis.hset(
            queueing.retrain_state_key(settings),
            mapping={"last_run_at": time.time(), "last_label_id": top_label},
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
