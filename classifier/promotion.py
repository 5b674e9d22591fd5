"""The promotion guard: a candidate replaces the active model only if it is not worse and is better now.

Rules (all must hold for an automatic promotion):

1. On the **frozen set** (the frozen site sample and the public held-out sample, each on its own), per
   attribute with both classes present: candidate ROC AUC >= active ROC AUC - ``auc_tolerance``.
2. On the same sets, at the policy's hold thresholds: the number of positives (spam, abuse) that score
   below the hold threshold, i.e. would be approved, does not rise (``max_extra_approved``, default 0).
3. On the **recent** site labels (never trained on by the candidate): the candidate's mean log loss
   (mean over attributes of the per-attribute log loss) is strictly lower than the active model's.
   Log loss rather than AUC because the newest labels are few and often one class per attribute, where
   AUC is undefined; log loss also rewards calibration, which the thresholds depend on.

The comparison is written as Markdown with PR-curve PNGs (``model-<candidate>-vs-<active>.md``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from sklearn.metrics import log_loss, precision_recall_curve, roc_auc_score

from classifier.comment import ATTRIBUTES, LabelledComment
from classifier.metrics import POLICY_THRESHOLDS
from classifier.model import Model

logger = logging.getLogger(__name__)

DEFAULT_AUC_TOLERANCE = 0.01
#: Fewer recent labels than this and rule 3 cannot be decided: the candidate is not promoted.
MIN_RECENT_LABELS = 10
FROZEN_PARTS = ("site-frozen", "public-holdout")
RECENT_PART = "site-recent"


@dataclass(frozen=True)
class GuardConfig:
    auc_tolerance: float = DEFAULT_AUC_TOLERANCE
    max_extra_approved: int = 0
    min_recent_labels: int = MIN_RECENT_LABELS
    #: Hold threshold per attribute (defaults: the service's policy defaults).
    hold_thresholds: dict[str, float] = field(
        default_factory=lambda: {a: t["hold"] for a, t in POLICY_THRESHOLDS.items()}
    )


@dataclass(frozen=True)
class AttributeComparison:
    part: str
    attribute: str
    n: int
    positives: int
    auc_active: float
    auc_candidate: float
    approved_active: int  #: positives below the hold threshold
    approved_candidate: int
    log_loss_active: float
    log_loss_candidate: float
    y: np.ndarray = field(repr=False)
    p_active: np.ndarray = field(repr=False)
    p_candidate: np.ndarray = field(repr=False)


@dataclass
class GuardResult:
    candidate: str
    active: str | None
    passed: bool
    reasons: list[str]  #: why it failed (empty when it passed)
    comparisons: list[AttributeComparison]
    recent_log_loss: tuple[float, float] | None  #: (active, candidate)
    counts: dict[str, int]
    notes: list[str] = field(default_factory=list)  #: caveats that do not block a promotion
    report_path: Path | None = None


def _auc(y: np.ndarray, p: np.ndarray) -> float:
    return float(roc_auc_score(y, p)) if 0 < y.sum() < len(y) else float("nan")


def _log_loss(y: np.ndarray, p: np.ndarray) -> float:
    return float(log_loss(y, np.clip(p, 1e-6, 1 - 1e-6), labels=[0, 1])) if len(y) else float("nan")


def compare_part(
    part: str, examples: Sequence[LabelledComment], active: Model, candidate: Model, config: GuardConfig
) -> list[AttributeComparison]:
    if not examples:
        return []
    comments = [e.comment for e in examples]
    p_active, p_candidate = active.predict(comments), candidate.predict(comments)
    out = []
    for column, attribute in enumerate(ATTRIBUTES):
        rows = np.array([i for i, e in enumerate(examples) if attribute in e.labels], dtype=int)
        if len(rows) == 0:
            continue
        y = np.array([1 if examples[i].labels[attribute] >= 0.5 else 0 for i in rows])
        pa, pc = p_active[rows, column], p_candidate[rows, column]
        hold = config.hold_thresholds.get(attribute, 0.5)
        out.append(
            AttributeComparison(
                part,
                attribute,
                len(rows),
                int(y.sum()),
                _auc(y, pa),
                _auc(y, pc),
                int(((pa < hold) & (y == 1)).sum()),
                int(((pc < hold) & (y == 1)).sum()),
                _log_loss(y, pa),
                _log_loss(y, pc),
                y,
                pa,
                pc,
            )
        )
    return out


def guard(
    candidate: Model,
    active: Model | None,
    frozen_site: Sequence[LabelledComment],
    public_holdout: Sequence[LabelledComment],
    recent: Sequence[LabelledComment],
    config: GuardConfig | None = None,
) -> GuardResult:
    """Compare ``candidate`` with ``active``; ``passed`` says whether it may be promoted automatically."""
    config = config or GuardConfig()
    counts = {
        "site-frozen": len(frozen_site),
        "public-holdout": len(public_holdout),
        "site-recent": len(recent),
    }
    if active is None:
        return GuardResult(candidate.version, None, True, [], [], None, counts)
    comparisons = [
        *compare_part("site-frozen", frozen_site, active, candidate, config),
        *compare_part("public-holdout", public_holdout, active, candidate, config),
        *compare_part(RECENT_PART, recent, active, candidate, config),
    ]
    reasons: list[str] = []
    notes: list[str] = []
    # A model trained on every public row has seen the held-out sample: comparing there would favour it,
    # so the public rules are only enforced against an active model whose card says it excluded them.
    public_enforced = active.card.get("holdout_excluded") is True
    if not public_enforced and public_holdout:
        notes.append(
            "the active model was trained on the public held-out rows (its card does not say "
            "holdout_excluded), so the public-holdout rows are reported but not enforced"
        )
    for c in comparisons:
        if c.part == RECENT_PART or (c.part == "public-holdout" and not public_enforced):
            continue
        if (
            not math.isnan(c.auc_active)
            and not math.isnan(c.auc_candidate)
            and c.auc_candidate < c.auc_active - config.auc_tolerance
        ):
            reasons.append(
                f"{c.part} {c.attribute}: ROC AUC {c.auc_candidate:.3f} < active "
                f"{c.auc_active:.3f} - tolerance {config.auc_tolerance:g}"
            )
        if c.approved_candidate > c.approved_active + config.max_extra_approved:
            reasons.append(
                f"{c.part} {c.attribute}: {c.approved_candidate} positives would be approved "
                f"(active: {c.approved_active})"
            )
    if not any(c.part in FROZEN_PARTS for c in comparisons):
        reasons.append("no frozen evaluation data (no frozen site labels and no public held-out rows)")
    recent_rows = [c for c in comparisons if c.part == RECENT_PART]
    recent_loss: tuple[float, float] | None = None
    if len(recent) < config.min_recent_labels or not recent_rows:
        reasons.append(
            f"only {len(recent)} recent site labels (need {config.min_recent_labels}) to show "
            "that the candidate is better now"
        )
    else:
        recent_loss = (
            float(np.mean([c.log_loss_active for c in recent_rows])),
            float(np.mean([c.log_loss_candidate for c in recent_rows])),
        )
        if not recent_loss[1] < recent_loss[0]:
            reasons.append(
                f"recent site labels: mean log loss {recent_loss[1]:.4f} is not below the active "
                f"model's {recent_loss[0]:.4f}"
            )
    return GuardResult(
        candidate.version, active.version, not reasons, reasons, comparisons, recent_loss, counts, notes
    )


# --------------------------------------------------------------------------------------------------
# The report
# --------------------------------------------------------------------------------------------------


def _f(value: float, digits: int = 3) -> str:
    return "—" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def write_report(
    result: GuardResult, reports_dir: Path, action: str, config: GuardConfig | None = None
) -> Path:
    """Write ``model-<candidate>-vs-<active>.md`` (and PR-curve PNGs beside it); returns its path."""
    config = config or GuardConfig()
    reports_dir = Path(reports_dir)
    reports_dir.mkdir(parents=True, exist_ok=True)
    stem = f"model-{result.candidate}-vs-{result.active or 'none'}"
    images = _write_pr_curves(result, reports_dir, stem)
    verdict = "PASSED" if result.passed else "FAILED"
    lines = [
        f"# Model {result.candidate} vs {result.active or '(no active model)'}",
        "",
        f"- Written: {datetime.now(UTC).isoformat(timespec='seconds')}",
        f"- Action: **{action}**",
        f"- Guard: **{verdict}**",
        f"- Rows: site frozen {result.counts.get('site-frozen', 0)}, public held-out "
        f"{result.counts.get('public-holdout', 0)}, site recent {result.counts.get('site-recent', 0)}",
        f"- Rules: ROC AUC per attribute >= active - {config.auc_tolerance:g} on the frozen sets; "
        f"approved positives (score below the hold threshold) may rise by at most "
        f"{config.max_extra_approved}; mean log loss on the recent site labels must be lower than the "
        "active model's.",
        "",
    ]
    if result.reasons:
        lines += ["## Why the guard failed", ""]
        lines += [f"- {reason}" for reason in result.reasons] + [""]
    if result.notes:
        lines += ["## Notes", ""] + [f"- {note}" for note in result.notes] + [""]
    if result.recent_log_loss is not None:
        lines += [
            f"Recent site labels, mean log loss: active {result.recent_log_loss[0]:.4f}, "
            f"candidate {result.recent_log_loss[1]:.4f}.",
            "",
        ]
    if result.comparisons:
        lines += [
            "## Per attribute",
            "",
            "| set | attribute | rows | positives | AUC active | AUC candidate | Δ AUC "
            "| approved positives active | candidate | log loss active | candidate |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for c in result.comparisons:
            delta = c.auc_candidate - c.auc_active
            lines.append(
                f"| {c.part} | {c.attribute} | {c.n} | {c.positives} | {_f(c.auc_active)} | "
                f"{_f(c.auc_candidate)} | {_f(delta)} | {c.approved_active} | "
                f"{c.approved_candidate} | {_f(c.log_loss_active, 4)} | "
                f"{_f(c.log_loss_candidate, 4)} |"
            )
        lines.append("")
    if images:
        lines += ["## Precision–recall curves", ""] + [f"![{name}]({name})" for name in images] + [""]
    path = reports_dir / f"{stem}.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    logger.info("guard report=%s passed=%s", path, result.passed)
    result.report_path = path
    return path


def _write_pr_curves(result: GuardResult, reports_dir: Path, stem: str) -> list[str]:
    parts = [
        p
        for p in (*FROZEN_PARTS, RECENT_PART)
        if any(c.part == p and 0 < c.positives < c.n for c in result.comparisons)
    ]
    if not parts:
        return []
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = []
    for part in parts:
        rows = [c for c in result.comparisons if c.part == part and 0 < c.positives < c.n]
        cols = min(4, len(rows))
        nrows = math.ceil(len(rows) / cols)
        fig, axes = plt.subplots(nrows, cols, figsize=(3.2 * cols, 3.0 * nrows), squeeze=False)
        for ax, c in zip(axes.flat, rows, strict=False):
            for label, p, style in (("active", c.p_active, "--"), ("candidate", c.p_candidate, "-")):
                precision, recall, _ = precision_recall_curve(c.y, p)
                ax.plot(recall, precision, style, label=label)
            ax.set_title(f"{c.attribute} (n={c.n})", fontsize=9)
            ax.set_xlabel("recall", fontsize=8)
            ax.set_ylabel("precision", fontsize=8)
            ax.set_xlim(0, 1)
            ax.set_ylim(0, 1.02)
            ax.legend(fontsize=7)
        for ax in list(axes.flat)[len(rows) :]:
            ax.axis("off")
        fig.suptitle(f"{part}: active {result.active} vs candidate {result.candidate}", fontsize=9)
        fig.tight_layout()
        name = f"{stem}-{part}.png"
        fig.savefig(reports_dir / name, dpi=80)
        plt.close(fig)
        names.append(name)
    return names
