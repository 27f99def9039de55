"""The strings FC's signature schemes sign, built once for both sides (fc-spec.md section 8).

``signature.py`` (the gateway) and ``signing.py`` (``fc-wsgi sign``) both build their strings
here, so what we sign is by construction what we verify. Everything is bytes: WSGI hands the
decoded path and header values over as latin-1 strings of the raw bytes, and an HMAC over those
bytes matches Go clients (which sign raw bytes) and Python/Node clients (which sign the UTF-8
of their text) with no decode step that could fail or differ. Byte order is the "sorted by
byte value" of fc-spec.md 8.2, and equals code-point order for UTF-8.
"""

from __future__ import annotations

import binascii
import calendar
import email.utils
import hashlib
import time
from collections.abc import Iterable, Sequence
from functools import lru_cache
from urllib.parse import quote, unquote_to_bytes

#: Query parameters as parsed: ``None`` for a bare ``key`` without ``=``.
Params = list[tuple[bytes, bytes | None]]

ACS3_ALGORITHM = "ACS3-HMAC-SHA256"
#: Lower-hex SHA-256 of the empty body.
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()

_MONTHS = {
    m: i for i, m in enumerate(("Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec").split(), 1)
}


# -- query strings ---------------------------------------------------------------------------


def parse_query(raw: bytes) -> Params:
    """``a=1&a=2&flag&b=`` → ``[(a, 1), (a, 2), (flag, None), (b, "")]``, percent-decoded.

    ``+`` decodes to a space: every SDK sends a space that way (Go ``url.Values.Encode``,
    Python ``requests``/``urlencode``) and encodes a real ``+`` as ``%2B``; FC's Go gateway
    decodes with ``url.ParseQuery``, which does the same.
    """
    params: Params = []
    for part in raw.split(b"&"):
        if not part:
            continue
        key, eq, value = part.partition(b"=")
        params.append((_unquote_plus(key), _unquote_plus(value) if eq else None))
    return params


def _unquote_plus(raw: bytes) -> bytes:
    if b"+" in raw:
        raw = raw.replace(b"+", b" ")
    return unquote_to_bytes(raw) if b"%" in raw else raw


# -- legacy FC scheme and signed URLs (fc-spec.md 8.2, 8.3) ----------------------------------


def fc_resource(
    path: bytes, params: Iterable[tuple[bytes, bytes | None]], *, bare_as_empty: bool = False
) -> bytes:
    """CanonicalizedResource: decoded path, ``\\n``, sorted ``key=value`` lines.

    A bare ``key`` stays bare (Python and Node SDKs); ``bare_as_empty`` writes ``key=`` as
    Go's trigger helper does.
    """
    lines = [
        key if value is None and not bare_as_empty else key + b"=" + (value or b"")
        for key, value in params
    ]
    lines.sort()
    return path + b"\n" + b"\n".join(lines)


def fc_headers(pairs: Iterable[tuple[bytes, bytes]]) -> bytes:
    """CanonicalizedFCHeaders from ``(lower-case name, value)`` pairs of ``x-fc-*`` headers."""
    return b"".join(name + b":" + value + b"\n" for name, value in sorted(pairs, key=_first))


def _first(pair: tuple[bytes, bytes]) -> bytes:
    return pair[0]


def fc_string_to_sign(
    method: bytes,
    content_md5: bytes,
    content_type: bytes,
    date: bytes,
    canonical_headers: bytes,
    resource: bytes,
) -> bytes:
    return b"\n".join(
        (method.upper(), content_md5, content_type, date, canonical_headers + resource)
    )


def fc_signature(secret: bytes, string_to_sign: bytes) -> bytes:
    """Base64 of HMAC-SHA256, as sent after ``FC <id>:`` or in ``x-fc-signature``."""
    return binascii.b2a_base64(_hmac_sha256(secret, string_to_sign), newline=False)


# -- ACS3-HMAC-SHA256 (fc-spec.md 8.4) -------------------------------------------------------


def acs3_encode(value: bytes) -> bytes:
    """RFC 3986: unreserved characters kept, everything else ``%XX`` in upper-case hex."""
    return quote(value, safe="~").encode("ascii")


def acs3_path(decoded_path: bytes) -> bytes:
    """CanonicalURI for a path known only decoded: re-encoded with ``/`` and ``~`` kept."""
    return quote(decoded_path, safe="/~").encode("ascii") or b"/"


def acs3_query(params: Iterable[tuple[bytes, bytes | None]], *, encode_names: bool = True) -> bytes:
    """CanonicalQuery: ``name=value`` sorted by (name, value), joined by ``&``.

    ``encode_names=False`` reproduces Alibaba's Python util, which encodes values only.
    """
    encode = acs3_encode if encode_names else _same
    pairs = sorted((encode(key), acs3_encode(value or b"")) for key, value in params)
    return b"&".join(key + b"=" + value for key, value in pairs)


def _same(value: bytes) -> bytes:
    return value


def acs3_header_value(values: Iterable[bytes]) -> bytes:
    """One signed header's canonical value: each value trimmed, sorted, joined by ``,``."""
    return b",".join(sorted(value.strip() for value in values))


def acs3_canonical_request(
    method: bytes,
    uri: bytes,
    query: bytes,
    headers: Sequence[tuple[bytes, bytes]],
    signed_headers: bytes,
    payload_hash: bytes,
) -> bytes:
    """CanonicalRequest; ``headers`` are ``(name, canonical value)`` in SignedHeaders order."""
    # One join: each "name:value" line, then the empty line that ends CanonicalHeaders.
    lines = [method, uri, query, *map(b":".join, headers), b"", signed_headers, payload_hash]
    return b"\n".join(lines)


def acs3_signature(secret: bytes, canonical_request: bytes) -> bytes:
    """Lower-hex HMAC-SHA256 of ``ACS3-HMAC-SHA256\\n`` + lower-hex SHA-256 of the request."""
    digest = hashlib.sha256(canonical_request).hexdigest().encode("ascii")
    string_to_sign = ACS3_ALGORITHM.encode("ascii") + b"\n" + digest
    return _hmac_sha256(secret, string_to_sign).hex().encode("ascii")


def _hmac_sha256(secret: bytes, message: bytes) -> bytes:
    # HMAC (RFC 2104) from the key's two padded SHA-256 states, copied per call. Not
    # hmac.digest(): it looks the digest up in OpenSSL 3 and drops the GIL on every call, which
    # under gthread's threads cost tens of µs per request waiting to get the GIL back. Not a
    # copy of a keyed hmac.HMAC either: its copy(), update() and digest() are Python methods
    # (~0.4 µs more); hashlib's are C and keep the GIL for a short message.
    inner, outer = _hmac_pads(secret)
    inner = inner.copy()
    inner.update(message)
    outer = outer.copy()
    outer.update(inner.digest())
    return outer.digest()


@lru_cache(maxsize=64)
def _hmac_pads(secret: bytes) -> tuple[hashlib._Hash, hashlib._Hash]:
    """SHA-256 states after ``K ^ ipad`` and ``K ^ opad`` of one access key secret (a few
    per gateway)."""
    key = secret if len(secret) <= _SHA256_BLOCK else hashlib.sha256(secret).digest()
    key = key.ljust(_SHA256_BLOCK, b"\0")
    return hashlib.sha256(key.translate(_IPAD)), hashlib.sha256(key.translate(_OPAD))


_SHA256_BLOCK = 64
_IPAD = bytes(x ^ 0x36 for x in range(256))
_OPAD = bytes(x ^ 0x5C for x in range(256))


# -- dates -----------------------------------------------------------------------------------


@lru_cache(maxsize=64)
def parse_http_date(value: str) -> float | None:
    """``Mon, 02 Jan 2006 15:04:05 GMT`` → Unix seconds; ``None`` when it is no HTTP date.

    Cached: a busy gateway sees the same few ``Date`` values in any second.
    """
    parts = value.split()
    try:
        if len(parts) == 6 and parts[5] == "GMT" and (month := _MONTHS.get(parts[2])):
            hour, minute, second = parts[4].split(":")
            fields = (int(parts[3]), month, int(parts[1]), int(hour), int(minute), int(second))
            return float(calendar.timegm(fields))
        parsed = email.utils.parsedate_tz(value)
        return None if parsed is None else float(email.utils.mktime_tz(parsed))
    except (ValueError, OverflowError):
        return None


@lru_cache(maxsize=64)
def parse_acs_date(value: str) -> float | None:
    """``2006-01-02T15:04:05Z`` (UTC) → Unix seconds; ``None`` when malformed."""
    try:
        return float(calendar.timegm(time.strptime(value, "%Y-%m-%dT%H:%M:%SZ")))
    except (ValueError, OverflowError):
        return None


def format_http_date(when: float) -> str:
    return email.utils.formatdate(when, usegmt=True)


def format_acs_date(when: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(when))
