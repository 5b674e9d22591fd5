"""LOG_FORMAT: key=value lines or one JSON object per line, with the same fields and no secrets."""

from __future__ import annotations

import json
import logging

import pytest

from service.logs import configure_logging
from service.settings import Settings, SettingsError


@pytest.fixture
def restore_logging():
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def lines(written: str) -> list[dict]:
    return [json.loads(line) for line in written.splitlines() if line.strip()]


def test_json_lines_carry_the_text_lines_fields(capsys, restore_logging):
    configure_logging(Settings(log_format="text"))
    logging.getLogger("service.jobs").info("comment=%s status=%s spam=%.3f", "c1", "approved", 0.125)
    text_line = capsys.readouterr().err.strip()
    assert text_line.endswith("INFO service.jobs job=- comment=c1 status=approved spam=0.125")

    configure_logging(Settings(log_format="json"))
    logging.getLogger("service.jobs").info("comment=%s status=%s spam=%.3f", "c1", "approved", 0.125)
    logging.getLogger("worker").warning("plain words, no fields")
    first, second = lines(capsys.readouterr().err)
    assert first["level"] == "INFO"
    assert first["logger"] == "service.jobs"
    assert first["job"] == "-"
    assert first["message"] == "comment=c1 status=approved spam=0.125"
    assert (first["comment"], first["status"], first["spam"]) == ("c1", "approved", "0.125")
    assert first["time"].endswith("+00:00")
    assert second["message"] == "plain words, no fields" and second["level"] == "WARNING"


def test_a_message_cannot_overwrite_the_records_own_fields(capsys, restore_logging):
    configure_logging(Settings(log_format="json"))
    logging.getLogger("service.web.api").error("level=DEBUG logger=fake job=x message=y reason=%s", "spam")
    (entry,) = lines(capsys.readouterr().err)
    assert (entry["level"], entry["logger"], entry["job"]) == ("ERROR", "service.web.api", "-")
    assert entry["reason"] == "spam"


def test_json_lines_redact_credentials_like_text_lines(capsys, restore_logging):
    configure_logging(Settings(log_format="json"))
    logging.getLogger("waitress").warning(
        "%s", '"GET /v1alpha1/comments:analyze?key=AIzaSECRET&alt=json" 200'
    )
    try:
        raise ValueError("calling https://example.com/check?api_key=SECRETtwo")
    except ValueError:
        logging.getLogger("service.jobs").exception("delivery failed")
    written = capsys.readouterr().err
    assert "SECRET" not in written
    access, failure = lines(written)
    assert "?key=[redacted]&alt=json" in access["message"]
    assert "ValueError" in failure["exception"] and "api_key=[redacted]" in failure["exception"]


def test_log_format_setting():
    assert Settings.from_env({}).log_format == "text"
    assert Settings.from_env({"LOG_FORMAT": "JSON"}).log_format == "json"
    with pytest.raises(SettingsError, match="LOG_FORMAT"):
        Settings.from_env({"LOG_FORMAT": "xml"})
