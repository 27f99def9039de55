"""Test helpers: complete PEP 3333 environs, a recording server side, validated stacks."""

from __future__ import annotations

import base64
import io
import json
import socket
import threading
import time
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Protocol, TypeVar
from wsgiref.validate import validator

import webtest

T = TypeVar("T")


class HasLogs(Protocol):
    def logs(self) -> str: ...


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_request(
    port: int,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 10.0,
) -> tuple[int, dict[str, str], bytes]:
    """One request to a server on loopback: ``(status, headers, body)``."""
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def wait_for(
    check: Callable[[], T],
    timeout: float = 10.0,
    what: str = "condition",
    site: HasLogs | None = None,
) -> T:
    """Poll ``check`` until it returns something truthy; fail after ``timeout`` seconds,
    showing ``site``'s logs (a served test site) when given."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            import pytest

            pytest.fail(f"not within {timeout:g} s: {what}\n{site.logs() if site else ''}")
        time.sleep(0.02)


#: An HMAC secret of 64 bytes: long enough for HS256, HS384 and HS512.
HS_SECRET = bytes(range(64))


def b64url(data: bytes) -> str:
    """Base64url without padding, as JWKs and JWTs spell binary values."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_environ(**overrides: Any) -> dict[str, Any]:
    """A complete PEP 3333 environ (``setup_testing_defaults`` leaves out QUERY_STRING)."""
    body = overrides.pop("body", b"")
    environ: dict[str, Any] = {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "",
        "PATH_INFO": "/",
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": io.StringIO(),
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    if body:
        environ["CONTENT_LENGTH"] = str(len(body))
    environ.update(overrides)
    return environ


class Recorder:
    """A minimal server side: records what start_response got, drains and closes the body."""

    def __init__(self) -> None:
        self.status: str | None = None
        self.headers: list[tuple[str, str]] = []
        self.calls = 0

    def start_response(self, status: str, headers: list[tuple[str, str]], exc_info: Any = None):
        if exc_info is not None and self.status is not None and self.sent:
            raise exc_info[1].with_traceback(exc_info[2])
        self.calls += 1
        self.status, self.headers = status, list(headers)
        return self.write

    sent = False
    written: bytes = b""

    def write(self, data: bytes) -> None:
        self.sent = True
        self.written += data

    def run(self, app: Callable[..., Iterable[bytes]], environ: dict[str, Any]) -> bytes:
        body = app(environ, self.start_response)
        try:
            data = b"".join(body)
        finally:
            if hasattr(body, "close"):
                body.close()
        return self.written + data

    def header(self, name: str) -> str | None:
        values = [v for n, v in self.headers if n.lower() == name.lower()]
        return ",".join(values) if values else None


class FakeClock:
    """A clock that stands still until a test moves ``now``: inject it as ``clock=``."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def validated(middleware: Callable[..., Any], app: Callable[..., Any], **options: Any):
    """``TestApp(validator(Middleware(validator(app))))``: PEP 3333 on both sides."""
    return webtest.TestApp(validator(middleware(validator(app), **options)))


def both_sides(app: Callable[..., Any], config: Any) -> Callable[..., Any]:
    """``validator(make_trigger_app(validator(app), config))``, for servers other than webtest."""
    from fc_wsgi import make_trigger_app

    return validator(make_trigger_app(validator(app), config))


def hello_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"hello"]


class ClosingBody:
    """An app iterable that records whether the server closed it."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self.closed = False

    def __iter__(self):
        return self

    def __next__(self) -> bytes:
        return next(self._chunks)

    def close(self) -> None:
        self.closed = True


class Receiver:
    """A destination: an HTTP server on loopback that keeps every JSON record POSTed to it."""

    def __init__(self) -> None:
        self.records: dict[str, dict] = {}
        received = self.records

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                record = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                received[record["requestContext"]["requestId"]] = record
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}{path}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


def write_tree(root: Path, files: dict[str, str]) -> Path:
    """Write ``files`` (path relative to ``root`` → text) under ``root``, folders included."""
    for name, text in files.items():
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    return root


def project_app(path: Path | str, tmp_path: Path, **options: Any):
    """``make_project_app`` over a copy of the project in ``tmp_path``: its journals (kept
    beside the s.yaml) never land in the source tree."""
    import shutil

    from fc_wsgi import make_project_app
    from fc_wsgi.project import load_project

    source = Path(path)
    copy = tmp_path / "project"
    shutil.copytree(source.parent, copy, ignore=shutil.ignore_patterns(".fc-wsgi", "__pycache__"))
    return make_project_app(load_project(copy / source.name, **options))


class OperatorStore(Protocol):
    """What the shared operator scenarios drive: a task store, plus how a worker claims and
    finishes a task on it (the two backends differ only there)."""

    store: Any

    def add(self, task_id: str, now: float) -> None: ...

    def claim(self, task_id: str, owner: str, now: float) -> Any: ...

    def finish(self, task_id: str, owner: str, state: str, now: float) -> str | None: ...


def check_stop_in_each_state(ops: OperatorStore, now: float) -> None:
    """FC's StopAsyncTask on any backend: waiting → Stopped (never runs), Running → Stopping
    (Stopped when the run ends, no retry), finished → TaskFinished, unknown → TaskNotFound."""
    import pytest

    from fc_wsgi.dispatch.tasks import TaskFinished, TaskNotFound

    store = ops.store
    ops.add("enq", now)
    stopped = store.stop("rid-enq", now=now + 1)  # by request id, as the CLI is given
    assert (stopped.id, stopped.state, stopped.ended) == ("enq", "Stopped", now + 1)
    assert ops.claim("enq", "w", now + 2) is None  # never runs

    ops.add("retrying", now)
    assert ops.claim("retrying", "w1", now).state == "Running"
    assert ops.finish("retrying", "w1", "Retrying", now + 1) == "Retrying"
    assert store.stop("retrying", now=now + 2).state == "Stopped"
    assert ops.claim("retrying", "w2", now + 3) is None

    ops.add("running", now)
    ops.claim("running", "w1", now)
    assert store.stop("running", now=now + 1).state == "Stopping"
    assert store.stop("running", now=now + 2).state == "Stopping"  # asked twice: same answer
    # The run ends failing: recorded Stopped, not Retrying (so no retry, no destination).
    assert ops.finish("running", "w1", "Retrying", now + 3) == "Stopped"
    assert store.get("running").state == "Stopped"

    ops.add("done", now)
    ops.claim("done", "w1", now)
    ops.finish("done", "w1", "Succeeded", now + 1)
    for finished in ("done", "running", "enq"):
        with pytest.raises(TaskFinished, match="only waiting or running"):
            store.stop(finished, now=now + 5)
    assert store.get("done").state == "Succeeded"
    with pytest.raises(TaskNotFound):
        store.stop("nope", now=now)
    counts = store.counts()
    assert set(counts) >= {"Enqueued", "Stopping", "Invalid"}
    assert (counts["Stopped"], counts["Succeeded"], counts["Enqueued"]) == (3, 1, 0)


def check_listing_filters_and_pages(ops: OperatorStore, now: float) -> None:
    """Newest first; by state, by ``since``; keyset pages that neither skip nor repeat, even
    across tasks created in the same second."""
    store = ops.store
    for i in range(12):
        ops.add(f"t{i:02d}", now + i // 2)  # pairs share a creation time
    ops.claim("t03", "w", now + 20)
    ops.claim("t07", "w", now + 20)
    everything = [t.id for t in store.list_tasks(limit=100)]
    assert everything == [f"t{i:02d}" for i in (11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0)]
    pages, after = [], None
    while page := store.list_tasks(limit=5, after=after):
        pages.append([t.id for t in page])
        after = (page[-1].created, page[-1].id)
    assert sum(pages, []) == everything and [len(p) for p in pages] == [5, 5, 2]
    assert [t.id for t in store.list_tasks(state="Running")] == ["t07", "t03"]
    running_page = store.list_tasks(state="Running", after=(now + 3, "t07"))
    assert [t.id for t in running_page] == ["t03"]
    assert [t.id for t in store.list_tasks(since=now + 5)] == ["t11", "t10"]
    assert [t.id for t in store.list_tasks(state="Enqueued", since=now + 3, limit=3)] == [
        "t11", "t10", "t09"
    ]  # fmt: skip
    assert all(t.request is None for t in store.list_tasks())
    assert store.counts()["Running"] == 2 and store.counts()["Enqueued"] == 10
