"""Real `fc-wsgi serve` and `fc-wsgi worker` processes sharing one Redis, and what they did.

The function is ``tests/e2e/async_app.py``: every run appends ``start|end <request id>
<attempt> <pid> <time>`` to a run log, and its query string makes it fail, sleep or answer
5xx. Task records are read with :class:`fc_wsgi.dispatch.dramatiq_backend.DramatiqBackend`,
the same read side as ``fc-wsgi tasks``. Processes start in their own session and are stopped
by pid (their whole process group).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from support import free_port, http_request

from tests.e2e.async_app import RUN_LOG_ENV, Run, read_runs

ROOT = Path(__file__).resolve().parents[2]
APP = "tests.e2e.async_app:app"
ASYNC = {"X-Fc-Invocation-Type": "Async"}
READY_SECONDS = 20
#: What `fc-wsgi worker` logs once its Dramatiq worker runs (fc_wsgi/worker.py).
WORKER_READY = "fc-wsgi worker "


@dataclass
class Proc:
    process: subprocess.Popen[bytes]
    log: Path
    port: int | None = None

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@dataclass
class Site:
    """A trigger config (Dramatiq backend), its run log, and the processes started for it."""

    folder: Path
    config: Path
    broker_url: str
    procs: list[Proc] = field(default_factory=list)
    server: Proc | None = None

    # -- processes ---------------------------------------------------------------------------

    def serve(self, *extra: str) -> Proc:
        port = free_port()
        argv = ["serve", APP, "--config", str(self.config), "--bind", f"127.0.0.1:{port}"]
        proc = self._launch([*argv, *extra], f"serve-{len(self.procs)}.log", port=port)
        self.server = proc
        return proc

    def worker(self, *extra: str, processes: int = 1) -> Proc:
        argv = ["worker", APP, "--config", str(self.config), "--processes", str(processes)]
        proc = self._launch([*argv, *extra], f"worker-{len(self.procs)}.log", ready=processes)
        return proc

    def _launch(self, args: list[str], log_name: str, *, port: int | None = None,
                ready: int = 0) -> Proc:  # fmt: skip
        log = self.folder / log_name
        env = {**os.environ, RUN_LOG_ENV: str(self.folder / "runs.log")}
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "fc_wsgi", *args],
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        proc = Proc(process, log, port)
        self.procs.append(proc)
        deadline = time.monotonic() + READY_SECONDS
        while not _ready(proc, ready):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{args[0]} not ready:\n{proc.output()}")
            time.sleep(0.05)
        return proc

    def stop_all(self) -> None:
        for proc in self.procs:
            stop(proc)

    # -- requests ----------------------------------------------------------------------------

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: dict | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        assert self.server is not None and self.server.port is not None
        return http_request(self.server.port, method, path, body=body, headers=headers)

    def post(self, path: str = "/", body: bytes = b"payload", **headers: str) -> str:
        """An async POST that must be accepted; returns its request id."""
        status, answer, data = self.request("POST", path, body, {**ASYNC, **headers})
        assert (status, data) == (202, b""), (status, data)
        return answer["X-Fc-Request-Id"]

    # -- what happened -----------------------------------------------------------------------

    def runs(self, request_id: str | None = None, phase: str = "start") -> list[Run]:
        return read_runs(self.folder / "runs.log", request_id, phase)

    def backend(self) -> Any:
        from fc_wsgi.dispatch.dramatiq_backend import DramatiqBackend

        return DramatiqBackend(self.broker_url)

    def task(self, request_id: str) -> Any:
        with self.backend() as backend:
            return backend.get(request_id)

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "fc_wsgi", *args, "--config", str(self.config)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )

    def logs(self) -> str:
        return "\n".join(f"--- {p.log.name}\n{p.output()[-3000:]}" for p in self.procs)


def _ready(proc: Proc, workers: int) -> bool:
    if proc.port is not None:
        try:
            with socket.create_connection(("127.0.0.1", proc.port), timeout=0.2):
                return True
        except OSError:
            return False
    return proc.output().count(WORKER_READY) >= workers


def make_site(
    folder: Path, redis_url: str, async_config: dict[str, Any] | None = None, **broker: object
) -> Site:
    """A config for ``folder`` on its own broker namespace, with ``broker`` URL parameters."""
    params = {"namespace": f"t{uuid.uuid4().hex[:12]}", **broker}
    url = redis_url + "?" + "&".join(f"{k}={v}" for k, v in params.items())
    config = {
        "authType": "anonymous",
        "methods": ["GET", "POST"],
        "async": {"backend": "dramatiq", "brokerUrl": url, "workers": 4, **(async_config or {})},
    }
    path = folder / "trigger.json"
    path.write_text(json.dumps(config))
    return Site(folder, path, url)


def stop(proc: Proc, sig: int = signal.SIGTERM) -> None:
    if proc.process.poll() is None:
        os.killpg(proc.process.pid, sig)
        try:
            proc.process.wait(timeout=40)
        except subprocess.TimeoutExpired:
            os.killpg(proc.process.pid, signal.SIGKILL)
            proc.process.wait()
