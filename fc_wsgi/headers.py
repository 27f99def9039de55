"""HeaderFilter: FC's reserved headers, response-header limit and the app's own failures.

FC's gateway sits between the client and the function on both sides (fc-spec.md sections 4,
7 and 12): clients may not hand the function ``x-fc-*``, ``connection`` or ``keep-alive``
headers, and the function may not answer with ``x-fc-*``, hop-by-hop, ``content-length``,
``date`` or ``server`` headers, because the gateway owns them. Response headers over 8 KiB are
FC's 502 ``BadResponse``; on the default domain every answer is forced to
``Content-Disposition: attachment``.

This is the innermost layer, right around the app, so it is also where an exception from the
app becomes FC's unhandled-error answer (502 ``UnhandledInvocationError``, logged with the
request id) while the server goes on serving.

Trade-off: to recompute ``Content-Length`` as FC's buffering gateway does, the app's
``start_response`` is held until the app returns its iterable. A list or tuple body (what most
frameworks return) then gets an exact ``Content-Length``; any other iterable streams as it
comes, framed by the server (chunked), and is never buffered here.

Under CorsDefaults (make_trigger_app's stack) the ``start_response`` handed down is a
:class:`~fc_wsgi.cors.CorsStart`; when the app's answer holds no CORS or ``Vary`` header, this
layer appends the CORS defaults itself and calls the server directly: the same headers, one
wrapper call and one scan of the header names less per request.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from ._wsgi import close_iterable, discard, environ_key
from .cors import CorsStart, meets_cors_defaults
from .errors import (
    REQUEST_ID_KEY,
    BadResponse,
    FcError,
    error_response,
    function_error_response,
    new_request_id,
)

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

    from .common import Profile

#: Request headers FC consumes or forbids, beyond every ``x-fc-*`` (fc-spec.md section 4).
RESERVED_REQUEST_HEADERS: tuple[str, ...] = ("connection", "keep-alive")
#: Response headers the gateway owns; the app's values are dropped (fc-spec.md 4, 13.11).
RESERVED_RESPONSE_HEADERS: tuple[str, ...] = (
    "connection",
    "keep-alive",
    "upgrade",
    "content-length",
    "date",
    "server",
    "transfer-encoding",
    "proxy-authenticate",
    "te",
    "trailer",
)


#: Response header names whose verdict (keep or drop) a HeaderFilter remembers.
_MAX_VERDICTS = 256
#: Sets of request environ keys whose dropped keys a HeaderFilter remembers.
_MAX_KEY_SETS = 256
# Verdict bits: keep the header; it may meet a CORS default (CorsStart must merge the answer).
_KEEP = 1
_CORS = 2


class HeaderFilter:
    """Reserved request/response headers, response-header limit, default-domain attachment."""

    def __init__(
        self,
        app: WSGIApplication,
        *,
        max_response_header_bytes: int = 8192,
        default_domain: bool = False,
        profile: Profile = "fc3",
    ) -> None:
        self.app = app
        self.profile = profile
        self.max_response_header_bytes = max_response_header_bytes
        self.default_domain = default_domain
        # Header names become environ keys and lower-case sets once, here.
        self._drop_request = tuple(environ_key(name) for name in RESERVED_REQUEST_HEADERS)
        drop = set(RESERVED_RESPONSE_HEADERS)
        if default_domain:
            drop.add("content-disposition")
        self._drop_response = frozenset(drop)
        self._forced: tuple[tuple[str, str], ...] = (
            (("Content-Disposition", "attachment"),) if default_domain else ()
        )
        self._forced_bytes = sum(len(name) + len(value) for name, value in self._forced)
        # Response header name as the app spells it -> its verdict bits. Apps answer with the
        # same few names, so each is lower-cased and matched once, not on every answer.
        self._verdicts: dict[str, int] = {}
        # The environ keys joined -> the keys among them that the app must not see.
        self._dropped: dict[str, tuple[str, ...]] = {}

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        # Clients send the same few sets of headers: the keys to drop are worked out once per
        # set of environ keys (looked up by the keys joined in one C-level step).
        keys = "\0".join(environ)
        dropped = self._dropped.get(keys)
        if dropped is None:
            dropped = self._dropped_keys(environ)
            if len(self._dropped) < _MAX_KEY_SETS:  # a client inventing names stops filling it
                self._dropped[keys] = dropped
        for key in dropped:
            del environ[key]
        rid = environ.get(REQUEST_ID_KEY)
        if rid is None:
            rid = environ[REQUEST_ID_KEY] = new_request_id(self.profile)
        environ["HTTP_X_FC_REQUEST_ID"] = rid
        exchange = _Exchange(self, environ, start_response, rid)
        try:
            body = self.app(environ, exchange.start_response)
        except FcError:
            raise  # a gateway error raised through the app (e.g. body over the limit)
        except Exception as exc:
            return exchange.fail(exc)
        if exchange.status is None:
            return _LazyBody(exchange, body)  # start_response comes with the first chunk
        return exchange.finish(body)

    def _dropped_keys(self, environ: WSGIEnvironment) -> tuple[str, ...]:
        """Every ``x-fc-*`` header a client sent, and the reserved ones."""
        drop = self._drop_request
        return tuple(key for key in environ if key.startswith("HTTP_X_FC_") or key in drop)

    def filter_headers(
        self, headers: list[tuple[str, str]]
    ) -> tuple[list[tuple[str, str]], int, int]:
        """The headers FC lets through, their verdict bits or-ed, and their size in bytes."""
        verdicts = self._verdicts
        kept = []
        seen = 0
        size_bytes = self._forced_bytes
        for pair in headers:  # a plain loop: the fastest way through a few headers
            verdict = verdicts.get(pair[0])
            if verdict is None:
                verdict = self._verdict(pair[0])
            if verdict:
                kept.append(pair)
                seen |= verdict
                size_bytes += len(pair[0]) + len(pair[1])
        kept.extend(self._forced)
        return kept, seen, size_bytes

    def _verdict(self, name: str) -> int:
        low = name.lower()
        if low in self._drop_response or low.startswith("x-fc-"):
            verdict = 0
        else:
            verdict = _KEEP | _CORS if meets_cors_defaults(low) else _KEEP
        if len(self._verdicts) < _MAX_VERDICTS:  # an app inventing names stops filling it
            self._verdicts[name] = verdict
        return verdict


class _Exchange:
    """One request's response: holds the app's status until the body is known."""

    __slots__ = (
        "filter", "environ", "server_start", "rid", "status", "headers", "write", "bad",
        "merge", "replacement",
    )  # fmt: skip

    def __init__(
        self, filter: HeaderFilter, environ: WSGIEnvironment, start: StartResponse, rid: str
    ) -> None:
        self.filter, self.environ, self.server_start, self.rid = filter, environ, start, rid
        self.status: str | None = None
        self.headers: list[tuple[str, str]] = []
        self.write: Any = None  # the server's write(), once the headers went to the server
        self.bad = False  # the app's headers broke FC's limit: answer 502 instead
        self.merge = True  # the headers may meet CorsStart's defaults: it merges them
        self.replacement: list[bytes] = []

    def start_response(
        self, status: str, headers: list[tuple[str, str]], exc_info: Any = None
    ) -> Any:
        if exc_info is not None:
            try:
                if self.write is not None:  # headers may be out already: the server decides
                    kept = self.filter.filter_headers(headers)[0]
                    return self.server_start(status, kept, exc_info)
            finally:
                exc_info = None
        elif self.status is not None:
            raise RuntimeError("start_response called twice without exc_info")
        kept, seen, size_bytes = self.filter.filter_headers(headers)
        self.merge = bool(seen & _CORS)
        self.bad = size_bytes > self.filter.max_response_header_bytes
        self.status, self.headers = status, kept
        return self._legacy_write

    def _legacy_write(self, data: bytes) -> None:
        # PEP 3333's write(): the headers must go out now, without a known length.
        if self.write is None:
            if self.bad:
                self.bad_response()
            else:
                self.send(None)
        self.write(data)

    def send(self, content_length: int | None) -> None:
        headers = self.headers
        headers.append(("X-Fc-Request-Id", self.rid))
        if content_length is not None:
            headers.append(("Content-Length", str(content_length)))
        start = self.server_start
        if type(start) is CorsStart and not self.merge:
            # What CorsStart would send, without the call: its defaults after ours.
            headers.extend(start.added)
            start = start.start
        # send() only follows start_response, so the status is set.
        self.write = start(self.status, headers)  # type: ignore[arg-type]

    def finish(self, body: Iterable[bytes]) -> Iterable[bytes]:
        """The app returned after start_response: send the headers, hand the body on."""
        if self.bad:
            close_iterable(body)
            return self.bad_response()
        if self.write is None:
            length = None
            if type(body) in (list, tuple) and self.environ["REQUEST_METHOD"] != "HEAD":
                length = sum(map(len, body))
            self.send(length)
        return body

    def bad_response(self) -> list[bytes]:
        """FC's 502 for response headers over the limit; the app's writes go nowhere."""
        if self.write is not discard:  # once, even when a legacy write() came first
            limit = self.filter.max_response_header_bytes
            error = BadResponse(f"response headers exceed the limit of {limit} bytes")
            self.write = discard
            self.replacement = error_response(
                error, self.environ, self.server_start, self.filter.profile
            )
        return self.replacement

    def fail(self, exc: Exception) -> list[bytes]:
        exc_info = (type(exc), exc, exc.__traceback__) if self.write is not None else None
        self.write = discard
        return function_error_response(
            exc, self.environ, self.server_start, self.filter.profile, exc_info
        )


class _LazyBody:
    """The app's iterable when it calls start_response lazily: start at the first chunk.

    A class, not a generator: closing a generator before its first ``next()`` skips its
    ``finally``, and the app's ``close()`` would never run.
    """

    __slots__ = ("_exchange", "_body", "_next", "_pending")

    def __init__(self, exchange: _Exchange, body: Iterable[bytes]) -> None:
        self._exchange, self._body = exchange, body
        self._next = iter(body).__next__
        self._pending: list[bytes] | None = None  # an error answer replacing the app's body

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        if self._pending is not None:
            if not self._pending:
                raise StopIteration
            return self._pending.pop()
        exchange = self._exchange
        if exchange.write is not None:
            return self._next()
        try:
            chunk: bytes | None = self._next()
        except StopIteration:
            chunk = None
        except FcError:
            raise
        except Exception as exc:
            self._pending = exchange.fail(exc)
            return self.__next__()
        if exchange.status is None:
            self._pending = exchange.fail(RuntimeError("the app did not call start_response"))
            return self.__next__()
        if exchange.bad:
            self._pending = exchange.bad_response()
            return self.__next__()
        if chunk is None:
            exchange.send(0 if exchange.environ["REQUEST_METHOD"] != "HEAD" else None)
            raise StopIteration
        exchange.send(None)
        return chunk

    def close(self) -> None:
        close_iterable(self._body)
