"""Metrics and splits the evaluation, the retrain guard and the learning loop share.

The held-out split (deterministic by a hash of the text), per-attribute metrics (ROC AUC, average precision,
precision / recall / F1 at the policy thresholds, expected calibration error) and the decision policy as the
evaluation applies it. ``classifier`` never imports ``service``, so the policy's defaults are mirrored here;
a test checks that both agree.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from sklearn.metrics import average_precision_score, roc_auc_score

from classifier.comment import TOXICITY_ATTRIBUTES, LabelledComment
from classifier.text import count_links

#: Score thresholds of the moderation policy, by attribute: ``hold`` sends a comment to a moderator,
#: ``reject`` refuses it outright (spam only). Mirrors the service's decision policy.
POLICY_THRESHOLDS: dict[str, dict[str, float]] = {
    "spam": {"hold": 0.5, "reject": 0.97},
    **{attribute: {"hold": 0.6} for attribute in TOXICITY_ATTRIBUTES},
}
#: Links beyond this many send a comment to a moderator (the service's ``THRESHOLD_MAX_LINKS`` default).
POLICY_MAX_LINKS = 2
ECE_BINS = 10
HOLDOUT_FRACTION = 0.2
# --------------------------------------------------------------------------------------------------
# Held-out split
# --------------------------------------------------------------------------------------------------


def holdout_key(text: str) -> float:
    """A number in [0, 1) fixed by the text alone (sha256 of the stripped text)."""
    digest = hashlib.sha256(text.strip().encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def in_holdout(example: LabelledComment, fraction: float = HOLDOUT_FRACTION) -> bool:
    """Whether an example belongs to the evaluation split. Equal texts always land on the same side."""
    return holdout_key(example.comment.text) < fraction


def split_holdout(
    examples: Iterable[LabelledComment], fraction: float = HOLDOUT_FRACTION
) -> tuple[list[LabelledComment], list[LabelledComment]]:
    """Split into (train, holdout), deterministically by a hash of the text, about ``fraction`` held out."""
    train: list[LabelledComment] = []
    holdout: list[LabelledComment] = []
    for example in examples:
        (holdout if in_holdout(example, fraction) else train).append(example)
    return train, holdout


# --------------------------------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------------------------------


def expected_calibration_error(y_true: ArrayLike, y_prob: ArrayLike, bins: int = ECE_BINS) -> float:
    """ECE: the sample-weighted mean gap between mean score and positive rate over equal-width bins."""
    y = np.asarray(y_true, dtype=float)
    p = np.clip(np.asarray(y_prob, dtype=float), 0.0, 1.0)
    if len(y) == 0:
        return float("nan")
    index = np.minimum((p * bins).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        mask = index == b
        if mask.any():
            total += mask.sum() / len(y) * abs(p[mask].mean() - y[mask].mean())
    return float(total)


def reliability_curve(
    y_true: ArrayLike, y_prob: ArrayLike, bins: int = ECE_BINS
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per non-empty bin: (mean score, positive rate, count)."""
    y = np.asarray(y_true, dtype=float)
    p = np.clip(np.asarray(y_prob, dtype=float), 0.0, 1.0)
    index = np.minimum((p * bins).astype(int), bins - 1)
    means, rates, counts = [], [], []
    for b in range(bins):
        mask = index == b
        if mask.any():
            means.append(p[mask].mean())
            rates.append(y[mask].mean())
            counts.append(int(mask.sum()))
    return np.array(means), np.array(rates), np.array(counts)


@dataclass(frozen=True)
class ThresholdMetrics:
    """Precision, recall and F1 when everything scoring at or above ``threshold`` is flagged."""

    threshold: float
    precision: float  #: NaN when nothing is flagged
    recall: float  #: NaN when there are no positives
    f1: float


def metrics_at_threshold(y_true: ArrayLike, y_prob: ArrayLike, threshold: float) -> ThresholdMetrics:
    """Precision, recall and F1 of the rule ``score >= threshold``."""
    y = np.asarray(y_true, dtype=float) >= 0.5
    flagged = np.asarray(y_prob, dtype=float) >= threshold
    tp = int((y & flagged).sum())
    precision = tp / int(flagged.sum()) if flagged.any() else float("nan")
    recall = tp / int(y.sum()) if y.any() else float("nan")
    if math.isnan(precision) or math.isnan(recall):
        f1 = 0.0 if y.any() else float("nan")
    else:
        f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return ThresholdMetrics(threshold, precision, recall, f1)


@dataclass(frozen=True)
class AttributeMetrics:
    """Every figure we report for one attribute on one test set."""

    attribute: str
    n: int
    positives: int
    roc_auc: float  #: NaN when the test set has one class only
    average_precision: float  #: NaN without positives
    ece: float
    at: dict[str, ThresholdMetrics]  #: keyed by policy action (``hold``, ``reject``)


def attribute_metrics(attribute: str, y_true: ArrayLike, y_prob: ArrayLike) -> AttributeMetrics:
    """All metrics for one attribute; labels are binarised at 0.5."""
    y = (np.asarray(y_true, dtype=float) >= 0.5).astype(int)
    p = np.asarray(y_prob, dtype=float)
    positives = int(y.sum())
    both = 0 < positives < len(y)
    return AttributeMetrics(
        attribute=attribute,
        n=len(y),
        positives=positives,
        roc_auc=float(roc_auc_score(y, p)) if both else float("nan"),
        average_precision=float(average_precision_score(y, p)) if positives else float("nan"),
        ece=expected_calibration_error(y, p),
        at={action: metrics_at_threshold(y, p, t) for action, t in POLICY_THRESHOLDS[attribute].items()},
    )


def labelled_rows(examples: Sequence[LabelledComment], attribute: str) -> tuple[np.ndarray, np.ndarray]:
    """(row indices, 0/1 labels) of the examples that carry ``attribute``."""
    rows = [i for i, e in enumerate(examples) if attribute in e.labels]
    labels = [1 if examples[i].labels[attribute] >= 0.5 else 0 for i in rows]
    return np.array(rows, dtype=int), np.array(labels, dtype=int)


def policy_status(
    scores: Sequence[float], text: str, max_links: int = POLICY_MAX_LINKS, toxicity_hold: float | None = None
) -> str:
    """``approved``, ``held`` or ``rejected``: the service's default policy on one row of scores.

    ``scores`` is in ATTRIBUTES order. Spam first (reject, then hold), then any toxicity attribute at or
    above its hold threshold, then the link limit; the service applies the same rules in the same order.
    ``toxicity_hold``, when given, replaces every toxicity attribute's hold threshold (as a site that
    lowers its thresholds would).
    """
    spam = float(scores[0])
    if spam >= POLICY_THRESHOLDS["spam"]["reject"]:
        return "rejected"
    if spam >= POLICY_THRESHOLDS["spam"]["hold"]:
        return "held"
    for attribute, value in zip(TOXICITY_ATTRIBUTES, scores[1:], strict=True):
        hold = POLICY_THRESHOLDS[attribute]["hold"] if toxicity_hold is None else toxicity_hold
        if float(value) >= hold:
            return "held"
    if count_links(text) > max_links:
        return "held"
    return "approved"
