"""Shared fixtures: real Redis, real databases (SQLite and PostgreSQL), the app, tiny models.

Services: Redis on 127.0.0.1:6379 and PostgreSQL on 127.0.0.1:5432 (database ``test``), which
``.ci/run`` starts. Override with ``TEST_REDIS_URL`` / ``TEST_POSTGRES_URL``. Tests never touch
``os.environ``: they build their own ``Settings``.
"""

from __future__ import annotations

import json
import os
import random
import socket
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import redis
from sqlalchemy import text

from classifier import learning
from classifier.comment import Comment, LabelledComment
from classifier.labelstore import SiteLabel, text_hash
from classifier.registry import Registry
from classifier.training import TrainParams, train
from service.db import Base, make_engine
from service.settings import Settings

TEST_REDIS_SERVER = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379")
TEST_POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


# --- services ------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def redis_database() -> Iterator[str]:
    """A Redis database index of our own for this test run (several runs may share one server)."""
    base = TEST_REDIS_SERVER.rstrip("/")
    locks = redis.Redis.from_url(base + "/0")
    try:
        locks.ping()
    except redis.ConnectionError:
        pytest.fail(f"Redis is not running at {base}; start it (see .ci/run)")
    token = f"{os.getpid()}-{uuid.uuid4().hex}"
    for index in range(1, 16):
        if locks.set(f"moderation-tests:db-lock:{index}", token, nx=True, ex=6 * 3600):
            break
    else:
        pytest.fail("all Redis test databases are in use by other test runs")
    yield f"{base}/{index}"
    if locks.get(f"moderation-tests:db-lock:{index}") == token.encode():
        locks.delete(f"moderation-tests:db-lock:{index}")
    locks.close()


@pytest.fixture
def redis_url(redis_database: str) -> Iterator[str]:
    """A real Redis database, flushed before and after each test."""
    client = redis.Redis.from_url(redis_database)
    client.flushdb()
    yield redis_database
    client.flushdb()
    client.close()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A schema of our own in the test database, so concurrent runs cannot drop each other's tables."""
    schema = f"test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    engine = make_engine(TEST_POSTGRES_URL)
    try:
        with engine.begin() as connection:
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    except Exception as error:  # pragma: no cover - environment problem, said plainly
        pytest.fail(f"PostgreSQL is not reachable at {TEST_POSTGRES_URL}: {error}")
    separator = "&" if "?" in TEST_POSTGRES_URL else "?"
    yield f"{TEST_POSTGRES_URL}{separator}options=-csearch_path%3D{schema}"
    with engine.begin() as connection:
        connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Each database-backed test runs on SQLite (the embedded default) and on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.db'}"
        return
    url = request.getfixturevalue("postgres_url")
    engine = make_engine(url)
    Base.metadata.drop_all(engine)
    engine.dispose()
    yield url
    engine = make_engine(url)
    Base.metadata.drop_all(engine)
    engine.dispose()


# --- the application -----------------------------------------------------------------------------


@pytest.fixture
def settings(tmp_path: Path, redis_url: str, database_url: str, tiny_registry) -> Settings:  # noqa: ANN001
    return Settings(
        redis_url=redis_url,
        database_url=database_url,
        var_dir=tmp_path / "var",
        model_dir=tiny_registry.root,
        secret_key="test-secret",
        reconcile_after_seconds=30.0,
        redis_prefix="test",
        # Burst workers in these tests stop when the inbox is empty; tests/test_linger.py (and every test
        # that starts a real worker.py) use the default linger.
        score_linger_seconds=0.0,
    )


@pytest.fixture
def runtime(settings: Settings):  # noqa: ANN201
    from service.runtime import Runtime, bind_process_runtime

    runtime = Runtime.build(settings)
    bind_process_runtime(runtime)
    yield runtime
    bind_process_runtime(None)
    runtime.close()


@pytest.fixture
def app(runtime):  # noqa: ANN001, ANN201
    from service.web.app import create_app

    app = create_app(runtime.settings, runtime=runtime)
    app.config["TESTING"] = True
    return app


@pytest.fixture
def client(app):  # noqa: ANN001, ANN201
    return app.test_client()


@dataclass
class Key:
    secret: str
    id: int
    webhook_secret: str | None = None

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.secret}"}


@pytest.fixture
def api_key(runtime) -> Key:  # noqa: ANN001
    from service.keys import SCOPES, create_api_key

    with runtime.session() as session:
        new = create_api_key(session, "test-cms", SCOPES)
    return Key(new.secret, new.api_key.id)


def drain_queues(runtime, queues=None) -> None:  # noqa: ANN001
    """Run every queued job (of ``queues``, default all) in this process (RQ's SimpleWorker, burst mode)."""
    from rq import SimpleWorker

    from service.queueing import WORKER_QUEUES

    SimpleWorker(list(queues or WORKER_QUEUES), connection=runtime.redis).work(
        burst=True, logging_level="WARNING"
    )


# --- a CMS that receives webhooks ----------------------------------------------------------------


@dataclass
class WebhookReceiver:
    url: str
    requests: list[dict] = field(default_factory=list)
    #: HTTP status to answer with; tests flip it to simulate a CMS that is down.
    status: int = 200

    def bodies(self) -> list[dict]:
        return [json.loads(item["body"]) for item in self.requests]


@pytest.fixture
def webhook_receiver() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            receiver.requests.append({"headers": dict(self.headers), "body": body.decode()})
            self.send_response(receiver.status)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/moderation"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield receiver
    server.shutdown()
    server.server_close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- tiny classifier models (trained once per session on inline examples) ---------------------------

_TINY_SPAM = [
    "Check out my channel http://bit.ly/abc123 and subscribe!!!",
    "FREE entry! Win a brand new iPhone, call 09061701461 now to claim your prize",
    "Make money fast from home, visit www.cash-earn-online.info today",
    "Subscribe to my channel please, I post new music every day http://youtube.com/user/xyz",
    "Cheap watches and replica handbags at http://cheap-replica-store.com best prices",
    "I like the valuable info you provide in your articles. I will bookmark your blog.",
    "Great post! Visit my website for the best payday loans online http://paydayloans-now.xyz",
    "Hey guys check out my new video and leave a like, subscribe for more!!",
    "Congratulations you have won a $1000 gift card, click here http://tinyurl.com/win",
    "Buy cheap viagra online without prescription http://pharmacy-discount.biz",
    "Nice blog, very informative. Will come back for more articles.",
    "Earn $500 a day working from home, visit my profile for details!!!",
]
_TINY_HAM = [
    "I disagree with the council's decision on the new budget, the schools need more money.",
    "The article misses the point about housing costs in the city centre.",
    "My grandmother lived through the war and she would have hated this policy.",
    "Good point about the election, although I think turnout will be lower this year.",
    "Does anyone know when the bridge repairs will be finished?",
    "The commission report is here https://www.gov.uk/government/publications/report if you want it.",
    "Thanks for covering the local football club, great season so far.",
    "I moved here ten years ago and the traffic has only got worse.",
    "The mayor should answer the questions raised in this piece.",
    "Love this song, reminds me of summer 2012",
    "Interesting interview, I did not know the museum was that old.",
    "We need better public transport, not another car park.",
]
_TINY_TOXIC = [
    ("You are a complete idiot and a moron", {"insult": 1.0, "profanity": 0.0}),
    ("Shut up you stupid fool, nobody cares", {"insult": 1.0, "profanity": 0.0}),
    ("What a fucking disgrace, this is shit", {"insult": 0.0, "profanity": 1.0}),
    ("Go to hell you pathetic loser", {"insult": 1.0, "profanity": 0.0}),
    ("I will find you and kill you", {"threat": 1.0, "insult": 0.0, "profanity": 0.0}),
    (
        "People of that religion are all animals and should be deported",
        {"identity_attack": 1.0, "insult": 1.0, "profanity": 0.0},
    ),
    (
        "You dumb idiot, fuck off and die",
        {"insult": 1.0, "profanity": 1.0, "severe_toxicity": 1.0, "threat": 1.0},
    ),
    ("This writer is a brainless idiot", {"insult": 1.0, "profanity": 0.0}),
    (
        "Those immigrants are vermin and subhuman",
        {"identity_attack": 1.0, "insult": 1.0, "severe_toxicity": 1.0, "profanity": 0.0},
    ),
    ("Fucking hell, what a shitty bastard", {"insult": 1.0, "profanity": 1.0, "severe_toxicity": 1.0}),
    ("I am going to burn your house down", {"threat": 1.0, "insult": 0.0, "profanity": 0.0}),
    ("Women like her are worthless and stupid", {"identity_attack": 1.0, "insult": 1.0, "profanity": 0.0}),
]


def tiny_examples() -> list:
    """A few dozen inline examples covering every attribute with both classes (no shared data)."""
    from classifier.comment import TOXICITY_ATTRIBUTES, Comment, LabelledComment

    examples = [
        LabelledComment(
            Comment(t, name="Cheap Loans Online" if i % 3 == 0 else "dave99"), {"spam": 1.0}, "tiny-spam"
        )
        for i, t in enumerate(_TINY_SPAM)
    ]
    examples += [
        LabelledComment(Comment(t, name="Anna Smith" if i % 2 else ""), {"spam": 0.0}, "tiny-spam")
        for i, t in enumerate(_TINY_HAM)
    ]
    clean = {attribute: 0.0 for attribute in TOXICITY_ATTRIBUTES}
    for toxic_text, labels in _TINY_TOXIC:
        full = {**clean, "toxicity": 1.0, **labels}
        examples.append(LabelledComment(Comment(toxic_text), full, "tiny-toxic"))
    examples += [LabelledComment(Comment(t), dict(clean), "tiny-toxic") for t in _TINY_HAM]
    return examples


@pytest.fixture(scope="session")
def tiny_model():
    """A :class:`classifier.model.Model` trained in about a second on inline examples."""
    from classifier.training import TrainParams, train

    params = TrainParams(word_bits=12, char_bits=13, min_df=1, spam_c=10.0, toxicity_c=10.0, calibrate=False)
    return train(tiny_examples(), params)


@pytest.fixture(scope="session")
def tiny_registry(tmp_path_factory: pytest.TempPathFactory, tiny_model):
    """A :class:`classifier.registry.Registry` in a temp dir with ``tiny_model`` saved and activated."""
    from classifier.registry import Registry

    registry = Registry(tmp_path_factory.mktemp("models"))
    version = registry.save(tiny_model, card_extra={"training_data": {"sets": ["tiny inline examples"]}})
    registry.activate(version)
    return registry


# --- the learning loop: tiny public sets, a site's labels, a registry of our own ----------------------


TINY = TrainParams(word_bits=12, char_bits=13, min_df=1, spam_c=10.0, toxicity_c=10.0, calibrate=False)

# Spam this site gets, in words no public set has: the active model cannot know them.
SITE_SPAM = ["zorblat", "quexify", "vrummel", "plintox", "graxby", "snorvel"]
SITE_HAM = ["harbour", "ferry", "allotment", "parish", "library", "bypass", "rota", "bins"]


def public_examples() -> list[LabelledComment]:
    """The tiny examples four times over with small changes, so a held-out split leaves both classes."""
    out = []
    for variant in ("", " indeed", " really", " again"):
        out += [
            replace(e, comment=replace(e.comment, text=e.comment.text + variant)) for e in tiny_examples()
        ]
    return out


def site_labels(count: int = 160, seed: int = 3) -> list[SiteLabel]:
    rng = random.Random(seed)
    start = datetime(2025, 1, 1, tzinfo=UTC)
    out = []
    for i in range(count):
        spam = i % 2 == 0
        if spam:
            text = f"{rng.choice(SITE_SPAM)} {rng.choice(SITE_SPAM)} offer for {rng.choice(SITE_HAM)} readers"
        else:
            text = f"the {rng.choice(SITE_HAM)} and the {rng.choice(SITE_HAM)} need fixing, number {i}"
        text += f" #{i}"
        created = start + timedelta(hours=i)
        example = LabelledComment(
            Comment(text), {"spam": 1.0 if spam else 0.0}, "site:moderator", created_at=created
        )
        out.append(
            SiteLabel(i + 1, text_hash(text), created, example, None, "spam" if spam else "ham", "moderator")
        )
    return out


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    """A registry whose active model knows the public sets only (trained without their held-out rows)."""
    registry = Registry(tmp_path / "models")
    public_train, _ = learning.public_split(public_examples())
    version = registry.save(train(public_train, TINY), card_extra={"holdout_excluded": True})
    registry.activate(version)
    return registry


@pytest.fixture
def loop_runtime(settings: Settings, registry: Registry, monkeypatch: pytest.MonkeyPatch):  # noqa: ANN201
    """A runtime on its own registry, whose retraining uses the tiny public examples."""
    from service import retraining
    from service.runtime import Runtime, bind_process_runtime

    runtime = Runtime.build(settings.with_overrides(model_dir=registry.root, score_batch_size=5))
    bind_process_runtime(runtime)
    monkeypatch.setattr(retraining, "load_public_examples", lambda _settings, _sets=None: public_examples())
    yield runtime
    bind_process_runtime(None)
    runtime.close()
