"""Evaluation: metric helpers on known arrays, the held-out split, folds, and the report writer."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import numpy as np
import pytest

from classifier import evaluation
from classifier.comment import ATTRIBUTES, TOXICITY_ATTRIBUTES, Comment, LabelledComment
from classifier.evaluation import (
    Baseline,
    Fold,
    ReportContext,
    evaluate_folds,
    evaluate_per_source,
    fold_test_examples,
    fold_train_examples,
    write_report,
)

# --- split and folds -------------------------------------------------------------------------------


def lc(text: str, source: str, **labels: float) -> LabelledComment:
    return LabelledComment(Comment(text), dict(labels), source)


def test_wordpress_fold_uses_civil_as_ham_and_keeps_both_out_of_training():
    examples = [
        lc("buy", "wordpress", spam=1),
        lc("news talk", "civil", toxicity=0),
        lc("idiot", "civil:spans", toxicity=1),
        lc("cheap", "wordpress-second", spam=1),
        lc("x", "sms", spam=0),
    ]
    fold = next(f for f in evaluation.SPAM_FOLDS if f.name == "wordpress+civil")
    test = fold_test_examples(examples, fold)
    assert [e.labels for e in test] == [{"spam": 1}, {"toxicity": 0, "spam": 0.0}]
    # the other Civil Comments rows and the other blog's spam stay out of training too
    assert [e.source for e in fold_train_examples(examples, fold)] == ["sms"]
    names = {f.name for f in evaluation.TOXICITY_FOLDS}
    assert names == {"jigsaw", "davidson", "olid", "civil", "impermium", "fox"}
    civil = next(f for f in evaluation.TOXICITY_FOLDS if f.name == "civil")
    kept = [e.source for e in fold_train_examples(examples, civil)]
    assert kept == ["wordpress", "wordpress-second", "sms"]


# --- models and the report -------------------------------------------------------------------------

SPAM_TEXTS = [
    "buy cheap watches online now",
    "win a free iphone click here",
    "check out my channel subscribe",
    "cheap pills discount pharmacy",
    "earn money from home fast",
    "free followers visit my site",
]
HAM_TEXTS = [
    "i enjoyed this article a lot",
    "the mayor should explain the budget",
    "great song, takes me back",
    "thanks for the thoughtful reporting",
    "i disagree with the council vote",
    "what a lovely view",
]
TOXIC_TEXTS = [
    "you are a stupid idiot",
    "shut up you moron",
    "i will kill you",
    "fuck off loser",
    "go back to your country scum",
    "you worthless piece of shit",
]


def inline_examples(copies: int = 3) -> list[LabelledComment]:
    """Two spam sources and two toxicity sources; every toxicity attribute has both classes in each."""
    examples = []
    for k in range(copies):
        for source in ("spam_a", "spam_b"):
            examples += [lc(f"{t} {source} {k}", source, spam=1) for t in SPAM_TEXTS]
            examples += [lc(f"{t} {source} {k}", source, spam=0) for t in HAM_TEXTS]
        for source in ("tox_a", "tox_b"):
            for i, t in enumerate(TOXIC_TEXTS):
                labels = {a: 0.0 for a in TOXICITY_ATTRIBUTES}
                labels.update(
                    toxicity=1.0,
                    insult=1.0,
                    severe_toxicity=float(i % 2),
                    profanity=float(i % 2),
                    threat=float(i == 2),
                    identity_attack=float(i == 4),
                )
                examples.append(lc(f"{t} {source} {k}", source, **labels))
            examples += [
                lc(f"{t} {source} {k}", source, **{a: 0.0 for a in TOXICITY_ATTRIBUTES}) for t in HAM_TEXTS
            ]
    return examples


@pytest.fixture(scope="module")
def small_model(request: pytest.FixtureRequest):
    """conftest's session ``tiny_model`` when there is one, else a tiny model trained here."""
    try:
        return request.getfixturevalue("tiny_model")
    except pytest.FixtureLookupError:
        from classifier.training import TrainParams, train

        return train(inline_examples(), TrainParams(word_bits=12, char_bits=13, min_df=1, calibrate=False))


def test_baseline_ranks_obvious_examples():
    baseline = Baseline().fit(inline_examples(), ["spam", "toxicity"])
    scores = baseline.predict(
        [
            Comment("cheap watches free iphone"),
            Comment("thoughtful article on the budget"),
            Comment("you stupid moron"),
        ]
    )
    spam, tox = ATTRIBUTES.index("spam"), ATTRIBUTES.index("toxicity")
    assert scores[0, spam] > scores[1, spam] and scores[2, tox] > scores[1, tox]
    assert np.isnan(scores[:, ATTRIBUTES.index("threat")]).all()  # not fitted: unknown, not 0


def test_report_on_a_tiny_model(tmp_path, small_model):
    examples = inline_examples()
    per_source = evaluate_per_source(small_model.predict, examples)
    names = {(s.name, s.metrics.attribute) for s in per_source}
    assert names >= {("spam_a", "spam"), ("tox_b", "toxicity")}
    assert all(s.metrics.n > 0 for s in per_source)

    def train_fn(train_examples: Sequence[LabelledComment], fold: Fold):
        return Baseline().fit(train_examples, ["spam", "toxicity"]).predict  # fast stand-in for train()

    folds = (
        Fold("spam_b", "spam", ("spam_b",), ("spam_b",)),
        Fold("tox_a", "toxicity", ("tox_a",), ("tox_a",)),
    )
    monkey_min = evaluation.MIN_CLASS_COUNT
    evaluation.MIN_CLASS_COUNT = 1
    try:
        results = evaluate_folds(examples, train_fn, folds)
    finally:
        evaluation.MIN_CLASS_COUNT = monkey_min
    assert [r.fold.name for r in results] == ["spam_b", "tox_a"]
    assert "spam" in results[0].ours and "spam" in results[0].baseline

    context = ReportContext("tiny-1", "python -m classifier evaluate --quick", "inline", quick=True)
    path = write_report(tmp_path / "reports", context, per_source, results)
    text = path.read_text(encoding="utf-8")
    assert "| spam_b | spam |" in text and "AUC base" in text and "held-out" in text
    for png in ("calibration.png", "pr_spam.png", "loso_pr_spam.png", "loso_pr_toxicity.png"):
        assert (tmp_path / "reports" / png).stat().st_size > 1000
        assert f"]({png})" in text


def test_cli_arguments():
    parser = argparse.ArgumentParser()
    evaluation.add_arguments(parser)
    args = parser.parse_args(["--data-dir", "d", "--registry", "r", "--model", "v3", "--out", "o", "--quick"])
    assert (str(args.data_dir), str(args.registry), args.model, str(args.out), args.quick) == (
        "d",
        "r",
        "v3",
        "o",
        True,
    )


def test_main_reports_a_bad_data_dir(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    evaluation.add_arguments(parser)
    args = parser.parse_args(["--data-dir", str(tmp_path), "--out", str(tmp_path / "r")])
    assert evaluation.main(args) == 2
    assert "error:" in capsys.readouterr().out
    assert evaluation.main(["--data-dir", str(tmp_path), "--out", str(tmp_path / "r")]) == 2  # raw strings


def test_main_end_to_end_on_a_tiny_registry(tmp_path, monkeypatch, capsys, request):
    try:
        registry = request.getfixturevalue("tiny_registry")
    except pytest.FixtureLookupError:
        pytest.skip("conftest has no tiny_registry fixture")
    import classifier.datasets

    monkeypatch.setattr(classifier.datasets, "load_public", lambda data_dir: inline_examples())
    out = tmp_path / "reports"
    # no public source is present, so every leave-one-source-out fold is skipped: this checks the wiring
    assert evaluation.main(["--registry", str(registry.root), "--out", str(out)]) == 0
    text = (out / "evaluation.md").read_text(encoding="utf-8")
    assert "## Per source, held-out rows" in text and "| spam_a | spam |" in text
    assert "wrote" in capsys.readouterr().out


def test_tasks_option_selects_the_folds(tmp_path, monkeypatch):
    import classifier.datasets

    monkeypatch.setattr(classifier.datasets, "load_public", lambda data_dir: inline_examples())
    seen: list[str] = []

    def fake_folds(examples, train_ours, folds=evaluation.FOLDS, progress=False, run_baseline=True):
        seen.extend(f.task for f in folds)
        return []

    monkeypatch.setattr(evaluation, "evaluate_folds", fake_folds)
    out = tmp_path / "r"
    assert evaluation.main(["--out", str(out), "--tasks", "spam", "--no-per-source"]) == 0
    assert seen and set(seen) == {"spam"}
    assert "--tasks spam --no-per-source" in (out / "evaluation.md").read_text(encoding="utf-8")
    seen.clear()
    assert evaluation.main(["--out", str(out), "--tasks", "toxicity", "--no-per-source"]) == 0
    assert seen and set(seen) == {"toxicity"}
    assert evaluation.main(["--out", str(out), "--tasks", "bogus", "--no-per-source"]) == 2
