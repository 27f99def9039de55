"""JWT authentication as FC's HTTP triggers do it (``authType: "jwt"``, fc-spec.md 2, 9, 13.13).

Reproduces FC's ``authConfig`` (parsed by :mod:`fc_wsgi.jwt_config`): the token is looked up in
``tokenLookup`` order (a header with its prefix, a cookie, a query parameter, a form field),
verified against the trigger's JWKS (inline or from a file: :mod:`fc_wsgi.jwkset`; from a URL:
:mod:`fc_wsgi.auth.jwks`), and selected claims are handed to the function (``claimPassBy``,
:mod:`fc_wsgi.auth.claims`); the ``whitelist`` / ``blacklist`` path rules say where a token is
needed (``/a/*`` is the prefix ``/a/``, and does not match ``/a``). Failures are FC's 401
``InvalidToken`` with ``WWW-Authenticate: Bearer``, and never echo the token.

Trade-offs:

- Verified tokens are cached (:mod:`fc_wsgi.auth.tokens`): a token without ``exp`` is cached
  for ``NO_EXP_CACHE_SECONDS``, so a key removed from a remote JWKS stops it within that time.
- A pass-through name is cleared of client-sent values on every request, including paths that
  need no token, so the app can trust it came from the gateway.
- Form lookup and form pass-through read an urlencoded body once (:mod:`fc_wsgi.auth.form`).
- Path rules read ``PATH_INFO``. A path with ``.`` segments or ``//`` skips the token only if
  its normalised form skips it too: ``/public/../admin`` is not public.
"""

from __future__ import annotations

import json
import math
import posixpath
import re
import time
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from jwt.api_jws import PyJWS
from jwt.exceptions import InvalidSignatureError, PyJWTError

from .._fields import field_error
from .._wsgi import environ_key
from ..common import Clock
from ..errors import InvalidArgument, InvalidToken
from .claims import (
    ClaimNotPassable,
    cookie_quote,
    cookie_value,
    form_quote,
    header_text,
    pairs,
    query_quote,
    query_value,
    rewrite_cookie,
    rewrite_query,
    set_query,
)
from .form import MAX_FORM_BYTES, Form, form_value, rewrite_form
from .jwks import FetchJwks, RemoteKeySet
from .tokens import Grant, TokenCache

if TYPE_CHECKING:
    from wsgiref.types import WSGIEnvironment

    from ..jwkset import KeySet
    from ..jwt_config import JwtAuthConfig

#: Tokens longer than this (characters) are refused before any parsing.
MAX_TOKEN_BYTES = 16 * 1024
#: How long a verified token without ``exp`` stays cached, in seconds.
NO_EXP_CACHE_SECONDS = 60.0
#: The verified claims (a read-only mapping) are left here for the app.
CLAIMS_ENVIRON_KEY = "fc.jwt_claims"

_SLASHES = re.compile(r"/{2,}")
_MISSING_CHALLENGE = (("WWW-Authenticate", 'Bearer realm="fc"'),)


class JwtVerifier:
    """Checks one request against a trigger's ``authConfig``; shared by all threads.

    ``clock`` is the wall clock for ``exp``/``nbf``/``iat`` and the token cache. JWKS refresh
    intervals use ``time.monotonic``, unless a clock is injected: then it drives both, so a
    test moves one clock.
    """

    def __init__(
        self,
        config: JwtAuthConfig,
        *,
        fetch_jwks: FetchJwks | None = None,
        clock: Clock = time.time,
    ) -> None:
        self.config = config
        self._clock = clock
        self._keys: KeySet | RemoteKeySet
        if config.jwks is not None:
            self._keys = config.jwks
        elif config.jwks_url:
            self._keys = RemoteKeySet(
                config.jwks_url,
                algorithms=config.algorithms,
                fetch=fetch_jwks,
                cache_seconds=config.jwks_cache_seconds,
                cooldown_seconds=config.jwks_refresh_cooldown_seconds,
                timeout_seconds=config.jwks_timeout_seconds,
                clock=time.monotonic if clock is time.time else clock,
            )
        else:
            raise field_error("authConfig", "needs one of jwks, jwksUrl, jwksFile (the JWT keys)")
        # PyJWS drops every algorithm outside the allow-list from its registry ("none" too).
        self._jws = PyJWS(algorithms=list(config.algorithms))
        self._leeway = config.leeway_seconds
        self._issuers = frozenset(config.issuer)
        self._audiences = frozenset(config.audience)
        self._cache = TokenCache()

        rules = config.whitelist or config.blacklist
        # None: every path needs a token; True: listed paths need one; False: they skip it.
        self._path_rule: bool | None = bool(config.blacklist) if rules else None
        self._exact = frozenset(p for p in rules if not p.endswith("/*"))
        self._prefixes = tuple(p[:-1] for p in rules if p.endswith("/*"))

        self._lookup = tuple(
            (s.kind, environ_key(s.name) if s.kind == "header" else s.name, s.prefix.lower())
            for s in config.token_lookup
        )
        by = config.claim_pass_by
        self._header_passes = tuple(
            (environ_key(p.mapped_name), p.claim) for p in by if p.position == "header"
        )
        self._cookie_passes = tuple((p.mapped_name, p.claim) for p in by if p.position == "cookie")
        self._query_passes = tuple((p.mapped_name, p.claim) for p in by if p.position == "query")
        self._form_passes = tuple((p.mapped_name, p.claim) for p in by if p.position == "form")
        self._cookie_names = frozenset(name for name, _ in self._cookie_passes)
        self._query_names = frozenset(name for name, _ in self._query_passes)
        self._form_names = frozenset(name.encode() for name, _ in self._form_passes)
        self._uses_form = bool(self._form_passes) or any(s[0] == "form" for s in self._lookup)
        self._passes_anything = bool(by)

    def authenticate(self, environ: WSGIEnvironment) -> None:
        """Let the request through (claims passed on) or raise :class:`InvalidToken`."""
        form = Form(environ) if self._uses_form else None
        if not self.requires_token(environ.get("PATH_INFO") or "/"):
            if self._passes_anything:
                self._pass_claims(environ, None, form)
            return
        token = self._find_token(environ, form)
        if not token:
            raise InvalidToken("missing token", headers=_MISSING_CHALLENGE)
        if len(token) > MAX_TOKEN_BYTES:
            raise _invalid("token is too large")
        now = self._clock()
        grant = self._cache.get(token, now, self._keys.current_generation())
        if grant is None:
            grant = self._verify(token, now)
            if grant.expires_at > now:
                self._cache.put(token, grant)
        if self._passes_anything:
            self._pass_claims(environ, grant, form)
        environ[CLAIMS_ENVIRON_KEY] = grant.claims

    def requires_token(self, path: str) -> bool:
        """FC's path rules: ``/a/*`` is the prefix ``/a/``; anything else is an exact path."""
        rule = self._path_rule
        if rule is None:
            return True
        needed = self._listed(path) is rule
        if not needed and ("/." in path or "//" in path):
            needed = self._listed(_normalized(path)) is rule
        return needed

    def _listed(self, path: str) -> bool:
        return path in self._exact or path.startswith(self._prefixes)

    # -- finding the token ---------------------------------------------------------------------

    def _find_token(self, environ: WSGIEnvironment, form: Form | None) -> str | None:
        for kind, name, prefix in self._lookup:
            if kind == "header":
                value = environ.get(name)
                if value is None:
                    continue
                value = value.strip()
                if prefix:
                    if value[: len(prefix)].lower() != prefix:
                        continue
                    value = value[len(prefix) :].strip()
            elif kind == "cookie":
                value = cookie_value(environ.get("HTTP_COOKIE", ""), name)
            elif kind == "query":
                value = query_value(environ.get("QUERY_STRING", ""), name)
            else:
                body = form.body() if form is not None else None
                value = form_value(body, name) if body else None
            if value:
                return value
        return None

    # -- verifying it --------------------------------------------------------------------------

    def _verify(self, token: str, now: float) -> Grant:
        generation = self._keys.current_generation()
        try:
            header = self._jws.get_unverified_header(token)
        except PyJWTError as exc:
            raise _invalid("token is malformed") from exc
        alg, kid = header.get("alg"), header.get("kid")
        if not isinstance(alg, str):
            raise _invalid("token is malformed")
        key = self._keys.get(kid)
        if key is None:
            raise _invalid("token key is unknown" if kid is not None else "token has no kid")
        if alg not in key.algorithms:  # the key, not the token, decides the algorithm
            raise _invalid("token algorithm is not allowed")
        try:
            decoded = self._jws.decode_complete(token, key.key, algorithms=(alg,))
            claims = json.loads(decoded["payload"])
        except InvalidSignatureError as exc:
            raise _invalid("token signature is invalid") from exc
        except (PyJWTError, ValueError) as exc:
            raise _invalid("token is malformed") from exc
        if not isinstance(claims, dict):
            raise _invalid("token is malformed")
        exp = self._check_times(claims, now)
        if self._issuers:
            iss = claims.get("iss")
            if not isinstance(iss, str) or iss not in self._issuers:
                raise _invalid("token issuer is not accepted")
        if self._audiences and not self._audience_ok(claims.get("aud")):
            raise _invalid("token audience is not accepted")
        return Grant(
            expires_at=exp if exp is not None else now + NO_EXP_CACHE_SECONDS,
            generation=generation,
            claims=MappingProxyType(claims),
            headers=self._header_values(claims),
            cookies=pairs(claims, self._cookie_passes, cookie_quote),
            queries=pairs(claims, self._query_passes, query_quote),
            forms=tuple(p.encode() for p in pairs(claims, self._form_passes, form_quote)),
        )

    def _header_values(self, claims: dict[str, Any]) -> tuple[str | None, ...]:
        try:
            return tuple(header_text(claims, claim) for _, claim in self._header_passes)
        except ClaimNotPassable as exc:
            raise _invalid(str(exc)) from None

    def _check_times(self, claims: dict[str, Any], now: float) -> float | None:
        leeway = self._leeway
        exp, nbf, iat = (_time_claim(claims, name) for name in ("exp", "nbf", "iat"))
        if exp is not None and now >= exp + leeway:
            raise _invalid("token has expired")
        if (nbf is not None and now + leeway < nbf) or (iat is not None and now + leeway < iat):
            raise _invalid("token is not yet valid")
        return exp

    def _audience_ok(self, aud: Any) -> bool:
        if isinstance(aud, str):
            return aud in self._audiences
        if isinstance(aud, list):
            return any(isinstance(a, str) and a in self._audiences for a in aud)
        return False

    # -- passing claims on ---------------------------------------------------------------------

    def _pass_claims(
        self, environ: WSGIEnvironment, grant: Grant | None, form: Form | None
    ) -> None:
        """Set the mapped names from ``grant``, or (no grant) only clear client-sent values."""
        for i, (key, _) in enumerate(self._header_passes):
            value = grant.headers[i] if grant is not None else None
            if value is None:
                environ.pop(key, None)
            else:
                environ[key] = value
        if self._cookie_passes:
            added = grant.cookies if grant is not None else ()
            cookie = environ.get("HTTP_COOKIE", "")
            if added or any(name in cookie for name in self._cookie_names):
                cookie = rewrite_cookie(cookie, self._cookie_names, added)
                if cookie:
                    environ["HTTP_COOKIE"] = cookie
                else:
                    environ.pop("HTTP_COOKIE", None)
        if self._query_passes:
            added = grant.queries if grant is not None else ()
            query = environ.get("QUERY_STRING", "")
            if added or ("%" in query or "+" in query or _any_in(self._query_names, query)):
                set_query(environ, rewrite_query(query, self._query_names, added))
        if self._form_passes and form is not None:
            body = form.body()
            if form.too_large:
                raise InvalidArgument(
                    f"a form body over {MAX_FORM_BYTES} bytes cannot carry passed-through claims"
                )
            if body is not None:
                forms = grant.forms if grant is not None else ()
                form.replace(rewrite_form(body, self._form_names, forms))


def _invalid(message: str) -> InvalidToken:
    challenge = f'Bearer realm="fc", error="invalid_token", error_description="{message}"'
    return InvalidToken(message, headers=(("WWW-Authenticate", challenge),))


def _time_claim(claims: dict[str, Any], name: str) -> float | None:
    if name not in claims:
        return None
    value = claims[name]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _invalid("token claims are malformed")
    if isinstance(value, float) and not math.isfinite(value):
        raise _invalid("token claims are malformed")
    return value


def _normalized(path: str) -> str:
    norm = posixpath.normpath(_SLASHES.sub("/", path))
    return norm + "/" if path.endswith("/") and not norm.endswith("/") else norm


def _any_in(names: frozenset[str], text: str) -> bool:
    return any(name in text for name in names)
