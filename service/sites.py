"""Sites: each publication's own rules and thresholds, their audit log, and the compiled cache.

An API key belongs to a site (``ApiKey.site_id``; None is the default site, which every key had
before sites existed), and so does every comment it posts. A site's settings are overrides of the
service-wide ``Settings``: an empty ``settings`` object means today's thresholds and no rules.
Every change of a rule list or of the settings is one transaction with its ``SiteAudit`` row, and
bumps ``Site.rules_version``; scoring processes recompile a site's rules when its version moves.
"""

from __future__ import annotations

import csv
import io
import logging
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service.db import (
    APPROVED,
    DEFAULT_SITE,
    HELD,
    PENDING,
    Comment,
    Moderator,
    Site,
    SiteAudit,
    SiteRule,
    utcnow,
)
from service.rules import RULE_KINDS, AuthorHistory, InvalidEntry, RuleOptions, RuleSet, normalize_entry
from service.settings import Thresholds

logger = logging.getLogger(__name__)

#: Rule files are small: a few thousand lines. Anything bigger is refused before it is parsed.
MAX_CSV_BYTES = 1024 * 1024
MAX_CSV_ROWS = 20_000
CSV_HEADER = ("list", "entry")
#: Settings a site may override, with their types: the policy's thresholds, then the rule options.
THRESHOLD_FIELDS = {"spam_reject": float, "spam_hold": float, "toxicity_hold": float, "max_links": int}
OPTION_FIELDS: dict[str, type] = {
    "hold_disposable_email": bool,
    "hold_email_aliases": bool,
    "trusted_after_approved": int,
    "recent_history_size": int,
    "recent_rejected_share": float,
    "supported_languages": list,
    "score_unsupported_languages": bool,
}


class SiteError(ValueError):
    """A site, rule or setting change we refuse. ``fields`` names each bad field or CSV line."""

    def __init__(self, message: str, fields: Mapping[str, str] | None = None):
        super().__init__(message)
        self.fields = dict(fields or {})


# --- sites -----------------------------------------------------------------------------------------


def ensure_default_site(session: Session) -> Site:
    """The default site, created on first use (idempotent; two processes racing create it once)."""
    site = find_site(session, DEFAULT_SITE)
    if site is not None:
        return site
    try:
        site = Site(name=DEFAULT_SITE, settings={})
        session.add(site)
        session.commit()
        return site
    except IntegrityError:
        session.rollback()
        found = find_site(session, DEFAULT_SITE)
        assert found is not None
        return found


def find_site(session: Session, name: str) -> Site | None:
    return session.scalars(select(Site).where(Site.name == name)).first()


def create_site(session: Session, name: str) -> Site:
    name = name.strip()
    if not name or len(name) > 100 or not name.isprintable():
        raise SiteError("site names are 1 to 100 printable characters", {"name": "1 to 100 characters"})
    if find_site(session, name) is not None:
        raise SiteError(f"site {name!r} exists already", {"name": "taken"})
    site = Site(name=name, settings={})
    session.add(site)
    session.commit()
    return site


def list_sites(session: Session) -> list[Site]:
    return list(session.scalars(select(Site).order_by(Site.id)))


def resolve_site(session: Session, site_id: int | None) -> Site:
    """A comment's or key's site: ``None`` is the default site."""
    site = session.get(Site, site_id) if site_id is not None else None
    return site or ensure_default_site(session)


def comment_condition(site: Site) -> Any:
    """The WHERE clause for "comments of this site" (the default site also has the NULL ones)."""
    if site.name == DEFAULT_SITE:
        return or_(Comment.site_id == site.id, Comment.site_id.is_(None))
    return Comment.site_id == site.id


def moderator_scope(session: Session, moderator: Moderator) -> Any:
    """What a moderator may see: None (every comment) or the WHERE clause of their one site."""
    if moderator.site_id is None:
        return None
    site = session.get(Site, moderator.site_id)
    if site is None:  # the site is gone: see nothing rather than everything
        return Comment.id.is_(None)
    return comment_condition(site)


def can_view(moderator: Moderator, site: Site) -> bool:
    return moderator.site_id is None or moderator.site_id == site.id


def can_edit(moderator: Moderator, site: Site) -> bool:
    """Only admins change rules and thresholds (of their own site, or of every site if they have none)."""
    return moderator.is_admin and can_view(moderator, site)


# --- settings ----------------------------------------------------------------------------------------


def site_thresholds(defaults: Thresholds, overrides: Mapping[str, Any]) -> Thresholds:
    values = {name: overrides[name] for name in THRESHOLD_FIELDS if name in overrides}
    return replace(defaults, **values) if values else defaults


def site_options(overrides: Mapping[str, Any]) -> RuleOptions:
    known = {item.name for item in fields(RuleOptions)}
    values: dict[str, Any] = {name: overrides[name] for name in known if name in overrides}
    if "supported_languages" in values:
        values["supported_languages"] = tuple(values["supported_languages"])
    return RuleOptions(**values)


def validate_settings(changes: Mapping[str, Any], defaults: Thresholds) -> dict[str, Any]:
    """Checked overrides (``None`` removes one); :class:`SiteError` naming every bad field."""
    errors: dict[str, str] = {}
    clean: dict[str, Any] = {}
    for name, value in changes.items():
        kind = THRESHOLD_FIELDS.get(name) or OPTION_FIELDS.get(name)
        if kind is None:
            errors[name] = "not a site setting"
            continue
        if value is None:
            clean[name] = None
            continue
        if kind is bool:
            if not isinstance(value, bool):
                errors[name] = "true or false"
                continue
        elif kind is int:
            if isinstance(value, float) and value.is_integer():
                value = int(value)  # JSON does not tell 30 from 30.0 (neither does JSON Schema)
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 1000:
                errors[name] = "a whole number from 0 to 1000"
                continue
        elif kind is float:
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
                errors[name] = "a number from 0 to 1"
                continue
            value = float(value)
        elif not (
            isinstance(value, list)
            and 0 < len(value) <= 50
            and all(isinstance(item, str) and item.isalpha() and len(item) <= 8 for item in value)
        ):
            errors[name] = 'a list of language codes such as ["en"]'
            continue
        else:
            value = [item.lower() for item in value]
        clean[name] = value
    if errors:
        raise SiteError("Bad site settings.", errors)
    return clean


def update_settings(
    session: Session, site: Site, changes: Mapping[str, Any], defaults: Thresholds, actor: str
) -> dict[str, Any]:
    """Apply checked overrides, audit them, commit. Returns the new overrides."""
    clean = validate_settings(changes, defaults)
    before = dict(site.settings or {})
    after = {**before, **clean}
    after = {name: value for name, value in after.items() if value is not None}
    thresholds = site_thresholds(defaults, after)
    if thresholds.spam_hold > thresholds.spam_reject:
        raise SiteError("Bad site settings.", {"spam_hold": "must not exceed spam_reject"})
    if after != before:
        site.settings = after
        _changed(session, site, actor, "settings", before, after)
    session.commit()
    return after


def _changed(session: Session, site: Site, actor: str, action: str, before: Any, after: Any) -> None:
    site.rules_version = (site.rules_version or 0) + 1
    session.add(SiteAudit(site_id=site.id, actor=actor, action=action, before=before, after=after))


def audit_log(session: Session, site: Site, limit: int = 100) -> list[SiteAudit]:
    return list(
        session.scalars(
            select(SiteAudit).where(SiteAudit.site_id == site.id).order_by(SiteAudit.id.desc()).limit(limit)
        )
    )


# --- rule lists --------------------------------------------------------------------------------------


def rule_entries(session: Session, site: Site) -> dict[str, list[str]]:
    """Every list of the site, each sorted."""
    entries: dict[str, list[str]] = {kind: [] for kind in RULE_KINDS}
    rows = session.execute(
        select(SiteRule.kind, SiteRule.value).where(SiteRule.site_id == site.id).order_by(SiteRule.value)
    )
    for kind, value in rows:
        entries.setdefault(kind, []).append(value)
    return entries


def add_entries(
    session: Session, site: Site, kind: str, values: Iterable[str], actor: str, *, labels: Iterable[str] = ()
) -> list[str]:
    """Add entries to one list, all or none; :class:`SiteError` names each bad one (by ``labels``)."""
    return add_rows(session, site, [(kind, value) for value in values], actor, labels=labels)


def add_rows(
    session: Session,
    site: Site,
    rows: Iterable[tuple[str, str]],
    actor: str,
    *,
    labels: Iterable[str] = (),
    action: str = "add",
) -> list[str]:
    """Add ``(kind, entry)`` rows, all or none. Errors are keyed by ``labels`` (e.g. "line 3")."""
    rows = list(rows)
    names = list(labels) or [f"entries[{index}]" for index in range(len(rows))]
    stored = {(kind, value) for kind, values in rule_entries(session, site).items() for value in values}
    errors: dict[str, str] = {}
    seen: dict[tuple[str, str], str] = {}
    clean: list[tuple[str, str]] = []
    for name, (kind, raw) in zip(names, rows, strict=True):
        try:
            value = normalize_entry(kind, raw)
        except InvalidEntry as error:
            errors[name] = str(error)
            continue
        if (kind, value) in seen:
            errors[name] = f"duplicate of {seen[(kind, value)]} ({value!r})"
            continue
        if (kind, value) in stored:
            errors[name] = f"{value!r} is already on the {kind} list"
            continue
        seen[(kind, value)] = name
        clean.append((kind, value))
    if errors:
        raise SiteError(
            f"{len(errors)} bad entr{'y' if len(errors) == 1 else 'ies'}; nothing was saved.", errors
        )
    if not clean:
        raise SiteError("No entries given.", {"entries": "at least one entry"})
    for kind, value in clean:
        session.add(SiteRule(site_id=site.id, kind=kind, value=value, created_by=actor, created_at=utcnow()))
    _changed(session, site, actor, action, None, [{"list": kind, "entry": value} for kind, value in clean])
    session.commit()
    return [value for _, value in clean]


def remove_entry(session: Session, site: Site, kind: str, raw: str, actor: str) -> str:
    try:
        value = normalize_entry(kind, raw)
    except InvalidEntry as error:
        raise SiteError("Bad entry.", {"entry": str(error)}) from None
    row = session.scalars(
        select(SiteRule).where(SiteRule.site_id == site.id, SiteRule.kind == kind, SiteRule.value == value)
    ).first()
    if row is None:
        raise SiteError(f"{value!r} is not on the {kind} list.", {"entry": "not on the list"})
    session.delete(row)
    _changed(session, site, actor, "remove", {"list": kind, "entry": value}, None)
    session.commit()
    return value


def export_csv(session: Session, site: Site) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    for kind, values in rule_entries(session, site).items():
        for value in values:
            writer.writerow((kind, value))
    return out.getvalue()


def parse_csv(raw: bytes) -> tuple[list[tuple[str, str]], list[str]]:
    """``(rows, labels)`` from a rule file (``list,entry`` per line); :class:`SiteError` naming the line.

    Checked whole before anything is saved: too big, not UTF-8, wrong columns.
    """
    if len(raw) > MAX_CSV_BYTES:
        raise SiteError(
            f"The file is {len(raw):,} bytes; rule files may have at most {MAX_CSV_BYTES:,}.",
            {"file": "too large"},
        )
    lines = raw.splitlines()
    errors: dict[str, str] = {}
    for number, line in enumerate(lines, start=1):
        try:
            line.decode("utf-8")
        except UnicodeDecodeError as error:
            errors[f"line {number}"] = f"not UTF-8 text (byte {error.start + 1})"
    if errors:
        raise SiteError("The file is not UTF-8 text; nothing was saved.", errors)
    if len(lines) > MAX_CSV_ROWS + 1:
        raise SiteError(f"At most {MAX_CSV_ROWS:,} entries per file.", {"file": "too many lines"})
    text = raw.decode("utf-8").lstrip("\ufeff")
    rows: list[tuple[str, str]] = []
    labels: list[str] = []
    reader = csv.reader(io.StringIO(text))
    try:
        for record in reader:
            number = reader.line_num
            if not record or all(not cell.strip() for cell in record):
                continue
            if number == 1 and tuple(cell.strip().lower() for cell in record) == CSV_HEADER:
                continue
            if len(record) != 2:
                errors[f"line {number}"] = "expected two columns: list,entry"
                continue
            rows.append((record[0].strip(), record[1]))
            labels.append(f"line {number}")
    except csv.Error as error:
        errors[f"line {reader.line_num}"] = f"not valid CSV ({error})"
    if errors:
        raise SiteError("The file has bad lines; nothing was saved.", errors)
    if not rows:
        raise SiteError("The file has no entries.", {"file": "no entries"})
    return rows, labels


def import_csv(session: Session, site: Site, raw: bytes, actor: str) -> list[str]:
    rows, labels = parse_csv(raw)
    return add_rows(session, site, rows, actor, labels=labels, action="import")


# --- what scoring needs ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SiteConfig:
    """A site as scoring sees it: compiled rules and effective thresholds."""

    site_id: int | None
    name: str
    version: int
    thresholds: Thresholds
    rules: RuleSet


def compile_site(session: Session, site: Site, defaults: Thresholds) -> SiteConfig:
    overrides = site.settings or {}
    rules = RuleSet.compile(rule_entries(session, site), site_options(overrides))
    return SiteConfig(
        site.id, site.name, site.rules_version or 0, site_thresholds(defaults, overrides), rules
    )


class SiteCache:
    """Compiled sites per process. :meth:`refresh` (once per batch) recompiles the sites that changed."""

    def __init__(self, defaults: Thresholds):
        self.defaults = defaults
        self._sites: dict[int, SiteConfig] = {}
        self._default_id: int | None = None
        self._lock = threading.Lock()

    def refresh(self, session: Session) -> None:
        """One small query: each site's version; only changed sites are compiled again."""
        versions: dict[int, int] = {
            row[0]: row[1] for row in session.execute(select(Site.id, Site.rules_version))
        }
        with self._lock:
            stale = [
                site_id
                for site_id, version in versions.items()
                if site_id not in self._sites or self._sites[site_id].version != (version or 0)
            ]
            for site_id in list(self._sites):
                if site_id not in versions:
                    del self._sites[site_id]
        for site_id in stale:
            site = session.get(Site, site_id)
            if site is None:
                continue
            config = compile_site(session, site, self.defaults)
            with self._lock:
                self._sites[site_id] = config
                if site.name == DEFAULT_SITE:
                    self._default_id = site_id

    def get(self, site_id: int | None) -> SiteConfig:
        """The site's config (the default site's for None); no rules at all if it is unknown."""
        with self._lock:
            key = site_id if site_id is not None else self._default_id
            config = self._sites.get(key) if key is not None else None
        return config or SiteConfig(site_id, DEFAULT_SITE, -1, self.defaults, RuleSet())


def author_history(session: Session, config: SiteConfig, email: str) -> AuthorHistory | None:
    """The author's record on this site (same e-mail, as WordPress matches), when a rule needs it."""
    options = config.rules.options
    if not options.needs_history or not email:
        return None
    site_filter = (
        or_(Comment.site_id == config.site_id, Comment.site_id.is_(None))
        if config.name == DEFAULT_SITE
        else Comment.site_id == config.site_id
    )
    mine = [Comment.author_email == email, site_filter]
    approved = 0
    if options.trusted_after_approved > 0:
        approved = session.scalar(select(func.count()).where(*mine, Comment.status == APPROVED)) or 0
    recent: list[str] = []
    if options.recent_history_size > 0:
        recent = list(
            session.scalars(
                select(Comment.status)
                .where(*mine, Comment.status.not_in((PENDING, HELD)))
                .order_by(Comment.received_at.desc())
                .limit(options.recent_history_size)
            )
        )
    return AuthorHistory(approved=int(approved), recent=recent)
