"""Throughput with one and with two worker hosts, on the several-hosts deployment (``tests/deployment.py``).

PostgreSQL and Redis on one network namespace, gunicorn on another, ``worker.py --processes 1`` on
each worker host; the clients run in the root namespace. For each number of worker hosts, in
interleaved rounds, it prints:

- backlog drain: comments/s the running worker hosts score a backlog of ``--backlog`` comments at,
  stored and then queued at once (the first verdict to the last, by the verdicts' ``decided_at``);
- end to end: comments/s from the first POST to the last stored verdict, ``--comments`` comments sent
  back to back by ``--concurrency`` keep-alive clients.

All the namespaces share the machine's cores, so a second worker host adds a process, not a CPU.
Needs root. Usage: sudo .venv/bin/python bench/hosts.py [--model-dir var/models] [--rounds 2]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.orm import sessionmaker
from stack import ROOT  # noqa: F401 - puts the repository on sys.path

from tests.deployment import (
    ApiClient,
    Deployment,
    deployment,
    make_api_key,
    missing_requirements,
    namespace_pids,
)

TEXTS = [
    "Thanks for the clear explanation, I had not thought about it that way.",
    "I disagree with the author: the numbers in the third paragraph do not add up, see the council report.",
    "Great article! Check out my site http://cheap-pills.example.com for the best deals on watches.",
    "What a stupid take. Do you even read what you write?",
]


def comment_body(tag: str, index: int) -> dict:
    return {
        "name": f"Reader {index % 97}",
        "email": f"reader{index % 97}@example.com",
        "text": f"{TEXTS[index % len(TEXTS)]} #{tag}-{index}",
    }


def tiny_model_dir() -> Path:
    """The test suite's tiny model, trained in a second (the default model needs the shared data)."""
    from classifier.registry import Registry
    from classifier.training import TrainParams, train
    from tests.conftest import tiny_examples

    registry = Registry(Path(tempfile.mkdtemp(prefix="moderation-hosts-model-")))
    params = TrainParams(word_bits=12, char_bits=13, min_df=1, spam_c=10.0, toxicity_c=10.0, calibrate=False)
    registry.activate(registry.save(train(tiny_examples(), params)))
    return registry.root


def post_comments(hosts: Deployment, key: str, tag: str, count: int, concurrency: int) -> list[str]:
    """POST ``count`` comments from ``concurrency`` keep-alive clients; the ids answered 2xx."""
    ids: list[str] = []
    lock = threading.Lock()

    def run(slot: int) -> None:
        client = ApiClient(hosts.api_address, key)
        for index in range(slot, count, concurrency):
            status, answer = client.post_comment(comment_body(tag, index))
            if 200 <= status < 300 and answer:
                with lock:
                    ids.append(answer["id"])
        client.close()

    threads = [threading.Thread(target=run, args=(slot,)) for slot in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return ids


def verdict_times(sessions: sessionmaker, ids: list[str], timeout: float = 300.0) -> list[datetime]:
    """Every comment's ``decided_at``, once none of them is pending."""
    from sqlalchemy import select

    from service.db import PENDING, Comment

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with sessions() as session:
            rows = []
            for start in range(0, len(ids), 1000):
                rows += session.execute(
                    select(Comment.status, Comment.decided_at).where(
                        Comment.id.in_(ids[start : start + 1000])
                    )
                ).all()
        if len(rows) == len(ids) and all(status != PENDING for status, _ in rows):
            return [decided.replace(tzinfo=decided.tzinfo or UTC) for _, decided in rows]
        time.sleep(0.5)
    raise RuntimeError("verdicts did not arrive in time")


def use_worker_hosts(hosts: Deployment, count: int) -> None:
    """Run exactly the first ``count`` worker hosts (started or stopped cleanly, as an operator would)."""
    for index, name in enumerate(hosts.worker_host_names()):
        running = bool(namespace_pids(hosts.hosts[name].namespace))
        if index < count and not running:
            hosts.start_worker_host(name)
        elif index >= count and running:
            hosts.stop_host(name)
    hosts.wait_for_workers(count)


def seed_backlog(hosts: Deployment, sessions: sessionmaker, tag: str, count: int) -> list[str]:
    """Store ``count`` pending comments and then queue them all, in arrivals of 50 as the API would.

    Stored first and queued at once, so that the workers, started and idle, find the whole backlog.
    """
    import redis

    from service import queueing
    from service.db import ApiKey
    from service.store import create_comment

    with sessions() as session:
        api_key = session.query(ApiKey).first()
        ids = [create_comment(session, api_key, comment_body(tag, i))[0].id for i in range(count)]
    connection = redis.Redis.from_url(hosts.redis_url)
    for start in range(0, len(ids), 50):
        queueing.enqueue_scoring(connection, hosts.settings(), ids[start : start + 50])
    connection.close()
    return ids


def measure(
    hosts: Deployment, sessions: sessionmaker, key: str, count: int, tag: str, args: argparse.Namespace
) -> tuple:
    """(drain comments/s, end-to-end comments/s) with ``count`` worker hosts."""
    use_worker_hosts(hosts, count)
    decided = sorted(verdict_times(sessions, seed_backlog(hosts, sessions, f"{tag}-backlog", args.backlog)))
    drain = (len(decided) - 1) / (decided[-1] - decided[0]).total_seconds()

    started = datetime.now(UTC)
    sent = post_comments(hosts, key, f"{tag}-e2e", args.comments, args.concurrency)
    finished = max(verdict_times(sessions, sent))
    end_to_end = len(sent) / (finished - started).total_seconds()
    return drain, end_to_end


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, help="a model registry (default: the tests' tiny model)")
    parser.add_argument("--backlog", type=int, default=3000, help="comments in each drain run")
    parser.add_argument("--comments", type=int, default=2000, help="comments in each end-to-end run")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds of one and two hosts")
    args = parser.parse_args()
    missing = missing_requirements()
    if missing:
        print("needs " + ", ".join(missing), file=sys.stderr)
        return 2
    model_dir = args.model_dir or tiny_model_dir()
    try:
        return run_bench(model_dir, args)
    finally:
        if args.model_dir is None:
            shutil.rmtree(model_dir, ignore_errors=True)


def run_bench(model_dir: Path, args: argparse.Namespace) -> int:
    from service.db import make_engine, make_session_factory

    with deployment(model_dir, worker_hosts=2, start_workers=False) as hosts:
        key = make_api_key(hosts).secret
        engine = make_engine(hosts.database_url)
        sessions = make_session_factory(engine)
        print(f"model: {model_dir}  api: gunicorn 2 workers x 4 threads  clients: {args.concurrency}")
        # Warm-up: the first requests and the first batch pay for imports and caches.
        use_worker_hosts(hosts, 1)
        verdict_times(sessions, post_comments(hosts, key, "warm", 200, args.concurrency))
        results: dict[int, list[tuple[float, float]]] = {1: [], 2: []}
        for round_index in range(args.rounds):
            for count in (1, 2) if round_index % 2 == 0 else (2, 1):
                drain, end_to_end = measure(hosts, sessions, key, count, f"r{round_index}-h{count}", args)
                results[count].append((drain, end_to_end))
                print(f"round {round_index + 1}, {count} worker host(s): drain {drain:.0f}/s, ", end="")
                print(f"end to end {end_to_end:.0f}/s")
        for count, runs in results.items():
            drains, end_to_ends = [r[0] for r in runs], [r[1] for r in runs]
            print(
                f"{count} worker host(s): backlog drain {statistics.median(drains):.0f} comments/s, "
                f"end to end {statistics.median(end_to_ends):.0f} comments/s (median of {len(runs)})"
            )
        engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
