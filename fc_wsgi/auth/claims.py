"""Claim values as the JWT layer passes them on: in a header, a cookie, the query or a form.

FC hands selected claims to the function under mapped names (``claimPassBy``, fc-spec.md 9).
Non-string claims become JSON text; a claim with control characters is refused rather than
encoded into a header, where CR/LF would split it if the app forwards it; cookie values are
percent-encoded where RFC 6265 forbids a character. The readers and rewriters here also find
a token in a cookie or the query, and clear client-sent values of the mapped names.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from wsgiref.types import WSGIEnvironment

_HEADER_CTL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
#: RFC 6265 cookie-octets, less "%" so that percent-decoding is unambiguous.
_COOKIE_SAFE = "!#$&'()*+-./:<=>?@[]^_`{|}~"


class ClaimNotPassable(ValueError):
    """A claim whose text cannot be handed on safely (control characters for a header)."""


def claim_text(claims: dict[str, Any], claim: str) -> str | None:
    if claim not in claims:
        return None
    value = claims[claim]
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def header_text(claims: dict[str, Any], claim: str) -> str | None:
    text = claim_text(claims, claim)
    if text is None:
        return None
    if _HEADER_CTL.search(text):  # CR/LF would split a header if the app forwards it
        raise ClaimNotPassable(f"token claim {claim} cannot be passed in a header")
    return text.encode("utf-8").decode("latin-1")  # PEP 3333: headers as latin-1 text


def pairs(
    claims: dict[str, Any], passes: tuple[tuple[str, str], ...], quote: Callable[[str], str]
) -> tuple[str, ...]:
    pairs = []
    for name, claim in passes:
        text = claim_text(claims, claim)
        if text is not None:
            pairs.append(f"{quote(name)}={quote(text)}")
    return tuple(pairs)


def cookie_quote(text: str) -> str:
    return urllib.parse.quote(text, safe=_COOKIE_SAFE)


def query_quote(text: str) -> str:
    return urllib.parse.quote(text, safe="")


def form_quote(text: str) -> str:
    return urllib.parse.quote_plus(text, safe="")


def cookie_value(cookie: str, name: str) -> str | None:
    for part in cookie.split(";"):
        key, _, value = part.partition("=")
        if key.strip() == name:
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
            return value
    return None


def rewrite_cookie(cookie: str, names: frozenset[str], added: tuple[str, ...]) -> str:
    kept = [
        part.strip()
        for part in cookie.split(";")
        if part.strip() and part.partition("=")[0].strip() not in names
    ]
    return "; ".join([*kept, *added])


def query_value(query: str, name: str) -> str | None:
    for key, value in urllib.parse.parse_qsl(query, keep_blank_values=True):
        if key == name:
            return value
    return None


def rewrite_query(query: str, names: frozenset[str], added: tuple[str, ...]) -> str:
    kept = [
        part
        for part in query.split("&")
        if part and urllib.parse.unquote_plus(part.partition("=")[0]) not in names
    ]
    return "&".join([*kept, *added])


def set_query(environ: WSGIEnvironment, query: str) -> None:
    environ["QUERY_STRING"] = query
    for key in ("REQUEST_URI", "RAW_URI"):  # servers' raw request targets, if any
        uri = environ.get(key)
        if uri is not None:
            environ[key] = uri.partition("?")[0] + ("?" + query if query else "")
