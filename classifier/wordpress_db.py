"""A WordPress site's comment history, read straight from its MariaDB/MySQL database.

WXR exports leave spam out, so they teach only what good comments look like; the ``wp_comments``
table has both. Rows map as the other WordPress importers map them (``classifier.datasets.files``):
approved -> spam 0, spam -> spam 1; pending, trash, pingbacks and trackbacks are skipped with a
reason. The author's IP is never read.

Used by ``python -m classifier import wp-db mysql://user:password@host:port/database``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pymysql
import pymysql.cursors

from classifier.comment import LabelledComment
from classifier.datasets import SkipCallback, SkipTally, wordpress_example  # the WXR and CSV row mapping
from classifier.errors import DatasetError

DEFAULT_TABLE_PREFIX = "wp_"
_PREFIX = re.compile(r"^[A-Za-z0-9_]{1,64}$")
_COLUMNS = (
    "comment_ID",
    "comment_author",
    "comment_author_email",
    "comment_author_url",
    "comment_date_gmt",
    "comment_content",
    "comment_approved",
    "comment_type",
)


@dataclass(frozen=True)
class SiteDatabase:
    """Where a WordPress site keeps its tables."""

    host: str
    port: int
    user: str
    password: str
    database: str
    table_prefix: str = DEFAULT_TABLE_PREFIX

    @classmethod
    def from_url(cls, url: str, table_prefix: str = DEFAULT_TABLE_PREFIX) -> SiteDatabase:
        """``mysql://user:password@host:port/database`` (``mariadb://`` too; port 3306 by default)."""
        parts = urlsplit(url)
        if parts.scheme not in ("mysql", "mariadb") or not parts.hostname:
            raise DatasetError(
                "expected a database URL like mysql://user:password@host:3306/wordpress", cls._safe(url)
            )
        database = parts.path.lstrip("/")
        if not database:
            raise DatasetError("the URL names no database (…/wordpress at the end)", cls._safe(url))
        if not _PREFIX.match(table_prefix):
            message = f"table prefix {table_prefix!r}: use letters, digits and _ only"
            raise DatasetError(message, cls._safe(url))
        try:
            port = parts.port or 3306
        except ValueError:
            raise DatasetError("the port is not a number", cls._safe(url)) from None
        return cls(
            host=parts.hostname,
            port=port,
            user=unquote(parts.username or "root"),
            password=unquote(parts.password or ""),
            database=unquote(database),
            table_prefix=table_prefix,
        )

    @staticmethod
    def _safe(url: str) -> str:
        # Error messages name the database, never the password.
        return re.sub(r"//([^:/@]*):[^@]*@", r"//\1:***@", url)

    @property
    def table(self) -> str:
        return f"{self.table_prefix}comments"

    @property
    def label(self) -> Path:
        """How error messages name the table, as a file would be named: ``host:port/database/wp_comments``."""
        return Path(f"{self.host}:{self.port}", self.database, self.table)


def _text(value: Any) -> str:
    """A column value as the CSV and WXR importers see it (text; dates as ``YYYY-MM-DD HH:MM:SS``)."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _rows(site: SiteDatabase) -> Iterator[dict[str, str]]:
    """Every row of ``<prefix>comments`` in id order, streamed (an unbuffered cursor)."""
    try:
        connection = pymysql.connect(
            host=site.host,
            port=site.port,
            user=site.user,
            password=site.password,
            database=site.database,
            charset="utf8mb4",
            connect_timeout=10,
            cursorclass=pymysql.cursors.SSDictCursor,
        )
    except pymysql.MySQLError as error:
        raise DatasetError(f"cannot connect: {error.args[-1]}", site.label) from None
    try:
        with connection.cursor() as cursor:
            columns = ", ".join(f"`{column}`" for column in _COLUMNS)
            try:
                cursor.execute(f"SELECT {columns} FROM `{site.table}` ORDER BY comment_ID")
            except pymysql.MySQLError as error:
                hint = " (is --table-prefix right?)" if error.args and error.args[0] == 1146 else ""
                raise DatasetError(f"cannot read the table: {error.args[-1]}{hint}", site.label) from None
            for row in cursor:
                yield {name: _text(value) for name, value in row.items()}
    finally:
        connection.close()


def load_wp_database(
    site: SiteDatabase, source: str = "import:wp-db", on_skip: SkipCallback | None = None
) -> list[LabelledComment]:
    """The site's moderated comments as labelled examples; skipped rows go to ``on_skip``."""
    skip = on_skip if on_skip is not None else SkipTally()
    examples = []
    for row in _rows(site):
        example = wordpress_example(row, site.label, None, source, skip)
        if example is not None:
            examples.append(example)
    return examples
