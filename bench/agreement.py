"""How long the Overview's agreement table and rule-reason counts take over a busy quarter.

    .venv/bin/python bench/agreement.py                     # SQLite in a temporary directory
    .venv/bin/python bench/agreement.py --database-url postgresql://postgres@127.0.0.1/bench

Seeds ``--comments`` comments (100,000 by default; the database must have none) received over the
last 12 weeks, each with the model's status change and, for a fifth of them, a moderator's, across
two sites; then times ``agreement_and_rule_reasons`` (the Overview's one query) ``--runs`` times for every
site together and for one site, and prints p50/p95 in milliseconds.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import func, insert, select  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from service.db import (  # noqa: E402
    APPROVED,
    HELD,
    PENDING,
    REJECTED,
    Comment,
    Site,
    StatusChange,
    create_schema,
    make_engine,
    new_id,
    utcnow,
)
from service.sites import comment_condition  # noqa: E402
from service.web.moderation.agreement import agreement_and_rule_reasons  # noqa: E402

REASONS = {
    APPROVED: ["clean", "trusted_author"],
    HELD: ["spam_hold", "suspect_word"],
    REJECTED: ["banned_word"],
}


def seed(session: Session, count: int, seed_value: int = 7) -> list[Site]:
    rng = random.Random(seed_value)
    now = utcnow()
    if session.scalar(select(func.count()).select_from(Comment)):
        sys.exit("error: the database already has comments; point --database-url at an empty one")
    sites = [Site(name="default", settings={}), Site(name="gazette", settings={})]
    session.add_all(sites)
    session.flush()
    for start in range(0, count, 2000):
        comments, changes = [], []
        for _ in range(start, min(count, start + 2000)):
            received = now - timedelta(seconds=rng.randrange(84 * 86400))
            status = rng.choices((APPROVED, HELD, REJECTED), (70, 20, 10))[0]
            comment_id = new_id()
            final = status
            changes.append(
                {
                    "comment_id": comment_id,
                    "from_status": PENDING,
                    "to_status": status,
                    "reason": rng.choice(REASONS[status]),
                    "actor": "model:bench",
                    "created_at": received + timedelta(seconds=2),
                }
            )
            if rng.random() < 0.2:
                final = rng.choice((APPROVED, REJECTED))
                changes.append(
                    {
                        "comment_id": comment_id,
                        "from_status": status,
                        "to_status": final,
                        "reason": "moderator_approved" if final == APPROVED else "moderator_spam",
                        "actor": "moderator:bench",
                        "created_at": received + timedelta(hours=3),
                    }
                )
            comments.append(
                {
                    "id": comment_id,
                    "author_name": "Bench",
                    "author_email": "bench@example.com",
                    "text": "a comment",
                    "text_hash": "0" * 64,
                    "status": final,
                    "received_at": received,
                    "site_id": rng.choice(sites).id,
                }
            )
        session.execute(insert(Comment), comments)
        session.execute(insert(StatusChange), changes)
    session.commit()
    return sites


def timed(label: str, runs: int, call) -> None:  # noqa: ANN001
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    p95 = samples[min(len(samples) - 1, round(0.95 * (len(samples) - 1)))]
    print(f"{label:40s} p50 {statistics.median(samples):7.1f} ms  p95 {p95:7.1f} ms")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--comments", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args(argv)
    url = args.database_url or f"sqlite:///{Path(tempfile.mkdtemp(prefix='bench-agreement-')) / 'bench.db'}"
    engine = make_engine(url)
    create_schema(engine)
    with Session(engine) as session:
        started = time.perf_counter()
        sites = seed(session, args.comments)
        print(
            f"seeded {args.comments} comments in {time.perf_counter() - started:.1f} s",
            f"({engine.dialect.name})",
        )
        gazette = comment_condition(sites[1])
        timed("every site", args.runs, lambda: agreement_and_rule_reasons(session))
        timed("one site", args.runs, lambda: agreement_and_rule_reasons(session, gazette))
        total = sum(
            week.model_approved + week.model_held + week.model_rejected
            for week in agreement_and_rule_reasons(session)[0]
        )
        print(f"model decisions counted: {total}")
    engine.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
