"""A function for the async e2e tests that records every run it makes.

Each run appends ``start <request id> <attempt> <pid> <time>`` to the file named by
``FC_TEST_RUN_LOG`` before it does anything, and ``end ...`` (same fields) once it answers, so a
test can tell which runs began, which finished, and in which process. A single ``os.write`` on
an ``O_APPEND`` file keeps lines whole even when processes die mid-run.

The query string says what to do (the async replay keeps it):

* ``fail=N``: raise on attempts 1..N (FC's unhandled function error), then succeed;
* ``status=503``: answer that status on every attempt (a 5xx counts as a failure);
* ``sleep=S``: sleep S seconds before answering; ``sleep1=S``: only on attempt 1.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs

RUN_LOG_ENV = "FC_TEST_RUN_LOG"


@dataclass(frozen=True)
class Run:
    """One line of the run log."""

    phase: str  # start | end
    request_id: str
    attempt: int
    pid: int
    at: float


def read_runs(log: Path, request_id: str | None = None, phase: str = "start") -> list[Run]:
    """The runs in ``log`` of one phase, for one request id or all of them."""
    try:
        text = log.read_text()
    except FileNotFoundError:
        return []
    runs = []
    for line in text.splitlines():
        kind, rid, attempt, pid, at = line.split()
        if kind == phase and request_id in (None, rid):
            runs.append(Run(kind, rid, int(attempt), int(pid), float(at)))
    return runs


def app(environ, start_response):
    query = {k: v[-1] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
    rid = environ.get("fc.request_id", "-")
    attempt = environ.get("fc.async_attempt", 0)
    length = environ.get("CONTENT_LENGTH")
    body = environ["wsgi.input"].read(int(length)) if length else b""
    _record("start", rid, attempt)
    pause = float(query.get("sleep", 0)) + (float(query.get("sleep1", 0)) if attempt == 1 else 0)
    if pause:
        time.sleep(pause)
    if attempt <= int(query.get("fail", 0)):
        _record("end", rid, attempt)
        raise RuntimeError(f"failing attempt {attempt} on purpose")
    status = query.get("status", "200")
    answer = b"ran %s attempt %d: %s" % (rid.encode(), attempt, body)
    start_response(f"{status} X", [("Content-Type", "text/plain")])
    _record("end", rid, attempt)
    return [answer]


def _record(phase: str, rid: str, attempt: int) -> None:
    path = os.environ.get(RUN_LOG_ENV)
    if not path:
        return
    line = f"{phase} {rid} {attempt} {os.getpid()} {time.time():.3f}\n".encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)
