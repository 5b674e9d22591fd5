"""Training with the site's labels, the frozen set and the promotion guard (tiny models, no database)."""

from __future__ import annotations

import json
import random
from dataclasses import replace

from classifier import learning
from tests.conftest import SITE_HAM, SITE_SPAM, TINY, public_examples, site_labels, tiny_examples  # noqa: F401


def test_split_by_time_and_frozen_set_is_drawn_once(tmp_path):
    labels = site_labels()
    frozen = learning.ensure_frozen(tmp_path, labels)
    assert frozen is not None and 10 <= len(frozen.label_ids) <= 40
    assert set(frozen.strata) == {"spam", "clean"}  # stratified: both classes
    split = learning.split_site_labels(labels, frozen)
    assert not {s.id for s in split.train} & frozen.label_ids
    assert not {s.id for s in split.recent} & frozen.label_ids
    assert max(s.created_at for s in split.train) < min(s.created_at for s in split.recent)
    assert len(split.recent) == round((len(labels) - len(split.frozen)) * 0.2)
    # New labels never join it, and it is not redrawn.
    later = labels + site_labels(200, seed=9)[160:]
    again = learning.ensure_frozen(tmp_path, later)
    assert again.label_ids == frozen.label_ids
    assert json.loads((tmp_path / learning.FROZEN_FILE).read_text())["label_ids"] == sorted(frozen.label_ids)


def test_better_candidate_is_promoted(registry, tmp_path):
    before = registry.active_version()
    labels = site_labels()
    candidate = learning.train_candidate(registry, public_examples(), labels, params=TINY)
    assert registry.active_version() == before  # saved as a candidate only
    card = registry.card(candidate.version)
    assert card["site_labels"]["weight"] == learning.DEFAULT_SITE_WEIGHT
    assert card["site_labels"]["trained_on"] == len(candidate.split.train)
    outcome = learning.promote_if_better(
        registry, candidate.version, labels, candidate.public_holdout, tmp_path / "reports"
    )
    assert outcome.guard.passed, outcome.guard.reasons
    assert outcome.promoted and registry.active_version() == candidate.version
    report = outcome.report_path.read_text()
    assert outcome.report_path.name == f"model-{candidate.version}-vs-{before}.md"
    assert "| site-frozen | spam |" in report and "PASSED" in report
    assert list((tmp_path / "reports").glob("*.png"))


def test_worse_candidate_is_refused(registry, tmp_path):
    before = registry.active_version()
    labels = site_labels()
    rng = random.Random(5)
    shuffled_public = public_examples()
    spam_values = [e.labels["spam"] for e in shuffled_public if "spam" in e.labels]
    rng.shuffle(spam_values)
    values = iter(spam_values)
    shuffled_public = [
        replace(e, labels={**e.labels, "spam": next(values)}) if "spam" in e.labels else e
        for e in shuffled_public
    ]
    flipped = [
        replace(s, example=replace(s.example, labels={"spam": 1.0 - s.example.labels["spam"]}))
        for s in labels
    ]
    candidate = learning.train_candidate(registry, shuffled_public, flipped, params=TINY)
    outcome = learning.promote_if_better(
        registry, candidate.version, labels, candidate.public_holdout, tmp_path / "reports"
    )
    assert not outcome.guard.passed and not outcome.promoted
    assert registry.active_version() == before
    assert any("ROC AUC" in reason for reason in outcome.guard.reasons)
    assert "Why the guard failed" in outcome.report_path.read_text()
    forced = learning.promote_if_better(
        registry,
        candidate.version,
        labels,
        candidate.public_holdout,
        tmp_path / "reports",
        force=True,
        action="by hand",
    )
    assert forced.promoted and registry.active_version() == candidate.version


def test_too_few_recent_labels_keeps_the_candidate(registry, tmp_path):
    labels = site_labels(30)  # below the frozen-set minimum, and 6 recent labels
    candidate = learning.train_candidate(registry, public_examples(), labels, params=TINY)
    outcome = learning.promote_if_better(
        registry, candidate.version, labels, candidate.public_holdout, tmp_path / "reports"
    )
    assert not outcome.promoted
    assert any("recent site labels" in reason for reason in outcome.guard.reasons)
