"""Metrics and the held-out split: known arrays in, known figures out."""

from __future__ import annotations

import math

import pytest

from classifier.comment import Comment, LabelledComment
from classifier.metrics import (
    attribute_metrics,
    expected_calibration_error,
    in_holdout,
    metrics_at_threshold,
    split_holdout,
)


def lc(text: str, source: str, **labels: float) -> LabelledComment:
    return LabelledComment(Comment(text), dict(labels), source)


def test_ece_is_zero_when_perfectly_calibrated():
    # 10 rows at 0.3 with 3 positives, 10 rows at 0.8 with 8 positives
    y = [1] * 3 + [0] * 7 + [1] * 8 + [0] * 2
    p = [0.3] * 10 + [0.8] * 10
    assert expected_calibration_error(y, p) == pytest.approx(0.0)


def test_ece_of_an_overconfident_model():
    # always says 0.9 but only half are positive: gap 0.4 in the single bin
    assert expected_calibration_error([1, 0, 1, 0], [0.9] * 4) == pytest.approx(0.4)
    # two bins weighted by size: 0.1 vs 0/2 positive (gap 0.1), 1.0 vs 1/2 positive (gap 0.5)
    assert expected_calibration_error([0, 0, 1, 0], [0.1, 0.1, 1.0, 1.0]) == pytest.approx(0.3)
    assert math.isnan(expected_calibration_error([], []))


def test_precision_recall_f1_at_threshold():
    y = [1, 1, 1, 0, 0, 0]
    p = [0.9, 0.6, 0.2, 0.7, 0.1, 0.0]
    at = metrics_at_threshold(y, p, 0.5)  # flags 0.9, 0.6, 0.7: tp 2, fp 1, fn 1
    assert (at.precision, at.recall) == (pytest.approx(2 / 3), pytest.approx(2 / 3))
    assert at.f1 == pytest.approx(2 / 3)
    at = metrics_at_threshold(y, p, 0.97)  # flags nothing
    assert math.isnan(at.precision) and at.recall == 0.0 and at.f1 == 0.0
    assert metrics_at_threshold(y, p, 0.9).precision == 1.0  # >= is inclusive


def test_attribute_metrics_uses_policy_thresholds():
    m = attribute_metrics("spam", [0, 0, 1, 1], [0.1, 0.6, 0.8, 0.99])
    assert m.roc_auc == 1.0 and m.average_precision == 1.0 and (m.n, m.positives) == (4, 2)
    assert set(m.at) == {"hold", "reject"} and m.at["reject"].recall == 0.5
    assert set(attribute_metrics("insult", [0, 1], [0.2, 0.7]).at) == {"hold"}
    one_class = attribute_metrics("spam", [1, 1], [0.4, 0.9])
    assert math.isnan(one_class.roc_auc) and one_class.at["hold"].recall == 0.5


def test_split_holdout_is_deterministic_by_text():
    examples = [lc(f"comment number {i}", "s", spam=i % 2) for i in range(2000)]
    train, holdout = split_holdout(examples)
    assert 0.17 < len(holdout) / len(examples) < 0.23 and len(train) + len(holdout) == 2000
    assert split_holdout(list(reversed(examples)))[1] == list(reversed(holdout))
    # equal texts from different sources land on the same side
    twins = [lc("same words", "a", spam=1), lc("  same words ", "b", toxicity=0)]
    assert len({in_holdout(e) for e in twins}) == 1
