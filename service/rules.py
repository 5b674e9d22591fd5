"""A site's own rules, compiled once and checked on every comment: pure, no Flask, no database.

Lists (``RULE_KINDS``): banned and suspect words and phrases, e-mail domains to ban or hold, link
domains to trust or block, and banned authors (e-mail or IP). Words are matched on the normalised
text (``classifier.text.normalize``: look-alike letters, leetspeak and zero-width tricks undone), as
whole words; ``*`` stands for any letters or digits inside a word (``idiot*`` also finds
``idiots``). Thousands of entries cost one Aho-Corasick pass over the text (``pyahocorasick``): each
entry's longest literal part is a key of one automaton, and only the entries whose key occurs are
checked further (word boundaries; a wildcard entry's own pattern).

:meth:`RuleSet.evaluate` turns a comment into a ``policy.RuleOutcome``; ``policy.apply_policy``
decides what it means.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import ahocorasick
from disposable_email_domains import blocklist as disposable_domains

from classifier.text import Normalized, count_links, find_urls, normalize
from service.policy import (
    AUTHOR_BANNED,
    BANNED_WORD,
    DISPOSABLE_EMAIL,
    EMAIL_ALIAS,
    EMAIL_BANNED,
    EMAIL_HELD,
    HOLD,
    LINK_BLOCKED,
    RECENT_REJECTIONS,
    REJECT,
    SUSPECT_WORD,
    UNSUPPORTED_LANGUAGE,
    RuleHit,
    RuleOutcome,
)

BANNED = "banned_word"
SUSPECT = "suspect_word"
EMAIL_BAN = "email_ban_domain"
EMAIL_HOLD = "email_hold_domain"
LINK_TRUSTED = "link_trusted_domain"
LINK_BLOCKED_KIND = "link_blocked_domain"
AUTHOR_EMAIL = "author_banned_email"
AUTHOR_IP = "author_banned_ip"
#: Every list a site has, and what it holds.
RULE_KINDS: dict[str, str] = {
    BANNED: "banned words and phrases (reject)",
    SUSPECT: "suspect words and phrases (hold)",
    EMAIL_BAN: "e-mail domains to reject",
    EMAIL_HOLD: "e-mail domains to hold",
    LINK_TRUSTED: "link domains that never count against the link limit",
    LINK_BLOCKED_KIND: "link domains to reject",
    AUTHOR_EMAIL: "banned authors' e-mail addresses (reject)",
    AUTHOR_IP: "banned authors' IP addresses (reject)",
}
WORD_KINDS = (BANNED, SUSPECT)
DOMAIN_KINDS = (EMAIL_BAN, EMAIL_HOLD, LINK_TRUSTED, LINK_BLOCKED_KIND)
MAX_ENTRY_CHARS = 200

# Characters that make an entry look like a regular expression, which we do not run ("!", "$", "|"
# and "+" are leetspeak letters here, so they are allowed).
_REGEX_LOOKING = re.compile(r"[\\^\[\](){}?]|\.[*+]")
_DOMAIN = re.compile(
    r"^(?=.{1,200}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)+$"
)
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,200}$")
# A placeholder for "*" while an entry is normalised (normalisation would split a word at "*").
_STAR = "zqxjq"
_WHITESPACE = str.maketrans({"\t": " ", "\n": " ", "\r": " ", "\f": " ", "\v": " "})
_OTHER_WHITESPACE = re.compile(r"[\t\n\r\f\v]")


class InvalidEntry(ValueError):
    """A rule entry we refuse; the message says why, in words an editor understands."""


def normalize_entry(kind: str, raw: str) -> str:
    """The stored form of an entry, or :class:`InvalidEntry`. Two entries are duplicates if equal here."""
    if kind not in RULE_KINDS:
        raise InvalidEntry(f"unknown list {kind!r}; choose from {', '.join(RULE_KINDS)}")
    if not isinstance(raw, str):
        raise InvalidEntry("an entry is text")
    value = raw.strip()
    if not value:
        raise InvalidEntry("the entry is empty")
    if len(value) > MAX_ENTRY_CHARS:
        raise InvalidEntry(f"the entry is longer than {MAX_ENTRY_CHARS} characters")
    if not value.isprintable():
        raise InvalidEntry("the entry has control characters")
    if kind in WORD_KINDS:
        return _normalize_word(value)
    if kind in DOMAIN_KINDS:
        return _normalize_domain(value)
    if kind == AUTHOR_EMAIL:
        if not _EMAIL.match(value):
            raise InvalidEntry("not an e-mail address")
        return value.lower()
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise InvalidEntry("not an IP address") from None


def _normalize_word(value: str) -> str:
    if _REGEX_LOOKING.search(value):
        raise InvalidEntry("entries are words or phrases with * wildcards, not regular expressions")
    if not value.replace("*", "").strip():
        raise InvalidEntry("an entry of wildcards only would match every word")
    normalized = " ".join(normalize(value.replace("*", _STAR)).text.split()).replace(_STAR, "*")
    normalized = re.sub(r"\*+", "*", normalized)
    if not _literal_key(normalized):
        raise InvalidEntry("the entry has no letters or digits to match")
    return normalized


def _normalize_domain(value: str) -> str:
    host = _host(value.lstrip("@"))
    try:
        host = host.encode("idna").decode("ascii")
    except UnicodeError:
        raise InvalidEntry("not a domain name") from None
    if not _DOMAIN.match(host):
        raise InvalidEntry("not a domain name (such as example.com)")
    return host


def _literal_key(entry: str) -> str:
    """The longest literal piece of an entry: what the automaton looks for."""
    return max(entry.split("*"), key=len).strip()


def _host(url: str) -> str:
    """The host of a URL or bare domain, lower-cased, without ``www.``, port or user."""
    host = re.sub(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", "", url.strip())
    host = re.split(r"[/?#]", host, maxsplit=1)[0].rsplit("@", 1)[-1].split(":", 1)[0]
    host = host.strip(".").lower()
    return host[4:] if host.startswith("www.") else host


def _listed(domain: str, domains: frozenset[str] | set[str]) -> str | None:
    """The entry of ``domains`` that covers ``domain`` (itself or a parent domain), if any."""
    if not domains:
        return None
    if domain in domains:
        return domain
    position = domain.find(".")
    while position >= 0:
        parent = domain[position + 1 :]
        if parent in domains:
            return parent
        position = domain.find(".", position + 1)
    return None


@dataclass(frozen=True)
class _Entry:
    tag: Hashable
    #: Set for wildcard entries, which the literal key alone cannot confirm.
    pattern: re.Pattern[str] | None


class WordList:
    """Many words and phrases, found in one pass over the text (Aho-Corasick).

    Entries are ``(tag, entry)`` pairs; :meth:`find` answers with the tags of the entries found.
    """

    def __init__(self, entries: Iterable[tuple[Hashable, str]]):
        groups: dict[str, list[_Entry]] = {}
        for tag, value in entries:
            pattern = None
            if "*" in value:
                body = r"\w*".join(re.escape(part) for part in value.split("*"))
                pattern = re.compile(rf"(?<!\w){body}(?!\w)")
            groups.setdefault(_literal_key(value), []).append(_Entry(tag, pattern))
        self.size = sum(len(group) for group in groups.values())
        self._automaton: ahocorasick.Automaton | None = None
        if groups:
            automaton = ahocorasick.Automaton()
            for key, group in groups.items():
                automaton.add_word(key, (len(key), tuple(group)))
            automaton.make_automaton()
            self._automaton = automaton

    def find(self, text: str) -> list[tuple[Hashable, int, int]]:
        """``(tag, begin, end)`` for each entry found in ``text`` (normalised), first match each."""
        if self._automaton is None or not text:
            return []
        found: dict[Hashable, tuple[int, int]] = {}
        checked: set[Hashable] = set()
        size = len(text)
        for end_index, (length, group) in self._automaton.iter(text):
            begin, end = end_index - length + 1, end_index + 1
            # Whole words: the key must not continue a word on either side (wildcards check their own).
            before = text[begin - 1] if begin else " "
            after = text[end] if end < size else " "
            bounded = not (before.isalnum() or before == "_" or after.isalnum() or after == "_")
            for entry in group:
                if entry.pattern is None:
                    if bounded and entry.tag not in found:
                        found[entry.tag] = (begin, end)
                elif entry.tag not in checked:
                    # A wildcard entry is checked once, over the whole text, the first time its key occurs.
                    checked.add(entry.tag)
                    match = entry.pattern.search(text)
                    if match is not None:
                        found[entry.tag] = match.span()
        return [(tag, begin, end) for tag, (begin, end) in found.items()]


@dataclass(frozen=True)
class RuleOptions:
    """A site's switches (all off by default except the language hold, as the issue asks)."""

    hold_disposable_email: bool = False
    hold_email_aliases: bool = False
    #: Authors with at least this many approved comments (same e-mail) are trusted; 0 = off.
    trusted_after_approved: int = 0
    #: Hold authors whose last N decided comments were mostly rejected; 0 = off.
    recent_history_size: int = 0
    recent_rejected_share: float = 0.5
    #: Languages the models know (their training data is English).
    supported_languages: tuple[str, ...] = ("en",)
    #: Score comments in other languages anyway instead of holding them.
    score_unsupported_languages: bool = False

    @property
    def needs_history(self) -> bool:
        return self.trusted_after_approved > 0 or self.recent_history_size > 0


@dataclass(frozen=True)
class AuthorHistory:
    """What the site knows of an author (same e-mail): approved comments, and recent verdicts."""

    approved: int = 0
    #: Statuses of the author's most recent decided comments, newest first.
    recent: Sequence[str] = ()


@dataclass(frozen=True, slots=True)
class CommentFacts:
    text: str
    email: str = ""
    ip: str | None = None
    #: The detected language, or None when unsure (then no language rule fires).
    language: str | None = None
    history: AuthorHistory | None = None
    #: ``normalize(text)`` when the caller has it already (the model's, from scoring).
    normalized: Normalized | None = None


@dataclass
class RuleSet:
    """One site's lists and options, compiled."""

    #: Banned and suspect entries in one automaton, each tagged ``(reason, entry)``: one pass.
    words: WordList = field(default_factory=lambda: WordList(()))
    email_ban: frozenset[str] = frozenset()
    email_hold: frozenset[str] = frozenset()
    link_trusted: frozenset[str] = frozenset()
    link_blocked: frozenset[str] = frozenset()
    author_emails: frozenset[str] = frozenset()
    author_ips: frozenset[str] = frozenset()
    options: RuleOptions = field(default_factory=RuleOptions)

    @classmethod
    def compile(cls, entries: Mapping[str, Iterable[str]], options: RuleOptions | None = None) -> RuleSet:
        """From stored (already normalised) entries per kind."""

        def values(kind: str) -> frozenset[str]:
            return frozenset(entries.get(kind, ()))

        return cls(
            words=WordList(
                [((BANNED_WORD, value), value) for value in values(BANNED)]
                + [((SUSPECT_WORD, value), value) for value in values(SUSPECT)]
            ),
            email_ban=values(EMAIL_BAN),
            email_hold=values(EMAIL_HOLD),
            link_trusted=values(LINK_TRUSTED),
            link_blocked=values(LINK_BLOCKED_KIND),
            author_emails=values(AUTHOR_EMAIL),
            author_ips=values(AUTHOR_IP),
            options=options or RuleOptions(),
        )

    def evaluate(self, comment: CommentFacts) -> RuleOutcome:
        """Every rule that fires on ``comment`` (rejecting ones first), the link count, author trust."""
        hits: list[RuleHit] = []
        hits += self._author_hits(comment)
        hits += self._link_hits(comment.text)
        hits += self._word_hits(comment.text, comment.normalized)
        hits += self._email_hits(comment.email)
        hits += self._history_hits(comment.history)
        options = self.options
        if (
            comment.language is not None
            and comment.language not in options.supported_languages
            and not options.score_unsupported_languages
        ):
            hits.append(
                RuleHit(UNSUPPORTED_LANGUAGE, HOLD, ",".join(options.supported_languages), comment.language)
            )
        hits.sort(key=lambda hit: hit.action != REJECT)  # stable: the order above within each action
        trusted = (
            options.trusted_after_approved > 0
            and comment.history is not None
            and comment.history.approved >= options.trusted_after_approved
        )
        return RuleOutcome(hits, self.link_count(comment.text), trusted)

    def _author_hits(self, comment: CommentFacts) -> list[RuleHit]:
        hits = []
        email = (comment.email or "").strip().lower()
        if email and email in self.author_emails:
            hits.append(RuleHit(AUTHOR_BANNED, REJECT, email, email))
        if comment.ip and self.author_ips:
            try:
                ip = str(ipaddress.ip_address(comment.ip.strip()))
            except ValueError:
                ip = comment.ip
            if ip in self.author_ips:
                hits.append(RuleHit(AUTHOR_BANNED, REJECT, ip, ip))
        return hits

    def _word_hits(self, text: str, normalized: Normalized | None) -> list[RuleHit]:
        if not self.words.size:
            return []
        if normalized is None or normalized.original != text[: len(normalized.original)]:
            normalized = normalize(text)
        searchable = normalized.text
        if _OTHER_WHITESPACE.search(searchable):
            searchable = searchable.translate(_WHITESPACE)  # same length: offsets still map back
        hits = []
        for (rule, entry), begin, end in self.words.find(searchable):
            span = normalized.span(begin, end)
            action = REJECT if rule == BANNED_WORD else HOLD
            hits.append(RuleHit(rule, action, entry, normalized.original[span[0] : span[1]], span))
        hits.sort(key=lambda hit: hit.action != REJECT)
        return hits

    def _email_hits(self, email: str) -> list[RuleHit]:
        address = (email or "").strip().lower()
        if "@" not in address:
            return []
        local, domain = address.rsplit("@", 1)
        hits = []
        banned = _listed(domain, self.email_ban)
        if banned:
            hits.append(RuleHit(EMAIL_BANNED, REJECT, banned, domain))
        held = _listed(domain, self.email_hold)
        if held:
            hits.append(RuleHit(EMAIL_HELD, HOLD, held, domain))
        if self.options.hold_disposable_email:
            disposable = _listed(domain, disposable_domains)
            if disposable:
                hits.append(RuleHit(DISPOSABLE_EMAIL, HOLD, disposable, domain))
        if self.options.hold_email_aliases and "+" in local:
            hits.append(RuleHit(EMAIL_ALIAS, HOLD, "+", "+" + local.split("+", 1)[1]))
        return hits

    def _link_hits(self, text: str) -> list[RuleHit]:
        if not self.link_blocked:
            return []
        hits = []
        seen: set[str] = set()
        for url in find_urls(text):
            host = _host(url)
            blocked = _listed(host, self.link_blocked) if host else None
            if blocked and blocked not in seen:
                seen.add(blocked)
                start = text.find(url)
                span = (start, start + len(url)) if start >= 0 else None
                hits.append(RuleHit(LINK_BLOCKED, REJECT, blocked, url, span))
        return hits

    def _history_hits(self, history: AuthorHistory | None) -> list[RuleHit]:
        size = self.options.recent_history_size
        if history is None or size <= 0:
            return []
        recent = list(history.recent)[:size]
        if len(recent) < size:
            return []  # too little history to judge
        rejected = sum(1 for status in recent if status == "rejected")
        if rejected / len(recent) > self.options.recent_rejected_share:
            return [RuleHit(RECENT_REJECTIONS, HOLD, f"{size}", f"{rejected} of {len(recent)} rejected")]
        return []

    def link_count(self, text: str) -> int | None:
        """Links that count against the link limit (None: all of them, as ``count_links``)."""
        if not self.link_trusted:
            return None
        trusted = sum(1 for url in _counted_links(text) if _listed(_host(url), self.link_trusted))
        return max(count_links(text) - trusted, 0)


_ANCHOR_HREF = re.compile(r"""(?is)<a\s[^>]*?href\s*=\s*["']?([^"'\s>]+)[^>]*>.*?(?:</a>|$)""")
_BARE_URL = re.compile(r"(?i)\b(?:https?://|www\.)[^\s<>\"']+")


def _counted_links(text: str) -> list[str]:
    """The URLs ``count_links`` counts: each anchor's href, then the bare URLs outside anchors."""
    hrefs = [match.group(1) for match in _ANCHOR_HREF.finditer(text)]
    return hrefs + _BARE_URL.findall(_ANCHOR_HREF.sub(" ", text))
