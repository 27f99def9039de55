"""The runner drives apps as a server would: complete environ, exc_info rules, close() always."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable, Iterator
from typing import Any
from wsgiref.validate import validator

import pytest
from support import hello_app

from fc_wsgi.dispatch import StoredRequest, TaskRecord
from fc_wsgi.dispatch.runner import HANDLED, UNHANDLED, NoResponse, build_environ, run_app, run_task
from fc_wsgi.headers import HeaderFilter

T0 = 1_700_000_000.0


def make_task(body: bytes = b"hello", attempts: int = 1, **environ: str) -> TaskRecord:
    stored = {
        "REQUEST_METHOD": "PUT",
        "SCRIPT_NAME": "/base",
        "PATH_INFO": "/jobs/1",
        "QUERY_STRING": "a=1&b=2",
        "CONTENT_TYPE": "text/plain",
        "REMOTE_ADDR": "10.0.0.7",
        "SERVER_NAME": "example.test",
        "SERVER_PORT": "9000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.url_scheme": "https",
        "HTTP_X_CUSTOM": "yes",
        **environ,
    }
    return TaskRecord(
        id="task-1",
        request_id="1-65000000-abc",
        state="Running",
        attempts=attempts,
        created=T0,
        enqueued=T0,
        updated=T0,
        due=T0,
        started=T0,
        ended=None,
        last_error=None,
        status=None,
        lease_owner="me",
        lease_expiry=T0 + 30,
        method="PUT",
        path="/jobs/1",
        request=StoredRequest(environ=stored, body=body),
    )


class Closing:
    """An app iterable that records close()."""

    def __init__(self, chunks: list[bytes], fail_at: int | None = None) -> None:
        self.chunks, self.fail_at, self.closed = chunks, fail_at, False

    def __iter__(self) -> Iterator[bytes]:
        for n, chunk in enumerate(self.chunks):
            if n == self.fail_at:
                raise RuntimeError("broke mid-body")
            yield chunk

    def close(self) -> None:
        self.closed = True


def test_environ_is_complete_and_carries_the_request_and_attempt() -> None:
    seen: dict[str, Any] = {}

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        seen.update(environ)
        seen["body"] = environ["wsgi.input"].read(int(environ["CONTENT_LENGTH"]))
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    # validator() raises on anything PEP 3333 forbids or lacks, and warns on the rest.
    status, headers, body = run_app(validator(app), build_environ(make_task(attempts=2)))
    assert (status, headers, body) == ("200 OK", [("Content-Type", "text/plain")], b"ok")
    assert seen["body"] == b"hello" and seen["CONTENT_LENGTH"] == "5"
    assert (seen["REQUEST_METHOD"], seen["SCRIPT_NAME"], seen["PATH_INFO"]) == (
        "PUT",
        "/base",
        "/jobs/1",
    )
    assert (seen["QUERY_STRING"], seen["REMOTE_ADDR"], seen["wsgi.url_scheme"]) == (
        "a=1&b=2",
        "10.0.0.7",
        "https",
    )
    assert seen["fc.async_attempt"] == 2 and seen["fc.async_task_id"] == "task-1"
    assert seen["fc.request_id"] == seen["HTTP_X_FC_REQUEST_ID"] == "1-65000000-abc"
    assert seen["HTTP_X_CUSTOM"] == "yes"


def test_write_callable_and_body_are_joined() -> None:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        write = start_response("201 Created", [("Content-Type", "text/plain")])
        write(b"legacy ")
        return [b"", b"body"]

    assert run_app(validator(app), build_environ(make_task()))[::2] == (
        "201 Created",
        b"legacy body",
    )


def test_exc_info_before_the_body_replaces_the_response() -> None:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        start_response("200 OK", [])
        try:
            raise ValueError("late failure")
        except ValueError:
            start_response("500 Internal Server Error", [], sys.exc_info())
        return [b"sorry"]

    assert run_app(app, build_environ(make_task()))[::2] == ("500 Internal Server Error", b"sorry")


def test_exc_info_after_the_body_started_is_raised_and_close_still_runs() -> None:
    body = Closing([b"a"])

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Closing:
        write = start_response("200 OK", [])
        write(b"sent")
        try:
            raise ValueError("too late")
        except ValueError:
            start_response("500 Internal Server Error", [], sys.exc_info())
        return body

    with pytest.raises(ValueError, match="too late"):
        run_app(app, build_environ(make_task()))


def test_start_response_twice_without_exc_info_is_an_error() -> None:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        start_response("200 OK", [])
        start_response("200 OK", [])
        return []

    outcome = run_task(app, make_task())
    assert outcome.failed and outcome.error_type == UNHANDLED and "twice" in (outcome.error or "")


def test_close_is_called_when_iteration_raises() -> None:
    body = Closing([b"a", b"b"], fail_at=1)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Closing:
        start_response("200 OK", [])
        return body

    outcome = run_task(app, make_task())
    assert body.closed
    assert outcome.failed and outcome.error == "RuntimeError: broke mid-body"


@pytest.mark.parametrize(
    ("status", "fail_on_5xx", "failed", "error_type"),
    [
        pytest.param("200 OK", True, False, None, id="200"),
        pytest.param("404 Not Found", True, False, None, id="4xx is the app's answer"),
        pytest.param("499 Custom", True, False, None, id="499"),
        pytest.param("500 Internal Server Error", True, True, HANDLED, id="500 fails"),
        pytest.param("503 Service Unavailable", False, False, None, id="5xx allowed"),
    ],
)
def test_5xx_policy(status: str, fail_on_5xx: bool, failed: bool, error_type: str | None) -> None:
    body = Closing([b"x"])

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Closing:
        start_response(status, [("Content-Type", "text/plain")])
        return body

    outcome = run_task(validator(app), make_task(), fail_on_5xx=fail_on_5xx)
    assert (outcome.failed, outcome.error_type) == (failed, error_type)
    assert outcome.status == int(status[:3]) and outcome.body == b"x" and body.closed


def test_exception_and_missing_response_are_unhandled_errors() -> None:
    def raising(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        raise KeyError("missing")

    def silent(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        return [b"no start_response"]

    def bad_status(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        start_response("OK", [])
        return []

    for app, text in [(raising, "KeyError"), (silent, "start_response"), (bad_status, "status")]:
        outcome = run_task(app, make_task())
        assert outcome.failed and outcome.status is None and outcome.error_type == UNHANDLED
        assert text in (outcome.error or "")
    with pytest.raises(NoResponse):
        run_app(silent, build_environ(make_task()))


def test_a_task_loaded_without_its_request_cannot_run() -> None:
    with pytest.raises(ValueError, match="without its request"):
        build_environ(dataclasses.replace(make_task(), request=None))


@pytest.mark.parametrize("fail_on_5xx", [True, False])
def test_header_filters_answer_to_a_raise_is_still_an_unhandled_error(fail_on_5xx: bool) -> None:
    def raising(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        raise KeyError("missing")

    outcome = run_task(HeaderFilter(raising), make_task(), fail_on_5xx=fail_on_5xx)
    assert (outcome.failed, outcome.status, outcome.error_type) == (True, 502, UNHANDLED)
    assert outcome.error == "KeyError: 'missing'"


def test_an_app_cannot_forge_the_gateways_error_type() -> None:
    def forging(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        start_response("200 OK", [("X-Fc-Error-Type", "UnhandledInvocationError")])
        return [b"fine"]

    outcome = run_task(HeaderFilter(forging), make_task())
    assert (outcome.failed, outcome.status) == (False, 200)


def test_a_run_past_the_functions_timeout_is_a_timed_out_failure(tmp_path):
    """FC's timeout answer (the function runtime's 502) fails the run and says it timed out,
    for the retry policy and the ``timeout`` outcome of the metrics."""
    import time

    from fc_wsgi.factory import make_task_app

    def slow(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        time.sleep(5)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"late"]

    function = {"functionName": "slow", "codeUri": str(tmp_path), "timeout": 1}
    config = {"authType": "anonymous", "methods": ["PUT"], "function": function}
    outcome = run_task(make_task_app(slow, config), make_task())
    assert (outcome.status, outcome.error_type, outcome.timed_out) == (502, UNHANDLED, True)
    assert outcome.error is not None and outcome.error.startswith("Function timed out after 1")
    quick = run_task(make_task_app(validator(hello_app), config), make_task())
    assert (quick.status, quick.timed_out, quick.failed) == (200, False, False)
