"""SignatureVerifier: FC's ``authType: function`` check (fc-spec.md sections 6, 8 and 13).

Three schemes, picked per request as FC does (8.1): ``Authorization: FC <id>:<sig>``, a signed
URL (``x-fc-signature`` in the query) and ``Authorization: ACS3-HMAC-SHA256 ...``. The strings
are rebuilt from the raw environ, never from a parsed request object: the decoded path is
``SCRIPT_NAME + PATH_INFO`` (WSGI's latin-1 text of the bytes sent), ACS3's encoded path is
``RAW_URI`` (gunicorn) or ``REQUEST_URI`` (werkzeug) when the server provides one.

Choices where FC publishes no answer (fc-spec.md 13):

- ``X-Fc-Date`` fills the date slot when both it and ``Date`` are sent, and the skew is checked
  on it. A request with no credentials at all gets FC's "required HTTP header Date" answer
  first, the answer FC gives a bare ``curl``.
- ``sdk_variants=True`` also accepts the strings real SDKs sign where they depart from the
  spec (8.2 "SDK variance"): the query in the order sent (Alibaba's newest Python trigger
  helper does not sort), bare ``key`` signed as ``key=`` (Go), an ACS3 path re-encoded from
  the decoded one and ACS3 names left unencoded (Alibaba's Python util). On by default, since
  FC accepts what its own SDKs sign (13.5); each candidate is checked in constant time and only
  distinct ones are computed.
- Servers join repeated headers with ``,`` in arrival order, so an ACS3 header value holding a
  comma is tried both as one value and as several (split, trimmed, sorted). One of the two is
  what the client signed; neither lets a different request through.
- The ACS3 body is read only when ``x-acs-content-sha256`` is sent, and only after the
  signature matched: read once, bounded by ``Content-Length``, hashed, then replayed to the app
  from memory. The other schemes never touch the body.

Secrets, expected signatures and strings to sign never reach an exception message or a log line.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from functools import lru_cache
from typing import TYPE_CHECKING
from urllib.parse import unquote_to_bytes

from .._wsgi import environ_key, read_body, replay_body
from ..common import MAX_BODY_BYTES, MAX_SKEW_SECONDS, SDK_VARIANTS, SIGNATURE_SCHEMES
from ..errors import (
    AccessDenied,
    InvalidAccessKeyID,
    InvalidArgument,
    MissingRequiredHeader,
    SignatureNotMatch,
)
from .canonical import (
    ACS3_ALGORITHM,
    EMPTY_SHA256,
    Params,
    acs3_canonical_request,
    acs3_header_value,
    acs3_path,
    acs3_query,
    acs3_signature,
    fc_headers,
    fc_resource,
    fc_signature,
    fc_string_to_sign,
    format_acs_date,
    format_http_date,
    parse_acs_date,
    parse_http_date,
    parse_query,
)

if TYPE_CHECKING:
    from wsgiref.types import WSGIEnvironment

    from ..config import AccessKey

log = logging.getLogger(__name__)

#: FC's answer to any signature that does not match (fc-spec.md section 6).
SIGNATURE_NOT_MATCH_MESSAGE = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your access key and signing method"
)
MISSING_DATE_MESSAGE = "required HTTP header Date was not specified"
MISSING_AUTHORIZATION_MESSAGE = "required HTTP header Authorization was not specified"

_SIGNATURE_PARAM = b"x-fc-signature"
_ACS3_PREFIX = ACS3_ALGORITHM + " "
#: ACS3 signed-header names whose environ key has no ``HTTP_`` prefix (PEP 3333).
_UNPREFIXED = {"content-type": "CONTENT_TYPE", "content-length": "CONTENT_LENGTH"}
_EMPTY_SHA256 = EMPTY_SHA256.encode("ascii")


class SignatureVerifier:
    """Verifies FC signature auth on a WSGI environ.

    Built once per trigger and shared by every request and thread: it holds no request state.
    """

    def __init__(
        self,
        access_keys: Sequence[AccessKey],
        *,
        schemes: Iterable[str] = SIGNATURE_SCHEMES,
        max_skew_seconds: int = MAX_SKEW_SECONDS,
        clock: Callable[[], float] = time.time,
        sdk_variants: bool = SDK_VARIANTS,
    ) -> None:
        accepted = frozenset(schemes)
        unknown = accepted.difference(SIGNATURE_SCHEMES)
        if unknown:
            schemes_text = ", ".join(SIGNATURE_SCHEMES)
            raise ValueError(f"unknown signature scheme {sorted(unknown)[0]!r}; use {schemes_text}")
        if not accepted:
            raise ValueError("schemes: accept at least one signature scheme")
        if max_skew_seconds < 0:
            raise ValueError(f"max_skew_seconds must be >= 0, got {max_skew_seconds}")
        # Ids as bytes, the form they arrive in; secrets encoded once, here.
        self._keys = {
            key.id.encode("utf-8"): (key.id, key.secret.encode("utf-8")) for key in access_keys
        }
        self._fc = "fc" in accepted
        self._signed_url = "signed-url" in accepted
        self._acs3 = "acs3" in accepted
        self._max_skew = max_skew_seconds
        self._clock = clock
        self._variants = sdk_variants

    def verify(self, environ: WSGIEnvironment) -> str:
        """Return the AccessKey id that signed the request, or raise an ``FcError``.

        ``MissingRequiredHeader`` (no date, no credentials), ``InvalidAccessKeyID``,
        ``SignatureNotMatch``, ``AccessDenied`` (clock skew, expired URL, scheme not accepted),
        ``InvalidArgument`` (signed URL without its id or expiry). May replace
        ``environ["wsgi.input"]`` with an in-memory copy of the body (ACS3 with a body hash).
        """
        auth: str = environ.get("HTTP_AUTHORIZATION", "")
        if auth[:3] == "FC ":
            return self._verify_fc(environ, auth)
        if auth.startswith(_ACS3_PREFIX):
            return self._verify_acs3(environ, auth)
        raw_query = environ.get("QUERY_STRING", "")
        if raw_query:
            params = parse_query(_wsgi_bytes(raw_query))
            if any(key == _SIGNATURE_PARAM for key, _ in params):
                return self._verify_signed_url(environ, params)
        if auth:  # some other scheme (Basic, Bearer, a typo): FC's generic refusal
            raise SignatureNotMatch(SIGNATURE_NOT_MATCH_MESSAGE)
        if self._fc and not _request_date(environ):
            raise MissingRequiredHeader(MISSING_DATE_MESSAGE)
        raise MissingRequiredHeader(MISSING_AUTHORIZATION_MESSAGE)

    # -- the three schemes -------------------------------------------------------------------

    def _verify_fc(self, environ: WSGIEnvironment, auth: str) -> str:
        if not self._fc:
            raise _refused("fc")
        date = _request_date(environ)
        if not date:
            raise MissingRequiredHeader(MISSING_DATE_MESSAGE)
        key_id, colon, provided = auth[3:].strip().rpartition(":")
        if not colon or not key_id:
            raise SignatureNotMatch(SIGNATURE_NOT_MATCH_MESSAGE)
        name, secret = self._secret(_wsgi_bytes(key_id))
        self._check_time(date, parse_http_date(date), format_http_date)
        strings = _legacy_strings(environ, _wsgi_bytes(date), variants=self._variants)
        self._match(fc_signature, secret, strings, _wsgi_bytes(provided), name, "fc")
        return name

    def _verify_signed_url(self, environ: WSGIEnvironment, params: Params) -> str:
        if not self._signed_url:
            raise _refused("signed-url")
        provided = key_id = expires = None
        signed: Params = []  # every parameter but the signature is signed (fc-spec.md 8.3)
        for key, value in params:
            if key == _SIGNATURE_PARAM:
                if provided is None:
                    provided = value or b""
                continue
            if key == b"x-fc-access-key-id" and key_id is None:
                key_id = value
            elif key == b"x-fc-expires" and expires is None:
                expires = value
            signed.append((key, value))
        if not key_id:
            raise InvalidArgument("required query parameter x-fc-access-key-id was not specified")
        if expires is None:
            raise InvalidArgument("required query parameter x-fc-expires was not specified")
        name, secret = self._secret(key_id)
        try:
            deadline = int(expires)
        except ValueError:
            shown = expires.decode("utf-8", "replace")
            raise AccessDenied(f"invalid x-fc-expires '{shown}'") from None
        if self._clock() > deadline:
            raise AccessDenied(f"the signed URL expired at '{format_http_date(deadline)}'")
        path = _decoded_path(environ)
        resources = [fc_resource(path, signed)]
        if self._variants:
            resources.append(fc_resource(path, signed, bare_as_empty=True))
        strings = _fc_strings(environ, expires, resources)
        # Base64 has '+', which a URL pasted without encoding turns into a space.
        provided = (provided or b"").replace(b" ", b"+")
        self._match(fc_signature, secret, strings, provided, name, "signed-url")
        return name

    def _verify_acs3(self, environ: WSGIEnvironment, auth: str) -> str:
        if not self._acs3:
            raise _refused("acs3")
        key_id, signed, provided = _acs3_fields(auth[len(ACS3_ALGORITHM) :])
        if not (key_id and signed and provided):
            raise SignatureNotMatch(SIGNATURE_NOT_MATCH_MESSAGE)
        name, secret = self._secret(_wsgi_bytes(key_id))
        acs_date = environ.get("HTTP_X_ACS_DATE")
        if not acs_date:
            raise MissingRequiredHeader("required HTTP header x-acs-date was not specified")
        if "x-acs-date" not in signed.lower().split(";"):
            raise AccessDenied("x-acs-date must be one of the SignedHeaders")
        self._check_time(acs_date, parse_acs_date(acs_date), format_acs_date)

        payload = _wsgi_bytes(environ.get("HTTP_X_ACS_CONTENT_SHA256", ""))
        strings = _acs3_strings(environ, signed, payload, variants=self._variants)
        self._match(acs3_signature, secret, strings, _wsgi_bytes(provided.lower()), name, "acs3")
        if payload and not (_EMPTY_SHA256 == payload.lower() and _has_no_body(environ)):
            body = read_body(environ, MAX_BODY_BYTES)
            replay_body(environ, body)
            actual = hashlib.sha256(body).hexdigest().encode("ascii")
            if not hmac.compare_digest(actual, payload.lower()):
                log.debug("acs3 body hash mismatch for access key %s", name)
                raise SignatureNotMatch(SIGNATURE_NOT_MATCH_MESSAGE)
        return name

    # -- shared steps ------------------------------------------------------------------------

    def _secret(self, key_id: bytes) -> tuple[str, bytes]:
        entry = self._keys.get(key_id)
        if entry is None:
            shown = key_id.decode("utf-8", "replace")
            raise InvalidAccessKeyID(f"invalid access key ID '{shown}'")
        return entry

    def _check_time(self, raw: str, when: float | None, fmt: Callable[[float], str]) -> None:
        if when is None:
            raise AccessDenied(f"the request time '{raw}' is not a valid date")
        now = self._clock()
        if abs(now - when) > self._max_skew:
            raise AccessDenied(
                f"the difference between the request time '{raw}' and the current time "
                f"'{fmt(now)}' is too large"
            )

    @staticmethod
    def _match(
        sign: Callable[[bytes, bytes], bytes],
        secret: bytes,
        strings: Iterable[bytes],
        provided: bytes,
        name: str,
        scheme: str,
    ) -> None:
        for string in dict.fromkeys(strings):
            if hmac.compare_digest(sign(secret, string), provided):
                return
        log.debug("%s signature mismatch for access key %s", scheme, name)
        raise SignatureNotMatch(SIGNATURE_NOT_MATCH_MESSAGE)


# -- environ readers (module level: the verifier holds no per-request state) -----------------


def _wsgi_bytes(text: str) -> bytes:
    """The bytes behind a PEP 3333 string (latin-1); UTF-8 for a non-conforming caller."""
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        return text.encode("utf-8")


def _request_date(environ: WSGIEnvironment) -> str:
    # X-Fc-Date wins over Date when both are sent (fc-spec.md 13.4).
    return environ.get("HTTP_X_FC_DATE") or environ.get("HTTP_DATE") or ""


def _decoded_path(environ: WSGIEnvironment) -> bytes:
    path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
    return _wsgi_bytes(path) or b"/"


def _raw_path(environ: WSGIEnvironment) -> bytes | None:
    """The path as sent, percent-encoding intact, when the server kept the request target."""
    uri = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if not uri:
        return None
    path = uri.partition("?")[0].partition("#")[0]
    if not path.startswith("/"):  # absolute-form target: drop scheme and authority
        authority = path.find("://")
        if authority < 0:
            return None
        slash = path.find("/", authority + 3)
        path = path[slash:] if slash >= 0 else "/"
    return _wsgi_bytes(path)


def _legacy_strings(environ: WSGIEnvironment, date: bytes, *, variants: bool) -> list[bytes]:
    """What an ``Authorization: FC`` request may have signed: the spec's string first."""
    raw_query = _wsgi_bytes(environ.get("QUERY_STRING", ""))
    path = _decoded_path(environ)
    if not raw_query:  # the usual request: the resource is the path and an empty line
        return _fc_strings(environ, date, (path + b"\n",))
    params = parse_query(raw_query)
    resources = [fc_resource(path, params)]
    if variants:
        resources.append(fc_resource(path, params, bare_as_empty=True))
        # Alibaba's gateway helper: unquote the whole query, split on "&", keep the order.
        resources.append(path + b"\n" + b"\n".join(unquote_to_bytes(raw_query).split(b"&")))
    return _fc_strings(environ, date, resources)


def _acs3_strings(
    environ: WSGIEnvironment, signed: str, payload: bytes, *, variants: bool
) -> list[bytes]:
    """Candidate CanonicalRequests of an ACS3 request: the spec's form first."""
    method = _wsgi_bytes(environ["REQUEST_METHOD"])
    decoded_path = _decoded_path(environ)
    raw_path = _raw_path(environ)
    uris = [raw_path or acs3_path(decoded_path)]
    raw_query = environ.get("QUERY_STRING", "")
    params = parse_query(_wsgi_bytes(raw_query)) if raw_query else []
    queries = [acs3_query(params) if params else b""]
    if variants:
        # Re-encoding the decoded path gives back the path sent when it is that path and
        # holds no character to encode; unencoded names differ only when there are names.
        if raw_path is not None and not (raw_path == decoded_path and _plain_path(raw_path)):
            uris.append(acs3_path(decoded_path))
        if params:
            queries.append(acs3_query(params, encode_names=False))
    signed_bytes = _wsgi_bytes(signed)
    headers = _acs3_headers(environ, signed)
    if len(uris) == len(queries) == len(headers) == 1:
        return [
            acs3_canonical_request(method, uris[0], queries[0], headers[0], signed_bytes, payload)
        ]
    return [
        acs3_canonical_request(method, uri, query, pairs, signed_bytes, payload)
        for uri, query, pairs in itertools.product(
            dict.fromkeys(uris), dict.fromkeys(queries), headers
        )
    ]


def _plain_path(path: bytes) -> bool:
    """True when ``acs3_path`` of this path, decoded, gives it back unchanged."""
    return path.isascii() and not path.translate(None, _PATH_KEPT)


#: The bytes ``acs3_path`` keeps as they are: RFC 3986 unreserved characters and ``/``.
_PATH_KEPT = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~/"


def _fc_strings(environ: WSGIEnvironment, date: bytes, resources: Iterable[bytes]) -> list[bytes]:
    get = environ.get
    # One C-level join tells whether any x-fc-* header came; most requests carry none.
    headers = b""
    if "HTTP_X_FC_" in "\0".join(environ):
        headers = fc_headers(
            (key[5:].lower().replace("_", "-").encode("latin-1"), _wsgi_bytes(environ[key]))
            for key in environ
            if key.startswith("HTTP_X_FC_")
        )
    method = _wsgi_bytes(environ["REQUEST_METHOD"])
    content_md5 = _wsgi_bytes(get("HTTP_CONTENT_MD5", ""))
    content_type = _wsgi_bytes(get("CONTENT_TYPE", ""))
    return [
        fc_string_to_sign(method, content_md5, content_type, date, headers, resource)
        for resource in resources
    ]


def _acs3_headers(environ: WSGIEnvironment, signed: str) -> list[list[tuple[bytes, bytes]]]:
    """The signed headers as sent, and (if any value has a comma) as several joined values."""
    as_sent: list[tuple[bytes, bytes]] = []
    split: list[tuple[bytes, bytes]] | None = None
    for encoded_name, key in _signed_keys(signed):
        value = environ.get(key)
        if value is None:  # a listed header that was not sent cannot have been signed
            raise SignatureNotMatch(SIGNATURE_NOT_MATCH_MESSAGE)
        raw = _wsgi_bytes(value)
        as_sent.append((encoded_name, raw.strip()))
        if b"," in raw and split is None:
            split = as_sent[:-1]
        if split is not None:
            split.append((encoded_name, acs3_header_value(raw.split(b","))))
    return [as_sent] if split is None or split == as_sent else [as_sent, split]


@lru_cache(maxsize=64)
def _signed_keys(signed: str) -> tuple[tuple[bytes, str], ...]:
    """SignedHeaders → (name as signed, environ key) pairs; a client sends the same few lists."""
    keys = []
    for name in signed.split(";"):
        lower = name.lower()
        keys.append((_wsgi_bytes(name), _UNPREFIXED.get(lower) or environ_key(lower)))
    return tuple(keys)


def _acs3_fields(text: str) -> tuple[str | None, str | None, str | None]:
    """Credential, SignedHeaders and Signature of an ACS3 ``Authorization`` (after its name)."""
    items = text.split(",")
    if len(items) == 3:  # the form every SDK sends, read as the loop below would read it
        credential, signed, signature = items[0].strip(), items[1].strip(), items[2].strip()
        if (
            credential[:11] == "Credential="
            and signed[:14] == "SignedHeaders="
            and signature[:10] == "Signature="
        ):
            return credential[11:].strip(), signed[14:].strip(), signature[10:].strip()
    fields = {}
    for item in items:
        field, _, value = item.strip().partition("=")
        fields[field] = value.strip()
    return fields.get("Credential"), fields.get("SignedHeaders"), fields.get("Signature")


def _has_no_body(environ: WSGIEnvironment) -> bool:
    """No ``Content-Length`` (or 0) and no ``Transfer-Encoding``: HTTP/1.1 frames a request
    body only with one of the two (RFC 9112 6.3), so there is nothing to read or replay."""
    return environ.get("CONTENT_LENGTH", "0") in ("", "0") and not environ.get(
        "HTTP_TRANSFER_ENCODING"
    )


def _refused(scheme: str) -> AccessDenied:
    return AccessDenied(f"signature scheme {scheme} is not accepted by this trigger")
