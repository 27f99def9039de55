"""JWK Sets parsed into verification keys: what FC's JWT trigger verifies tokens with.

FC verifies tokens against the public JWKS stored on the trigger (fc-spec.md section 9). We
parse every JWK once, into a key object and the algorithms it may verify: the JWK's ``kty``
(and ``crv``) give the family, its ``alg`` narrows it, the config's allow-list intersects it.
The token's ``alg`` header only picks among those, so ``none`` and HS-with-a-public-key are
impossible by construction. A token's ``kid`` selects the key; a token without ``kid`` uses the
single JWK without one (two ``kid``-less keys are a config error: which one would win?).

Inline and file sets are strict: a bad or unusable key is a :class:`~fc_wsgi._fields.ConfigError`
naming its path (``authConfig.jwks.keys[1].crv: ...``) and never its material. A remote set
(:mod:`fc_wsgi.auth.jwks`) parses leniently instead: an identity provider may publish keys we
cannot use, so those are skipped with a log line. Parsing sits on the ground floor because the
config refuses bad keys when it loads.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jwt.algorithms import get_default_algorithms
from jwt.exceptions import PyJWTError

from ._fields import ConfigError, field_error

log = logging.getLogger(__name__)

#: Every algorithm we verify; also the default allow-list (fc-spec.md section 9).
SUPPORTED_ALGORITHMS: tuple[str, ...] = (
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
    "ES256", "ES384", "ES512", "HS256", "HS384", "HS512", "EdDSA",
)  # fmt: skip

#: RSA keys shorter than this (bits) are refused, as NIST SP 800-131A advises.
MIN_RSA_BITS = 2048

_ALGORITHMS = get_default_algorithms()
_RSA_FAMILY = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")
_HMAC_FAMILY = ("HS256", "HS384", "HS512")
_EC_BY_CURVE = {"P-256": "ES256", "P-384": "ES384", "P-521": "ES512"}
_OKP_CURVES = ("Ed25519", "Ed448")
#: RFC 7518 section 3.2: an HMAC key at least as long as the hash output (bytes).
_HMAC_MIN_BYTES = {"HS256": 32, "HS384": 48, "HS512": 64}
_FROM_JWK = {"RSA": "RS256", "EC": "ES256", "OKP": "EdDSA", "oct": "HS256"}


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


def _shown(value: Any) -> str:
    """A short, quoted rendering of a non-secret value (kid, alg) for messages."""
    text = value if isinstance(value, str) else type(value).__name__
    return repr(text[:40] + "..." if len(text) > 40 else text)


def _json_problem(exc: ValueError) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"{exc.msg} at position {exc.pos}"
    return type(exc).__name__
