"""Form lookup and form pass-through of the JWT layer: an urlencoded body read once, replayed.

FC looks a token up in a form field and passes claims on as form fields (fc-spec.md 9). Both
need the body: it is read once, on demand and only when urlencoded, at most
``MAX_FORM_BYTES``, and handed to the app through a fresh ``wsgi.input``. A larger body with a
``Content-Length`` is left unread for the app (no form lookup); a chunked one over the bound is
refused, since it cannot be replayed.
"""

from __future__ import annotations

import urllib.parse
from typing import TYPE_CHECKING

from .._wsgi import content_length, read_body, replay_body
from ..errors import InvalidArgument

if TYPE_CHECKING:
    from wsgiref.types import WSGIEnvironment

#: Largest urlencoded body read for form lookup or form pass-through, in bytes.
MAX_FORM_BYTES = 1024 * 1024

_FORM_TYPE = "application/x-www-form-urlencoded"


def _form_name(part: bytes) -> bytes:
    return urllib.parse.unquote_to_bytes(part.partition(b"=")[0].replace(b"+", b" "))


def form_value(body: bytes, name: str) -> str | None:
    wanted = name.encode()
    for part in body.split(b"&"):
        if _form_name(part) == wanted:
            value = part.partition(b"=")[2].replace(b"+", b" ")
            return urllib.parse.unquote_to_bytes(value).decode("latin-1")
    return None


def rewrite_form(body: bytes, names: frozenset[bytes], added: tuple[bytes, ...]) -> bytes:
    kept = [part for part in body.split(b"&") if part and _form_name(part) not in names]
    return b"&".join([*kept, *added])


class Form:
    """One request's urlencoded body: read once, on demand, and replayed to the app."""

    __slots__ = ("_environ", "_body", "_read", "too_large")

    def __init__(self, environ: WSGIEnvironment) -> None:
        self._environ = environ
        self._body: bytes | None = None
        self._read = False
        self.too_large = False

    def body(self) -> bytes | None:
        """The body, or None when it is not urlencoded (or too large to read)."""
        if not self._read:
            self._read = True
            self._body = self._load()
        return self._body

    def replace(self, body: bytes) -> None:
        self._body = body
        replay_body(self._environ, body)

    def _load(self) -> bytes | None:
        environ = self._environ
        content_type = environ.get("CONTENT_TYPE", "")
        if content_type.partition(";")[0].strip().lower() != _FORM_TYPE:
            return None
        try:
            length = content_length(environ)
        except InvalidArgument:
            return None  # not ours to judge: the app gets the request as it came
        if length is not None and length > MAX_FORM_BYTES:
            self.too_large = True  # left unread, for the app
            return None
        try:
            body = read_body(environ, MAX_FORM_BYTES)
        except InvalidArgument as exc:  # chunked and over the bound: consumed, cannot replay
            raise InvalidArgument(f"form body over {MAX_FORM_BYTES} bytes") from exc
        self.replace(body)
        return body
