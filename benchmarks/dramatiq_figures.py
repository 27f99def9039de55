"""SQLite vs Dramatiq async backend, on this machine, in one run.

    .venv/bin/python benchmarks/dramatiq_figures.py [--seconds 5] [--tasks 2000]

Needs wrk and redis-server (a private one is started on a free loopback port, no persistence)
and the dramatiq extra. Prints, for each backend:

1. accepts/s: wrk POSTs ``X-Fc-Invocation-Type: Async`` (``async.lua``) with
   ``x-fc-async-delay: 3600`` to `fc-wsgi serve --workers 2` for ``--seconds``, so only the
   accept path (store, then 202) is measured. Every answer must be a 202.
2. tasks/s with 1 and 2 processes: ``--tasks`` tasks are stored, due at once, before the
   processes that run them start (SQLite: `fc-wsgi serve --workers N`, whose scheduler runs
   them; Dramatiq: `fc-wsgi worker --processes N`), 4 task threads per process each; the rate
   is the count over first run start to last run end, from the task records.

The app is ``examples.hello:handler``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from benchmarks.async_figures import APP, DRAIN_SECONDS, READY_SECONDS, REQUEST  # noqa: E402
from fc_wsgi.dispatch import Journal  # noqa: E402
from fc_wsgi.errors import new_request_id  # noqa: E402

THREADS = 4


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seconds", type=int, default=5, help="wrk duration (accepting)")
    parser.add_argument("--connections", type=int, default=8, help="wrk connections")
    parser.add_argument("--tasks", type=int, default=2000, help="tasks to drain")
    args = parser.parse_args()
    for tool in ("wrk", "redis-server"):
        if shutil.which(tool) is None:
            print(f"{tool} not found (apt-get install {tool})", file=sys.stderr)
            return 2
    print(f"machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, app {APP}")
    with (
        tempfile.TemporaryDirectory(prefix="fc-wsgi-dramatiq-") as tmp,
        redis_server(Path(tmp)) as redis_url,
    ):
        folder = Path(tmp)
        rows = []
        for backend in ("sqlite", "dramatiq"):
            accepts = accepting(folder / f"{backend}-accept", backend, redis_url, args)
            rates = [
                running(folder / f"{backend}-run-{n}", backend, redis_url, args.tasks, n)
                for n in (1, 2)
            ]
            rows.append((backend, accepts, *rates))
    print(f"\n{'backend':<10}{'accepts/s':>12}{'tasks/s, 1 proc':>18}{'tasks/s, 2 procs':>18}")
    for backend, accepts, one, two in rows:
        print(f"{backend:<10}{accepts:>12,.0f}{one:>18,.0f}{two:>18,.0f}")
    return 0


def accepting(folder: Path, backend: str, redis_url: str, args: argparse.Namespace) -> float:
    config = write_config(folder, backend, redis_url)
    with serving(folder, config) as port:
        argv = ["wrk", "-t2", f"-c{args.connections}", f"-d{args.seconds}s", "--latency"]
        argv += ["-s", str(HERE / "async.lua"), f"http://127.0.0.1:{port}/"]
        env = {**os.environ, "FCBENCH_HEADERS": "x-fc-async-delay: 3600"}
        output = subprocess.run(argv, capture_output=True, text=True, check=True, env=env).stdout
    match = re.search(r"^FCBENCH (\{.*\})$", output, re.MULTILINE)
    if match is None:
        raise SystemExit(f"no FCBENCH line in wrk's output:\n{output}")
    result = json.loads(match.group(1))
    if result["statuses"].get("202", 0) != result["requests"] or any(result["errors"].values()):
        raise SystemExit(f"{backend}: not every answer was a 202: {result}")
    rate = result["requests"] / (result["duration_us"] / 1e6)
    print(
        f"{backend}: {rate:,.0f} accepts/s, 202 p50 {result['p50_us'] / 1000:.2f} ms, "
        f"p99 {result['p99_us'] / 1000:.2f} ms ({args.connections} connections)"
    )
    return rate


def running(folder: Path, backend: str, redis_url: str, count: int, processes: int) -> float:
    config = write_config(folder, backend, redis_url)
    store: Any = open_store(backend, folder, redis_url)
    with store:
        now = time.time()
        for _ in range(count):
            rid = new_request_id()
            store.enqueue(rid, rid, REQUEST, due=now, now=now)
    if backend == "sqlite":
        runner = serving(folder, config, workers=processes)
    else:
        runner = working(folder, config, processes)
    with runner, open_store(backend, folder, redis_url) as store:
        deadline = time.monotonic() + DRAIN_SECONDS
        while succeeded(store, count) < count:
            if time.monotonic() > deadline:
                raise SystemExit(f"{backend}: {count} tasks not run within {DRAIN_SECONDS} s")
            time.sleep(0.2)
        tasks = store.list_tasks(limit=count)
    first = min(t.started for t in tasks if t.started is not None)
    last = max(t.ended for t in tasks if t.ended is not None)
    rate = count / (last - first)
    print(f"{backend}: {count} tasks, {processes} process(es): {rate:,.0f} tasks/s")
    return rate


def succeeded(store: Any, count: int) -> int:
    if hasattr(store, "counts"):
        return int(store.counts().get("Succeeded", 0))
    return sum(1 for t in store.list_tasks(limit=count) if t.state == "Succeeded")


def open_store(backend: str, folder: Path, redis_url: str) -> Any:
    if backend == "sqlite":
        return Journal(folder / "async.sqlite3")
    from fc_wsgi.dispatch.dramatiq_backend import DramatiqBackend

    return DramatiqBackend(broker_url(folder, redis_url))


def broker_url(folder: Path, redis_url: str) -> str:
    return f"{redis_url}?namespace={folder.name}"


def write_config(folder: Path, backend: str, redis_url: str) -> Path:
    folder.mkdir(exist_ok=True)
    async_: dict[str, Any] = {"workers": THREADS}
    if backend == "sqlite":
        async_["journal"] = str(folder / "async.sqlite3")
    else:
        async_.update(backend="dramatiq", brokerUrl=broker_url(folder, redis_url))
    config = folder / "trigger.json"
    config.write_text(json.dumps({"authType": "anonymous", "methods": ["GET", "POST"],
                                  "async": async_}))  # fmt: skip
    return config


@contextlib.contextmanager
def serving(folder: Path, config: Path, workers: int = 2) -> Iterator[int]:
    port = free_port()
    argv = ["serve", APP, "--config", str(config), "--bind", f"127.0.0.1:{port}"]
    with running_process(folder / "serve.log", [*argv, "--workers", str(workers)]) as process:
        wait_until(lambda: _listening(port), process, folder / "serve.log")
        yield port


@contextlib.contextmanager
def working(folder: Path, config: Path, processes: int) -> Iterator[None]:
    log = folder / "worker.log"
    argv = ["worker", APP, "--config", str(config), "--processes", str(processes)]
    with running_process(log, argv) as process:
        wait_until(lambda: log.read_text().count("fc-wsgi worker ") >= processes, process, log)
        yield


@contextlib.contextmanager
def running_process(log: Path, args: list[str]) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "fc_wsgi", *args],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=40)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


@contextlib.contextmanager
def redis_server(folder: Path) -> Iterator[str]:
    port = free_port()
    argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--daemonize", "no", "--dir", str(folder)]  # fmt: skip
    log = folder / "redis.log"
    with running_process_raw(argv, log) as process:
        wait_until(lambda: _listening(port), process, log)
        yield f"redis://127.0.0.1:{port}/0"


@contextlib.contextmanager
def running_process_raw(argv: list[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield process
    finally:
        process.terminate()
        process.wait(timeout=10)


def wait_until(check: Any, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + READY_SECONDS
    while not check():
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(log.read_text(errors="replace"))
        time.sleep(0.05)


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


if __name__ == "__main__":
    sys.exit(main())
