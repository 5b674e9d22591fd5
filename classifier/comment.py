"""The values the classifier reads and writes: comments in, labelled comments for training."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

#: Everything the models predict, in a fixed order. ``spam`` comes from the spam model,
#: the rest from the toxicity model; the names follow Perspective API's attributes.
ATTRIBUTES: tuple[str, ...] = (
    "spam",
    "toxicity",
    "severe_toxicity",
    "insult",
    "profanity",
    "threat",
    "identity_attack",
)
TOXICITY_ATTRIBUTES: tuple[str, ...] = ATTRIBUTES[1:]


@dataclass(frozen=True)
class Comment:
    """One comment as a CMS sends it. Only ``text`` is required."""

    text: str
    name: str = ""
    email: str = ""
    url: str = ""
    language: str | None = None


@dataclass(frozen=True)
class LabelledComment:
    """A comment with known labels, for training and evaluation.

    ``labels`` maps an attribute from :data:`ATTRIBUTES` to a value in [0, 1]; an attribute that
    a source does not label is simply absent (unknown), never 0.
    """

    comment: Comment
    labels: dict[str, float]
    source: str
    external_id: str | None = None
    created_at: datetime | None = None
    weight: float = 1.0
    extra: dict[str, str] = field(default_factory=dict)
