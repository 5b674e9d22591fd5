"""The news-site stream report: what moderators of a news site would feel, on comments the model never saw.

A news site receives its readers' comments and the blog spam every WordPress site gets. The report trains
the default recipe without one news source and without the newer part of the blog spam, then plays the
default policy (:func:`classifier.metrics.policy_status`) on a stream made of

* the held-out news source's comments, reweighted to :data:`NEWS_TOXIC_RATE` toxic (the labelled sets are
  enriched with toxic comments; a news site sees about 8 %), and
* blog spam held out **by time** (the newest :data:`TIME_HOLDOUT_FRACTION` of the WordPress queue, which
  has dates) and **by source** (a second blog's spam queue, never trained on), with its author fields and
  with the text alone,

mixed at :data:`SPAM_SHARES` spam. For each mix it reports the share of bad (toxic or spam) comments among
the approved, the share sent to a person, good comments rejected, spam published and toxic published. It
plays the same stream again at the lower toxicity hold thresholds of :data:`TOXICITY_HOLD_SWEEP`: what a
site that lowers its thresholds trades, fewer toxic comments published for more sent to a person.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score

from classifier.comment import ATTRIBUTES, Comment, LabelledComment
from classifier.metrics import POLICY_THRESHOLDS, policy_status

#: Source groups of news-site reader comments; each is held out in turn.
NEWS_GROUPS: tuple[str, ...] = ("civil", "impermium", "fox")
#: Sources that are news comments but carry no ham (toxic spans): kept out with their group, never tested.
POSITIVE_ONLY_SOURCES: tuple[str, ...] = ("civil:spans",)
#: The dated blog spam queue split by time, and the second blog held out as a whole.
TIME_SPLIT_SOURCE = "wordpress"
OTHER_BLOG_SOURCE = "wordpress-second"
TIME_HOLDOUT_FRACTION = 0.3
#: Toxic share of a news site's comments (Civil Comments: about 8 %).
NEWS_TOXIC_RATE = 0.08
SPAM_SHARES: tuple[float, ...] = (0.1, 0.5)
#: Toxicity hold thresholds the stream is replayed at (the default policy's first).
TOXICITY_HOLD_SWEEP: tuple[float, ...] = (0.6, 0.5, 0.4, 0.3, 0.2)

#: Scores comments: an array of shape (n, len(ATTRIBUTES)), columns in ATTRIBUTES order.
Scorer = Callable[[Sequence[Comment]], np.ndarray]
#: Trains on labelled comments and returns a scorer.
Trainer = Callable[[Sequence[LabelledComment]], Scorer]


def source_group(source: str) -> str:
    return source.split(":", 1)[0]


def split_by_time(
    examples: Sequence[LabelledComment], source: str, fraction: float = TIME_HOLDOUT_FRACTION
) -> tuple[list[LabelledComment], list[LabelledComment]]:
    """(older, newer) rows of ``source`` with a date; the newest ``fraction`` is the newer part."""
    dated = sorted((e for e in examples if e.source == source and e.created_at), key=_created)
    cut = len(dated) - int(round(len(dated) * fraction))
    return dated[:cut], dated[cut:]


def _created(example: LabelledComment) -> float:
    return example.created_at.timestamp() if example.created_at else 0.0


def without_author(example: LabelledComment) -> LabelledComment:
    """The comment as a CMS that sends only the text would send it."""
    return replace(example, comment=Comment(example.comment.text, language=example.comment.language))


@dataclass(frozen=True)
class StreamSplit:
    """One fold: what is trained on, and the held-out news comments and blog spam."""

    news_group: str
    train: list[LabelledComment]
    news: list[LabelledComment]  #: the held-out news source's comments (labelled for toxicity)
    spam_by_time: list[LabelledComment]  #: the newer part of the dated spam queue
    spam_other_blog: list[LabelledComment]  #: a blog never trained on


def stream_split(examples: Sequence[LabelledComment], news_group: str) -> StreamSplit:
    _, newer = split_by_time(examples, TIME_SPLIT_SOURCE)
    held = {id(e) for e in newer}
    train = [
        e
        for e in examples
        if source_group(e.source) != news_group and e.source != OTHER_BLOG_SOURCE and id(e) not in held
    ]
    news = [
        e
        for e in examples
        if source_group(e.source) == news_group
        and e.source not in POSITIVE_ONLY_SOURCES
        and "toxicity" in e.labels
    ]
    other_blog = [e for e in examples if e.source == OTHER_BLOG_SOURCE]
    return StreamSplit(news_group, train, news, newer, other_blog)


@dataclass(frozen=True)
class StreamFigures:
    """What moderators feel at one spam share; shares of the stream unless said otherwise."""

    spam_share: float
    bad_among_approved: float
    to_person: float
    good_rejected: float  #: of the good comments
    spam_published: float  #: of the spam
    toxic_published: float  #: of the toxic comments


def stream_figures(
    news_status: Sequence[str],
    news_toxic: Sequence[bool],
    spam_status: Sequence[str],
    spam_share: float,
    toxic_rate: float = NEWS_TOXIC_RATE,
) -> StreamFigures:
    """Figures of a stream mixed by weights: good and toxic news at ``toxic_rate``, spam at ``spam_share``."""
    status = np.array(news_status)
    toxic = np.array(news_toxic, dtype=bool)
    spam = np.array(spam_status)
    if not len(spam) or not toxic.any() or toxic.all():
        raise ValueError("the stream needs spam, toxic and good comments")
    w_good = (1 - spam_share) * (1 - toxic_rate) / (~toxic).sum()
    w_toxic = (1 - spam_share) * toxic_rate / toxic.sum()
    w_spam = spam_share / len(spam)

    def share(outcome: str) -> tuple[float, float, float]:
        return (
            w_good * float(((status == outcome) & ~toxic).sum()),
            w_toxic * float(((status == outcome) & toxic).sum()),
            w_spam * float((spam == outcome).sum()),
        )

    good, bad_toxic, bad_spam = share("approved")
    approved = good + bad_toxic + bad_spam
    return StreamFigures(
        spam_share=spam_share,
        bad_among_approved=(bad_toxic + bad_spam) / approved if approved else float("nan"),
        to_person=sum(share("held")),
        good_rejected=float(((status == "rejected") & ~toxic).mean() / (~toxic).mean()),
        spam_published=float((spam == "approved").mean()),
        toxic_published=float(((status == "approved") & toxic).sum() / toxic.sum()),
    )


@dataclass
class StreamResult:
    """One held-out news source with the held-out blog spam."""

    news_group: str
    news_rows: int
    toxic_rows: int
    toxicity_auc: float
    baseline_toxicity_auc: float | None
    news_flagged_as_spam: float  #: share of the news comments scoring at or above spam hold
    spam_caught: dict[str, float]  #: at the spam hold threshold, by spam set and author fields
    spam_text_auc: float  #: blog spam (text only) vs. the news comments, ROC AUC of the spam score
    streams: dict[str, list[StreamFigures]] = field(default_factory=dict)  #: by author-field variant
    #: The stream with author fields, by toxicity hold threshold (:data:`TOXICITY_HOLD_SWEEP`).
    by_toxicity_hold: dict[float, list[StreamFigures]] = field(default_factory=dict)


def evaluate_stream(split: StreamSplit, scorer: Scorer, baseline: Scorer | None = None) -> StreamResult:
    """Score the held-out parts of ``split`` with ``scorer`` and play the default policy on the stream."""
    news_comments = [e.comment for e in split.news]
    news_scores = scorer(news_comments)
    toxic = np.array([e.labels["toxicity"] >= 0.5 for e in split.news])
    spam_sets = {"by time": split.spam_by_time, "other blog": split.spam_other_blog}
    spam_hold = POLICY_THRESHOLDS["spam"]["hold"]
    caught: dict[str, float] = {}
    scored: dict[str, list[tuple[np.ndarray, Comment]]] = {"with author fields": [], "text only": []}
    for name, rows in spam_sets.items():
        if not rows:
            continue
        for variant, comments in (
            ("with author fields", [e.comment for e in rows]),
            ("text only", [without_author(e).comment for e in rows]),
        ):
            scores = scorer(comments)
            caught[f"{name}, {variant}"] = float((scores[:, 0] >= spam_hold).mean())
            scored[variant].extend(zip(scores, comments, strict=True))

    def statuses(pairs: Sequence[tuple[np.ndarray, Comment]], hold: float | None = None) -> list[str]:
        return [policy_status(s, c.text, toxicity_hold=hold) for s, c in pairs]

    news_scored = list(zip(news_scores, news_comments, strict=True))
    news_status = statuses(news_scored)
    spam_text = np.array([s[0] for s, _ in scored["text only"]])
    spam_auc = roc_auc_score(
        np.r_[np.zeros(len(news_scores)), np.ones(len(spam_text))], np.r_[news_scores[:, 0], spam_text]
    )
    result = StreamResult(
        news_group=split.news_group,
        news_rows=len(split.news),
        toxic_rows=int(toxic.sum()),
        toxicity_auc=float(roc_auc_score(toxic, news_scores[:, ATTRIBUTES.index("toxicity")])),
        baseline_toxicity_auc=None,
        news_flagged_as_spam=float((news_scores[:, 0] >= spam_hold).mean()),
        spam_caught=caught,
        spam_text_auc=float(spam_auc),
    )
    if baseline is not None:
        base = baseline(news_comments)[:, ATTRIBUTES.index("toxicity")]
        result.baseline_toxicity_auc = float(roc_auc_score(toxic, base))
    for variant, pairs in scored.items():
        spam_status = statuses(pairs)
        result.streams[variant] = [
            stream_figures(news_status, toxic.tolist(), spam_status, share) for share in SPAM_SHARES
        ]
    for hold in TOXICITY_HOLD_SWEEP:
        news_at, spam_at = statuses(news_scored, hold), statuses(scored["with author fields"], hold)
        result.by_toxicity_hold[hold] = [
            stream_figures(news_at, toxic.tolist(), spam_at, share) for share in SPAM_SHARES
        ]
    return result


def run_stream_folds(
    examples: Sequence[LabelledComment],
    trainer: Trainer,
    baseline_trainer: Trainer | None = None,
    groups: Sequence[str] = NEWS_GROUPS,
) -> list[StreamResult]:
    """Train once per held-out news source and evaluate the stream on it."""
    results = []
    for group in groups:
        split = stream_split(examples, group)
        toxic = {e.labels["toxicity"] >= 0.5 for e in split.news}
        if toxic != {True, False} or not (split.spam_by_time or split.spam_other_blog):
            continue  # this data has no such source (a subsample, a test)
        baseline = baseline_trainer(split.train) if baseline_trainer else None
        results.append(evaluate_stream(split, trainer(split.train), baseline))
    return results


def _pct(value: float, digits: int = 1) -> str:
    return "-" if value != value else f"{100 * value:.{digits}f} %"


def stream_tables(results: Sequence[StreamResult]) -> list[str]:
    """Markdown: the stream table per variant, spam caught by time and by source, toxicity per source."""
    lines = [
        "| held-out news source | spam in stream | blog spam fields | bad among approved | sent to a person "
        "| good rejected | spam published | toxic published |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        for variant, figures in r.streams.items():
            for f in figures:
                lines.append(
                    f"| {r.news_group} | {_pct(f.spam_share, 0)} | {variant} | {_pct(f.bad_among_approved)} "
                    f"| {_pct(f.to_person)} | {_pct(f.good_rejected, 2)} | {_pct(f.spam_published)} "
                    f"| {_pct(f.toxic_published)} |"
                )
    lines += ["", *toxicity_hold_table(results)]
    lines += ["", "Blog spam caught at the spam hold threshold, and news comments flagged as spam:", ""]
    variants = sorted({k for r in results for k in r.spam_caught})
    lines.append(
        "| held-out news source | " + " | ".join(variants) + " | news flagged | spam vs news AUC (text) |"
    )
    lines.append("|---|" + "---|" * (len(variants) + 2))
    for r in results:
        cells = [_pct(r.spam_caught.get(v, float("nan"))) for v in variants]
        lines.append(
            f"| {r.news_group} | " + " | ".join(cells) + f" | {_pct(r.news_flagged_as_spam, 2)} "
            f"| {r.spam_text_auc:.3f} |"
        )
    lines += ["", "Toxicity ROC AUC on the held-out news source, ours against the reference recipe:", ""]
    lines += [
        "| held-out news source | rows | toxic | ours | reference | difference |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        base = r.baseline_toxicity_auc
        diff = "-" if base is None else f"{r.toxicity_auc - base:+.3f}"
        lines.append(
            f"| {r.news_group} | {r.news_rows} | {r.toxic_rows} | {r.toxicity_auc:.3f} "
            f"| {'-' if base is None else f'{base:.3f}'} | {diff} |"
        )
    return lines


def toxicity_hold_table(results: Sequence[StreamResult]) -> list[str]:
    """Markdown: the stream with author fields replayed at each toxicity hold threshold."""
    shares = [f"{share:.0%} spam" for share in SPAM_SHARES]
    lines = [
        "The same stream (blog spam with author fields) at lower toxicity hold thresholds, as a site that "
        "lowers them on the thresholds page would play it: bad among approved / sent to a person / toxic "
        "published.",
        "",
        "| held-out news source | toxicity hold | " + " | ".join(shares) + " |",
        "|---|---|" + "---|" * len(shares),
    ]
    for r in results:
        for hold, figures in r.by_toxicity_hold.items():
            cells = [
                f"{_pct(f.bad_among_approved)} / {_pct(f.to_person)} / {_pct(f.toxic_published)}"
                for f in figures
            ]
            lines.append(f"| {r.news_group} | {hold:.2f} | " + " | ".join(cells) + " |")
    return lines


@dataclass(frozen=True)
class SpanAgreement:
    """Whether the words our reasons highlight are the words people marked as toxic."""

    comments: int  #: toxic comments with agreed human spans that were scored
    with_word_reason: float  #: share given at least one highlighted word for a toxicity attribute
    top_reason_on_human_span: float  #: of those, share whose strongest reason overlaps a human span
    any_reason_on_human_span: float  #: of those, share with any highlighted reason on a human span


def span_agreement(model: Any, examples: Sequence[LabelledComment], limit: int = 2000) -> SpanAgreement:
    """Score toxic-span comments with reasons and compare the highlighted offsets with the agreed spans."""
    rows = [e for e in examples if json.loads(e.extra.get("toxic_spans", "[]"))][:limit]
    scores = model.score([e.comment for e in rows], explain=True)
    with_reason = top_hits = any_hits = 0
    for example, score in zip(rows, scores, strict=True):
        human = [tuple(span) for span in json.loads(example.extra["toxic_spans"])]
        reasons = [r for r in score.reasons if r.attribute != "spam" and r.spans]
        if not reasons:
            continue
        with_reason += 1
        top = max(reasons, key=lambda r: r.weight)
        top_hits += _overlaps(top.spans, human)
        any_hits += any(_overlaps(r.spans, human) for r in reasons)
    return SpanAgreement(
        comments=len(rows),
        with_word_reason=with_reason / len(rows) if rows else float("nan"),
        top_reason_on_human_span=top_hits / with_reason if with_reason else float("nan"),
        any_reason_on_human_span=any_hits / with_reason if with_reason else float("nan"),
    )


def _overlaps(ours: Sequence[tuple[int, int]], theirs: Sequence[tuple[int, int]]) -> bool:
    return any(b < e2 and b2 < e for b, e in ours for b2, e2 in theirs)


def span_table(agreement: SpanAgreement) -> list[str]:
    return [
        f"On {agreement.comments} toxic news comments with spans people agreed on (Civil Comments toxic "
        "spans, scored by the model trained without Civil Comments):",
        "",
        f"- given at least one highlighted word for a toxicity attribute: {_pct(agreement.with_word_reason)}",
        f"- of those, the strongest reason lies on a word people marked: "
        f"{_pct(agreement.top_reason_on_human_span)}",
        "- of those, some highlighted reason lies on a marked word: "
        f"{_pct(agreement.any_reason_on_human_span)}",
    ]
