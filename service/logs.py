"""Logging set-up for the entry points (the app factory, the worker, the CLIs).

Modules only ever do ``logger = logging.getLogger(__name__)``; this module configures the root logger
once per process. It imports neither Flask nor anything else heavy, so the worker can use it.
"""

from __future__ import annotations

import logging
import re
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


#: Query parameters whose values are credentials: Perspective clients send ``?key=``, Akismet's some
#: ``?api_key=``. Matched only after ``?``, ``&`` or ``;``, so our own ``key=<id>`` log fields stay.
_SECRET_PARAMETER = re.compile(
    r"(?i)([?&;](?:key|api_key|apikey|token|access_token|secret|password)=)[^&;\s\"'#]*"
)
#: Loggers of the servers we run under, which may write through handlers of their own (gunicorn's
#: ``--access-logfile``), not only through ours on the root logger.
SERVER_LOGGERS = ("gunicorn.access", "gunicorn.error", "waitress", "werkzeug")


def redact(message: str) -> str:
    """``message`` with the values of credential query parameters replaced by ``[redacted]``."""
    return _SECRET_PARAMETER.sub(r"\1[redacted]", message)


class RedactingFilter(logging.Filter):
    """Rewrites each record's message without credentials, before any handler formats it."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is the logging module's to report
            return True
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


_REDACTING_FILTER = RedactingFilter()


def configure_logging(settings: Settings) -> None:
    """Entry points call this once: ``key=value`` lines on stderr, each with its RQ job id, no secrets."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_REDACTING_FILTER)
    handler.addFilter(_JobIdFilter())
    for name in SERVER_LOGGERS:
        server_logger = logging.getLogger(name)
        if _REDACTING_FILTER not in server_logger.filters:
            server_logger.addFilter(_REDACTING_FILTER)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s job=%(job)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level)
