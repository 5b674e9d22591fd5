"""Which language a comment is written in: py3langid, whose model ships inside the package.

The identifier takes about a second to load, so it is loaded once per process, on first use.
Short or mixed texts are guessed poorly, so a guess counts only when it is confident.
"""

from __future__ import annotations

import re
import threading

from py3langid.langid import MODEL_FILE, LanguageIdentifier

#: A guess below this (normalised) probability is no guess: the language is recorded as unknown.
MIN_CONFIDENCE = 0.9
#: Texts with fewer letters than this are too short to tell.
MIN_LETTERS = 12

#: Characters the identifier reads: its cost grows with the text, and 300 characters tell a language.
SAMPLE_CHARS = 300
#: English function words that other languages written in Latin letters rarely use. A text dense
#: with them is English without asking the identifier, which costs as much CPU as the models.
_ENGLISH = frozenset(
    "the and of to is that it for you with this are was have not but they be on what we at will would "
    "can there their from about just so if my me he she his her do does been has".split()
)
_WORD = re.compile(r"[^\W\d_]+")

_identifier: LanguageIdentifier | None = None
_lock = threading.Lock()


def _load() -> LanguageIdentifier:
    global _identifier
    with _lock:
        if _identifier is None:
            _identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    return _identifier


def detect_language(text: str) -> str | None:
    """The ISO 639-1 code of ``text``'s language, or None when it cannot be told with confidence."""
    sample = text[:SAMPLE_CHARS]
    if sum(1 for char in sample if char.isalpha()) < MIN_LETTERS:
        return None
    if looks_english(sample):
        return "en"
    identifier = _identifier or _load()
    language, confidence = identifier.classify(sample)
    return str(language) if confidence >= MIN_CONFIDENCE else None


def looks_english(sample: str) -> bool:
    """At least three English function words, and at least one word in six is one."""
    words = _WORD.findall(sample.lower())
    common = sum(1 for word in words if word in _ENGLISH)
    return common >= 3 and common * 6 >= len(words)
