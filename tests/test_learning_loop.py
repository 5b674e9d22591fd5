"""End to end on the real stack: ingest, moderate, retrain, guard (better and worse), hot swap."""

from __future__ import annotations

import random
from dataclasses import asdict, replace

from sqlalchemy import select

from classifier import learning
from service import activation, queueing, retraining
from service.db import PENDING, Comment, Label, ModelVersion
from service.decisions import decide
from service.keys import SCOPES, create_api_key
from service.web.app import create_app
from tests.conftest import TINY, drain_queues, public_examples, site_labels


def post(client, key: str, texts: list[str]) -> list[str]:  # noqa: ANN001
    ids = []
    for i, text in enumerate(texts):
        response = client.post(
            "/v1/comments",
            json={"name": "Reader", "email": f"r{i}@example.com", "text": text},
            headers={"Authorization": f"Bearer {key}"},
        )
        assert response.status_code == 202, response.get_json()
        ids.append(response.get_json()["id"])
    return ids


def shuffled_public() -> list:
    examples = public_examples()
    values = [e.labels["spam"] for e in examples if "spam" in e.labels]
    random.Random(7).shuffle(values)
    it = iter(values)
    return [replace(e, labels={**e.labels, "spam": next(it)}) if "spam" in e.labels else e for e in examples]


def test_learning_loop_end_to_end(loop_runtime, registry, monkeypatch):  # noqa: F811
    runtime = loop_runtime
    app = create_app(runtime.settings, runtime=runtime)
    app.config["TESTING"] = True
    client = app.test_client()
    with runtime.session() as session:
        key = create_api_key(session, "cms", SCOPES).secret
    activation.follow_announced_version(runtime)  # as the worker's reconciler thread does
    first = registry.active_version()

    # A fresh install ingests comments; the site's own spam looks harmless to the public-data model.
    examples = [s.example for s in site_labels(160)]
    ids = post(client, key, [e.comment.text for e in examples])
    drain_queues(runtime)
    with runtime.session() as session:
        assert not session.scalars(select(Comment.id).where(Comment.status == PENDING)).all()
    # A moderator labels them.
    spam_ids = [i for i, e in zip(ids, examples, strict=True) if e.labels["spam"] >= 0.5]
    ham_ids = [i for i in ids if i not in set(spam_ids)]
    assert all(o.ok for o in decide(runtime, spam_ids, "spam", actor="moderator:ann"))
    assert all(o.ok for o in decide(runtime, ham_ids, "approve", actor="moderator:ann"))
    with runtime.session() as session:
        assert len(session.scalars(select(Label.id)).all()) == 160

    # The retrain job: the candidate learnt the site's spam, so the guard promotes it.
    job = queueing.enqueue_retraining(runtime.redis, params=asdict(TINY))
    drain_queues(runtime)
    summary = job.return_value()
    assert summary["promoted"], summary
    better = summary["candidate"]
    # The worker picks it up between batches, without a restart.
    assert runtime.models.refresh() and runtime.models.version == better
    late = post(client, key, ["zorblat quexify offer for harbour readers, today only #late"])
    drain_queues(runtime)
    with runtime.session() as session:
        comment = session.get(Comment, late[0])
        assert comment.model_version == better and comment.status != "approved"

    # A worse candidate (shuffled public labels, site labels all but ignored) is refused.
    monkeypatch.setattr(retraining, "load_public_examples", lambda _s, _sets=None: shuffled_public())
    job = queueing.enqueue_retraining(runtime.redis, params=asdict(TINY), site_weight=0.001)
    drain_queues(runtime)
    summary = job.return_value()
    assert not summary["promoted"] and summary["reasons"], summary
    assert registry.active_version() == better and not runtime.models.refresh()
    with runtime.session() as session:
        states = dict(session.execute(select(ModelVersion.version, ModelVersion.state)).all())
    assert states[better] == "active" and states[summary["candidate"]] == "candidate"
    assert states.get(first, "retired") == "retired"
    assert learning.load_frozen(registry.root) is not None
