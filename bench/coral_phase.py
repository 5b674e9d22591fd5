"""Latency of the Coral external moderation phase (``POST /coral/v1/phase``) on the real stack.

The stack is ``bench/compat_latency.py``'s: gunicorn (``--preload``) on loopback, a throwaway
``redis-server`` (or ``--redis-url``), SQLite under a temporary var dir and the active model from
``var/models``, with ``CORAL_SIGNING_SECRET`` set. Each request is built and signed as Coral builds it
(``JSON.stringify(request, null, 2)``, ``X-Coral-Signature: sha256=<HMAC>``) and each one is a different
comment, so every request stores a comment, scores it and records its verdict. Requests are offered
open-loop (request *i* is due at ``start + i / rate``) and latency counts from the due time.

Coral waits for the phase only as long as its configured timeout (milliseconds, set by the admin); the
target is a p99 far below any sensible timeout.

    .venv/bin/python bench/coral_phase.py                  # 500 requests at 50/s
    .venv/bin/python bench/coral_phase.py --requests 2000 --rate 100 --workers 2
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import http.client
import json
import os
import queue
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from compat_latency import COMMENTS, ensure_model, percentile, start_stack  # noqa: E402

from service.settings import Settings  # noqa: E402

TARGET_P99_MS = 800.0
SECRET = "ems_bench_" + "5e" * 32


def phase_body(index: int, text: str) -> bytes:
    """Coral's ``ExternalModerationRequest`` for comment ``index``, serialised as Coral does."""
    request = {
        "action": "EDIT" if index % 10 == 9 else "NEW",
        "comment": {"body": f"<p>{text}</p>", "parentID": None if index % 3 else f"parent-{index - 1}"},
        "author": {"id": f"user-{index % 97}", "role": "COMMENTER"},
        "story": {"id": f"story-{index % 13}", "url": f"https://news.example.org/story-{index % 13}/"},
        "site": {"id": "site-1"},
        "tenantID": "tenant-1",
        "tenantDomain": "news.example.org",
        # Makes every body, so every signature, unique: each request is a new comment to store.
        "benchIndex": index,
    }
    return json.dumps(request, indent=2, ensure_ascii=False).encode()


@dataclass(frozen=True)
class Call:
    path: str
    body: bytes
    headers: dict[str, str]


def phase_calls(key: str, count: int, offset: int) -> list[Call]:
    calls = []
    for index in range(offset, offset + count):
        body = phase_body(index, COMMENTS[index % len(COMMENTS)][2])
        signature = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        headers = {
            "Content-Type": "application/json",
            "X-Coral-Signature": signature,
            "User-Agent": "Coral Moderation/9.0.0",
        }
        calls.append(Call(f"/coral/v1/phase?key={key}", body, headers))
    return calls


@dataclass
class Result:
    latencies_ms: list[float]
    answers: Counter[str]
    errors: int
    elapsed: float


def offer_load(port: int, calls: list[Call], rate: float, threads: int) -> Result:
    """Open loop: call i is due at start + i/rate; latency counts from that due time."""
    due: queue.Queue[tuple[int, float] | None] = queue.Queue()
    latencies: list[float] = []
    answers: Counter[str] = Counter()
    errors = [0]
    lock = threading.Lock()
    start = time.perf_counter() + 0.2
    for i in range(len(calls)):
        due.put((i, start + i / rate))
    for _ in range(threads):
        due.put(None)

    def worker() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        while (item := due.get()) is not None:
            i, at = item
            delay = at - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            call = calls[i]
            try:
                connection.request("POST", call.path, body=call.body, headers=call.headers)
                response = connection.getresponse()
                text = response.read().decode()
                answer = "no opinion (204)" if response.status == 204 else None
                if response.status == 200:
                    answer = json.loads(text).get("status", "?")
            except (OSError, http.client.HTTPException, ValueError):
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                answer = None
            finished = time.perf_counter()
            with lock:
                if answer is None:
                    errors[0] += 1
                else:
                    latencies.append((finished - at) * 1000)
                    answers[answer] += 1
        connection.close()

    workers = [threading.Thread(target=worker, daemon=True) for _ in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    return Result(latencies, answers, errors[0], time.perf_counter() - start)


def stored_comments(database_url: str) -> int:
    from sqlalchemy import func, select

    from service.db import Comment, make_engine

    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            return int(connection.scalar(select(func.count()).select_from(Comment)) or 0)
    finally:
        engine.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=500, help="measured requests")
    parser.add_argument("--warmup", type=int, default=50, help="unmeasured requests first")
    parser.add_argument("--rate", type=float, default=50.0, help="offered requests per second")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument(
        "--server-threads", type=int, default=4, help="threads per gunicorn worker (as in production)"
    )
    parser.add_argument("--database-url", default=None, help="postgresql://…; default SQLite in a temp dir")
    parser.add_argument("--threads", type=int, default=16, help="client threads (connections)")
    parser.add_argument("--redis-url", default=None, help="default: a throwaway redis-server on a free port")
    parser.add_argument("--model-dir", type=Path, default=ROOT / "var" / "models")
    args = parser.parse_args(argv)
    args.model_dir = args.model_dir.resolve()
    ensure_model(args.model_dir)
    # start_stack hands its environment to gunicorn.
    os.environ["CORAL_SIGNING_SECRET"] = SECRET

    with tempfile.TemporaryDirectory(prefix="coral-bench-") as var_dir:
        stack = start_stack(args, Path(var_dir))
        database_url = args.database_url or Settings(var_dir=Path(var_dir)).effective_database_url
        # A PostgreSQL database may hold an earlier run's comments: count this run's.
        stored_before = stored_comments(database_url)
        try:
            offer_load(stack.port, phase_calls(stack.key, args.warmup, 0), args.rate, args.threads)
            calls = phase_calls(stack.key, args.requests, args.warmup)
            result = offer_load(stack.port, calls, args.rate, args.threads)
        finally:
            stack.stop()
        stored = stored_comments(database_url) - stored_before

    values = result.latencies_ms
    p99 = percentile(values, 0.99)
    passed = result.errors == 0 and p99 <= TARGET_P99_MS and stored == args.warmup + args.requests
    print()
    print(
        f"coral phase: {args.requests} signed requests offered at {args.rate:g}/s open-loop "
        f"(after {args.warmup} warm-up); gunicorn --preload --workers {args.workers} "
        f"--threads {args.server_threads}; {'PostgreSQL' if args.database_url else 'SQLite'}; "
        f"loopback; {os.cpu_count()} CPUs (shared with the client)"
    )
    print(
        f"ok {len(values)}  errors {result.errors}  achieved {len(values) / result.elapsed:.1f}/s  "
        f"comments stored {stored}"
    )
    print(
        f"p50 {percentile(values, 0.50):.2f} ms  p90 {percentile(values, 0.90):.2f} ms  p99 {p99:.2f} ms  "
        f"max {max(values, default=float('nan')):.2f} ms  "
        f"mean {statistics.fmean(values) if values else float('nan'):.2f} ms"
    )
    print("answers: " + ", ".join(f"{name} {count}" for name, count in result.answers.most_common()))
    print(
        f"target: p99 <= {TARGET_P99_MS:g} ms, no errors, every request stored -> "
        f"{'PASS' if passed else 'FAIL'}"
    )
    return 0 if passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
