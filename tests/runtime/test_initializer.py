"""The initializer: once per process, its own timeout, InitializationError (14.5, OQ 1 and 3)."""

from __future__ import annotations

import base64
import uuid

from support import write_tree


def counting_code(tmp_path, body: str) -> str:
    module = f"init_{uuid.uuid4().hex[:8]}"
    write_tree(tmp_path, {f"{module}.py": f"CALLS = []\n\ndef initializer(context):\n{body}"})
    return module


def ok(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


def test_runs_once_before_the_first_invocation_with_the_context(function_stack, tmp_path):
    module = counting_code(tmp_path, "    CALLS.append(context.request_id)\n")
    app = function_stack(ok, initializer=f"{module}.initializer")
    first = app.get("/", headers={"X-Fc-Log-Type": "Tail"})
    app.get("/")
    import sys

    assert sys.modules[module].CALLS == [first.headers["X-Fc-Request-Id"]]
    log = base64.b64decode(first.headers["X-Fc-Log-Result"]).decode().splitlines()
    rid = first.headers["X-Fc-Request-Id"]
    assert log[:3] == [
        f"FC Initialize Start RequestId: {rid}",
        f"FC Initialize End RequestId: {rid}",
        f"FC Invoke Start RequestId: {rid}",
    ]


def test_fc3_spelling_runs_the_same_hook(function_stack, tmp_path):
    module = counting_code(tmp_path, "    CALLS.append(1)\n")
    hook = {"initializer": {"handler": f"{module}.initializer", "timeout": 2}}
    function_stack(ok, instanceLifecycleConfig=hook).get("/")
    import sys

    assert sys.modules[module].CALLS == [1]


def test_failure_answers_initialization_error_and_the_next_request_retries(
    function_stack, tmp_path
):
    module = counting_code(
        tmp_path,
        "    CALLS.append(1)\n    if len(CALLS) == 1:\n        raise ValueError('db down')\n",
    )
    app = function_stack(ok, initializer=f"{module}.initializer")
    failed = app.get("/", status=502, headers={"X-Fc-Log-Type": "Tail"})
    assert failed.headers["X-Fc-Error-Type"] == "InitializationError"  # open question 1
    assert failed.json == {"errorMessage": "db down", "errorType": "ValueError"}
    log = base64.b64decode(failed.headers["X-Fc-Log-Result"]).decode()
    assert ", Error: Unhandled function error" in log
    assert app.get("/").text == "ok"  # a fresh attempt succeeded


def test_timeout_answers_initialization_error(function_stack, tmp_path):
    module = counting_code(tmp_path, "    import time\n    time.sleep(5)\n")
    app = function_stack(ok, initializer=f"{module}.initializer", initializationTimeout=1)
    failed = app.get("/", status=502)
    assert failed.headers["X-Fc-Error-Type"] == "InitializationError"
    # open question 3
    assert failed.json == {"errorMessage": "Function initialization timed out after 1 seconds"}
    assert int(failed.headers["X-Fc-Invocation-Duration"]) >= 1000


def test_an_initializer_that_cannot_load_is_an_initialization_error(function_stack):
    failed = function_stack(ok, initializer="nowhere_module.init").get("/", status=502)
    assert failed.headers["X-Fc-Error-Type"] == "InitializationError"
    assert failed.json["errorType"] == "ImportModuleError"
