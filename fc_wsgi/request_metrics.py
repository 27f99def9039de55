"""RequestMetrics: every answer counted and timed, from the first layer in to the last byte out.

The outermost layer when metrics are on (:mod:`fc_wsgi.metrics`), so CORS answers, FC's
errors, async 202s and the app's own answers are all counted: ``fc_wsgi_requests_total`` by
method, status and FC error code (the code :func:`fc_wsgi.errors.error_response` leaves in the
environ, ``""`` for an answer that is not FC's error) and ``fc_wsgi_request_duration_seconds``
observed when the server closes the body, after the last byte went out. Off, the layer is not
in the stack (:func:`fc_wsgi.factory.make_trigger_app`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from ._wsgi import close_iterable
from .errors import ERROR_CODE_KEY

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

    from .metrics import Metrics


class RequestMetrics:
    """Count and time each request in ``metrics`` (one instance per process)."""

    def __init__(self, app: WSGIApplication, metrics: Metrics) -> None:
        self.app = app
        self._count = metrics.count_request
        self._observe = metrics.duration.observe

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        started = time.perf_counter()
        status: list[str] = []

        def start_and_note(status_line: str, headers: Any, exc_info: Any = None) -> Any:
            status[:] = (status_line[:3],)
            return start_response(status_line, headers, exc_info)

        try:
            body = self.app(environ, start_and_note)
        except BaseException:
            self._done(environ, status or ["500"], started)
            raise
        return _TimedBody(body, lambda: self._done(environ, status or ["500"], started))

    def _done(self, environ: WSGIEnvironment, status: list[str], started: float) -> None:
        self._count(environ["REQUEST_METHOD"], status[0], environ.get(ERROR_CODE_KEY, ""))
        self._observe(time.perf_counter() - started)


class _TimedBody:
    """The app's iterable, passed through; ``on_close`` runs once the server closes it."""

    __slots__ = ("_body", "_next", "_on_close")

    def __init__(self, body: Iterable[bytes], on_close: Callable[[], None]) -> None:
        self._body, self._on_close = body, on_close
        self._next = iter(body).__next__

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        return self._next()

    def close(self) -> None:
        try:
            close_iterable(self._body)
        finally:
            self._on_close()
