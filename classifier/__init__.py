"""Spam and toxicity classifier for reader comments: features, models, training, registry and scoring.

The package takes paths and objects, never reads the environment, and never imports ``service``.
Heavier modules are imported lazily, so ``import classifier`` stays cheap.
"""

from __future__ import annotations

from typing import Any

from classifier.comment import ATTRIBUTES, TOXICITY_ATTRIBUTES, Comment, LabelledComment
from classifier.errors import (
    ClassifierError,
    DatasetError,
    ModelIntegrityError,
    ModelNotFound,
    TrainingError,
)

_LAZY = {
    "Model": "classifier.model",
    "Score": "classifier.model",
    "Reason": "classifier.model",
    "Registry": "classifier.registry",
    "train": "classifier.training",
    "TrainParams": "classifier.training",
    "normalize": "classifier.text",
}

__all__ = [
    "ATTRIBUTES",
    "TOXICITY_ATTRIBUTES",
    "ClassifierError",
    "Comment",
    "DatasetError",
    "LabelledComment",
    "ModelIntegrityError",
    "ModelNotFound",
    "TrainingError",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'classifier' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
