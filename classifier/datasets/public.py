"""The public labelled data sets in ``shared/data``: where each file came from, and a loader per set.

:data:`PUBLIC_SETS` pins every file by URL, commit and sha256, with the set's licence, citation and label
mapping; :func:`load_public` checks the checksums, then reads. Loaders return
:class:`~classifier.comment.LabelledComment` values whose ``labels`` use the names in
:data:`~classifier.comment.ATTRIBUTES`. An attribute that a set cannot speak to is left out (unknown),
never set to 0. Bad files raise :class:`~classifier.errors.DatasetError` as ``path:line: message``.

Label mapping of the public sets (this table goes into the model card, see :data:`LABEL_MAPPING`):

=========================  ===============================================================================
Source                     Labels
=========================  ===============================================================================
youtube:<video>, sms       ``CLASS``/``ham|spam`` -> ``spam`` 0/1. YouTube ``AUTHOR`` -> ``name``; ``DATE``
                           is never read (it is empty for every spam row of the Eminem file, so it leaks
                           the label); the stray trailing U+FEFF of ``CONTENT`` is stripped.
wordpress                  ``spam`` = 1 only (the file is a spam queue, it has no ham). ``Author`` ->
                           ``name``, ``Website`` -> ``url``, ``Email`` -> ``email``; the hard line breaks
                           from scraping are folded into spaces. IP and the grammar dump are dropped.
                           Pair it with ham from another set (e.g. Civil Comments).
jigsaw                     toxic -> toxicity, severe_toxic -> severe_toxicity, obscene -> profanity,
                           threat -> threat, insult -> insult, identity_hate -> identity_attack. Rows are
                           deduplicated by ``id`` across the six files (first file wins).
civil                      rater fractions -> toxicity, severe_toxicity, insult, threat, identity_attack,
                           obscene -> profanity, thresholded: fraction >= 0.5 -> 1, else 0. The raw
                           fractions (and ``sexual_explicit``, which we do not predict) stay in ``extra``.
davidson                   class 0 (hate) -> toxicity 1, identity_attack 1; class 1 (offensive) ->
                           toxicity 1, identity_attack 0; class 2 (neither) -> toxicity 0,
                           identity_attack 0. Profanity is left unknown: "offensive" is mostly slurs and
                           insults found by a hate lexicon, and raters were not asked about swearing.
olid                       NOT -> toxicity, severe_toxicity, insult, threat, profanity, identity_attack
                           all 0 (the guideline defines NOT as "no offense or profanity").
                           OFF+TIN (targeted insult or threat) -> toxicity 1, insult 1 (threats are a
                           small part of TIN and cannot be told apart, so threat stays unknown).
                           OFF+UNT (untargeted profanity) -> toxicity 1, profanity 1, insult 0,
                           threat 0, identity_attack 0. OLID's OFF is offensive language, and in Jigsaw
                           obscene comments are nearly always also toxic; leave-one-source-out agreed.
=========================  ===============================================================================
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from classifier.comment import ATTRIBUTES, Comment, LabelledComment
from classifier.datasets.reading import iter_csv_dicts, iter_text_lines, parse_binary, parse_fraction
from classifier.errors import DatasetError

# The package's name, as before it was split: log lines and logging settings keep ``classifier.datasets``.
logger = logging.getLogger("classifier.datasets")


@dataclass(frozen=True)
class PublicFile:
    """One file of a public set, as taken byte for byte from its source."""

    path: str  #: relative to the set's folder
    url: str  #: where it came from (GitHub blob at a fixed commit)
    sha256: str
    rows: int | None = None  #: data rows as SOURCES.md counts them; None for documentation files
    archive_member: str | None = None  #: set when the file was extracted from the archive at ``url``


@dataclass(frozen=True)
class PublicSet:
    """A public labelled data set in the shared data directory."""

    name: str
    folder: str
    title: str
    files: tuple[PublicFile, ...]
    licence: str
    citation: str
    label_mapping: str
    sources: tuple[str, ...]  #: the ``source`` values its examples carry

    @property
    def data_files(self) -> tuple[PublicFile, ...]:
        return tuple(f for f in self.files if f.rows is not None)


def _gh(repo: str, commit: str, path: str) -> str:
    return f"https://github.com/{repo}/blob/{commit}/{path}"


_YT_REPO, _YT_COMMIT = "C0D3-BR3AK3R/HadoopFinalNCU-Project", "c1c9490617ac3b214f9ff7ebf011f2ac59a523c4"
_JIG_REPO, _JIG_COMMIT = "predibase/llm_distillation_playbook", "6ccc4707eebbb60bce336e4711b742f9f9342fc8"
_OLID_REPO, _OLID_COMMIT = (
    "wenliangdai/multi-task-offensive-language-detection",
    ("6c2071a677e7380c026b2bd59338370f9807e1da"),
)
_DAV_REPO = "t-davidson/hate-speech-and-offensive-language"
_DAV_COMMIT = "cb50f7e9eb855a99abc51423bf40df0e26d6fe30"
_SMS_URL = _gh(
    "j4anvii/sms_classification", "4582d9f08debb75c173c401a7df17f4281dd7eec", "smsspamcollection.zip"
)

_SPANS_REPO, _SPANS_COMMIT = "ipavlopoulos/toxic_spans", "beaf170538df8275c3447b2e26070f2f82e55272"
_FOX_REPO, _FOX_COMMIT = "sjtuprog/fox-news-comments", "914b6bcdff380b16b6a11818e4760529fe23f2f3"

#: YouTube video name -> (file, rows)
YOUTUBE_VIDEOS: dict[str, tuple[str, int]] = {
    "psy": ("Youtube01-Psy.csv", 350),
    "katyperry": ("Youtube02-KatyPerry.csv", 350),
    "lmfao": ("Youtube03-LMFAO.csv", 438),
    "eminem": ("Youtube04-Eminem.csv", 448),
    "shakira": ("Youtube05-Shakira.csv", 370),
}
_YT_SHA = {
    "psy": "19797e6c77690e3c8809cfd2853ae7341390636367ba66cf5d4f4083f0b88535",
    "katyperry": "902c614f8ef24f987d6f614d7e6111aa5160b89a0646b68e007bd6044a3d123b",
    "lmfao": "702ef589860a1831956f527760a3d9737ef8a07ab36c7de35b92b8898b8c3928",
    "eminem": "92f54eb6b22fdf3b7ae85e1f500e5aa7442edd025e504b988a97078756187e76",
    "shakira": "1d8ab47b71e8037c51183b2fc62f0591a48a4b54f3a4f5d9d3043113b274e98e",
}
_JIGSAW_FILES = (
    (
        "train.5k.csv",
        "data/dataset_subsets/train.5k.csv",
        5000,
        "4b1ed4c1e4f647b800fb5ab57835ced2d932cf64ec831aef1c991cffeefa2e50",
    ),
    (
        "train.a.ok.1k.csv",
        "data/data_pools/train.a.ok.1k.csv",
        1000,
        "a33899b046738486d4768303e30f023b5c8fe5851a39706e3b3ec3ededb125ff",
    ),
    (
        "train.b.ok.1k.csv",
        "data/data_pools/train.b.ok.1k.csv",
        1000,
        "3f2638e4275356430c6c6efaaafe7385ce7fe286ac6bff01f92b96e8eda98e3b",
    ),
    (
        "train.a.bad.1k.csv",
        "data/data_pools/train.a.bad.1k.csv",
        1000,
        "c59d2e8cb1b854440839f1f04c92c384fcc7813e46b314df05f1e43151f3dcfc",
    ),
    (
        "train.b.bad.1k.csv",
        "data/data_pools/train.b.bad.1k.csv",
        1000,
        "47e9ba736edb7ab8aa48b75b9b6c8fb090aeb56805ec5535684d5ad52ef4ae34",
    ),
    (
        "train.c.bad.1k.csv",
        "data/data_pools/train.c.bad.1k.csv",
        1000,
        "a837182059ae3c49c5322f64abed19b9f23623eccc3316b4866c9033f643e240",
    ),
)

PUBLIC_SETS: dict[str, PublicSet] = {
    "youtube": PublicSet(
        name="youtube",
        folder="youtube-spam-collection",
        title="YouTube Spam Collection v1 (TubeSpam)",
        files=tuple(
            PublicFile(fname, _gh(_YT_REPO, _YT_COMMIT, f"data/{fname}"), _YT_SHA[video], rows)
            for video, (fname, rows) in YOUTUBE_VIDEOS.items()
        ),
        licence=(
            "Public for spam research (authors' page and UCI page); the authors ask for a citation of the "
            "paper and an e-mail. No explicit licence on a stored page; the source repo has no LICENSE file."
        ),
        citation=(
            'Alberto, T.C., Lochter, J.V., Almeida, T.A. "TubeSpam: Comment Spam Filtering on YouTube." '
            "Proc. 14th IEEE ICMLA'15, Miami, 2015, pp. 1-6."
        ),
        label_mapping="CLASS 1 -> spam 1, 0 -> spam 0. AUTHOR -> name. DATE is never read (leaks the label "
        "in the Eminem file). Trailing U+FEFF stripped from CONTENT.",
        sources=tuple(f"youtube:{video}" for video in YOUTUBE_VIDEOS),
    ),
    "sms": PublicSet(
        name="sms",
        folder="sms-spam-collection",
        title="SMS Spam Collection v1",
        files=(
            PublicFile(
                "SMSSpamCollection",
                _SMS_URL,
                "7d039a24a6083ed9ef0f806ebad56bbb976e3aeb8de05669173bfdc4996c239d",
                5574,
                archive_member="SMSSpamCollection",
            ),
            PublicFile(
                "readme",
                _SMS_URL,
                "8753cd2d3cab68f80c8257851b8c2037778c267f55accb6fd1b5a2e32d36a84e",
                archive_member="readme",
            ),
        ),
        licence=(
            'readme section 4: "provided for free and with no limitations", with a no-warranty clause and a '
            "limitation of liability; the authors ask for a citation and an e-mail."
        ),
        citation=(
            'Almeida, T.A., Gomez Hidalgo, J.M., Yamakami, A. "Contributions to the Study of SMS Spam '
            "Filtering: New Collection and Results.\" Proc. 2011 ACM DocEng'11, 2011."
        ),
        label_mapping="spam -> spam 1, ham -> spam 0.",
        sources=("sms",),
    ),
    "wordpress": PublicSet(
        name="wordpress",
        folder="wordpress-blog-spam",
        title="WordPress blog spam queue, older half (up to 2017-02-07)",
        files=(
            PublicFile(
                "spam_data.until-2017-02-07.csv",
                _gh(
                    "sidtuli/spam-analysis",
                    "3c843c07fc848dc748670df0c246c7d5b98bccb6",
                    "previous_ipython_version/data/spam_data.csv",
                ),
                "e62b641910f86fd056a4c6dc502e8ce1b966b7735518d8b34569ea920d940e8a",
                1350,
            ),
        ),
        licence="WTFPL v2 (the source repository). E-mails and IPs are treated as personal data.",
        citation="sidtuli/spam-analysis on GitHub (no paper).",
        label_mapping="spam 1 for every row (spam queue, no ham). Author -> name, Website -> url, "
        "Email -> email; hard line breaks folded; IP and Grammar Check dropped.",
        sources=("wordpress",),
    ),
    "jigsaw": PublicSet(
        name="jigsaw",
        folder="jigsaw-toxic-comment-sample",
        title="Jigsaw Toxic Comment Classification, train-split samples",
        files=tuple(
            PublicFile(fname, _gh(_JIG_REPO, _JIG_COMMIT, src), sha, rows)
            for fname, src, rows, sha in _JIGSAW_FILES
        ),
        licence="CC0 for the dataset; comment text under Wikipedia's CC BY-SA 3.0. Source repo: no LICENSE.",
        citation=(
            'cjadams, Sorensen, J., Elliott, J., Dixon, L., McDonald, M., nithum, Cukierski, W. "Toxic '
            'Comment Classification Challenge." Kaggle, 2017. Wulczyn, E., Thain, N., Dixon, L. "Ex '
            'Machina: Personal Attacks Seen at Scale." WWW 2017.'
        ),
        label_mapping="toxic -> toxicity, severe_toxic -> severe_toxicity, obscene -> profanity, threat -> "
        "threat, insult -> insult, identity_hate -> identity_attack. Deduplicated by id (first file wins).",
        sources=("jigsaw",),
    ),
    "davidson": PublicSet(
        name="davidson",
        folder="hate-speech-and-offensive-language",
        title="Hate Speech and Offensive Language (Davidson et al. 2017)",
        files=(
            PublicFile(
                "labeled_data.csv",
                _gh(_DAV_REPO, _DAV_COMMIT, "data/labeled_data.csv"),
                "fcb8bc7c68120ae4af04a5b9acd58585513ede11e1548ebf36a5c2040b6f6281",
                24783,
            ),
            PublicFile(
                "readme.md",
                _gh(_DAV_REPO, _DAV_COMMIT, "data/readme.md"),
                "bc61daf206147999c57530b9f11c6d96e5e175fffee1ebba9aadb96e87836e61",
            ),
        ),
        licence='MIT ("Copyright (c) 2017 Tom Davidson"); the README asks for a citation and a usage form.',
        citation=(
            'Davidson, T., Warmsley, D., Macy, M., Weber, I. "Automated Hate Speech Detection and the '
            'Problem of Offensive Language." ICWSM 2017, pp. 512-515.'
        ),
        label_mapping="class 0 hate -> toxicity 1, identity_attack 1; class 1 offensive -> toxicity 1, "
        "identity_attack 0; class 2 neither -> toxicity 0, identity_attack 0; profanity unknown.",
        sources=("davidson",),
    ),
    "olid": PublicSet(
        name="olid",
        folder="olid",
        title="OLID v1.0 (OffensEval 2019), training set",
        files=(
            PublicFile(
                "olid-training-v1.0.tsv",
                _gh(_OLID_REPO, _OLID_COMMIT, "OLIDv1.0/olid-training-v1.0.tsv"),
                "d976bd6faf7800571d06aa4fda00c11c1d39e6fd139747067f683d0c6e76d31f",
                13240,
            ),
            PublicFile(
                "README.txt",
                _gh(_OLID_REPO, _OLID_COMMIT, "OLIDv1.0/README.txt"),
                "0ede30285b216c6679626be3746813d0975e18fd6f7aa6e659181d85614bedcd",
            ),
            PublicFile(
                "olid-annotation.txt",
                _gh(_OLID_REPO, _OLID_COMMIT, "OLIDv1.0/olid-annotation.txt"),
                "0d34254051fad1b2d423627ceb775bd46a09287a0f78e52b3720e8c67416a2a7",
            ),
        ),
        licence=(
            "No licence stated in the OLID README (cite Zampieri et al. 2019); hosting repo CC BY 4.0; tweet "
            "text subject to Twitter's terms."
        ),
        citation=(
            'Zampieri, M., Malmasi, S., Nakov, P., Rosenthal, S., Farra, N., Kumar, R. "Predicting the Type '
            'and Target of Offensive Posts in Social Media." NAACL 2019.'
        ),
        label_mapping="NOT -> all toxicity attributes 0; OFF/TIN -> toxicity 1, insult 1; OFF/UNT -> "
        "toxicity 1, profanity 1, insult 0, threat 0, identity_attack 0.",
        sources=("olid",),
    ),
    "civil": PublicSet(
        name="civil",
        folder="civil-comments-sample",
        title="Civil Comments, a scored sample (news-site comments)",
        files=(
            PublicFile(
                "civil_comments.csv",
                _gh(
                    "refuel-ai/autolabel",
                    "8ebbda14e4768449f4eee148dbebc83d8362bd7c",
                    "examples/civil_comments.csv",
                ),
                "62daa70b25880f4ccb49740d7217b3172d4a2c674db074afb245e0e84065e3fa",
                1000,
            ),
        ),
        licence="Civil Comments data CC0; hosting repo MIT.",
        citation=(
            'Borkan, D., Dixon, L., Sorensen, J., Thain, N., Vasserman, L. "Nuanced Metrics for Measuring '
            "Unintended Bias with Real Data for Text Classification.\" WWW '19 Companion, 2019."
        ),
        label_mapping="rater fraction >= 0.5 -> 1 else 0 for toxicity, severe_toxicity, insult, threat, "
        "identity_attack, obscene -> profanity; raw fractions kept in extra.",
        sources=("civil",),
    ),
    "civil-spans": PublicSet(
        name="civil-spans",
        folder="civil-comments-toxic-spans",
        title="Civil Comments toxic spans, ACL 2022 version (news-site comments)",
        files=(
            PublicFile(
                "data_comments.csv",
                _gh(_SPANS_REPO, _SPANS_COMMIT, "ACL2022/data/comments.csv"),
                "76cd6ebd10a890d269c0a7e5e451f3da12375219906f314fd9cfb1e18b1a905f",
                16100,
            ),
            PublicFile(
                "data_annotations.csv",
                _gh(_SPANS_REPO, _SPANS_COMMIT, "ACL2022/data/annotations.csv"),
                "f67725aa9de73cd4ef9050222f6ae985ef0e33e8da89cb8137ffeb9a1d0fc32b",
                59215,
            ),
            PublicFile(
                "data_spans.csv",
                _gh(_SPANS_REPO, _SPANS_COMMIT, "ACL2022/data/spans.csv"),
                "389c6964db5d96d79ecfe038aa4ffe04abafd64b6d6427fbad4ec7fb2c7672aa",
                46784,
            ),
            PublicFile(
                "LICENSE",
                _gh(_SPANS_REPO, _SPANS_COMMIT, "LICENSE"),
                "a2010f343487d3f7618affe54f789f5487602331c0a8d03f49e9a7c547cf0499",
            ),
            PublicFile(
                "README.md",
                _gh(_SPANS_REPO, _SPANS_COMMIT, "README.md"),
                "8b3c53da72ea10393bffeecf328d40745f0bdabf0f156c05746a20f6787eb418",
            ),
            PublicFile(
                "ACL2022_README.md",
                _gh(_SPANS_REPO, _SPANS_COMMIT, "ACL2022/README.md"),
                "47206428850f187e32656e882c2a91dc52068ce2f40ce896ae34dc29791dbe86",
            ),
        ),
        licence="CC0 1.0 (repository LICENSE).",
        citation=(
            'Pavlopoulos, J., Laugier, L., Xenos, A., Sorensen, J., Androutsopoulos, I. "From the Detection '
            'of Toxic Spans in Online Discussions to the Analysis of Toxic-to-Civil Transfer." ACL 2022.'
        ),
        label_mapping="every post toxicity 1 (weight 0.5 when most span annotators ticked 'not toxic'); "
        "a span type marked by at least half the annotators -> insult / threat / profanity / "
        "identity_attack 1, other attributes unknown; the agreed spans stay in extra.",
        sources=("civil:spans",),
    ),
    "impermium": PublicSet(
        name="impermium",
        folder="impermium-insults",
        title='Impermium "Detecting Insults in Social Commentary" (Kaggle 2012), training file',
        files=(
            PublicFile(
                "train.csv",
                _gh("amueller/kaggle_insults", "e4abac805be1d1e2b3201a978172bafd36cc01e3", "train.csv"),
                "523e0215c52ac483a4e6fe6ae078cd5d436221f07a89331edc572dca44e4c11e",
                3947,
            ),
        ),
        licence="None in the repository; released under Kaggle's competition terms (research use).",
        citation='Impermium. "Detecting Insults in Social Commentary." Kaggle, 2012.',
        label_mapping="Insult 1 -> insult 1, toxicity 1; Insult 0 -> insult 0, toxicity 0 (the label is "
        "an insult to a participant, so some rude 0 rows are noise); literal escapes unescaped.",
        sources=("impermium",),
    ),
    "fox": PublicSet(
        name="fox",
        folder="fox-news-comments",
        title="Fox News comments (Gao and Huang, RANLP 2017)",
        files=(
            PublicFile(
                "fox-news-comments.jsonl",
                _gh(_FOX_REPO, _FOX_COMMIT, "fox-news-comments.json"),
                "059152e61f632f1e6671a68214d5618a21e6cf78f2512773e0421b9568aab8cf",
                1528,
            ),
            PublicFile(
                "README.md",
                _gh(_FOX_REPO, _FOX_COMMIT, "README.md"),
                "d8c144e7b4310f1cc2bc466ca6bdcc00d614b36fdd665f64e686b233ea240a34",
            ),
            PublicFile(
                "LICENSE",
                _gh(_FOX_REPO, _FOX_COMMIT, "LICENSE"),
                "dea637fcd79022f6a56cb96c1c5b4e7ee50a8ecfd4da4eaeeeb7fa615c7a69cd",
            ),
            PublicFile(
                "comment-url.txt",
                _gh(_FOX_REPO, _FOX_COMMIT, "comment-url.txt"),
                "4eaa1b749aa81df539a2af93380b020f2c766b19203cb8e0f22ec3cb8c3e4502",
            ),
        ),
        licence="MIT (README and LICENSE).",
        citation=(
            'Gao, L., Huang, R. "Detecting Online Hate Speech Using Context Aware Models." RANLP 2017.'
        ),
        label_mapping="label 1 (hateful) -> toxicity 1, label 0 -> toxicity 0; user -> name; other "
        "attributes unknown.",
        sources=("fox",),
    ),
    "wordpress-second": PublicSet(
        name="wordpress-second",
        folder="wordpress-spam-second-blog",
        title="WordPress spam queue of a second blog (2015), wp_comments rows",
        files=(
            PublicFile(
                "wp_comments_spam.csv",
                _gh("TATABOX42/know_your_spammers", "ac20117da4c16c1b86a05afc9198b24b2bab7b9a", "data.csv"),
                "bb749f779a37172a72b13595b057e0c566f6238cb8e0c9a9ca1e50a19fdc40bc",
                162,
            ),
            PublicFile(
                "README.md",
                _gh("TATABOX42/know_your_spammers", "ac20117da4c16c1b86a05afc9198b24b2bab7b9a", "README.md"),
                "a12ccef1fe51351693fccdaaa3db90da73696da79d2a7b45487c1131dcc5c6b2",
            ),
        ),
        licence="None stated in the repository.",
        citation="TATABOX42, know_your_spammers (GitHub), 2015.",
        label_mapping="spam = 1 for every row (a spam queue, no ham); comment_author -> name, "
        "comment_author_email -> email, comment_author_url -> url, comment_date_gmt -> created_at; hard "
        "line breaks folded. IP and user agent are dropped.",
        sources=("wordpress-second",),
    ),
}

#: How each public set's labels map onto ATTRIBUTES, one line per set (the module docstring has the table).
LABEL_MAPPING: dict[str, str] = {name: public.label_mapping for name, public in PUBLIC_SETS.items()}

#: Threshold applied to Civil Comments' rater fractions.
CIVIL_THRESHOLD = 0.5


def sha256_file(path: Path) -> str:
    """The hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_public_set(data_dir: Path, name: str) -> None:
    """Raise :class:`DatasetError` unless every data file of the set exists with the recorded sha256."""
    public = _public_set(name)
    for pf in public.data_files:
        path = Path(data_dir) / public.folder / pf.path
        if not path.is_file():
            raise DatasetError(f"missing data file of public set {name!r}", path)
        actual = sha256_file(path)
        if actual != pf.sha256:
            raise DatasetError(
                f"sha256 mismatch for public set {name!r}: expected {pf.sha256}, got {actual}; "
                "the file was changed or replaced",
                path,
            )


def public_manifest(names: Iterable[str] | None = None) -> dict[str, dict[str, Any]]:
    """Provenance of the public sets (files, URLs, checksums, licence, citation), for a model card."""
    result: dict[str, dict[str, Any]] = {}
    for name in names if names is not None else PUBLIC_SETS:
        public = _public_set(name)
        result[name] = {
            "title": public.title,
            "folder": public.folder,
            "files": [
                {
                    "path": f.path,
                    "url": f.url,
                    "sha256": f.sha256,
                    "rows": f.rows,
                    **({"archive_member": f.archive_member} if f.archive_member else {}),
                }
                for f in public.files
            ],
            "licence": public.licence,
            "citation": public.citation,
            "label_mapping": public.label_mapping,
        }
    return result


def load_public(
    data_dir: Path, names: Iterable[str] | None = None, verify: bool = True
) -> list[LabelledComment]:
    """Load the named public sets (all by default) from ``data_dir``, checking checksums first."""
    examples: list[LabelledComment] = []
    for name in names if names is not None else PUBLIC_SETS:
        examples.extend(load_public_set(data_dir, name, verify=verify))
    return examples


def load_public_set(data_dir: Path, name: str, verify: bool = True) -> list[LabelledComment]:
    """Load one public set by name (a key of :data:`PUBLIC_SETS`)."""
    public = _public_set(name)
    if verify:
        verify_public_set(data_dir, name)
    folder = Path(data_dir) / public.folder
    loader = _PUBLIC_LOADERS[name]
    examples = loader(folder)
    logger.info("dataset=%s rows=%d", name, len(examples))
    return examples


def _public_set(name: str) -> PublicSet:
    try:
        return PUBLIC_SETS[name]
    except KeyError:
        raise DatasetError(f"unknown public set {name!r}; known: {', '.join(PUBLIC_SETS)}") from None


def _strip_feff(text: str) -> str:
    return text.replace("\ufeff", "").strip()


def _fold_lines(text: str) -> str:
    return re.sub(r"\s*[\r\n]+\s*", " ", text).strip()


def _load_youtube(folder: Path) -> list[LabelledComment]:
    examples = []
    for video, (fname, _rows) in YOUTUBE_VIDEOS.items():
        path = folder / fname
        for line, row in iter_csv_dicts(path, required=("COMMENT_ID", "AUTHOR", "CONTENT", "CLASS")):
            # DATE is deliberately not read: it is empty for every spam row of the Eminem file.
            spam = parse_binary(row["CLASS"], path, line, "CLASS")
            examples.append(
                LabelledComment(
                    comment=Comment(text=_strip_feff(row["CONTENT"]), name=row["AUTHOR"].strip()),
                    labels={"spam": spam},
                    source=f"youtube:{video}",
                    external_id=row["COMMENT_ID"],
                )
            )
    return examples


def _load_sms(folder: Path) -> list[LabelledComment]:
    path = folder / "SMSSpamCollection"
    examples = []
    # Not csv: messages contain unbalanced double quotes; the format is simply label<TAB>text per line.
    for line, text_line in iter_text_lines(path):
        if not text_line.strip():
            continue
        label, sep, text = text_line.rstrip("\r\n").partition("\t")
        if not sep or label not in ("ham", "spam"):
            raise DatasetError("expected 'ham<TAB>text' or 'spam<TAB>text'", path, line)
        examples.append(
            LabelledComment(
                comment=Comment(text=text.strip()),
                labels={"spam": float(label == "spam")},
                source="sms",
                external_id=str(line),
            )
        )
    return examples


def _load_wordpress(folder: Path) -> list[LabelledComment]:
    path = folder / PUBLIC_SETS["wordpress"].files[0].path
    examples = []
    required = ("Comment Number", "Author", "Website", "Email", "Comment")
    for line, row in iter_csv_dicts(path, required=required):
        created_at = None
        try:
            day = f"{row['Submit Year']}-{row['Submit Month']}-{row['Submit Day']} {row['Submit Time']}"
            created_at = datetime.strptime(day, "%Y-%m-%d %I:%M %p")
        except (KeyError, ValueError):
            pass
        examples.append(
            LabelledComment(
                comment=Comment(
                    text=_fold_lines(row["Comment"]),
                    name=row["Author"].strip(),
                    email=row["Email"].strip(),
                    url=row["Website"].strip(),
                ),
                labels={"spam": 1.0},
                source="wordpress",
                external_id=row["Comment Number"].strip(),
                created_at=created_at,
            )
        )
    return examples


_JIGSAW_MAP = {
    "toxic": "toxicity",
    "severe_toxic": "severe_toxicity",
    "obscene": "profanity",
    "threat": "threat",
    "insult": "insult",
    "identity_hate": "identity_attack",
}


def _load_jigsaw(folder: Path) -> list[LabelledComment]:
    seen: set[str] = set()
    examples = []
    for pf in PUBLIC_SETS["jigsaw"].data_files:
        fname = pf.path
        path = folder / fname
        for line, row in iter_csv_dicts(path, required=("id", "comment_text", *_JIGSAW_MAP)):
            if row["id"] in seen:
                continue
            seen.add(row["id"])
            labels = {attr: parse_binary(row[col], path, line, col) for col, attr in _JIGSAW_MAP.items()}
            examples.append(
                LabelledComment(
                    comment=Comment(text=row["comment_text"].strip()),
                    labels=labels,
                    source="jigsaw",
                    external_id=row["id"],
                    extra={"file": fname},
                )
            )
    return examples


_CIVIL_MAP = {
    "toxicity": "toxicity",
    "severe_toxicity": "severe_toxicity",
    "insult": "insult",
    "threat": "threat",
    "identity_attack": "identity_attack",
    "obscene": "profanity",
}


def _load_civil(folder: Path) -> list[LabelledComment]:
    path = folder / "civil_comments.csv"
    examples = []
    for line, row in iter_csv_dicts(path, required=("text", *_CIVIL_MAP)):
        labels = {}
        extra = {}
        for col, attr in _CIVIL_MAP.items():
            fraction = parse_fraction(row[col], path, line, col)
            labels[attr] = float(fraction >= CIVIL_THRESHOLD)
            extra[f"{col}_fraction"] = row[col]
        if row.get("sexual_explicit"):
            extra["sexual_explicit_fraction"] = row["sexual_explicit"]
        examples.append(
            LabelledComment(
                comment=Comment(text=row["text"].strip()),
                labels=labels,
                source="civil",
                external_id=str(line),
                extra=extra,
            )
        )
    return examples


def _load_davidson(folder: Path) -> list[LabelledComment]:
    path = folder / "labeled_data.csv"
    examples = []
    mapping = {
        "0": {"toxicity": 1.0, "identity_attack": 1.0},
        "1": {"toxicity": 1.0, "identity_attack": 0.0},
        "2": {"toxicity": 0.0, "identity_attack": 0.0},
    }
    for line, row in iter_csv_dicts(path, required=("class", "tweet", "count")):
        labels = mapping.get(row["class"].strip())
        if labels is None:
            raise DatasetError(f"class must be 0, 1 or 2, got {row['class']!r}", path, line)
        extra: dict[str, str] = {
            k: row[k] for k in ("count", "hate_speech", "offensive_language", "neither") if k in row
        }
        examples.append(
            LabelledComment(
                comment=Comment(text=row["tweet"].strip()),
                labels=dict(labels),
                source="davidson",
                external_id=row.get("", str(line)),
                extra=extra,
            )
        )
    return examples


_OLID_NOT = {attr: 0.0 for attr in ATTRIBUTES if attr != "spam"}
_OLID_TIN = {"toxicity": 1.0, "insult": 1.0}
_OLID_UNT = {"toxicity": 1.0, "profanity": 1.0, "insult": 0.0, "threat": 0.0, "identity_attack": 0.0}


def _load_olid(folder: Path) -> list[LabelledComment]:
    path = folder / "olid-training-v1.0.tsv"
    examples = []
    required = ("id", "tweet", "subtask_a", "subtask_b")
    for line, row in iter_csv_dicts(path, required=required, delimiter="\t"):
        a, b = row["subtask_a"].strip(), row["subtask_b"].strip()
        if a == "NOT":
            labels = _OLID_NOT
        elif a == "OFF" and b == "TIN":
            labels = _OLID_TIN
        elif a == "OFF" and b == "UNT":
            labels = _OLID_UNT
        else:
            raise DatasetError(f"unexpected OLID labels subtask_a={a!r} subtask_b={b!r}", path, line)
        extra = {"subtask_a": a, "subtask_b": b, "subtask_c": row.get("subtask_c", "").strip()}
        examples.append(
            LabelledComment(
                comment=Comment(text=row["tweet"].strip()),
                labels=dict(labels),
                source="olid",
                external_id=row["id"],
                extra=extra,
            )
        )
    return examples


#: Span types of the toxic-spans set -> attribute (the file cuts some names short: "Insu").
_SPAN_TYPES = (
    ("insu", "insult"),
    ("threat", "threat"),
    ("profan", "profanity"),
    ("identity", "identity_attack"),
)


def _span_attribute(kind: str) -> str | None:
    kind = kind.strip().lower()
    return next((attr for prefix, attr in _SPAN_TYPES if kind.startswith(prefix)), None)


def _load_civil_spans(folder: Path) -> list[LabelledComment]:
    annotations_path = folder / "data_annotations.csv"
    annotators: dict[str, list[str]] = {}
    not_toxic: Counter[str] = Counter()
    for _line, row in iter_csv_dicts(annotations_path, required=("annotation", "comment_id", "not toxic")):
        annotators.setdefault(row["comment_id"], []).append(row["annotation"])
        if row["not toxic"].strip().lower() == "true":
            not_toxic[row["comment_id"]] += 1
    spans_by_annotation: dict[str, list[tuple[str | None, int, int]]] = {}
    spans_path = folder / "data_spans.csv"
    for line, row in iter_csv_dicts(spans_path, required=("annotation", "type", "start", "end")):
        try:
            begin, end = int(row["start"]), int(row["end"])
        except ValueError:
            raise DatasetError("start and end must be integers", spans_path, line) from None
        kind = _span_attribute(row["type"])
        spans_by_annotation.setdefault(row["annotation"], []).append((kind, begin, end))
    examples = []
    comments_path = folder / "data_comments.csv"
    for _line, row in iter_csv_dicts(comments_path, required=("comment_id", "comment_text")):
        cid = row["comment_id"]
        people = annotators.get(cid, [])
        labels = {"toxicity": 1.0}
        marked: Counter[str] = Counter()
        char_votes: Counter[int] = Counter()
        for annotation in people:
            spans = spans_by_annotation.get(annotation, [])
            marked.update({attr for attr, _, _ in spans if attr})
            char_votes.update({i for _, b, e in spans for i in range(b, e)})
        for attr, votes in sorted(marked.items()):  # in a fixed order, whatever the hash seed
            if votes * 2 >= len(people):
                labels[attr] = 1.0
        # Posts most annotators called "not toxic" are borderline: keep them, at half weight.
        borderline = bool(people) and not_toxic[cid] * 2 > len(people)
        raw = row["comment_text"]
        text = raw.strip()
        shift = len(raw) - len(raw.lstrip())  # spans index the raw text; keep them on the stripped one
        agreed = sorted(
            i - shift
            for i, votes in char_votes.items()
            if votes * 2 >= max(len(people), 1) and 0 <= i - shift < len(text)
        )
        anyone = sorted(i - shift for i in char_votes if 0 <= i - shift < len(text))
        examples.append(
            LabelledComment(
                comment=Comment(text=text),
                labels=labels,
                source="civil:spans",
                external_id=cid,
                weight=0.5 if borderline else 1.0,
                extra={
                    "toxic_spans": json.dumps(_runs(agreed)),
                    "marked_spans": json.dumps(_runs(anyone)),
                    "annotators": str(len(people)),
                },
            )
        )
    return examples


def _runs(positions: list[int]) -> list[list[int]]:
    """Sorted character positions -> ``[start, end)`` runs."""
    runs: list[list[int]] = []
    for i in positions:
        if runs and runs[-1][1] == i:
            runs[-1][1] = i + 1
        else:
            runs.append([i, i + 1])
    return runs


_DOUBLE_ESCAPE = re.compile(r"\\\\(?=[xunrt])")
_BYTE_RUN = re.compile(r"(?:\\x[0-9a-fA-F]{2})+")
_OTHER_ESCAPE = re.compile(r"\\(u[0-9a-fA-F]{4}|[nrt'\"])")
_SIMPLE_ESCAPES = {"n": "\n", "r": "\n", "t": "\t", "'": "'", '"': '"'}


def _decode_bytes(match: re.Match[str]) -> str:
    """A run of ``\\xNN`` escapes is bytes: UTF-8 where they form it (``\\xc2\\xa0``), else Latin-1."""
    data = bytes(int(code, 16) for code in match.group(0).split("\\x")[1:])
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _decode_other(match: re.Match[str]) -> str:
    code = match.group(1)
    return chr(int(code[1:], 16)) if len(code) > 1 else _SIMPLE_ESCAPES[code]


def _unescape_literal(text: str) -> str:
    """Impermium's text holds literal escapes, some written twice (``\\\\xc2\\\\xa0``)."""
    if "\\" not in text:
        return text
    text = _DOUBLE_ESCAPE.sub("\\\\", text)
    text = _BYTE_RUN.sub(_decode_bytes, text)
    return _OTHER_ESCAPE.sub(_decode_other, text)


def _load_impermium(folder: Path) -> list[LabelledComment]:
    path = folder / "train.csv"
    examples = []
    for line, row in iter_csv_dicts(path, required=("Insult", "Date", "Comment")):
        insult = parse_binary(row["Insult"], path, line, "Insult")
        text = row["Comment"].strip()
        if len(text) >= 2 and text[0] == text[-1] == '"':
            text = text[1:-1]
        created_at = None
        if row["Date"].strip():
            try:
                created_at = datetime.strptime(row["Date"].strip(), "%Y%m%d%H%M%SZ").replace(tzinfo=UTC)
            except ValueError:
                raise DatasetError(f"Date must be YYYYMMDDhhmmssZ, got {row['Date']!r}", path, line) from None
        examples.append(
            LabelledComment(
                comment=Comment(text=_unescape_literal(text).strip()),
                labels={"insult": insult, "toxicity": insult},
                source="impermium",
                external_id=str(line),
                created_at=created_at,
            )
        )
    return examples


def _load_fox(folder: Path) -> list[LabelledComment]:
    path = folder / "fox-news-comments.jsonl"
    examples = []
    for line, text_line in iter_text_lines(path):
        if not text_line.strip():
            continue
        try:
            row = json.loads(text_line)
            hateful = float(int(row["label"]) == 1)
            text, user, title = str(row["text"]), str(row.get("user") or ""), str(row.get("title") or "")
        except (ValueError, KeyError, TypeError) as exc:
            raise DatasetError(f"expected a JSON object with text and label: {exc}", path, line) from None
        examples.append(
            LabelledComment(
                comment=Comment(text=text.strip(), name=user.strip()),
                labels={"toxicity": hateful},
                source="fox",
                external_id=str(line),
                extra={"thread": title},
            )
        )
    return examples


def _load_wordpress_second(folder: Path) -> list[LabelledComment]:
    path = folder / "wp_comments_spam.csv"
    required = (
        "comment_ID",
        "comment_author",
        "comment_author_email",
        "comment_author_url",
        "comment_content",
    )
    examples = []
    for line, row in iter_csv_dicts(path, required=required):
        created_at = None
        try:
            created_at = datetime.strptime(row.get("comment_date_gmt", ""), "%Y-%m-%d %H:%M:%S")
            created_at = created_at.replace(tzinfo=UTC)
        except ValueError:
            pass
        examples.append(
            LabelledComment(
                comment=Comment(
                    text=_fold_lines(row["comment_content"]),
                    name=row["comment_author"].strip(),
                    email=row["comment_author_email"].strip(),
                    url=row["comment_author_url"].strip(),
                ),
                labels={"spam": 1.0},
                source="wordpress-second",
                external_id=row["comment_ID"].strip(),
                created_at=created_at,
            )
        )
    return examples


_PUBLIC_LOADERS: dict[str, Callable[[Path], list[LabelledComment]]] = {
    "youtube": _load_youtube,
    "sms": _load_sms,
    "wordpress": _load_wordpress,
    "jigsaw": _load_jigsaw,
    "davidson": _load_davidson,
    "olid": _load_olid,
    "civil": _load_civil,
    "civil-spans": _load_civil_spans,
    "impermium": _load_impermium,
    "fox": _load_fox,
    "wordpress-second": _load_wordpress_second,
}
