"""A trained model: two scikit-learn pipelines (spam, toxicity) that share one vectoriser.

``predict`` is the fast path (a matrix of probabilities); ``score`` adds the reasons a moderator sees.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.pipeline import Pipeline

from classifier.comment import ATTRIBUTES, TOXICITY_ATTRIBUTES, Comment
from classifier.features import META_NAMES, CommentVectorizer, describe_meta, metadata_values
from classifier.text import URL_TOKEN, Normalized, normalize

#: Reasons are given for attributes scored at least this high.
REASON_THRESHOLD = 0.5
#: At most this many reasons per attribute.
REASONS_PER_ATTRIBUTE = 3
#: Columns with the largest contributions that are turned into reasons.
MAX_COLUMNS = 60


@dataclass(frozen=True)
class Reason:
    """One feature that pushed an attribute's score up."""

    attribute: str
    feature: str
    weight: float
    spans: list[tuple[int, int]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "attribute": self.attribute,
            "feature": self.feature,
            "weight": round(float(self.weight), 4),
            "spans": [[int(b), int(e)] for b, e in self.spans],
        }


@dataclass(frozen=True)
class Score:
    """Calibrated probabilities for every attribute in :data:`ATTRIBUTES`, with reasons."""

    values: dict[str, float]
    reasons: list[Reason]
    model_version: str
    #: The normalised text the models saw, so callers that match words on it need not normalise again.
    normalized: Normalized | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {name: round(float(self.values[name]), 6) for name in ATTRIBUTES}
        out["reasons"] = [reason.to_dict() for reason in self.reasons]
        out["model"] = self.model_version
        return out


class Model:
    """The spam pipeline and the multi-output toxicity pipeline, plus version and card."""

    def __init__(
        self, spam: Pipeline, toxicity: Pipeline, version: str = "unsaved", card: dict[str, Any] | None = None
    ):
        self.spam = spam
        self.toxicity = toxicity
        # The two pipelines are trained with one shared vectoriser; keep it shared after loading too,
        # so a batch is vectorised once.
        if toxicity.steps[0][1] is not spam.steps[0][1]:
            toxicity.steps[0] = (toxicity.steps[0][0], spam.steps[0][1])
        self.version = version
        self.card: dict[str, Any] = card if card is not None else {}
        # Every head is a binary logistic regression on the same features, so all seven probabilities
        # are one sparse x dense product; this skips scikit-learn's per-call input validation, which
        # dominates the latency of a single comment. `pipeline_probabilities` is the reference path.
        heads = self._heads()
        self._weights = np.column_stack([h.coef_.ravel() for h in heads]).astype(np.float32)
        self._bias = np.array([float(h.intercept_[0]) for h in heads], dtype=np.float32)

    @property
    def vectorizer(self) -> CommentVectorizer:
        return self.spam.steps[0][1]

    def _heads(self) -> list[Any]:
        """One fitted binary classifier per attribute, in ATTRIBUTES order (for reasons)."""
        return [self.spam.steps[-1][1], *self.toxicity.steps[-1][1].estimators_]

    def _probabilities(self, features: sp.csr_matrix) -> np.ndarray:
        logits = np.asarray(features @ self._weights, dtype=np.float64) + self._bias
        return 1.0 / (1.0 + np.exp(-np.clip(logits, -50.0, 50.0)))

    def pipeline_probabilities(self, comments: Sequence[Comment]) -> np.ndarray:
        """The same probabilities through the scikit-learn pipelines' ``predict_proba`` (slower)."""
        spam = self.spam.predict_proba(comments)[:, 1]
        toxicity = self.toxicity.predict_proba(comments)
        return np.column_stack([spam, *[p[:, 1] for p in toxicity]])

    def predict(self, comments: Sequence[Comment]) -> np.ndarray:
        """Probabilities, shape ``(n, len(ATTRIBUTES))`` in ATTRIBUTES order; no reasons."""
        if not comments:
            return np.zeros((0, len(ATTRIBUTES)))
        return self._probabilities(self.vectorizer.transform(comments))

    def score(self, comments: Sequence[Comment], explain: bool = True) -> list[Score]:
        """Score a batch: one vectorisation and one ``predict_proba`` per model for the whole batch."""
        if not comments:
            return []
        normalized = [normalize(c.text) for c in comments]
        features = self.vectorizer.transform_normalized(comments, normalized)
        probabilities = self._probabilities(features)
        heads = self._heads() if explain else []
        scores = []
        for i, comment in enumerate(comments):
            values = {name: float(probabilities[i, j]) for j, name in enumerate(ATTRIBUTES)}
            reasons: list[Reason] = []
            if explain:
                hot = [j for j in range(len(ATTRIBUTES)) if probabilities[i, j] >= REASON_THRESHOLD]
                if hot:
                    start, stop = features.indptr[i], features.indptr[i + 1]
                    reasons = self._reasons(
                        comment,
                        normalized[i],
                        features.indices[start:stop],
                        features.data[start:stop],
                        heads,
                        hot,
                    )
            scores.append(Score(values, reasons, self.version, normalized[i]))
        return scores

    def _reasons(
        self,
        comment: Comment,
        normalized: Any,
        columns: np.ndarray,
        values: np.ndarray,
        heads: list[Any],
        attributes: list[int],
    ) -> list[Reason]:
        vectorizer = self.vectorizer
        meta_offset = vectorizer.n_word + vectorizer.n_char
        # Only the strongest columns can make the top few reasons (char n-grams add up per word).
        strongest: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        needed: set[int] = set()
        for j in attributes:
            contributions = values * heads[j].coef_[0, columns]
            top = np.argsort(-contributions)[:MAX_COLUMNS]
            top = top[contributions[top] > 0]
            strongest[j] = (columns[top], contributions[top])
            needed.update(int(c) for c in columns[top])
        terms = vectorizer.terms(normalized, needed)
        meta_values: dict[str, float] | None = None
        reasons: list[Reason] = []
        for j in attributes:
            by_feature: dict[str, float] = {}
            positions: dict[str, set[tuple[int, int]]] = {}
            for col, value in zip(*strongest[j], strict=True):
                if col >= meta_offset:
                    if meta_values is None:
                        meta_values = metadata_values(comment, normalized.urls)
                    label = describe_meta(META_NAMES[col - meta_offset], meta_values)
                    by_feature[label] = by_feature.get(label, 0.0) + float(value)
                    positions.setdefault(label, set())
                    continue
                sources = terms.get(int(col))
                if not sources:
                    continue
                share = float(value) / len(sources)
                for term, begin, end in sources:
                    label = "link" if term == URL_TOKEN else ("words: " if " " in term else "word: ") + term
                    by_feature[label] = by_feature.get(label, 0.0) + share
                    positions.setdefault(label, set()).add((begin, end))
            top_labels = sorted(by_feature.items(), key=lambda kv: -kv[1])[:REASONS_PER_ATTRIBUTE]
            for label, weight in top_labels:
                if weight <= 0:
                    continue
                spans = sorted({normalized.span(b, e) for b, e in positions.get(label, ())})
                reasons.append(Reason(ATTRIBUTES[j], label, weight, spans))
        return reasons

    def __repr__(self) -> str:
        return f"Model(version={self.version!r}, attributes={list(ATTRIBUTES)})"


__all__ = ["Model", "Reason", "Score", "REASON_THRESHOLD", "TOXICITY_ATTRIBUTES"]
