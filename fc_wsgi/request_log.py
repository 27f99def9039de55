"""RequestLogContext: the request id of the request being served, for every record it logs.

With ``--log-format json`` each log record carries the id of the request that logged it
(:mod:`fc_wsgi.logs`). This outermost layer makes the request's id first (the one id every
layer and the answer then use, fc-spec.md section 1) and sets it in
:data:`~fc_wsgi.logs.REQUEST_ID` until the server closes the body. Off (text logs), the
layer is not in the stack.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextvars import Token
from typing import TYPE_CHECKING

from ._wsgi import close_iterable
from .errors import request_id
from .logs import REQUEST_ID

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

    from .common import Profile


class RequestLogContext:
    """Set :data:`~fc_wsgi.logs.REQUEST_ID` for the time of each request."""

    def __init__(self, app: WSGIApplication, *, profile: Profile = "fc3") -> None:
        self.app = app
        self.profile = profile

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        token = REQUEST_ID.set(request_id(environ, self.profile))
        try:
            body = self.app(environ, start_response)
        except BaseException:
            REQUEST_ID.reset(token)
            raise
        return _ContextBody(body, token)


class _ContextBody:
    """The app's iterable; the request id stays set until the server closes it."""

    __slots__ = ("_body", "_next", "_token")

    def __init__(self, body: Iterable[bytes], token: Token[str | None]) -> None:
        self._body, self._token = body, token
        self._next = iter(body).__next__

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        return self._next()

    def close(self) -> None:
        try:
            close_iterable(self._body)
        finally:
            try:
                REQUEST_ID.reset(self._token)
            except ValueError:  # closed in another context than it started: just clear
                REQUEST_ID.set(None)
