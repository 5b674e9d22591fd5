"""The tiny model: orderings on obvious examples, the Score/Reason contract, weights."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import numpy as np
import scipy.sparse as sp

from classifier.comment import ATTRIBUTES, TOXICITY_ATTRIBUTES, Comment, LabelledComment
from classifier.model import Model, Reason, Score
from classifier.training import COUNTERFACTUAL_SOURCE, TrainParams, span_counterfactuals, train

SPAM = Comment("Check out my channel and subscribe!!! http://bit.ly/xyz123 win money")
HAM = Comment("I disagree with the council's decision on the budget for schools.")
INSULT = Comment("You are a stupid idiot and a moron")
POLITE = Comment("Thank you for the interesting article about the museum.")


def test_obvious_spam_ranks_above_obvious_ham(tiny_model: Model) -> None:
    spam, ham = tiny_model.predict([SPAM, HAM])[:, ATTRIBUTES.index("spam")]
    assert spam > ham


def test_obvious_insult_ranks_above_a_polite_comment(tiny_model: Model) -> None:
    probabilities = tiny_model.predict([INSULT, POLITE])
    for attribute in ("toxicity", "insult"):
        column = ATTRIBUTES.index(attribute)
        assert probabilities[0, column] > probabilities[1, column]


def test_predict_shape_order_and_range(tiny_model: Model) -> None:
    probabilities = tiny_model.predict([SPAM, HAM, INSULT])
    assert probabilities.shape == (3, len(ATTRIBUTES))
    assert np.all((probabilities >= 0) & (probabilities <= 1))
    assert tiny_model.predict([]).shape == (0, len(ATTRIBUTES))


def test_fast_path_matches_the_pipelines(tiny_model: Model) -> None:
    comments = [SPAM, HAM, INSULT, POLITE]
    assert np.allclose(tiny_model.predict(comments), tiny_model.pipeline_probabilities(comments), atol=1e-5)


def test_score_matches_predict_and_has_the_contract(tiny_model: Model) -> None:
    scores = tiny_model.score([SPAM, INSULT, POLITE])
    probabilities = tiny_model.predict([SPAM, INSULT, POLITE])
    for score, row in zip(scores, probabilities, strict=True):
        assert isinstance(score, Score)
        assert list(score.values) == list(ATTRIBUTES)
        assert np.allclose([score.values[a] for a in ATTRIBUTES], row)
        as_dict = score.to_dict()
        assert set(ATTRIBUTES) <= set(as_dict) and as_dict["model"] == tiny_model.version
        assert isinstance(as_dict["reasons"], list)


def test_reasons_point_into_the_original_text(tiny_model: Model) -> None:
    text = "You are a STUPID 1d10t!!!"
    score = tiny_model.score([Comment(text)])[0]
    insult_reasons = [r for r in score.reasons if r.attribute in ("insult", "toxicity")]
    assert insult_reasons, score
    highlighted = {text[b:e].lower() for r in insult_reasons for b, e in r.spans}
    assert highlighted & {"stupid", "1d10t"}
    for reason in score.reasons:
        assert isinstance(reason, Reason) and reason.weight > 0
        assert reason.to_dict()["attribute"] in ATTRIBUTES


def test_explain_false_gives_no_reasons(tiny_model: Model) -> None:
    assert all(not s.reasons for s in tiny_model.score([SPAM, INSULT], explain=False))


def test_a_name_url_and_email_alone_do_not_make_spam(tiny_model: Model) -> None:
    bare = Comment(HAM.text)
    with_meta = Comment(
        HAM.text, name="Anna Smith", email="anna.smith@gmail.com", url="https://annasmith.net"
    )
    spam = ATTRIBUTES.index("spam")
    bare_p, meta_p = tiny_model.predict([bare, with_meta])[:, spam]
    assert meta_p < bare_p + 0.05


def test_keyword_name_and_shop_url_raise_spam(tiny_model: Model) -> None:
    text = "Nice article, thanks for sharing."
    plain = Comment(text, name="Anna Smith")
    seo = Comment(text, name="Cheap Loans Online", url="http://cheap-payday-loans-store.xyz/")
    spam = ATTRIBUTES.index("spam")
    assert tiny_model.predict([seo])[0, spam] > tiny_model.predict([plain])[0, spam]


def test_sample_weights_are_honoured() -> None:
    from tests.conftest import tiny_examples

    examples = tiny_examples()
    target = Comment("Lovely weather for the parade today")
    params = TrainParams(word_bits=12, char_bits=13, min_df=1, calibrate=False, spam_c=10.0)
    spam = ATTRIBUTES.index("spam")

    def spam_of(weight: float) -> float:
        extra = [LabelledComment(target, {"spam": 1.0}, "tiny-spam", weight=weight)]
        return float(train(examples + extra, params).predict([target])[0, spam])

    assert spam_of(20.0) > spam_of(0.05)


def test_card_documents_mapping_and_parameters(tiny_model: Model) -> None:
    card = tiny_model.card
    assert card["hyper_parameters"]["spam_c"] == 10.0
    assert "jigsaw" in card["label_mapping"]
    assert set(card["heads"]) == set(ATTRIBUTES)


def test_metadata_only_source_teaches_author_features_not_its_praise_text() -> None:
    from tests.conftest import tiny_examples

    praise = "Thanks for the article, very informative."
    shop = "http://cheap-payday-loans-store.xyz/"
    keyword_name = "Cheap Loans Online"
    blog_spam = [
        LabelledComment(
            Comment(f"{praise} Great post {i}.", name=keyword_name, url=shop), {"spam": 1.0}, "wordpress"
        )
        for i in range(12)
    ]
    blog_spam += [
        LabelledComment(Comment(f"{praise} Lovely blog {i}.", name="Anna Smith"), {"spam": 1.0}, "wordpress")
        for i in range(12)
    ]  # no author signal: left out
    params = TrainParams(
        word_bits=12,
        char_bits=13,
        min_df=1,
        calibrate=False,
        spam_c=10.0,
        metadata_only_sources=("wordpress",),
    )
    model = train(tiny_examples() + blog_spam, params)
    spam = ATTRIBUTES.index("spam")
    alone, keywords, person = model.predict(
        [
            Comment(praise),
            Comment(praise, name=keyword_name, url=shop),
            Comment(
                praise,
                name="Anna Smith",
                email="anna.smith@gmail.com",
                url="https://annasmith.wordpress.com/",
            ),
        ]
    )[:, spam]
    assert keywords > alone
    assert abs(person - alone) < 1e-6  # a normal name, gmail and a personal blog are not spam evidence
    assert model.card["heads"]["spam"]["metadata_only_rows"] == {"wordpress": 12}


def test_a_higher_spam_share_in_the_calibration_raises_a_rare_class() -> None:
    """With few spam rows, a fixed spam share in the Platt fit scores spam higher than the training mix,
    and more so the higher the share."""
    import pytest

    from classifier.errors import TrainingError
    from tests.conftest import tiny_examples

    examples = tiny_examples()
    ham = [e for e in examples if e.labels.get("spam") == 0.0]
    # Many more ham rows than spam, so the training mix's prior is far from the fixed shares.
    examples = examples + [
        LabelledComment(Comment(f"{e.comment.text} again {k}"), {"spam": 0.0}, "tiny-spam")
        for k in range(3)
        for e in ham
    ]
    spam = ATTRIBUTES.index("spam")
    probabilities = {}
    for share in (None, 0.35, 0.5):
        params = TrainParams(word_bits=12, char_bits=13, min_df=1, spam_calibration_share=share)
        model = train(examples, params)
        assert model.card["heads"]["spam"]["calibration"]["spam_share"] == share
        # a comment between the classes: the prior moves it, where obvious spam is 1.0 either way
        probabilities[share] = float(model.predict([Comment("Lovely weather for the parade today")])[0, spam])
    assert probabilities[0.5] > probabilities[0.35] > probabilities[None]
    for bad in (0.0, 1.0):
        with pytest.raises(TrainingError):
            train(examples, TrainParams(word_bits=12, char_bits=13, min_df=1, spam_calibration_share=bad))


def test_linked_discussion_negatives_keep_links_from_being_spam() -> None:
    """Discussion rows that cite a link weigh more as spam negatives, so a cited source is not spam."""
    from classifier.comment import TOXICITY_ATTRIBUTES
    from tests.conftest import tiny_examples

    clean = {a: 0.0 for a in TOXICITY_ATTRIBUTES}
    discussion = [
        LabelledComment(Comment(f"The report is here http://www.example-news.org/s{i}"), clean, "talk")
        for i in range(6)
    ] + [
        LabelledComment(Comment(f"I think the council got point {i} of the budget wrong"), clean, "talk")
        for i in range(30)
    ]
    examples = tiny_examples() + discussion
    cited = Comment("The study is here http://www.example-news.org/study see section two")
    spam = ATTRIBUTES.index("spam")

    def spam_of(boost: float) -> float:
        params = TrainParams(
            word_bits=12, char_bits=13, min_df=1, calibrate=False, spam_c=10.0, linked_negative_boost=boost
        )
        model = train(examples, params)
        assert model.card["hyper_parameters"]["linked_negative_boost"] == boost
        return float(model.predict([cited])[0, spam])

    assert spam_of(30.0) < spam_of(1.0)


def _span_comment(text: str, *marked: str, labels: dict[str, float] | None = None) -> LabelledComment:
    """A toxic-spans row whose annotators marked the given words (the first is the agreed span)."""
    spans = [[text.index(word), text.index(word) + len(word)] for word in marked]
    extra = {"toxic_spans": json.dumps(spans[:1]), "marked_spans": json.dumps(sorted(spans))}
    return LabelledComment(Comment(text), labels or {"toxicity": 1.0}, "civil:spans", extra=extra)


def test_span_counterfactuals_cut_every_marked_span_and_label_what_is_left_good() -> None:
    labelled = _span_comment(
        "You utter idiot, the mayor's plan is garbage",
        "idiot",
        "garbage",
        labels={"toxicity": 1.0, "insult": 1.0},
    )
    too_short = _span_comment("Shut up, moron", "moron")
    unmarked = replace(_span_comment("Nobody marked anything here", "here"), extra={"toxic_spans": "[]"})
    cut, *rest = span_counterfactuals([labelled, too_short, unmarked], TrainParams())
    assert rest == []  # two words left say nothing of a subject; a comment with no marks has nothing to cut
    assert cut.comment.text == "You utter , the mayor's plan is"
    assert cut.labels == {"toxicity": 0.0, "insult": 0.0} and cut.source == COUNTERFACTUAL_SOURCE
    agreed_only = span_counterfactuals([labelled], TrainParams(span_counterfactual_cut="toxic_spans"))
    assert agreed_only[0].comment.text == "You utter , the mayor's plan is garbage"


def sharp_toxicity_params(**overrides: Any) -> TrainParams:
    """A small, uncalibrated recipe whose toxicity heads follow a few dozen rows closely."""
    recipe: dict[str, Any] = {
        "word_bits": 12,
        "char_bits": 13,
        "min_df": 1,
        "calibrate": False,
        "toxicity_c": 10.0,
    }
    return TrainParams(**{**recipe, **overrides})


def test_toxic_span_comments_also_teach_that_their_subject_is_not_toxic() -> None:
    """Every toxic-span comment is about the council budget; cut out, they say the subject is harmless."""
    from tests.conftest import tiny_examples

    spans = [_span_comment(f"the council budget vote {i} was run by idiots", "idiots") for i in range(30)]
    probe = [Comment("the council budget vote"), Comment("run by idiots")]
    toxicity = ATTRIBUTES.index("toxicity")

    def trained(weight: float) -> Model:
        params = sharp_toxicity_params(span_counterfactual_weight=weight)
        return train(tiny_examples() + spans, params)

    without, with_cuts = trained(0.0), trained(0.3)
    assert COUNTERFACTUAL_SOURCE not in without.card["heads"]["toxicity"]["sources"]
    assert with_cuts.card["heads"]["toxicity"]["sources"][COUNTERFACTUAL_SOURCE] == 30
    before, after = without.predict(probe)[:, toxicity], with_cuts.predict(probe)[:, toxicity]
    assert after[0] < before[0] - 0.2 and after[1] > 0.5


def _snowflake_site_labels() -> list[LabelledComment]:
    """A site's moderators: "snowflake" is toxic here, the council's meetings are not (30 of each)."""
    site = [
        LabelledComment(Comment(f"what a snowflake you are, take {i}"), {"toxicity": 1.0}, "site")
        for i in range(30)
    ]
    return site + [
        LabelledComment(Comment(f"the council meets on day {i} about the bridge"), {"toxicity": 0.0}, "site")
        for i in range(30)
    ]


def test_site_labels_get_a_site_head_that_learns_the_sites_own_words() -> None:
    """A site's moderators reject a word the public data calls harmless: a few dozen labels teach it."""
    from tests.conftest import tiny_examples

    params = sharp_toxicity_params()
    site = _snowflake_site_labels()
    general = train(tiny_examples(), params)
    adapted = train(tiny_examples() + site, params)
    probe = [Comment("such a snowflake"), Comment("the council meets about the bridge")]
    toxicity = ATTRIBUTES.index("toxicity")
    before, after = general.predict(probe)[:, toxicity], adapted.predict(probe)[:, toxicity]
    assert after[0] > before[0] + 0.2 and after[0] > after[1] + 0.3
    info = adapted.card["site_adaptation"]
    assert set(info) == {"toxicity"}  # only the attribute the site labelled, with both classes
    assert info["toxicity"]["rows"] == 60 and info["toxicity"]["positives"] == 30
    # the adapted model is still one linear head per attribute: the fast path and the pipelines agree
    np.testing.assert_allclose(adapted.predict(probe), adapted.pipeline_probabilities(probe), atol=1e-5)
    too_few = train(tiny_examples() + site[:5] + site[-5:], params)
    assert too_few.card["site_adaptation"] == {}


def test_a_site_label_reaches_the_words_that_keep_its_company_in_the_public_rows() -> None:
    """The latent word space carries "snowflake is toxic here" to "crybaby", which no site row contains."""
    from tests.conftest import tiny_examples

    chat = [
        LabelledComment(Comment(f"stop being a snowflake and a crybaby, reply {i}"), {"spam": 0.0}, "chat")
        for i in range(40)
    ]
    chat += [
        LabelledComment(Comment(f"the bridge and the council budget, note {i}"), {"spam": 0.0}, "chat")
        for i in range(40)
    ]
    site = _snowflake_site_labels()
    probe = [Comment("such a crybaby"), Comment("the council")]
    toxicity = ATTRIBUTES.index("toxicity")

    def adapted(dims: int) -> Model:
        # The subspace alone: the head on the general heads would carry "crybaby" as well.
        params = sharp_toxicity_params(site_subspace_dims=dims, site_heads_c=0.0, site_blend=0.6)
        return train(tiny_examples() + chat + site, params)

    without, with_subspace = adapted(0), adapted(8)
    assert "subspace_dims" not in without.card["site_adaptation"]["toxicity"]
    assert with_subspace.card["site_adaptation"]["toxicity"]["subspace_dims"] == 8
    before, after = without.predict(probe)[:, toxicity], with_subspace.predict(probe)[:, toxicity]
    assert after[0] > before[0] + 0.15 and after[1] < 0.1
    np.testing.assert_allclose(
        with_subspace.predict(probe), with_subspace.pipeline_probabilities(probe), atol=1e-5
    )


def test_a_site_whose_toxic_means_insult_learns_that_mix_of_the_general_heads() -> None:
    """The public rows call "nitwit" and "dolt" insults but not toxic; this site rejects "nitwit" as toxic.
    The head on the general heads' logits learns "toxic here is insult", which carries to "dolt", a word
    no site row contains."""
    from tests.conftest import tiny_examples

    not_toxic = dict.fromkeys(TOXICITY_ATTRIBUTES, 0.0)
    insults = [
        LabelledComment(Comment(f"you {word}, reply {i}"), {**not_toxic, "insult": 1.0}, "forum")
        for word in ("nitwit", "dolt")
        for i in range(30)
    ]
    insults += [LabelledComment(Comment(f"thanks for the reply {i}"), not_toxic, "forum") for i in range(60)]
    site = [LabelledComment(Comment(f"you nitwit, take {i}"), {"toxicity": 1.0}, "site") for i in range(30)]
    site += [
        LabelledComment(Comment(f"the council meets on day {i} about the bridge"), {"toxicity": 0.0}, "site")
        for i in range(30)
    ]
    probe = [Comment("you dolt"), Comment("the council meets about the bridge")]
    toxicity = ATTRIBUTES.index("toxicity")

    def adapted(heads_c: float) -> Model:
        params = sharp_toxicity_params(site_subspace_dims=0, site_heads_c=heads_c)
        return train(tiny_examples() + insults + site, params)

    without, with_heads = adapted(0.0), adapted(1.0)
    assert "heads_head_weights" not in without.card["site_adaptation"]["toxicity"]
    weights = with_heads.card["site_adaptation"]["toxicity"]["heads_head_weights"]
    assert len(weights) == len(ATTRIBUTES)
    before, after = without.predict(probe)[:, toxicity], with_heads.predict(probe)[:, toxicity]
    assert after[0] > before[0] + 0.15 and after[1] < 0.2
    # still one linear head per attribute: the fast path and the pipelines agree
    np.testing.assert_allclose(with_heads.predict(probe), with_heads.pipeline_probabilities(probe), atol=1e-5)


def test_a_head_on_the_word_subspace_folds_back_into_word_weights() -> None:
    from classifier.training import WordSubspace

    rng = np.random.default_rng(0)
    X = sp.random(20, 50, density=0.2, format="csr", random_state=1)  # noqa: N806
    subspace = WordSubspace(40, np.array([1, 5, 7, 30, 39]), rng.normal(size=(3, 5)))
    coef = rng.normal(size=3)
    np.testing.assert_allclose(subspace.project(X) @ coef, X[:, :40] @ subspace.word_coef(coef))


def test_readers_thanks_are_kept_among_the_spam_negatives_and_weigh_more() -> None:
    """Blog spam's text is learnt, and it praises; the few readers' thanks must survive the sampling."""
    import random

    from classifier.training import select_spam_negatives

    thanks = [
        LabelledComment(Comment(f"Thanks for the article, it explains vote {i}."), {"toxicity": 0.0}, "civil")
        for i in range(30)
    ]
    other = [
        LabelledComment(Comment(f"The vote was {i} to 3."), {"toxicity": 0.0}, "civil") for i in range(500)
    ]
    params = TrainParams(spam_negatives_per_source=100)
    negatives = select_spam_negatives([*other, *thanks], params, random.Random(1))
    assert len(negatives) == 100 and all(e in negatives for e in thanks)
    params = dict(word_bits=12, char_bits=13, min_df=1, spam_c=10.0, calibrate=False)
    blog_spam = [
        LabelledComment(Comment(f"Thanks for the article. Visit post {i}."), {"spam": 1.0}, "wordpress")
        for i in range(20)
    ]
    from tests.conftest import tiny_examples

    examples = tiny_examples() + blog_spam + thanks[:8] + other[:200]
    boosted = train(examples, TrainParams(**params))
    plain = train(examples, TrainParams(**params, praise_negative_boost=1.0))
    probe = [Comment("Thanks for the article.")]
    spam = ATTRIBUTES.index("spam")
    assert boosted.predict(probe)[0, spam] < plain.predict(probe)[0, spam]


def test_blog_spam_with_a_keyword_author_also_teaches_its_text() -> None:
    """The text-only copies: spam explained by its author fields still makes its text spam evidence."""
    from tests.conftest import tiny_examples

    blog_spam = [
        LabelledComment(
            Comment(f"Boom beach hack tool, gems generator number {i}.", name="Cheap Loans Online"),
            {"spam": 1.0},
            "wordpress",
        )
        for i in range(15)
    ]
    praise = "Very informative article, thanks for sharing"
    blog_spam += [
        LabelledComment(Comment(f"{praise} {i}.", name="Cheap Loans Online"), {"spam": 1.0}, "wordpress")
        for i in range(15)
    ]
    spam = ATTRIBUTES.index("spam")
    texts = [Comment("The boom beach hack tool works, gems generator inside."), Comment(f"{praise}!")]
    scores = {}
    for share in (0.0, 0.5):
        params = TrainParams(
            word_bits=12, char_bits=13, min_df=1, calibrate=False, spam_c=10.0, spam_text_only_share=share
        )
        scores[share] = train(tiny_examples() + blog_spam, params).predict(texts)[:, spam]
    assert scores[0.5][0] > scores[0.0][0] + 0.05
    # Generic praise is what readers write too: only its author fields make it spam, never its text alone.
    assert scores[0.5][1] - scores[0.0][1] < 0.6 * (scores[0.5][0] - scores[0.0][0])


def test_links_in_the_text_never_count_against_spam() -> None:
    """Discussion that links through t.co must not teach "a shortener means ham" (link spam slipped past)."""
    from classifier.comment import TOXICITY_ATTRIBUTES
    from classifier.features import META_NAMES, SUSPICIOUS_LINK_FEATURES
    from tests.conftest import tiny_examples

    clean = {a: 0.0 for a in TOXICITY_ATTRIBUTES}
    tweets = [
        LabelledComment(Comment(f"what a game tonight lads {i} http://t.co/x{i}"), clean, "tweets")
        for i in range(40)
    ]

    def link_weights(never_ham: bool) -> np.ndarray:
        params = TrainParams(
            word_bits=12, char_bits=13, min_df=1, calibrate=False, suspicious_links_never_ham=never_ham
        )
        model = train(tiny_examples() + tweets, params)
        vectorizer, head = model.spam.named_steps["features"], model.spam.named_steps["classifier"]
        first = vectorizer.n_word + vectorizer.n_char
        return head.coef_[0, [first + META_NAMES.index(name) for name in SUSPICIOUS_LINK_FEATURES]]

    assert (link_weights(False) < 0).any()  # what the discussion corpora teach when left alone
    assert (link_weights(True) >= 0).all()
