"""The learning curve: how much a site's first 100, 300 and 1,000 labels improve the model on that site.

One held-out news source plays the site. Its dated comments are split by time: the older half is the pool
the site's moderators label (see :func:`site_split`), the newer half is what comes after. For each number
of labels the curve goes through the product's own path: the labels are written to a CSV file, imported with
``python -m classifier import csv`` into a fresh label store, and a candidate is trained with
``python -m classifier train --with-labels`` on the public sets without the site's own set. The candidate then
scores the later comments: ROC AUC of the toxicity score, and the stream figures at the default policy.

A last run trains on the same labels shuffled and asks the promotion guard (``--promote-if-better``): a guard
that promotes a model trained on noise would let any site break its own moderation.
"""

from __future__ import annotations

import contextlib
import csv
import io
import random
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from classifier.__main__ import main as classifier_cli
from classifier.comment import ATTRIBUTES, LabelledComment
from classifier.datasets import PUBLIC_SETS
from classifier.labelstore import create_scratch_store
from classifier.registry import Registry

#: Label counts on the curve (0 is the default model, trained without the site).
LABEL_COUNTS: tuple[int, ...] = (0, 100, 300, 1000)
#: Public set that plays the site, and the source whose rows it takes.
SITE_SET = "impermium"
SITE_ATTRIBUTES: tuple[str, ...] = ("toxicity", "insult")


@dataclass(frozen=True)
class CurvePoint:
    labels: int
    version: str
    roc_auc: float
    flagged: float  #: share of the later comments the toxicity hold threshold would send to a person
    toxic_caught: float  #: share of the later toxic comments held


@dataclass(frozen=True)
class LearningCurve:
    site: str
    test_rows: int
    points: list[CurvePoint]
    shuffled_guard_passed: bool | None  #: None when not run
    shuffled_guard_reasons: list[str]


def site_split(
    examples: Sequence[LabelledComment], site_set: str = SITE_SET, seed: int = 13
) -> tuple[list[LabelledComment], list[LabelledComment]]:
    """(label pool, later comments): the older half of the site's dated comments, in a seeded random
    order, and the newer half.

    The pool is shuffled because the set's own order is not the order moderators would label in: its first
    hundred dated rows are all insults (how the competition data was collected, not how a site looks).
    """
    sources = set(PUBLIC_SETS[site_set].sources)
    dated = sorted(
        (e for e in examples if e.source in sources and e.created_at and "toxicity" in e.labels),
        key=lambda e: e.created_at or 0,
    )
    half = len(dated) // 2
    pool = dated[:half]
    random.Random(seed).shuffle(pool)
    return pool, dated[half:]


def write_labels_csv(path: Path, rows: Sequence[LabelledComment], attributes: Sequence[str]) -> None:
    """The site's labels as the ``import csv`` format: text, one column per attribute, created_at."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "text", *attributes, "created_at"])
        for i, e in enumerate(rows):
            created = e.created_at.isoformat() if e.created_at else ""
            labels = [f"{e.labels[a]:g}" if a in e.labels else "" for a in attributes]
            writer.writerow([f"site-{i}", e.comment.text, *labels, created])


def _run_cli(argv: list[str]) -> str:
    """Run the real command-line entry point, so that the curve measures what a site operator runs."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = classifier_cli(argv)
    if code != 0:
        raise RuntimeError(f"python -m classifier {' '.join(argv)} exited {code}: {out.getvalue()}")
    return out.getvalue()


def _train_with_labels(
    data_dir: Path, sets: list[str], labels_csv: Path | None, work: Path, promote: bool = False
) -> tuple[str, str]:
    registry = work / "models"
    database = f"sqlite:///{work / 'labels.db'}"
    if labels_csv is None or promote:
        # The default model, active: what a site runs before it has labels, and what the guard defends.
        argv = ["train", "--data-dir", str(data_dir), "--registry", str(registry), "--sets", *sets]
        output = _run_cli([*argv, "--activate"])
        if labels_csv is None:
            return output.strip().splitlines()[-1], output
    create_scratch_store(database)
    _run_cli(["import", "csv", str(labels_csv), "--database-url", database])
    argv = ["train", "--with-labels", "--data-dir", str(data_dir), "--registry", str(registry)]
    argv += ["--database-url", database, "--sets", *sets]
    if promote:
        argv += ["--promote-if-better", "--reports-dir", str(work / "reports")]
    output = _run_cli(argv)
    return output.strip().splitlines()[-1], output


def learning_curve(
    data_dir: Path,
    examples: Sequence[LabelledComment],
    counts: Sequence[int] = LABEL_COUNTS,
    site_set: str = SITE_SET,
    shuffled_check: bool = True,
    seed: int = 13,
) -> LearningCurve:
    """Train one candidate per label count through the CLI and score the site's later comments."""
    rows, later = site_split(examples, site_set, seed)
    first = max(counts)
    if first > len(rows):
        raise ValueError(f"{site_set} has {len(rows)} older comments, fewer than {first} labels")
    y = np.array([e.labels["toxicity"] >= 0.5 for e in later])
    sets = [name for name in PUBLIC_SETS if name != site_set]
    column = ATTRIBUTES.index("toxicity")
    points = []
    guard_passed: bool | None = None
    guard_reasons: list[str] = []
    with tempfile.TemporaryDirectory(prefix="learning-curve-") as tmp:
        for n in counts:
            work = Path(tmp) / f"n{n}"
            work.mkdir()
            labels_csv = None
            if n:
                labels_csv = work / "labels.csv"
                write_labels_csv(labels_csv, rows[:n], SITE_ATTRIBUTES)
            version, _ = _train_with_labels(data_dir, sets, labels_csv, work)
            model = Registry(work / "models").load(version)
            scores = model.predict([e.comment for e in later])[:, column]
            points.append(
                CurvePoint(
                    labels=n,
                    version=version,
                    roc_auc=float(roc_auc_score(y, scores)),
                    flagged=float((scores >= 0.6).mean()),
                    toxic_caught=float((scores[y] >= 0.6).mean()),
                )
            )
        if shuffled_check and first:
            work = Path(tmp) / "shuffled"
            work.mkdir()
            shuffled = _shuffle_labels(rows[:first], SITE_ATTRIBUTES, random.Random(seed))
            write_labels_csv(work / "labels.csv", shuffled, SITE_ATTRIBUTES)
            _, output = _train_with_labels(data_dir, sets, work / "labels.csv", work, promote=True)
            guard_passed = "guard passed" in output
            guard_reasons = [line.strip()[2:] for line in output.splitlines() if line.startswith("  - ")]
    return LearningCurve(site_set, len(later), points, guard_passed, guard_reasons)


def _shuffle_labels(
    rows: Sequence[LabelledComment], attributes: Sequence[str], rng: random.Random
) -> list[LabelledComment]:
    """The same comments with each attribute's labels permuted among them."""
    out = [LabelledComment(e.comment, dict(e.labels), e.source, e.external_id, e.created_at) for e in rows]
    for attribute in attributes:
        values = [e.labels[attribute] for e in out if attribute in e.labels]
        rng.shuffle(values)
        it = iter(values)
        for e in out:
            if attribute in e.labels:
                e.labels[attribute] = next(it)
    return out


def curve_table(curve: LearningCurve) -> list[str]:
    base = curve.points[0].roc_auc if curve.points else float("nan")
    lines = [
        f"The site is `{curve.site}`; each candidate is scored on its {curve.test_rows} later comments.",
        "",
        "| site labels | ROC AUC | change | sent to a person (toxicity >= 0.6) | toxic held |",
        "|---|---|---|---|---|",
    ]
    for p in curve.points:
        lines.append(
            f"| {p.labels} | {p.roc_auc:.3f} | {p.roc_auc - base:+.3f} | {100 * p.flagged:.1f} % "
            f"| {100 * p.toxic_caught:.1f} % |"
        )
    if curve.shuffled_guard_passed is not None:
        verdict = "promoted it (a failure)" if curve.shuffled_guard_passed else "refused it"
        lines += ["", f"Candidate trained on the same labels shuffled: the guard {verdict}."]
        lines += [f"- {reason}" for reason in curve.shuffled_guard_reasons[:6]]
    return lines
