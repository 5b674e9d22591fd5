"""Logging set-up for the entry points (the app factory, the worker, the CLIs).

Modules only ever do ``logger = logging.getLogger(__name__)``; this module configures the root logger
once per process. It imports neither Flask nor anything else heavy, so the worker can use it.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime

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


#: The ``key=value`` line format; the JSON format carries the same fields.
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s job=%(job)s %(message)s"
#: ``key=value`` pairs in a message (values end at whitespace): they become fields of their own.
_MESSAGE_FIELD = re.compile(r"(?:^|\s)([A-Za-z_][A-Za-z0-9_.-]*)=(\S*)")
_RESERVED_FIELDS = frozenset({"time", "level", "logger", "job", "message", "exception"})


class JsonFormatter(logging.Formatter):
    """One JSON object per line: the text line's fields (time, level, logger, job, message), plus each
    ``key=value`` pair of the message as a field of its own, so shippers need no parsing rules."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "job": getattr(record, "job", "-"),
            "message": message,
        }
        for key, value in _MESSAGE_FIELD.findall(message):
            if key not in _RESERVED_FIELDS:
                entry.setdefault(key, value)
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        elif record.stack_info:
            entry["exception"] = redact(self.formatStack(record.stack_info))
        return json.dumps(entry, ensure_ascii=False, default=str)


def make_formatter(log_format: str) -> logging.Formatter:
    return JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)


def configure_logging(settings: Settings) -> None:
    """Entry points call this once: ``key=value`` lines (or JSON, ``LOG_FORMAT=json``) on stderr, each
    with its RQ job id, no secrets."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_REDACTING_FILTER)
    handler.addFilter(_JobIdFilter())
    for name in SERVER_LOGGERS:
        server_logger = logging.getLogger(name)
        if _REDACTING_FILTER not in server_logger.filters:
            server_logger.addFilter(_REDACTING_FILTER)
    handler.setFormatter(make_formatter(settings.log_format))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level)
