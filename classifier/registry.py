"""A local model registry: one directory per version holding ``model.skops`` and ``card.json``.

Layout under ``root`` (``./var/models`` by default, always passed in)::

    <version>/model.skops   the artifact: both pipelines, saved with skops (no bare pickle)
    <version>/card.json     the model card, including the artifact's sha256
    active                  the active version (one line), replaced atomically
    history.jsonl           every activation, for ``rollback`` without a version

Loading checks the card against the artifact (sha256, embedded card copy) and refuses unknown types.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import logging
import os
import subprocess
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sklearn
import skops.io as sio

from classifier.datasets import sha256_file
from classifier.errors import ModelIntegrityError, ModelNotFound
from classifier.model import Model

logger = logging.getLogger(__name__)

DEFAULT_ROOT = Path("var/models")
ARTIFACT = "model.skops"
CARD = "card.json"
FORMAT = 1
#: Card fields the registry fills in at save time; the rest of the card is embedded in the artifact.
REGISTRY_FIELDS = (
    "version",
    "created_at",
    "artifact",
    "artifact_sha256",
    "artifact_bytes",
    "git_commit",
    "format",
)

#: The only non-builtin types an artifact may contain (checked with ``skops.io.get_untrusted_types``).
TRUSTED_TYPES: tuple[str, ...] = (
    "classifier.features.CommentVectorizer",
    "sklearn.linear_model._logistic.LogisticRegression",
    "sklearn.multioutput.MultiOutputClassifier",
    "sklearn.pipeline.Pipeline",
    "builtins.tuple",
    "numpy.float32",
    "numpy.float64",
    "numpy.int64",
    "numpy.int32",
    "numpy.dtype",
    "numpy.ndarray",
    "numpy.core.multiarray._reconstruct",
)


def _git_commit() -> str | None:
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = result.stdout.strip()
    return commit if result.returncode == 0 and len(commit) == 40 else None


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


class Registry:
    """Versions of trained models on disk, with an "active" pointer."""

    def __init__(self, root: Path = DEFAULT_ROOT):
        self.root = Path(root)

    # -- writing --------------------------------------------------------------------------------------
    def save(self, model: Model, card_extra: dict[str, Any] | None = None) -> str:
        """Write the artifact and its card; returns the new version. Does not activate it."""
        self.root.mkdir(parents=True, exist_ok=True)
        card = copy.deepcopy(model.card)
        card.update(copy.deepcopy(card_extra or {}))
        card.setdefault("sklearn_version", sklearn.__version__)
        card = json.loads(json.dumps(card, default=str))  # the embedded copy must equal the JSON file
        embedded = {k: v for k, v in card.items() if k not in REGISTRY_FIELDS}
        payload = {
            "format": FORMAT,
            "spam": model.spam,
            "toxicity": model.toxicity,
            "card": json.dumps(embedded, sort_keys=True),
        }
        buffer = io.BytesIO()
        sio.dump(payload, buffer, compression=zipfile.ZIP_DEFLATED)
        blob = buffer.getvalue()
        sha = hashlib.sha256(blob).hexdigest()
        now = datetime.now(UTC)
        version = f"{now:%Y-%m-%dT%H%M}-{sha[:8]}"
        folder = self.root / version
        tmp_folder = self.root / f".{version}.tmp"
        tmp_folder.mkdir(parents=True, exist_ok=True)
        (tmp_folder / ARTIFACT).write_bytes(blob)
        card.update(
            {
                "format": FORMAT,
                "version": version,
                "created_at": now.isoformat(timespec="seconds"),
                "artifact": ARTIFACT,
                "artifact_sha256": sha,
                "artifact_bytes": len(blob),
                "git_commit": _git_commit(),
            }
        )
        (tmp_folder / CARD).write_text(json.dumps(card, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        if folder.exists():
            raise ModelIntegrityError(f"version {version} already exists")
        os.replace(tmp_folder, folder)
        model.version = version
        model.card = card
        logger.info("saved model=%s bytes=%d", version, len(blob))
        return version

    def activate(self, version: str) -> None:
        """Make ``version`` the active model (promote)."""
        self.card(version)  # must exist and have a readable card
        _write_atomic(self.root / "active", version + "\n")
        with open(self.root / "history.jsonl", "a", encoding="utf-8") as f:
            entry = {"version": version, "at": datetime.now(UTC).isoformat(timespec="seconds")}
            f.write(json.dumps(entry) + "\n")
        logger.info("activated model=%s", version)

    promote = activate

    def rollback(self, version: str | None = None) -> str:
        """Activate ``version``, or the version that was active before the current one; returns it."""
        if version is None:
            current = self.active_version()
            previous = [v for v in self._history() if v != current]
            if not previous:
                raise ModelNotFound("no earlier active version to roll back to")
            version = previous[-1]
        self.activate(version)
        return version

    # -- reading --------------------------------------------------------------------------------------
    def active_version(self) -> str | None:
        try:
            version = (self.root / "active").read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return None
        return version or None

    def card(self, version: str) -> dict[str, Any]:
        """The card of one version (raises ModelNotFound / ModelIntegrityError)."""
        if not version or "/" in version or "\\" in version or version.startswith("."):
            raise ModelNotFound(f"no model version {version!r}")
        folder = self.root / version
        if not folder.is_dir():
            raise ModelNotFound(f"no model version {version!r} in {self.root}")
        try:
            card = json.loads((folder / CARD).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ModelIntegrityError(f"model {version}: card.json is missing") from None
        except (OSError, ValueError) as err:
            raise ModelIntegrityError(f"model {version}: card.json is unreadable: {err}") from None
        if not isinstance(card, dict) or card.get("version") != version:
            raise ModelIntegrityError(f"model {version}: card does not describe this version")
        return card

    def load(self, version: str) -> Model:
        """Load one version after checking the card, the sha256 and the types in the artifact."""
        card = self.card(version)
        path = self.root / version / str(card.get("artifact", ARTIFACT))
        if not path.is_file():
            raise ModelIntegrityError(f"model {version}: artifact is missing")
        if sha256_file(path) != card.get("artifact_sha256"):
            raise ModelIntegrityError(f"model {version}: artifact sha256 does not match its card")
        blob = path.read_bytes()
        try:
            untrusted = set(sio.get_untrusted_types(data=blob))
        except Exception as err:  # noqa: BLE001 - any parse failure is an integrity problem
            raise ModelIntegrityError(f"model {version}: artifact is unreadable: {err}") from None
        unexpected = untrusted - set(TRUSTED_TYPES)
        if unexpected:
            raise ModelIntegrityError(f"model {version}: artifact holds untrusted types {sorted(unexpected)}")
        try:
            payload = sio.loads(blob, trusted=sorted(untrusted))
        except Exception as err:  # noqa: BLE001
            raise ModelIntegrityError(f"model {version}: artifact cannot be loaded: {err}") from None
        embedded = json.loads(payload.get("card", "{}"))
        expected = {k: v for k, v in card.items() if k not in REGISTRY_FIELDS}
        if embedded != expected:
            raise ModelIntegrityError(f"model {version}: card does not match the artifact")
        if card.get("sklearn_version") != sklearn.__version__:
            logger.warning(
                "model=%s sklearn_trained=%s sklearn_running=%s",
                version,
                card.get("sklearn_version"),
                sklearn.__version__,
            )
        return Model(payload["spam"], payload["toxicity"], version=version, card=card)

    def load_active(self) -> Model:
        version = self.active_version()
        if version is None:
            raise ModelNotFound(
                f"no active model in {self.root}; run `python -m classifier train --activate`"
            )
        return self.load(version)

    def versions(self) -> list[dict[str, Any]]:
        """Cards of every version, newest first, each with ``"active": bool``."""
        if not self.root.is_dir():
            return []
        active = self.active_version()
        cards = []
        for folder in self.root.iterdir():
            if not folder.is_dir() or folder.name.startswith("."):
                continue
            try:
                card = self.card(folder.name)
            except (ModelNotFound, ModelIntegrityError) as err:
                card = {"version": folder.name, "error": str(err)}
            card["active"] = folder.name == active
            cards.append(card)
        cards.sort(key=lambda c: (str(c.get("created_at", "")), c["version"]), reverse=True)
        return cards

    def _history(self) -> list[str]:
        try:
            lines = (self.root / "history.jsonl").read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return []
        out = []
        for line in lines:
            try:
                out.append(json.loads(line)["version"])
            except (ValueError, KeyError, TypeError):
                continue
        return out
