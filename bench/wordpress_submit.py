"""What our WordPress plugin adds to a reader's comment submission: wp-comments-post.php latency.

A real WordPress site (Debian's package, PHP's built-in server, MariaDB, the same set-up as
``tests/wordpress_site.py``) posts comments one at a time, as readers' browsers do, alternating rounds
with our plugin active (each comment goes to ``POST /v1/comments?wait=2`` on the real stack: gunicorn,
worker, Redis, the trained model) and rounds with the plugin deactivated (WordPress alone). Prints
p50/p99 of the POST-to-redirect time for both, and the verdicts the plugin applied.

    .venv/bin/python bench/wordpress_submit.py [--comments 300] [--model-dir var/models]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.compat_latency import ensure_model  # noqa: E402
from bench.stack import running_stack  # noqa: E402
from tests.wordpress_site import PLUGIN, WordPressSite, wordpress_site  # noqa: E402

OPENINGS = [
    "Thanks for covering the council meeting",
    "I went to the library every Sunday as a child",
    "The bus timetable changes are a real problem for us",
    "Good reporting on the flood defences",
    "Does anyone know when the consultation closes",
    "My street has had the same pothole for two years",
]


def comment_text(index: int) -> str:
    # Distinct texts: WordPress refuses a duplicate comment.
    return f"{OPENINGS[index % len(OPENINGS)]}, reader note number {index}."


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))]


def post_round(site: WordPressSite, start: int, count: int) -> tuple[list[float], list[int]]:
    timings, ids = [], []
    for index in range(start, start + count):
        began = time.perf_counter()
        ids.append(site.post_comment(comment_text(index), f"Reader {index}", f"reader{index}@example.org"))
        timings.append((time.perf_counter() - began) * 1000)
    return timings, ids


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--comments", type=int, default=300, help="comments per configuration")
    parser.add_argument("--round", type=int, default=50, help="comments per round before switching")
    parser.add_argument("--model-dir", type=Path, default=ROOT / "var" / "models")
    args = parser.parse_args()
    model_dir = args.model_dir.resolve()
    ensure_model(model_dir)

    from service.db import make_engine, make_session_factory
    from service.keys import create_api_key, server_secret
    from service.settings import Settings

    with (
        running_stack(model_dir) as stack,
        wordpress_site(Path(tempfile.mkdtemp(prefix="wp-bench-"))) as site,
    ):
        port = stack.gunicorn("service:create_app()", web_workers=2)
        stack.worker()
        engine = make_engine(stack.database_url)
        with make_session_factory(engine)() as session:
            new = create_api_key(
                session,
                "wordpress",
                ("comments", "moderate"),
                webhook_url=site.webhook_url,
                # The stack's processes keep their secret in its var/ (no SECRET_KEY set).
                sealing_key=server_secret(Settings(var_dir=stack.workdir / "var")),
            )
        engine.dispose()
        settings = {
            "service_url": f"http://127.0.0.1:{port}",
            "api_key": new.secret,
            "webhook_secret": new.webhook_secret,
            "wait_seconds": 2,
            "comment_types": ["comment"],
        }
        site.set_option("moderation_service_settings", settings)
        site.set_option("comment_previously_approved", "0")
        site.activate(PLUGIN)
        post_round(site, 10_000_000, 10)  # warm-up: PHP opcache, model, connections
        with_plugin: list[float] = []
        alone: list[float] = []
        plugin_ids: list[int] = []
        index = 0
        while len(with_plugin) < args.comments or len(alone) < args.comments:
            for active in (True, False):
                done = with_plugin if active else alone
                if len(done) >= args.comments:
                    continue
                site.wp(
                    "require_once ABSPATH . 'wp-admin/includes/plugin.php';\n"
                    + (f"activate_plugin( '{PLUGIN}' );" if active else f"deactivate_plugins( '{PLUGIN}' );")
                )
                count = min(args.round, args.comments - len(done))
                timings, ids = post_round(site, index, count)
                index += count
                done.extend(timings)
                if active:
                    plugin_ids.extend(ids)
        verdicts = Counter(
            (site.approved(comment_id), site.meta(comment_id, "reason") or "no verdict in time")
            for comment_id in plugin_ids
        )

    def row(name: str, values: list[float]) -> str:
        p50, p99 = percentile(values, 0.5), percentile(values, 0.99)
        return f"| {name} | {len(values)} | {p50:.0f} | {p99:.0f} | {statistics.fmean(values):.0f} |"

    print("\nwp-comments-post.php, one reader at a time (ms, POST to redirect)\n")
    print("| configuration | comments | p50 | p99 | mean |\n|---|---|---|---|---|")
    print(row("with our plugin (wait=2)", with_plugin))
    print(row("WordPress alone", alone))
    print("\nplugin verdicts (comment_approved, reason):")
    for (approved, reason), count in verdicts.most_common():
        print(f"  {count:4d}  {approved}  {reason}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
