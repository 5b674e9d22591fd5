"""The ``python -m classifier`` command line: the ``score`` contract, ``models`` and clean errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from classifier.comment import ATTRIBUTES
from classifier.registry import Registry

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "classifier", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )


def test_score_keeps_order_and_reports_bad_lines(tiny_registry: Registry) -> None:
    lines = [
        json.dumps(
            {"text": "Check out my channel http://bit.ly/x subscribe!!!", "name": "Cheap Loans Online"}
        ),
        "{not json",
        json.dumps({"text": "You stupid idiot"}),
        json.dumps({"name": "no text"}),
        json.dumps(["not", "an", "object"]),
        json.dumps({"text": "Polite comment about the budget.", "email": "a@example.org", "url": None}),
    ]
    result = run_cli(
        "score", "--registry", str(tiny_registry.root), "--batch-size", "2", stdin="\n".join(lines) + "\n"
    )
    assert result.returncode == 0, result.stderr
    out = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(out) == 6
    assert out[1] == {"error": out[1]["error"], "line": 2} and "JSON" in out[1]["error"]
    assert out[3]["line"] == 4 and out[4]["line"] == 5
    for row in (out[0], out[2], out[5]):
        assert set(ATTRIBUTES) <= set(row)
        assert row["model"] == tiny_registry.active_version()
        assert isinstance(row["reasons"], list)
    assert out[0]["spam"] > out[5]["spam"]
    assert out[2]["insult"] > out[5]["insult"]


def test_score_with_an_explicit_model_and_no_active_one(tmp_path: Path, tiny_registry: Registry) -> None:
    empty = tmp_path / "empty"
    result = run_cli("score", "--registry", str(empty), stdin='{"text": "hi"}\n')
    assert result.returncode == 2
    assert "no active model" in result.stderr and "Traceback" not in result.stderr
    version = tiny_registry.active_version()
    result = run_cli(
        "score", "--registry", str(tiny_registry.root), "--model", version, stdin='{"text": "hi"}\n'
    )
    assert result.returncode == 0 and json.loads(result.stdout)["model"] == version


def test_models_list_and_bad_inputs(tmp_path: Path, tiny_registry: Registry) -> None:
    result = run_cli("models", "--registry", str(tiny_registry.root), "list")
    assert result.returncode == 0 and tiny_registry.active_version() in result.stdout
    result = run_cli("models", "--registry", str(tiny_registry.root), "promote", "no-such-version")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    result = run_cli("train", "--data-dir", str(tmp_path / "missing"), "--registry", str(tmp_path / "m"))
    assert result.returncode == 2
    assert "does not exist" in result.stderr and "Traceback" not in result.stderr
