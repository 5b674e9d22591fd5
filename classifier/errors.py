"""Domain errors of the classifier package; the service and the CLI turn them into clear messages."""

from __future__ import annotations


class ClassifierError(Exception):
    """Base class of every error this package raises on purpose."""


class ModelNotFound(ClassifierError):
    """No such model version in the registry, or no active model."""


class ModelIntegrityError(ClassifierError):
    """An artifact or its card is missing, does not match, or holds types we do not trust."""


class DatasetError(ClassifierError):
    """A data set or a user's labelled file cannot be read; the message names the file and line.

    ``DatasetError(message, path, line)`` reads as ``path:line: message``.
    """

    def __init__(self, message: str, path: object = None, line: int | None = None):
        self.message = message
        self.path = path
        self.line = line
        where = "" if path is None else (f"{path}:{line}: " if line is not None else f"{path}: ")
        super().__init__(f"{where}{message}")


class TrainingError(ClassifierError):
    """Training cannot proceed with the examples given (e.g. only one class for an attribute)."""
