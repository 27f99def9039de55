"""Async invocation figures: real `fc-wsgi serve --workers 2` on loopback, SQLite journal in tmp.

    .venv/bin/python benchmarks/async_figures.py [--seconds 5] [--tasks 2000] [--delayed 50]

Prints three figures, each from its own phase:

1. accepting: wrk POSTs ``X-Fc-Invocation-Type: Async`` requests (``async.lua``) for
   ``--seconds``; the 202's latency p50/p99 and accepts/s. Every answer must be a 202. Twice:
   with ``x-fc-async-delay: 3600`` (the accept path alone), then with the server running the
   accepted tasks meanwhile, as it would in production (claims and results share the
   journal's write lock with the accepts).
2. running: ``--tasks`` tasks are written to a fresh journal, due at once, before the server
   starts; tasks run/s is their count over the time from the first run's start to the last
   run's end (journal times), so the server's own start-up is not counted.
3. delay accuracy: ``--delayed`` requests with ``x-fc-async-delay`` 1 or 2 s; lateness is each
   run's start minus its due time (both written by the server, wall clock).

The app is ``examples.hello:handler`` (reads the body, answers JSON); each run is a claim and a
result, two fsynced SQLite transactions.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import math
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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from fc_wsgi.dispatch import Journal, StoredRequest  # noqa: E402
from fc_wsgi.errors import new_request_id  # noqa: E402

APP = "examples.hello:handler"
BODY = b'{"job":"resize","id":42}'
READY_SECONDS = 30
DRAIN_SECONDS = 300
WORKERS = 2
#: The stored request every queued task replays (as the dispatcher would store it).
REQUEST = StoredRequest(
    environ={
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/",
        "QUERY_STRING": "",
        "CONTENT_TYPE": "application/json",
        "REMOTE_ADDR": "127.0.0.1",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "9000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.url_scheme": "http",
        "HTTP_HOST": "127.0.0.1:9000",
    },
    body=BODY,
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seconds", type=int, default=5, help="wrk duration (accepting)")
    parser.add_argument("--connections", type=int, default=8, help="wrk connections")
    parser.add_argument("--tasks", type=int, default=2000, help="tasks to drain (running)")
    parser.add_argument("--delayed", type=int, default=50, help="delayed tasks (accuracy)")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk not found (apt-get install wrk)", file=sys.stderr)
        return 2
    print(f"fc-wsgi serve --workers {WORKERS} (sync workers, 4 task threads each), {APP}")
    print(f"machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory(prefix="fc-wsgi-async-") as tmp:
        folder = Path(tmp)
        accepting(folder / "accept-only", args.seconds, args.connections, delay=3600)
        accepting(folder / "accept", args.seconds, args.connections)
        running(folder / "drain", args.tasks)
        delay_accuracy(folder / "delay", args.delayed)
    return 0


# -- the three phases --------------------------------------------------------------------------


def accepting(folder: Path, seconds: int, connections: int, *, delay: int = 0) -> None:
    """wrk's async POSTs; with ``delay`` the tasks fall due only after the measurement."""
    with serving(folder) as port:
        argv = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency"]
        argv += ["-s", str(HERE / "async.lua"), f"http://127.0.0.1:{port}/"]
        env = {**os.environ, "FCBENCH_HEADERS": f"x-fc-async-delay: {delay}" if delay else ""}
        run = subprocess.run(argv, capture_output=True, text=True, check=True, env=env)
        output = run.stdout
        match = re.search(r"^FCBENCH (\{.*\})$", output, re.MULTILINE)
        if match is None:
            raise SystemExit(f"no FCBENCH line in wrk's output:\n{output}")
        result = json.loads(match.group(1))
        accepted = result["statuses"].get("202", 0)
        if accepted != result["requests"] or any(result["errors"].values()):
            raise SystemExit(f"not every answer was a 202: {result}")
        with Journal(folder / "async.sqlite3") as journal:
            stored = sum(journal.counts().values())
        rate = result["requests"] / (result["duration_us"] / 1e6)
        what = f"tasks due in {delay} s, none run meanwhile" if delay else "tasks run meanwhile"
        print(
            f"accepting ({seconds} s, {connections} connections, {what}): {rate:,.0f} accepts/s, "
            f"202 latency p50 {result['p50_us'] / 1000:.2f} ms, p99 {result['p99_us'] / 1000:.2f}"
            f" ms; {accepted} answered 202 (all), {stored} in the journal (+ those in flight"
            " when wrk stopped)"
        )


def running(folder: Path, count: int) -> None:
    folder.mkdir()
    journal_path = folder / "async.sqlite3"
    with Journal(journal_path) as journal:
        now = time.time()
        for _ in range(count):
            rid = new_request_id()
            journal.enqueue(rid, rid, REQUEST, due=now, now=now)
    with serving(folder):
        wait_succeeded(journal_path, count, DRAIN_SECONDS, "tasks")
    with Journal(journal_path) as journal:
        tasks = journal.list_tasks(limit=count)
    first = min(t.started for t in tasks if t.started is not None)
    last = max(t.ended for t in tasks if t.ended is not None)
    print(
        f"running: {count} queued tasks drained in {last - first:.2f} s = "
        f"{count / (last - first):,.0f} tasks run/s"
    )


def delay_accuracy(folder: Path, count: int) -> None:
    with serving(folder) as port:

        def post(n: int) -> str:
            headers = {"X-Fc-Invocation-Type": "Async", "x-fc-async-delay": str(1 + n % 2)}
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            try:
                conn.request("POST", "/", body=BODY, headers=headers)
                response = conn.getresponse()
                response.read()
                if response.status != 202:
                    raise SystemExit(f"delayed request answered {response.status}")
                return response.getheader("X-Fc-Request-Id") or ""
            finally:
                conn.close()

        with ThreadPoolExecutor(4) as clients:
            ids = list(clients.map(post, range(count)))
        journal_path = folder / "async.sqlite3"
        wait_succeeded(journal_path, count, 30, "delayed tasks")
    with Journal(journal_path) as journal:
        late_ms = sorted((t.started - t.due) * 1000 for t in map(journal.get, ids))
    print(
        f"delay accuracy ({count} tasks, delay 1-2 s): lateness p50 "
        f"{percentile(late_ms, 50):.1f} ms, p99 {percentile(late_ms, 99):.1f} ms, "
        f"min {late_ms[0]:.1f} ms, max {late_ms[-1]:.1f} ms"
    )


# -- helpers ---------------------------------------------------------------------------------


def wait_succeeded(journal_path: Path, count: int, seconds: float, what: str) -> None:
    """Until ``count`` tasks of the journal have succeeded, at most ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with Journal(journal_path) as journal:
            if journal.counts()["Succeeded"] == count:
                return
        time.sleep(0.2)
    raise SystemExit(f"{count} {what} not run within {seconds:g} s")


def percentile(sorted_values: list[float], p: float) -> float:
    """Nearest rank."""
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


@contextlib.contextmanager
def serving(folder: Path) -> Iterator[int]:
    """`fc-wsgi serve --workers 2` with its journal in ``folder``; yields its port."""
    folder.mkdir(exist_ok=True)
    config = folder / "trigger.json"
    config.write_text(
        json.dumps(
            {
                "authType": "anonymous",
                "methods": ["GET", "POST"],
                "async": {"journal": str(folder / "async.sqlite3")},
            }
        )
    )
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    argv = [sys.executable, "-m", "fc_wsgi", "serve", APP, "--config", str(config)]
    argv += ["--bind", f"127.0.0.1:{port}", "--workers", str(WORKERS)]
    with (folder / "server.log").open("wb") as log:
        process = subprocess.Popen(
            argv, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        wait_ready(process, port, folder)
        yield port
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def wait_ready(process: subprocess.Popen[bytes], port: int, folder: Path) -> None:
    """Until a worker answers (gunicorn's master listens before its workers have booted)."""
    deadline = time.monotonic() + READY_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit((folder / "server.log").read_text(errors="replace"))
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            conn.request("GET", "/")
            conn.getresponse().read()
            return
        except OSError:
            time.sleep(0.05)
        finally:
            conn.close()
    raise SystemExit(f"server not ready in {READY_SECONDS} s")


if __name__ == "__main__":
    sys.exit(main())
