"""JWK Sets for FC's JWT triggers: inline (FC's ``jwks``), from a file, or from a URL.

FC verifies tokens against the public JWKS stored on the trigger (fc-spec.md section 9). We
parse every JWK once, into a key object and the algorithms it may verify: the JWK's ``kty``
(and ``crv``) give the family, its ``alg`` narrows it, the config's allow-list intersects it.
The token's ``alg`` header only picks among those, so ``none`` and HS-with-a-public-key are
impossible by construction. A token's ``kid`` selects the key; a token without ``kid`` uses the
single JWK without one (two ``kid``-less keys are a config error: which one would win?).

Inline and file sets are strict: a bad or unusable key is a :class:`~fc_wsgi.config.ConfigError`
naming its path (``authConfig.jwks.keys[1].crv: ...``) and never its material. A remote set
(``jwksUrl``, our extension) is lenient instead: an identity provider may publish keys we
cannot use, so those are skipped with a log line. Remote keys are fetched lazily on first use
(the app starts even when the provider is down), cached for ``jwksCacheSeconds``, and fetched
again at most once per ``jwksRefreshCooldownSeconds`` when an unknown ``kid`` appears, so random
``kid`` values cannot turn into a fetch storm. A failed refresh keeps the last good keys.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jwt.algorithms import get_default_algorithms
from jwt.exceptions import PyJWTError

from fc_wsgi.config import ConfigError, field_error
from fc_wsgi.errors import FcError

log = logging.getLogger(__name__)

#: Every algorithm we verify; also the default allow-list (fc-spec.md section 9).
SUPPORTED_ALGORITHMS: tuple[str, ...] = (
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
    "ES256", "ES384", "ES512", "HS256", "HS384", "HS512", "EdDSA",
)  # fmt: skip

#: A fetched JWKS document larger than this (bytes) is refused.
MAX_JWKS_BYTES = 1024 * 1024

#: RSA keys shorter than this (bits) are refused, as NIST SP 800-131A advises.
MIN_RSA_BITS = 2048

FetchJwks = Callable[[str, float], bytes]
Clock = Callable[[], float]

_ALGORITHMS = get_default_algorithms()
_RSA_FAMILY = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")
_HMAC_FAMILY = ("HS256", "HS384", "HS512")
_EC_BY_CURVE = {"P-256": "ES256", "P-384": "ES384", "P-521": "ES512"}
_OKP_CURVES = ("Ed25519", "Ed448")
#: RFC 7518 section 3.2: an HMAC key at least as long as the hash output (bytes).
_HMAC_MIN_BYTES = {"HS256": 32, "HS384": 48, "HS512": 64}
_FROM_JWK = {"RSA": "RS256", "EC": "ES256", "OKP": "EdDSA", "oct": "HS256"}


class KeysUnavailable(FcError):
    """No JWKS could be fetched yet: the gateway cannot verify anything (500, not 401)."""

    status = "500 Internal Server Error"
    code = "InternalServerError"


@dataclass(frozen=True)
class VerifyKey:
    """One parsed JWK: the key object and the algorithms it may verify."""

    kid: str | None
    algorithms: frozenset[str]
    key: Any = field(repr=False)


class KeySet:
    """An immutable set of verification keys, looked up by ``kid``."""

    #: Bumped by a remote set when its keys change; cached tokens from before are re-verified.
    generation = 0

    def __init__(self, keys: Iterable[VerifyKey]) -> None:
        self._by_kid: dict[str, VerifyKey] = {}
        self._kidless: VerifyKey | None = None
        for key in keys:
            if key.kid is None:
                self._kidless = key
            else:
                self._by_kid[key.kid] = key

    def get(self, kid: str | None) -> VerifyKey | None:
        if kid is None:
            return self._kidless
        return self._by_kid.get(kid)

    def current_generation(self) -> int:
        return self.generation

    def __len__(self) -> int:
        return len(self._by_kid) + (self._kidless is not None)

    def __repr__(self) -> str:  # kids only: never key material
        kidless = ", kidless" if self._kidless is not None else ""
        return f"KeySet(kids={sorted(self._by_kid)!r}{kidless})"


def parse_jwks(raw: Any, path: str, *, algorithms: Iterable[str], strict: bool = True) -> KeySet:
    """Parse a JWK Set (``{"keys": [...]}``, or its JSON text) into a :class:`KeySet`.

    ``strict``: any unusable key is a ConfigError. Otherwise such keys are skipped and logged;
    a set with no usable key, or with two ``kid``-less keys, is an error either way.
    """
    if isinstance(raw, (str, bytes)):
        try:
            raw = json.loads(raw)
        except ValueError as exc:
            raise field_error(path, f"is not valid JSON ({_json_problem(exc)})") from None
    if not isinstance(raw, Mapping):
        raise field_error(path, 'must be a JWK Set object {"keys": [...]}')
    items = raw.get("keys")
    if not isinstance(items, list):
        raise field_error(f"{path}.keys", "must be an array of JWKs")
    allowed = frozenset(algorithms)
    keys: list[VerifyKey] = []
    seen: dict[str | None, int] = {}
    for i, item in enumerate(items):
        where = f"{path}.keys[{i}]"
        try:
            key = _parse_jwk(item, where, allowed)
        except ConfigError as exc:
            if strict:
                raise
            log.warning("JWKS key skipped: %s", exc)
            continue
        if key is None:
            continue
        if key.kid in seen:
            if key.kid is None:
                raise field_error(where, f"a second key without kid (first: keys[{seen[None]}])")
            if strict:
                raise field_error(f"{where}.kid", f"duplicate kid {_shown(key.kid)}")
            log.warning("JWKS key skipped: %s.kid: duplicate kid", where)
            continue
        seen[key.kid] = i
        keys.append(key)
    if not keys:
        raise field_error(f"{path}.keys", "no usable signature key")
    return KeySet(keys)


def load_jwks_file(file: str, path: str, *, algorithms: Iterable[str]) -> KeySet:
    """Read and parse a JWKS file once, at config load; changes need a restart."""
    try:
        text = Path(file).read_text(encoding="utf-8")
    except OSError as exc:
        raise field_error(path, f"cannot read {file} ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise field_error(path, f"{file} is not UTF-8 text") from None
    return parse_jwks(text, path, algorithms=algorithms)


def fetch_jwks_url(url: str, timeout: float) -> bytes:
    """GET ``url`` with ``timeout`` seconds per socket operation; bodies are size-bounded."""
    request = urllib.request.Request(
        url, headers={"Accept": "application/json", "User-Agent": "fc-wsgi"}
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:  # http(s): checked at load
        body: bytes = response.read(MAX_JWKS_BYTES + 1)
    if len(body) > MAX_JWKS_BYTES:
        raise ValueError(f"JWKS document larger than {MAX_JWKS_BYTES} bytes")
    return body


class RemoteKeySet:
    """Keys from a JWKS URL: fetched lazily, cached, refreshed under a cooldown.

    Thread-safe for gthread workers: one thread fetches while the others keep serving the
    last good keys (only the very first fetch makes other threads wait).
    """

    def __init__(
        self,
        url: str,
        *,
        algorithms: Iterable[str],
        fetch: FetchJwks | None = None,
        cache_seconds: float = 300,
        cooldown_seconds: float = 30,
        timeout_seconds: float = 5,
        clock: Clock = time.monotonic,
        label: str = "authConfig.jwksUrl",
    ) -> None:
        self.url = url
        self._algorithms = frozenset(algorithms)
        self._fetch = fetch or fetch_jwks_url
        self._cache_seconds = cache_seconds
        self._cooldown_seconds = cooldown_seconds
        self._timeout_seconds = timeout_seconds
        self._clock = clock
        self._label = label
        self._safe_url = _redacted(url)  # for logs: no userinfo, no query
        self._lock = threading.Lock()
        self._keys: KeySet | None = None
        self._digest = b""
        self._stale_at = float("-inf")
        self._next_attempt_at = float("-inf")
        self.generation = 0

    def get(self, kid: str | None) -> VerifyKey | None:
        """The key for ``kid``; an unknown ``kid`` triggers one refresh per cooldown."""
        now = self._clock()
        keys = self._keys
        if keys is None or now >= self._stale_at:
            keys = self._refresh(now)
        key = keys.get(kid) if keys is not None else None
        if key is None and keys is not None:
            keys = self._refresh(now)
            key = keys.get(kid) if keys is not None else None
        if keys is None:
            raise KeysUnavailable("JWT keys are unavailable: the JWKS URL could not be fetched")
        return key

    def current_generation(self) -> int:
        """The keys' generation; also schedules the periodic refresh for hot cached tokens."""
        now = self._clock()
        if self._keys is None or now >= self._stale_at:
            self._refresh(now)
        return self.generation

    def refresh(self) -> bool:
        """Fetch now, ignoring the cache and the cooldown (e.g. at startup); True on success."""
        with self._lock:
            return self._fetch_locked(self._clock())

    def _refresh(self, now: float) -> KeySet | None:
        if now < self._next_attempt_at:
            return self._keys  # cooling down: serve what we have
        # Only the first fetch blocks other threads; later ones serve the last good keys.
        if not self._lock.acquire(blocking=self._keys is None):
            return self._keys
        try:
            if now >= self._next_attempt_at:  # another thread may have just fetched
                self._fetch_locked(now)
        finally:
            self._lock.release()
        return self._keys

    def _fetch_locked(self, now: float) -> bool:
        self._next_attempt_at = now + self._cooldown_seconds
        try:
            body = self._fetch(self.url, self._timeout_seconds)
            digest = hashlib.sha256(body).digest()
            if digest != self._digest:
                keys = parse_jwks(body, self._label, algorithms=self._algorithms, strict=False)
                self._keys, self._digest = keys, digest
                self.generation += 1
        except Exception as exc:  # any failure keeps the last good keys
            if self._keys is None:
                log.error("JWKS fetch from %s failed: %s", self._safe_url, _reason(exc))
            else:
                log.warning(
                    "JWKS refresh from %s failed: %s; keeping the %d last good keys",
                    self._safe_url, _reason(exc), len(self._keys),
                )  # fmt: skip
            return False
        self._stale_at = now + self._cache_seconds
        return True


# -- one JWK -----------------------------------------------------------------------------------


def _parse_jwk(jwk: Any, path: str, allowed: frozenset[str]) -> VerifyKey | None:
    if not isinstance(jwk, Mapping):
        raise field_error(path, "must be a JWK object")
    use, ops = jwk.get("use"), jwk.get("key_ops")
    if use is not None and use != "sig":
        return None  # an encryption key: not ours to use
    if ops is not None and (not isinstance(ops, list) or "verify" not in ops):
        return None
    kid = jwk.get("kid")
    if kid is not None and (not isinstance(kid, str) or not kid):
        raise field_error(f"{path}.kid", "must be a non-empty string")
    kty = jwk.get("kty")
    if kty == "RSA":
        candidates: tuple[str, ...] = _RSA_FAMILY
    elif kty == "EC":
        alg = _EC_BY_CURVE.get(jwk.get("crv"))  # type: ignore[arg-type]
        if alg is None:
            raise field_error(f"{path}.crv", f"must be one of {', '.join(_EC_BY_CURVE)}")
        candidates = (alg,)
    elif kty == "OKP":
        if jwk.get("crv") not in _OKP_CURVES:
            raise field_error(f"{path}.crv", f"must be one of {', '.join(_OKP_CURVES)}")
        candidates = ("EdDSA",)
    elif kty == "oct":
        candidates = _HMAC_FAMILY
    else:
        raise field_error(f"{path}.kty", "must be one of RSA, EC, OKP, oct")
    alg = jwk.get("alg")
    if alg is not None:
        if alg not in candidates:
            raise field_error(f"{path}.alg", f"{_shown(alg)} does not fit a {kty} key")
        candidates = (alg,)
    try:
        key = _ALGORITHMS[_FROM_JWK[kty]].from_jwk(dict(jwk))
    except (PyJWTError, ValueError, TypeError, KeyError):
        # PyJWT's messages may quote the JWK: say only which key is bad.
        raise field_error(path, f"is not a valid {kty} key") from None
    if hasattr(key, "public_key"):  # a private key: PyJWT read "d"
        log.warning("%s holds private key material; only its public part is used", path)
        key = key.public_key()
    if kty == "RSA" and key.key_size < MIN_RSA_BITS:
        raise field_error(path, f"RSA key of {key.key_size} bits is below {MIN_RSA_BITS} bits")
    if kty == "oct":
        usable = tuple(a for a in candidates if len(key) >= _HMAC_MIN_BYTES[a])
        if not usable:
            need = _HMAC_MIN_BYTES[candidates[0]]
            raise field_error(
                path, f"HMAC key of {len(key)} bytes is below {need} bytes (RFC 7518 3.2)"
            )
        candidates = usable
    algorithms = frozenset(candidates) & allowed
    if not algorithms:
        raise field_error(path, f"none of its algorithms ({', '.join(candidates)}) is allowed")
    for name in algorithms:
        _ALGORITHMS[name].prepare_key(key)  # fails now rather than on a request
    return VerifyKey(kid, algorithms, key)


# -- helpers -----------------------------------------------------------------------------------


def _shown(value: Any) -> str:
    """A short, quoted rendering of a non-secret value (kid, alg) for messages."""
    text = value if isinstance(value, str) else type(value).__name__
    return repr(text[:40] + "..." if len(text) > 40 else text)


def _json_problem(exc: ValueError) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"{exc.msg} at position {exc.pos}"
    return type(exc).__name__


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _redacted(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, "", ""))
