"""Training the spam and toxicity models from labelled comments.

Design (see the model card's ``notes`` for the figures):

- One :class:`~classifier.features.CommentVectorizer` is fitted on all texts and shared by both pipelines.
- **Spam** learns from every example with a ``spam`` label. Texts from sources that carry no spam label
  at all (the toxicity corpora: news comments, Wikipedia talk, tweets) are genuine discussion, so up to
  ``spam_negatives_per_source`` of them per source join as spam negatives. Without them the only ham is
  YouTube and SMS, and the model learns "a link means spam".
- **Blog spam** (the two WordPress spam queues) is learnt from its text *and* its author fields. Their text
  is often generic praise ("Thanks for the article, very informative."), which real readers write too; what
  keeps a reader's thanks below hold is news-site reader comments as spam negatives at full weight (the
  news sets are the ham a news site sees). Learning only the author fields, as before, let 93 % of blog
  spam through when it arrived text-only. ``metadata_only_sources`` can still restrict a source to its
  author fields; rows with no author signal are then left out.
- **Toxicity** has one logistic-regression head per attribute, each trained on the rows whose source
  labels that attribute (a missing label is unknown, not 0); soft labels are thresholded at 0.5.
- **Weights**: for spam, each source group (``youtube:psy`` belongs to group ``youtube``) gets the same total
  weight, times ``source_weights[group]``; inside a group every row keeps its own
  ``LabelledComment.weight``, so a retrain that weights site labels higher gets a heavier site group.
  Toxicity rows keep their own weights (``toxicity_equal_sources=False``: equal source totals measured worse
  on leave-one-source-out). Both classes then get the same total weight (``balanced``, like
  ``class_weight="balanced"``) for the fit; the toxicity calibration below uses the unbalanced weights,
  the spam calibration its own class prior (``spam_calibration_share``).
- **Toxic spans' counterfactuals**: each toxic-span comment also joins the toxicity rows with every span an
  annotator marked cut out, labelled not toxic (:func:`span_counterfactuals`). The spans set has no ham; the
  cut comments are ham on exactly its topics, so the heads learn the marked words, not the subjects.
- **Toxicity heads** use the text blocks only (``toxicity_metadata=False``): the style features (capitals,
  "!!!", length) identified sources more than abuse and lowered leave-one-source-out AUC.
- **Calibration**: Platt scaling fitted on stratified 3-fold out-of-fold decision values, folded back
  into the logistic regression's coefficients, so ``predict_proba`` is calibrated and reasons stay
  coef x value. Spam is calibrated under a fixed class prior (35 % spam): its sources' spam rates (13 %
  SMS, 51 % YouTube, 100 % WordPress) say nothing about a site's, and out-of-source spam scores low. The
  toxicity heads are calibrated on the news-site rows only (``toxicity_calibration_groups``).
- **A site's own labels** (source ``site``, from ``classifier.learning``) train with the public rows and,
  where there are enough of them, add three site heads blended into each general head: one on the text
  features, one in a latent word space of the public rows, one on the general heads' logits
  (:func:`adapt_to_site`).
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp
import sklearn
from sklearn.decomposition import TruncatedSVD
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold
from sklearn.multioutput import MultiOutputClassifier
from sklearn.pipeline import Pipeline
from tqdm import tqdm

from classifier.comment import TOXICITY_ATTRIBUTES, Comment, LabelledComment
from classifier.errors import TrainingError
from classifier.features import AUTHOR_FEATURES, META_NAMES, SUSPICIOUS_LINK_FEATURES, CommentVectorizer
from classifier.model import Model
from classifier.text import find_urls, looks_like_praise, normalize

logger = logging.getLogger(__name__)

#: Below this many positive rows an attribute is flagged as thin in the card.
THIN_POSITIVES = 500
#: Source of the toxic spans' counterfactuals (:func:`span_counterfactuals`); its group is ``civil``.
COUNTERFACTUAL_SOURCE = "civil:spans-cut"
#: A counterfactual with fewer words left says nothing about its subject.
COUNTERFACTUAL_MIN_WORDS = 4


@dataclass
class TrainParams:
    """Hyper-parameters of :func:`train`; all of them are written to the model card."""

    spam_c: float = 4.0
    #: Inverse regularisation of the toxicity heads. With the news data and the spans' counterfactuals, 2
    #: regularises better than 4: leave-one-source-out toxicity ROC AUC (3,000 a source) 0.806 -> 0.810
    #: (Davidson +0.012, Jigsaw +0.007, Civil +0.003; OLID and Impermium -0.001), the other attributes within
    #: 0.001; the stream's held-out news sources 0.924 / 0.845 / 0.631 -> 0.928 / 0.844 / 0.634. 1 gave the
    #: same on news (0.929 / 0.843 / 0.635), 8 less (0.909 / 0.844 / 0.637 with fewer spam negatives).
    toxicity_c: float = 2.0
    word_bits: int = 18
    char_bits: int = 19
    #: Character n-grams from single characters up: 1-grams carry "£", digits and symbols (SMS spam;
    #: leave-one-source-out spam AUC on SMS 0.81 -> 0.85, toxicity unchanged).
    char_ngram_range: tuple[int, int] = (1, 5)
    min_df: int = 2
    metadata: bool = True
    #: Texts of sources without spam labels used as spam negatives, per source (0 turns this off). More
    #: of them is more of a reader's vocabulary seen as ham at the same total weight: at 3,000 single
    #: topic words from the spam sets ("website", "mobile", "google") made forum comments spam; 6,000 took
    #: the news comments flagged as spam on held-out Impermium from 3.4 % to 2.4 % and on Fox from 0.7 % to
    #: 0.5 %, with blog spam caught by time unchanged (10,000: Impermium 2.7 %).
    spam_negatives_per_source: int = 6000
    #: Rows per source kept for toxicity training (large tweet sets are subsampled), 0 = all.
    toxicity_rows_per_source: int = 10000
    #: Relative total weight per source group for spam (default 1.0). News-site reader comments (Civil,
    #: Impermium, Fox) are the ham a news site sees, so they weigh as much as a spam set: with the blog spam's
    #: text learned as well, that is what keeps a reader's "Great article, thank you" below hold (news
    #: comments flagged on held-out news sources: 0.5-2.4 %). Tweets and Wikipedia talk count little: at full
    #: weight they taught "long, off-topic or money-related prose is ham". YouTube counts double.
    source_weights: dict[str, float] = field(
        default_factory=lambda: {
            "youtube": 2.0,
            "jigsaw": 0.1,
            "davidson": 0.1,
            "olid": 0.1,
            "civil": 1.0,
            "impermium": 1.0,
            "fox": 1.0,
            "wordpress": 1.0,
            "wordpress-second": 1.0,
        }
    )
    #: Extra weight of the spam negatives that contain a link (discussion that cites a source). The
    #: discussion corpora count little for spam (``source_weights``), but their linked comments are what
    #: keeps "a link in a news comment" from being spam; this keeps them near their full weight.
    #: At 30 the linked negatives keep about the weight they had before ``source_weights`` cut discussion to
    #: 0.1: a news comment citing gov.uk / nature.com / bbc.co.uk stays far below hold (1.0 put such
    #: comments at 0.4-0.9), and leave-one-source-out AUC on WordPress spam vs news comments rose to 0.836,
    #: at some cost on YouTube, where a link is the spam signal.
    linked_negative_boost: float = 30.0
    #: Extra weight of the spam negatives that thank or praise the author ("Great article, thank you"):
    #: blog spam is full of generic praise, and the few readers' thanks in the discussion corpora are what
    #: keeps a reader's thanks from being spam once the blog spam's text is learnt.
    praise_negative_boost: float = 30.0
    #: Source groups whose text the spam head does not learn, only their metadata (none by default: learning
    #: the blog spam's text took spam caught by time, text only, from 7 % to 98 %; see the module docstring).
    metadata_only_sources: tuple[str, ...] = ()
    #: Share of each spam row's weight given to a copy of it without its author features. Blog spam whose
    #: keyword name or URL explains it teaches the text little, yet CMSs that send only the text (and
    #: spammers with plain names) are common: the copy makes the text carry its own evidence.
    spam_text_only_share: float = 0.5
    #: A link through a shortener or to a shop domain may add to spam but never subtract: the discussion
    #: corpora's links (Davidson's tweets end in t.co) and the boosted linked negatives taught "a shortener
    #: or a shop link means ham", which put "Buy cheap viagra online" with a shop link and a bit.ly link at
    #: 0.13, below the text alone (0.78). The counts of links and domains keep their learnt weights: they
    #: are what keeps a news comment citing bbc.co.uk and gov.uk below hold (clamped too, it scored 0.91).
    suspicious_links_never_ham: bool = True
    #: Largest logit any one author feature may add to spam. No ham in the public data has an author URL
    #: or e-mail, so the learned weights are unbounded (one "shop URL" flag gave 0.997); with the cap one
    #: heuristic flag cannot make a reader's thanks spam, while keyword name + commercial words + shop URL
    #: can.
    author_max_weight: float = 3.0
    #: Give both classes the same total weight when fitting (calibration uses the unbalanced weights).
    balanced: bool = True
    #: Equal total weight per source group for the toxicity heads too (spam always uses it).
    toxicity_equal_sources: bool = False
    #: Whether the toxicity heads may use the metadata block.
    toxicity_metadata: bool = False
    #: Row-weight multipliers for toxicity by source (exact source first, then its group). The toxic spans
    #: are 16,100 toxic news comments with no ham: at full weight they outweigh the news ham three to one
    #: and the model learns "news prose is toxic".
    toxicity_source_weights: dict[str, float] = field(default_factory=lambda: {"civil:spans": 0.3})
    #: Row-weight multiplier of each toxic-span comment's counterfactual: the same comment with the spans
    #: people marked cut out, as a non-toxic news comment (0: none). It is the ham on the spans' own topics,
    #: so the heads learn the marked words rather than the subjects toxic comments are about. Toxicity ROC
    #: AUC, leave-one-source-out at 3,000 rows per source, 0 -> 0.3: Jigsaw 0.896 -> 0.912, OLID 0.739 ->
    #: 0.743, Impermium 0.823 -> 0.827, Fox 0.624 -> 0.628, Davidson 0.821 -> 0.819 (1.0: Jigsaw 0.916 but
    #: Davidson 0.815).
    span_counterfactual_weight: float = 0.3
    #: Which spans are cut: ``marked_spans`` (any annotator marked them) or ``toxic_spans`` (half agreed;
    #: it leaves words one annotator marked, "useful idiot or well-meaning moron?", in a comment labelled
    #: good, and measured worse: Impermium 0.821, Davidson 0.820 at weight 0.3).
    span_counterfactual_cut: str = "marked_spans"
    #: Source groups whose out-of-fold scores fit the toxicity heads' Platt scaling (empty: all rows). News
    #: comments: the hold threshold should send a sensible share of a news site's comments to people, and
    #: calibration on tweets and Wikipedia talk does not say what that share is.
    toxicity_calibration_groups: tuple[str, ...] = ("civil", "impermium", "fox")
    #: Every calibration group weighs the same in the toxicity calibration, whatever its size: each news
    #: source is one site, and the threshold should suit the sites, not the largest data set.
    toxicity_calibration_equal_groups: bool = True
    #: Positive share the toxicity calibration rows are reweighted to (0: keep their own mix).
    toxicity_calibration_prior: float = 0.0
    calibrate: bool = True
    calibration_folds: int = 3
    #: Spam's share of the weight in the spam head's Platt scaling (None: the source-weighted training mix,
    #: which holds less spam). Out of source, spam scores are compressed towards ham: the training mix's
    #: prior let a blog never trained on through (31-38 % of its spam caught text-only), while 0.5
    #: (balanced) sent 0.5-2.3 % of the held-out news sources' comments to people as spam. 0.35: 0.3-1.6 %
    #: of news flagged, blog spam caught by time 99.5 % with author fields (unchanged) and 98.5-98.8 % text
    #: only (was 98.8-99.0), the stream at 10 % spam with author fields as good or better; text only, and at
    #: 50 % spam, 0.2-0.6 points more bad comments among the approved.
    spam_calibration_share: float | None = 0.35
    #: Source of a site's own labels (``classifier.learning`` names them ``site``). With enough of them,
    #: each head gets a site-specific correction fitted on those rows alone (see :func:`adapt_to_site`).
    site_source: str = "site"
    #: Inverse regularisation of the site head: small, so a few hundred labels move only the words they
    #: are sure of.
    site_c: float = 0.5
    #: Largest weight of the site heads together in the blend with the general head (standardised logits).
    #: 0.85 with the heads' head (``site_heads_c``); 0.6 was best with only the text and latent heads.
    site_blend: float = 0.85
    #: Site rows from which the site head gets its full ``site_blend`` (linearly less below).
    site_full_blend_rows: int = 150
    #: Fewest site rows of each class an attribute needs before it gets a correction.
    site_min_per_class: int = 15
    #: Dimensions of the latent word space the second site head learns in (0: no second head). It is
    #: fitted on the public rows' word columns (LSA), so a site's few hundred labels can generalise from the
    #: words they contain to words that keep the same company.
    site_subspace_dims: int = 200
    #: Inverse regularisation of the site head in that space (its 200 dense columns need less than words).
    site_subspace_c: float = 1.0
    #: Public rows sampled to fit that space (about 8 s at 20,000 rows and 200 dimensions, 2 cores).
    site_subspace_rows: int = 20_000
    #: Inverse regularisation of a third site head, on the general heads' logits (spam and every toxicity
    #: attribute, standardised): a site's "toxic" is its own mix of what the public sets call insult,
    #: profanity, identity attack..., and seven weights are learnt from a few dozen labels (0: no such head).
    #: ``bench/site_adaptation.py`` (Impermium, 5 draws), gain in ROC AUC at 100 / 300 / 1,000 labels:
    #: without it +0.036 / +0.057 / +0.070; with it at C=1 and ``site_blend`` 0.85, +0.039 / +0.066 / +0.078
    #: (C=3, blend 0.75: +0.037 / +0.068 / +0.077; C=0.1, blend 0.6: +0.029 / +0.059 / +0.068).
    site_heads_c: float = 1.0
    #: Threads for fitting (liblinear releases the GIL).
    n_jobs: int = 2
    seed: int = 13


def source_group(source: str) -> str:
    """``youtube:psy`` -> ``youtube``; sources of one collection share one weight."""
    return source.split(":", 1)[0]


def _row_weights(examples: Sequence[LabelledComment]) -> np.ndarray:
    weights = np.array([e.weight for e in examples], dtype=np.float64)
    return weights / weights.mean()


def _group_weights(examples: Sequence[LabelledComment], params: TrainParams) -> np.ndarray:
    counts = Counter(source_group(e.source) for e in examples)
    mean_rows = len(examples) / max(len(counts), 1)
    weights = np.array(
        [
            params.source_weights.get(source_group(e.source), 1.0)
            * e.weight
            * mean_rows
            / counts[source_group(e.source)]
            for e in examples
        ]
    )
    return weights / weights.mean()


def _balance(y: np.ndarray, w: np.ndarray, positive_share: float = 0.5) -> np.ndarray:
    """Weights scaled so that the positive class has ``positive_share`` of the total (0.5: both classes
    the same, ``class_weight="balanced"``)."""
    balanced = w.copy()
    for cls, share in ((0, 1 - positive_share), (1, positive_share)):
        mask = y == cls
        if mask.any() and balanced[mask].sum() > 0:
            balanced[mask] *= share * w.sum() / balanced[mask].sum()
    return balanced


def _fit_head(
    X: sp.csr_matrix,
    y: np.ndarray,
    w: np.ndarray,
    c: float,  # noqa: N803
    params: TrainParams,
    width: int | None = None,
    calibration_weights: np.ndarray | None = None,
    groups: np.ndarray | None = None,
) -> tuple[LogisticRegression, dict[str, Any]]:
    """Logistic regression plus Platt scaling on out-of-fold scores, folded into coef/intercept.

    ``X`` may hold only the first columns of the feature layout; the coefficients are padded with zeros to
    ``width`` so every head scores the full matrix. ``calibration_weights`` (default ``w``) weigh the rows
    in the Platt fit. Rows that share a ``groups`` value (copies of one comment) share a calibration fold.
    """
    fit_weights = _balance(y, w) if params.balanced else w

    def fit(rows: np.ndarray) -> LogisticRegression:
        clf = LogisticRegression(C=c, solver="liblinear", dual=True, tol=1e-3, max_iter=300)
        clf.fit(X[rows], y[rows], sample_weight=fit_weights[rows])
        return clf

    everything = np.arange(len(y))
    info: dict[str, Any] = {"rows": int(len(y)), "positives": int(y.sum())}
    calibrate = params.calibrate and min(np.bincount(y, minlength=2)) >= params.calibration_folds
    folds = []
    if calibrate:
        # Random stratified folds: grouped folds fail here because several groups hold one class only
        # (WordPress is all spam, the toxicity corpora are all ham for spam).
        if groups is None:
            splitter = StratifiedKFold(
                n_splits=params.calibration_folds, shuffle=True, random_state=params.seed
            )
            folds = list(splitter.split(everything, y))
        else:
            grouped = StratifiedGroupKFold(
                n_splits=params.calibration_folds, shuffle=True, random_state=params.seed
            )
            folds = list(grouped.split(everything, y, groups))
    t0 = time.monotonic()
    # liblinear releases the GIL, so the full fit and the calibration folds run on threads.
    with ThreadPoolExecutor(max_workers=max(1, params.n_jobs)) as pool:
        full = pool.submit(fit, everything)
        fold_models = [pool.submit(fit, train_rows) for train_rows, _ in folds]
        model = full.result()
        oof = np.zeros(len(y))
        covered = np.zeros(len(y), dtype=bool)
        for (_, test_rows), future in zip(folds, fold_models, strict=True):
            oof[test_rows] = future.result().decision_function(X[test_rows])
            covered[test_rows] = True
    logger.debug("head fit rows=%d seconds=%.1f", len(y), time.monotonic() - t0)
    if width is not None and width > X.shape[1]:
        model.coef_ = np.hstack([model.coef_, np.zeros((1, width - X.shape[1]))])
        model.n_features_in_ = width
    if not calibrate:
        info["calibration"] = "none"
        return model, info
    platt = LogisticRegression(C=100.0)
    calibration_w = w if calibration_weights is None else calibration_weights
    covered &= calibration_w > 0
    platt.fit(oof[covered].reshape(-1, 1), y[covered], sample_weight=calibration_w[covered])
    slope, shift = float(platt.coef_[0, 0]), float(platt.intercept_[0])
    slope = max(slope, 0.05)  # never flip or flatten a head completely
    model.coef_ = model.coef_ * slope
    model.intercept_ = model.intercept_ * slope + shift
    info["calibration"] = {
        "method": "platt on stratified out-of-fold scores",
        "slope": round(slope, 4),
        "intercept": round(shift, 4),
        "folds": params.calibration_folds,
        "prior": "reweighted" if calibration_weights is not None else "training mix",
    }
    return model, info


def select_spam_negatives(
    examples: Sequence[LabelledComment], params: TrainParams, rng: random.Random
) -> list[LabelledComment]:
    """Up to ``spam_negatives_per_source`` texts per source that has toxicity labels but no spam labels."""
    if not params.spam_negatives_per_source:
        return []
    quota = params.spam_negatives_per_source
    spam_sources = {e.source for e in examples if "spam" in e.labels}
    by_source: dict[str, list[LabelledComment]] = defaultdict(list)
    for e in examples:
        if e.source not in spam_sources and any(a in e.labels for a in TOXICITY_ATTRIBUTES):
            by_source[e.source].append(e)
    negatives: list[LabelledComment] = []
    for source in sorted(by_source):
        rows = by_source[source]
        if len(rows) > quota:
            # Discussion that links to sources is exactly what the spam model must not flag: keep it, up to
            # an eighth of the quota (Davidson's tweets nearly all end in a t.co link).
            # So is a reader thanking the author for the article: keep every one (they are few).
            kept = [e for e in rows if find_urls(e.comment.text)]
            if len(kept) > quota // 8:
                kept = rng.sample(kept, quota // 8)
            kept_ids = {id(e) for e in kept}
            kept += [e for e in rows if id(e) not in kept_ids and looks_like_praise(e.comment.text)]
            kept_ids = {id(e) for e in kept}
            plain = [e for e in rows if id(e) not in kept_ids]
            rows = kept + rng.sample(plain, max(0, min(len(plain), quota - len(kept))))
        negatives.extend(rows)
    return negatives


def train(
    examples: Sequence[LabelledComment], params: TrainParams | None = None, progress: bool = False
) -> Model:
    """Train both models; every ``LabelledComment.weight`` is used as a sample weight."""
    params = params or TrainParams()
    started = time.monotonic()
    rng = random.Random(params.seed)
    spam_rows = [e for e in examples if "spam" in e.labels]
    spam_negatives = select_spam_negatives(examples, params, rng)
    tox_rows: list[LabelledComment] = []
    tox_by_source: dict[str, list[LabelledComment]] = defaultdict(list)
    for e in examples:
        if any(a in e.labels for a in TOXICITY_ATTRIBUTES):
            tox_by_source[e.source].append(e)
    for source in sorted(tox_by_source):
        rows = tox_by_source[source]
        if params.toxicity_rows_per_source and len(rows) > params.toxicity_rows_per_source:
            rows = rng.sample(rows, params.toxicity_rows_per_source)
        tox_rows.extend(rows)
    if params.span_counterfactual_weight > 0:
        tox_rows.extend(span_counterfactuals(tox_rows, params))
    spam_classes = {e.labels["spam"] >= 0.5 for e in spam_rows} | ({False} if spam_negatives else set())
    if len(spam_classes) < 2:
        raise TrainingError("spam needs examples of both classes")
    if not tox_rows:
        raise TrainingError("toxicity needs examples with toxicity labels")

    # Vectorise every distinct example once.
    unique: dict[int, int] = {}
    corpus: list[LabelledComment] = []
    for e in (*spam_rows, *spam_negatives, *tox_rows):
        if id(e) not in unique:
            unique[id(e)] = len(corpus)
            corpus.append(e)
    vectorizer = CommentVectorizer(
        word_bits=params.word_bits,
        char_bits=params.char_bits,
        char_ngram_range=(int(params.char_ngram_range[0]), int(params.char_ngram_range[1])),
        metadata=params.metadata,
        min_df=params.min_df,
    )
    logger.info("vectorising rows=%d", len(corpus))
    comments = [e.comment for e in corpus]
    step = 2000
    counts = []
    urls: list[list[str]] = []
    for start in tqdm(range(0, len(comments), step), desc="vectorise", disable=not progress, unit="batch"):
        normalized = [normalize(c.text) for c in comments[start : start + step]]
        urls.extend(n.urls for n in normalized)
        counts.append(vectorizer.counts([n.text for n in normalized]))
    words = sp.vstack([w for w, _ in counts], format="csr")
    chars = sp.vstack([c for _, c in counts], format="csr")
    vectorizer.fit_idf(words, chars)
    X_all = vectorizer.assemble(comments, words, chars, urls)  # noqa: N806
    del counts, words, chars

    heads = tqdm(total=1 + len(TOXICITY_ATTRIBUTES), desc="fit heads", disable=not progress)
    n_text = vectorizer.n_word + vectorizer.n_char
    spam_set, X_spam = _spam_matrix([*spam_rows, *spam_negatives], X_all, unique, n_text, params)  # noqa: N806
    y = np.array([1 if e.labels.get("spam", 0.0) >= 0.5 else 0 for e in spam_set])
    spam_weights = _group_weights(spam_set, params)
    praised = np.array([looks_like_praise(e.comment.text) for e in spam_set], dtype=bool)
    if spam_negatives:
        negative_ids = {id(e) for e in spam_negatives}
        negative = np.array([id(e) in negative_ids for e in spam_set])
        linked = negative & np.array([bool(urls[unique[id(e)]]) for e in spam_set])
        praise = negative & praised
        spam_weights = np.where(linked, spam_weights * params.linked_negative_boost, spam_weights)
        spam_weights = np.where(praise, spam_weights * params.praise_negative_boost, spam_weights)
        spam_weights = spam_weights / spam_weights.mean()
    X_spam, y, spam_weights, spam_groups = _with_text_only_copies(
        X_spam, y, spam_weights, n_text, params, eligible=~praised
    )  # noqa: N806
    share = params.spam_calibration_share
    if share is not None and not 0 < share < 1:
        raise TrainingError(f"spam_calibration_share must be between 0 and 1, not {share!r}")
    spam_clf, spam_info = _fit_head(
        X_spam,
        y,
        spam_weights,
        params.spam_c,
        params,
        calibration_weights=None if share is None else _balance(y, spam_weights, share),
        groups=spam_groups,
    )
    if isinstance(spam_info.get("calibration"), dict):
        spam_info["calibration"]["spam_share"] = share
    del X_spam
    if params.metadata and params.author_max_weight > 0:
        author_columns = [n_text + META_NAMES.index(name) for name in AUTHOR_FEATURES]
        learned = spam_clf.coef_[0, author_columns].copy()
        spam_clf.coef_[0, author_columns] = np.minimum(learned, params.author_max_weight)
        spam_info["author_weights"] = {
            name: [round(float(a), 3), round(float(b), 3)]
            for name, a, b in zip(AUTHOR_FEATURES, learned, spam_clf.coef_[0, author_columns], strict=True)
        }
    if params.metadata and params.suspicious_links_never_ham:
        link_columns = [n_text + META_NAMES.index(name) for name in SUSPICIOUS_LINK_FEATURES]
        learned = spam_clf.coef_[0, link_columns].copy()
        spam_clf.coef_[0, link_columns] = np.maximum(learned, 0.0)
        spam_info["link_weights"] = {
            name: [round(float(a), 3), round(float(b), 3)]
            for name, a, b in zip(
                SUSPICIOUS_LINK_FEATURES, learned, spam_clf.coef_[0, link_columns], strict=True
            )
        }
    heads.update()
    tox_heads = []
    tox_info: dict[str, Any] = {}
    toxicity_multipliers = {
        **params.toxicity_source_weights,
        COUNTERFACTUAL_SOURCE: params.span_counterfactual_weight,
    }
    for attribute in TOXICITY_ATTRIBUTES:
        rows = [e for e in tox_rows if attribute in e.labels]
        y = np.array([1 if e.labels[attribute] >= 0.5 else 0 for e in rows])
        if len(rows) == 0 or len(set(y)) < 2:
            raise TrainingError(f"attribute {attribute!r} needs examples of both classes")
        idx = np.array([unique[id(e)] for e in rows])
        X_tox = X_all[idx] if params.toxicity_metadata else X_all[idx][:, :n_text]  # noqa: N806
        weights = _group_weights(rows, params) if params.toxicity_equal_sources else _row_weights(rows)
        weights = weights * _source_multipliers(rows, toxicity_multipliers)
        clf, info = _fit_head(
            X_tox,
            y,
            weights,
            params.toxicity_c,
            params,
            width=X_all.shape[1],
            calibration_weights=_calibration_weights(rows, y, weights, params),
        )
        info["sources"] = dict(Counter(e.source for e in rows))
        info["positives_by_source"] = dict(Counter(e.source for e, yy in zip(rows, y, strict=True) if yy))
        tox_heads.append(clf)
        tox_info[attribute] = info
        heads.update()
    heads.close()
    site_info = _adapt_heads_to_site([spam_clf, *tox_heads], corpus, X_all, n_text, vectorizer.n_word, params)

    multi = MultiOutputClassifier(LogisticRegression())
    multi.estimators_ = tox_heads
    multi.n_features_in_ = X_all.shape[1]
    spam_pipeline = Pipeline([("features", vectorizer), ("classifier", spam_clf)])
    toxicity_pipeline = Pipeline([("features", vectorizer), ("classifier", multi)])

    notes = [
        f"{attribute}: only {info['positives']} positive rows "
        f"({', '.join(f'{s} {n}' for s, n in sorted(info['positives_by_source'].items()))}); "
        "treat its scores as rough."
        for attribute, info in tox_info.items()
        if info["positives"] < THIN_POSITIVES
    ]
    notes.append(
        "Toxicity training mix is enriched (about half toxic); on a site with ~8% toxic comments "
        "the calibrated probabilities are conservative towards holding."
    )
    spam_info["sources"] = dict(Counter(e.source for e in spam_rows))
    spam_info["spam_negatives_from"] = dict(Counter(e.source for e in spam_negatives))
    spam_info["metadata_only_rows"] = dict(
        Counter(e.source for e in spam_set if source_group(e.source) in params.metadata_only_sources)
    )
    card = {
        "sklearn_version": sklearn.__version__,
        "hyper_parameters": _jsonable(asdict(params)),
        "rows_by_source": dict(sorted(Counter(e.source for e in examples).items())),
        "heads": {"spam": spam_info, **tox_info},
        "label_mapping": LABEL_MAPPING,
        "weighting": "each source group gets equal total weight x source_weights[group]; "
        "LabelledComment.weight is kept within a group",
        "notes": notes,
        "site_adaptation": site_info,
        "training_seconds": round(time.monotonic() - started, 1),
    }
    logger.info("trained seconds=%.1f rows=%d", time.monotonic() - started, len(corpus))
    return Model(spam_pipeline, toxicity_pipeline, card=card)


def _adapt_heads_to_site(
    heads: list[LogisticRegression],
    corpus: Sequence[LabelledComment],
    X_all: sp.csr_matrix,  # noqa: N803
    n_text: int,
    n_word: int,
    params: TrainParams,
) -> dict[str, Any]:
    """Give every head with enough site labels its site correction; returns what was done, per attribute."""
    site_rows = [i for i, e in enumerate(corpus) if e.source == params.site_source]
    info: dict[str, Any] = {}
    if not site_rows:
        return info
    eligible = []
    for attribute, head in zip(("spam", *TOXICITY_ATTRIBUTES), heads, strict=True):
        rows = np.array([i for i in site_rows if attribute in corpus[i].labels], dtype=int)
        y = np.array([1 if corpus[i].labels[attribute] >= 0.5 else 0 for i in rows], dtype=int)
        if len(rows) and min(np.bincount(y, minlength=2)) >= params.site_min_per_class:
            eligible.append((attribute, head, rows, y))
    if not eligible:
        return info
    # One latent space serves every head, and is fitted only when a head will use it: it costs seconds.
    public_rows = [i for i, e in enumerate(corpus) if e.source != params.site_source]
    subspace = fit_word_subspace(X_all, public_rows, n_word, params)
    general = GeneralHeads.of(heads)  # before any head is corrected
    for attribute, head, rows, y in eligible:
        w = np.array([corpus[i].weight for i in rows])
        info[attribute] = adapt_to_site(head, X_all[rows], y, w / w.mean(), n_text, subspace, params, general)
    return info


@dataclass(frozen=True)
class GeneralHeads:
    """The general heads before any site correction, as one linear map: ``X @ coef.T + intercept``."""

    coef: np.ndarray  #: (heads, features)
    intercept: np.ndarray  #: (heads,)

    @classmethod
    def of(cls, heads: Sequence[LogisticRegression]) -> GeneralHeads:
        return cls(np.vstack([h.coef_ for h in heads]), np.array([float(h.intercept_[0]) for h in heads]))

    def logits(self, X: sp.csr_matrix) -> np.ndarray:  # noqa: N803
        return np.asarray(X @ self.coef.T) + self.intercept


@dataclass(frozen=True)
class WordSubspace:
    """A latent semantic space of the word columns: ``X[:, columns] @ components.T`` projects a row."""

    n_word: int
    columns: np.ndarray
    components: np.ndarray

    def project(self, X: sp.csr_matrix) -> np.ndarray:  # noqa: N803
        return np.asarray(X[:, self.columns] @ self.components.T)

    def word_coef(self, coef: np.ndarray) -> np.ndarray:
        """A linear head on the projection, as weights on the word columns it came from."""
        full = np.zeros(self.n_word)
        full[self.columns] = coef @ self.components
        return full


def fit_word_subspace(
    X_all: sp.csr_matrix,  # noqa: N803
    rows: Sequence[int],
    n_word: int,
    params: TrainParams,
) -> WordSubspace | None:
    """LSA of the public rows' word columns; only the columns those rows use, to keep it small."""
    if params.site_subspace_dims <= 0 or not rows:
        return None
    rng = np.random.default_rng(params.seed)
    sample = np.sort(rng.choice(np.asarray(rows), min(len(rows), params.site_subspace_rows), replace=False))
    words = X_all[sample][:, :n_word].tocsc()
    columns = np.flatnonzero(np.diff(words.indptr))
    dims = min(params.site_subspace_dims, len(sample) - 1, len(columns) - 1)
    if dims < 2:
        return None
    started = time.monotonic()
    svd = TruncatedSVD(n_components=dims, random_state=params.seed).fit(words[:, columns].tocsr())
    logger.info(
        "site subspace rows=%d columns=%d dims=%d seconds=%.1f",
        len(sample),
        len(columns),
        dims,
        time.monotonic() - started,
    )
    return WordSubspace(n_word, columns, svd.components_)


def adapt_to_site(
    head: LogisticRegression,
    X: sp.csr_matrix,  # noqa: N803
    y: np.ndarray,
    w: np.ndarray,
    n_text: int,
    subspace: WordSubspace | None,
    params: TrainParams,
    general_heads: GeneralHeads | None = None,
) -> dict[str, Any]:
    """Blend heads fitted on the site's labels alone into the general head, calibrated on the site.

    The site heads learn what this site's moderators reject, which a few hundred labels cannot teach a
    model fitted on 60,000 public rows (adding them there, at any weight, moved ROC AUC by at most +0.01).
    One is a logistic regression on the site rows' text features; the next, with a ``subspace``, one on
    their projection into the public rows' latent word space, which carries what a label says about a
    word to the words that keep its company; the last, with ``general_heads``, one on the general heads'
    logits (spam and every toxicity attribute), which learns the site's own mix of them: one site's
    "toxic" is mostly insults to a participant, another's hate or profanity. All logits are standardised
    (the site heads' by their out-of-fold spread, since they have seen their own rows) and averaged, with
    weight ``site_blend`` on the site heads together (less below ``site_full_blend_rows`` rows), then
    Platt-scaled on the site's out-of-fold blend. Every step is linear in the features, so the result is
    folded back into one linear head: scoring costs the same.
    """
    general = np.asarray(X @ head.coef_.ravel(), dtype=np.float64) + float(head.intercept_[0])
    views = {"text": X[:, :n_text]}
    if subspace is not None:
        views["subspace"] = subspace.project(X)
    if general_heads is not None and params.site_heads_c > 0:
        logits = general_heads.logits(X)
        heads_mean, heads_std = logits.mean(axis=0), np.maximum(logits.std(axis=0), 1e-6)
        views["heads"] = (logits - heads_mean) / heads_std
    c_of = {"text": params.site_c, "subspace": params.site_subspace_c, "heads": params.site_heads_c}
    folds = list(
        StratifiedKFold(n_splits=3, shuffle=True, random_state=params.seed).split(np.zeros(len(y)), y)
    )

    def fit(view: str, rows: np.ndarray) -> LogisticRegression:
        site = LogisticRegression(C=c_of[view], solver="liblinear", class_weight="balanced")
        return site.fit(views[view][rows], y[rows], sample_weight=w[rows])

    oof = {view: np.zeros(len(y)) for view in views}
    for view, matrix in views.items():
        for train_rows, test_rows in folds:
            oof[view][test_rows] = fit(view, train_rows).decision_function(matrix[test_rows])
    sites = {view: fit(view, np.arange(len(y))) for view in views}

    # The site heads' say grows with their labels: with few they are noise. Not chosen on the site's own
    # rows: the general head has seen them in training, so it always looks best there.
    a = params.site_blend * min(1.0, len(y) / params.site_full_blend_rows)
    g_scale = (1 - a) / max(float(general.std()), 1e-6)
    s_scale = {view: a / len(views) / max(float(oof[view].std()), 1e-6) for view in views}
    blend = g_scale * general + sum(s_scale[view] * oof[view] for view in views)
    platt = LogisticRegression(C=100.0).fit(blend.reshape(-1, 1), y, sample_weight=w)
    slope = max(float(platt.coef_[0, 0]), 0.05)
    coef = head.coef_ * g_scale
    coef[0, :n_text] += s_scale["text"] * sites["text"].coef_[0]
    intercept = head.intercept_ * g_scale + sum(s_scale[v] * sites[v].intercept_ for v in views)
    if subspace is not None:
        coef[0, : subspace.n_word] += s_scale["subspace"] * subspace.word_coef(sites["subspace"].coef_[0])
    if "heads" in views:
        # A head on standardised logits is a weighted sum of the general heads, shifted.
        weights = s_scale["heads"] * sites["heads"].coef_[0] / heads_std
        coef[0] += weights @ general_heads.coef
        intercept = intercept + weights @ (general_heads.intercept - heads_mean)
    head.coef_ = coef * slope
    head.intercept_ = intercept * slope + platt.intercept_
    info = {
        "rows": int(len(y)),
        "positives": int(y.sum()),
        "blend": a,
        "site_c": params.site_c,
        "general_auc_on_site": round(float(roc_auc_score(y, general)), 4),
        "site_head_oof_auc": round(float(roc_auc_score(y, oof["text"])), 4),
        "blend_oof_auc": round(float(roc_auc_score(y, blend)), 4),
        "calibration": {"slope": round(slope, 4), "intercept": round(float(platt.intercept_[0]), 4)},
    }
    if subspace is not None:
        info["subspace_dims"] = int(subspace.components.shape[0])
        info["subspace_head_oof_auc"] = round(float(roc_auc_score(y, oof["subspace"])), 4)
    if "heads" in views:
        info["heads_head_oof_auc"] = round(float(roc_auc_score(y, oof["heads"])), 4)
        info["heads_head_weights"] = [round(float(c), 4) for c in sites["heads"].coef_[0]]
    return info


def span_counterfactuals(rows: Sequence[LabelledComment], params: TrainParams) -> list[LabelledComment]:
    """Each comment with toxic spans, with those spans cut out and every toxicity label it had set to 0.

    Cutting what people marked leaves what the comment was about. Labelled good, the rest teaches the heads
    that the subject is not what made the comment toxic.
    """
    counterfactuals = []
    for e in rows:
        spans = json.loads(e.extra.get(params.span_counterfactual_cut, "[]"))
        if not spans:
            continue
        text, end = [], 0
        for begin, stop in spans:
            text.append(e.comment.text[end:begin])
            end = stop
        text.append(e.comment.text[end:])
        rest = " ".join(" ".join(text).split())
        if len(rest.split()) < COUNTERFACTUAL_MIN_WORDS:
            continue
        labels = {attribute: 0.0 for attribute in TOXICITY_ATTRIBUTES if attribute in e.labels}
        counterfactuals.append(
            LabelledComment(Comment(rest, language=e.comment.language), labels, COUNTERFACTUAL_SOURCE)
        )
    return counterfactuals


def _source_multipliers(rows: Sequence[LabelledComment], multipliers: dict[str, float]) -> np.ndarray:
    return np.array([multipliers.get(e.source, multipliers.get(source_group(e.source), 1.0)) for e in rows])


def _calibration_weights(
    rows: Sequence[LabelledComment], y: np.ndarray, weights: np.ndarray, params: TrainParams
) -> np.ndarray | None:
    """Weights of the Platt fit: only the calibration domain's rows, at the chosen class prior."""
    if not params.toxicity_calibration_groups:
        return None
    classes: dict[str, set[int]] = defaultdict(set)
    for e, label in zip(rows, y.tolist(), strict=True):
        classes[e.source].add(label)
    # A source of one class only (the toxic spans) says nothing about where the threshold lies between
    # good and toxic comments; it would only drag the calibration towards its class.
    in_domain = np.array(
        [
            source_group(e.source) in params.toxicity_calibration_groups and len(classes[e.source]) == 2
            for e in rows
        ]
    )
    w = np.where(in_domain, weights, 0.0)
    if len(set(y[in_domain].tolist())) < 2 or in_domain.sum() < 200:
        return None  # too little of the domain labels this attribute: calibrate on everything
    if params.toxicity_calibration_equal_groups:
        groups = np.array([source_group(e.source) for e in rows])
        for group in set(groups[in_domain].tolist()):
            mask = in_domain & (groups == group)
            w[mask] *= 1.0 / w[mask].sum()
        w *= in_domain.sum() / w.sum()  # the Platt fit's regularisation is relative to the total weight
    prior = params.toxicity_calibration_prior
    if prior > 0:
        pos, neg = w[y == 1].sum(), w[y == 0].sum()
        w = np.where(y == 1, w * prior / pos, w * (1 - prior) / neg) * w.sum()
    return w


def _spam_matrix(
    rows: list[LabelledComment],
    X_all: sp.csr_matrix,
    unique: dict[int, int],  # noqa: N803
    n_text: int,
    params: TrainParams,
) -> tuple[list[LabelledComment], sp.csr_matrix]:
    """The spam rows and their features; metadata-only sources lose their text and need an author signal."""
    X = X_all[np.array([unique[id(e)] for e in rows])]  # noqa: N806
    meta_only = np.array([source_group(e.source) in params.metadata_only_sources for e in rows])
    if not meta_only.any():
        return rows, X
    if params.metadata:
        author_columns = [n_text + META_NAMES.index(name) for name in AUTHOR_FEATURES]
        has_author_signal = X[:, author_columns].getnnz(axis=1) > 0
    else:
        has_author_signal = np.zeros(len(rows), dtype=bool)
    keep = ~meta_only | has_author_signal
    text_scale = sp.diags(np.where(meta_only, 0.0, 1.0).astype(np.float32))
    X = sp.hstack([text_scale @ X[:, :n_text], X[:, n_text:]], format="csr")  # noqa: N806
    X.eliminate_zeros()
    return [e for e, k in zip(rows, keep, strict=True) if k], X[np.flatnonzero(keep)]


def _with_text_only_copies(
    X: sp.csr_matrix,  # noqa: N803
    y: np.ndarray,
    w: np.ndarray,
    n_text: int,
    params: TrainParams,
    eligible: np.ndarray | None = None,
) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray, np.ndarray | None]:
    """Spam rows with an author signal, once more without it (``spam_text_only_share`` of their weight).

    Only ``eligible`` rows are copied: the caller leaves out generic praise ("Very informative, thanks
    for sharing"), which readers write too, so that only its author fields make such a comment spam.

    Returns the matrix, labels, weights and the group of each row (the original row's index), so that a
    comment and its copy fall in the same calibration fold.
    """
    share = params.spam_text_only_share
    if not params.metadata or share <= 0:
        return X, y, w, None
    author_columns = np.array([n_text + META_NAMES.index(name) for name in AUTHOR_FEATURES])
    has_text = X[:, :n_text].getnnz(axis=1) > 0  # metadata-only rows have nothing left to copy
    wanted = has_text & (y == 1) if eligible is None else has_text & (y == 1) & eligible
    copied = np.flatnonzero((X[:, author_columns].getnnz(axis=1) > 0) & wanted)
    if not len(copied):
        return X, y, w, None
    copies = X[copied].tolil()
    copies[:, author_columns] = 0
    copies = copies.tocsr()
    copies.eliminate_zeros()
    weights = w.copy()
    weights[copied] *= 1 - share
    groups = np.r_[np.arange(len(y)), copied]
    return (
        sp.vstack([X, copies], format="csr"),
        np.r_[y, y[copied]],
        np.r_[weights, w[copied] * share],
        groups,
    )


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


#: How the public sets' labels map onto our attributes (as loaded by ``classifier.datasets``).
LABEL_MAPPING: dict[str, str] = {
    "youtube, sms": "CLASS / ham-spam -> spam",
    "wordpress, wordpress-second": "spam = 1 for every row (spam queues); text and author fields learned; "
    "paired with news-site comments as ham",
    "civil:spans": "toxicity 1 (weight 0.5 when most annotators said not toxic), span types -> insult, "
    "threat, profanity, identity_attack 1; row weight x0.3 for toxicity",
    COUNTERFACTUAL_SOURCE: "civil:spans with every span an annotator marked cut out (4 or more words "
    "left): the toxicity attributes it had -> 0; row weight x0.3",
    "impermium": "Insult -> insult and toxicity",
    "fox": "hateful -> toxicity",
    "jigsaw": "toxic->toxicity, severe_toxic->severe_toxicity, obscene->profanity, threat->threat, "
    "insult->insult, identity_hate->identity_attack",
    "civil": "rater fractions thresholded at 0.5: toxicity, severe_toxicity, insult, threat, "
    "identity_attack, "
    "obscene->profanity",
    "davidson": "hate->toxicity 1 + identity_attack 1; offensive->toxicity 1 + identity_attack 0; "
    "neither->toxicity 0 + identity_attack 0 (other attributes unknown)",
    "olid": "NOT->all six 0; OFF/TIN->toxicity 1 + insult 1 (others unknown); OFF/UNT->toxicity 1 + "
    "profanity 1, insult/threat/identity_attack 0 (OLID's OFF is offensive language)",
    "spam negatives": "texts of the toxicity sets (no spam label) are used as spam = 0",
}
