"""The service's label store, read and written by the classifier with SQLAlchemy Core.

``classifier/`` never imports ``service/``: this module names the ``labels`` table and the few columns
it needs (the service's ``service.db.Label`` owns the schema and creates it). It imports labelled
history files into the store and reads the site's labels back as :class:`LabelledComment` values.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    inspect,
    select,
)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool
from tqdm import tqdm

from classifier.comment import ATTRIBUTES, TOXICITY_ATTRIBUTES, Comment, LabelledComment
from classifier.errors import ClassifierError

logger = logging.getLogger(__name__)

#: The service's default database (``service.settings``: SQLite under ``var/``).
DEFAULT_DATABASE_URL = "sqlite:///var/moderation.db"
#: Rows per INSERT and per de-duplication query.
CHUNK = 500

_metadata = MetaData()
#: The columns of the service's ``labels`` table that the learning loop reads and writes.
labels_table = Table(
    "labels",
    _metadata,
    Column("id", Integer, primary_key=True),
    Column("comment_id", String(32)),
    Column("source", String(100)),
    Column("decision", String(32)),
    Column("labels", JSON),
    Column("text", Text),
    Column("text_hash", String(64)),
    Column("author_name", String(200)),
    Column("author_email", String(320)),
    Column("author_url", String(2000)),
    Column("external_id", String(200)),
    Column("actor", String(200)),
    Column("previous_status", String(16)),
    Column("scores_at_time", JSON),
    Column("model_version", String(100)),
    Column("created_at", DateTime(timezone=True)),
)


class LabelStoreError(ClassifierError):
    """The label store cannot be reached or has no ``labels`` table."""


def text_hash(text: str) -> str:
    """The service's text hash (``service.store.text_hash``): whitespace-folded, lower-cased sha256."""
    return hashlib.sha256(" ".join(text.split()).lower().encode("utf-8", "surrogatepass")).hexdigest()


def sqlalchemy_url(database_url: str) -> str:
    """The URL with psycopg 3 as PostgreSQL's driver: "postgresql://" alone selects psycopg2, which the
    service does not install."""
    for prefix in ("postgresql://", "postgres://"):
        if database_url.startswith(prefix):
            return "postgresql+psycopg://" + database_url[len(prefix) :]
    return database_url


def connect(database_url: str) -> Engine:
    """An engine for ``database_url`` that has a ``labels`` table (raises :class:`LabelStoreError`)."""
    url = sqlalchemy_url(database_url)
    try:
        if url.startswith("sqlite"):
            engine = create_engine(url, poolclass=NullPool, connect_args={"timeout": 30})
        else:
            engine = create_engine(url, pool_pre_ping=True, connect_args={"connect_timeout": 5})
        has_table = inspect(engine).has_table("labels")
    except (SQLAlchemyError, ValueError, ImportError) as err:
        raise LabelStoreError(
            f"cannot open the label store {_redact(database_url)}: {str(err).splitlines()[0]}"
        ) from None
    if not has_table:
        engine.dispose()
        raise LabelStoreError(
            f"{_redact(database_url)} has no labels table; start the service once "
            "(it creates the schema) or pass --database-url"
        )
    return engine


def create_scratch_store(database_url: str) -> None:
    """Create a stand-alone ``labels`` table with only the columns the learning loop uses.

    For evaluations that run the real ``import`` and ``train --with-labels`` commands without a service
    (``classifier.learning_curve``); the service creates the full table itself.
    """
    engine = create_engine(database_url, poolclass=NullPool)
    try:
        _metadata.create_all(engine)
    finally:
        engine.dispose()


def _redact(url: str) -> str:
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url


def utc(value: datetime | str | None) -> datetime | None:
    """An aware UTC datetime (SQLite hands back naive values, which are UTC in this store)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# --------------------------------------------------------------------------------------------------
# Import
# --------------------------------------------------------------------------------------------------


def decision_for(labels: Mapping[str, float]) -> str:
    """What a moderator would have done: ``spam``, ``abusive``, ``approve`` (clean) or ``ham``."""
    if labels.get("spam", 0.0) >= 0.5:
        return "spam"
    if any(labels.get(a, 0.0) >= 0.5 for a in TOXICITY_ATTRIBUTES):
        return "abusive"
    return "approve" if "toxicity" in labels else "ham"


@dataclass
class ImportReport:
    """How an import went: rows written, and rows skipped by reason."""

    imported: int = 0
    skipped: dict[str, int] = field(default_factory=dict)

    def skip(self, reason: str, count: int = 1) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + count

    @property
    def skipped_total(self) -> int:
        return sum(self.skipped.values())


def import_examples(
    engine: Engine,
    examples: Sequence[LabelledComment],
    kind: str,
    report: ImportReport | None = None,
    progress: bool = False,
) -> ImportReport:
    """Append ``examples`` as labels with source ``import:<kind>``, skipping duplicates.

    A row is a duplicate when its external id or its text hash is already in the store (any source) or
    earlier in the same file. The original comment date, when the file has one, becomes the label's
    ``created_at`` so the time split of the learning loop sees history in order.
    """
    report = report or ImportReport()
    rows: list[dict[str, Any]] = []
    seen_ids: set[str] = set()
    seen_hashes: set[str] = set()
    for example in examples:
        hashed = text_hash(example.comment.text)
        external_id = (example.external_id or "").strip() or None
        if external_id is not None and external_id in seen_ids:
            report.skip("duplicate external id in file")
            continue
        if hashed in seen_hashes:
            report.skip("duplicate text in file")
            continue
        labels = {a: (1 if v >= 0.5 else 0) for a, v in example.labels.items() if a in ATTRIBUTES}
        if not labels:
            report.skip("no known attribute labelled")
            continue
        if external_id is not None:
            seen_ids.add(external_id)
        seen_hashes.add(hashed)
        rows.append(
            {
                "source": f"import:{kind}",
                "decision": decision_for(labels),
                "labels": labels,
                "text": example.comment.text,
                "text_hash": hashed,
                "author_name": example.comment.name[:200] or None,
                "author_email": example.comment.email[:320] or None,
                "author_url": example.comment.url[:2000] or None,
                "external_id": external_id[:200] if external_id else None,
                "actor": f"import:{kind}",
                "created_at": utc(example.created_at) or datetime.now(UTC),
            }
        )
    bar = tqdm(total=len(rows), desc="import", unit="row", disable=not progress)
    try:
        with engine.begin() as connection:
            for start in range(0, len(rows), CHUNK):
                chunk = rows[start : start + CHUNK]
                ids = [r["external_id"] for r in chunk if r["external_id"]]
                hashes = [r["text_hash"] for r in chunk]
                known_ids = (
                    set(
                        connection.scalars(
                            select(labels_table.c.external_id).where(labels_table.c.external_id.in_(ids))
                        )
                    )
                    if ids
                    else set()
                )
                known_hashes = set(
                    connection.scalars(
                        select(labels_table.c.text_hash).where(labels_table.c.text_hash.in_(hashes))
                    )
                )
                fresh = []
                for row in chunk:
                    if row["external_id"] and row["external_id"] in known_ids:
                        report.skip("external id already in the store")
                    elif row["text_hash"] in known_hashes:
                        report.skip("text already in the store")
                    else:
                        fresh.append(row)
                if fresh:
                    connection.execute(labels_table.insert(), fresh)
                report.imported += len(fresh)
                bar.update(len(chunk))
    except SQLAlchemyError as err:
        raise LabelStoreError(f"writing labels failed: {str(err).splitlines()[0]}") from None
    finally:
        bar.close()
    logger.info("import kind=%s imported=%d skipped=%d", kind, report.imported, report.skipped_total)
    return report


# --------------------------------------------------------------------------------------------------
# Reading the site's labels
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SiteLabel:
    """The current label of one distinct text in the store (the newest row for it wins)."""

    id: int
    text_hash: str
    created_at: datetime
    example: LabelledComment
    scores_at_time: dict[str, float] | None
    decision: str
    source: str


def load_site_labels(
    engine: Engine, weight: float = 1.0, where: Callable[[Any], Any] | None = None
) -> list[SiteLabel]:
    """Every distinct labelled text, oldest first, as training examples with ``created_at`` and ``weight``.

    Rows are append-only and a changed mind is a newer row, so for each text hash the newest row is
    the label; when that row has no labels (an ``undo``) the text is unlabelled.
    """
    query = (
        select(labels_table)
        .where(labels_table.c.text.is_not(None))
        .order_by(labels_table.c.created_at, labels_table.c.id)
    )
    if where is not None:
        query = query.where(where(labels_table.c))
    try:
        with engine.connect() as connection:
            rows = list(connection.execute(query).mappings())
    except SQLAlchemyError as err:
        raise LabelStoreError(f"reading labels failed: {str(err).splitlines()[0]}") from None
    newest: dict[str, Any] = {}
    for row in rows:
        hashed = row["text_hash"] or text_hash(row["text"])
        newest.pop(hashed, None)  # keep insertion order = the newest row's time
        newest[hashed] = row
    out: list[SiteLabel] = []
    for hashed, row in newest.items():
        labels = {a: float(v) for a, v in (row["labels"] or {}).items() if a in ATTRIBUTES and v is not None}
        if not labels or not (row["text"] or "").strip():
            continue
        created = utc(row["created_at"]) or datetime.now(UTC)
        example = LabelledComment(
            Comment(
                row["text"],
                name=row["author_name"] or "",
                email=row["author_email"] or "",
                url=row["author_url"] or "",
            ),
            labels,
            source=f"site:{row['source']}",
            external_id=row["external_id"],
            created_at=created,
            weight=weight,
            extra={"label_id": str(row["id"])},
        )
        scores = row["scores_at_time"] if isinstance(row["scores_at_time"], dict) else None
        out.append(
            SiteLabel(int(row["id"]), hashed, created, example, scores, row["decision"], row["source"])
        )
    out.sort(key=lambda s: (s.created_at, s.id))
    return out


def count_labels(engine: Engine, since_id: int = 0) -> tuple[int, int]:
    """(rows with an id above ``since_id``, the highest id) — cheap enough for a scheduler."""
    from sqlalchemy import func

    with engine.connect() as connection:
        count, top = connection.execute(
            select(func.count(), func.max(labels_table.c.id)).where(labels_table.c.id > since_id)
        ).one()
    return int(count or 0), int(top or since_id)
