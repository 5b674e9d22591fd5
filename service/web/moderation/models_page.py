"""The moderators' Models page: model versions, their cards, which one is active, and the guard's reports.

Read-only: promotion and rollback stay on the command line (``python -m classifier models ...``).
Cards and reports are data, not markup: the templates escape every value, and the Markdown reports are
parsed here into plain blocks (headings, list items, tables, images) that the template escapes too.
Report files are served only from the reports directory, by a strictly checked file name.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from flask import render_template, send_file, url_for
from flask.typing import ResponseReturnValue
from sqlalchemy import select

from classifier.errors import ClassifierError
from classifier.registry import Registry
from service.db import ModelVersion
from service.errors import NotFound
from service.retraining import reports_dir
from service.sites import moderator_scope
from service.web.context import current_runtime
from service.web.moderation.queries import QUEUES, queue_counts
from service.web.moderation.session import current_moderator

#: The only report file names served: no directories, no other types.
REPORT_NAME = re.compile(r"[A-Za-z0-9._-]+\.(png|md)")
VERSION_NAME = re.compile(r"[A-Za-z0-9._-]{1,100}")
#: Reports larger than this are not rendered (the guard writes a few kilobytes).
MAX_REPORT_BYTES = 1 << 20
MAX_LISTED_REPORTS = 50
REPORT_TYPES = {"png": "image/png", "md": "text/plain; charset=utf-8"}
#: Card keys that may carry headline metrics, if a card has them.
METRIC_KEYS = ("metrics", "headline_metrics", "evaluation")
PROMOTE_HINT = "python -m classifier models promote|rollback VERSION"


# --- report files ----------------------------------------------------------------------------------


def report_file(directory: Path, name: str) -> Path | None:
    """``directory/name`` if ``name`` is a plain report file name and the file is directly inside it."""
    if not REPORT_NAME.fullmatch(name or "") or name.startswith("."):
        return None
    root = directory.resolve()
    path = (root / name).resolve()
    if path.parent != root or not path.is_file():
        return None
    return path


def stored_report(directory: Path, report_path: str | None) -> Path | None:
    """The report a ``model_versions`` row names, only if it lies in the reports directory."""
    if not report_path:
        return None
    return report_file(directory, Path(report_path).name)


def reports_for(directory: Path, version: str) -> list[Path]:
    """Reports written for ``version`` as the candidate, newest first (for versions without a row)."""
    if not VERSION_NAME.fullmatch(version) or not directory.is_dir():
        return []
    prefix = f"model-{version}-vs-"
    found = [
        path
        for path in directory.iterdir()
        if path.name.startswith(prefix) and report_file(directory, path.name) and path.suffix == ".md"
    ]
    return sorted(found, key=lambda path: path.stat().st_mtime, reverse=True)


# --- rendering a report's Markdown -------------------------------------------------------------------


@dataclass
class Block:
    """One piece of a report: ``kind`` is heading, item, text, table or image; the template escapes."""

    kind: str
    text: str = ""
    level: int = 2
    rows: list[list[str]] = field(default_factory=list)
    src: str = ""


_IMAGE = re.compile(r"!\[([^\]]*)\]\(([^)\s]+)\)")
_TABLE_RULE = re.compile(r"\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?")


def _plain(text: str) -> str:
    return text.replace("**", "").replace("`", "").strip()


def _cells(line: str) -> list[str]:
    return [_plain(cell) for cell in line.strip().strip("|").split("|")]


def parse_report(text: str, image_url: Any) -> list[Block]:
    """The guard's Markdown as blocks. ``image_url(name)`` gives the URL of a report image, or None."""
    blocks: list[Block] = []
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        line = lines[index].rstrip()
        index += 1
        if not line.strip():
            continue
        if line.startswith("#"):
            level = min(len(line) - len(line.lstrip("#")), 4)
            blocks.append(Block("heading", _plain(line.lstrip("#")), level=max(level, 2)))
        elif line.startswith("|"):
            rows = [_cells(line)]
            while index < len(lines) and lines[index].startswith("|"):
                if not _TABLE_RULE.fullmatch(lines[index].strip()):
                    rows.append(_cells(lines[index]))
                index += 1
            blocks.append(Block("table", rows=rows))
        elif image := _IMAGE.fullmatch(line.strip()):
            src = image_url(image.group(2))
            if src:
                blocks.append(Block("image", _plain(image.group(1)), src=src))
            else:
                blocks.append(Block("text", line.strip()))
        elif line.startswith(("- ", "* ")):
            blocks.append(Block("item", _plain(line[2:])))
        else:
            blocks.append(Block("text", _plain(line)))
    return blocks


def read_report(directory: Path, path: Path) -> list[Block] | str:
    """The report's blocks, or a message saying why it cannot be shown."""
    try:
        if path.stat().st_size > MAX_REPORT_BYTES:
            return "The report is too large to show here."
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as error:
        return f"The report cannot be read: {error.strerror or error}"

    def image_url(name: str) -> str | None:
        if report_file(directory, name) is None or not name.endswith(".png"):
            return None
        return url_for("moderation.report", name=name)

    return parse_report(text, image_url)


# --- the versions ------------------------------------------------------------------------------------


@dataclass
class VersionView:
    version: str
    created_at: str
    state: str
    #: The registry's ``active`` pointer names this version.
    active: bool
    card: dict[str, Any]
    sklearn_version: str
    rows_total: int | None
    rows_summary: list[tuple[str, int]]
    rows_more: int
    heads: list[tuple[str, Any, Any]]
    metrics: list[tuple[str, Any]]
    notes: list[str]
    report_name: str | None
    error: str | None = None
    in_registry: bool = True
    #: The database row disagrees with the registry pointer (a CLI change not yet synced).
    mismatch: bool = False


def _created(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds")
    return str(value or "")


def _metrics(card: dict[str, Any]) -> list[tuple[str, Any]]:
    """Numbers from the card's metrics section (flattened one level), if it has one."""
    for key in METRIC_KEYS:
        section = card.get(key)
        if not isinstance(section, dict):
            continue
        out: list[tuple[str, Any]] = []
        for name, value in section.items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                out.append((str(name), round(value, 4)))
            elif isinstance(value, dict):
                out += [
                    (f"{name} {inner}", round(number, 4))
                    for inner, number in value.items()
                    if isinstance(number, int | float) and not isinstance(number, bool)
                ]
        return out[:8]
    return []


def _view(card: dict[str, Any], row: ModelVersion | None, directory: Path, in_registry: bool) -> VersionView:
    active = bool(card.get("active"))
    by_source = card.get("rows_by_source")
    sources = (
        sorted(
            ((str(name), count) for name, count in by_source.items() if isinstance(count, int)),
            key=lambda item: -item[1],
        )
        if isinstance(by_source, dict)
        else []
    )
    heads = card.get("heads")
    head_rows = (
        [
            (str(name), info.get("positives"), info.get("rows"))
            for name, info in heads.items()
            if isinstance(info, dict)
        ]
        if isinstance(heads, dict)
        else []
    )
    notes = card.get("notes")
    report = stored_report(directory, row.report_path) if row is not None else None
    if report is None and row is None:
        found = reports_for(directory, str(card.get("version", "")))
        report = found[0] if found else None
    if row is not None:
        state = row.state
    else:
        state = "active" if active else "inactive"
    return VersionView(
        version=str(card.get("version", "")),
        created_at=_created(card.get("created_at") or (row.created_at if row is not None else "")),
        state=state,
        active=active,
        card=card,
        sklearn_version=str(card.get("sklearn_version") or "—"),
        rows_total=sum(count for _, count in sources) if sources else None,
        rows_summary=sources[:4],
        rows_more=max(0, len(sources) - 4),
        heads=head_rows,
        metrics=_metrics(card),
        notes=[str(note) for note in notes] if isinstance(notes, list) else [],
        report_name=report.name if report is not None else None,
        error=str(card["error"]) if card.get("error") else None,
        in_registry=in_registry,
        mismatch=in_registry and row is not None and (row.state == "active") != active,
    )


def version_views() -> list[VersionView]:
    runtime = current_runtime()
    directory = reports_dir(runtime.settings)
    with runtime.session() as db:
        rows = {row.version: row for row in db.scalars(select(ModelVersion))}
        db.expunge_all()
    cards = Registry(runtime.settings.registry_dir).versions()
    views = [_view(card, rows.get(card["version"]), directory, True) for card in cards]
    listed = {card["version"] for card in cards}
    for version, row in rows.items():
        if version not in listed:
            card = dict(row.card or {}, version=version, active=False)
            views.append(_view(card, row, directory, False))
    views.sort(key=lambda view: (view.created_at, view.version), reverse=True)
    return views


def listed_reports(directory: Path) -> list[Path]:
    if not directory.is_dir():
        return []
    found = [
        path for path in directory.iterdir() if path.suffix == ".md" and report_file(directory, path.name)
    ]
    found.sort(key=lambda path: path.stat().st_mtime, reverse=True)
    return found[:MAX_LISTED_REPORTS]


def _nav() -> dict[str, Any]:
    with current_runtime().session() as db:
        counts = queue_counts(db, scope=moderator_scope(db, current_moderator()))
    return {"queues": QUEUES, "counts": counts, "moderator": current_moderator(), "models_page": True}


def pretty(value: Any) -> str:
    """A card value as text: strings as they are, anything else as indented JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)


# --- views (``pages`` routes them, on the moderation blueprint) -------------------------------------


def models() -> str:
    directory = reports_dir(current_runtime().settings)
    return render_template(
        "moderation/models.html",
        versions=version_views(),
        reports=listed_reports(directory),
        promote_hint=PROMOTE_HINT,
        **_nav(),
    )


def model(version: str) -> str:
    if not VERSION_NAME.fullmatch(version):
        raise NotFound("No such model version.")
    view = next((item for item in version_views() if item.version == version), None)
    if view is None:
        raise NotFound("No such model version.")
    if view.in_registry:
        try:
            card = Registry(current_runtime().settings.registry_dir).card(version)
        except ClassifierError as error:
            card = {"version": version, "error": str(error)}
        card.pop("active", None)
    else:
        card = {key: value for key, value in view.card.items() if key != "active"}
    directory = reports_dir(current_runtime().settings)
    report: list[Block] | str | None = None
    if view.report_name:
        path = report_file(directory, view.report_name)
        report = read_report(directory, path) if path else "The report file is gone."
    return render_template(
        "moderation/model.html",
        view=view,
        card_items=[(key, pretty(value)) for key, value in sorted(card.items())],
        report=report,
        promote_hint=PROMOTE_HINT,
        **_nav(),
    )


def report(name: str) -> ResponseReturnValue:
    path = report_file(reports_dir(current_runtime().settings), name)
    if path is None:
        raise NotFound("No such report file.")
    return send_file(path, mimetype=REPORT_TYPES[path.suffix[1:]], max_age=0)
