"""One real ``redis-server`` per test session, on a free loopback port, stopped by its pid.

Debian's ``redis-server`` package provides it (``apt-get install -y redis-server``); without
it these tests are skipped with the reason (and without the ``dramatiq`` extra: each module
starts with ``pytest.importorskip``). Each test
isolates its keys with its own broker ``namespace`` rather than a server of its own.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import free_port

REDIS_READY_SECONDS = 10


def _redis_server() -> str | None:
    return shutil.which("redis-server") or (
        "/usr/bin/redis-server" if os.access("/usr/bin/redis-server", os.X_OK) else None
    )


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``redis://127.0.0.1:PORT/0`` of a redis-server started for this session."""
    binary = _redis_server()
    if binary is None:
        pytest.skip("redis-server is not installed (Debian: apt-get install -y redis-server)")
    folder = tmp_path_factory.mktemp("redis")
    port = free_port()
    argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
            "no", "--daemonize", "no", "--dir", str(folder)]  # fmt: skip
    log = folder / "redis.log"
    with log.open("wb") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_for_ping(port, process, log)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(process.pid, signal.SIGKILL)
                process.wait()


def _wait_for_ping(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + REDIS_READY_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"redis-server exited early:\n{log.read_text(errors='replace')}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith(b"+PONG"):
                    return
        except OSError:
            pass
        time.sleep(0.05)
    pytest.fail(f"redis-server not ready in {REDIS_READY_SECONDS} s")
