"""Runs the app for a stored async request, as a WSGI server would, and judges the result.

FC hands an async request to the function later, with the original request id (fc-spec.md
sections 11 and 12). We rebuild a complete PEP 3333 environ from the journal row (method, path,
query, headers, body, client address), add ``fc.request_id``, ``HTTP_X_FC_REQUEST_ID`` and
``fc.async_attempt`` (1 on the first run; FC's runtime protocol carries the same number as
``x-fc-retry-count``), and drive the app by the server rules: ``exc_info`` is re-raised only
once the body has started, ``write()`` is supported, and the iterable is always closed. The
body is buffered: async bodies and answers are small and nobody is waiting to stream them.

A run failed when the app raised or gave no valid response (FC's ``UnhandledInvocationError``;
in the trigger stack the raise arrives as HeaderFilter's 502 answer marked with that error type)
or, with ``fail_on_5xx``, answered 5xx (reported as ``HandledInvocationError``: the function
itself said it failed).
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import sys
from typing import TYPE_CHECKING, Any

from ..errors import ERROR_CODE_KEY, REQUEST_ID_KEY, TIMEOUT_CODE
from ..logs import REQUEST_ID
from .tasks import TaskRecord

if TYPE_CHECKING:
    from wsgiref.types import WSGIApplication, WSGIEnvironment

log = logging.getLogger(__name__)

#: environ key with the run's number: 1 on the first run, 2 on the first retry, ...
ATTEMPT_KEY = "fc.async_attempt"
#: environ key with the task id (the request id unless the client chose one).
TASK_ID_KEY = "fc.async_task_id"

UNHANDLED = "UnhandledInvocationError"
HANDLED = "HandledInvocationError"


class NoResponse(Exception):
    """The app returned without a valid ``start_response`` call."""


@dataclasses.dataclass(frozen=True)
class Outcome:
    """One run's result. ``status`` is None when the app gave no valid response."""

    status: int | None
    headers: list[tuple[str, str]]
    body: bytes
    error: str | None = None
    error_type: str | None = None  # FC's functionError: UnhandledInvocationError, ...
    timed_out: bool = False  # the function runtime answered FC's timeout

    @property
    def failed(self) -> bool:
        return self.error is not None


def build_environ(task: TaskRecord, *, multiprocess: bool = True) -> WSGIEnvironment:
    """A complete PEP 3333 environ for the stored request of a claimed task."""
    if task.request is None:
        raise ValueError(f"task {task.id} was loaded without its request")
    stored, body = task.request.environ, task.request.body
    environ: dict[str, Any] = {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "",
        "PATH_INFO": "/",
        "QUERY_STRING": "",
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.url_scheme": "http",
    }
    environ.update(stored)  # strings only: what the dispatcher chose to keep
    url_scheme = environ.pop("wsgi.url_scheme")
    environ.update(
        {
            "CONTENT_LENGTH": str(len(body)),
            "HTTP_X_FC_REQUEST_ID": task.request_id,
            REQUEST_ID_KEY: task.request_id,
            ATTEMPT_KEY: task.attempts,
            TASK_ID_KEY: task.id,
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": url_scheme,
            "wsgi.input": io.BytesIO(body),
            "wsgi.input_terminated": True,
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": multiprocess,
            "wsgi.run_once": False,
        }
    )
    return environ


def run_app(
    app: WSGIApplication, environ: WSGIEnvironment
) -> tuple[str, list[tuple[str, str]], bytes]:
    """Drive ``app`` once and return ``(status, headers, body)``; raise what the app raises."""
    response: list[Any] = []
    chunks: list[bytes] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        if exc_info is not None:
            try:
                if chunks:  # a real server would have sent the headers by now
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None  # break the traceback <-> frame cycle
        elif response:
            raise RuntimeError("start_response called twice without exc_info")
        response[:] = [status, headers]
        return chunks.append

    body = app(environ, start_response)
    try:
        for chunk in body:
            if chunk:
                chunks.append(chunk)
    finally:
        close = getattr(body, "close", None)
        if close is not None:
            close()
    if not response:
        raise NoResponse("the app did not call start_response")
    return response[0], list(response[1]), b"".join(chunks)


def run_task(app: WSGIApplication, task: TaskRecord, *, fail_on_5xx: bool = True) -> Outcome:
    """Run a claimed task's request through ``app``; never raises for the app's failures.
    Records logged meanwhile carry the task's request id (``--log-format json``)."""
    token = REQUEST_ID.set(task.request_id)
    try:
        return _run(app, task, fail_on_5xx)
    finally:
        REQUEST_ID.reset(token)


def _run(app: WSGIApplication, task: TaskRecord, fail_on_5xx: bool) -> Outcome:
    environ = build_environ(task)
    try:
        status_line, headers, body = run_app(app, environ)
        status = _status_code(status_line)
    except NoResponse as exc:
        log.error("async task %s (request %s): %s", task.id, task.request_id, exc)
        return Outcome(None, [], b"", str(exc), UNHANDLED)
    except Exception as exc:
        log.error(
            "async task %s (request %s): unhandled error in the function, attempt %d",
            task.id,
            task.request_id,
            task.attempts,
            exc_info=exc,
        )
        return Outcome(None, [], b"", f"{type(exc).__name__}: {exc}", UNHANDLED)
    if _gateway_error_type(headers) == UNHANDLED:
        # HeaderFilter (or the function runtime), inside us, already turned the app's exception
        # (or its timeout) into FC's 502: still the function's unhandled error, whatever
        # fail_on_5xx says.
        error = _function_error(body, status_line)
        timed_out = environ.get(ERROR_CODE_KEY) == TIMEOUT_CODE
        return Outcome(status, headers, body, error, UNHANDLED, timed_out=timed_out)
    if fail_on_5xx and status >= 500:
        return Outcome(status, headers, body, f"function answered {status_line}", HANDLED)
    return Outcome(status, headers, body)


def _gateway_error_type(headers: list[tuple[str, str]]) -> str | None:
    """``X-Fc-Error-Type`` of the answer: only the gateway's own error answers carry it, since
    HeaderFilter drops every ``x-fc-*`` header the app itself sets."""
    for name, value in headers:
        if name.lower() == "x-fc-error-type":
            return value
    return None


def _function_error(body: bytes, status_line: str) -> str:
    """``errorType: errorMessage`` from FC's function-error body, else the status line."""
    try:
        payload = json.loads(body)
        message = payload["errorMessage"]
    except (ValueError, TypeError, KeyError):
        return f"function answered {status_line}"
    # FC's timeout body has no errorType (fc-spec-runtime.md 15).
    error_type = payload.get("errorType")
    return f"{error_type}: {message}" if error_type else str(message)


def _status_code(status_line: str) -> int:
    code = status_line.split(" ", 1)[0] if isinstance(status_line, str) else ""
    if not (len(code) == 3 and code.isdigit()):
        raise NoResponse(f"the app gave an invalid status line {status_line!r}")
    return int(code)
