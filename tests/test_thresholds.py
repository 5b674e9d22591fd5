"""Threshold suggestions, and the ``thresholds`` and ``models promote|rollback`` commands."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from classifier import labelstore, learning, thresholds
from classifier.__main__ import main
from classifier.registry import Registry
from classifier.training import train
from service.db import create_schema, make_engine, make_session_factory
from service.labels import record_label
from tests.conftest import TINY, public_examples, site_labels


def synthetic(n: int = 1000, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """10% spam; spam scores spread high, ham scores low, with some overlap."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.1).astype(int)
    scores = np.where(y == 1, rng.beta(5, 2, n), rng.beta(1.5, 6, n))
    return y, scores


def test_suggestion_meets_the_target_with_the_least_human_work():
    y, scores = synthetic()
    suggestion = thresholds.suggest(y, scores, target=0.01)
    assert suggestion.suggested is not None
    chosen = next(r for r in suggestion.rows if r.threshold == suggestion.suggested)
    assert chosen.approved_error <= 0.01
    higher = [r for r in suggestion.rows if r.threshold > suggestion.suggested and r.approved]
    assert all(r.approved_error > 0.01 for r in higher)
    shares = [r.human_share for r in suggestion.rows]
    assert shares == sorted(shares, reverse=True)  # a higher threshold sends fewer comments to humans
    looser = thresholds.suggest(y, scores, target=0.05)
    assert looser.suggested >= suggestion.suggested


def test_no_threshold_meets_an_impossible_target():
    y = np.array([1, 1, 0, 0])
    scores = np.array([0.01, 0.02, 0.5, 0.6])  # the spam scores lowest: nothing can be approved safely
    assert thresholds.suggest(y, scores, target=0.01).suggested is None


@pytest.fixture
def store_url(tmp_path) -> str:
    url = f"sqlite:///{tmp_path / 'labels.db'}"
    create_schema(make_engine(url))
    return url


def test_thresholds_command_prints_human_share(store_url, capsys):
    y, scores = synthetic(300)
    rng = random.Random(2)
    engine = make_engine(store_url)
    with make_session_factory(engine)() as session:
        for i, (label, score) in enumerate(zip(y, scores, strict=True)):
            record_label(
                session,
                source="moderator",
                decision="spam" if label else "approve",
                text=f"comment {i} {rng.random()}",
                scores_at_time={"spam": float(score), "toxicity": 0.1},
            )
        session.commit()
    assert main(["thresholds", "--database-url", store_url, "--target-approved-error", "0.02"]) == 0
    out = capsys.readouterr().out
    assert "spam: 300 labelled" in out and "<- suggested" in out and "to-humans" in out
    assert f"toxicity: {int((y == 0).sum())} labelled, 0 positive" in out  # spam labels say nothing of it
    assert main(["thresholds", "--database-url", store_url, "--target-approved-error", "2"]) == 2


def test_models_promote_runs_the_guard_and_force_overrides(tmp_path, store_url, capsys):
    engine = make_engine(store_url)
    start = datetime(2025, 1, 1, tzinfo=UTC)
    with make_session_factory(engine)() as session:
        for i, site in enumerate(site_labels()):
            label = record_label(
                session,
                source="moderator",
                decision="x",
                labels=site.example.labels,
                text=site.example.comment.text,
            )
            label.created_at = start + timedelta(hours=i)
        session.commit()
    registry = Registry(tmp_path / "models")
    public_train, _ = learning.public_split(public_examples())
    active = registry.save(train(public_train, TINY), card_extra={"holdout_excluded": True})
    registry.activate(active)
    store = labelstore.connect(store_url)
    labels = labelstore.load_site_labels(store)
    store.dispose()
    flipped = [
        type(s)(
            s.id,
            s.text_hash,
            s.created_at,
            type(s.example)(
                s.example.comment, {"spam": 1.0 - s.example.labels["spam"]}, "site", created_at=s.created_at
            ),
            None,
            "x",
            "moderator",
        )
        for s in labels
    ]
    worse = learning.train_candidate(registry, public_examples(), flipped, params=TINY).version
    common = [
        "--database-url",
        store_url,
        "--data-dir",
        str(tmp_path / "no-data"),
        "--reports-dir",
        str(tmp_path / "reports"),
    ]
    assert main(["models", "--registry", str(registry.root), "promote", worse, *common]) == 1
    captured = capsys.readouterr()
    assert "guard failed" in captured.out and "--force" in captured.err
    assert registry.active_version() == active
    assert (tmp_path / "reports" / f"model-{worse}-vs-{active}.md").is_file()
    assert main(["models", "--registry", str(registry.root), "promote", worse, "--force", *common]) == 0
    assert registry.active_version() == worse
    assert main(["models", "--registry", str(registry.root), "rollback", *common]) == 0
    assert registry.active_version() == active
    assert (tmp_path / "reports" / f"model-{active}-vs-{worse}.md").is_file()
    assert main(["models", "--registry", str(registry.root), "promote", "nope", *common]) == 2
