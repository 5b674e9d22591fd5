"""Scoring benchmark: load time, artifact size, batched throughput per core, single-comment latency, RSS.

Run from the repo root after ``python -m classifier train --activate``::

    .venv/bin/python bench/scoring.py [--registry var/models] [--model VERSION] [--n 6000]

Thread pools are limited to one thread so the figures are per core.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"  # per-core figures; set before numpy is imported

import argparse  # noqa: E402
import random  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from classifier.comment import Comment  # noqa: E402
from classifier.registry import Registry  # noqa: E402

#: Ordinary discussion; a comment also gets one spammy or rude fragment with probability 0.15 each.
_FRAGMENTS = [
    "I think the council got this one badly wrong",
    "thanks for the thoughtful article",
    "the mayor should answer these questions",
    "this is the worst idea I have heard in years",
    "the numbers in the report do not add up",
    "my family has lived here for three generations",
    "what about the people who cannot afford it",
    "see https://www.bbc.co.uk/news/uk-12345 for more",
    "Does anyone know when the road works will finish?",
    "totally agree with the previous commenter",
    "ÉNORME merci pour cet article",
    "the schools need more funding, not less",
]
_SPAMMY = [
    "check out my channel for more videos",
    "great post, I will bookmark your blog",
    "visit http://example-shop.com/deals for cheap watches",
]
_RUDE = ["you are an idiot if you believe that", "shut up, this is the worst idea I have heard"]
_NAMES = ["", "", "Anna Smith", "dave99", "Cheap Watches Online", "Maria Garcia"]


def make_comments(n: int, seed: int = 1) -> list[Comment]:
    """Synthetic comments of 50-500 characters (uniform), with some metadata."""
    rng = random.Random(seed)
    comments = []
    for _ in range(n):
        target = rng.randint(50, 500)
        parts: list[str] = []
        if rng.random() < 0.15:
            parts.append(rng.choice(_SPAMMY))
        if rng.random() < 0.15:
            parts.append(rng.choice(_RUDE))
        while sum(len(p) + 2 for p in parts) < target:
            parts.append(rng.choice(_FRAGMENTS))
        rng.shuffle(parts)
        text = ". ".join(parts)[:target]
        name = rng.choice(_NAMES)
        comments.append(
            Comment(
                text,
                name=name,
                email="reader@example.org" if name else "",
                url="https://example.org" if rng.random() < 0.1 else "",
            )
        )
    return comments


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--registry", type=Path, default=Path("var/models"))
    parser.add_argument("--model", default=None)
    parser.add_argument("--n", type=int, default=6000)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument(
        "--single", type=int, default=1000, help="single-comment calls for the latency figures"
    )
    args = parser.parse_args()

    rss_before = rss_mb()
    registry = Registry(args.registry)
    version = args.model or registry.active_version()
    if version is None:
        sys.exit("error: no active model; run `python -m classifier train --activate` first")
    started = time.perf_counter()
    model = registry.load(version)
    load_s = time.perf_counter() - started
    artifact = registry.root / version / model.card.get("artifact", "model.skops")
    print(f"model {version}")
    print(
        f"load: {load_s:.2f} s   artifact: {artifact.stat().st_size / 1e6:.1f} MB   "
        f"RSS after load: {rss_mb():.0f} MB (before: {rss_before:.0f} MB)"
    )

    comments = make_comments(args.n)
    mean_len = np.mean([len(c.text) for c in comments])
    with threadpool_limits(1):
        model.score(comments[:200])  # warm the caches
        for label, explain in (("score (with reasons)", True), ("predict / score without reasons", False)):
            started = time.perf_counter()
            cpu_started = time.process_time()
            for i in range(0, len(comments), args.batch_size):
                batch = comments[i : i + args.batch_size]
                if explain:
                    model.score(batch, explain=True)
                else:
                    model.predict(batch)
            elapsed = time.perf_counter() - started
            cpu = time.process_time() - cpu_started
            print(
                f"batched {label}: {len(comments) / elapsed:,.0f} comments/s wall, "
                f"{len(comments) / cpu:,.0f} comments/s per CPU-second "
                f"(n={len(comments)}, batch={args.batch_size}, mean length {mean_len:.0f} chars)"
            )
        latencies = []
        cpu_latencies = []
        singles = make_comments(args.single, seed=2)
        for comment in singles:
            started = time.perf_counter()
            cpu_started = time.thread_time()
            model.score([comment], explain=True)
            latencies.append((time.perf_counter() - started) * 1000)
            cpu_latencies.append((time.thread_time() - cpu_started) * 1000)
        p50, p99 = np.percentile(latencies, [50, 99])
        c50, c99 = np.percentile(cpu_latencies, [50, 99])
        print(
            f"single comment with reasons: wall p50 {p50:.2f} ms, p99 {p99:.2f} ms; "
            f"CPU p50 {c50:.2f} ms, p99 {c99:.2f} ms (n={len(latencies)})"
        )
    print(f"peak RSS: {rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
