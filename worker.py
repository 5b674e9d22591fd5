"""The RQ worker entry point: ``python worker.py [--processes N] [--fork] [--burst] [--metrics-port N]``.

By default jobs run in the worker process itself (RQ's SimpleWorker): the model and the database
pool are ready, and a verdict takes milliseconds. ``--fork`` runs each job in a forked work horse
instead (RQ's default), which isolates a crashing job at about 100 ms per job; scoring jobs are
batches, so throughput barely changes, but latency does. Either way a killed worker loses nothing:
the reconciler re-enqueues whatever it held.

Each worker process loads the active model before it starts, so forked work horses inherit it, and
runs a background thread that (a) re-enqueues comments whose job was lost and webhook attempts that
are due (the reconciler; a Redis lock lets one process do it per interval) and (b) swaps in a newly
promoted model between jobs.

``--metrics-port N`` serves the process's Prometheus metrics (scoring batches, verdicts, webhooks, the
reconciler, its model) on port N; with ``--processes K`` the K processes use ports N to N+K-1.
"""

from __future__ import annotations

import argparse
import gc
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time

import redis
from rq import SimpleWorker, Worker
from sqlalchemy.exc import SQLAlchemyError

from service import jobs, metrics, privacy, queueing, retraining
from service.keys import server_secret
from service.lifetime import die_with_parent
from service.logs import configure_logging
from service.runtime import Runtime, bind_process_runtime
from service.settings import Settings

logger = logging.getLogger("worker")


#: Held while this process has a database connection open outside a work horse, and while forking one.
#: SQLite keeps per-process lock state that a fork copies: a work horse forked while the reconciler
#: thread was inside a transaction would wait for a lock that, in its copy, is never released.
FORK_GUARD = threading.Lock()


class StopAware:
    """Remembers that RQ was asked to stop (SIGTERM, SIGINT): a Redis error on the way out must end the
    process, not start the loop again (see :func:`work_through_redis_outages`)."""

    stop_requested = False

    def request_stop(self, signum, frame):  # type: ignore[no-untyped-def]
        self.stop_requested = True
        super().request_stop(signum, frame)  # type: ignore[misc]


class ServingWorker(StopAware, SimpleWorker):
    """RQ's SimpleWorker: each job runs in the worker process itself."""


class GuardedForkWorker(StopAware, Worker):
    """RQ's forking worker that never forks while the reconciler thread uses the database."""

    def fork_work_horse(self, job, queue):  # type: ignore[no-untyped-def]
        with FORK_GUARD:
            return super().fork_work_horse(job, queue)


def reconcile_forever(runtime: Runtime, stop: threading.Event) -> None:
    """Reconcile every interval until ``stop`` is set. Never raises: dependencies come and go."""
    interval = runtime.settings.reconcile_interval_seconds
    lock_key = queueing.reconcile_lock_key(runtime.settings)
    while not stop.wait(interval):
        try:
            with FORK_GUARD:
                wanted = runtime.models.active_version()
                # One reconciler per interval across all worker processes.
                if runtime.redis.set(lock_key, "1", nx=True, px=int(interval * 1000)):
                    jobs.reconcile(runtime)
                    retraining.maybe_schedule_retraining(runtime)
                    # Hourly (its own lock): old e-mail addresses and IPs become pseudonyms.
                    with runtime.session() as session:
                        privacy.maybe_apply_retention(
                            session, runtime.redis, runtime.settings, server_secret(runtime.settings)
                        )
            # Outside the guard: loading reads files only and may take a second or two. Work horses
            # forked after the swap inherit the new model; none sees a half-loaded one.
            runtime.models.refresh(wanted)
        except (redis.RedisError, SQLAlchemyError) as error:
            logger.warning("reconcile skipped error=%s", type(error).__name__)
        except Exception:
            logger.exception("reconcile failed")


def run_worker(
    settings: Settings,
    burst: bool = False,
    simple: bool = False,
    queues: tuple[str, ...] = queueing.SERVING_QUEUES,
    metrics_port: int | None = None,
) -> bool:
    runtime = Runtime.build(settings)
    bind_process_runtime(runtime)
    if metrics_port is not None:
        serve_worker_metrics(runtime, metrics_port)
    if runtime.models.model is None:
        logger.error("no active model: comments will be held as 'unscored' until one is promoted")
    stop = threading.Event()
    thread = threading.Thread(target=reconcile_forever, args=(runtime, stop), name="reconciler", daemon=True)
    thread.start()
    # Work horses are forks of this process: keep the collector from walking (and so copying) the
    # long-lived objects they share with it, the model above all.
    gc.collect()
    gc.freeze()
    worker_class = ServingWorker if simple else GuardedForkWorker
    try:
        return work_through_redis_outages(runtime, worker_class, queues, burst)
    finally:
        stop.set()


#: Waits before starting RQ's loop again after Redis was lost: doubling from the first to the last.
RESTART_DELAYS = (1.0, 30.0)


def work_through_redis_outages(
    runtime: Runtime, worker_class: type[Worker], queues: tuple[str, ...], burst: bool
) -> bool:
    """Run RQ's loop; when Redis goes away under it, start it again once Redis is back.

    RQ retries a lost connection only while it waits for a job. A failure while it records a job's
    outcome (a Redis restart, a Sentinel failover) escapes its loop and would end the process, and a
    worker with ``--processes 1`` has no supervisor to start it again. The job it held is not lost:
    its comments are still pending in the database, and the reconciler enqueues them again. A stop
    request (SIGTERM, SIGINT) still ends the process, with Redis or without it.
    """
    delay = RESTART_DELAYS[0]
    stopping = threading.Event()
    while True:
        started = time.monotonic()
        worker = None
        try:
            # Inside the try: making an RQ worker already talks to Redis (it names its connection).
            worker = worker_class(list(queues), connection=runtime.redis)
            return worker.work(burst=burst, with_scheduler=True, logging_level=runtime.settings.log_level)
        except redis.RedisError as error:
            if burst:
                raise
            if stopping.is_set() or getattr(worker, "stop_requested", False):
                logger.warning("worker stopped without redis error=%s", type(error).__name__)
                return False
            if time.monotonic() - started > 60:
                delay = RESTART_DELAYS[0]
            logger.warning("worker lost redis error=%s; starting again in %gs", type(error).__name__, delay)
        # Out of RQ's loop its signal handlers would only flag a loop that is not running: with these a
        # stop request ends the wait.
        signal.signal(signal.SIGTERM, lambda *_: stopping.set())
        signal.signal(signal.SIGINT, lambda *_: stopping.set())
        if stopping.wait(delay):
            return False
        delay = min(delay * 2, RESTART_DELAYS[1])


def serve_worker_metrics(runtime: Runtime, port: int) -> None:
    """This process's metrics on ``port``; the backlog gauges are the API's (one series, not one a worker)."""
    registry = metrics.scrape_registry(
        runtime.settings.metrics_multiprocess_dir, [metrics.runtime_collector(runtime, with_backlog=False)]
    )
    metrics.serve_metrics(port, registry)
    logger.info("metrics port=%d", port)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=1, help="worker processes to run (default 1)")
    parser.add_argument("--burst", action="store_true", help="exit when the queues are empty")
    parser.add_argument(
        "--fork",
        action="store_true",
        help="run each job in a forked work horse (isolation; about 100 ms more latency per job)",
    )
    parser.add_argument(
        "--queues",
        default=",".join(queueing.SERVING_QUEUES),
        help=f"comma-separated queues (default: %(default)s; run a separate `--queues "
        f"{queueing.TRAINING_QUEUE}` worker for retraining)",
    )
    parser.add_argument(
        "--metrics-port",
        type=int,
        default=None,
        help="serve Prometheus metrics on this port (with --processes K: this port to port+K-1)",
    )
    args = parser.parse_args(argv)
    if args.metrics_port is not None and not 0 < args.metrics_port < 65536 - max(args.processes, 1):
        parser.error("--metrics-port takes a port number")
    simple = not args.fork
    queues = tuple(name.strip() for name in args.queues.split(",") if name.strip())
    unknown = set(queues) - set(queueing.WORKER_QUEUES)
    if not queues or unknown:
        parser.error(f"--queues takes names from {', '.join(queueing.WORKER_QUEUES)}")
    settings = Settings.from_env()
    configure_logging(settings)
    if args.processes <= 1:
        run_worker(settings, burst=args.burst, simple=simple, queues=queues, metrics_port=args.metrics_port)
        return 0
    return supervise(settings, args.processes, args.burst, simple, queues, args.metrics_port)


def run_child_worker(
    parent_pid: int,
    settings: Settings,
    burst: bool,
    simple: bool,
    queues: tuple[str, ...],
    metrics_port: int | None = None,
) -> bool:
    """A supervised worker process: it stops (SIGTERM) when its supervisor dies, even by SIGKILL."""
    die_with_parent(parent_pid)
    return run_worker(settings, burst=burst, simple=simple, queues=queues, metrics_port=metrics_port)


def supervise(
    settings: Settings,
    processes: int,
    burst: bool,
    simple: bool,
    queues: tuple[str, ...],
    metrics_port: int | None = None,
) -> int:
    """Run N worker processes and restart any that dies, until SIGTERM/SIGINT."""
    context = multiprocessing.get_context("spawn")
    stopping = threading.Event()

    def start(index: int) -> multiprocessing.process.BaseProcess:
        # Each process keeps its slot's metrics port across restarts, so scrape targets stay put.
        port = metrics_port + index if metrics_port is not None else None
        process = context.Process(
            target=run_child_worker,
            args=(os.getpid(), settings, burst, simple, queues, port),
            daemon=False,
        )
        process.start()
        return process

    def request_stop(signum: int, _frame: object) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    children = [start(index) for index in range(processes)]
    while not stopping.is_set():
        for index, child in enumerate(children):
            if not child.is_alive():
                if burst:
                    continue
                logger.warning("worker pid=%s exited code=%s; restarting", child.pid, child.exitcode)
                children[index] = start(index)
        if burst and not any(child.is_alive() for child in children):
            break
        time.sleep(1)
    for child in children:
        if child.is_alive() and child.pid:
            child.terminate()
    for child in children:
        child.join(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
