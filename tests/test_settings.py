"""Settings are read from the environment in one place and refuse values they cannot use."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.settings import Settings, SettingsError


def test_defaults_are_the_embedded_stack():
    settings = Settings.from_env({})

    assert settings.redis_url is None and settings.database_url is None
    assert settings.effective_database_url.startswith("sqlite:///")
    assert settings.effective_database_url.endswith("var/moderation.db")
    assert settings.registry_dir == Path("var/models")
    assert settings.data_dir == Path("../shared/data")
    assert (settings.thresholds.spam_reject, settings.thresholds.spam_hold) == (0.97, 0.5)
    assert settings.thresholds.toxicity_hold == 0.6 and settings.thresholds.max_links == 2
    assert settings.max_body_bytes == 64 * 1024


def test_environment_overrides():
    settings = Settings.from_env(
        {
            "REDIS_URL": "redis://r:6379/1",
            "DATABASE_URL": "postgresql://db/x",
            "THRESHOLD_SPAM_REJECT": "0.99",
            "THRESHOLD_THREAT_HOLD": "0.3",
            "MODERATION_DATA_DIR": "/data",
            "SECURE_COOKIES": "true",
        }
    )

    assert settings.redis_url == "redis://r:6379/1"
    assert settings.thresholds.spam_reject == 0.99
    assert settings.thresholds.hold_threshold("threat") == 0.3
    assert settings.thresholds.hold_threshold("insult") == 0.6
    assert settings.data_dir == Path("/data")
    assert settings.secure_cookies is True


@pytest.mark.parametrize(
    "environ",
    [
        {"THRESHOLD_SPAM_REJECT": "1.5"},
        {"THRESHOLD_SPAM_HOLD": "abc"},
        {"THRESHOLD_SPAM_HOLD": "0.99", "THRESHOLD_SPAM_REJECT": "0.9"},
        {"MAX_BODY_BYTES": "12"},
        {"SECURE_COOKIES": "maybe"},
        {"SCORE_BATCH_SIZE": "0"},
    ],
)
def test_bad_values_fail_fast(environ):
    with pytest.raises(SettingsError):
        Settings.from_env(environ)
