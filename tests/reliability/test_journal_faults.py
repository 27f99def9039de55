"""Journal faults: when the async journal cannot store a request, the client gets FC's error
(500 ``InternalServerError`` or 503 ``ResourceThrottled``), never a 202 for a task that is
then lost; sync requests go on being served.

Two honest ways to break the journal under a real server, without root tricks:

- read-only: the journal path is SQLite's ``file:...?mode=ro`` URI, which ``Journal`` accepts
  (the file was created beforehand; a chmod would not stop root);
- disk full: the server runs under ``prlimit --fsize`` (RLIMIT_FSIZE), so SQLite's writes
  fail with EFBIG once the WAL reaches the limit, as they would with ENOSPC on a full disk.
  A restart without the limit then runs every task that was answered 202.
"""

from __future__ import annotations

import json
import shutil
import sys
import time

import pytest
from rawhttp import exchange, request_bytes
from relsupport import assert_fc_error
from servers import launch, stop
from support import free_port

from fc_wsgi.dispatch import Journal

pytestmark = pytest.mark.e2e

FSIZE_BYTES = 512 * 1024
BODY = b"b" * (60 * 1024)  # under FC's 128 KiB async limit; ~9 fill the limited WAL


def serve(tmp_path, journal: str, *, prefix=(), env=None, name="server"):
    config = tmp_path / f"{name}.json"
    trigger = {"authType": "anonymous", "methods": ["GET", "POST"], "async": {"journal": journal}}
    config.write_text(json.dumps(trigger))
    port = free_port()
    argv = [*prefix, sys.executable, "-m", "fc_wsgi", "serve", "tests.reliability.apps:echo",
            "--config", str(config), "--bind", f"127.0.0.1:{port}", "--threads", "2"]  # fmt: skip
    return launch(argv, port, tmp_path / f"{name}.log", env)


def post_async(port: int):
    data = request_bytes("POST", "/task", {"X-Fc-Invocation-Type": "Async"}, BODY)
    return exchange(port, data, half_close=False)


def test_read_only_journal_refuses_async_requests(tmp_path):
    path = tmp_path / "async.sqlite3"
    with Journal(path) as journal:
        journal.counts()  # creates the file and its schema
    server = serve(tmp_path, f"file:{path}?mode=ro")
    try:
        for _ in range(3):
            answer = post_async(server.port)
            payload = assert_fc_error(answer.status, answer.headers, answer.body)
            assert (answer.status, payload["Code"]) == (500, "InternalServerError")
        assert exchange(server.port, request_bytes("GET", "/sync")).status == 200
    finally:
        stop(server)
    assert "async request not stored" in server.output()
    with Journal(path) as journal:
        assert journal.list_tasks() == []
        assert journal.integrity_check() == []


@pytest.mark.skipif(not shutil.which("prlimit"), reason="needs util-linux prlimit")
def test_full_disk_refuses_async_requests_and_loses_none(tmp_path):
    path = tmp_path / "async.sqlite3"
    runs = tmp_path / "runs.txt"
    env = {"FC_WSGI_RUNS_FILE": str(runs)}
    server = serve(tmp_path, str(path), prefix=["prlimit", f"--fsize={FSIZE_BYTES}"], env=env)
    accepted, refused = [], []
    try:
        for _ in range(20):
            answer = post_async(server.port)
            if answer.status == 202:
                accepted.append(answer.headers["x-fc-request-id"])
                continue
            payload = assert_fc_error(answer.status, answer.headers, answer.body)
            assert (answer.status, payload["Code"]) in (
                (500, "InternalServerError"), (503, "ResourceThrottled"))  # fmt: skip
            refused.append(payload["RequestId"])
        assert exchange(server.port, request_bytes("GET", "/sync")).status == 200
    finally:
        stop(server)
    assert accepted and refused, (len(accepted), len(refused))
    print("DISK FULL", json.dumps({"accepted": len(accepted), "refused": len(refused)}))
    with Journal(path) as journal:  # every 202 is on disk
        assert all(journal.get(rid) is not None for rid in accepted)
        assert all(journal.get(rid) is None for rid in refused)
        assert journal.integrity_check() == []
    # Space again: a restart runs every accepted task.
    server = serve(tmp_path, str(path), env=env, name="restarted")
    try:
        deadline = time.monotonic() + 20
        done: set[str] = set()
        while time.monotonic() < deadline and not set(accepted) <= done:
            time.sleep(0.5)
            done = {line.split()[0] for line in runs.read_text().splitlines()} if runs.exists() \
                else set()  # fmt: skip
    finally:
        stop(server)
    assert set(accepted) <= done, sorted(set(accepted) - done)
