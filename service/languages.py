"""Which language a comment is written in: py3langid, whose model ships inside the package.

The identifier takes about a second to load, so it is loaded once per process, on first use.
Short or mixed texts are guessed poorly, so a guess counts only when it is confident.
"""

from __future__ import annotations

import threading

from py3langid.langid import MODEL_FILE, LanguageIdentifier

#: A guess below this (normalised) probability is no guess: the language is recorded as unknown.
MIN_CONFIDENCE = 0.9
#: Texts with fewer letters than this are too short to tell.
MIN_LETTERS = 12

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
    sample = text[:2000]
    if sum(1 for char in sample if char.isalpha()) < MIN_LETTERS:
        return None
    identifier = _identifier or _load()
    language, confidence = identifier.classify(sample)
    return str(language) if confidence >= MIN_CONFIDENCE else None
