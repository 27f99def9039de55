"""Starting and stopping real servers on loopback, by pid (their whole process group)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
READY_SECONDS = 20


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def with_journal(config: dict, folder: Path) -> dict:
    """``config`` with its async journal in ``folder`` (never in the working tree)."""
    if "triggerConfig" in config:
        return {**config, "triggerConfig": with_journal(config["triggerConfig"], folder)}
    async_ = {"journal": str(folder / "async.sqlite3"), **config.get("async", {})}
    return {**config, "async": async_}


def launch(argv: list[str], port: int, log: Path, env: dict | None = None) -> Server:
    """Start ``argv`` in its own session (so a stop reaches its workers) and wait for it."""
    with log.open("wb") as out:
        process = subprocess.Popen(
            argv,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )
    server = Server(process, port, log)
    try:
        wait_ready(server)
    except BaseException:
        stop(server)
        raise
    return server


def wait_ready(server: Server) -> None:
    deadline = time.monotonic() + READY_SECONDS
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"server exited early:\n{server.output()}")
        try:
            with socket.create_connection(("127.0.0.1", server.port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"server not ready in {READY_SECONDS}s:\n{server.output()}")


def stop(server: Server) -> None:
    if server.process.poll() is None:
        os.killpg(server.process.pid, signal.SIGTERM)
        try:
            server.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(server.process.pid, signal.SIGKILL)
            server.process.wait()
