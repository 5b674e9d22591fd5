"""Jobs queued by an earlier deployment still run after an upgrade: RQ stores functions by dotted path."""

from __future__ import annotations

import redis
from rq import Callback, Queue
from rq.job import Job

from service import jobs, queueing, retraining

#: The paths earlier versions wrote into queued jobs. A job in flight during an upgrade is run by
#: exactly this name, so each must keep resolving to the function that does that job.
STORED_PATHS = {
    "service.jobs.score_inbox": jobs.score_inbox,
    "service.jobs.hold_claimed_comments": jobs.hold_claimed_comments,
    "service.jobs.deliver_webhook": jobs.deliver_webhook,
    "service.retraining.retrain_and_maybe_promote": retraining.retrain_and_maybe_promote,
}


def test_the_service_enqueues_by_the_stored_paths():
    assert set(queueing.JOB_PATHS) == set(STORED_PATHS)


def test_jobs_stored_by_an_earlier_version_resolve(redis_url):
    connection = redis.Redis.from_url(redis_url)
    queue = Queue("scoring", connection=connection)
    for path, function in STORED_PATHS.items():
        stored = queue.enqueue_call(path, on_failure=Callback("service.jobs.hold_claimed_comments"))
        job = Job.fetch(stored.id, connection=connection)  # as a worker reads it back from Redis
        assert job.func is function, path
        assert job.failure_callback is jobs.hold_claimed_comments
    connection.close()
