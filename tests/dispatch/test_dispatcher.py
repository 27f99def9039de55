"""AsyncDispatcher end to end: FC's async answers, durable before 202, runs, retries, crashes."""

from __future__ import annotations

import io
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any
from wsgiref.validate import validator

import pytest
import webtest
from support import FakeClock

from fc_wsgi.config import Destination, DestinationConfig
from fc_wsgi.dispatch import AsyncDispatcher, Journal, drain_all, start_all
from fc_wsgi.dispatch.tasks import StoredRequest

REPO = Path(__file__).resolve().parents[2]  # the checkout, for child processes
ASYNC = {"X-Fc-Invocation-Type": "Async"}
Environ = dict[str, Any]


class Recorder:
    """A WSGI app recording each call; ``statuses`` scripts the answers, then 200."""

    def __init__(self, statuses: list[str] | None = None, raises: int = 0) -> None:
        self.calls: list[Environ] = []
        self.statuses = list(statuses or [])
        self.raises = raises
        self.closed = 0
        self.lock = threading.Lock()

    def __call__(self, environ: Environ, start_response: Callable[..., Any]) -> Any:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        seen = {k: v for k, v in environ.items() if isinstance(v, (str, int))}
        seen["body"] = environ["wsgi.input"].read(length) if length else b""
        with self.lock:
            self.calls.append(seen)
            if self.raises:
                self.raises -= 1
                raise RuntimeError("function crashed")
            status = self.statuses.pop(0) if self.statuses else "200 OK"
        start_response(status, [("Content-Type", "text/plain")])
        return ClosingBody([b"result ", seen["body"]], self)


class ClosingBody:
    def __init__(self, chunks: list[bytes], app: Recorder) -> None:
        self.chunks, self.app = chunks, app

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.chunks)

    def close(self) -> None:
        with self.app.lock:
            self.app.closed += 1


def client(dispatcher: AsyncDispatcher) -> webtest.TestApp:
    return webtest.TestApp(validator(dispatcher))


@pytest.fixture
def app() -> Recorder:
    return Recorder()


def state_of(journal: Journal, task_id: str) -> str | None:
    task = journal.get(task_id)
    return task.state if task else None


# -- the request path ------------------------------------------------------------------------


def test_sync_requests_pass_through_untouched(make_dispatcher: Any, make_environ: Any) -> None:
    body = [b"sync"]

    def inner(environ: Environ, start_response: Callable[..., Any]) -> list[bytes]:
        start_response("200 OK", [])
        return body

    dispatcher = make_dispatcher(inner)
    for extra in ({}, {"HTTP_X_FC_INVOCATION_TYPE": "Sync"}, {"HTTP_X_FC_INVOCATION_TYPE": "sYNC"}):
        environ = make_environ(**extra)
        assert dispatcher(environ, lambda s, h, e=None: None) is body  # same iterable
        assert environ.get("HTTP_X_FC_INVOCATION_TYPE") == extra.get("HTTP_X_FC_INVOCATION_TYPE")
    assert not dispatcher.running  # no thread for sync traffic


def test_async_request_is_committed_before_the_202(
    make_dispatcher: Any, journal_path: Path, app: Recorder, wait_for: Any
) -> None:
    dispatcher = make_dispatcher(validator(app))
    answer = client(dispatcher).post(
        "/jobs/7?x=1",
        params=b'{"n": 7}',
        content_type="application/json",
        headers={**ASYNC, "X-Fc-Async-Delay": "3600", "X-Custom": "kept"},
        status=202,
    )
    rid = answer.headers["X-Fc-Request-Id"]
    assert answer.body == b"" and answer.headers["Content-Length"] == "0"
    assert rid.startswith("1-") and "X-Fc-Async-Task-Id" not in answer.headers
    # Another connection sees the row: it was committed before the answer.
    with sqlite3.connect(journal_path) as other:
        rows = other.execute("SELECT id, request_id, state, environ, body FROM tasks").fetchall()
    other.close()
    assert len(rows) == 1
    task_id, request_id, state, environ_json, body = rows[0]
    assert (task_id, request_id, state, body) == (rid, rid, "Enqueued", b'{"n": 7}')
    stored = json.loads(environ_json)
    assert stored["PATH_INFO"] == "/jobs/7" and stored["QUERY_STRING"] == "x=1"
    assert stored["HTTP_X_CUSTOM"] == "kept" and stored["CONTENT_TYPE"] == "application/json"
    assert "HTTP_X_FC_INVOCATION_TYPE" not in stored and "HTTP_X_FC_ASYNC_DELAY" not in stored
    assert app.calls == []  # delayed an hour


def test_async_task_runs_through_the_app_with_request_id_and_attempt(
    make_dispatcher: Any, app: Recorder, wait_for: Any
) -> None:
    dispatcher = make_dispatcher(validator(app))
    answer = client(dispatcher).post(
        "/base/jobs?q=1", params=b"payload", headers={**ASYNC, "X-Custom": "yes"}, status=202
    )
    rid = answer.headers["X-Fc-Request-Id"]
    wait_for(lambda: state_of(dispatcher.journal, rid) == "Succeeded", what="success")
    (seen,) = app.calls
    assert seen["fc.async_attempt"] == 1
    assert seen["fc.request_id"] == seen["HTTP_X_FC_REQUEST_ID"] == rid
    assert (seen["REQUEST_METHOD"], seen["PATH_INFO"], seen["QUERY_STRING"]) == (
        "POST",
        "/base/jobs",
        "q=1",
    )
    assert seen["body"] == b"payload" and seen["HTTP_X_CUSTOM"] == "yes"
    assert "HTTP_X_FC_INVOCATION_TYPE" not in seen
    assert app.closed == 1
    task = dispatcher.journal.get(rid)
    assert task is not None and (task.attempts, task.status, task.last_error) == (1, 200, None)


def test_invocation_type_is_case_insensitive(
    make_dispatcher: Any, app: Recorder, wait_for: Any
) -> None:
    dispatcher = make_dispatcher(app)
    client(dispatcher).get("/", headers={"X-Fc-Invocation-Type": " aSyNc "}, status=202)
    wait_for(lambda: app.calls, what="the run")


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({"X-Fc-Invocation-Type": "Later"}, id="unknown invocation type"),
        pytest.param({**ASYNC, "X-Fc-Async-Delay": "-1"}, id="delay -1"),
        pytest.param({**ASYNC, "X-Fc-Async-Delay": "3601"}, id="delay limit+1"),
        pytest.param({**ASYNC, "X-Fc-Async-Delay": "1.5"}, id="delay not integer"),
        pytest.param({**ASYNC, "X-Fc-Async-Delay": "soon"}, id="delay text"),
        pytest.param({**ASYNC, "X-Fc-Async-Delay": ""}, id="delay empty"),
        pytest.param({**ASYNC, "X-Fc-Async-Task-Id": "1starts-with-digit"}, id="task id digit"),
        pytest.param({**ASYNC, "X-Fc-Async-Task-Id": "a" * 129}, id="task id 129 chars"),
        pytest.param({**ASYNC, "X-Fc-Async-Task-Id": "has space"}, id="task id space"),
        pytest.param({**ASYNC, "X-Fc-Async-Task-Id": "dot.ted"}, id="task id dot"),
        pytest.param(
            {**ASYNC, "X-Fc-Stateful-Async-Invocation-Id": "-x"}, id="fc2 task id dash first"
        ),
    ],
)
def test_bad_async_headers_are_400_and_nothing_is_queued(
    make_dispatcher: Any, app: Recorder, headers: dict[str, str]
) -> None:
    dispatcher = make_dispatcher(app)
    answer = client(dispatcher).post("/", params=b"x", headers=headers, status=400)
    assert answer.json["Code"] == "InvalidArgument"
    assert answer.headers["X-Fc-Error-Type"] == "FcCommonError"
    assert answer.json["RequestId"] == answer.headers["X-Fc-Request-Id"]
    assert dispatcher.journal.list_tasks() == [] and app.calls == []


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("X-Fc-Async-Task-Id", "_job-1"),
        ("X-Fc-Async-Task-Id", "a" * 128),
        ("X-Fc-Stateful-Async-Invocation-Id", "Job_2"),
    ],
)
def test_client_task_id_is_used_echoed_and_unique(
    make_dispatcher: Any, header: str, value: str
) -> None:
    dispatcher = make_dispatcher(Recorder())
    headers = {**ASYNC, "X-Fc-Async-Delay": "3600", header: value}
    answer = client(dispatcher).post("/", params=b"1", headers=headers, status=202)
    assert answer.headers[header] == value
    task = dispatcher.journal.get(value)
    assert task is not None and task.request_id == answer.headers["X-Fc-Request-Id"]
    again = client(dispatcher).post("/", params=b"2", headers=headers, status=409)
    assert again.json["Code"] == "ResourceAlreadyExists"
    assert len(dispatcher.journal.list_tasks()) == 1


def test_fc2_profile_error_body(make_dispatcher: Any) -> None:
    dispatcher = make_dispatcher(Recorder(), profile="fc2")
    answer = client(dispatcher).get("/", headers={"X-Fc-Invocation-Type": "x"}, status=400)
    assert set(answer.json) == {"ErrorCode", "ErrorMessage"}


def test_queue_bound_is_429(make_dispatcher: Any) -> None:
    dispatcher = make_dispatcher(Recorder(), max_queued_tasks=2)
    delayed = {**ASYNC, "X-Fc-Async-Delay": "60"}
    for _ in range(2):
        client(dispatcher).post("/", headers=delayed, status=202)
    answer = client(dispatcher).post("/", headers=delayed, status=429)
    assert answer.json["Code"] == "ResourceExhausted"


def test_read_only_journal_answers_an_error_never_202(
    make_dispatcher: Any, journal: Journal, journal_path: Path
) -> None:
    journal.enqueue("old", "old", StoredRequest({}, b""), due=0.0)  # the file exists, with schema
    dispatcher = make_dispatcher(Recorder(), journal=f"file:{journal_path}?mode=ro")
    answer = client(dispatcher).post("/", params=b"x", headers=ASYNC, status=500)
    assert answer.json["Code"] == "InternalServerError"
    assert [t.id for t in journal.list_tasks()] == ["old"]


def test_journal_locked_too_long_is_503(
    make_dispatcher: Any, journal: Journal, journal_path: Path
) -> None:
    assert journal.integrity_check() == []  # creates the file
    locked = Journal(journal_path, busy_timeout_seconds=0.05)
    dispatcher = make_dispatcher(Recorder(), journal=locked)
    locker = sqlite3.connect(journal_path, isolation_level=None)
    try:
        locker.execute("BEGIN IMMEDIATE")
        answer = client(dispatcher).post("/", params=b"x", headers=ASYNC, status=503)
        assert answer.json["Code"] == "ResourceThrottled"
        locker.execute("ROLLBACK")
    finally:
        locker.close()
        locked.close()


def _chunked_environ(make_environ: Any, body: bytes) -> Environ:
    environ = make_environ(HTTP_X_FC_INVOCATION_TYPE="Async", HTTP_X_FC_ASYNC_DELAY="60")
    del environ["CONTENT_LENGTH"]
    environ["wsgi.input"] = io.BytesIO(body)
    environ["wsgi.input_terminated"] = True
    return environ


def test_body_read_to_eof_when_input_terminated_and_short_bodies_refused(
    make_dispatcher: Any, make_environ: Any
) -> None:
    dispatcher = make_dispatcher(Recorder())
    answers: list[str] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        answers.append(status)

    body = os.urandom(200_000)
    dispatcher(_chunked_environ(make_environ, body), start_response)
    (task,) = dispatcher.journal.list_tasks()
    loaded = dispatcher.journal.get(task.id)
    assert loaded is not None and loaded.request is not None and loaded.request.body == body
    short = make_environ(b"abc", HTTP_X_FC_INVOCATION_TYPE="Async", CONTENT_LENGTH="10")
    dispatcher(short, start_response)
    assert answers == ["202 Accepted", "400 Bad Request"]


# -- running, retrying, expiring -------------------------------------------------------------


def test_5xx_answers_are_retried_with_backoff_then_succeed(
    make_dispatcher: Any, wait_for: Any
) -> None:
    app = Recorder(statuses=["500 Internal Server Error", "503 Service Unavailable"])
    dispatcher = make_dispatcher(validator(app))
    rid = client(dispatcher).post("/", headers=ASYNC, status=202).headers["X-Fc-Request-Id"]
    wait_for(lambda: state_of(dispatcher.journal, rid) == "Succeeded", what="success")
    assert [c["fc.async_attempt"] for c in app.calls] == [1, 2, 3]
    assert app.closed == 3
    task = dispatcher.journal.get(rid)
    assert task is not None and (task.attempts, task.status, task.last_error) == (3, 200, None)


def test_5xx_is_a_success_when_fail_on_5xx_is_off(make_dispatcher: Any, wait_for: Any) -> None:
    app = Recorder(statuses=["500 Internal Server Error"])
    dispatcher = make_dispatcher(app, fail_on_5xx=False)
    rid = client(dispatcher).post("/", headers=ASYNC, status=202).headers["X-Fc-Request-Id"]
    wait_for(lambda: state_of(dispatcher.journal, rid) == "Succeeded", what="success")
    task = dispatcher.journal.get(rid)
    assert task is not None and (task.attempts, task.status) == (1, 500)


def test_retries_exhausted_fail_and_reach_on_failure(
    make_dispatcher: Any, wait_for: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "dispatch_hooks_mod.py").write_text("got = []\ndef failed(r):\n    got.append(r)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import dispatch_hooks_mod  # type: ignore[import-not-found]

    app = Recorder(raises=10)
    config = DestinationConfig(on_failure=Destination("dispatch_hooks_mod:failed"))
    dispatcher = make_dispatcher(app, max_async_retry_attempts=2, destination_config=config)
    answer = client(dispatcher).post("/", params=b"in", headers=ASYNC, status=202)
    rid = answer.headers["X-Fc-Request-Id"]
    wait_for(lambda: dispatch_hooks_mod.got, what="the onFailure record")
    task = dispatcher.journal.get(rid)
    assert task is not None and task.state == "Failed" and task.attempts == 3
    assert task.last_error == "RuntimeError: function crashed"
    (record,) = dispatch_hooks_mod.got
    assert record["requestContext"] == {
        "requestId": rid,
        "functionArn": "local",
        "condition": "RetriesExhausted",
        "approximateInvokeCount": 3,
    }
    assert record["requestPayload"] == "in"
    assert record["responseContext"] == {
        "statusCode": None,
        "functionError": "UnhandledInvocationError",
    }
    sys.modules.pop("dispatch_hooks_mod", None)


def test_on_success_record_reaches_a_local_http_server(make_dispatcher: Any, wait_for: Any) -> None:
    records: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            records.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/ok"
        config = DestinationConfig(on_success=Destination(url))
        dispatcher = make_dispatcher(Recorder(), destination_config=config)
        answer = client(dispatcher).post("/", params=b"ping", headers=ASYNC, status=202)
        wait_for(lambda: records, what="the onSuccess record")
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    (record,) = records
    assert record["requestContext"]["requestId"] == answer.headers["X-Fc-Request-Id"]
    assert record["requestContext"]["condition"] == "Success"
    assert record["responseContext"] == {"statusCode": 200, "functionError": ""}
    assert (record["requestPayload"], record["responsePayload"]) == ("ping", "result ping")


def test_old_tasks_expire_instead_of_running(
    make_dispatcher: Any, wait_for: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "expiry_hooks_mod.py").write_text("got = []\ndef failed(r):\n    got.append(r)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import expiry_hooks_mod  # type: ignore[import-not-found]

    clock = FakeClock(1_700_000_000.0)
    app = Recorder()
    config = DestinationConfig(on_failure=Destination("expiry_hooks_mod:failed"))
    dispatcher = make_dispatcher(
        app, clock=clock, max_async_event_age_in_seconds=30, destination_config=config
    )
    headers = {**ASYNC, "X-Fc-Async-Delay": "60"}
    rid = client(dispatcher).post("/", headers=headers, status=202).headers["X-Fc-Request-Id"]
    clock.now += 59
    dispatcher.wake()
    task = dispatcher.journal.get(rid)
    assert task is not None and task.state == "Enqueued"  # not due yet
    clock.now += 1  # due now, but 60 s old with a 30 s limit
    dispatcher.wake()
    wait_for(lambda: state_of(dispatcher.journal, rid) == "Expired", what="expiry")
    wait_for(lambda: expiry_hooks_mod.got, what="the onFailure record")
    assert app.calls == []
    assert expiry_hooks_mod.got[0]["requestContext"]["condition"] == "EventAgeExceeded"
    sys.modules.pop("expiry_hooks_mod", None)


# -- processes, leases, lifecycle ------------------------------------------------------------


def test_tasks_from_another_process_are_found_by_rescan(
    make_dispatcher: Any, journal_path: Path, app: Recorder, wait_for: Any
) -> None:
    dispatcher = make_dispatcher(app)
    dispatcher.start()  # no request here: the task comes from elsewhere
    code = (
        "import sys\n"
        "from fc_wsgi.dispatch import Journal, StoredRequest\n"
        "with Journal(sys.argv[1]) as j:\n"
        "    j.enqueue('elsewhere', 'rid-else', StoredRequest({'PATH_INFO': '/x'}, b'hi'), due=0)\n"
    )
    subprocess.run([sys.executable, "-c", code, str(journal_path)], check=True, cwd=REPO)
    wait_for(lambda: state_of(dispatcher.journal, "elsewhere") == "Succeeded", what="the run")
    assert app.calls[0]["PATH_INFO"] == "/x" and app.calls[0]["fc.request_id"] == "rid-else"


CRASHER = textwrap.dedent(
    """
    import sys, time
    from fc_wsgi.dispatch import AsyncDispatcher

    def app(environ, start_response):
        with open(sys.argv[2], "w") as marker:
            marker.write(str(environ["fc.async_attempt"]))
        time.sleep(60)  # killed here

    dispatcher = AsyncDispatcher(app, journal=sys.argv[1], lease_seconds=1.0,
                                 rescan_interval_seconds=0.05)
    dispatcher.start()
    time.sleep(60)
    """
)


def test_task_of_a_killed_process_runs_again_elsewhere(
    make_dispatcher: Any, journal: Journal, journal_path: Path, tmp_path: Path, wait_for: Any
) -> None:
    journal.enqueue("crash", "rid-crash", StoredRequest({"PATH_INFO": "/c"}, b"x"), due=0.0)
    marker = tmp_path / "attempt"
    child = subprocess.Popen(
        [sys.executable, "-c", CRASHER, str(journal_path), str(marker)], cwd=REPO
    )
    try:
        wait_for(marker.exists, timeout=20, what="the child to start the task")
        assert state_of(journal, "crash") == "Running"
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    app = Recorder()
    dispatcher = make_dispatcher(app, lease_seconds=1.0)
    dispatcher.start()
    wait_for(lambda: state_of(journal, "crash") == "Succeeded", what="the second run")
    assert marker.read_text() == "1"
    assert [c["fc.async_attempt"] for c in app.calls] == [2]
    task = journal.get("crash")
    assert task is not None and task.attempts == 2


def test_close_releases_the_lease_of_a_task_still_running(
    make_dispatcher: Any, wait_for: Any, caplog: pytest.LogCaptureFixture
) -> None:
    started, gate = threading.Event(), threading.Event()

    def slow(environ: Environ, start_response: Callable[..., Any]) -> list[bytes]:
        started.set()
        gate.wait(10)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"late"]

    dispatcher = make_dispatcher(slow)
    rid = client(dispatcher).post("/", headers=ASYNC, status=202).headers["X-Fc-Request-Id"]
    assert started.wait(5)
    try:
        assert dispatcher.close(timeout=0.2) is False
        task = dispatcher.journal.get(rid)
        assert task is not None and (task.state, task.lease_owner, task.attempts) == (
            "Enqueued",
            None,
            1,
        )
    finally:
        gate.set()
    # The late result is dropped: the task stays due for whoever runs it next.
    wait_for(lambda: "dropped" in caplog.text, what="the late result")
    assert state_of(dispatcher.journal, rid) == "Enqueued"


def test_close_waits_for_running_tasks(make_dispatcher: Any) -> None:
    started, gate = threading.Event(), threading.Event()

    def slow(environ: Environ, start_response: Callable[..., Any]) -> list[bytes]:
        started.set()
        gate.wait(10)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"done"]

    dispatcher = make_dispatcher(slow)
    rid = client(dispatcher).post("/", headers=ASYNC, status=202).headers["X-Fc-Request-Id"]
    assert started.wait(5)
    timer = threading.Timer(0.1, gate.set)
    timer.start()
    assert dispatcher.close(timeout=5) is True
    timer.join()
    assert state_of(dispatcher.journal, rid) == "Succeeded"


def test_start_all_and_drain_all(make_dispatcher: Any, wait_for: Any) -> None:
    first, second = make_dispatcher(Recorder()), make_dispatcher(Recorder())
    start_all()
    assert first.running and second.running
    assert drain_all(timeout=5) is True
    assert not first.running and not second.running
    # After close, an async request is still stored (for a restart), not run here.
    client(first).post("/", headers=ASYNC, status=202)
    assert not first.running


def test_a_forked_process_starts_its_own_threads(make_dispatcher: Any, app: Recorder) -> None:
    dispatcher = make_dispatcher(app)
    dispatcher.start()
    executor = dispatcher._executor
    parent_scheduler = executor._scheduler
    executor._pid = -1  # as seen in a gunicorn worker forked after --preload
    assert not dispatcher.running
    client(dispatcher).post("/", headers={**ASYNC, "X-Fc-Async-Delay": "60"}, status=202)
    assert dispatcher.running and executor._scheduler is not parent_scheduler
    assert parent_scheduler is not None and parent_scheduler.stop(timeout=5)


def test_finished_tasks_are_pruned_after_retention(
    make_dispatcher: Any, journal: Journal, wait_for: Any
) -> None:
    journal.enqueue("old", "old", StoredRequest({}, b""), due=0.0, now=1.0)
    journal.claim("old", "x", now=1.0, lease_seconds=1)
    journal.finish("old", "x", state="Succeeded", now=2.0)
    dispatcher = make_dispatcher(Recorder(), retention_seconds=60)
    dispatcher.start()
    wait_for(lambda: journal.get("old") is None, what="the prune")


@pytest.mark.parametrize(
    "options",
    [{"workers": 0}, {"max_async_retry_attempts": -1}, {"max_queued_tasks": 0}, {"profile": "x"}],
)
def test_bad_options_are_refused(options: dict[str, Any], journal_path: Path) -> None:
    with pytest.raises(ValueError):
        AsyncDispatcher(Recorder(), journal=journal_path, **options)
