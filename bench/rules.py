"""Site rules benchmark: CPU per comment of scoring with 2,000 banned and 2,000 suspect entries and
200 e-mail rules, against scoring without rules, in one run.

Run from the repo root after ``python -m classifier train --activate``::

    .venv/bin/python bench/rules.py [--registry var/models] [--n 2000] [--batch-size 200] [--rounds 5]

"Scoring" is what the worker does per batch: one model call (with explanations, as the worker asks)
and the policy per comment. "With rules" adds ``RuleSet.evaluate`` for every comment; the language
detection that runs for every comment (rules or not) is measured on its own line. Rounds alternate
between the variants so that a noisy machine slows all of them alike; the median round counts.
Thread pools are limited to one thread so the figures are per core.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"  # per-core figures; set before numpy is imported

import argparse  # noqa: E402
import random  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import replace  # noqa: E402
from pathlib import Path  # noqa: E402

from threadpoolctl import threadpool_limits  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from scoring import make_comments  # noqa: E402

from classifier.comment import Comment  # noqa: E402
from classifier.model import Score  # noqa: E402
from classifier.registry import Registry  # noqa: E402
from service.languages import detect_language  # noqa: E402
from service.policy import apply_policy  # noqa: E402
from service.rules import (  # noqa: E402
    BANNED,
    EMAIL_BAN,
    EMAIL_HOLD,
    SUSPECT,
    CommentFacts,
    RuleOptions,
    RuleSet,
    normalize_entry,
)
from service.settings import Thresholds  # noqa: E402

_SYLLABLES = [c + v for c in "bcdfghjklmnprstvwz" for v in "aeiou"]


def made_up_words(count: int, rng: random.Random, taken: set[str]) -> list[str]:
    """Distinct pronounceable words (no digits, no triple letters: each survives normalisation)."""
    words: list[str] = []
    while len(words) < count:
        word = "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 4)))
        if rng.random() < 0.1:
            word += "*"  # some wildcard entries, as editors write them
        if rng.random() < 0.1:
            word = word.rstrip("*") + " " + rng.choice(_SYLLABLES) + rng.choice(_SYLLABLES)  # phrases
        value = normalize_entry(BANNED, word)
        if value not in taken:
            taken.add(value)
            words.append(value)
    return words


def site_rules(rng: random.Random) -> RuleSet:
    taken: set[str] = set()
    # Real words among the made-up ones, so that some comments do hit entries.
    banned = ["idiot", "cheap watches", "bookmark*"] + made_up_words(1997, rng, taken)
    suspect = ["worst", "channel", "fund*"] + made_up_words(1997, rng, taken)
    domains = [f"{''.join(rng.choice(_SYLLABLES) for _ in range(3))}.example" for _ in range(200)]
    entries = {
        BANNED: banned,
        SUSPECT: suspect,
        EMAIL_BAN: [normalize_entry(EMAIL_BAN, d) for d in domains[:100]],
        EMAIL_HOLD: [normalize_entry(EMAIL_HOLD, d) for d in domains[100:]],
    }
    return RuleSet.compile(entries, RuleOptions(hold_disposable_email=True, hold_email_aliases=True))


def run(  # noqa: ANN001 - the model's type is the classifier's
    model, comments: list[Comment], batch_size: int, step: Callable[[Comment, Score], object]
) -> float:
    """CPU seconds for scoring ``comments`` in batches, calling ``step`` for each comment after the model."""
    start = time.process_time()
    thresholds = Thresholds()
    for offset in range(0, len(comments), batch_size):
        batch = comments[offset : offset + batch_size]
        scores = model.score(batch, explain=True)
        for comment, score in zip(batch, scores, strict=True):
            outcome = step(comment, score)
            apply_policy(score.values, comment.text, thresholds, outcome)  # type: ignore[arg-type]
    return time.process_time() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--registry", type=Path, default=Path("var/models"))
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()

    registry = Registry(args.registry)
    version = registry.active_version()
    if version is None:
        sys.exit(
            f"no active model in {args.registry}; train one with `python -m classifier train --activate`"
        )
    model = registry.load(version)
    rng = random.Random(7)
    emails = ["reader@example.org", "x+news@example.org", "a@mailinator.com", ""]
    comments = [replace(comment, email=rng.choice(emails)) for comment in make_comments(args.n)]
    compile_start = time.process_time()
    rules = site_rules(rng)
    compile_seconds = time.process_time() - compile_start
    empty = RuleSet()

    def facts(comment: Comment, score: Score) -> CommentFacts:
        return CommentFacts(comment.text, comment.email, normalized=score.normalized)

    variants: dict[str, Callable[[Comment, Score], object]] = {
        "without rules": lambda c, s: empty.evaluate(facts(c, s)),
        "with rules": lambda c, s: rules.evaluate(facts(c, s)),
        # The worker detects every comment's language, rules or not: its cost, beside the rules'.
        "without rules, language": lambda c, s: (detect_language(c.text), empty.evaluate(facts(c, s)))[1],
    }
    detect_language("warm the identifier up before timing anything")
    hits = sum(1 for c in comments if rules.evaluate(CommentFacts(c.text, c.email)).hits)
    timings: dict[str, list[float]] = {name: [] for name in variants}
    with threadpool_limits(1):
        run(model, comments[: args.batch_size], args.batch_size, variants["without rules"])  # warm-up
        for _ in range(args.rounds):
            for name, step in variants.items():
                timings[name].append(run(model, comments, args.batch_size, step))
    base = statistics.median(timings["without rules"])
    print(f"model {version}; {args.n} comments of 50-500 characters, batches of {args.batch_size}")
    print(
        f"rules: {rules.words.size} banned and suspect entries, "
        f"{len(rules.email_ban) + len(rules.email_hold)} e-mail domains (+ the disposable list); "
        f"compiled in {compile_seconds * 1000:.0f} ms CPU; {hits} of {args.n} comments hit a rule"
    )
    for name, values in timings.items():
        median = statistics.median(values)
        rounds = ", ".join(f"{value:.2f}" for value in values)
        fastest = min(values) / min(timings["without rules"]) - 1
        print(
            f"{name:>24}: {median / args.n * 1e3:.3f} ms CPU per comment "
            f"({(median / base - 1) * 100:+.1f} % vs without rules by median, "
            f"{fastest * 100:+.1f} % by fastest round; "
            f"rounds {rounds} s)"
        )


if __name__ == "__main__":
    main()
