"""Threshold tuning from the site's labels: how strict must a hold threshold be for a target error?

For an attribute and a hold threshold ``t``, comments scoring below ``t`` would be approved automatically
(as far as that attribute goes). The **approved error** is the share of those that moderators labelled
positive (spam, abusive): "of what we auto-approve, how much is later rejected". The **human share** is
the share scoring ``t`` or more: the moderators' work. The suggestion is the highest threshold (least
human work) whose approved error is at most the target.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from classifier.comment import ATTRIBUTES

DEFAULT_TARGET = 0.01
GRID: tuple[float, ...] = tuple(round(x, 2) for x in np.arange(0.05, 1.0, 0.05))


@dataclass(frozen=True)
class ThresholdRow:
    threshold: float
    approved_error: float  #: NaN when nothing would be approved
    human_share: float
    approved: int
    approved_positives: int


@dataclass(frozen=True)
class AttributeSuggestion:
    attribute: str
    n: int
    positives: int
    suggested: float | None  #: None when no threshold meets the target
    rows: list[ThresholdRow]


def threshold_table(y: np.ndarray, scores: np.ndarray, grid: Sequence[float] = GRID) -> list[ThresholdRow]:
    out = []
    for t in grid:
        approved = scores < t
        n_approved = int(approved.sum())
        wrong = int((approved & (y == 1)).sum())
        out.append(
            ThresholdRow(
                float(t),
                wrong / n_approved if n_approved else float("nan"),
                float((~approved).mean()) if len(y) else float("nan"),
                n_approved,
                wrong,
            )
        )
    return out


def suggest(
    y: np.ndarray,
    scores: np.ndarray,
    target: float = DEFAULT_TARGET,
    grid: Sequence[float] = GRID,
    attribute: str = "",
) -> AttributeSuggestion:
    """The highest threshold in ``grid`` whose approved error is at most ``target``."""
    y = np.asarray(y, dtype=int)
    scores = np.asarray(scores, dtype=float)
    rows = threshold_table(y, scores, grid)
    # An empty approved set has no error, but it is a useless threshold: only count rows approving some.
    meeting = [r.threshold for r in rows if r.approved and r.approved_error <= target]
    return AttributeSuggestion(attribute, len(y), int(y.sum()), max(meeting) if meeting else None, rows)


def suggest_all(
    labels: Sequence[dict[str, float]],
    scores: Sequence[dict[str, float]],
    target: float = DEFAULT_TARGET,
    grid: Sequence[float] = GRID,
) -> list[AttributeSuggestion]:
    """Per attribute, over the rows that carry both a label and a score for it."""
    out = []
    for attribute in ATTRIBUTES:
        pairs = [
            (lab[attribute], sc[attribute])
            for lab, sc in zip(labels, scores, strict=True)
            if attribute in lab and sc.get(attribute) is not None
        ]
        if not pairs:
            continue
        y = np.array([1 if v >= 0.5 else 0 for v, _ in pairs])
        s = np.array([float(p) for _, p in pairs])
        out.append(suggest(y, s, target, grid, attribute))
    return out


def combined_human_share(scores: Sequence[dict[str, float]], thresholds: dict[str, float]) -> float:
    """Share of comments at least one attribute would hold with ``thresholds``."""
    if not scores:
        return float("nan")
    held = sum(1 for sc in scores if any(sc.get(a) is not None and sc[a] >= t for a, t in thresholds.items()))
    return held / len(scores)


def format_suggestions(
    suggestions: Sequence[AttributeSuggestion], target: float, combined: float | None = None
) -> str:
    lines = [f"target: at most {target:.1%} of auto-approved comments later rejected by moderators", ""]
    for s in suggestions:
        chosen = "none meets the target" if s.suggested is None else f"{s.suggested:.2f}"
        lines.append(
            f"{s.attribute}: {s.n} labelled, {s.positives} positive; suggested hold threshold: {chosen}"
        )
        lines.append("  threshold  approved-error  to-humans  approved  approved-positives")
        for r in s.rows:
            mark = "  <- suggested" if s.suggested is not None and r.threshold == s.suggested else ""
            error = "      -" if np.isnan(r.approved_error) else f"{r.approved_error:7.2%}"
            lines.append(
                f"  {r.threshold:9.2f}  {error:>14}  {r.human_share:9.1%}  {r.approved:8d}  "
                f"{r.approved_positives:18d}{mark}"
            )
        lines.append("")
    if combined is not None and not np.isnan(combined):
        lines.append(
            f"with every suggested threshold together, {combined:.1%} of these comments go to humans"
        )
    return "\n".join(lines)
