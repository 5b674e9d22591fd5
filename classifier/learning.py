"""Training on the site's own labels: the frozen evaluation set, the time split, the candidate model.

The site's labels are split three ways:

- the **frozen set**: a stratified sample drawn once (``<registry>/frozen-eval.json``, label ids and text
  hashes) and never trained on; new labels never join it;
- the **recent set**: the newest :data:`RECENT_FRACTION` of the other labels, by time, never trained on
  by this candidate (it shows how the model will do next week);
- the **training set**: everything older, weighted :data:`DEFAULT_SITE_WEIGHT` x.
"""

from __future__ import annotations

import json
import logging
import random
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from classifier import promotion
from classifier.comment import TOXICITY_ATTRIBUTES, LabelledComment
from classifier.labelstore import SiteLabel
from classifier.metrics import holdout_key, split_holdout
from classifier.model import Model
from classifier.promotion import GuardConfig, GuardResult
from classifier.registry import Registry
from classifier.training import TrainParams, train

logger = logging.getLogger(__name__)

#: The site labels' group weighs this many times one public source group in the general heads (see the
#: README). The site heads (:func:`classifier.training.adapt_to_site`) carry what the site teaches; a
#: heavier group makes the general heads fit those rows so closely that the blend, calibrated on the same
#: rows, trusts them too much. ROC AUC on Impermium's later comments after 1,000 labels, four label draws:
#: 3x 0.8820 / 0.8756 / 0.8796 / 0.8818; 1.5x 0.8833 / 0.8775 / 0.8812 / 0.8832; 1x 0.8838 / 0.8783 / 0.8821
#: / 0.8837 (6x 0.8806 on the first draw).
DEFAULT_SITE_WEIGHT = 1.0
RECENT_FRACTION = 0.2
FROZEN_FILE = "frozen-eval.json"
#: The frozen set is drawn once the site has this many distinct labelled texts.
FROZEN_MIN_LABELS = 50
FROZEN_FRACTION = 0.15
FROZEN_MAX = 2000
#: Public held-out rows kept per source for the guard (a deterministic sample by text hash).
PUBLIC_HOLDOUT_PER_SOURCE = 3000


def stratum(labels: dict[str, float]) -> str:
    if labels.get("spam", 0.0) >= 0.5:
        return "spam"
    if any(labels.get(a, 0.0) >= 0.5 for a in TOXICITY_ATTRIBUTES):
        return "abusive"
    return "clean"


@dataclass(frozen=True)
class FrozenSet:
    """The fixed evaluation sample of site labels."""

    label_ids: frozenset[int]
    text_hashes: frozenset[str]
    created_at: str
    strata: dict[str, int]

    def contains(self, label: SiteLabel) -> bool:
        return label.id in self.label_ids or label.text_hash in self.text_hashes


def load_frozen(registry_root: Path) -> FrozenSet | None:
    path = Path(registry_root) / FROZEN_FILE
    if not path.is_file():
        return None
    raw = json.loads(path.read_text(encoding="utf-8"))
    return FrozenSet(
        frozenset(int(i) for i in raw["label_ids"]),
        frozenset(raw["text_hashes"]),
        raw.get("created_at", ""),
        dict(raw.get("strata", {})),
    )


def ensure_frozen(registry_root: Path, labels: Sequence[SiteLabel], seed: int = 13) -> FrozenSet | None:
    """The frozen set, drawing it now (stratified by spam / abusive / clean) if there is none yet."""
    existing = load_frozen(registry_root)
    if existing is not None or len(labels) < FROZEN_MIN_LABELS:
        return existing
    rng = random.Random(seed)
    by_stratum: dict[str, list[SiteLabel]] = defaultdict(list)
    for label in labels:
        by_stratum[stratum(label.example.labels)].append(label)
    size = min(FROZEN_MAX, max(1, round(len(labels) * FROZEN_FRACTION)))
    chosen: list[SiteLabel] = []
    for name in sorted(by_stratum):
        members = sorted(by_stratum[name], key=lambda s: s.id)
        take = max(2 if len(members) >= 4 else 0, round(size * len(members) / len(labels)))
        chosen.extend(rng.sample(members, min(take, len(members) // 2)))
    frozen = FrozenSet(
        frozenset(s.id for s in chosen),
        frozenset(s.text_hash for s in chosen),
        datetime.now(UTC).isoformat(timespec="seconds"),
        dict(Counter(stratum(s.example.labels) for s in chosen)),
    )
    path = Path(registry_root)
    path.mkdir(parents=True, exist_ok=True)
    tmp = path / f".{FROZEN_FILE}.tmp"
    tmp.write_text(
        json.dumps(
            {
                "created_at": frozen.created_at,
                "strata": frozen.strata,
                "label_ids": sorted(frozen.label_ids),
                "text_hashes": sorted(frozen.text_hashes),
                "note": "drawn once; never trained on; new labels never join it",
            },
            indent=1,
        )
        + "\n",
        encoding="utf-8",
    )
    tmp.replace(path / FROZEN_FILE)
    logger.info("frozen evaluation set drawn labels=%d strata=%s", len(chosen), frozen.strata)
    return frozen


@dataclass(frozen=True)
class SiteSplit:
    train: list[SiteLabel]
    recent: list[SiteLabel]
    frozen: list[SiteLabel]
    recent_from: datetime | None


def split_site_labels(
    labels: Sequence[SiteLabel],
    frozen: FrozenSet | None,
    recent_fraction: float = RECENT_FRACTION,
    recent_from: datetime | None = None,
) -> SiteSplit:
    """Frozen labels aside; of the rest, the newest ``recent_fraction`` (or those from ``recent_from``)
    is the recent set and the older ones are for training."""
    frozen_rows = [s for s in labels if frozen is not None and frozen.contains(s)]
    rest = sorted(
        (s for s in labels if frozen is None or not frozen.contains(s)), key=lambda s: (s.created_at, s.id)
    )
    if recent_from is None:
        n_recent = int(round(len(rest) * recent_fraction))
        if n_recent == 0:
            return SiteSplit(rest, [], frozen_rows, None)
        recent_from = rest[len(rest) - n_recent].created_at
    train_rows = [s for s in rest if s.created_at < recent_from]
    recent = [s for s in rest if s.created_at >= recent_from]
    return SiteSplit(train_rows, recent, frozen_rows, recent_from)


def public_split(
    public: Sequence[LabelledComment], per_source: int = PUBLIC_HOLDOUT_PER_SOURCE
) -> tuple[list[LabelledComment], list[LabelledComment]]:
    """(train, held-out sample): the public sets' held-out split, capped per source deterministically."""
    train_rows, holdout = split_holdout(public)
    by_source: dict[str, list[LabelledComment]] = defaultdict(list)
    for example in holdout:
        by_source[example.source].append(example)
    sample: list[LabelledComment] = []
    for source in sorted(by_source):
        rows = sorted(by_source[source], key=lambda e: holdout_key(e.comment.text))
        sample.extend(rows[:per_source] if per_source else rows)
    return train_rows, sample


@dataclass(frozen=True)
class Candidate:
    version: str
    model: Model
    split: SiteSplit
    public_holdout: list[LabelledComment]


def train_candidate(
    registry: Registry,
    public: Sequence[LabelledComment],
    site_labels: Sequence[SiteLabel],
    site_weight: float = DEFAULT_SITE_WEIGHT,
    params: TrainParams | None = None,
    progress: bool = False,
    card_extra: dict[str, Any] | None = None,
    public_holdout_per_source: int = PUBLIC_HOLDOUT_PER_SOURCE,
) -> Candidate:
    """Train on the public training split plus the older site labels; save as a candidate (not active)."""
    frozen = ensure_frozen(registry.root, site_labels)
    split = split_site_labels(site_labels, frozen)
    public_train, public_holdout = public_split(public, public_holdout_per_source)
    site_train = [replace(s.example, weight=site_weight, source="site") for s in split.train]
    model = train([*public_train, *site_train], params, progress=progress)
    card: dict[str, Any] = {
        "site_labels": {
            "trained_on": len(split.train),
            "recent_held_out": len(split.recent),
            "frozen_held_out": len(split.frozen),
            "recent_from": split.recent_from.isoformat() if split.recent_from else None,
            "trained_until": max((s.created_at for s in split.train), default=None),
            "weight": site_weight,
            "weighting": f"site labels form one source group 'site' whose total weight is {site_weight:g}x "
            "that of each public source group",
            "trained_strata": dict(Counter(stratum(s.example.labels) for s in split.train)),
            "frozen_set": FROZEN_FILE if frozen is not None else None,
        },
        "holdout_excluded": True,
        "public_rows": {"trained_on": len(public_train), "held_out_sample": len(public_holdout)},
        "state": "candidate",
    }
    card.update(card_extra or {})
    version = registry.save(model, card_extra=card)
    logger.info(
        "candidate model=%s site_trained=%d recent=%d frozen=%d",
        version,
        len(split.train),
        len(split.recent),
        len(split.frozen),
    )
    return Candidate(version, model, split, public_holdout)


# --------------------------------------------------------------------------------------------------
# Guard and promotion
# --------------------------------------------------------------------------------------------------


@dataclass
class Outcome:
    """What a retrain (or a hand promotion) did."""

    candidate: str
    active_before: str | None
    promoted: bool
    guard: GuardResult
    report_path: Path


def recent_from_card(card: dict[str, Any]) -> datetime | None:
    value = (card.get("site_labels") or {}).get("recent_from")
    return datetime.fromisoformat(value) if value else None


def evaluate_versions(
    registry: Registry,
    candidate: str,
    site_labels: Sequence[SiteLabel],
    public_holdout: Sequence[LabelledComment],
    config: GuardConfig | None = None,
    active: str | None = None,
    candidate_model: Model | None = None,
) -> GuardResult:
    """Run the guard for ``candidate`` against ``active`` (default: the registry's active version).

    The recent set is the site labels from the candidate's ``recent_from`` on (those it never saw), or
    the newest :data:`RECENT_FRACTION` when its card does not say.
    """
    active = active if active is not None else registry.active_version()
    candidate_model = candidate_model or registry.load(candidate)
    active_model = registry.load(active) if active and active != candidate else None
    frozen = load_frozen(registry.root)
    split = split_site_labels(site_labels, frozen, recent_from=recent_from_card(candidate_model.card))
    result = promotion.guard(
        candidate_model,
        active_model,
        [s.example for s in split.frozen],
        public_holdout,
        [s.example for s in split.recent],
        config,
    )
    if active == candidate:
        result.reasons.append(f"{candidate} is already the active version")
        result.passed = False
    return result


def promote_if_better(
    registry: Registry,
    candidate: str,
    site_labels: Sequence[SiteLabel],
    public_holdout: Sequence[LabelledComment],
    reports_dir: Path,
    config: GuardConfig | None = None,
    force: bool = False,
    action: str = "automatic",
    candidate_model: Model | None = None,
) -> Outcome:
    """Guard, report, and activate ``candidate`` when the guard passes (or ``force``)."""
    active_before = registry.active_version()
    result = evaluate_versions(
        registry,
        candidate,
        site_labels,
        public_holdout,
        config,
        active=active_before,
        candidate_model=candidate_model,
    )
    promote = (result.passed or force) and active_before != candidate
    label = f"{action}: " + ("promoted" if promote else "kept as candidate")
    if promote and not result.passed:
        label += " (guard overridden: --force or rollback)"
    path = promotion.write_report(result, reports_dir, label, config)
    if promote:
        registry.activate(candidate)
    logger.info(
        "promotion candidate=%s active_before=%s passed=%s promoted=%s report=%s",
        candidate,
        active_before,
        result.passed,
        promote,
        path,
    )
    return Outcome(candidate, active_before, promote, result, path)
