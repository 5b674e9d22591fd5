"""Queue names, job paths, Redis keys, timeouts, TTLs and retries, and how work is put on the queues.

Every name the service uses in Redis is built here, from ``Settings.redis_prefix``: the scoring
inbox and its drain flag, verdict channels (for ``?wait=``), the reconciler's and the retrain's locks,
the retrain state, and the announced active model.

How comments become jobs (the README's architecture section explains why):
the API appends each new comment's id to an inbox list in Redis and enqueues one RQ "drain" job only
when none is already waiting (a short-lived flag). A drain job claims up to ``score_batch_size`` ids at
a time and scores them with one ``predict_proba`` per model, so one fork and one model call serve
hundreds of comments. When the inbox is empty the job waits a little for more
(``score_linger_seconds``), so that a trickle of comments shares one job too. Losing an id (Redis
restart, killed worker) loses nothing: the database still says "pending", and the reconciler enqueues
it again.
"""

from __future__ import annotations

import logging
import time
import weakref
from collections.abc import Callable, Sequence
from typing import Any

import redis
from redis.commands.core import Script
from rq import Callback, Queue, Retry

from service.db import PENDING, Comment
from service.settings import Settings

logger = logging.getLogger(__name__)

SCORING_QUEUE = "scoring"
WEBHOOK_QUEUE = "webhooks"
#: Retraining is slow and must never delay scoring: workers listen to it last.
TRAINING_QUEUE = "training"
WORKER_QUEUES = (SCORING_QUEUE, WEBHOOK_QUEUE, TRAINING_QUEUE)
#: What `python worker.py` serves by default. Retraining runs in a worker of its own
#: (`python worker.py --queues training`): a worker runs one job at a time, so a retrain of a few
#: minutes in a scoring worker would hold every new comment back for that long.
SERVING_QUEUES = (SCORING_QUEUE, WEBHOOK_QUEUE)

#: The job functions, by the dotted path RQ stores in each queued job. Jobs already queued when a new
#: version is deployed are run by these names: never rename them (tests/test_worker.py checks them).
SCORE_INBOX_JOB = "service.jobs.score_inbox"
HOLD_CLAIMED_CALLBACK = "service.jobs.hold_claimed_comments"
DELIVER_WEBHOOK_JOB = "service.jobs.deliver_webhook"
RETRAIN_JOB = "service.retraining.retrain_and_maybe_promote"
JOB_PATHS = (SCORE_INBOX_JOB, HOLD_CLAIMED_CALLBACK, DELIVER_WEBHOOK_JOB, RETRAIN_JOB)

SCORE_JOB_TIMEOUT = 120
SCORE_JOB_RETRY = Retry(max=2, interval=[2, 10])
WEBHOOK_JOB_TIMEOUT = 30
TRAINING_JOB_TIMEOUT = 3600
RESULT_TTL = 300
FAILURE_TTL = 7 * 24 * 3600
#: Keep a retrain's result (its summary) for a week, like failures, so an operator can see the last run.
TRAINING_RESULT_TTL = 7 * 24 * 3600
#: The drain flag's lifetime: if a drain job sits unstarted longer than this (a backlog), the next
#: comment enqueues another drain job, so more workers join in.
DRAIN_FLAG_TTL = 5
#: The retrain lock outlives the job's timeout a little, so a killed job cannot block retraining forever.
RETRAIN_LOCK_TTL = TRAINING_JOB_TIMEOUT + 300


def inbox_key(settings: Settings) -> str:
    return f"{settings.redis_prefix}:inbox"


def drain_flag_key(settings: Settings) -> str:
    return f"{settings.redis_prefix}:drain-scheduled"


def verdict_channel(settings: Settings, comment_id: str) -> str:
    return f"{settings.redis_prefix}:verdict:{comment_id}"


def reconcile_lock_key(settings: Settings) -> str:
    """Held for one reconcile interval by the one worker process that reconciles in it."""
    return f"{settings.redis_prefix}:reconcile-lock"


def retrain_lock_key(settings: Settings) -> str:
    return f"{settings.redis_prefix}:retrain-lock"


def retrain_state_key(settings: Settings) -> str:
    """A hash: ``last_run_at`` (unix seconds) and ``last_label_id`` of the last retrain."""
    return f"{settings.redis_prefix}:retrain-state"


def active_model_key(settings: Settings) -> str:
    """The version the service announced as active (see ``service.activation``)."""
    return f"{settings.redis_prefix}:active-model"


def model_activated_channel(settings: Settings) -> str:
    return f"{settings.redis_prefix}:model-activated"


def enqueue_scoring(connection: redis.Redis, settings: Settings, comment_ids: Sequence[str]) -> None:
    """Put comments in the scoring inbox and make sure a drain job will pick them up.

    Raises ``redis.RedisError`` when Redis is unreachable; callers that already stored the comment
    may ignore it, because the reconciler will enqueue the comment again.
    """
    if not comment_ids:
        return
    newly_flagged = False
    for start in range(0, len(comment_ids), _PUSH_CHUNK):
        newly_flagged |= _push_to_inbox(connection, settings, comment_ids[start : start + _PUSH_CHUNK])
    if newly_flagged:
        enqueue_drain(connection, trigger=comment_ids[0])


# RPUSH the ids and set the drain flag if it is not set, as one command: one round trip, atomic,
# and cheaper in the API process than a pipeline. Returns 1 when this call set the flag.
_PUSH_SCRIPT = """
redis.call('RPUSH', KEYS[1], unpack(ARGV, 2))
if redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[1]) then return 1 end
return 0
"""
#: Ids per script call: Lua's unpack() has a stack limit of a few thousand values.
_PUSH_CHUNK = 1000
_push_scripts: weakref.WeakKeyDictionary[redis.Redis, Script] = weakref.WeakKeyDictionary()


def _push_to_inbox(connection: redis.Redis, settings: Settings, comment_ids: Sequence[str]) -> bool:
    script = _push_scripts.get(connection)
    if script is None:
        # Script runs EVALSHA and loads the script itself after a Redis restart (NOSCRIPT).
        script = _push_scripts[connection] = connection.register_script(_PUSH_SCRIPT)
    keys = [inbox_key(settings), drain_flag_key(settings)]
    return bool(script(keys=keys, args=[DRAIN_FLAG_TTL, *comment_ids]))


def enqueue_drain(connection: redis.Redis, trigger: str) -> None:
    # The job id is derived from the comment whose arrival started this drain, for tracing.
    Queue(SCORING_QUEUE, connection=connection).enqueue_call(
        SCORE_INBOX_JOB,
        job_id=f"score-{trigger}",
        timeout=SCORE_JOB_TIMEOUT,
        result_ttl=RESULT_TTL,
        failure_ttl=FAILURE_TTL,
        retry=SCORE_JOB_RETRY,
        on_failure=Callback(HOLD_CLAIMED_CALLBACK),
    )


def claim_from_inbox(connection: redis.Redis, settings: Settings, count: int) -> list[str]:
    ids: list[bytes | str] = connection.lpop(inbox_key(settings), count) or []  # type: ignore[assignment]
    return _decoded(ids)


class InboxClaims:
    """A drain job's claims on the inbox: batch after batch, and when it is empty, a wait for more
    until ``linger_until`` (``time.monotonic()``), holding the drain flag.

    While the flag is held the API enqueues no job for new ids: this job takes them, so a trickle of
    comments shares one job, and when it ends no job has piled up in front of the webhook queue. The
    flag is given up when the wait is over, and then the inbox is read once more (ids pushed while it
    was held enqueued nothing), or as soon as a backlog outlasts the wait, so that more ids bring in
    another worker.
    """

    def __init__(self, connection: redis.Redis, settings: Settings, linger_until: float) -> None:
        self.connection = connection
        self.settings = settings
        self.linger_until = linger_until
        self.holding_flag = False

    def next_batch(self) -> list[str]:
        count = self.settings.score_batch_size
        ids = claim_from_inbox(self.connection, self.settings, count)
        if ids:
            if self.holding_flag and time.monotonic() >= self.linger_until:
                clear_drain_flag(self.connection, self.settings)
                self.holding_flag = False
            return ids
        remaining = self.linger_until - time.monotonic()
        if remaining > 0:
            ids = self._wait(count, remaining)
            if ids:
                return ids
        if self.holding_flag:
            return self._release(count)
        return []

    def _wait(self, count: int, seconds: float) -> list[str]:
        key = inbox_key(self.settings)
        self.connection.set(drain_flag_key(self.settings), "1", ex=DRAIN_FLAG_TTL)
        self.holding_flag = True
        popped = self.connection.blpop([key], timeout=seconds)
        if not popped:
            return []
        first = _decoded([popped[1]])
        more = self.connection.lpop(key, count - 1) if count > 1 else None
        return first + _decoded(more or [])

    def _release(self, count: int) -> list[str]:
        clear_drain_flag(self.connection, self.settings)
        self.holding_flag = False
        return claim_from_inbox(self.connection, self.settings, count)


def _decoded(items: Sequence[bytes | str]) -> list[str]:
    return [item.decode() if isinstance(item, bytes) else item for item in items]


def clear_drain_flag(connection: redis.Redis, settings: Settings) -> None:
    connection.delete(drain_flag_key(settings))


def enqueue_webhook(connection: redis.Redis, delivery_id: int, attempt: int) -> None:
    # No RQ Retry here on purpose: the retry schedule (over an hour) lives in the database outbox,
    # where it survives a Redis restart; the reconciler enqueues each due attempt.
    Queue(WEBHOOK_QUEUE, connection=connection).enqueue_call(
        DELIVER_WEBHOOK_JOB,
        args=(delivery_id,),
        job_id=f"webhook-{delivery_id}-{attempt}",
        timeout=WEBHOOK_JOB_TIMEOUT,
        result_ttl=RESULT_TTL,
        failure_ttl=FAILURE_TTL,
    )


def publish_verdicts(connection: redis.Redis, settings: Settings, verdicts: dict[str, str]) -> None:
    """Wake up API requests waiting for these verdicts (``?wait=``). Best effort."""
    if not verdicts:
        return
    pipe = connection.pipeline(transaction=False)
    for comment_id, status in verdicts.items():
        pipe.publish(verdict_channel(settings, comment_id), status)
    pipe.execute()


def wait_for_verdict(
    connection: redis.Redis,
    settings: Settings,
    comment_id: str,
    seconds: float,
    load: Callable[[], Comment | None],
) -> Comment | None:
    """Block until the worker publishes this comment's verdict, or ``seconds`` pass.

    ``load`` reads the comment from the database: the verdict itself is read there, the message only
    wakes us up. Returns the last comment read, or None when Redis fails (the caller answers 202).
    """
    deadline = time.monotonic() + seconds
    try:
        pubsub = connection.pubsub(ignore_subscribe_messages=True)
        pubsub.subscribe(verdict_channel(settings, comment_id))
    except redis.RedisError:
        return None
    try:
        while True:
            # Read after subscribing, so a verdict published in between is not missed.
            comment = load()
            if comment is None or comment.status != PENDING:
                return comment
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return comment
            pubsub.get_message(timeout=min(remaining, 1.0))
    except redis.RedisError:
        return None
    finally:
        pubsub.close()


def enqueue_retraining(
    connection: redis.Redis, lock_token: str | None = None, job_id: str | None = None, **options: Any
) -> Any:
    """Put the retrain job on the training queue (listened to last: it never delays scoring)."""
    return Queue(TRAINING_QUEUE, connection=connection).enqueue_call(
        RETRAIN_JOB,
        kwargs={"lock_token": lock_token, **options},
        job_id=job_id or f"retrain-{int(time.time())}",
        timeout=TRAINING_JOB_TIMEOUT,
        result_ttl=TRAINING_RESULT_TTL,
        failure_ttl=FAILURE_TTL,
    )


def queue_depths(connection: redis.Redis, settings: Settings) -> dict[str, int]:
    """Entries waiting in Redis: comment ids in the scoring inbox, jobs in each worker queue."""
    pipe = connection.pipeline(transaction=False)
    pipe.llen(inbox_key(settings))
    for name in WORKER_QUEUES:
        pipe.llen(Queue(name, connection=connection).key)
    counts = pipe.execute()
    return dict(zip(("inbox", *WORKER_QUEUES), (int(count) for count in counts), strict=True))
