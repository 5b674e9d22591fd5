"""Features of a comment: hashed TF-IDF words and character n-grams of the normalised text, plus metadata.

Words and character n-grams are hashed (murmurhash3, like scikit-learn's ``HashingVectorizer``) so that
vectorising needs no vocabulary and is fast; the n-grams of each distinct word are cached. Reasons stay
readable because a document's own terms are re-hashed at explanation time (:meth:`CommentVectorizer.terms`),
which maps each non-zero column back to the words that produced it.

Metadata features describe the *nature* of the author name, URL, e-mail and links, never their mere
presence: real readers fill those fields too (see ``shared/data/SOURCES.md`` on the WordPress set).
"""

from __future__ import annotations

import math
import re
from array import array
from collections.abc import Sequence
from functools import lru_cache
from urllib.parse import urlsplit

import numpy as np
import scipy.sparse as sp
from disposable_email_domains import blocklist as _DISPOSABLE_DOMAINS
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils import murmurhash3_32

from classifier.comment import Comment
from classifier.text import Normalized, find_urls, normalize

WORD_RE = re.compile(r"\b\w\w+\b")
#: Character n-grams are taken inside whitespace-separated words, punctuation included, as in
#: scikit-learn's ``char_wb``: "£1000", "!!", "www." and ":)" are signal (SMS spam, shouting).
CHAR_WORD_RE = re.compile(r"\S+")
_EDGE_PUNCTUATION = re.compile(r"^\W*(.*?)\W*$")

SHORTENERS = frozenset(
    "bit.ly goo.gl tinyurl.com t.co ow.ly is.gd buff.ly adf.ly bit.do cutt.ly rebrand.ly shorturl.at "
    "tiny.cc tr.im v.gd x.co lnkd.in db.tt qr.ae cur.lv shorte.st bc.vc ouo.io linktr.ee".split()
)
SPAMMY_TLDS = frozenset(
    "xyz top info biz online site club shop store ru cn pl tk ml ga cf gq loan win bid review vip icu "
    "work click link space website live pw".split()
)
#: Words typical of keyword author names, SEO domains and shop URLs ("Cheap Watches Online").
COMMERCIAL_WORDS = frozenset(
    """cheap buy online sale sales shop store outlet discount deal deals price prices coupon coupons free
    best top review reviews loan loans payday credit debt mortgage insurance casino poker bet betting
    slots viagra cialis pharmacy pills pill diet weight loss supplement supplements seo marketing
    backlinks traffic hosting replica watches jerseys jersey shoes handbags bags louboutin gucci nike
    essay essays writing dating sex porn escort escorts forex bitcoin crypto trading invest investment
    money cash earn income business finance realty estate repair cleaning plumbing lawyer attorney
    service services solutions wholesale factory manufacturer supplier download downloads software apps
    games game travel fashion health healthy beauty skin cream fitness recipes recipe kitchen garden
    home improvement technology tech internet computer computers education recreation general
    shopping magazine articles news blog flights airline hotel hotels tickets hack hacks cheat cheats
    generator jailbreak cydia steroid steroids anabolic testosterone psychic horoscope calculator garcinia
    forskolin detox adwords followers""".split()
)
#: Blog-spam topic words that are commercial only as whole words: inside a run-together word they would
#: match people ("Socrates" holds "rates").
WHOLE_COMMERCIAL_WORDS = frozenset(
    "apk mod rates tips lose pounds fat abs muscle login cbd vape keto cheapest hacked unlimited".split()
)
#: Author URLs that point into a page anyone can create (a wiki page, a forum or CMS profile, a shared
#: document) rather than the author's own site: where blog spammers park their keyword pages.
_USER_CONTENT_URL = re.compile(
    r"/fusiontables/|/wiki/|index\.php\?title=|doku\.php|option=com_k2|member\.asp|memname=|/members?/"
    r"|/profile|/user/|/users/|/sitemap\d+\.html|dailymotion\.com/video|/groups?/|/redirect",
    re.IGNORECASE,
)
_NAME_JOINERS = frozenset("& and for of the in to with at on".split())
_PERSONAL_WORD = re.compile(r"^[A-Z][a-z'\-]+$|^[A-Z]\.?$|^[a-z]+\d*$")
_DOMAIN_IN_NAME = re.compile(r"[a-z0-9-]\.(?:com|net|org|info|biz|ru|co|io|xyz|top)\b|https?://|www\.", re.I)
_REPEATED_CHARS = re.compile(r"(\S)\1{2,}")  # not runs of spaces
_EMAIL_IN_TEXT = re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+")

#: (name, what a moderator reads); the vectoriser fills values in the same order.
META_FEATURES: tuple[tuple[str, str], ...] = (
    ("links", "meta: {links} links"),
    ("domains", "meta: {domains} distinct link domains"),
    ("link_shortener", "meta: link via URL shortener"),
    ("link_shop", "meta: link to a shop/SEO domain"),
    ("email_in_text", "meta: e-mail address in text"),
    ("name_keywords", "name looks like keywords"),
    ("name_commercial", "name has commercial words"),
    ("name_web_address", "name contains a web address"),
    ("text_repeats_name", "text repeats the name"),
    ("url_shop", "author URL points to a shop/SEO domain"),
    ("url_shortener", "author URL is a URL shortener"),
    ("url_keyword_path", "author URL has a keyword-stuffed path"),
    ("email_disposable", "disposable e-mail domain"),
    ("caps_share", "meta: {caps_pct}% capitals"),
    ("repeated_chars", "meta: repeated characters"),
    ("exclamations", "meta: many exclamation marks"),
    ("long_text", "meta: long text"),
    ("short_text", "meta: very short text"),
)
META_NAMES: tuple[str, ...] = tuple(name for name, _ in META_FEATURES)
#: The metadata features that say a link in the text looks like spam's (a shortener, a shop domain); the
#: counts of links and domains are not among them, a reader's citations have those too.
SUSPICIOUS_LINK_FEATURES: tuple[str, ...] = ("link_shortener", "link_shop")
#: The metadata features that describe the author (name, URL, e-mail) rather than the text's style.
AUTHOR_FEATURES: tuple[str, ...] = (
    "name_keywords",
    "name_commercial",
    "name_web_address",
    "text_repeats_name",
    "url_shop",
    "url_shortener",
    "url_keyword_path",
    "email_disposable",
)


def _domain(url: str) -> str:
    url = url.strip()
    if not url:
        return ""
    if "://" not in url:
        url = "http://" + url
    try:
        host = urlsplit(url).hostname or ""
    except ValueError:
        return ""
    return host.lower().removeprefix("www.")


def _words(text: str) -> list[str]:
    return [w for w in re.split(r"[^a-z0-9]+", text.lower()) if w]


def _commercial_hits(text: str) -> int:
    """Commercial words in ``text``, also inside run-together domains ("eaglesjerseysstore")."""
    hits = 0
    for word in _words(text):
        if word in COMMERCIAL_WORDS or word in WHOLE_COMMERCIAL_WORDS:
            hits += 1
        elif len(word) >= 8:
            hits += sum(1 for w in COMMERCIAL_WORDS if len(w) >= 4 and w in word)
    return hits


def _domain_looks_commercial(domain: str, path: str = "") -> bool:
    if not domain:
        return False
    labels = domain.split(".")
    tld = labels[-1]
    core = ".".join(labels[:-1])
    return (
        tld in SPAMMY_TLDS
        or _commercial_hits(core) > 0
        or core.count("-") >= 2
        or _commercial_hits(path.replace("-", " ").replace("/", " ")) >= 2
    )


def name_looks_like_keywords(name: str) -> bool:
    """True for author names such as "Cheap Watches Online" or "Computer & Internet", not "Ann Lee"."""
    name = name.strip()
    if not name:
        return False
    tokens = re.findall(r"[^\s]+", name)
    words = [t.strip(".,:;!?()\"'") for t in tokens]
    words = [w for w in words if w]
    if not words:
        return False
    lower = [w.lower() for w in words]
    # Long names and joiners alone are not keywords: "Yuliana Andrea Caucali Acosta", "Quinn and Mia" and
    # "Mary Ann de la Cruz" are people. Every rule needs a commercial word.
    commercial = _commercial_hits(name)
    if commercial == 0:
        return False
    if len(words) == 1:
        return lower[0] in COMMERCIAL_WORDS  # "Technology", "Games"; not "Johnson"
    if lower[0] in COMMERCIAL_WORDS:  # "cheap airline flights", "Best Payday Loans"
        return True
    if any(w in COMMERCIAL_WORDS for w in lower) and not _PERSONAL_WORD.match(words[0]):
        return True
    if any(w in _NAME_JOINERS for w in lower):
        return True
    if len(words) >= 3 and all(w in COMMERCIAL_WORDS for w in lower[1:]):  # not "Sandra Price"
        return True
    # People capitalise their names; a search phrase is typed in lower case ("easy boom beach hack").
    if len(words) >= 3 and all(w.islower() or w.isdigit() for w in words):
        return True
    return commercial >= 2


@lru_cache(maxsize=20_000)
def _author_values(name: str, url: str, email: str) -> tuple[float, ...]:
    """Features of the author fields alone (cached: the same authors come back)."""
    keywords = name_looks_like_keywords(name)
    url_domain = _domain(url)
    try:
        url_path = urlsplit(url if "://" in url else "http://" + url).path if url else ""
    except ValueError:
        url_path = ""
    email_domain = email.rsplit("@", 1)[-1].strip().lower() if "@" in email else ""
    return (
        float(keywords),
        float(keywords and _commercial_hits(name) > 0),
        float(bool(_DOMAIN_IN_NAME.search(name))),
        float(_domain_looks_commercial(url_domain, url_path)),
        float(url_domain in SHORTENERS),
        float(_url_is_keyword_page(url, url_path)),
        float(email_domain in _DISPOSABLE_DOMAINS),
    )


def _url_is_keyword_page(url: str, path: str) -> bool:
    """An author URL whose path is a keyword phrase ("/how-to-lose-10-pounds", "/reversemortgage99462") or
    a page anyone can create (:data:`_USER_CONTENT_URL`): readers link their own site or nothing."""
    if not path:
        return False
    return (
        path.count("-") + path.count("_") >= 3
        or _commercial_hits(re.sub(r"[\d_/.-]+", " ", path)) > 0
        or bool(_USER_CONTENT_URL.search(url))
    )


def _without_links(text: str, links: list[str]) -> str:
    """The text with its links blanked out ("www." is not a repeated character)."""
    for link in links:
        text = text.replace(link, " ")
    return text


_UPPER_BYTES = bytes(range(ord("A"), ord("Z") + 1))
_LETTER_BYTES = _UPPER_BYTES + bytes(range(ord("a"), ord("z") + 1))


def metadata_values(comment: Comment, urls: list[str] | None = None) -> dict[str, float]:
    """Raw metadata values (counts, shares and flags) for one comment.

    ``urls`` are the links found while normalising the text (saves a second scan).
    """
    text = comment.text if isinstance(comment.text, str) else ""
    text = text[:10_000]
    name = (comment.name or "")[:200] if isinstance(comment.name, str) else ""
    url = (comment.url or "")[:500] if isinstance(comment.url, str) else ""
    email = (comment.email or "")[:300] if isinstance(comment.email, str) else ""
    links = find_urls(text) if urls is None else urls
    domains = {_domain(link) for link in links} - {""}
    ascii_text = text.encode("ascii", "ignore")
    letters = len(ascii_text) - len(ascii_text.translate(None, _LETTER_BYTES))
    upper = len(ascii_text) - len(ascii_text.translate(None, _UPPER_BYTES))
    caps_share = upper / letters if letters >= 10 else 0.0
    repeats_name = False
    if len(name) >= 6:
        name_words = [w for w in _words(name) if len(w) >= 4]
        text_lower = text.lower()
        repeats_name = bool(name_words) and all(w in text_lower for w in name_words)
    author = _author_values(name, url, email)
    return {
        "links": float(len(links)),
        "domains": float(len(domains)),
        "link_shortener": float(any(d in SHORTENERS for d in domains)),
        "link_shop": float(any(_domain_looks_commercial(d) for d in domains)),
        "email_in_text": float("@" in text and bool(_EMAIL_IN_TEXT.search(text))),
        "name_keywords": author[0],
        "name_commercial": author[1],
        "name_web_address": author[2],
        "text_repeats_name": float(repeats_name),
        "url_shop": author[3],
        "url_shortener": author[4],
        "url_keyword_path": author[5],
        "email_disposable": author[6],
        "caps_share": caps_share,
        "repeated_chars": float(len(_REPEATED_CHARS.findall(_without_links(text, links)))),
        "exclamations": float(text.count("!")),
        "long_text": float(len(text)),
        "short_text": float(len(text.strip()) < 20),
    }


def metadata_vector(values: dict[str, float]) -> list[float]:
    """Squash raw values into [0, 1] so they sit on the same scale as the TF-IDF blocks."""
    return [
        min(math.log1p(values["links"]) / math.log(6), 1.0),
        min(math.log1p(values["domains"]) / math.log(4), 1.0),
        values["link_shortener"],
        values["link_shop"],
        values["email_in_text"],
        values["name_keywords"],
        values["name_commercial"],
        values["name_web_address"],
        values["text_repeats_name"],
        values["url_shop"],
        values["url_shortener"],
        values["url_keyword_path"],
        values["email_disposable"],
        values["caps_share"] if values["caps_share"] >= 0.3 else 0.0,
        min(values["repeated_chars"] / 3.0, 1.0),
        min(values["exclamations"] / 5.0, 1.0) if values["exclamations"] >= 3 else 0.0,
        min(math.log1p(values["long_text"]) / math.log(5000), 1.0) if values["long_text"] > 1000 else 0.0,
        values["short_text"],
    ]


def describe_meta(name: str, values: dict[str, float]) -> str:
    """The moderator-readable label of a metadata feature for one comment."""
    template = dict(META_FEATURES)[name]
    return template.format(
        links=int(values["links"]),
        domains=int(values["domains"]),
        caps_pct=int(round(100 * values["caps_share"])),
    )


# Caches shared by every vectoriser with the same layout (never saved with the model).
_WORD_CACHES: dict[int, dict[str, int]] = {}
_CHAR_CACHES: dict[tuple[int, int, int], dict[str, array[int]]] = {}
_CACHE_LIMIT = 400_000


def _hash(term: str, n_features: int) -> int:
    return murmurhash3_32(term, seed=0, positive=True) % n_features


def char_ngrams(word: str, low: int, high: int) -> list[str]:
    """Character n-grams of a word padded with spaces (scikit-learn's ``char_wb``)."""
    padded = f" {word} "
    grams: list[str] = []
    for n in range(low, high + 1):
        if len(padded) < n:
            break
        grams.extend(padded[i : i + n] for i in range(len(padded) - n + 1))
    if len(padded) < low:
        grams.append(padded)
    return grams


class CommentVectorizer(TransformerMixin, BaseEstimator):
    """Comments -> sparse ``[word TF-IDF | char n-gram TF-IDF | metadata]`` (float32).

    Each TF-IDF block is sublinear (1 + log tf), weighted by a smoothed idf learned in ``fit`` and
    L2-normalised on its own, as in a ``FeatureUnion`` of two ``TfidfVectorizer``.
    """

    def __init__(
        self,
        word_bits: int = 17,
        char_bits: int = 18,
        char_ngram_range: tuple[int, int] = (2, 5),
        word_bigrams: bool = True,
        metadata: bool = True,
        min_df: int = 2,
    ):
        self.word_bits = word_bits
        self.char_bits = char_bits
        self.char_ngram_range = char_ngram_range
        self.word_bigrams = word_bigrams
        self.metadata = metadata
        self.min_df = min_df

    # -- layout -----------------------------------------------------------------------------------
    @property
    def n_word(self) -> int:
        return 1 << self.word_bits

    @property
    def n_char(self) -> int:
        return 1 << self.char_bits

    @property
    def n_meta(self) -> int:
        return len(META_FEATURES) if self.metadata else 0

    # -- hashing ----------------------------------------------------------------------------------
    def _word_col(self, word: str) -> int:
        cache = _WORD_CACHES.setdefault(self.n_word, {})
        col = cache.get(word)
        if col is None:
            col = _hash(word, self.n_word)
            if len(cache) < _CACHE_LIMIT:
                cache[word] = col
        return col

    def _char_cols(self, word: str) -> array[int]:
        low, high = self.char_ngram_range
        cache = _CHAR_CACHES.setdefault((self.n_char, low, high), {})
        cols = cache.get(word)
        if cols is None:
            cols = array("i", [_hash(g, self.n_char) for g in char_ngrams(word, low, high)])
            if len(cache) < _CACHE_LIMIT:
                cache[word] = cols
        return cols

    def counts(self, texts: Sequence[str]) -> tuple[sp.csr_matrix, sp.csr_matrix]:
        """Hashed raw counts of words (+ bigrams) and of character n-grams, one row per text."""
        # array("i") rather than lists: extending by a cached array is a copy, and numpy reads it in place.
        w_cols = array("i")
        w_lens: list[int] = []
        c_cols = array("i")
        c_lens: list[int] = []
        n_word = self.n_word
        word_cache = _WORD_CACHES.setdefault(n_word, {})
        low, high = self.char_ngram_range
        char_cache = _CHAR_CACHES.setdefault((self.n_char, low, high), {})
        word_get = word_cache.get
        char_get = char_cache.get
        word_col = self._word_col
        char_cols = self._char_cols
        bigrams = self.word_bigrams
        for text in texts:
            tokens = WORD_RE.findall(text)
            start = len(w_cols)
            for token in tokens:
                col = word_get(token)
                w_cols.append(word_col(token) if col is None else col)
            if bigrams:
                for pair in map(" ".join, zip(tokens, tokens[1:], strict=False)):
                    col = word_get(pair)
                    w_cols.append(word_col(pair) if col is None else col)
            w_lens.append(len(w_cols) - start)
            start = len(c_cols)
            for word in text.split():  # the same words as CHAR_WORD_RE, faster
                cols = char_get(word)
                c_cols.extend(char_cols(word) if cols is None else cols)
            c_lens.append(len(c_cols) - start)
        return self._csr(w_cols, w_lens, n_word), self._csr(c_cols, c_lens, self.n_char)

    @staticmethod
    def _csr(cols: array | list[int], lens: list[int], width: int) -> sp.csr_matrix:
        rows = np.repeat(np.arange(len(lens), dtype=np.int32), lens)
        data = np.ones(len(cols), dtype=np.float32)
        if isinstance(cols, array):
            columns = np.frombuffer(cols, dtype=np.int32)
        else:
            columns = np.asarray(cols, dtype=np.int32)
        matrix = sp.csr_matrix((data, (rows, columns)), shape=(len(lens), width))
        matrix.sum_duplicates()
        return matrix

    # -- sklearn API ------------------------------------------------------------------------------
    def fit(self, X: Sequence[Comment], y: object = None) -> CommentVectorizer:  # noqa: N803
        texts = [normalize(c.text).text for c in X]
        return self.fit_idf(*self.counts(texts))

    def fit_idf(self, words: sp.csr_matrix, chars: sp.csr_matrix) -> CommentVectorizer:
        """Fit from hashed counts (see ``counts``) of the training texts."""
        self.idf_word_ = self._idf(words)
        self.idf_char_ = self._idf(chars)
        self.n_features_out_ = self.n_word + self.n_char + self.n_meta
        return self

    def _idf(self, counts: sp.csr_matrix) -> np.ndarray:
        n_docs = counts.shape[0]
        df = np.bincount(counts.indices, minlength=counts.shape[1]).astype(np.float64)
        idf = np.log((1.0 + n_docs) / (1.0 + df)) + 1.0
        idf[df < self.min_df] = 0.0  # unseen / too-rare terms carry no weight (like min_df)
        return idf.astype(np.float32)

    def transform(self, X: Sequence[Comment]) -> sp.csr_matrix:  # noqa: N803
        return self.transform_normalized(X, [normalize(c.text) for c in X])

    def transform_normalized(
        self, comments: Sequence[Comment], normalized: Sequence[Normalized]
    ) -> sp.csr_matrix:
        """Like ``transform`` when the caller already normalised the texts (for reasons)."""
        words, chars = self.counts([n.text for n in normalized])
        return self.assemble(comments, words, chars, [n.urls for n in normalized])

    def assemble(
        self,
        comments: Sequence[Comment],
        words: sp.csr_matrix,
        chars: sp.csr_matrix,
        urls: Sequence[list[str]] | None = None,
    ) -> sp.csr_matrix:
        """The feature matrix from raw hashed counts (see ``counts``) and the comments' metadata."""
        blocks = [self._tfidf(words, self.idf_word_), self._tfidf(chars, self.idf_char_)]
        if self.metadata:
            links = urls if urls is not None else [None] * len(comments)
            rows = [metadata_vector(metadata_values(c, u)) for c, u in zip(comments, links, strict=True)]
            meta = np.array(rows, dtype=np.float32)
            blocks.append(sp.csr_matrix(meta.reshape(len(comments), self.n_meta)))
        return sp.hstack(blocks, format="csr", dtype=np.float32)

    @staticmethod
    def _tfidf(counts: sp.csr_matrix, idf: np.ndarray) -> sp.csr_matrix:
        counts = counts.astype(np.float32)
        counts.data = (1.0 + np.log(counts.data)) * idf[counts.indices]
        counts.eliminate_zeros()
        squares = np.asarray(counts.multiply(counts).sum(axis=1), dtype=np.float32).ravel()
        norms = np.sqrt(squares)
        norms[norms == 0] = 1.0
        counts.data /= np.repeat(norms, np.diff(counts.indptr))
        return counts

    def get_feature_names_out(self, input_features: object = None) -> np.ndarray:
        names = [f"word:{i}" for i in range(self.n_word)] + [f"char:{i}" for i in range(self.n_char)]
        return np.asarray(names + [f"meta:{n}" for n in META_NAMES][: self.n_meta], dtype=object)

    # -- explanations -----------------------------------------------------------------------------
    def terms(
        self, normalized: Normalized, needed: set[int] | None = None
    ) -> dict[int, list[tuple[str, int, int]]]:
        """For one document: column -> the words behind it, as (word, begin, end) in the normalised text.

        Word and bigram columns map to their own occurrences; a character n-gram column maps to every
        word that contains the n-gram, so its weight can be credited to readable words. ``needed``
        limits the answer to those columns (faster).
        """
        text = normalized.text
        out: dict[int, list[tuple[str, int, int]]] = {}
        tokens = [(m.group(), m.start(), m.end()) for m in WORD_RE.finditer(text)]
        for token in tokens:
            col = self._word_col(token[0])
            if needed is None or col in needed:
                out.setdefault(col, []).append(token)
        if self.word_bigrams:
            for (a, a_begin, _), (b, _, b_end) in zip(tokens, tokens[1:], strict=False):
                col = self._word_col(f"{a} {b}")
                if needed is None or col in needed:
                    out.setdefault(col, []).append((f"{a} {b}", a_begin, b_end))
        offset = self.n_word
        # The needed character columns, relative to the block: set.intersection walks a word's
        # columns in C, which matters with dozens of n-grams per word.
        needed_chars = None if needed is None else {col - offset for col in needed if col >= offset}
        for m in CHAR_WORD_RE.finditer(text):
            word = m.group()
            cols = self._char_cols(word)
            hits = set(cols) if needed_chars is None else needed_chars.intersection(cols)
            if not hits:
                continue
            # Credit the word without its surrounding punctuation ("idiot!!" -> "idiot").
            core = _EDGE_PUNCTUATION.match(word)
            label, begin, end = word, m.start(), m.end()
            if core and core.group(1):
                label, begin, end = core.group(1), m.start() + core.start(1), m.start() + core.end(1)
            for col in hits:
                out.setdefault(offset + col, []).append((label, begin, end))
        return out
