"""What ``fc-wsgi tasks list`` and the task page ask of a 100,000-task store, on both backends.

    .venv/bin/python benchmarks/task_listing.py [--tasks 100000]

Fills a fresh SQLite journal (executemany, one transaction) and a private redis-server
(pipelined, no persistence) with ``--tasks`` records in FC's states (90% Succeeded, 5% Failed,
3% Enqueued, 2% Retrying), then prints the best of 5 timings of each listing (50 tasks: the
newest, one state, one state since a time, a page deep in the middle) and of the counts per
state. Needs redis-server for the Redis half (skipped without it) and the dramatiq extra.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fc_wsgi.dispatch import Journal  # noqa: E402

T0 = 1_700_000_000.0
STATES = ["Succeeded"] * 90 + ["Failed"] * 5 + ["Enqueued"] * 3 + ["Retrying"] * 2


def best_ms(call: Callable[[], Any], rounds: int = 5) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return min(times) * 1000


def report(name: str, store: Any, tasks: int) -> None:
    middle = (T0 + tasks // 2, f"t{tasks // 2:06d}")
    cases = {
        "newest 50": lambda: store.list_tasks(limit=50),
        "state=Retrying, 50": lambda: store.list_tasks(limit=50, state="Retrying"),
        "state=Failed since 90%, 50": lambda: store.list_tasks(
            limit=50, state="Failed", since=T0 + tasks * 0.9
        ),
        "page after the middle, 50": lambda: store.list_tasks(limit=50, after=middle),
        "counts per state": store.counts,
    }
    for case, call in cases.items():
        print(f"{name:7} {case:28} {best_ms(call):8.2f} ms")


def fill_journal(journal: Journal, tasks: int) -> Journal:
    """``tasks`` records in one transaction (created at ``T0 + i``, states cycling through
    :data:`STATES`); also the fixture of the journal's index test."""
    journal.counts()  # the schema
    conn = journal._connection()
    rows = [
        (f"t{i:06d}", f"r{i:06d}", STATES[i % 100], 1, T0 + i, T0 + i, T0 + i, T0 + i, "POST",
         "/jobs", "{}", b"")
        for i in range(tasks)
    ]  # fmt: skip
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO tasks (id, request_id, state, attempts, created, enqueued, updated, due,"
        " method, path, environ, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        rows,
    )
    conn.execute("COMMIT")
    return journal


def redis_half(tasks: int, folder: Path) -> None:
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not Path(binary).exists():
        print("redis   (skipped: no redis-server)")
        return
    from fc_wsgi.dispatch.dramatiq_backend import RECORD_PREFIX, DramatiqBackend

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
            "no", "--dir", str(folder)]  # fmt: skip
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
    try:
        time.sleep(0.5)
        backend = DramatiqBackend(f"redis://127.0.0.1:{port}/0?namespace=bench")
        client, prefix = backend.broker.client, f"bench:{RECORD_PREFIX}:"
        pipe = client.pipeline(transaction=False)
        for i in range(tasks):
            task_id, at = f"t{i:06d}", repr(T0 + i)
            fields = {"id": task_id, "request_id": task_id, "state": STATES[i % 100],
                      "attempts": "1", "created": at, "enqueued": at, "updated": at, "due": at,
                      "method": "POST", "path": "/jobs"}  # fmt: skip
            pipe.hset(prefix + "task:" + task_id, mapping=fields)
            pipe.zadd(prefix + "tasks", {task_id: T0 + i})
            if i % 5000 == 4999:
                pipe.execute()
        pipe.execute()
        report("redis", backend, tasks)
        backend.close()
    finally:
        process.terminate()
        process.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=100_000)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="fc-wsgi-listing-"))
    try:
        with fill_journal(Journal(folder / "async.sqlite3"), args.tasks) as journal:
            report("sqlite", journal, args.tasks)
        redis_half(args.tasks, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
