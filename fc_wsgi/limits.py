"""LimitGuard: the trigger's methods and FC's request size limits (fc-spec.md sections 3, 5).

FC refuses, before the function runs and without billing it, a method the trigger does not
allow (403) and a request whose headers pass 8 KiB, whose path and query pass 4 KiB, or whose
body passes 32 MiB (128 KiB for ``X-Fc-Invocation-Type: Async``) with 400 ``InvalidArgument``.

A body is never buffered to be counted. A ``Content-Length`` over the limit is refused before
the app runs; a body within its ``Content-Length`` is framed by the server. A chunked body
(only where the server sets ``wsgi.input_terminated``) is counted as the app reads it: one
byte past the limit raises :class:`~fc_wsgi.errors.BodyTooLarge` from ``wsgi.input``, and
since an app may swallow that exception, its answer is replaced by FC's 400 all the same.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import quote

from ._wsgi import close_iterable, content_length, discard, short_body
from .common import ALL_METHODS
from .errors import (
    AccessDenied,
    BodyTooLarge,
    FcError,
    InvalidArgument,
    InvalidBody,
    error_response,
)

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

    from .common import Profile

# Header names that the environ keeps without the HTTP_ prefix (PEP 3333).
_UNPREFIXED_HEADERS = {"CONTENT_TYPE": len("content-type"), "CONTENT_LENGTH": len("content-length")}
#: Sets of environ keys whose header plan a LimitGuard remembers.
_MAX_PLANS = 256


class LimitGuard:
    """Refuse, as FC does, what the trigger does not allow or what is over FC's limits."""

    def __init__(
        self,
        app: WSGIApplication,
        *,
        methods: Iterable[str] = ALL_METHODS,
        max_header_bytes: int = 8192,
        max_url_bytes: int = 4096,
        max_body_bytes: int = 32 * 2**20,
        max_async_body_bytes: int = 128 * 2**10,
        profile: Profile = "fc3",
    ) -> None:
        self.app = app
        self.methods = frozenset(m.upper() for m in methods)
        self.max_header_bytes = max_header_bytes
        self.max_url_bytes = max_url_bytes
        self.max_body_bytes = max_body_bytes
        self.max_async_body_bytes = max_async_body_bytes
        self.profile = profile
        # The environ keys joined -> (bytes of the header names, the keys that are headers).
        self._plans: dict[str, tuple[int, tuple[str, ...]]] = {}

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        try:
            length, chunked_limit = self._check(environ)
        except FcError as error:
            return error_response(error, environ, start_response, self.profile)
        if chunked_limit is not None:
            return self._guard_stream(environ, start_response, chunked_limit)
        if not length:
            return self.app(environ, start_response)
        # A body that ends before its Content-Length (the client half-closed or went away)
        # must not reach the function as if it were whole: FC's gateway never forwards it.
        environ["wsgi.input"] = LengthInput(environ["wsgi.input"], length)
        try:
            return self.app(environ, start_response)
        except InvalidBody as error:
            exc_info = (type(error), error, error.__traceback__)
            return error_response(error, environ, start_response, self.profile, exc_info)

    def _check(self, environ: WSGIEnvironment) -> tuple[int | None, int | None]:
        """Raise the FC error for this request, or return its ``Content-Length`` and, for a
        chunked body, the limit it must keep."""
        method = environ["REQUEST_METHOD"]
        if method not in self.methods and method.upper() not in self.methods:
            raise AccessDenied(f"method {method!r} is not allowed by this HTTP trigger")

        url_bytes = _raw_url_length(environ)
        if url_bytes > self.max_url_bytes:
            raise InvalidArgument(
                f"request path and query size {url_bytes} exceeds the limit of "
                f"{self.max_url_bytes} bytes"
            )

        header_bytes = self._header_bytes(environ)
        if header_bytes > self.max_header_bytes:
            raise InvalidArgument(
                f"request headers size {header_bytes} exceeds the limit of "
                f"{self.max_header_bytes} bytes"
            )

        invocation = environ.get("HTTP_X_FC_INVOCATION_TYPE")
        is_async = invocation is not None and invocation.lower() == "async"
        limit = self.max_async_body_bytes if is_async else self.max_body_bytes
        length = content_length(environ)
        if length is not None:
            if length > limit:
                kind = "async" if is_async else "sync"
                raise InvalidArgument(
                    f"{kind} request body size {length} exceeds the limit of {limit} bytes"
                )
            return length, None
        if "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower():
            if not environ.get("wsgi.input_terminated"):
                raise InvalidArgument(
                    "chunked request bodies need a server that sets wsgi.input_terminated"
                )
            return None, limit
        return None, None

    def _header_bytes(self, environ: WSGIEnvironment) -> int:
        """Names and values of the request headers (fc-spec.md 13.9), as the environ holds them.

        Clients send the same few sets of headers, so the environ keys that are headers and the
        bytes of their names are worked out once per set of keys (looked up by the keys joined
        in one C-level step); per request only the values are measured, in C.
        """
        keys = "\0".join(environ)
        plan = self._plans.get(keys)
        if plan is None:
            plan = _header_plan(environ)
            if len(self._plans) < _MAX_PLANS:  # a client inventing names stops filling it
                self._plans[keys] = plan
        names_bytes, header_keys = plan
        return names_bytes + sum(map(len, map(environ.__getitem__, header_keys)))

    def _guard_stream(
        self, environ: WSGIEnvironment, start_response: StartResponse, limit: int
    ) -> Iterable[bytes]:
        stream = LimitedInput(environ["wsgi.input"], limit)
        environ["wsgi.input"] = stream
        answer = _OverflowAnswer(self, environ, start_response, stream)
        try:
            body = self.app(environ, answer.start_response)
        except InvalidBody as error:
            return answer.refuse(error)
        if stream.failure is not None:
            close_iterable(body)
            return answer.refuse(stream.failure)
        return _GuardedBody(body, answer)


class LimitedInput:
    """``wsgi.input`` for a chunked body: yields at most ``limit`` bytes, never stores them.

    Reads up to one byte past the limit, so a body of exactly ``limit`` bytes ends cleanly and
    one byte more is caught. A body the server cannot decode (broken chunk framing, a client
    gone mid-body) is the client's fault, not the function's: whatever the server's stream
    raises becomes :class:`~fc_wsgi.errors.InvalidBody`, FC's 400, not a 502.
    """

    def __init__(self, stream: IO[bytes], limit: int) -> None:
        self._stream = stream
        self._limit = limit
        self._left = limit + 1
        #: The error every later read raises, and that replaces the app's answer.
        self.failure: InvalidBody | None = None

    def read(self, size: int | None = -1) -> bytes:
        return self._take(self._stream.read, size)

    def readline(self, size: int | None = -1) -> bytes:
        return self._take(self._stream.readline, size)

    def readlines(self, hint: int = -1) -> list[bytes]:
        return list(self)

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.readline, b"")

    def error(self) -> BodyTooLarge:
        return BodyTooLarge(f"request body size exceeds the limit of {self._limit} bytes")

    def _take(self, reader: Callable[[int], bytes], size: int | None) -> bytes:
        if self.failure is not None:
            raise self.failure
        if size is None or size < 0 or size > self._left:
            size = self._left
        try:
            data = reader(size)
        except Exception as exc:  # the server's own parse errors (gunicorn: NoMoreData, ...)
            self.failure = InvalidBody("chunked request body is malformed or ended early")
            raise self.failure from exc
        self._left -= len(data)
        if self._left <= 0:
            self.failure = self.error()
            raise self.failure
        return data


class LengthInput:
    """``wsgi.input`` of a body with a ``Content-Length``: all of it, or :class:`InvalidBody`.

    Servers' buffered streams return fewer bytes than asked only at the end of the stream, so
    a short read is read again once; an empty answer then means the client sent less than it
    announced. Reads never go past ``Content-Length`` (PEP 3333).
    """

    __slots__ = ("_stream", "_length", "_left")

    def __init__(self, stream: IO[bytes], length: int) -> None:
        self._stream, self._length, self._left = stream, length, length

    def read(self, size: int | None = -1) -> bytes:
        left = self._left
        if size is None or size < 0 or size > left:
            size = left
        if size == 0:
            return b""
        data = self._call(self._stream.read, size)
        while len(data) < size:
            more = self._call(self._stream.read, size - len(data))
            if not more:
                raise self._ended(len(data))
            data += more
        self._left -= size
        return data

    def readline(self, size: int | None = -1) -> bytes:
        left = self._left
        if size is None or size < 0 or size > left:
            size = left
        if size == 0:
            return b""
        line = self._call(self._stream.readline, size)
        if not line:
            raise self._ended(0)
        self._left -= len(line)
        return line

    def readlines(self, hint: int = -1) -> list[bytes]:
        return list(self)

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.readline, b"")

    def _call(self, reader: Callable[[int], bytes], size: int) -> bytes:
        try:
            return reader(size)
        except Exception as exc:  # the server's stream failed: the client is gone
            raise self._ended(0) from exc

    def _ended(self, extra: int) -> InvalidBody:
        received = self._length - self._left + extra
        self._left = 0
        return short_body(received, self._length)


class _OverflowAnswer:
    """One request's answer while its chunked body is counted: FC's 400 replaces the app's."""

    __slots__ = ("guard", "environ", "server_start", "stream", "refused", "started")

    def __init__(
        self,
        guard: LimitGuard,
        environ: WSGIEnvironment,
        start: StartResponse,
        stream: LimitedInput,
    ) -> None:
        self.guard, self.environ, self.server_start, self.stream = guard, environ, start, stream
        self.refused: list[bytes] | None = None
        self.started = False  # the app's own status went to the server

    def start_response(
        self, status: str, headers: list[tuple[str, str]], exc_info: Any = None
    ) -> Callable[[bytes], object]:
        failure = self.stream.failure
        if failure is not None:  # the app swallowed InvalidBody and answered itself
            self.refuse(failure, exc_info)
            return discard
        self.started = True
        return self.server_start(status, headers, exc_info)

    def refuse(self, error: InvalidBody, exc_info: Any = None) -> list[bytes]:
        if self.refused is None:
            if exc_info is None and self.started:  # replace the app's status, not yet sent
                exc_info = (type(error), error, error.__traceback__)
            self.refused = error_response(
                error, self.environ, self.server_start, self.guard.profile, exc_info
            )
        return self.refused


class _GuardedBody:
    """The app's iterable while it may still read (and overflow) the body lazily."""

    __slots__ = ("_body", "_next", "_answer", "_started")

    def __init__(self, body: Iterable[bytes], answer: _OverflowAnswer) -> None:
        self._body, self._answer = body, answer
        self._next = iter(body).__next__
        self._started = False

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        answer = self._answer
        if answer.refused is not None:
            if self._started:
                raise StopIteration
            self._started = True
            return b"".join(answer.refused)
        try:
            chunk = self._next()
        except InvalidBody as error:
            if self._started:
                raise  # bytes of the app's answer are out: the server must abort it
            answer.refuse(error)
            return self.__next__()
        if chunk:
            self._started = True
        return chunk

    def close(self) -> None:
        close_iterable(self._body)


def _header_plan(environ: WSGIEnvironment) -> tuple[int, tuple[str, ...]]:
    """The bytes of the header names in ``environ``, and the keys holding header values."""
    names_bytes = 0
    keys = []
    for key in environ:
        if key[:5] == "HTTP_":
            names_bytes += len(key) - 5
        elif key in _UNPREFIXED_HEADERS:
            names_bytes += _UNPREFIXED_HEADERS[key]
        else:
            continue
        keys.append(key)
    return names_bytes, tuple(keys)


def _raw_url_length(environ: WSGIEnvironment) -> int:
    """Bytes of the path and query as the client sent them."""
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if raw is not None:
        return len(raw)
    path = quote(
        environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", ""),
        safe="/;=:@&$,+!~*'()",
        encoding="latin-1",
    )
    query = environ.get("QUERY_STRING")
    return len(path) + 1 + len(query) if query else len(path)
