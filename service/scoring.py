"""The model as the service holds it: loaded once per process, swapped whole, never half-loaded.

Web processes (for the synchronous compatibility endpoints) and workers each keep one
``ModelHolder``. ``refresh()`` is called between batches: it loads the newly active version into a
new object and only then replaces the reference, so a batch is scored entirely by one version.
Workers score with :meth:`ModelHolder.score`; the compatibility endpoints, inside a request, with
:meth:`ModelHolder.score_synchronously`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import sklearn

from classifier.comment import Comment as ClassifierComment
from classifier.errors import ClassifierError
from classifier.model import Model, Score
from classifier.registry import Registry

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScoredBatch:
    """Scores for a batch, or ``scores`` None when the batch could not be scored (no model, error)."""

    scores: list[Score] | None
    model_version: str | None
    error: str | None = None


#: A version that failed to load is not tried again for this long (each try logs an error).
FAILED_LOAD_RETRY_SECONDS = 60.0
#: Web processes look for a newly activated model version this often (workers do it between batches).
MODEL_REFRESH_SECONDS = 30.0
#: Workers look between jobs, at most this often (and the reconciler thread every interval).
WORKER_MODEL_REFRESH_SECONDS = 1.0


class ModelHolder:
    def __init__(self, registry: Registry, announced: Callable[[], str | None] | None = None):
        self.registry = registry
        #: Returns the version the service announced as active (database/Redis), or None; consulted
        #: before the registry's own pointer (see ``service.activation``).
        self.announced = announced
        self._model: Model | None = None
        self._lock = threading.Lock()
        self._failed: dict[str, float] = {}
        self._checked_at = 0.0

    @property
    def model(self) -> Model | None:
        if self._model is None:
            self.refresh()
        return self._model

    @property
    def version(self) -> str | None:
        model = self._model
        return model.version if model is not None else None

    def active_version(self) -> str | None:
        """The version this process should run: the announced one (see ``service.activation``), else the
        registry's active pointer. None when there is none or it cannot be read."""
        try:
            announced = self.announced() if self.announced else None
            return announced or self.registry.active_version()
        except (ClassifierError, OSError) as error:
            logger.error("model registry unreadable error=%s", error)
            return None

    def refresh(self, wanted_version: str | None = None) -> bool:
        """Load ``wanted_version`` (default: :meth:`active_version`) if it is not loaded yet.

        The new model is loaded into a new object and only then swapped in, so a batch is always
        scored by one fully loaded version. Returns True when a new model was swapped in. A failed
        load keeps the old model (and is not retried for a minute, so the error is not logged
        every interval).
        """
        with self._lock:
            version = wanted_version or self.active_version()
            if version is None or version == self.version:
                return False
            failed_at = self._failed.get(version)
            if failed_at is not None and time.monotonic() - failed_at < FAILED_LOAD_RETRY_SECONDS:
                return False
            try:
                loaded = self.registry.load(version)
            except Exception as error:  # a bad artifact must never take down a worker
                self._failed[version] = time.monotonic()
                logger.error("model load failed version=%s kept=%s error=%s", version, self.version, error)
                return False
            self._model = loaded
            logger.info("model loaded version=%s", version)
            return True

    def maybe_refresh(self, min_interval: float) -> None:
        """Refresh at most every ``min_interval`` seconds; for request paths, which must not wait."""
        now = time.monotonic()
        if now - self._checked_at < min_interval or not self._lock.acquire(blocking=False):
            return
        self._lock.release()
        self._checked_at = now
        self.refresh()

    def score(self, comments: Sequence[ClassifierComment], explain: bool = True) -> ScoredBatch:
        """Score a batch with one model version; never raises."""
        model = self.model
        if model is None:
            return ScoredBatch(None, None, "no model")
        try:
            return ScoredBatch(model.score(comments, explain=explain), model.version)
        except Exception as error:
            logger.exception("scoring failed model=%s size=%d", model.version, len(comments))
            return ScoredBatch(None, model.version, type(error).__name__)

    def score_synchronously(
        self, comments: Sequence[ClassifierComment], explain: bool = False
    ) -> ScoredBatch:
        """Score inside a request, for the compatibility endpoints; never raises.

        The model is loaded once per process (by the app factory, before gunicorn forks); every
        ``MODEL_REFRESH_SECONDS`` one request also checks for a newly activated version, so these
        endpoints follow the same active model as the workers.
        """
        self.maybe_refresh(MODEL_REFRESH_SECONDS)
        # Skipping scikit-learn's per-call input validation saves milliseconds on one-comment batches;
        # the vectoriser builds the matrix itself, so it is always finite and well-formed.
        with sklearn.config_context(assume_finite=True, skip_parameter_validation=True):
            return self.score(comments, explain=explain)
