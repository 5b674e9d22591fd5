"""The relational schema and engine set-up (SQLAlchemy 2.x; SQLite in WAL mode or PostgreSQL).

The database is the source of truth: a comment is committed here before the API answers, and every
status change is an appended ``StatusChange`` row. Redis only carries work to do.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    create_engine,
    event,
    inspect,
)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker
from sqlalchemy.pool import NullPool

from classifier.labelstore import sqlalchemy_url

PENDING = "pending"
APPROVED = "approved"
HELD = "held"
REJECTED = "rejected"


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    """Public ids are random, so they reveal nothing about volume and cannot be guessed."""
    return uuid.uuid4().hex


class UTCDateTime(TypeDecorator):
    """Timestamps are stored and returned as aware UTC datetimes on every backend.

    (SQLite has no time zone type and would hand back naive values.)
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use datetime.now(UTC)")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON}


#: The site of every key created before sites existed (``site_id`` NULL on keys and comments).
DEFAULT_SITE = "default"
#: Moderator roles: moderators decide comments; admins also edit a site's rules and thresholds.
ROLE_MODERATOR = "moderator"
ROLE_ADMIN = "admin"
ROLES = (ROLE_MODERATOR, ROLE_ADMIN)


class Site(Base):
    """One publication the service moderates: its own rules and thresholds (``service.sites``)."""

    __tablename__ = "sites"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    #: Overrides of the service-wide defaults: thresholds and rule options (``service.sites``).
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    #: Bumped by every change of its rules or settings, so processes know when to recompile them.
    rules_version: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class SiteRule(Base):
    """One entry of a site's rule lists: a banned word, a trusted domain, a banned e-mail, ..."""

    __tablename__ = "site_rules"
    __table_args__ = (UniqueConstraint("site_id", "kind", "value", name="uq_site_rules_entry"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"), index=True)
    #: One of ``service.rules.RULE_KINDS``.
    kind: Mapped[str] = mapped_column(String(32))
    value: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(200))


class SiteAudit(Base):
    """Every change of a site's rules or thresholds: who, when, what before and what after."""

    __tablename__ = "site_audit"

    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"), index=True)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(64))
    before: Mapped[Any | None] = mapped_column(JSON)
    after: Mapped[Any | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ApiKey(Base):
    """A CMS's credential. Only the SHA-256 of the key is stored; keys are long random strings."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    #: The first characters of the key, shown in listings so an operator can tell keys apart.
    key_prefix: Mapped[str] = mapped_column(String(16))
    scopes: Mapped[str] = mapped_column(String(200))
    webhook_url: Mapped[str | None] = mapped_column(String(2000))
    webhook_secret: Mapped[str | None] = mapped_column(String(200))
    #: Requests per period for the compatibility endpoints, e.g. "50/second"; None = the default.
    rate_limit: Mapped[str | None] = mapped_column(String(50))
    #: Comments per period on ``POST /v1/comments``, e.g. "100/second"; None = ``COMMENT_RATE_LIMIT``.
    comment_rate_limit: Mapped[str | None] = mapped_column(String(50))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    disabled_at: Mapped[datetime | None]
    #: The site whose comments this key posts; None = the default site.
    site_id: Mapped[int | None] = mapped_column(ForeignKey("sites.id"))

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes.split(",")


class Comment(Base):
    __tablename__ = "comments"
    __table_args__ = (
        # Every index here is paid for by every INSERT on the ingest path: keep only the ones a
        # query needs (the text hash is copied into labels, and looked up there, not here).
        UniqueConstraint("api_key_id", "external_id", name="uq_comments_key_external_id"),
        Index("ix_comments_pending_enqueued", "status", "enqueued_at"),
        Index("ix_comments_author_email", "author_email"),
        Index("ix_comments_author_ip", "author_ip"),
        Index("ix_comments_post", "post_id"),
        # The moderation queues (service.web.moderation.queries): keyset pages in index order,
        # covering counts.
        # ("Most uncertain first" sorts the held queue by coalesce(uncertainty, 1): a plain index
        # on uncertainty cannot serve that order, and the held queue is small enough to sort.)
        Index("ix_comments_status_received_id", "status", "received_at", "id"),
        Index("ix_comments_status_reason", "status", "reason"),
        Index("ix_comments_received_id", "received_at", "id"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    api_key_id: Mapped[int | None] = mapped_column(ForeignKey("api_keys.id"))
    external_id: Mapped[str | None] = mapped_column(String(200))
    post_id: Mapped[str | None] = mapped_column(String(200))
    permalink: Mapped[str | None] = mapped_column(String(2000))
    parent_id: Mapped[str | None] = mapped_column(String(200))
    author_name: Mapped[str] = mapped_column(String(200))
    author_email: Mapped[str] = mapped_column(String(320))
    author_url: Mapped[str | None] = mapped_column(String(2000))
    author_ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(1000))
    referrer: Mapped[str | None] = mapped_column(String(2000))
    language: Mapped[str | None] = mapped_column(String(35))
    text: Mapped[str] = mapped_column(Text)
    text_hash: Mapped[str] = mapped_column(String(64))
    meta: Mapped[dict[str, Any] | None]
    created_at: Mapped[datetime | None]
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    enqueued_at: Mapped[datetime | None]
    status: Mapped[str] = mapped_column(String(16), default=PENDING)
    #: The policy rule (or moderator action) behind the current status, e.g. "spam_reject".
    reason: Mapped[str | None] = mapped_column(String(64))
    scores: Mapped[dict[str, Any] | None]
    #: The classifier's reasons: [{"attribute", "feature", "weight", "spans"}].
    explanations: Mapped[list[Any] | None] = mapped_column(JSON)
    #: The largest distance-from-threshold-based uncertainty, for "most uncertain first".
    uncertainty: Mapped[float | None] = mapped_column(Float)
    model_version: Mapped[str | None] = mapped_column(String(100))
    decided_at: Mapped[datetime | None]
    decided_by: Mapped[str | None] = mapped_column(String(200))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    #: The site it was posted to (its key's site when it arrived); None = the default site.
    site_id: Mapped[int | None] = mapped_column(ForeignKey("sites.id"))
    #: The language detected in the text (ISO 639-1), or None when the detector was not confident.
    detected_language: Mapped[str | None] = mapped_column(String(8))
    #: The site rules that fired: [{"rule", "entry", "match", "span"}] (``service.rules``).
    rule_hits: Mapped[list[Any] | None] = mapped_column(JSON)


class StatusChange(Base):
    """Append-only history of a comment's status: who or what changed it, when, and why."""

    __tablename__ = "status_changes"

    id: Mapped[int] = mapped_column(primary_key=True)
    comment_id: Mapped[str] = mapped_column(ForeignKey("comments.id"), index=True)
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(64))
    #: "model:<version>", "moderator:<username>", "system:<component>" or "api-key:<id>".
    actor: Mapped[str] = mapped_column(String(200))
    model_version: Mapped[str | None] = mapped_column(String(100))
    scores: Mapped[dict[str, Any] | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Label(Base):
    """A human (or imported) judgement about a comment: the training data of the learning loop.

    ``labels`` maps attributes (``spam``, ``toxicity``, ...) to 0 or 1. Rows are never updated;
    a changed mind is a newer row.
    """

    __tablename__ = "labels"
    __table_args__ = (Index("ix_labels_created", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    comment_id: Mapped[str | None] = mapped_column(ForeignKey("comments.id"), index=True)
    #: "moderator", "akismet", "perspective", "import:<kind>".
    source: Mapped[str] = mapped_column(String(100))
    #: approve, spam, abusive, undo, ham, ... (what the person did).
    decision: Mapped[str] = mapped_column(String(32))
    labels: Mapped[dict[str, Any]]
    text: Mapped[str | None] = mapped_column(Text)
    text_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    author_name: Mapped[str | None] = mapped_column(String(200))
    author_email: Mapped[str | None] = mapped_column(String(320))
    author_url: Mapped[str | None] = mapped_column(String(2000))
    external_id: Mapped[str | None] = mapped_column(String(200), index=True)
    actor: Mapped[str | None] = mapped_column(String(200))
    previous_status: Mapped[str | None] = mapped_column(String(16))
    scores_at_time: Mapped[dict[str, Any] | None]
    model_version: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Moderator(Base):
    __tablename__ = "moderators"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(100), unique=True)
    password_hash: Mapped[str] = mapped_column(String(300))
    #: SHA-256 of the moderator's API token for the JSON moderation API, if one was issued.
    token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_login_at: Mapped[datetime | None]
    #: The one site this moderator works on; None = every site (as before sites existed).
    site_id: Mapped[int | None] = mapped_column(ForeignKey("sites.id"))
    #: ``ROLE_MODERATOR`` or ``ROLE_ADMIN``; None (accounts made before roles) = a moderator.
    role: Mapped[str | None] = mapped_column(String(16))

    @property
    def is_admin(self) -> bool:
        return self.role == ROLE_ADMIN


class ModeratorSession(Base):
    """A moderator's login on the review pages, so that it can be ended on the server.

    The session cookie carries a random id; only its SHA-256 is stored. Logging out deletes the row;
    a new password or a disabled account deletes all of the moderator's rows. (A table of its own, so
    databases created by earlier versions get it from ``create_all``.)
    """

    __tablename__ = "moderator_sessions"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    moderator_id: Mapped[int] = mapped_column(ForeignKey("moderators.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]


class AuthorErasure(Base):
    """The record that an author's personal data was erased: who asked and when, never whose data."""

    __tablename__ = "author_erasures"

    id: Mapped[int] = mapped_column(primary_key=True)
    #: "moderator:<username>", "api-key:<id>" or "operator:<name>".
    actor: Mapped[str] = mapped_column(String(200))
    #: Set when a CMS key asked: the erasure covered only that key's comments.
    api_key_id: Mapped[int | None] = mapped_column(ForeignKey("api_keys.id"))
    comments: Mapped[int] = mapped_column(Integer, default=0)
    labels: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class WebhookDelivery(Base):
    """The outbox: a verdict's notification to the CMS, written in the verdict's own transaction."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (Index("ix_webhooks_due", "state", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    comment_id: Mapped[str] = mapped_column(ForeignKey("comments.id"), index=True)
    api_key_id: Mapped[int] = mapped_column(ForeignKey("api_keys.id"))
    url: Mapped[str] = mapped_column(String(2000))
    event: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]]
    #: pending -> delivered | dead.
    state: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_error: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[datetime | None]


class ModelVersion(Base):
    """Which model versions the service knows and which one is active (the hot-swap record)."""

    __tablename__ = "model_versions"

    version: Mapped[str] = mapped_column(String(100), primary_key=True)
    state: Mapped[str] = mapped_column(String(16), default="candidate")  # candidate | active | retired
    card: Mapped[dict[str, Any] | None]
    report_path: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    activated_at: Mapped[datetime | None]


class UsageCounter(Base):
    """Per-key, per-endpoint, per-day request counts (all that Perspective's analyze keeps)."""

    __tablename__ = "usage_counters"
    __table_args__ = (UniqueConstraint("api_key_id", "endpoint", "day", name="uq_usage"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    api_key_id: Mapped[int] = mapped_column(ForeignKey("api_keys.id"))
    endpoint: Mapped[str] = mapped_column(String(64))
    day: Mapped[str] = mapped_column(String(10))
    count: Mapped[int] = mapped_column(Integer, default=0)


def make_engine(database_url: str, autocommit: bool = False) -> Engine:
    """Create the engine; SQLite gets WAL, a busy timeout and foreign keys on every connection.

    ``autocommit`` engines run each statement as its own transaction: for single-statement writes
    (storing a new comment), where BEGIN and COMMIT would only add round trips. Their connections
    stay in autocommit mode, so nothing is reset on each check-out, and they are not pinged.
    """
    options: dict[str, Any] = {"isolation_level": "AUTOCOMMIT"} if autocommit else {}
    if database_url.startswith("sqlite"):
        # NullPool: SQLite connections are cheap, and no pooled connection survives a fork.
        engine = create_engine(database_url, poolclass=NullPool, connect_args={"timeout": 30}, **options)
        event.listen(engine, "connect", _configure_sqlite)
        return engine
    return create_engine(
        sqlalchemy_url(database_url),
        # A ping is one more round trip on every check-out. Autocommit engines serve the ingest
        # path, which is bounded by round trips, so they skip it and retry a statement once on a
        # connection the database dropped instead (see ``store._insert_comment_row``).
        pool_pre_ping=not autocommit,
        pool_size=5,
        max_overflow=5,
        connect_args={"connect_timeout": 5},
        **options,
    )


def _configure_sqlite(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    # FULL, not NORMAL: a comment that got a 2xx must survive a power cut, not only a crash.
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def make_session_factory(engine: Engine) -> sessionmaker:
    return sessionmaker(bind=engine, expire_on_commit=False)


def create_schema(engine: Engine) -> None:
    """Create missing tables. (Small, additive schema; a migration tool can take over later.)"""
    if engine.url.get_backend_name() == "sqlite" and engine.url.database:
        from pathlib import Path

        Path(engine.url.database).parent.mkdir(parents=True, exist_ok=True)
    Base.metadata.create_all(engine)
    add_missing_columns(engine)


def add_missing_columns(engine: Engine) -> list[str]:
    """``ALTER TABLE ... ADD COLUMN`` for each nullable column a table created by an older version lacks.

    ``create_all`` creates missing tables but never changes existing ones, so a column added to an
    existing table (``comments.site_id``, say) would be missing from every database made before it.
    Only nullable columns without server defaults are added this way (both SQLite and PostgreSQL
    add those in place, without rewriting the table); anything else needs a real migration, and
    raises here rather than half-working. Returns the ``table.column`` names added.
    """
    added: list[str] = []
    existing_tables = set(inspect(engine).get_table_names())
    with engine.begin() as connection:
        inspector = inspect(connection)
        for table in Base.metadata.sorted_tables:
            if table.name not in existing_tables:
                continue
            present = {column["name"] for column in inspector.get_columns(table.name)}
            for column in table.columns:
                if column.name in present:
                    continue
                if not column.nullable or column.primary_key:
                    raise RuntimeError(f"cannot add the required column {table.name}.{column.name} in place")
                connection.exec_driver_sql(_add_column_statement(engine, table, column))
                added.append(f"{table.name}.{column.name}")
    return added


def _add_column_statement(engine: Engine, table: Table, column: Column) -> str:
    preparer = engine.dialect.identifier_preparer
    column_type = column.type.compile(dialect=engine.dialect)
    # Foreign keys are left out: SQLite cannot add one in place; the ORM keeps the reference.
    return (
        f"ALTER TABLE {preparer.format_table(table)} ADD COLUMN {preparer.quote(column.name)} {column_type}"
    )


class RowInserter:
    """INSERT single rows of one table through the DBAPI cursor, committed on return.

    For the ingest path, where every request writes one row and SQLAlchemy's per-statement
    machinery (cache key, execution context, result object) costs more CPU than the database's own
    work for it. Values still go through each column type's bind processor, so aware datetimes and
    JSON are stored exactly as the ORM stores them, and DBAPI errors come out as SQLAlchemy's
    exceptions, with a dropped connection invalidated as SQLAlchemy would do it.
    """

    def __init__(self, engine: Engine, table: Table):
        self._engine = engine
        self._table = table
        dialect = engine.dialect
        # dialect_impl: the dialect's own variant of each type (psycopg wraps JSON values, say).
        self._processors = {
            column.key: column.type.dialect_impl(dialect).bind_processor(dialect) for column in table.columns
        }
        self._statements: dict[tuple[str, ...], str] = {}

    def insert(self, values: Mapping[str, Any]) -> None:
        statement = self._statement(tuple(values))
        parameters = self._parameters(values)
        dialect = self._engine.dialect
        connection = self._engine.raw_connection()
        cursor = None
        try:
            cursor = connection.cursor()
            cursor.execute(statement, parameters)
            connection.commit()  # a no-op on autocommit connections; explicit durability otherwise
        except dialect.loaded_dbapi.Error as error:
            dropped = dialect.is_disconnect(error, connection, cursor)
            if dropped:
                connection.invalidate(error)
            raise DBAPIError.instance(
                statement,
                parameters,
                error,
                dialect.loaded_dbapi.Error,
                connection_invalidated=dropped,
                dialect=dialect,
            ) from error
        finally:
            if cursor is not None:
                cursor.close()
            connection.close()  # back to the pool (or closed, if invalidated)

    def _statement(self, columns: tuple[str, ...]) -> str:
        statement = self._statements.get(columns)
        if statement is None:
            dialect = self._engine.dialect
            quote = dialect.identifier_preparer.quote
            names = ", ".join(quote(self._table.columns[key].name) for key in columns)
            placeholders = ", ".join(_placeholder(dialect.paramstyle, key) for key in columns)
            statement = f"INSERT INTO {quote(self._table.name)} ({names}) VALUES ({placeholders})"
            self._statements[columns] = statement  # one per set of optional fields sent: a few dozen
        return statement

    def _parameters(self, values: Mapping[str, Any]) -> Any:
        processed = {}
        for key, value in values.items():
            processor = self._processors[key]
            processed[key] = processor(value) if processor is not None and value is not None else value
        if self._engine.dialect.positional:
            return tuple(processed.values())
        return processed


def _placeholder(paramstyle: str, name: str) -> str:
    if paramstyle == "pyformat":
        return f"%({name})s"
    if paramstyle == "named":
        return f":{name}"
    if paramstyle == "qmark":
        return "?"
    if paramstyle == "format":
        return "%s"
    raise NotImplementedError(f"DBAPI parameter style {paramstyle!r}")
