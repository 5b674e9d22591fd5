"""The news-site stream report: splits by source and by time, figures on known decisions, the policy."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from classifier.comment import ATTRIBUTES, Comment, LabelledComment
from classifier.metrics import policy_status
from classifier.stream import (
    evaluate_stream,
    run_stream_folds,
    split_by_time,
    stream_figures,
    stream_split,
    stream_tables,
    toxicity_hold_table,
    without_author,
)
from service.policy import apply_policy
from service.settings import Thresholds

START = datetime(2016, 1, 1, tzinfo=UTC)


def spam(i: int, source: str = "wordpress") -> LabelledComment:
    return LabelledComment(
        Comment(f"great post {i}", name="Cheap Loans", url="http://loans.example/"),
        {"spam": 1.0},
        source,
        created_at=START + timedelta(days=i),
    )


def news(i: int, source: str, toxic: bool) -> LabelledComment:
    return LabelledComment(Comment(f"reader {i}"), {"toxicity": float(toxic)}, source)


def test_split_by_time_holds_out_the_newest_rows():
    rows = [spam(i) for i in (5, 1, 9, 3, 7, 2, 8, 4, 6, 0)]
    older, newer = split_by_time(rows, "wordpress", fraction=0.3)
    assert [r.created_at.day - 1 for r in newer] == [7, 8, 9]
    assert len(older) == 7 and max(r.created_at for r in older) < min(r.created_at for r in newer)


def test_stream_split_keeps_the_news_source_the_newer_spam_and_the_other_blog_out_of_training():
    examples = [spam(i) for i in range(10)] + [spam(i, "wordpress-second") for i in range(3)]
    examples += [news(i, "fox", i % 4 == 0) for i in range(8)]
    examples += [news(i, "impermium", i % 2 == 0) for i in range(4)]
    examples += [LabelledComment(Comment("idiot"), {"toxicity": 1.0}, "civil:spans")]
    split = stream_split(examples, "fox")
    trained = {id(e) for e in split.train}
    assert not any(id(e) in trained for e in [*split.news, *split.spam_by_time, *split.spam_other_blog])
    assert {e.source for e in split.train} == {"wordpress", "impermium", "civil:spans"}
    assert len(split.news) == 8 and len(split.spam_by_time) == 3 and len(split.spam_other_blog) == 3
    civil = stream_split(examples, "civil")
    assert civil.news == [] and all(e.source != "civil:spans" for e in civil.train)  # spans leave with civil


def test_stream_figures_on_known_decisions():
    # 4 good (3 approved, 1 held), 2 toxic (1 approved, 1 held); spam: 1 approved, 1 held, 2 rejected
    news_status = ["approved", "approved", "approved", "held", "approved", "held"]
    toxic = [False, False, False, False, True, True]
    spam_status = ["approved", "held", "rejected", "rejected"]
    f = stream_figures(news_status, toxic, spam_status, spam_share=0.5, toxic_rate=0.5)
    # weights: good 0.25/4, toxic 0.25/2, spam 0.5/4 -> approved good 3/16, toxic 1/8, spam 1/8
    assert f.bad_among_approved == pytest.approx((1 / 8 + 1 / 8) / (3 / 16 + 1 / 8 + 1 / 8))
    assert f.to_person == pytest.approx(1 / 16 + 1 / 8 + 1 / 8)
    assert f.spam_published == 0.25 and f.toxic_published == 0.5 and f.good_rejected == 0.0
    rejected_good = stream_figures(["rejected", *news_status[1:]], toxic, spam_status, 0.1)
    assert rejected_good.good_rejected == 0.25
    with pytest.raises(ValueError):
        stream_figures(["approved"], [False], spam_status, 0.5)


def test_policy_status_agrees_with_the_service_policy():
    """classifier/ cannot import service/, so it mirrors the default policy: both must decide alike."""
    thresholds = Thresholds()
    grid = [0.0, 0.49, 0.5, 0.59, 0.6, 0.96, 0.97, 1.0]
    texts = [
        "plain",
        "see http://a.example and http://b.example",
        "a http://a.example b www.b.example c www.c.example",
    ]
    for spam_score, toxicity, threat, text in itertools.product(grid, grid, grid, texts):
        row = [spam_score, toxicity, 0.1, 0.1, 0.1, threat, 0.1]
        scores = dict(zip(ATTRIBUTES, row, strict=True))
        assert policy_status(row, text) == apply_policy(scores, text, thresholds).status, (row, text)


def test_a_lower_toxicity_hold_replaces_every_toxicity_threshold_and_nothing_else():
    row = [0.1, 0.45, 0.1, 0.1, 0.1, 0.1, 0.1]
    assert policy_status(row, "plain") == "approved"
    assert policy_status(row, "plain", toxicity_hold=0.4) == "held"
    threat = [0.1, 0.1, 0.1, 0.1, 0.1, 0.45, 0.1]
    assert policy_status(threat, "plain", toxicity_hold=0.4) == "held"
    assert policy_status([0.98, *row[1:]], "plain", toxicity_hold=0.4) == "rejected"  # spam comes first


def test_without_author_keeps_only_the_text():
    stripped = without_author(spam(1))
    assert stripped.comment == Comment("great post 1") and stripped.labels == {"spam": 1.0}


def _fake_scorer(comments):
    """Spam from the author name, toxicity from the word 'idiot'."""
    out = np.full((len(comments), len(ATTRIBUTES)), 0.05)
    for i, c in enumerate(comments):
        if c.name == "Cheap Loans":
            out[i, 0] = 0.99
        if "idiot" in c.text:
            out[i, 1] = 0.9
    return out


def test_evaluate_stream_and_its_tables():
    examples = [spam(i) for i in range(10)] + [spam(i, "wordpress-second") for i in range(4)]
    examples += [LabelledComment(Comment(f"you idiot {i}"), {"toxicity": 1.0}, "fox") for i in range(3)]
    examples += [news(i, "fox", False) for i in range(30)]
    [result] = run_stream_folds(examples, lambda rows: _fake_scorer, groups=("fox", "impermium"))
    assert result.news_group == "fox" and result.toxicity_auc == 1.0
    assert result.spam_caught["by time, with author fields"] == 1.0
    assert result.spam_caught["other blog, text only"] == 0.0  # the fake scorer needs the author name
    with_author, text_only = result.streams["with author fields"], result.streams["text only"]
    assert [f.spam_share for f in with_author] == [0.1, 0.5]
    assert with_author[1].bad_among_approved == 0.0 and with_author[1].spam_published == 0.0
    assert text_only[1].spam_published == 1.0 and text_only[1].bad_among_approved > 0.5
    assert with_author[0].to_person == pytest.approx(0.9 * 0.08)  # the toxic comments, all held
    table = "\n".join(stream_tables([result]))
    assert "| fox | 50 % | text only |" in table and "| fox | 33 | 3 | 1.000 | - | - |" in table
    split = stream_split(examples, "fox")
    baseline = evaluate_stream(split, _fake_scorer, baseline=lambda comments: np.zeros((len(comments), 7)))
    assert baseline.baseline_toxicity_auc == 0.5


def test_the_stream_replayed_at_lower_toxicity_holds_trades_toxic_published_for_people():
    """Toxic comments scoring 0.45 pass the default hold (0.6) and are held from 0.4 down."""

    def borderline(comments):
        out = _fake_scorer(comments)
        out[:, 1] = np.where(out[:, 1] > 0.5, 0.45, out[:, 1])
        return out

    examples = [spam(i) for i in range(10)] + [spam(i, "wordpress-second") for i in range(4)]
    examples += [LabelledComment(Comment(f"you idiot {i}"), {"toxicity": 1.0}, "fox") for i in range(3)]
    examples += [news(i, "fox", False) for i in range(30)]
    result = evaluate_stream(stream_split(examples, "fox"), borderline)
    assert list(result.by_toxicity_hold) == [0.6, 0.5, 0.4, 0.3, 0.2]
    default, lowered = result.by_toxicity_hold[0.6][1], result.by_toxicity_hold[0.4][1]
    assert default == result.streams["with author fields"][1]  # the default policy's own figures
    assert default.toxic_published == 1.0 and lowered.toxic_published == 0.0
    assert lowered.to_person == pytest.approx(default.to_person + 0.5 * 0.08)
    assert lowered.bad_among_approved == 0.0 < default.bad_among_approved
    table = "\n".join(toxicity_hold_table([result]))
    assert "| fox | 0.40 | 0.0 % / 7.2 % / 0.0 % | 0.0 % / 4.0 % / 0.0 % |" in table


def test_span_agreement_compares_highlighted_words_with_the_marked_ones(tiny_model):
    import json as _json

    from classifier.stream import span_agreement

    text = "you are a stupid idiot"
    start = text.index("idiot")
    marked = LabelledComment(
        Comment(text),
        {"toxicity": 1.0},
        "civil:spans",
        extra={"toxic_spans": _json.dumps([[start, start + 5]])},
    )
    unmarked = LabelledComment(
        Comment("no spans"), {"toxicity": 1.0}, "civil:spans", extra={"toxic_spans": "[]"}
    )
    agreement = span_agreement(tiny_model, [marked, unmarked])
    assert agreement.comments == 1  # comments without agreed spans are not scored
    # the tiny model's strongest reason is "idiot", the word marked here
    assert agreement.with_word_reason == 1.0 and agreement.top_reason_on_human_span == 1.0
    elsewhere = LabelledComment(
        Comment(text), {"toxicity": 1.0}, "civil:spans", extra={"toxic_spans": _json.dumps([[0, 3]])}
    )
    missed = span_agreement(tiny_model, [elsewhere])  # people marked "you": no highlighted word there
    assert missed.top_reason_on_human_span == 0.0 and missed.any_reason_on_human_span == 0.0
