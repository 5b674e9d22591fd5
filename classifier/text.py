"""Text normalisation against common evasion, keeping a map back to the original characters.

The models see the *normalised* text; moderators see highlights in the *original* text. Every
character of the normalised text therefore remembers the ``[begin, end)`` range of original characters
it came from, so a span found in the normalised text can be mapped back with :meth:`Normalized.span`.

Steps, in order: HTML tags become a space and entities are decoded; URLs (and bare ``www.``/domain
links) become the token ``urltoken``; NFKC plus accent stripping; zero-width, bidi, BOM and other
format/control characters are dropped (this also strips YouTube's trailing U+FEFF); confusable letters
(Cyrillic/Greek look-alikes, fullwidth and mathematical letters) map to ASCII; everything is lower-cased;
leetspeak inside words (``1d10t``, ``sh!t``, ``@ss``) is undone, but numbers with units
(``150p``, ``1st``, ``txt80082``) are kept as they are; runs of 3+ equal letters are squeezed to 2.
Normalisation never raises: lone surrogates, NUL and 20k combining marks are simply dropped.
"""

from __future__ import annotations

import html
import re
import unicodedata
from bisect import bisect_right

#: Longest original text that is normalised; the rest is ignored (keeps scoring time bounded).
MAX_CHARS = 10_000
URL_TOKEN = "urltoken"

_TAG = r"<(?:[a-zA-Z/!][^<>]{0,500})>"
_ENTITY = r"&(?:#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[a-zA-Z][a-zA-Z0-9]{1,31});"
_TLDS = (
    "com|net|org|info|biz|ru|ly|co|io|me|xyz|top|us|uk|de|tk|ml|ga|cf|gq|cn|pl|in|online|site|club|shop|"
    "store|gl|gd|be|to|tv|cc|ws"
)
# Hosts are matched possessively (no backtracking) and checked against _TLDS afterwards in Python.
URL_PATTERN = (
    r"(?:(?:https?|ftp)://|www\.)[^\s<>\"']+"
    r"|\b[a-zA-Z0-9][a-zA-Z0-9-]*+(?:\.[a-zA-Z0-9-]++)++(?:/[^\s<>\"']*)?"
)
_TLD_SET = frozenset(_TLDS.split("|"))
_SPECIAL = re.compile(rf"(?P<tag>{_TAG})|(?P<entity>{_ENTITY})|(?P<url>{URL_PATTERN})")
URL_RE = re.compile(URL_PATTERN)


def _is_link(candidate: str) -> bool:
    """A match of URL_PATTERN is a link if it has a scheme/www or its host ends in a known TLD."""
    if candidate[:4].lower() in ("http", "ftp:", "www."):
        return True
    host = candidate.split("/", 1)[0]
    return host.rsplit(".", 1)[-1].lower() in _TLD_SET


# Leetspeak is undone only inside a word that also has letters, so "2016" and "$5" survive.
_LEET = str.maketrans(
    {
        "0": "o",
        "1": "i",
        "3": "e",
        "4": "a",
        "5": "s",
        "7": "t",
        "@": "a",
        "$": "s",
        "!": "i",
        "|": "l",
        "+": "t",
        "€": "e",
    }
)
_LEET_WORD = re.compile(r"(?<![\w@$!|+])[\w@$!|+]*[013457@$!|+][\w@$!|+]*")
_LEET_TRAILING = re.compile(r"[!|+]+$")
_REPEAT = re.compile(r"([a-z])\1{2,}")
# Numbers are signal (SMS spam: "150p", "08712460324", "2nite", "txt 80082"): a word that starts or ends
# with 2+ digits, or is a number with a unit ("1st", "10am", "150p", "5mins"), is not leetspeak.
_NUMBER_WORD = re.compile(
    r"\d{2,}|.*\d{2,}$|\d+(?:st|nd|rd|th|p|am|pm|k|m|s|x|min|mins|hr|hrs|yr|yrs|gb|mb|ppm|mph|kg|km|cm|ml)$"
)

# A few look-alikes NFKC does not fold (Cyrillic and Greek letters that look Latin).
_CONFUSABLE = {
    "а": "a",
    "в": "b",
    "е": "e",
    "ё": "e",
    "к": "k",
    "м": "m",
    "н": "h",
    "о": "o",
    "р": "p",
    "с": "c",
    "т": "t",
    "у": "y",
    "х": "x",
    "ѕ": "s",
    "і": "i",
    "ї": "i",
    "ј": "j",
    "ԁ": "d",
    "ԛ": "q",
    "ԝ": "w",
    "ɑ": "a",
    "ɡ": "g",
    "ı": "i",
    "ȷ": "j",
    "ℓ": "l",
    "α": "a",
    "β": "b",
    "ε": "e",
    "ι": "i",
    "κ": "k",
    "ν": "v",
    "ο": "o",
    "ρ": "p",
    "τ": "t",
    "υ": "u",
    "χ": "x",
    "γ": "y",
    "ω": "w",
    "ᴀ": "a",
    "ʙ": "b",
    "ᴄ": "c",
    "ᴅ": "d",
    "ᴇ": "e",
    "ɢ": "g",
    "ʜ": "h",
    "ɪ": "i",
    "ᴊ": "j",
    "ᴋ": "k",
    "ʟ": "l",
    "ᴍ": "m",
    "ɴ": "n",
    "ᴏ": "o",
    "ᴘ": "p",
    "ʀ": "r",
    "ꜱ": "s",
    "ᴛ": "t",
    "ᴜ": "u",
    "ᴠ": "v",
    "ᴡ": "w",
    "ʏ": "y",
    "ᴢ": "z",
    "‘": "'",
    "’": "'",
    "‛": "'",
    "“": '"',
    "”": '"',
    "–": "-",
    "—": "-",
    "…": "...",
}
_KEEP_CONTROLS = {"\t": " ", "\n": " ", "\r": " "}
_char_cache: dict[str, str] = {}


def _fold_char(ch: str) -> str:
    """What one original character becomes (possibly several characters, possibly none)."""
    category = unicodedata.category(ch)
    if ch == "\ufffd":  # replacement character, also what lone surrogates became
        return ""
    if ch in _KEEP_CONTROLS:
        return " "
    if category in ("Cc", "Cf", "Cs", "Co", "Cn", "Mn", "Me", "Zl", "Zp"):
        return " " if category in ("Zl", "Zp") else ""
    if category == "Zs":
        return " "
    folded = _CONFUSABLE.get(ch) or _CONFUSABLE.get(ch.lower())
    if folded:
        return folded
    folded = unicodedata.normalize("NFKC", ch)
    folded = "".join(c for c in unicodedata.normalize("NFKD", folded) if not unicodedata.combining(c))
    folded = "".join(_CONFUSABLE.get(c, c) for c in folded.lower())
    # NFKC can produce format characters again (rare); drop anything that is not printable text.
    return "".join(c for c in folded if unicodedata.category(c)[0] != "C")


def _fold(ch: str) -> str:
    folded = _char_cache.get(ch)
    if folded is None:
        folded = _fold_char(ch)
        if len(_char_cache) < 100_000:
            _char_cache[ch] = folded
    return folded


class Normalized:
    """Normalised text plus, per normalised character, the original ``[begin, end)`` range.

    The ranges are kept as pieces ``(normalised start, original begin, original end, one_to_one)`` and
    expanded to per-character lists only when asked for (explanations), which keeps scoring fast.
    """

    __slots__ = ("text", "original", "urls", "_pieces", "_begins", "_ends", "_starts")

    def __init__(
        self,
        text: str,
        original: str,
        pieces: list[tuple[int, int, int, bool]],
        begins: list[int] | None = None,
        ends: list[int] | None = None,
        urls: list[str] | None = None,
    ):
        self.text = text
        self.urls = urls or []
        self.original = original
        self._pieces = pieces
        self._begins = begins
        self._ends = ends
        self._starts: list[int] | None = None

    def _expand(self) -> None:
        begins: list[int] = []
        ends: list[int] = []
        bounds = [p[0] for p in self._pieces[1:]] + ([len(self.text)] if self._pieces else [])
        for (start, o_begin, o_end, one_to_one), stop in zip(self._pieces, bounds, strict=True):
            length = stop - start
            if one_to_one:
                begins.extend(range(o_begin, o_begin + length))
                ends.extend(range(o_begin + 1, o_begin + length + 1))
            else:
                begins.extend([o_begin] * length)
                ends.extend([o_end] * length)
        self._begins, self._ends = begins, ends

    @property
    def begins(self) -> list[int]:
        if self._begins is None:
            self._expand()
        return self._begins  # type: ignore[return-value]

    @property
    def ends(self) -> list[int]:
        if self._ends is None:
            self._expand()
        return self._ends  # type: ignore[return-value]

    def span(self, begin: int, end: int) -> tuple[int, int]:
        """Map a ``[begin, end)`` range of the normalised text to a range of the original text."""
        if not self.text or end <= begin:
            return (0, 0)
        begin = min(max(begin, 0), len(self.text) - 1)
        end = min(max(end, begin + 1), len(self.text))
        if self._begins is None and self._pieces:
            # A few spans (site word lists) need no per-character lists: find the pieces instead.
            return (self._locate(begin)[0], self._locate(end - 1)[1])
        return (self.begins[begin], self.ends[end - 1])

    def _locate(self, index: int) -> tuple[int, int]:
        """The original ``[begin, end)`` of normalised character ``index`` (what ``_expand`` would list)."""
        if self._starts is None:
            self._starts = [piece[0] for piece in self._pieces]
        start, o_begin, o_end, one_to_one = self._pieces[max(bisect_right(self._starts, index) - 1, 0)]
        if one_to_one:
            return (o_begin + index - start, o_begin + index - start + 1)
        return (o_begin, o_end)


_NON_ASCII = re.compile(r"[^\x20-\x7e]+")


def _append_plain(
    segment: str, start: int, out: list[str], pieces: list[tuple[int, int, int, bool]], size: int
) -> int:
    """Append a segment without tags, entities or URLs; returns the new normalised length."""
    pos = 0
    for match in _NON_ASCII.finditer(segment):
        if match.start() > pos:
            out.append(segment[pos : match.start()].lower())
            pieces.append((size, start + pos, start + match.start(), True))
            size += match.start() - pos
        for i in range(match.start(), match.end()):
            folded = _fold(segment[i])
            if folded:
                out.append(folded)
                pieces.append((size, start + i, start + i + 1, len(folded) == 1))
                size += len(folded)
        pos = match.end()
    if pos < len(segment):
        out.append(segment[pos:].lower())
        pieces.append((size, start + pos, start + len(segment), True))
        size += len(segment) - pos
    return size


def _sanitize(text: object) -> str:
    if not isinstance(text, str):
        text = "" if text is None else str(text)
    text = text[:MAX_CHARS]
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates become U+FFFD (same length), which folding drops
        text = "".join(ch if not 0xD800 <= ord(ch) <= 0xDFFF else "\ufffd" for ch in text)
    return text


def normalize(text: object) -> Normalized:
    """Normalise ``text`` for the models (see the module docstring). Never raises."""
    original = _sanitize(text)
    out: list[str] = []
    pieces: list[tuple[int, int, int, bool]] = []
    urls: list[str] = []
    size = 0
    pos = 0
    for match in _SPECIAL.finditer(original):
        if match.start() > pos:
            size = _append_plain(original[pos : match.start()], pos, out, pieces, size)
        kind = match.lastgroup
        m_begin, m_end = match.span()
        pos = m_end
        if kind == "tag":
            replacement = " "
        elif kind == "url":
            if not _is_link(match.group()):
                size = _append_plain(match.group(), m_begin, out, pieces, size)
                continue
            urls.append(match.group())
            replacement = f" {URL_TOKEN} "
        else:
            decoded = html.unescape(match.group())
            if decoded == match.group():
                size = _append_plain(match.group(), m_begin, out, pieces, size)
                continue
            replacement = "".join(_fold(ch) for ch in decoded)
        if replacement:
            out.append(replacement)
            pieces.append((size, m_begin, m_end, False))
            size += len(replacement)
    if pos < len(original):
        size = _append_plain(original[pos:], pos, out, pieces, size)
    normalized = "".join(out)
    normalized = _LEET_WORD.sub(_unleet, normalized)  # 1:1, offsets unchanged
    if _REPEAT.search(normalized):
        result = Normalized(normalized, original, pieces)
        squeezed, begins, ends = _squeeze(normalized, result.begins, result.ends)
        return Normalized(squeezed, original, [], begins, ends, urls)
    return Normalized(normalized, original, pieces, urls=urls)


def _unleet(match: re.Match[str]) -> str:
    word = match.group()
    # A trailing "!" or "|" is punctuation, not a letter: keep it (same length, so offsets stay right).
    trailing = _LEET_TRAILING.search(word)
    core = word[: trailing.start()] if trailing else word
    if len(core) < 3 or not any("a" <= ch <= "z" for ch in core) or _NUMBER_WORD.match(core):
        return word
    return core.translate(_LEET) + word[len(core) :]


def _squeeze(text: str, begins: list[int], ends: list[int]) -> tuple[str, list[int], list[int]]:
    """Runs of 3+ equal letters become 2; the kept second letter's range grows to cover the run."""
    out: list[str] = []
    new_begins: list[int] = []
    new_ends: list[int] = []
    pos = 0
    for match in _REPEAT.finditer(text):
        start, stop = match.span()
        out.append(text[pos : start + 2])
        new_begins.extend(begins[pos : start + 2])
        new_ends.extend(ends[pos : start + 1])
        new_ends.append(ends[stop - 1])
        pos = stop
    out.append(text[pos:])
    new_begins.extend(begins[pos:])
    new_ends.extend(ends[pos:])
    return "".join(out), new_begins, new_ends


def normalize_text(text: object) -> str:
    """Only the normalised string (same as ``normalize(text).text``)."""
    return normalize(text).text


def find_urls(text: str) -> list[str]:
    """URLs and bare domains in raw text (also inside ``href`` attributes)."""
    try:
        return [u for u in URL_RE.findall(_sanitize(text)) if _is_link(u)]
    except Exception:  # noqa: BLE001 - hostile input must never break scoring
        return []


_ANCHOR = re.compile(r"(?is)<a\s[^>]*href.*?(?:</a>|$)")
_BARE_URL = re.compile(r"(?i)\b(?:https?://|www\.)[^\s<>\"']+")


def count_links(text: str) -> int:
    """Links for the "hold if more than N links" rule: WordPress counts ``<a href>`` anchors; CMSs that
    send plain text have bare URLs instead, so count those too (an anchor counts once, whatever its text)."""
    anchors = _ANCHOR.findall(text)
    return len(anchors) + len(_BARE_URL.findall(_ANCHOR.sub(" ", text)))


_PRAISE = re.compile(
    r"\b(?:thanks?(?: you)?|thx|kudos|bravo|congrat\w*)\b"
    r"|\b(?:great|good|excellent|nice|fine|informative|interesting|useful|helpful|insightful|wonderful|"
    r"brilliant|superb|fantastic|thoughtful|balanced|fair)\s+(?:article|post|piece|read|story|report\w*|"
    r"write-?up|work|job|column|editorial|analysis|info\w*)\b"
    r"|\bwell (?:written|said|put|done|researched)\b|\bvery (?:informative|interesting|helpful|useful)\b",
    re.IGNORECASE,
)


def looks_like_praise(text: str) -> bool:
    """Whether a comment thanks or praises the author: what readers write and blog spam imitates."""
    return bool(_PRAISE.search(text[:2000]))
