"""Every Prometheus metric the service exports, defined once, and how a scrape renders them.

The API serves them at ``GET /metrics``; a worker started with ``--metrics-port N`` serves its own
on that port. Counters and histograms are updated where things happen (the API, the scoring and
webhook jobs, the reconciler). The backlog (queue depths, oldest pending comment) and the active
model are not stored: :class:`ScrapeCollector` reads them when Prometheus scrapes, with cheap
queries only, so they are right even when no process has touched them lately.

Under gunicorn each worker process has its own counters. With ``PROMETHEUS_MULTIPROC_DIR`` set
(``Settings.metrics_multiprocess_dir``), prometheus-client keeps them in files in that directory
and a scrape of any process adds up all of them (its multiprocess mode); without it each process
reports only its own, which is right for one waitress process or one worker.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import redis
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from service.queueing import queue_depths
from service.runtime import Runtime
from service.settings import Settings
from service.store import pending_backlog

CONTENT_TYPE = CONTENT_TYPE_LATEST
#: Label for comments whose key belongs to no site (the default site's comments).
DEFAULT_SITE_LABEL = "default"
#: The ``endpoint`` label of requests that matched no route (bounded: never the raw path).
UNMATCHED_ENDPOINT = "<unmatched>"

# Latency buckets in seconds: from a fast verdict (a few ms) to a backlog of minutes.
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
_HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10)
_BATCH_SIZE_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)

COMMENTS_RECEIVED = Counter(
    "moderation_comments_received",
    "Comments accepted by POST /v1/comments (stored, answered 2xx), by site.",
    ["site"],
)
VERDICTS = Counter(
    "moderation_verdicts",
    "Verdicts the service recorded (model or system), by site, verdict (status) and reason.",
    ["site", "verdict", "reason"],
)
VERDICT_LATENCY = Histogram(
    "moderation_verdict_latency_seconds",
    "Time from a comment's arrival (received_at) to its stored verdict (decided_at).",
    buckets=_LATENCY_BUCKETS,
)
SCORING_BATCH_SIZE = Histogram(
    "moderation_scoring_batch_size",
    "Pending comments scored together in one model call.",
    buckets=_BATCH_SIZE_BUCKETS,
)
SCORING_BATCH_DURATION = Histogram(
    "moderation_scoring_batch_duration_seconds",
    "Time to score one batch and commit its verdicts.",
    buckets=_LATENCY_BUCKETS,
)
WEBHOOK_DELIVERIES = Counter(
    "moderation_webhook_deliveries",
    "Webhook delivery attempts, by outcome: delivered, failed (will retry) or dead (gave up).",
    ["outcome"],
)
WEBHOOK_RETRIES = Counter(
    "moderation_webhook_retries",
    "Webhook delivery attempts after the first one for the same delivery.",
)
RECONCILER_REQUEUES = Counter(
    "moderation_reconciler_requeues",
    "Work the reconciler enqueued again: lost comments (kind=comment) and due webhooks (kind=webhook).",
    ["kind"],
)
HTTP_REQUESTS = Counter(
    "moderation_http_requests",
    "HTTP requests answered, by endpoint (the URL rule), method and status code.",
    ["endpoint", "method", "status"],
)
HTTP_LATENCY = Histogram(
    "moderation_http_request_duration_seconds",
    "Time from the request's start to its answer, by endpoint (the URL rule) and method.",
    ["endpoint", "method"],
    buckets=_HTTP_BUCKETS,
)


def site_label(site_id: int | None) -> str:
    """Sites are labelled by id (bounded, stable under renames); keys without one are ``default``."""
    return DEFAULT_SITE_LABEL if site_id is None else str(site_id)


def seconds_since(moment: datetime, now: datetime | None = None) -> float:
    """Seconds from ``moment`` to ``now``; naive datetimes (SQLite's) are UTC."""
    moment = _aware(moment)
    return max(0.0, ((now or datetime.now(UTC)) - moment).total_seconds())


def _aware(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def observe_verdict(
    site_id: int | None, verdict: str, reason: str | None, received_at: datetime, decided_at: datetime | None
) -> None:
    VERDICTS.labels(site_label(site_id), verdict, reason or "").inc()
    VERDICT_LATENCY.observe(seconds_since(received_at, _aware(decided_at) if decided_at else None))


def observe_request(endpoint: str | None, method: str, status: int, started: float) -> None:
    endpoint = endpoint or UNMATCHED_ENDPOINT
    HTTP_REQUESTS.labels(endpoint, method, str(status)).inc()
    HTTP_LATENCY.labels(endpoint, method).observe(time.perf_counter() - started)


# --- what a scrape reads -------------------------------------------------------------------------


@dataclass(frozen=True)
class Backlog:
    """Comments waiting for a verdict: ``pending`` (capped) and the oldest one's age in seconds."""

    pending: int
    oldest_pending_seconds: float
    queue_depths: dict[str, int]


#: ``pending`` is counted up to this many comments: enough to tell a backlog, never a slow count.
PENDING_COUNT_CAP = 100_000


def read_backlog(
    session_factory: Callable[[], Session], connection: redis.Redis, settings: Settings
) -> Backlog | None:
    """The backlog now, from two indexed queries and one Redis pipeline; None if either cannot answer."""
    try:
        with session_factory() as session:
            pending, oldest = pending_backlog(session, PENDING_COUNT_CAP)
        depths = queue_depths(connection, settings)
    except (redis.RedisError, SQLAlchemyError):
        return None
    return Backlog(pending, seconds_since(oldest) if oldest is not None else 0.0, depths)


class ScrapeCollector(Collector):
    """Gauges read at scrape time: the backlog (from Redis and the database) and the active model.

    ``read_backlog`` returns None when Redis or the database cannot answer; the scrape then has no
    backlog gauges (absent, not a misleading zero) and still carries every counter.
    """

    def __init__(self, read_backlog: Callable[[], Backlog | None], model_version: Callable[[], str | None]):
        self._read_backlog = read_backlog
        self._model_version = model_version

    def collect(self) -> Iterator[GaugeMetricFamily]:
        version = self._model_version()
        model = GaugeMetricFamily(
            "moderation_model_active",
            "The model version this process scores with (value 1).",
            labels=["version"],
        )
        if version is not None:
            model.add_metric([version], 1)
        yield model
        backlog = self._read_backlog()
        if backlog is None:
            return
        depth = GaugeMetricFamily(
            "moderation_queue_depth",
            "Entries waiting in Redis: the scoring inbox (comment ids) and each RQ queue (jobs).",
            labels=["queue"],
        )
        for queue, count in backlog.queue_depths.items():
            depth.add_metric([queue], count)
        yield depth
        yield GaugeMetricFamily(
            "moderation_pending_comments",
            "Comments stored and still waiting for a verdict (counted up to a cap).",
            value=backlog.pending,
        )
        yield GaugeMetricFamily(
            "moderation_oldest_pending_age_seconds",
            "Age of the oldest comment still waiting for a verdict (0 when none is).",
            value=backlog.oldest_pending_seconds,
        )


def runtime_collector(runtime: Runtime, with_backlog: bool = True) -> ScrapeCollector:
    """The scrape-time gauges of a process: its model, and (``with_backlog``) the shared backlog."""

    def backlog() -> Backlog | None:
        return read_backlog(runtime.session, runtime.redis, runtime.settings) if with_backlog else None

    def model_version() -> str | None:
        model = runtime.models.model
        return model.version if model is not None else None

    return ScrapeCollector(backlog, model_version)


def scrape_registry(multiprocess_dir: Path | None, extra: Iterable[Collector] = ()) -> CollectorRegistry:
    """The registry one scrape renders: this process's metrics, or all processes' in multiprocess mode."""
    registry = CollectorRegistry(auto_describe=False)
    if multiprocess_dir is not None:
        MultiProcessCollector(registry, path=str(multiprocess_dir))
    else:
        registry.register(_ProcessMetrics())
    for collector in extra:
        registry.register(collector)
    return registry


class _ProcessMetrics(Collector):
    """The default registry (this process's counters, plus the process and platform collectors)."""

    def collect(self) -> Iterator:  # type: ignore[type-arg]
        return REGISTRY.collect()


def render(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)


def serve_metrics(port: int, registry: CollectorRegistry, address: str = "0.0.0.0") -> None:
    """Serve ``registry`` on ``port`` from a daemon thread (the worker's ``--metrics-port``)."""
    start_http_server(port, addr=address, registry=registry)
