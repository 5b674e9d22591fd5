"""Prometheus metrics: GET /metrics, the worker's metrics port, multiprocess mode, and /readyz's backlog."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select, update

from service import jobs, metrics
from service.db import Comment, WebhookDelivery, utcnow
from service.keys import create_api_key, server_secret
from service.runtime import Runtime
from service.web.app import create_app
from tests.conftest import drain_queues, free_port
from worker import serve_worker_metrics

POLITE = {"name": "Grace", "email": "grace@example.com", "text": "Interesting, I learned something today."}


def parse(text: str) -> dict[tuple[str, frozenset], float]:
    """Every sample of a scrape, by name and labels."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def scrape(client) -> dict:  # noqa: ANN001
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=")
    return parse(response.get_data(as_text=True))


def test_a_comment_shows_up_in_every_metric_from_post_to_verdict(runtime, client, api_key):
    before = scrape(client)
    posted = client.post("/v1/comments", json=POLITE, headers=api_key.headers)
    assert posted.status_code == 202
    comment_id = posted.get_json()["id"]
    client.get(f"/v1/comments/{comment_id}", headers=api_key.headers)

    waiting = scrape(client)
    assert value(waiting, "moderation_pending_comments") == 1
    assert value(waiting, "moderation_queue_depth", queue="inbox") == 1
    assert value(waiting, "moderation_oldest_pending_age_seconds") >= 0

    drain_queues(runtime)
    after = scrape(client)

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("moderation_comments_received_total", site="default") == 1
    verdicts = {
        labels: count - before.get((name, labels), 0.0)
        for (name, labels), count in after.items()
        if name == "moderation_verdicts_total"
    }
    assert sum(verdicts.values()) == 1
    assert grew("moderation_verdict_latency_seconds_count") == 1
    assert grew("moderation_verdict_latency_seconds_sum") > 0
    assert grew("moderation_scoring_batch_size_count") == 1
    assert grew("moderation_scoring_batch_size_sum") == 1
    assert grew("moderation_scoring_batch_duration_seconds_count") == 1
    assert value(after, "moderation_pending_comments") == 0
    assert value(after, "moderation_oldest_pending_age_seconds") == 0
    assert value(after, "moderation_model_active", version=runtime.models.model.version) == 1
    # Requests are labelled by URL rule, never by the raw path with its comment id.
    assert grew("moderation_http_requests_total", endpoint="/v1/comments", method="POST", status="202") == 1
    assert (
        grew(
            "moderation_http_requests_total",
            endpoint="/v1/comments/<comment_id>",
            method="GET",
            status="200",
        )
        == 1
    )
    assert not any(comment_id in str(labels) for _name, labels in after)
    assert grew("moderation_http_request_duration_seconds_count", endpoint="/v1/comments", method="POST") == 1


def test_unmatched_paths_share_one_label(client):
    before = scrape(client)
    assert client.get("/no/such/page/12345").status_code == 404
    after = scrape(client)
    labels = {"endpoint": metrics.UNMATCHED_ENDPOINT, "method": "GET", "status": "404"}
    assert value(after, "moderation_http_requests_total", **labels) == (
        value(before, "moderation_http_requests_total", **labels) + 1
    )


def test_metrics_need_no_key_but_can_be_turned_off(runtime):
    runtime = _with(runtime, metrics_enabled=False)
    app = create_app(runtime.settings, runtime=runtime)
    response = app.test_client().get("/metrics")
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "not_found"


def _with(runtime: Runtime, **overrides: object) -> Runtime:
    """The same connections with other settings (``/metrics`` and ``/readyz`` read the runtime's)."""
    runtime.settings = runtime.settings.with_overrides(**overrides)
    return runtime


def test_webhook_and_reconciler_counters(runtime, client, webhook_receiver):
    with runtime.session() as session:
        key = create_api_key(
            session,
            "hooked",
            ["comments"],
            webhook_url=webhook_receiver.url,
            sealing_key=server_secret(runtime.settings),
        )
    headers = {"Authorization": f"Bearer {key.secret}"}
    before = scrape(client)
    webhook_receiver.status = 500  # the CMS is down: the first attempt fails and is scheduled again
    client.post("/v1/comments", json={**POLITE, "external_id": "a"}, headers=headers)
    drain_queues(runtime)
    # A comment whose job was lost: pending, last enqueued long ago.
    lost = client.post("/v1/comments", json={**POLITE, "external_id": "b"}, headers=headers).get_json()["id"]
    runtime.redis.delete(f"{runtime.settings.redis_prefix}:inbox")
    with runtime.session() as session:
        session.execute(
            update(Comment).where(Comment.id == lost).values(enqueued_at=utcnow() - timedelta(hours=1))
        )
        session.commit()
    report = jobs.reconcile(runtime)
    assert report.comments_requeued == 1
    after = scrape(client)

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("moderation_webhook_deliveries_total", outcome="failed") == 1
    assert grew("moderation_webhook_deliveries_total", outcome="delivered") == 0
    assert grew("moderation_reconciler_requeues_total", kind="comment") == 1

    # The retry succeeds: one more delivery, counted as a retry.
    webhook_receiver.status = 200
    with runtime.session() as session:
        (delivery_id,) = session.scalars(select(WebhookDelivery.id)).all()
    assert jobs.deliver_webhook(delivery_id) == "delivered"
    final = scrape(client)
    assert value(final, "moderation_webhook_deliveries_total", outcome="delivered") == (
        value(after, "moderation_webhook_deliveries_total", outcome="delivered") + 1
    )
    assert (
        value(final, "moderation_webhook_retries_total")
        == value(after, "moderation_webhook_retries_total") + 1
    )


def test_worker_serves_its_metrics_on_its_port(runtime):
    port = free_port()
    serve_worker_metrics(runtime, port)
    response = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
    assert response.status_code == 200
    samples = parse(response.text)
    assert value(samples, "moderation_model_active", version=runtime.models.model.version) == 1
    assert any(name == "moderation_scoring_batch_size_count" for name, _ in samples)
    # The backlog is the API's to report (one series for the whole service).
    assert not any(name == "moderation_pending_comments" for name, _ in samples)


DEPLOY = Path(__file__).resolve().parent.parent / "deploy"


def _queried_series() -> set[str]:
    """Every ``moderation_*`` series the Grafana dashboard and the alerting rules ask Prometheus for."""
    dashboard = json.loads((DEPLOY / "grafana" / "moderation.json").read_text())
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    expressions = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    expressions += [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    return {name for expr in expressions for name in re.findall(r"\bmoderation_[a-z_]+", expr)}


def _exported_series(text: str) -> set[str]:
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
    return {
        family.name + suffix
        for family in text_string_to_metric_families(text)
        for suffix in suffixes.get(family.type, ("",))
    }


def test_the_dashboard_and_the_alerts_query_only_series_the_service_exports(runtime, client):
    """A renamed metric must not leave an empty panel or an alert that can never fire."""
    scraped = client.get("/metrics").get_data(as_text=True)
    queried = _queried_series()
    assert {"moderation_verdicts_total", "moderation_oldest_pending_age_seconds"} <= queried
    assert queried - _exported_series(scraped) == set()


def _worker_metrics_ports(command: list[str]) -> set[int]:
    """The ports ``worker.py --metrics-port N --processes K`` serves: N to N+K-1."""
    options = dict(zip(command[2::2], command[3::2], strict=False))
    first, processes = int(options["--metrics-port"]), int(options.get("--processes", "1"))
    return set(range(first, first + processes))


def _exposed_ports(service: dict) -> set[int]:
    ports = set()
    for entry in service.get("expose", []):
        low, _, high = str(entry).partition("-")
        ports.update(range(int(low), int(high or low) + 1))
    return ports


def test_the_compose_monitoring_profile_scrapes_every_metrics_port_and_loads_the_rules_and_dashboard():
    """Add a worker process or move a port in compose.yaml, and Prometheus must still see all of it."""
    compose = yaml.safe_load((DEPLOY.parent / "compose.yaml").read_text())
    services = compose["services"]
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    scraped: dict[str, set[int]] = {}
    for job in config["scrape_configs"]:
        for sd in job["dns_sd_configs"]:
            for name in sd["names"]:
                scraped.setdefault(name, set()).add(sd["port"])
    serving = {
        name: _worker_metrics_ports(service["command"])
        for name, service in services.items()
        if "--metrics-port" in service.get("command", [])
    }
    serving["api"] = {8000}
    assert scraped == serving  # every metrics port is scraped, and nothing else
    for name, ports in serving.items():
        assert ports <= _exposed_ports(services[name]), name

    mounts = {
        name: dict(volume.split(":")[:2] for volume in services[name]["volumes"])  # outside: inside
        for name in ("prometheus", "grafana")
    }
    rules_mounted = {inside: outside for outside, inside in mounts["prometheus"].items()}
    for rule_file in config["rule_files"]:
        assert (DEPLOY.parent / rules_mounted[rule_file]).resolve() == DEPLOY / "prometheus" / "alerts.yml"
    provisioning = DEPLOY / "grafana" / "provisioning"
    assert mounts["grafana"]["./deploy/grafana/provisioning"] == "/etc/grafana/provisioning"
    provider = yaml.safe_load((provisioning / "dashboards" / "moderation.yml").read_text())["providers"][0]
    dashboard_inside = mounts["grafana"]["./deploy/grafana/moderation.json"]
    assert Path(dashboard_inside).parent == Path(provider["options"]["path"])
    source = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())["datasources"][0]
    assert source["type"] == "prometheus" and source["isDefault"]
    assert (
        source["url"] == "http://prometheus:9090" and "127.0.0.1:9090:9090" in services["prometheus"]["ports"]
    )


_INCREMENT = """
from service import metrics
metrics.COMMENTS_RECEIVED.labels("7").inc(int(__import__("sys").argv[1]))
metrics.VERDICT_LATENCY.observe(0.2)
"""


def test_multiprocess_mode_adds_up_every_process(tmp_path: Path):
    directory = tmp_path / "prometheus"
    directory.mkdir()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory)}
    for count in ("2", "3"):
        subprocess.run([sys.executable, "-c", _INCREMENT, count], env=env, check=True, cwd=Path.cwd())
    samples = parse(metrics.render(metrics.scrape_registry(directory)).decode())
    assert value(samples, "moderation_comments_received_total", site="7") == 5
    assert value(samples, "moderation_verdict_latency_seconds_count") == 2


# --- /readyz and the backlog -------------------------------------------------------------------------


def _age_pending(runtime: Runtime, seconds: float) -> None:
    with runtime.session() as session:
        session.execute(
            update(Comment)
            .values(received_at=utcnow() - timedelta(seconds=seconds))
            .where(Comment.status == "pending")
        )
        session.commit()


def test_readyz_is_ready_with_a_short_backlog(runtime, client, api_key):
    client.post("/v1/comments", json=POLITE, headers=api_key.headers)
    response = client.get("/readyz")
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "ready"
    assert body["checks"]["backlog"]["ok"] is True
    assert body["checks"]["backlog"]["pending"] == 1


def test_readyz_is_degraded_but_200_when_the_oldest_pending_comment_is_too_old(runtime, client, api_key):
    client.post("/v1/comments", json=POLITE, headers=api_key.headers)
    client.post("/v1/comments", json=POLITE, headers=api_key.headers)
    _age_pending(runtime, 120)
    response = client.get("/readyz")
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "degraded"
    backlog = body["checks"]["backlog"]
    assert backlog["ok"] is False
    assert backlog["pending"] == 2
    assert 119 <= backlog["oldest_pending_seconds"] < 200
    assert backlog["max_backlog_seconds"] == 60
    # Still accepting: a degraded service takes comments, it just takes longer to decide them.
    assert client.post("/v1/comments", json=POLITE, headers=api_key.headers).status_code == 202

    drain_queues(runtime)
    assert client.get("/readyz").get_json()["status"] == "ready"


@pytest.mark.parametrize("code", [503])
def test_readyz_degraded_status_is_configurable(runtime, client, api_key, code):
    _with(runtime, ready_degraded_status=code, ready_max_backlog_seconds=5.0)
    client.post("/v1/comments", json=POLITE, headers=api_key.headers)
    assert client.get("/readyz").status_code == 200
    _age_pending(runtime, 10)
    response = client.get("/readyz")
    assert response.status_code == code
    assert response.get_json()["status"] == "degraded"


# --- gunicorn, several processes ---------------------------------------------------------------------


@pytest.mark.slow
def test_under_gunicorn_every_scrape_counts_every_process(settings, api_key, tmp_path: Path):
    directory = tmp_path / "prometheus"
    directory.mkdir()
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url,
        "REDIS_PREFIX": settings.redis_prefix,
        "MODERATION_MODEL_DIR": str(settings.model_dir),
        "MODERATION_VAR_DIR": str(settings.var_dir),
        "SECRET_KEY": settings.secret_key,
        "PROMETHEUS_MULTIPROC_DIR": str(directory),
    }
    command = [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", "3"]
    process = subprocess.Popen(
        [*command, "--preload", "service:create_app()"], env=env, stderr=subprocess.DEVNULL
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None and time.monotonic() < deadline, "gunicorn did not start"
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        for _ in range(12):  # a connection each: the kernel spreads them over the processes
            answer = httpx.post(f"{base}/v1/comments", json=POLITE, headers=api_key.headers, timeout=10)
            assert answer.status_code == 202
        pids = {path.name.split("_")[-1] for path in directory.glob("counter_*.db")}
        assert len(pids) >= 2, "the requests all went to one process; the test proves nothing"
        for _ in range(6):
            samples = parse(httpx.get(f"{base}/metrics", timeout=10).text)
            assert value(samples, "moderation_comments_received_total", site="default") == 12
            assert value(samples, "moderation_pending_comments") == 12
    finally:
        process.terminate()
        process.wait(timeout=20)
