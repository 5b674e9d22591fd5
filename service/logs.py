"""Logging set-up for the entry points (the app factory, the worker, the CLIs).

Modules only ever do ``logger = logging.getLogger(__name__)``; this module configures the root logger
once per process. It imports neither Flask nor anything else heavy, so the worker can use it.
"""

from __future__ import annotations

import logging
import sys

from rq import get_current_job

from service.settings import Settings


class _JobIdFilter(logging.Filter):
    """Adds the RQ job id (when inside a job) to every record, as ``job=...``."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            job = get_current_job()
        except Exception:  # outside a worker RQ may find no connection; the record still goes out
            job = None
        record.job = job.id if job is not None else "-"
        return True


def configure_logging(settings: Settings) -> None:
    """Entry points call this once: ``key=value`` lines on stderr, each with its RQ job id."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_JobIdFilter())
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s job=%(job)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level)
