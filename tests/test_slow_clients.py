"""Slow clients cannot take the API offline (issue #12, finding 3), on the server `make run` starts."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent
#: More than every thread the API has (8), several times over.
SLOW_CLIENTS = 48


@dataclass
class Stack:
    url: str
    port: int
    key: str


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def make_run_stack(tmp_path_factory: pytest.TempPathFactory, tiny_registry) -> Iterator[Stack]:  # noqa: ANN001
    """`python -m service run` as `make run` starts it: embedded Redis, SQLite, API and workers."""
    tmp_path = tmp_path_factory.mktemp("make-run")
    port = free_port()
    env = {name: value for name, value in os.environ.items() if name not in ("REDIS_URL", "DATABASE_URL")}
    env.update(MODERATION_VAR_DIR=str(tmp_path / "var"), MODERATION_MODEL_DIR=str(tiny_registry.root))
    process = subprocess.Popen(
        [sys.executable, "-m", "service", "run", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and process.poll() is None:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        else:
            pytest.fail("`python -m service run` did not start")
        yield Stack(url, port, (tmp_path / "var" / "dev-api-key").read_text().strip())
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def slow_connections(port: int, count: int) -> list[socket.socket]:
    """Half send headers a byte at a time and never finish them; half do the same with a body."""
    sockets = []
    for index in range(count):
        connection = socket.create_connection(("127.0.0.1", port), timeout=5)
        if index % 2:
            connection.sendall(b"POST /1.1/verify-key HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        else:
            connection.sendall(
                b"POST /1.1/verify-key HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 10000\r\n\r\nkey="
            )
        sockets.append(connection)
    return sockets


def trickle(sockets: list[socket.socket], stop: threading.Event) -> None:
    while not stop.wait(0.5):
        for connection in sockets:
            try:
                connection.send(b"a")
            except OSError:
                pass


def test_health_and_keys_are_answered_while_slow_clients_trickle(make_run_stack):
    stop = threading.Event()
    sockets = slow_connections(make_run_stack.port, SLOW_CLIENTS)
    trickler = threading.Thread(target=trickle, args=(sockets, stop), daemon=True)
    trickler.start()
    try:
        time.sleep(1.0)  # every slow client has begun its request
        for _ in range(10):
            assert httpx.get(f"{make_run_stack.url}/healthz", timeout=2).status_code == 200
            check = httpx.post(
                f"{make_run_stack.url}/1.1/verify-key", data={"key": make_run_stack.key}, timeout=2
            )
            assert check.text == "valid"
            time.sleep(0.3)
    finally:
        stop.set()
        trickler.join()
        for connection in sockets:
            connection.close()


def test_make_run_serves_a_comment_to_its_verdict(make_run_stack):
    response = httpx.post(
        f"{make_run_stack.url}/v1/comments?wait=5",
        json={"name": "Ada", "email": "ada@example.com", "text": "Thanks for the clear article!"},
        headers={"Authorization": f"Bearer {make_run_stack.key}"},
        timeout=10,
    )
    assert response.status_code == 201, response.text
    assert response.json()["status"] in ("approved", "held", "rejected")
