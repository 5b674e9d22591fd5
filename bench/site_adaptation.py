"""Site adaptation on many label draws: how much a site's first labels lift its ROC AUC, and how surely.

The learning curve in ``reports/evaluation.md`` runs the real path (``import csv``, ``train --with-labels``)
once per label count, on one draw of labels: about two minutes a point, and one draw moves the gain by
±0.006. This benchmark compares site-adaptation variants on the same site (``impermium``: its older half
is the label pool, its newer half the test) in minutes and over several draws:

1. one general model is trained on the public sets without the site (the ``public_split`` training part);
2. for each label count and draw, the site's labels are split as ``train --with-labels`` splits them (15 %
   kept out as the frozen set, here a random sample; then the newest 20 % kept out as recent), and the
   general toxicity head is adapted on the rest with :func:`classifier.training.adapt_to_site`;
3. the adapted head scores the site's later comments.

It prints the mean and standard deviation of the ROC AUC gain over the draws, per variant. The real path
also trains the general model with the site's rows at 3x weight; the gains here track its curve within
the draws' noise. Run from the repo root::

    .venv/bin/python bench/site_adaptation.py [--data-dir ../shared/data] [--draws 5] \\
        [--variant site_subspace_dims=0] [--variant site_blend=0.75,site_c=1]
"""

from __future__ import annotations

import argparse
import copy
import json
import random
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from classifier.comment import TOXICITY_ATTRIBUTES, LabelledComment  # noqa: E402
from classifier.datasets import PUBLIC_SETS, load_public  # noqa: E402
from classifier.learning import public_split  # noqa: E402
from classifier.learning_curve import LABEL_COUNTS, SITE_SET, site_split  # noqa: E402
from classifier.training import GeneralHeads, TrainParams, adapt_to_site, fit_word_subspace, train  # noqa: E402

FROZEN_SHARE, RECENT_SHARE = 0.15, 0.2


def site_training_rows(pool: list[LabelledComment], n: int, draw: int) -> list[LabelledComment]:
    """The first ``n`` labels of one draw, less a random frozen share and then the newest recent share."""
    labels = pool[:n] if draw == 0 else random.Random(draw).sample(pool, n)
    frozen = set(map(id, random.Random(1000 + draw).sample(labels, int(FROZEN_SHARE * n))))
    rest = sorted((e for e in labels if id(e) not in frozen), key=lambda e: e.created_at or 0)
    return rest[: int(len(rest) * (1 - RECENT_SHARE))]


def parse_variant(text: str) -> dict[str, object]:
    """``site_blend=0.75,site_c=1`` -> ``{"site_blend": 0.75, "site_c": 1}`` (values are JSON)."""
    pairs = (item.split("=", 1) for item in text.split(",") if item)
    return {key.strip(): json.loads(value) for key, value in pairs}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/data"))
    parser.add_argument("--draws", type=int, default=5, help="label draws per count")
    parser.add_argument("--subspace-rows", type=int, default=20_000, help="public rows the latent space sees")
    parser.add_argument("--variant", action="append", default=[], help="TrainParams overrides, key=value,...")
    args = parser.parse_args(argv)

    examples = load_public(args.data_dir)
    pool, later = site_split(examples)
    site_sources = set(PUBLIC_SETS[SITE_SET].sources)
    public_train, _ = public_split([e for e in examples if e.source not in site_sources])
    started = time.monotonic()
    model = train(public_train)
    print(f"general model: {len(public_train)} rows, {time.monotonic() - started:.0f} s")

    vectorizer = model.vectorizer
    n_word, n_text = vectorizer.n_word, vectorizer.n_word + vectorizer.n_char
    general = model.toxicity.named_steps["classifier"].estimators_[TOXICITY_ATTRIBUTES.index("toxicity")]
    general_heads = GeneralHeads.of([model.spam.steps[-1][1], *model.toxicity.steps[-1][1].estimators_])
    X_later = vectorizer.transform([e.comment for e in later])  # noqa: N806
    y_later = np.array([e.labels["toxicity"] >= 0.5 for e in later])
    general_auc = roc_auc_score(y_later, X_later @ general.coef_.ravel())
    print(f"site {SITE_SET}: {len(pool)} labels in the pool, {len(later)} later comments")
    print(f"general model's ROC AUC on them: {general_auc:.4f}")

    sample = random.Random(13).sample(public_train, min(args.subspace_rows, len(public_train)))
    X_public = vectorizer.transform([e.comment for e in sample])  # noqa: N806
    counts = [n for n in LABEL_COUNTS if n]
    print("| variant | " + " | ".join(f"{n} labels" for n in counts) + " |")
    print("|---|" + "---|" * len(counts))
    for overrides in [{}, *map(parse_variant, args.variant)]:
        params = replace(TrainParams(), **overrides)
        subspace = fit_word_subspace(X_public, list(range(len(sample))), n_word, params)
        cells = []
        for n in counts:
            gains = []
            for draw in range(args.draws):
                rows = site_training_rows(pool, n, draw)
                y = np.array([1 if e.labels["toxicity"] >= 0.5 else 0 for e in rows])
                X = vectorizer.transform([e.comment for e in rows])  # noqa: N806
                head = copy.deepcopy(general)
                adapt_to_site(head, X, y, np.ones(len(rows)), n_text, subspace, params, general_heads)
                gains.append(roc_auc_score(y_later, X_later @ head.coef_.ravel()) - general_auc)
            cells.append(f"{np.mean(gains):+.4f} (±{np.std(gains):.4f})")
        name = ",".join(f"{k}={v}" for k, v in overrides.items()) or "default"
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
