"""The labelled files users bring: CSV, JSON lines, WordPress (WXR export, ``wp_comments`` dump), Disqus.

:func:`load_labelled_file` dispatches on the kind (:data:`LOADERS`). Loaders return
:class:`~classifier.comment.LabelledComment` values; an attribute a row does not label is left out
(unknown), never set to 0. Bad files raise :class:`~classifier.errors.DatasetError` as
``path:line: message``. The rows a loader skips are reported through an ``on_skip(reason, line)``
callback; :class:`SkipTally` is a ready-made one that counts reasons.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from xml.etree.ElementTree import ParseError

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

from classifier.comment import ATTRIBUTES, Comment, LabelledComment
from classifier.datasets.reading import (
    FALSE_WORDS,
    TRUE_WORDS,
    iter_csv_dicts,
    iter_text_lines,
    parse_fraction,
)
from classifier.errors import DatasetError

# The package's name, as before it was split: log lines and logging settings keep ``classifier.datasets``.
logger = logging.getLogger("classifier.datasets")

#: Called as ``on_skip(reason, line)`` for each row a loader leaves out; ``line`` is None for XML.
SkipCallback = Callable[[str, "int | None"], None]


class SkipTally:
    """An ``on_skip`` callback that counts skipped rows by reason (and logs them at debug level)."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def __call__(self, reason: str, line: int | None) -> None:
        self.counts[reason] += 1
        logger.debug("skipped reason=%r line=%s", reason, line)

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def _skipper(on_skip: SkipCallback | None) -> SkipCallback:
    return on_skip if on_skip is not None else SkipTally()


#: Values of a ``label`` column. Words that name their attribute (spam/ham, toxic/non-toxic) fix it;
#: neutral values (1/0, true/false, yes/no) use the file's label attribute (see :func:`load_csv`).
LABEL_WORDS: dict[str, tuple[str | None, float]] = {
    "spam": ("spam", 1.0),
    "ham": ("spam", 0.0),
    "not_spam": ("spam", 0.0),
    "not spam": ("spam", 0.0),
    "toxic": ("toxicity", 1.0),
    "ok": ("toxicity", 0.0),
    "non-toxic": ("toxicity", 0.0),
    "nontoxic": ("toxicity", 0.0),
    "not_toxic": ("toxicity", 0.0),
    "clean": ("toxicity", 0.0),
    **{v: (None, 1.0) for v in TRUE_WORDS},
    **{v: (None, 0.0) for v in FALSE_WORDS},
}


@dataclass
class _Raw:
    line: int | None
    text: str
    label: str | None
    attributes: dict[str, float]
    name: str = ""
    email: str = ""
    url: str = ""
    external_id: str | None = None
    created_at: datetime | None = None
    extra: dict[str, str] = field(default_factory=dict)


def _parse_datetime(value: str, path: Path, line: int | None) -> datetime | None:
    v = value.strip()
    if not v or v.startswith("0000-00-00"):
        return None
    try:
        return datetime.fromisoformat(v.replace("Z", "+00:00"))
    except ValueError:
        raise DatasetError(f"created_at: not an ISO 8601 date-time: {value!r}", path, line) from None


def _resolve_labels(
    raws: list[_Raw], path: Path, source: str, label_attribute: str | None, on_skip: SkipCallback
) -> list[LabelledComment]:
    """Turn the raw rows of a CSV/JSONL file into labelled comments (see :func:`load_csv`)."""
    if label_attribute is not None and label_attribute not in ATTRIBUTES:
        raise DatasetError(f"label_attribute must be one of {', '.join(ATTRIBUTES)}, got {label_attribute!r}")
    named: dict[str, int] = {}
    for raw in raws:
        if raw.label is None:
            continue
        word = raw.label.strip().lower()
        if word not in LABEL_WORDS:
            raise DatasetError(
                f"unknown label {raw.label!r}; use spam/ham, toxic/ok, 1/0 or true/false", path, raw.line
            )
        attr = LABEL_WORDS[word][0]
        if attr is not None:
            named.setdefault(attr, raw.line or 0)
            if (
                label_attribute is not None
                and attr != label_attribute
                and not (attr == "toxicity" and label_attribute != "spam")
            ):
                raise DatasetError(
                    f"label {raw.label!r} names {attr!r}, but the label attribute is {label_attribute!r}",
                    path,
                    raw.line,
                )
    if label_attribute is None:
        if len(named) > 1:
            lines = sorted(named.values())
            raise DatasetError(
                "the label column mixes spam/ham and toxic/ok values; use one task per file "
                "or per-attribute columns",
                path,
                lines[-1],
            )
        label_attribute = next(iter(named), "spam")

    examples = []
    for raw in raws:
        if not raw.text.strip():
            on_skip("empty text", raw.line)
            continue
        labels = dict(raw.attributes)
        if raw.label is not None and label_attribute not in labels:
            labels[label_attribute] = LABEL_WORDS[raw.label.strip().lower()][1]
        if not labels:
            on_skip("no label", raw.line)
            continue
        examples.append(
            LabelledComment(
                comment=Comment(text=raw.text, name=raw.name, email=raw.email, url=raw.url),
                labels=labels,
                source=source,
                external_id=raw.external_id,
                created_at=raw.created_at,
                extra=raw.extra,
            )
        )
    return examples


def _raw_from_mapping(row: dict[str, Any], path: Path, line: int | None) -> _Raw:
    def text_of(key: str) -> str:
        value = row.get(key)
        if value is None:
            return ""
        if not isinstance(value, str):
            raise DatasetError(f"field {key!r} must be a string, got {type(value).__name__}", path, line)
        return value.strip()

    attributes: dict[str, float] = {}
    for attr in ATTRIBUTES:
        value = row.get(attr)
        if value is None or (isinstance(value, str) and not value.strip()):
            continue
        attributes[attr] = parse_fraction(value, path, line, attr)
    label = row.get("label")
    if label is not None and not isinstance(label, str):
        if isinstance(label, bool | int | float):
            label = str(int(label)) if float(label) in (0.0, 1.0) else str(label)
        else:
            kind = type(label).__name__
            raise DatasetError(f"field 'label' must be a string or 0/1, got {kind}", path, line)
    if isinstance(label, str) and not label.strip():
        label = None
    external_id = row.get("external_id", row.get("id"))
    return _Raw(
        line=line,
        text=text_of("text"),
        label=label,
        attributes=attributes,
        name=text_of("name"),
        email=text_of("email"),
        url=text_of("url"),
        external_id=str(external_id) if external_id not in (None, "") else None,
        created_at=_parse_datetime(text_of("created_at"), path, line),
    )


def load_csv(
    path: Path,
    source: str | None = None,
    label_attribute: str | None = None,
    on_skip: SkipCallback | None = None,
) -> list[LabelledComment]:
    """Read a labelled CSV file (UTF-8, header row).

    Columns: ``text`` (required), and either ``label`` or per-attribute columns named like
    :data:`ATTRIBUTES` (values 0/1, true/false or a fraction in [0, 1]; empty = unknown). Optional:
    ``name``, ``email``, ``url``, ``id`` or ``external_id``, ``created_at`` (ISO 8601).

    ``label`` values: ``spam``/``ham`` label ``spam``; ``toxic``/``ok`` (also ``non-toxic``, ``clean``)
    label ``toxicity``; neutral ``1``/``0``, ``true``/``false``, ``yes``/``no`` label ``label_attribute``,
    which by default is the attribute the file's words name, or ``spam`` if it has none. A per-attribute
    column wins over ``label`` for the same attribute. Rows with empty text or no label are skipped and
    reported to ``on_skip``.
    """
    path = Path(path)
    raws = [
        _raw_from_mapping(row, path, line)
        for line, row in iter_csv_dicts(path, required=("text",), any_of=("label", *ATTRIBUTES))
    ]
    return _resolve_labels(raws, path, source or f"import:{path.name}", label_attribute, _skipper(on_skip))


def load_jsonl(
    path: Path,
    source: str | None = None,
    label_attribute: str | None = None,
    on_skip: SkipCallback | None = None,
) -> list[LabelledComment]:
    """Read labelled JSON lines: one object per line with the same fields as :func:`load_csv`."""
    path = Path(path)
    raws = []
    seen_any = False
    for line, text_line in iter_text_lines(path):
        if not text_line.strip():
            continue
        seen_any = True
        try:
            row = json.loads(text_line)
        except json.JSONDecodeError as exc:
            raise DatasetError(f"invalid JSON: {exc.msg} (column {exc.colno})", path, line) from None
        if not isinstance(row, dict):
            raise DatasetError(f"expected a JSON object, got {type(row).__name__}", path, line)
        if "text" not in row:
            raise DatasetError("missing required field 'text'", path, line)
        if "label" not in row and not any(attr in row for attr in ATTRIBUTES):
            raise DatasetError(f"need a 'label' field or one of {', '.join(ATTRIBUTES)}", path, line)
        raws.append(_raw_from_mapping(row, path, line))
    if not seen_any:
        raise DatasetError("empty file: expected one JSON object per line", path, 1)
    return _resolve_labels(raws, path, source or f"import:{path.name}", label_attribute, _skipper(on_skip))


# WordPress comment_approved -> spam label; None means skip with the given reason.
_WP_STATUS: dict[str, tuple[float | None, str]] = {
    "1": (0.0, ""),
    "approve": (0.0, ""),
    "spam": (1.0, ""),
    "0": (None, "pending (not moderated yet)"),
    "hold": (None, "pending (not moderated yet)"),
    # A moderator removed it, but trash holds duplicates, off-topic and author requests as well as abuse:
    # it says nothing reliable about spam or toxicity.
    "trash": (None, "trash (moderator removed, reason unknown)"),
    "post-trashed": (None, "post-trashed (its post was deleted)"),
}
_WP_SKIP_TYPES = {"pingback", "trackback"}


def wordpress_example(
    fields: dict[str, str], path: Path, line: int | None, source: str, on_skip: SkipCallback
) -> LabelledComment | None:
    """One WordPress comment (WXR, ``wp_comments`` CSV or database row) as an example, or None if skipped.

    ``fields`` are named like the ``wp_comments`` columns; ``comment_approved`` maps as in :func:`load_wxr`,
    and every row left out is reported to ``on_skip`` with the reason.
    """
    status = fields.get("comment_approved", "").strip().lower()
    if status not in _WP_STATUS:
        on_skip(f"unknown comment_approved {status!r}", line)
        return None
    spam, reason = _WP_STATUS[status]
    if spam is None:
        on_skip(reason, line)
        return None
    comment_type = fields.get("comment_type", "").strip().lower()
    if comment_type in _WP_SKIP_TYPES:
        on_skip(f"{comment_type} (not a reader comment)", line)
        return None
    text = fields.get("comment_content", "").strip()
    if not text:
        on_skip("empty text", line)
        return None
    created_at = None
    date = fields.get("comment_date_gmt", "").strip()
    if date and not date.startswith("0000-00-00"):
        try:
            created_at = datetime.strptime(date, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
        except ValueError:
            message = f"comment_date_gmt: expected 'YYYY-MM-DD HH:MM:SS', got {date!r}"
            raise DatasetError(message, path, line) from None
    return LabelledComment(
        comment=Comment(
            text=text,
            name=fields.get("comment_author", "").strip(),
            email=fields.get("comment_author_email", "").strip(),
            url=fields.get("comment_author_url", "").strip(),
        ),
        labels={"spam": spam},
        source=source,
        external_id=fields.get("comment_ID", fields.get("comment_id", "")).strip() or None,
        created_at=created_at,
        extra={"comment_approved": status},
    )


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _iter_xml_end(path: Path, tags: set[str]) -> Iterator[Any]:
    """Stream the elements whose local name is in ``tags``, safely (no DTDs, entities or external refs)."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError("cannot open file: no such file", path)
    if path.stat().st_size == 0:
        raise DatasetError("empty file: expected an XML document", path, 1)
    try:
        for _event, elem in SafeET.iterparse(str(path), events=("end",), forbid_dtd=True):
            if _local(elem.tag) in tags:
                yield elem
    except ParseError as exc:
        line = exc.position[0] if getattr(exc, "position", None) else None
        raise DatasetError(f"malformed XML: {exc.msg if hasattr(exc, 'msg') else exc}", path, line) from None
    except DefusedXmlException as exc:
        line = getattr(exc, "lineno", None)
        raise DatasetError(f"refused unsafe XML ({type(exc).__name__}): {exc}", path, line) from None


def load_wxr(
    path: Path, source: str | None = None, on_skip: SkipCallback | None = None
) -> list[LabelledComment]:
    """Read the comments of a WordPress WXR export (any ``wordpress.org/export/1.x`` namespace).

    ``wp:comment_approved``: ``1`` -> spam 0 (approved ham); ``spam`` -> spam 1; ``0`` (pending) and
    ``trash`` (a moderator removed it, for a reason the export does not record) are skipped, as are
    pingbacks and trackbacks. WXR exports usually leave spam out; use :func:`load_wp_comments_csv` on a
    dump of ``wp_comments`` to get it.
    """
    path = Path(path)
    source = source or f"import:{path.name}"
    skip = _skipper(on_skip)
    examples = []
    for elem in _iter_xml_end(path, {"comment", "item"}):
        if _local(elem.tag) == "item":
            elem.clear()
            continue
        if not elem.tag.startswith("{http://wordpress.org/export/"):
            continue
        fields = {_local(child.tag): (child.text or "") for child in elem}
        fields["comment_ID"] = fields.get("comment_id", "")
        example = wordpress_example(fields, path, None, source, skip)
        if example is not None:
            examples.append(example)
        elem.clear()
    return examples


_WP_CSV_REQUIRED = ("comment_content", "comment_approved")


def load_wp_comments_csv(
    path: Path, source: str | None = None, on_skip: SkipCallback | None = None
) -> list[LabelledComment]:
    """Read a CSV dump of the ``wp_comments`` table (header row with the column names).

    Uses ``comment_ID``, ``comment_author``, ``comment_author_email``, ``comment_author_url``,
    ``comment_date_gmt``, ``comment_content``, ``comment_approved`` and ``comment_type``; the IP is never
    read. Statuses map as in :func:`load_wxr`.
    """
    path = Path(path)
    source = source or f"import:{path.name}"
    skip = _skipper(on_skip)
    examples = []
    for line, row in iter_csv_dicts(path, required=_WP_CSV_REQUIRED):
        example = wordpress_example(row, path, line, source, skip)
        if example is not None:
            examples.append(example)
    return examples


def load_disqus(
    path: Path, source: str | None = None, on_skip: SkipCallback | None = None
) -> list[LabelledComment]:
    """Read the posts of a Disqus XML export.

    ``isSpam`` true -> spam 1. ``isDeleted`` true and not spam -> skipped: the author or a moderator
    deleted it, and the export does not say why. Otherwise spam 0. ``message`` is kept as Disqus stores
    it (HTML); the feature normaliser strips tags.
    """
    path = Path(path)
    source = source or f"import:{path.name}"
    skip = _skipper(on_skip)
    examples = []
    for elem in _iter_xml_end(path, {"post"}):
        fields: dict[str, str] = {}
        author: dict[str, str] = {}
        for child in elem:
            name = _local(child.tag)
            if name == "author":
                author = {_local(a.tag): (a.text or "").strip() for a in child}
            else:
                fields[name] = (child.text or "").strip()
        post_id = next((v for k, v in elem.attrib.items() if _local(k) == "id"), None)
        elem.clear()
        is_spam = fields.get("isSpam", "false").lower() == "true"
        is_deleted = fields.get("isDeleted", "false").lower() == "true"
        if is_deleted and not is_spam:
            skip("deleted (reason unknown)", None)
            continue
        text = fields.get("message", "")
        if not text:
            skip("empty text", None)
            continue
        created_at = None
        if fields.get("createdAt"):
            created_at = _parse_datetime(fields["createdAt"], path, None)
        examples.append(
            LabelledComment(
                comment=Comment(text=text, name=author.get("name", ""), email=author.get("email", "")),
                labels={"spam": float(is_spam)},
                source=source,
                external_id=post_id,
                created_at=created_at,
            )
        )
    return examples


LOADERS: dict[str, Callable[..., list[LabelledComment]]] = {
    "csv": load_csv,
    "jsonl": load_jsonl,
    "wxr": load_wxr,
    "wp-csv": load_wp_comments_csv,
    "disqus": load_disqus,
}


def load_labelled_file(
    kind: str, path: Path, source: str | None = None, on_skip: SkipCallback | None = None, **options: Any
) -> list[LabelledComment]:
    """Load a user-brought labelled file of a kind in :data:`LOADERS` (csv, jsonl, wxr, wp-csv, disqus).

    ``options`` go to the loader (``label_attribute`` for csv and jsonl).
    """
    try:
        loader = LOADERS[kind]
    except KeyError:
        raise DatasetError(f"unknown file kind {kind!r}; use one of {', '.join(LOADERS)}", path) from None
    return loader(Path(path), source=source, on_skip=on_skip, **options)
