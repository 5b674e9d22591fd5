"""Loaders: public sets (checksums, label mapping) and user-brought files, including malformed ones."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path

import pytest

from classifier import datasets
from classifier.comment import ATTRIBUTES
from classifier.datasets import (
    PUBLIC_SETS,
    SkipTally,
    load_csv,
    load_disqus,
    load_jsonl,
    load_labelled_file,
    load_public,
    load_public_set,
    load_wp_comments_csv,
    load_wxr,
)
from classifier.errors import DatasetError

REAL_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def write(path: Path, text: str | bytes) -> Path:
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


# --- public sets -----------------------------------------------------------------------------------


def fake_public_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, files: dict[str, str]
) -> Path:
    """A data dir holding ``files`` for set ``name``, with PUBLIC_SETS patched to their real checksums."""
    public = PUBLIC_SETS[name]
    folder = tmp_path / public.folder
    folder.mkdir(parents=True)
    patched = []
    for pf in public.files:
        if pf.path in files:
            data = files[pf.path].encode("utf-8")
            (folder / pf.path).write_bytes(data)
            patched.append(datasets.PublicFile(pf.path, pf.url, hashlib.sha256(data).hexdigest(), pf.rows))
    monkeypatch.setitem(
        PUBLIC_SETS,
        name,
        datasets.PublicSet(
            name=public.name,
            folder=public.folder,
            title=public.title,
            files=tuple(patched),
            licence=public.licence,
            citation=public.citation,
            label_mapping=public.label_mapping,
            sources=public.sources,
        ),
    )
    return tmp_path


def test_every_public_set_has_full_provenance():
    for name, public in PUBLIC_SETS.items():
        assert public.name == name
        assert public.licence and public.citation and public.label_mapping and public.sources
        for pf in public.files:
            assert len(pf.sha256) == 64 and int(pf.sha256, 16) >= 0
            assert pf.url.startswith("https://github.com/") and "/blob/" in pf.url
    sources = {s for public in PUBLIC_SETS.values() for s in public.sources}
    assert sources == {
        "youtube:psy",
        "youtube:katyperry",
        "youtube:lmfao",
        "youtube:eminem",
        "youtube:shakira",
        "sms",
        "wordpress",
        "jigsaw",
        "davidson",
        "olid",
        "civil",
        "civil:spans",
        "impermium",
        "fox",
        "wordpress-second",
    }


def test_toxic_spans_labels_types_agreement_and_borderline_weight(tmp_path, monkeypatch):
    comments = 'comment_id,comment_text\n1,"You are an idiot, go away"\n2,"Meh, whatever you say"\n'
    annotations = (
        "annotation,comment_id,worker,country,all toxic,not toxic\n"
        "10,1,a,USA,False,False\n11,1,b,USA,False,False\n12,1,c,USA,False,True\n"
        "20,2,a,USA,False,True\n21,2,b,USA,False,True\n22,2,c,USA,False,False\n"
    )
    spans = (
        "annotation,type,start,end\n10,Insult,11,16\n11,Insu,11,16\n12,Threat,0,3\n22,Other toxicity,0,3\n"
    )
    data_dir = fake_public_dir(
        tmp_path,
        monkeypatch,
        "civil-spans",
        {"data_comments.csv": comments, "data_annotations.csv": annotations, "data_spans.csv": spans},
    )
    idiot, meh = load_public_set(data_dir, "civil-spans")
    assert idiot.labels == {"toxicity": 1.0, "insult": 1.0}  # one threat vote of three is not agreement
    assert json.loads(idiot.extra["toxic_spans"]) == [[11, 16]]
    assert json.loads(idiot.extra["marked_spans"]) == [[0, 3], [11, 16]]  # what anyone marked
    assert json.loads(meh.extra["toxic_spans"]) == [] and json.loads(meh.extra["marked_spans"]) == [[0, 3]]
    assert idiot.comment.text[11:16] == "idiot" and idiot.weight == 1.0
    assert meh.labels == {"toxicity": 1.0} and meh.weight == 0.5  # two of three said "not toxic"
    assert idiot.source == "civil:spans"


def test_impermium_unescapes_literal_escapes_and_reads_dates(tmp_path, monkeypatch):
    text = (
        "Insult,Date,Comment\n"
        '1,20120618192155Z,"""You fool.\\nReally."""\n'
        '0,,"""A\\\\xc2\\\\xa0majority, caf\\u00e9 \\xa0ok"""\n'
    )
    data_dir = fake_public_dir(tmp_path, monkeypatch, "impermium", {"train.csv": text})
    fool, majority = load_public_set(data_dir, "impermium")
    assert fool.comment.text == "You fool.\nReally." and fool.labels == {"insult": 1.0, "toxicity": 1.0}
    assert fool.created_at is not None and fool.created_at.year == 2012
    assert majority.comment.text == "A\xa0majority, caf\u00e9 \xa0ok" and majority.labels["insult"] == 0.0
    bad = "Insult,Date,Comment\n1,yesterday,x\n"
    data_dir = fake_public_dir(tmp_path / "bad", monkeypatch, "impermium", {"train.csv": bad})
    with pytest.raises(DatasetError, match=r"train.csv:2: Date must be"):
        load_public_set(data_dir, "impermium")


def test_fox_news_and_second_blog_mapping(tmp_path, monkeypatch):
    fox = (
        '{"title": "T", "text": "Go home", "label": 1, "user": "bob"}\n'
        '{"title": "T", "text": "Fair", "label": 0}\n'
    )
    data_dir = fake_public_dir(tmp_path, monkeypatch, "fox", {"fox-news-comments.jsonl": fox})
    hateful, fair = load_public_set(data_dir, "fox")
    assert (
        hateful.labels == {"toxicity": 1.0}
        and hateful.comment.name == "bob"
        and fair.labels == {"toxicity": 0.0}
    )
    blog = (
        "comment_ID,comment_author,comment_author_email,comment_author_url,comment_date_gmt,comment_content\n"
        '7,Cheap Loans,x@example.com,http://loans.example/,2015-08-04 18:22:17,"Nice post\nthanks"\n'
    )
    data_dir = fake_public_dir(
        tmp_path / "blog", monkeypatch, "wordpress-second", {"wp_comments_spam.csv": blog}
    )
    (spam,) = load_public_set(data_dir, "wordpress-second")
    assert spam.comment.text == "Nice post thanks" and spam.labels == {"spam": 1.0}
    assert spam.comment.name == "Cheap Loans" and spam.created_at is not None and spam.created_at.month == 8


def test_checksum_mismatch_is_refused(tmp_path):
    folder = tmp_path / "civil-comments-sample"
    folder.mkdir()
    write(folder / "civil_comments.csv", "text,toxicity\nnot the real file,0.1\n")
    with pytest.raises(DatasetError, match="sha256 mismatch") as err:
        load_public(tmp_path, ["civil"])
    assert "civil_comments.csv" in str(err.value)
    # verify=False skips the check (and then fails on the missing columns, with a line number)
    with pytest.raises(DatasetError, match=r"civil_comments.csv:1: missing required column"):
        load_public(tmp_path, ["civil"], verify=False)


def test_missing_public_file_and_unknown_set(tmp_path):
    with pytest.raises(DatasetError, match="missing data file"):
        load_public_set(tmp_path, "sms")
    with pytest.raises(DatasetError, match="unknown public set"):
        load_public_set(tmp_path, "nope")


def test_youtube_strips_feff_ignores_date_and_maps_author(tmp_path, monkeypatch):
    csv_text = (
        "COMMENT_ID,AUTHOR,DATE,CONTENT,CLASS\n"
        "a1,Spammer Joe,,Check out my channel\ufeff,1\n"
        "a2,Fan,2015-05-29T02:26:10.652000,I love this song<br />\ufeff,0\n"
    )
    data_dir = fake_public_dir(tmp_path, monkeypatch, "youtube", {"Youtube04-Eminem.csv": csv_text})
    monkeypatch.setattr(datasets.public, "YOUTUBE_VIDEOS", {"eminem": ("Youtube04-Eminem.csv", 2)})
    spam, ham = load_public_set(data_dir, "youtube")
    assert spam.comment.text == "Check out my channel" and spam.comment.name == "Spammer Joe"
    assert spam.labels == {"spam": 1.0} and ham.labels == {"spam": 0.0}
    assert spam.source == "youtube:eminem"
    assert ham.created_at is None and spam.created_at is None  # DATE leaks the label: never read
    assert "DATE" not in ham.extra and not any("2015" in v for v in ham.extra.values())


def test_sms_and_wordpress_mapping(tmp_path, monkeypatch):
    data_dir = fake_public_dir(
        tmp_path,
        monkeypatch,
        "sms",
        {
            "SMSSpamCollection": 'ham\tOk lar... "Joking\nspam\tFREE entry, call now\n',
        },
    )
    ham, spam = load_public_set(data_dir, "sms")
    assert ham.comment.text == 'Ok lar... "Joking' and ham.labels == {"spam": 0.0}
    assert spam.labels == {"spam": 1.0} and spam.source == "sms"

    header = (
        "Comment Number,Author,Website,Email,IP Address,Submit Time,Submit Year,Submit Month,"
        "Submit Day,Comment,Post,Grammar Check\n"
    )
    row = (
        "7, Cheap Flights,http://example.test/,a@example.test,10.0.0.1,11:48 pm,2017,02,07,"
        '"I\n like the helpful info \nyou provide.",Post,"<results/>"\n'
    )
    data_dir = fake_public_dir(
        tmp_path / "wp", monkeypatch, "wordpress", {"spam_data.until-2017-02-07.csv": header + row}
    )
    (wp,) = load_public_set(data_dir, "wordpress")
    assert wp.comment.text == "I like the helpful info you provide."
    assert (wp.comment.name, wp.comment.url, wp.comment.email) == (
        "Cheap Flights",
        "http://example.test/",
        "a@example.test",
    )
    assert wp.labels == {"spam": 1.0} and wp.source == "wordpress"


def test_toxicity_label_mappings(tmp_path, monkeypatch):
    jig_header = "id,comment_text,toxic,severe_toxic,obscene,threat,insult,identity_hate,is_bad\n"
    data_dir = fake_public_dir(
        tmp_path,
        monkeypatch,
        "jigsaw",
        {
            "train.5k.csv": jig_header + "x1,you idiot,1,0,1,0,1,0,True\n",
            "train.a.bad.1k.csv": jig_header + "x1,you idiot,1,0,1,0,1,0,True\nx2,die,1,1,0,1,0,1,True\n",
        },
    )
    jig = load_public_set(data_dir, "jigsaw")
    assert [e.external_id for e in jig] == ["x1", "x2"]  # deduplicated by id across files
    assert jig[0].labels == {
        "toxicity": 1,
        "severe_toxicity": 0,
        "profanity": 1,
        "threat": 0,
        "insult": 1,
        "identity_attack": 0,
    }

    civil = (
        "text,toxicity,severe_toxicity,obscene,threat,insult,identity_attack,sexual_explicit\n"
        "you fool,0.7,0.1,0.5,0.0,0.49,0,0.2\n"
    )
    data_dir = fake_public_dir(tmp_path / "c", monkeypatch, "civil", {"civil_comments.csv": civil})
    (c,) = load_public_set(data_dir, "civil")
    assert c.labels == {
        "toxicity": 1,
        "severe_toxicity": 0,
        "insult": 0,
        "threat": 0,
        "identity_attack": 0,
        "profanity": 1,
    }
    assert c.extra["insult_fraction"] == "0.49" and c.extra["sexual_explicit_fraction"] == "0.2"

    dav = (
        ",count,hate_speech,offensive_language,neither,class,tweet\n"
        "0,3,3,0,0,0,hate\n1,3,0,3,0,1,offensive\n2,3,0,0,3,2,neither\n"
    )
    data_dir = fake_public_dir(tmp_path / "d", monkeypatch, "davidson", {"labeled_data.csv": dav})
    hate, off, neither = load_public_set(data_dir, "davidson")
    assert hate.labels == {"toxicity": 1, "identity_attack": 1}
    assert off.labels == {"toxicity": 1, "identity_attack": 0} and "profanity" not in off.labels
    assert neither.labels == {"toxicity": 0, "identity_attack": 0}

    olid = (
        "id\ttweet\tsubtask_a\tsubtask_b\tsubtask_c\n"
        "1\tnice day\tNOT\tNULL\tNULL\n"
        "2\t@USER you are a clown\tOFF\tTIN\tIND\n"
        "3\tfuck mondays\tOFF\tUNT\tNULL\n"
    )
    data_dir = fake_public_dir(tmp_path / "o", monkeypatch, "olid", {"olid-training-v1.0.tsv": olid})
    not_, tin, unt = load_public_set(data_dir, "olid")
    assert set(not_.labels) == set(ATTRIBUTES) - {"spam"} and not any(not_.labels.values())
    assert tin.labels == {"toxicity": 1, "insult": 1}
    assert unt.labels["profanity"] == 1 and unt.labels["insult"] == 0 and unt.labels["toxicity"] == 1


@pytest.mark.skipif(not (REAL_DATA / "SOURCES.md").is_file(), reason="shared data not present")
def test_real_public_sets_match_sources_md():
    counts = Counter(e.source for e in load_public(REAL_DATA))
    assert counts == {
        "youtube:psy": 350,
        "youtube:katyperry": 350,
        "youtube:lmfao": 438,
        "youtube:eminem": 448,
        "youtube:shakira": 370,
        "sms": 5574,
        "wordpress": 1350,
        "jigsaw": 9848,
        "davidson": 24783,
        "olid": 13240,
        "civil": 1000,
        "civil:spans": 16100,
        "impermium": 3947,
        "fox": 1528,
        "wordpress-second": 162,
    }


# --- user CSV / JSONL -------------------------------------------------------------------------------


def test_csv_label_words_and_attribute_columns(tmp_path):
    path = write(
        tmp_path / "mine.csv",
        "text,label,name,email,url,id,created_at\n"
        "buy cheap pills,spam,Cheap Pills,x@y.test,http://pills.test,7,2024-01-02T03:04:05Z\n"
        "nice article,ham,,,,8,\n"
        ",spam,,,,9,\n",
    )
    tally = SkipTally()
    spam, ham = load_csv(path, on_skip=tally)
    assert spam.labels == {"spam": 1.0} and ham.labels == {"spam": 0.0}
    assert spam.source == "import:mine.csv" and spam.external_id == "7"
    assert (spam.comment.name, spam.comment.email, spam.comment.url) == (
        "Cheap Pills",
        "x@y.test",
        "http://pills.test",
    )
    assert spam.created_at is not None and spam.created_at.year == 2024
    assert tally.counts == {"empty text": 1}

    tox = write(tmp_path / "tox.csv", "text,label\nyou idiot,toxic\nthanks,ok\nhmm,1\n")
    expected = [{"toxicity": 1}, {"toxicity": 0}, {"toxicity": 1}]
    assert [e.labels for e in load_csv(tox, source="crew")] == expected
    plain = write(tmp_path / "plain.csv", "text,label\nwin money,true\nhello,0\n")
    assert [e.labels for e in load_csv(plain)] == [{"spam": 1}, {"spam": 0}]
    assert [e.labels for e in load_csv(plain, label_attribute="insult")] == [{"insult": 1}, {"insult": 0}]

    cols = write(tmp_path / "cols.csv", "text,toxicity,insult,spam\nyou fool,0.8,1,\nfine,0,,0\n")
    a, b = load_csv(cols)
    assert a.labels == {"toxicity": 0.8, "insult": 1.0} and b.labels == {"toxicity": 0.0, "spam": 0.0}


def test_jsonl(tmp_path):
    path = write(
        tmp_path / "x.jsonl",
        "\n".join(
            [
                json.dumps({"text": "free money", "label": 1, "external_id": "a"}),
                "",
                json.dumps({"text": "you idiot", "toxicity": 1, "insult": True, "name": "N"}),
                json.dumps({"text": "no labels here", "label": ""}),
            ]
        )
        + "\n",
    )
    tally = SkipTally()
    first, second = load_jsonl(path, on_skip=tally)
    assert first.labels == {"spam": 1.0} and first.external_id == "a"
    assert second.labels == {"toxicity": 1.0, "insult": 1.0} and second.comment.name == "N"
    assert tally.counts == {"no label": 1}


@pytest.mark.parametrize(
    ("kind", "content", "pattern"),
    [
        ("csv", "", r":1: empty file"),
        ("csv", "body,label\nhi,spam\n", r":1: missing required column\(s\) text"),
        ("csv", "text,name\nhi,x\n", r":1: need at least one of the columns label"),
        ("csv", "text,label\nok,spam\nok,spam,extra\n", r":3: expected 2 fields, found 3"),
        ("csv", 'text,label\nok,spam\n"unclosed,spam\n', r":3: malformed CSV"),
        ("csv", "text,label\nok,spam\nbad,maybe\n", r":3: unknown label 'maybe'"),
        ("csv", "text,label\nok,spam\nbad,toxic\n", r":3: the label column mixes"),
        ("csv", "text,toxicity\nok,0\nbad,1.7\n", r":3: column 'toxicity': expected a number"),
        ("csv", "text,label,created_at\nok,spam,yesterday\n", r":2: created_at: not an ISO 8601"),
        ("csv", b"text,label\nok,spam\ncaf\xe9,ham\n", r":3: not valid UTF-8"),
        ("jsonl", "", r":1: empty file"),
        ("jsonl", '{"text": "a", "label": "spam"}\n{"text": "b", "label": \n', r":2: invalid JSON"),
        ("jsonl", '{"text": "a", "label": "spam"}\n\n["x"]\n', r":3: expected a JSON object"),
        ("jsonl", '{"text": "a", "label": "spam"}\n{"label": "spam"}\n', r":2: missing required field"),
        ("jsonl", '{"text": "a"}\n', r":1: need a 'label' field"),
        ("wxr", "", r":1: empty file"),
        ("wxr", "<rss>\n<channel>\n<item>\n</channel>\n</rss>\n", r":4: malformed XML"),
        ("disqus", "<disqus>\n<post><message>hi</post>\n</disqus>", r":2: malformed XML"),
        ("wp-csv", "comment_ID,comment_content\n1,hi\n", r":1: missing required column\(s\) comment_app"),
    ],
)
def test_bad_files_raise_dataset_error_with_line(tmp_path, kind, content, pattern):
    path = write(tmp_path / f"bad.{kind}", content)
    with pytest.raises(DatasetError, match=pattern) as err:
        load_labelled_file(kind, path)
    assert str(err.value).startswith(str(path))


def test_xml_bombs_are_refused(tmp_path):
    bomb = (
        '<?xml version="1.0"?>\n<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;">]>\n'
        "<disqus><post><message>&lol2;</message></post></disqus>\n"
    )
    with pytest.raises(DatasetError, match="unsafe XML"):
        load_disqus(write(tmp_path / "bomb.xml", bomb))


def test_unknown_kind(tmp_path):
    with pytest.raises(DatasetError, match="unknown file kind"):
        load_labelled_file("xls", tmp_path / "x.xls")


# --- WordPress and Disqus exports -------------------------------------------------------------------

WXR = """<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/"
     xmlns:wp="http://wordpress.org/export/1.2/">
<channel><title>Blog</title>
<item><title>Post</title>
{comments}
</item></channel></rss>
"""


def wp_comment(cid: int, status: str, text: str, ctype: str = "comment") -> str:
    return f"""<wp:comment>
  <wp:comment_id>{cid}</wp:comment_id>
  <wp:comment_author><![CDATA[Reader {cid}]]></wp:comment_author>
  <wp:comment_author_email><![CDATA[r{cid}@example.test]]></wp:comment_author_email>
  <wp:comment_author_url>http://r{cid}.example.test</wp:comment_author_url>
  <wp:comment_author_IP><![CDATA[192.0.2.1]]></wp:comment_author_IP>
  <wp:comment_date_gmt><![CDATA[2020-03-04 05:06:07]]></wp:comment_date_gmt>
  <wp:comment_content><![CDATA[{text}]]></wp:comment_content>
  <wp:comment_approved><![CDATA[{status}]]></wp:comment_approved>
  <wp:comment_type><![CDATA[{ctype}]]></wp:comment_type>
  <wp:commentmeta><wp:meta_key>akismet</wp:meta_key><wp:meta_value>x</wp:meta_value></wp:commentmeta>
</wp:comment>"""


def test_wxr_statuses(tmp_path):
    comments = "\n".join(
        [
            wp_comment(1, "1", "Great <b>article</b> &amp; thanks"),
            wp_comment(2, "spam", "Cheap watches online"),
            wp_comment(3, "0", "pending one"),
            wp_comment(4, "trash", "removed one"),
            wp_comment(5, "1", "linked here", ctype="pingback"),
        ]
    )
    tally = SkipTally()
    ham, spam = load_wxr(write(tmp_path / "export.xml", WXR.format(comments=comments)), on_skip=tally)
    assert ham.comment.text == "Great <b>article</b> &amp; thanks" and ham.labels == {"spam": 0.0}
    assert (ham.comment.name, ham.comment.email, ham.comment.url) == (
        "Reader 1",
        "r1@example.test",
        "http://r1.example.test",
    )
    assert ham.external_id == "1" and ham.created_at is not None and ham.created_at.year == 2020
    assert spam.labels == {"spam": 1.0} and spam.source == "import:export.xml"
    assert tally.counts == {
        "pending (not moderated yet)": 1,
        "trash (moderator removed, reason unknown)": 1,
        "pingback (not a reader comment)": 1,
    }


def test_wp_comments_csv(tmp_path):
    path = write(
        tmp_path / "wp_comments.csv",
        "comment_ID,comment_post_ID,comment_author,comment_author_email,comment_author_url,"
        "comment_author_IP,comment_date,comment_date_gmt,comment_content,comment_karma,"
        "comment_approved,comment_agent,comment_type,comment_parent,user_id\n"
        "1,5,Ann,a@example.test,,192.0.2.1,2020-01-01 10:00:00,2020-01-01 09:00:00,"
        '"Thanks,\nnice",0,1,UA,comment,0,0\n'
        "2,5,Best Loans,l@example.test,http://loans.test,192.0.2.9,2020-01-01 10:00:00,"
        "0000-00-00 00:00:00,Get a loan,0,spam,UA,,0,0\n"
        "3,5,Bob,b@example.test,,192.0.2.1,2020-01-01 10:00:00,2020-01-01 09:00:00,"
        "hm,0,trash,UA,,0,0\n",
    )
    tally = SkipTally()
    ham, spam = load_wp_comments_csv(path, source="blog", on_skip=tally)
    assert ham.comment.text == "Thanks,\nnice" and ham.labels == {"spam": 0.0} and ham.source == "blog"
    assert (
        spam.labels == {"spam": 1.0} and spam.created_at is None and spam.comment.url == "http://loans.test"
    )
    assert tally.counts == {"trash (moderator removed, reason unknown)": 1}


DISQUS = """<?xml version="1.0" encoding="utf-8"?>
<disqus xmlns="http://disqus.com" xmlns:dsq="http://disqus.com/disqus-internals">
  <thread dsq:id="10"><title>Story</title></thread>
  <post dsq:id="1">
    <message><![CDATA[<p>Thoughtful point.</p>]]></message>
    <createdAt>2019-05-06T07:08:09Z</createdAt>
    <isDeleted>false</isDeleted><isSpam>false</isSpam>
    <author><email>r@example.test</email><name>Reader</name><isAnonymous>false</isAnonymous></author>
    <thread dsq:id="10"/>
  </post>
  <post dsq:id="2">
    <message><![CDATA[Visit my casino]]></message>
    <createdAt>2019-05-06T07:08:09Z</createdAt>
    <isDeleted>true</isDeleted><isSpam>true</isSpam>
    <author><name>Casino King</name></author>
  </post>
  <post dsq:id="3">
    <message><![CDATA[]]></message>
    <isDeleted>true</isDeleted><isSpam>false</isSpam>
  </post>
</disqus>
"""


def test_disqus(tmp_path):
    tally = SkipTally()
    ham, spam = load_disqus(write(tmp_path / "disqus.xml", DISQUS), on_skip=tally)
    assert ham.comment.text == "<p>Thoughtful point.</p>" and ham.labels == {"spam": 0.0}
    assert ham.comment.name == "Reader" and ham.external_id == "1" and ham.created_at.year == 2019
    assert spam.labels == {"spam": 1.0} and spam.comment.name == "Casino King"
    assert tally.counts == {"deleted (reason unknown)": 1}
