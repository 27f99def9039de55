"""Small PEP 3333 helpers shared by the middlewares: environ keys, closing, the body."""

from __future__ import annotations

import io
from collections.abc import Iterable
from typing import TYPE_CHECKING

from .errors import InvalidArgument, InvalidBody

if TYPE_CHECKING:
    from wsgiref.types import WSGIEnvironment

#: Bytes asked of ``wsgi.input`` per read while a body is read whole.
READ_CHUNK_BYTES = 64 * 1024


def environ_key(header: str) -> str:
    """``x-fc-foo`` → ``HTTP_X_FC_FOO``, as servers name request headers in the environ."""
    return "HTTP_" + header.upper().replace("-", "_")


def close_iterable(body: Iterable[bytes]) -> None:
    """Call the app iterable's ``close()``, which PEP 3333 says must always be called."""
    close = getattr(body, "close", None)
    if close is not None:
        close()


def discard(data: bytes) -> None:
    """``write()`` for an app whose answer was replaced by an error: its bytes go nowhere."""


def content_length(environ: WSGIEnvironment) -> int | None:
    """The request's ``Content-Length``, None when absent; :class:`InvalidArgument` when it is
    not a plain decimal number (a sign or "²" included)."""
    text = environ.get("CONTENT_LENGTH")
    if not text:
        return None
    if not (text.isascii() and text.isdigit()):
        raise InvalidArgument(f"invalid Content-Length {text[:32]!r}")
    return int(text)


def read_body(environ: WSGIEnvironment, max_bytes: int) -> bytes:
    """The whole request body, for a layer that must hold it (to store, hash or parse it).

    Never reads past ``Content-Length`` (PEP 3333); without one, reads to the end only when
    the server set ``wsgi.input_terminated`` (a chunked body), else there is no body. One rule
    for every reader: a body that ends before its ``Content-Length`` is :class:`InvalidBody`
    (FC's 400: the gateway never forwards half a request), and one over ``max_bytes`` is
    :class:`InvalidArgument`. What the stream itself raises (an FcError from LimitGuard's
    streams) passes through.
    """
    length = content_length(environ)
    if length is not None and length > max_bytes:
        raise InvalidArgument(f"request body exceeds {max_bytes} bytes")
    if length is None and not environ.get("wsgi.input_terminated"):
        return b""
    stream = environ["wsgi.input"]
    # Chunked: ask for one byte past the bound, so a body of exactly max_bytes ends cleanly.
    left = length if length is not None else max_bytes + 1
    chunks: list[bytes] = []
    while left > 0:
        chunk = stream.read(min(READ_CHUNK_BYTES, left))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    body = b"".join(chunks)
    if length is None and len(body) > max_bytes:
        raise InvalidArgument(f"request body exceeds {max_bytes} bytes")
    if length is not None and len(body) < length:
        raise short_body(len(body), length)
    return body


def short_body(received: int, length: int) -> InvalidBody:
    """The one answer to a body shorter than its ``Content-Length``, however it was read."""
    return InvalidBody(f"request body ended after {received} of {length} bytes")


def replay_body(environ: WSGIEnvironment, body: bytes) -> None:
    """Hand the app ``body`` (read by a layer before it) through a fresh ``wsgi.input``."""
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))
