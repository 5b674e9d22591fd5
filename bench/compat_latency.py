"""Latency of the compatibility endpoints on the real stack, at a fixed offered load.

Starts gunicorn (``--preload``: the model is loaded once, before the workers fork) on loopback with a
real Redis (a throwaway ``redis-server`` on a free port, or ``--redis-url``), SQLite under a temporary
var dir, and the active model from ``var/models``. Then it offers Akismet ``comment-check`` and
Perspective ``comments:analyze`` requests on an open-loop schedule (request *i* is due at
``start + i / rate``, whether or not earlier ones have finished) and reports p50/p99 latency measured
from each request's *scheduled* time, so a stalled server cannot hide its queueing delay.

    .venv/bin/python bench/compat_latency.py            # 100 req/s, 20 s per endpoint
    .venv/bin/python bench/compat_latency.py --rate 200 --seconds 10 --workers 2
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import queue
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TARGET_P99_MS = 20.0

COMMENTS = [
    ("Ana", "ana@example.org", "Thank you for this lovely article, I enjoyed reading it with my coffee."),
    (
        "Ben",
        "ben@example.net",
        "I disagree with the author about the budget, but the numbers are well presented.",
    ),
    (
        "cheap-meds",
        "deals@pills.biz",
        "CHEAP VIAGRA!!! Buy now at www.cheap-pills.biz, best prices, fast shipping",
    ),
    ("Chris", "chris@example.com", "You are an idiot and nobody cares what you think, shut up."),
    ("Dora", "dora@example.org", "Great photos of the park. Does anyone know when the new playground opens?"),
    (
        "SEO Expert",
        "seo@backlinks.example",
        "Nice post! Visit my site www.seo-backlinks.example for more traffic",
    ),
    (
        "Eve",
        "eve@example.com",
        "The council meeting was long, but I think they finally reached a fair decision.",
    ),
    (
        "Finn",
        "finn@example.org",
        "This is the dumbest thing I have read all week. Whoever wrote it should be fired.",
    ),
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(check, seconds: float, what: str) -> None:  # noqa: ANN001
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"timed out waiting for {what}")


# --- the stack -----------------------------------------------------------------------------------


@dataclass
class Stack:
    port: int
    key: str
    processes: list[subprocess.Popen] = field(default_factory=list)

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.terminate()
        for process in reversed(self.processes):
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


def ensure_model(model_dir: Path) -> None:
    from classifier.registry import Registry

    if Registry(model_dir).active_version() is not None:
        return
    print(f"no active model in {model_dir}: training one (python -m classifier train --activate)")
    subprocess.run(
        [sys.executable, "-m", "classifier", "train", "--registry", str(model_dir), "--activate"],
        cwd=ROOT,
        check=True,
    )


def start_stack(args: argparse.Namespace, var_dir: Path) -> Stack:
    from service.keys import SCOPES, create_api_key
    from service.runtime import Runtime
    from service.settings import Settings

    stack = Stack(port=free_port(), key="")
    redis_url = args.redis_url
    if redis_url is None:
        redis_server = shutil.which("redis-server")
        if redis_server is None:
            raise SystemExit("redis-server not found; pass --redis-url redis://127.0.0.1:6379/15")
        redis_port = free_port()
        stack.processes.append(
            subprocess.Popen(
                [
                    redis_server,
                    "--port",
                    str(redis_port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ],
                stdout=subprocess.DEVNULL,
            )
        )
        redis_url = f"redis://127.0.0.1:{redis_port}/0"
        wait_for(lambda: socket.create_connection(("127.0.0.1", redis_port), timeout=0.2), 10, "redis-server")

    # Benches that reuse this stack may ask for PostgreSQL and for threaded gunicorn workers.
    database_url = getattr(args, "database_url", None)
    settings = Settings(
        redis_url=redis_url,
        database_url=database_url,
        var_dir=var_dir,
        model_dir=args.model_dir,
        redis_prefix="bench",
    )
    runtime = Runtime.build(settings)
    with runtime.session() as session:
        # A generous per-key limit: the check still runs on every request, it just never trips.
        stack.key = create_api_key(session, "bench", SCOPES, rate_limit="100000/second").secret
    runtime.close()

    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "MODERATION_VAR_DIR": str(var_dir),
        "MODERATION_MODEL_DIR": str(args.model_dir),
        "REDIS_PREFIX": "bench",
        "SECRET_KEY": "bench",
        "LOG_LEVEL": "WARNING",
        **({"DATABASE_URL": database_url} if database_url else {}),
    }
    stack.processes.append(
        subprocess.Popen(
            [
                str(Path(sys.executable).parent / "gunicorn"),
                "--preload",
                "--workers",
                str(args.workers),
                "--threads",
                str(getattr(args, "server_threads", 1)),
                "--bind",
                f"127.0.0.1:{stack.port}",
                "--log-level",
                "warning",
                "service:create_app()",
            ],
            cwd=ROOT,
            env=env,
        )
    )
    wait_for(lambda: _status(stack.port, "/healthz") == 200, 60, "gunicorn")
    return stack


def _status(port: int, path: str) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
    try:
        connection.request("GET", path)
        return connection.getresponse().status
    finally:
        connection.close()


# --- the load ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    body: bytes
    headers: dict[str, str]
    expect: tuple[str, ...]


def comment_check_calls(key: str) -> list[Call]:
    calls = []
    for name, email, text in COMMENTS:
        form = {
            "api_key": key,
            "blog": "https://blog.example.com",
            "user_ip": "203.0.113.9",
            "user_agent": "Mozilla/5.0",
            "comment_type": "comment",
            "comment_author": name,
            "comment_author_email": email,
            "comment_content": text,
            "blog_lang": "en",
        }
        calls.append(
            Call(
                "POST",
                "/1.1/comment-check",
                urllib.parse.urlencode(form).encode(),
                {"Content-Type": "application/x-www-form-urlencoded"},
                ("true", "false"),
            )
        )
    return calls


def analyze_calls(key: str) -> list[Call]:
    calls = []
    for _name, _email, text in COMMENTS:
        body = {  # what Coral sends, with SPAM added
            "comment": {"text": text},
            "doNotStore": True,
            "requestedAttributes": {"TOXICITY": {}, "SPAM": {}},
            "languages": ["en"],
        }
        calls.append(
            Call(
                "POST",
                f"/v1alpha1/comments:analyze?key={key}",
                json.dumps(body).encode(),
                {"Content-Type": "application/json"},
                ("attributeScores",),
            )
        )
    return calls


@dataclass
class Result:
    latencies_ms: list[float]
    errors: int
    elapsed: float


def offer_load(port: int, calls: list[Call], rate: float, seconds: float, threads: int) -> Result:
    """Open loop: request i is due at start + i/rate; latency counts from that due time."""
    total = int(rate * seconds)
    due: queue.Queue[tuple[int, float] | None] = queue.Queue()
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    start = time.perf_counter() + 0.2
    for i in range(total):
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
            call = calls[i % len(calls)]
            try:
                connection.request(call.method, call.path, body=call.body, headers=call.headers)
                response = connection.getresponse()
                text = response.read().decode()
                ok = response.status == 200 and any(part in text for part in call.expect)
            except (OSError, http.client.HTTPException):
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                ok = False
            finished = time.perf_counter()
            with lock:
                if ok:
                    latencies.append((finished - at) * 1000)
                else:
                    errors[0] += 1
        connection.close()

    workers = [threading.Thread(target=worker, daemon=True) for _ in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    return Result(latencies, errors[0], time.perf_counter() - start)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))
    return ordered[index]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=float, default=100.0, help="offered requests per second")
    parser.add_argument("--seconds", type=float, default=20.0, help="measured seconds per endpoint")
    parser.add_argument("--warmup", type=float, default=3.0, help="unmeasured seconds per endpoint first")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--threads", type=int, default=16, help="client threads (connections)")
    parser.add_argument("--redis-url", default=None, help="default: a throwaway redis-server on a free port")
    parser.add_argument("--model-dir", type=Path, default=ROOT / "var" / "models")
    args = parser.parse_args(argv)
    args.model_dir = args.model_dir.resolve()
    ensure_model(args.model_dir)

    with tempfile.TemporaryDirectory(prefix="compat-bench-") as var_dir:
        stack = start_stack(args, Path(var_dir))
        try:
            rows = []
            for name, calls in (
                ("akismet comment-check", comment_check_calls(stack.key)),
                ("perspective analyze", analyze_calls(stack.key)),
            ):
                offer_load(stack.port, calls, args.rate, args.warmup, args.threads)
                result = offer_load(stack.port, calls, args.rate, args.seconds, args.threads)
                rows.append((name, result))
        finally:
            stack.stop()

    print()
    print(
        f"offered {args.rate:g} req/s open-loop for {args.seconds:g} s per endpoint; "
        f"gunicorn --preload --workers {args.workers}; loopback; "
        f"{os.cpu_count()} CPUs (shared with the client)"
    )
    header = (
        f"{'endpoint':<24} {'sent':>6} {'ok':>6} {'err':>4} {'achieved/s':>10} {'p50 ms':>8} {'p90 ms':>8} "
        f"{'p99 ms':>8} {'max ms':>8} {'mean ms':>8}"
    )
    print(header)
    print("-" * len(header))
    passed = True
    for name, result in rows:
        values = result.latencies_ms
        p99 = percentile(values, 0.99)
        passed = passed and result.errors == 0 and p99 <= TARGET_P99_MS
        print(
            f"{name:<24} {len(values) + result.errors:>6} {len(values):>6} {result.errors:>4} "
            f"{len(values) / result.elapsed:>10.1f} "
            f"{percentile(values, 0.50):>8.2f} {percentile(values, 0.90):>8.2f} "
            f"{p99:>8.2f} {max(values, default=float('nan')):>8.2f} "
            f"{statistics.fmean(values) if values else float('nan'):>8.2f}"
        )
    print(f"target: p99 <= {TARGET_P99_MS:g} ms and no errors -> {'PASS' if passed else 'FAIL'}")
    return 0 if passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
