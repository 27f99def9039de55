"""CorsDefaults: FC's CORS answers (fc-spec.md sections 10 and 13.12).

FC adds to every answer ``Access-Control-Allow-Origin: <request Origin>``,
``Access-Control-Allow-Credentials: true`` and its list of exposed ``x-fc-*`` headers, as
defaults the function may override. Who answers a preflight is undocumented: when the trigger
allows ``OPTIONS`` the app gets it, otherwise we answer it the way FC's own local emulator
does (200, echoing what the browser asks for). Mode ``strict`` answers only listed origins
and always answers preflights itself; mode ``off`` adds nothing.

This is the outermost layer so that error answers from the inner layers carry CORS headers
too: a browser can only read the status of a failed call if the answer passes CORS. Every
header tuple is built here once; per request only the echoed ``Origin`` is new. The
``start_response`` handed inward is a :class:`CorsStart`: HeaderFilter, innermost, appends its
defaults itself where the app set no CORS header, so the stack has one wrapper, not two.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from operator import itemgetter
from typing import TYPE_CHECKING, Any

from .common import ALL_METHODS, FC_EXPOSE_HEADERS
from .config import app_answers_preflight
from .errors import AccessDenied, error_response, request_id

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

    from .common import CorsMode, Profile

#: Request headers a browser sends without a preflight (Fetch standard's CORS-safelisted).
SAFELISTED_HEADERS = frozenset({"accept", "accept-language", "content-language", "content-type"})

_ACAO = "Access-Control-Allow-Origin"
_VARY = ("Vary", "Origin")
# Control characters (CR, LF, NUL, ...): a request value holding one is never echoed into a
# response header, where it could split the answer (some servers let them through).
_UNSAFE = re.compile(r"[\x00-\x1f\x7f]")
# FC's emulator answers a preflight 200 (not 204), so it carries a type for its empty body.
_EMPTY_BODY = (("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", "0"))
_name = itemgetter(0)


class CorsDefaults:
    """Add FC's CORS headers to every answer, and answer preflights FC's way."""

    def __init__(
        self,
        app: WSGIApplication,
        *,
        mode: CorsMode = "fc",
        allow_origins: Iterable[str] = (),
        allow_methods: Iterable[str] = (),
        allow_headers: Iterable[str] = (),
        expose_headers: Iterable[str] = FC_EXPOSE_HEADERS,
        allow_credentials: bool = True,
        max_age: int = 3600,
        methods: Iterable[str] = ALL_METHODS,
        profile: Profile = "fc3",
    ) -> None:
        if mode not in ("fc", "strict", "off"):
            raise ValueError(f"mode must be fc, strict or off, got {mode!r}")
        self.app = app
        self.mode = mode
        self.profile = profile
        methods = tuple(m.upper() for m in methods)
        self.allow_origins = frozenset(allow_origins)
        self._any_origin = "*" in self.allow_origins
        self.allow_methods = tuple(m.upper() for m in allow_methods) or methods
        self._allowed_methods = frozenset(self.allow_methods)
        self.allow_headers = tuple(h.lower() for h in allow_headers)
        self._echo_headers = "*" in self.allow_headers
        self._allowed_headers = frozenset(self.allow_headers) | SAFELISTED_HEADERS
        # A preflight reaches the app only in fc mode, when the trigger lets OPTIONS through.
        self._app_answers_preflight = app_answers_preflight(mode, methods)

        fixed: list[tuple[str, str]] = []
        if allow_credentials:
            fixed.append(("Access-Control-Allow-Credentials", "true"))
        if expose_headers:
            fixed.append(("Access-Control-Expose-Headers", ",".join(expose_headers)))
        self._fixed = tuple(fixed)
        self._with_vary = (*fixed, _VARY)
        self._no_origin = self._with_vary if mode == "fc" else (_VARY,)
        self._max_age = ("Access-Control-Max-Age", str(max_age))
        self._strict_methods = ("Access-Control-Allow-Methods", ",".join(self.allow_methods))

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if self.mode == "off":
            return self.app(environ, start_response)
        origin: str | None = environ.get("HTTP_ORIGIN")
        # isprintable() (C, ASCII fast path) is True only without control characters.
        if origin is not None and not origin.isprintable() and _UNSAFE.search(origin):
            origin = None  # not an origin a browser sends: answered as if absent
        if origin is None:
            # No Origin: nothing to echo, but the answer to a request with one differs, so a
            # shared cache must not serve this one to it (Vary); FC still exposes its headers.
            added: tuple[tuple[str, str], ...] = self._no_origin
        elif self.mode == "fc" or self._any_origin or origin in self.allow_origins:
            if (
                environ["REQUEST_METHOD"] == "OPTIONS"
                and "HTTP_ACCESS_CONTROL_REQUEST_METHOD" in environ
                and not self._app_answers_preflight
            ):
                return self._preflight(environ, start_response, origin)
            added = ((_ACAO, origin), *self._with_vary)
        else:
            # strict and not allowed: no CORS headers; the browser blocks the answer.
            if environ["REQUEST_METHOD"] == "OPTIONS":
                if "HTTP_ACCESS_CONTROL_REQUEST_METHOD" in environ:
                    return self._refuse(environ, start_response, "origin not allowed")
            added = (_VARY,)

        return self.app(environ, CorsStart(start_response, added))

    def _preflight(
        self, environ: WSGIEnvironment, start_response: StartResponse, origin: str
    ) -> list[bytes]:
        asked_method = environ["HTTP_ACCESS_CONTROL_REQUEST_METHOD"]
        asked_headers = environ.get("HTTP_ACCESS_CONTROL_REQUEST_HEADERS", "")
        if _UNSAFE.search(asked_method) or _UNSAFE.search(asked_headers):
            return self._refuse(environ, start_response, "control characters in the request")
        headers = [(_ACAO, origin), *self._fixed, ("Vary", "Origin"), self._max_age]
        if self.mode == "fc":  # FC's emulator: echo whatever the browser asks for
            headers.append(("Access-Control-Allow-Methods", asked_method))
            if asked_headers:
                headers.append(("Access-Control-Allow-Headers", asked_headers))
        else:
            if asked_method.upper() not in self._allowed_methods:
                return self._refuse(environ, start_response, f"method {asked_method!r} not allowed")
            headers.append(self._strict_methods)
            if asked_headers:
                names = [h.strip() for h in asked_headers.split(",") if h.strip()]
                if not self._echo_headers:
                    refused = [h for h in names if h.lower() not in self._allowed_headers]
                    if refused:
                        return self._refuse(
                            environ, start_response, f"header {refused[0]!r} not allowed"
                        )
                headers.append(("Access-Control-Allow-Headers", ", ".join(names)))
        headers.append(("X-Fc-Request-Id", request_id(environ, self.profile)))
        headers.extend(_EMPTY_BODY)
        start_response("200 OK", headers)
        return []

    def _refuse(
        self, environ: WSGIEnvironment, start_response: StartResponse, why: str
    ) -> list[bytes]:
        error = AccessDenied(f"CORS preflight refused: {why}", headers=[("Vary", "Origin")])
        return error_response(error, environ, start_response, self.profile)


class CorsStart:
    """The ``start_response`` CorsDefaults hands inward: the server's, plus CORS defaults.

    An object rather than a closure so that HeaderFilter, when it sends an answer without a
    CORS or ``Vary`` header of the app's own, appends ``added`` itself and calls the server's
    ``start_response`` directly: one wrapper less per request, the same headers.
    """

    __slots__ = ("start", "added")

    def __init__(self, start: StartResponse, added: tuple[tuple[str, str], ...]) -> None:
        self.start, self.added = start, added

    def __call__(self, status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        # Defaults only: a header the app set itself wins (FC keeps the function's values).
        # One C-level join tells whether the app set any CORS header or Vary at all.
        names = "\0".join(map(_name, headers)).lower()
        if "access-control-" not in names and "vary" not in names:
            return self.start(status, [*headers, *self.added], exc_info)
        own = {name.lower() for name, _ in headers}
        merged = list(headers)
        for name, value in self.added:
            low = name.lower()
            if low == "vary":
                merged = _add_vary(merged)
            elif low not in own:
                merged.append((name, value))
        return self.start(status, merged, exc_info)


def meets_cors_defaults(lower_name: str) -> bool:
    """Whether a response header (lower-cased) may meet one of CorsStart's defaults: an answer
    holding one must be merged by CorsStart, not just have the defaults appended."""
    return lower_name.startswith("access-control-") or lower_name == "vary"


def _add_vary(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Add ``Origin`` to the app's ``Vary`` (or a new one), once."""
    for i, (name, value) in enumerate(headers):
        if name.lower() == "vary":
            tokens = {t.strip().lower() for t in value.split(",")}
            if "origin" not in tokens and "*" not in tokens:
                headers[i] = (name, f"{value}, Origin")
            return headers
    headers.append(("Vary", "Origin"))
    return headers
