"""The function runtime over real gunicorn: FC's sample, timeouts, initializer, cap, async."""

from __future__ import annotations

import base64
import json
import sys
import threading
import time
from pathlib import Path

import pytest
from support import http_request, wait_for, write_tree

pytestmark = pytest.mark.e2e

SAMPLE = Path(__file__).resolve().parents[1] / "fixtures" / "fc2-http-python3" / "code"

FUNCTION_CODE = """
import json, os, time

def initializer(context):
    mark = os.environ["FN_MARK"]  # the function's variables are in os.environ at load
    if not os.path.exists(mark):
        open(mark, "w").close()
        raise RuntimeError("the first instance fails to initialize")

def handler(environ, start_response):
    params = dict(p.split("=") for p in environ["QUERY_STRING"].split("&") if "=" in p)
    context = environ["fc.context"]
    started = time.time()
    if not ("fail_first" in params and context.retry_count > 0):
        time.sleep(float(params.get("sleep", 0)))
    if "runs" in params:
        with open(os.environ["FN_RUNS"], "a") as runs:
            runs.write(f"{context.request_id} {context.retry_count}\\n")
    body = {"pid": os.getpid(), "start": started, "end": time.time(),
            "region": environ["FC_REGION"], "retry": context.retry_count}
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(body).encode()]
"""


def get(server, path, headers=None, method="GET", timeout=20):
    return http_request(server.port, method, path, headers=headers, timeout=timeout)


@pytest.fixture
def serve_function(start_server, tmp_path):
    """``serve_function(function_fields, *extra_args)``: `fc-wsgi serve` without MODULE:APP."""

    def run(function: dict, *extra: str, trigger: dict | None = None):
        code = str(write_tree(tmp_path / "code", {"fn.py": FUNCTION_CODE}))
        variables = {"FN_MARK": str(tmp_path / "initialized"), "FN_RUNS": str(tmp_path / "runs")}
        fields = {"codeUri": code, "handler": "fn.handler", "region": "cn-shenzhen",
                  "environmentVariables": variables, **function}  # fmt: skip
        config = {"authType": "anonymous", "methods": ["GET", "POST"], "function": fields,
                  **(trigger or {})}  # fmt: skip
        argv = [sys.executable, "-m", "fc_wsgi", "serve", "--config", "{config}",
                "--bind", "127.0.0.1:{port}", *extra]  # fmt: skip
        return start_server(argv, config)

    return run


def test_fc_sample_handler_served_unchanged(start_server):
    config = {"authType": "anonymous", "methods": ["GET"],
              "function": {"name": "http-function", "codeUri": str(SAMPLE),
                           "handler": "index.handler", "timeout": 60}}  # fmt: skip
    argv = [sys.executable, "-m", "fc_wsgi", "serve", "--config", "{config}",
            "--bind", "127.0.0.1:{port}"]  # fmt: skip
    server = start_server(argv, config)
    status, headers, body = get(server, "/hello?name=fc", {"X-Fc-Log-Type": "Tail"})
    assert (status, body) == (200, b"Hello world!\n")
    rid = headers["X-Fc-Request-Id"]
    log = base64.b64decode(headers["X-Fc-Log-Result"]).decode()
    assert f"[INFO] request {rid} for /hello?name=fc" in log
    assert log.startswith(f"FC Invoke Start RequestId: {rid}\n")
    assert int(headers["X-Fc-Invocation-Duration"]) >= 1 and "X-Fc-Max-Memory-Usage" in headers


@pytest.mark.parametrize("worker", ["sync", "gthread"])
def test_timeout_answers_on_time_and_the_next_request_is_served(serve_function, worker):
    extra = ("--threads", "1") if worker == "sync" else ()
    server = serve_function({"timeout": 1, "initializer": ""}, *extra)
    status, _, body = get(server, "/")
    first_pid = json.loads(body)["pid"]
    assert json.loads(body)["region"] == "cn-shenzhen"
    started = time.monotonic()
    status, headers, body = get(server, "/?sleep=30")
    elapsed = time.monotonic() - started
    # Answered on time: at the 1 s deadline, long before the 30 s call returns (margin for
    # load). sync: the signal interrupts the sleep; gthread: the watchdog answers for it.
    assert status == 502 and elapsed < 4, (status, elapsed, server.output()[-2000:])
    assert json.loads(body)["errorMessage"].startswith("Function timed out after 1 seconds")
    assert headers["X-Fc-Error-Type"] == "UnhandledInvocationError"
    assert 1000 <= int(headers["X-Fc-Invocation-Duration"]) < 3000
    # A fresh worker serves from now on (open question 2), long before the sleep would end:
    # a gthread worker does not wait for a call blocked past its deadline. A gthread worker
    # that is stopping may still take a connection that reached it in the same poll as its
    # stop: poll, briefly.
    answers = []

    def fresh_worker_answers() -> bool:
        status, _, body = get(server, "/")
        answers.append((status, json.loads(body)["pid"] if status == 200 else body))
        return status == 200 and answers[-1][1] != first_pid

    wait_for(fresh_worker_answers, 15, "a fresh worker's answer")
    assert worker == "gthread" or len(answers) == 1, answers  # sync: the very next request
    output = server.output()
    assert ("Using worker: sync" if worker == "sync" else "Using worker: gthread") in output
    if worker == "gthread":
        assert "leaving 1 call(s) blocked past their deadline" in output


def test_initializer_failure_then_a_fresh_worker_succeeds(serve_function):
    server = serve_function({"initializer": "fn.initializer"})
    status, headers, body = get(server, "/")
    assert status == 502 and headers["X-Fc-Error-Type"] == "InitializationError"
    assert json.loads(body) == {
        "errorMessage": "the first instance fails to initialize",
        "errorType": "RuntimeError",
    }
    status, _, body = get(server, "/")
    assert status == 200, body
    assert "FC Initialize End RequestId:" in server.output()


@pytest.mark.parametrize(
    ("function", "cap"),
    [
        ({}, 4),  # maxInstances defaults to the 2 workers: 2 x instanceConcurrency 2
        ({"maxInstances": 1}, 2),  # below what the workers could run alone: the count is shared
    ],
)
def test_concurrency_cap_under_parallel_load(serve_function, function, cap):
    server = serve_function({"instanceConcurrency": 2, "timeout": 10, **function}, "--workers", "2")
    answers: list[tuple[int, float, bytes]] = []
    lock = threading.Lock()

    def call():
        started = time.monotonic()
        status, _, body = get(server, "/?sleep=1.5")
        with lock:
            answers.append((status, time.monotonic() - started, body))

    threads = [threading.Thread(target=call) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    served = [json.loads(body) for status, _, body in answers if status == 200]
    refused = [(elapsed, body) for status, elapsed, body in answers if status == 429]
    assert len(served) + len(refused) == 12
    assert 1 <= len(served) and refused, answers
    assert all(elapsed < 1.0 for elapsed, _ in refused)  # at once, no queueing (open question 6)
    assert json.loads(refused[0][1])["Code"] == "ResourceExhausted"
    events = sorted([(s["start"], 1) for s in served] + [(s["end"], -1) for s in served])
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    assert peak <= cap  # never above maxInstances x instanceConcurrency, across workers
    assert len(served) >= cap  # and the cap is used: 12 requests arrive within the 1.5 s


def test_async_task_that_times_out_is_retried(serve_function, tmp_path):
    server = serve_function({"timeout": 1, "initializer": ""})
    status, headers, _ = get(
        server, "/?sleep=5&fail_first=1&runs=1", {"X-Fc-Invocation-Type": "Async"}, "POST"
    )
    assert status == 202
    rid = headers["X-Fc-Request-Id"]
    runs = tmp_path / "runs"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if runs.exists() and f"{rid} 1" in runs.read_text():
            break
        time.sleep(0.1)
    # the first run timed out (and never wrote its line); the retry ran with retry_count 1
    assert runs.read_text().splitlines() == [f"{rid} 1"], server.output()[-3000:]
    task = wait_for_task(tmp_path, rid, "Succeeded")
    assert task.attempts == 2


def test_async_task_that_keeps_timing_out_fails(serve_function, tmp_path):
    server = serve_function({"timeout": 1}, trigger={"async": {"maxAsyncRetryAttempts": 0}})
    status, headers, _ = get(server, "/?sleep=5", {"X-Fc-Invocation-Type": "Async"}, "POST")
    assert status == 202
    task = wait_for_task(tmp_path, headers["X-Fc-Request-Id"], "Failed")
    # FC's timeout body has only errorMessage: it is the task's last error as it stands.
    assert task.attempts == 1
    assert task.last_error.startswith("Function timed out after 1 seconds (maxMemoryUsage: ")


def wait_for_task(folder: Path, rid: str, state: str):
    from fc_wsgi.dispatch.journal import Journal

    journal = folder / "async.sqlite3"  # where the start_server fixture puts it
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with Journal(str(journal)) as store:
            task = store.get(rid)
        if task is not None and task.state == state:
            return task
        time.sleep(0.1)
    pytest.fail(f"task {rid} is {task.state if task else None}, not {state}")
