"""RequestMetrics: every answer counted and timed, from the first layer in to the last byte out.

The outermost layer when metrics are on (:mod:`fc_wsgi.metrics`), so CORS answers, FC's
errors, async 202s and the app's own answers are all counted: ``fc_wsgi_requests_total`` by
method, status and FC error code (the code :func:`fc_wsgi.errors.error_response` leaves in the
environ, ``""`` for an answer that is not FC's error) and ``fc_wsgi_request_duration_seconds``
observed when the server closes the body, after the last byte went out. Both are counted in
memory (:attr:`fc_wsgi.metrics.FunctionMetrics.request_tally`) and reach the metric files within
about a second. Off, the layer is not in the stack (:func:`fc_wsgi.factory.make_trigger_app`).

The request is counted for the function that served it: the layer puts its
:class:`~fc_wsgi.metrics.FunctionMetrics` in the environ (:data:`~fc_wsgi.metrics.FUNCTION_KEY`,
also read by the auth hook) and counts in whichever the environ holds when the request ends.
A project server measures at its router, under the label of the router's own answers, and
each function's stack starts with :class:`FunctionLabel`, which puts its own there instead.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from ._wsgi import close_iterable
from .errors import ERROR_CODE_KEY
from .metrics import FUNCTION_KEY

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

    from .metrics import FunctionMetrics


class RequestMetrics:
    """Count and time each request, in ``function``'s metrics unless an inner
    :class:`FunctionLabel` names another."""

    def __init__(self, app: WSGIApplication, function: FunctionMetrics) -> None:
        self.app = app
        self.function = function

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        environ[FUNCTION_KEY] = self.function
        measured = _Measured(environ, start_response)
        try:
            measured.body = self.app(environ, measured.start_response)
        except BaseException:
            measured.done()
            raise
        return measured


class FunctionLabel:
    """Count the requests that reach ``app`` in ``function``'s metrics (a project's function
    stack, under the router's :class:`RequestMetrics`)."""

    def __init__(self, app: WSGIApplication, function: FunctionMetrics) -> None:
        self.app = app
        self.function = function

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        environ[FUNCTION_KEY] = self.function
        return self.app(environ, start_response)


class _Measured:
    """One request: notes the status as the response starts, passes the app's iterable
    through, and counts and times the request when the server closes it (one object per
    request, not a closure and a wrapper)."""

    __slots__ = ("_environ", "_start_response", "_started", "_status", "body")

    def __init__(self, environ: WSGIEnvironment, start_response: StartResponse) -> None:
        self._environ, self._start_response = environ, start_response
        self._started = time.perf_counter()
        self._status = "500"  # an exception before any response
        self.body: Iterable[bytes] = ()

    def start_response(self, status: str, headers: Any, exc_info: Any = None) -> Any:
        self._status = status[:3]
        return self._start_response(status, headers, exc_info)

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.body)

    def close(self) -> None:
        try:
            close_iterable(self.body)
        finally:
            self.done()

    def done(self) -> None:
        environ = self._environ
        environ[FUNCTION_KEY].request_tally.add(
            (environ["REQUEST_METHOD"], self._status, environ.get(ERROR_CODE_KEY, "")),
            time.perf_counter() - self._started,
        )
