"""Client-side signing for ``fc-wsgi sign``: the headers, or the URL, an FC trigger accepts.

Pure functions over the canonical strings the verifier rebuilds (``canonical.py``), so what is
signed here passes ``SignatureVerifier`` by construction; the tests also hold both to the
published vectors and to Alibaba's own SDK code (fc-spec.md 8.5).

The URL is signed as it will travel: characters that may not appear raw in a URL (spaces,
non-ASCII) are percent-encoded first, as ``requests`` does, and an already encoded URL is left
alone. ``Content-MD5`` is never computed, since SDKs disagree on its encoding (fc-spec.md 8.2):
pass it in ``headers`` to have it signed. ACS3 signs every header passed plus ``host``,
``x-acs-date`` and ``x-acs-content-sha256``, so a proxy cannot swap any of them.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable
from typing import Literal
from urllib.parse import quote, unquote_to_bytes, urlsplit, urlunsplit

from .canonical import (
    ACS3_ALGORITHM,
    acs3_canonical_request,
    acs3_header_value,
    acs3_query,
    acs3_signature,
    fc_headers,
    fc_resource,
    fc_signature,
    fc_string_to_sign,
    format_acs_date,
    format_http_date,
    parse_query,
)

Header = tuple[str, str]

#: Characters kept as they are when a URL is made safe to send (RFC 3986 path characters).
_PATH_SAFE = "/%:@!$&'()*+,;=-._~"
_QUERY_SAFE = _PATH_SAFE + "?"


def sign_headers(
    method: str,
    url: str,
    *,
    access_key_id: str,
    access_key_secret: str,
    headers: Iterable[Header] = (),
    body: bytes = b"",
    scheme: Literal["fc", "acs3"] = "fc",
    now: float | None = None,
    security_token: str = "",
) -> list[Header]:
    """Every header to send: ``headers`` first, then what signing adds, ``Authorization`` last.

    ``fc`` adds ``Date`` (unless ``headers`` has ``Date`` or ``X-Fc-Date``) and, with a
    token, ``x-fc-security-token``. ``acs3`` adds ``host`` (unless given), ``x-acs-date``,
    ``x-acs-content-sha256`` of ``body`` and, with a token, ``x-acs-security-token``.
    """
    out = list(headers)
    if any(name.lower() == "authorization" for name, _ in out):
        raise ValueError("headers: Authorization is what signing adds; leave it out")
    when = time.time() if now is None else now
    parts = urlsplit(requote_url(url))
    path = parts.path or "/"
    query = parts.query.encode("utf-8")
    if scheme == "fc":
        if _joined(out, "x-fc-date") is None and _joined(out, "date") is None:
            out.append(("Date", format_http_date(when)))
        if security_token:
            out.append(("x-fc-security-token", security_token))
        date = _joined(out, "x-fc-date") or _joined(out, "date") or ""
        resource = fc_resource(unquote_to_bytes(path), parse_query(query))
        string = _fc_string(method, out, date, resource)
        signature = fc_signature(access_key_secret.encode("utf-8"), string).decode("ascii")
        out.append(("Authorization", f"FC {access_key_id}:{signature}"))
        return out
    if scheme != "acs3":
        raise ValueError(f"scheme must be fc or acs3, got {scheme!r}")
    if _joined(out, "host") is None:
        out.append(("host", parts.netloc.rpartition("@")[2]))
    payload = hashlib.sha256(body).hexdigest()
    out.append(("x-acs-date", format_acs_date(when)))
    out.append(("x-acs-content-sha256", payload))
    if security_token:
        out.append(("x-acs-security-token", security_token))
    grouped: dict[str, list[bytes]] = {}
    for name, value in out:
        grouped.setdefault(name.lower(), []).append(value.encode("utf-8"))
    names = sorted(grouped)
    signed = ";".join(names)
    canonical = acs3_canonical_request(
        method.upper().encode("ascii"),
        path.encode("ascii"),
        acs3_query(parse_query(query)),
        [(name.encode("utf-8"), acs3_header_value(grouped[name])) for name in names],
        signed.encode("utf-8"),
        payload.encode("ascii"),
    )
    signature = acs3_signature(access_key_secret.encode("utf-8"), canonical).decode("ascii")
    credentials = f"Credential={access_key_id},SignedHeaders={signed},Signature={signature}"
    out.append(("Authorization", f"{ACS3_ALGORITHM} {credentials}"))
    return out


def sign_url(
    method: str,
    url: str,
    *,
    access_key_id: str,
    access_key_secret: str,
    expires: int,
    headers: Iterable[Header] = (),
    security_token: str = "",
) -> str:
    """``url`` with FC's signed-URL parameters appended (fc-spec.md 8.3).

    ``expires`` is the absolute Unix time (seconds) after which the URL is refused, FC's
    ``x-fc-expires``. ``headers`` are the ``Content-Type``, ``Content-MD5`` and ``x-fc-*``
    headers the request will carry: they are signed, so they must then be sent as given.
    """
    parts = urlsplit(requote_url(url))
    added = [("x-fc-access-key-id", access_key_id), ("x-fc-expires", str(int(expires)))]
    if security_token:
        added.append(("x-fc-security-token", security_token))
    encoded = "&".join(f"{name}={quote(value, safe='')}" for name, value in added)
    query = f"{parts.query}&{encoded}" if parts.query else encoded
    path = parts.path or "/"
    resource = fc_resource(unquote_to_bytes(path), parse_query(query.encode("utf-8")))
    string = _fc_string(method, list(headers), str(int(expires)), resource)
    signature = fc_signature(access_key_secret.encode("utf-8"), string).decode("ascii")
    query += "&x-fc-signature=" + quote(signature, safe="")
    return urlunsplit((parts.scheme, parts.netloc, path, query, parts.fragment))


def requote_url(url: str) -> str:
    """Percent-encode what cannot travel raw in a URL; leave valid escapes as they are."""
    parts = urlsplit(url)
    path = quote(parts.path, safe=_PATH_SAFE)
    query = quote(parts.query, safe=_QUERY_SAFE)
    return urlunsplit((parts.scheme, parts.netloc, path, query, parts.fragment))


def _joined(headers: Iterable[Header], name: str) -> str | None:
    """A header's value as a WSGI server presents it: repeated values joined by ``,``."""
    values = [value for header, value in headers if header.lower() == name]
    return ",".join(values) if values else None


def _fc_string(method: str, headers: list[Header], date: str, resource: bytes) -> bytes:
    fc_pairs: dict[str, str] = {}  # lower-case x-fc-* name -> value(s), joined as servers do
    for name, value in headers:
        lower = name.lower()
        if lower.startswith("x-fc-"):
            fc_pairs[lower] = value if lower not in fc_pairs else f"{fc_pairs[lower]},{value}"
    fc_items = fc_pairs.items()
    return fc_string_to_sign(
        method.encode("utf-8"),
        (_joined(headers, "content-md5") or "").encode("utf-8"),
        (_joined(headers, "content-type") or "").encode("utf-8"),
        date.encode("utf-8"),
        fc_headers((name.encode("utf-8"), value.encode("utf-8")) for name, value in fc_items),
        resource,
    )
