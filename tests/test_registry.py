"""Registry: save/load round trip, activation, rollback, and refusing tampered artifacts or cards."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from classifier.comment import Comment
from classifier.errors import ModelIntegrityError, ModelNotFound
from classifier.model import Model
from classifier.registry import Registry

COMMENTS = [
    Comment("Check out my channel http://bit.ly/x"),
    Comment("You stupid idiot"),
    Comment("Nice piece."),
]


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    return Registry(tmp_path / "models")


@pytest.fixture
def saved(registry: Registry, tiny_model: Model) -> str:
    return registry.save(tiny_model, card_extra={"metrics": {"spam_auc": 0.5}, "training_data": {"x": 1}})


def test_save_load_round_trip(registry: Registry, tiny_model: Model, saved: str) -> None:
    loaded = registry.load(saved)
    assert loaded.version == saved
    assert np.allclose(loaded.predict(COMMENTS), tiny_model.predict(COMMENTS), atol=1e-6)
    assert loaded.score(COMMENTS)[0].model_version == saved
    card = loaded.card
    for key in ("sklearn_version", "created_at", "artifact_sha256", "hyper_parameters", "rows_by_source"):
        assert key in card
    assert card["metrics"] == {"spam_auc": 0.5}
    assert "git_commit" in card


def test_save_does_not_activate(registry: Registry, saved: str) -> None:
    assert registry.active_version() is None
    with pytest.raises(ModelNotFound):
        registry.load_active()


def test_activate_rollback_and_versions(registry: Registry, tiny_model: Model, saved: str) -> None:
    registry.activate(saved)
    second = registry.save(tiny_model)
    while second == saved:  # same minute and same bytes cannot happen: the card differs
        second = registry.save(tiny_model)
    registry.activate(second)
    assert registry.active_version() == second
    assert registry.load_active().version == second
    listed = registry.versions()
    assert {c["version"] for c in listed} == {saved, second}
    assert [c["active"] for c in listed if c["version"] == second] == [True]
    assert registry.rollback() == saved
    assert registry.active_version() == saved
    registry.rollback(second)
    assert registry.active_version() == second


def test_unknown_versions_are_not_found(registry: Registry, saved: str) -> None:
    for version in ("nope", "../etc", ""):
        with pytest.raises(ModelNotFound):
            registry.load(version)
    with pytest.raises(ModelNotFound):
        registry.activate("nope")


def test_tampered_artifact_is_refused(registry: Registry, saved: str) -> None:
    path = registry.root / saved / "model.skops"
    blob = bytearray(path.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    path.write_bytes(bytes(blob))
    with pytest.raises(ModelIntegrityError, match="sha256"):
        registry.load(saved)


def test_tampered_card_is_refused(registry: Registry, saved: str) -> None:
    card_path = registry.root / saved / "card.json"
    card = json.loads(card_path.read_text())
    card["hyper_parameters"]["spam_c"] = 123.0
    card_path.write_text(json.dumps(card))
    with pytest.raises(ModelIntegrityError, match="card"):
        registry.load(saved)


def test_swapped_artifact_is_refused(registry: Registry, tiny_model: Model, saved: str) -> None:
    other = registry.save(tiny_model, card_extra={"metrics": {"spam_auc": 0.9}})
    card = json.loads((registry.root / other / "card.json").read_text())
    shutil.copy(registry.root / other / "model.skops", registry.root / saved / "model.skops")
    card_path = registry.root / saved / "card.json"
    original = json.loads(card_path.read_text())
    original["artifact_sha256"] = card["artifact_sha256"]  # an attacker also fixes the checksum
    card_path.write_text(json.dumps(original))
    with pytest.raises(ModelIntegrityError, match="card does not match"):
        registry.load(saved)


def test_missing_or_broken_card_is_refused(registry: Registry, saved: str) -> None:
    card_path = registry.root / saved / "card.json"
    card_path.write_text("{not json")
    with pytest.raises(ModelIntegrityError):
        registry.load(saved)
    card_path.unlink()
    with pytest.raises(ModelIntegrityError, match="missing"):
        registry.load(saved)


def test_untrusted_types_are_refused(registry: Registry, saved: str) -> None:
    import hashlib
    import io
    import zipfile

    import skops.io as sio

    blob = io.BytesIO()
    sio.dump(
        {"format": 1, "spam": Path("/etc/passwd"), "toxicity": None, "card": "{}"},
        blob,
        compression=zipfile.ZIP_DEFLATED,
    )
    artifact = registry.root / saved / "model.skops"
    artifact.write_bytes(blob.getvalue())
    card_path = registry.root / saved / "card.json"
    card = json.loads(card_path.read_text())
    card["artifact_sha256"] = hashlib.sha256(blob.getvalue()).hexdigest()
    card_path.write_text(json.dumps(card))
    with pytest.raises(ModelIntegrityError, match="untrusted"):
        registry.load(saved)


def test_tiny_registry_fixture_has_an_active_model(tiny_registry: Registry) -> None:
    assert tiny_registry.load_active().version == tiny_registry.active_version()
