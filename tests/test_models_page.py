"""The moderators' Models page: versions, cards, reports, and the report files' name check."""

from __future__ import annotations

import re
import struct
import zlib
from pathlib import Path

from service.db import ModelVersion
from service.retraining import reports_dir
from tests.test_moderation_pages import logged_in


def _png() -> bytes:
    """A valid 1x1 PNG."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00\xff\x00\x00"))
        + chunk(b"IEND", b"")
    )


def _reports(runtime) -> Path:  # noqa: ANN001
    directory = reports_dir(runtime.settings)
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def test_models_pages_require_login(client, tiny_registry):
    version = tiny_registry.active_version()
    for path in ("/moderate/models", f"/moderate/models/{version}", "/moderate/reports/x.png"):
        response = client.get(path)
        assert response.status_code == 302
        assert response.headers["Location"].startswith("/login")


def test_models_lists_the_active_version(client, runtime, tiny_registry):
    logged_in(client, runtime)
    version = tiny_registry.active_version()
    response = client.get("/moderate/models")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert version in html
    assert "is-active" in html and ">active</span>" in html
    assert "python -m classifier models promote|rollback VERSION" in html
    assert "tiny-spam" in html  # rows per source
    assert "<script>" not in html.split("</head>")[1]
    assert "'unsafe-inline'" not in response.headers["Content-Security-Policy"]
    assert 'href="/moderate/models"' in html


def test_model_page_shows_the_card_and_the_report_escaped(client, runtime, tiny_registry):
    logged_in(client, runtime)
    version = tiny_registry.active_version()
    directory = _reports(runtime)
    stem = f"model-{version}-vs-none"
    (directory / f"{stem}-site-frozen.png").write_bytes(_png())
    (directory / f"{stem}.md").write_text(
        f"# Model {version} vs (no active model)\n\n- Guard: **PASSED**\n\n## Per attribute\n\n"
        "| set | attribute | AUC |\n|---|---|---|\n| site-frozen | spam <script>alert(1)</script> | 0.9 |\n\n"
        f"## Precision–recall curves\n\n![{stem}-site-frozen.png]({stem}-site-frozen.png)\n"
        "![x](../../etc/passwd.png)\n",
        encoding="utf-8",
    )
    with runtime.session() as session:
        session.add(
            ModelVersion(
                version=version,
                state="active",
                card=tiny_registry.card(version),
                report_path=str(directory / f"{stem}.md"),
            )
        )
        session.commit()

    listing = client.get("/moderate/models").get_data(as_text=True)
    assert f"/moderate/models/{version}#report" in listing
    assert f"{stem}.md" in listing

    response = client.get(f"/moderate/models/{version}")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "artifact_sha256" in html and tiny_registry.card(version)["artifact_sha256"] in html
    assert "tiny inline examples" in html  # a nested card value, pretty-printed
    assert "<dt>training_data</dt>" in html
    assert '<th scope="col">AUC</th>' in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script>alert(1)" not in html
    # Only the report's own image is shown; a link out of the reports directory stays text.
    assert re.findall(r'<img src="([^"]*)"', html) == [f"/moderate/reports/{stem}-site-frozen.png"]

    assert client.get("/moderate/models/no-such-version").status_code == 404


def test_report_route_serves_a_png_from_the_reports_dir(client, runtime):
    logged_in(client, runtime)
    directory = _reports(runtime)
    (directory / "model-a-vs-b-site-frozen.png").write_bytes(_png())
    (directory / "model-a-vs-b.md").write_text("# report\n", encoding="utf-8")
    response = client.get("/moderate/reports/model-a-vs-b-site-frozen.png")
    assert response.status_code == 200
    assert response.mimetype == "image/png"
    assert response.get_data() == _png()
    markdown = client.get("/moderate/reports/model-a-vs-b.md")
    assert markdown.status_code == 200 and markdown.mimetype == "text/plain"
    assert markdown.headers["X-Content-Type-Options"] == "nosniff"


def test_report_route_refuses_traversal_and_other_files(client, runtime):
    logged_in(client, runtime)
    directory = _reports(runtime)
    (directory / "notes.txt").write_text("secret", encoding="utf-8")
    (directory / ".hidden.png").write_bytes(_png())
    (directory.parent / "outside.png").write_bytes(_png())
    (directory.parent / "outside.md").write_text("secret", encoding="utf-8")
    outside = directory.parent / "outside.png"
    for name in (
        "..%2Foutside.png",
        "..%2F..%2Foutside.png",
        "%2E%2E%2Foutside.md",
        "..%5Coutside.png",
        f"{str(outside).replace('/', '%2F')}",
        "notes.txt",
        "missing.png",
        ".hidden.png",
        "model.png%0A",
        "model.PNG",
        "model.png.txt",
    ):
        response = client.get(f"/moderate/reports/{name}")
        assert response.status_code == 404, name


def test_rows_outside_the_registry_and_foreign_report_paths(client, runtime, tiny_registry, tmp_path):
    logged_in(client, runtime)
    outside = tmp_path / "model-old-vs-none.md"
    outside.write_text("# not in the reports dir\n", encoding="utf-8")
    with runtime.session() as session:
        session.add(ModelVersion(version="old-version", state="retired", card=None, report_path=str(outside)))
        session.commit()
    html = client.get("/moderate/models").get_data(as_text=True)
    assert "old-version" in html and "not in the registry" in html and "retired" in html
    assert "/moderate/models/old-version#report" not in html
    page = client.get("/moderate/models/old-version")
    assert page.status_code == 200
    assert "No comparison report for this version." in page.get_data(as_text=True)
