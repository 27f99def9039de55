"""JWT authentication as FC's HTTP triggers do it (``authType: "jwt"``, fc-spec.md 2, 9, 13.13).

Reproduces FC's ``authConfig``: the token is looked up in ``tokenLookup`` order (a header with
its prefix, a cookie, a query parameter, a form field), verified against the trigger's JWKS
(``auth/jwks.py``), and selected claims are handed to the function (``claimPassBy``); the
``whitelist`` / ``blacklist`` path rules say where a token is needed (``/a/*`` is the prefix
``/a/``, and does not match ``/a``). Our extensions: ``jwksUrl`` / ``jwksFile``, an algorithm
allow-list, ``leewaySeconds``, ``issuer`` and ``audience``. Failures are FC's 401
``InvalidToken`` with ``WWW-Authenticate: Bearer``, and never echo the token.

Trade-offs:

- Verified tokens are cached by their exact text in a bounded LRU until ``exp``: a repeated
  token costs a dict lookup. An entry never outlives ``exp`` (a token inside the leeway is
  verified again) nor a JWKS change; a token without ``exp`` is cached for
  ``NO_EXP_CACHE_SECONDS``, so a key removed from a remote JWKS stops it within that time.
- A pass-through name is cleared of client-sent values on every request, including paths that
  need no token, so the app can trust it came from the gateway. A claim with control
  characters is refused (401) rather than encoded into a header; cookie values are
  percent-encoded where RFC 6265 forbids a character; non-string claims become JSON text.
- Form lookup and form pass-through read an urlencoded body once (at most ``MAX_FORM_BYTES``)
  and replay it through a fresh ``wsgi.input``.
- Path rules read ``PATH_INFO``. A path with ``.`` segments or ``//`` skips the token only if
  its normalised form skips it too: ``/public/../admin`` is not public.
"""

from __future__ import annotations

import io
import json
import math
import posixpath
import re
import threading
import time
import urllib.parse
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal

from jwt.api_jws import PyJWS
from jwt.exceptions import InvalidSignatureError, PyJWTError

from fc_wsgi._wsgi import environ_key
from fc_wsgi.auth.jwks import (
    SUPPORTED_ALGORITHMS,
    FetchJwks,
    KeySet,
    RemoteKeySet,
    load_jwks_file,
    parse_jwks,
)
from fc_wsgi.config import field_error, parse_text, type_name
from fc_wsgi.errors import InvalidArgument, InvalidToken

if TYPE_CHECKING:
    from wsgiref.types import WSGIEnvironment

#: Tokens longer than this (characters) are refused before any parsing.
MAX_TOKEN_BYTES = 16 * 1024
#: Verified tokens kept in the cache; tokens over MAX_CACHED_TOKEN_BYTES are never cached.
TOKEN_CACHE_ENTRIES = 4096
MAX_CACHED_TOKEN_BYTES = 4096
#: How long a verified token without ``exp`` stays cached, in seconds.
NO_EXP_CACHE_SECONDS = 60.0
#: Largest urlencoded body read for form lookup or form pass-through, in bytes.
MAX_FORM_BYTES = 1024 * 1024
#: The verified claims (a read-only mapping) are left here for the app.
CLAIMS_ENVIRON_KEY = "fc.jwt_claims"

TokenKind = Literal["header", "cookie", "query", "form"]
Clock = Callable[[], float]

_KINDS = ("header", "cookie", "query", "form")
_FORM_TYPE = "application/x-www-form-urlencoded"
_HTTP_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+\Z")
_HEADER_CTL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
#: RFC 6265 cookie-octets, less "%" so that percent-decoding is unambiguous.
_COOKIE_SAFE = "!#$&'()*+-./:<=>?@[]^_`{|}~"
_SLASHES = re.compile(r"/{2,}")
_MISSING_CHALLENGE = (("WWW-Authenticate", 'Bearer realm="fc"'),)


@dataclass(frozen=True)
class TokenSource:
    """One ``tokenLookup`` entry, e.g. ``header:Authorization:Bearer``."""

    kind: TokenKind
    name: str
    prefix: str = ""


@dataclass(frozen=True)
class ClaimPass:
    """One ``claimPassBy`` entry: ``<position>:<claim>:<mapped name>``."""

    position: TokenKind
    claim: str
    mapped_name: str


@dataclass(frozen=True)
class JwtAuthConfig:
    """A parsed ``authConfig``; build it with :func:`parse_auth_config`."""

    jwks: KeySet | None = field(default=None, repr=False)
    jwks_url: str | None = None
    jwks_file: str | None = None
    token_lookup: tuple[TokenSource, ...] = (TokenSource("header", "Authorization", "Bearer"),)
    claim_pass_by: tuple[ClaimPass, ...] = ()
    whitelist: tuple[str, ...] = ()
    blacklist: tuple[str, ...] = ()
    algorithms: tuple[str, ...] = SUPPORTED_ALGORITHMS
    leeway_seconds: float = 0
    issuer: tuple[str, ...] = ()
    audience: tuple[str, ...] = ()
    jwks_cache_seconds: float = 300
    jwks_refresh_cooldown_seconds: float = 30
    jwks_timeout_seconds: float = 5

    def describe(self) -> Iterator[tuple[str, str]]:
        """The effective settings for ``fc-wsgi check``: key ids, never key material."""
        if self.jwks_url is not None:
            yield "keys", f"{self.jwks_url} (cached {self.jwks_cache_seconds:g} s)"
        else:
            where = self.jwks_file or "inline"
            yield "keys", f"{where}: {self.jwks!r}"
        yield (
            "tokenLookup",
            ", ".join(
                ":".join(part for part in (s.kind, s.name, s.prefix) if part)
                for s in self.token_lookup
            ),
        )
        passes = (f"{p.position}:{p.claim}:{p.mapped_name}" for p in self.claim_pass_by)
        yield "claimPassBy", ", ".join(passes) or "(none)"
        if self.whitelist:
            yield "whitelist (no token needed)", ", ".join(self.whitelist)
        elif self.blacklist:
            yield "blacklist (token needed only here)", ", ".join(self.blacklist)
        else:
            yield "paths", "every path needs a token"
        yield "algorithms", ", ".join(self.algorithms)
        yield "leewaySeconds", f"{self.leeway_seconds:g}"
        yield "issuer", ", ".join(self.issuer) or "(unchecked)"
        yield "audience", ", ".join(self.audience) or "(unchecked)"


# -- authConfig parsing ------------------------------------------------------------------------

_FIELDS = {
    name.lower(): name
    for name in (
        "jwks", "jwksUrl", "jwksFile", "tokenLookup", "claimPassBy", "whitelist", "blacklist",
        "algorithms", "leewaySeconds", "issuer", "audience", "jwksCacheSeconds",
        "jwksRefreshCooldownSeconds", "jwksTimeoutSeconds",
    )
}  # fmt: skip


def parse_auth_config(raw: Mapping[str, Any] | str, path: str = "authConfig") -> JwtAuthConfig:
    """Parse FC's ``authConfig`` (an object, or the JSON text FC's API takes) and our extensions.

    FC's keys are accepted in any case (``JWKS``, ``TokenLookup``, ``claimPassBy``, ...). Every
    bad value raises :class:`ConfigError` naming its field path; key material is never shown.
    """
    if isinstance(raw, str):
        try:
            raw = json.loads(raw) if raw.strip() else {}
        except ValueError as exc:
            problem = getattr(exc, "msg", "invalid JSON")
            raise field_error(path, f"is not valid JSON ({problem})") from None
    if not isinstance(raw, Mapping):
        raise field_error(path, f"must be an object, got {type_name(raw)}")
    given: dict[str, tuple[str, Any]] = {}
    for key, item in raw.items():
        name = _FIELDS.get(key.lower()) if isinstance(key, str) else None
        if name is None:
            raise field_error(f"{path}.{key}", "unknown field")
        if name in given:
            raise field_error(f"{path}.{key}", f"given twice (also as {given[name][0]})")
        if item is not None:  # JSON null: the default
            given[name] = (key, item)

    def at(name: str) -> str:
        return f"{path}.{given[name][0]}"

    def get(name: str, parse: Callable[[Any, str], Any], default: Any) -> Any:
        return parse(given[name][1], at(name)) if name in given else default

    algorithms = get("algorithms", _algorithms, SUPPORTED_ALGORITHMS)
    sources = [name for name in ("jwks", "jwksUrl", "jwksFile") if name in given]
    if len(sources) != 1:
        problem = "needs one of jwks, jwksUrl, jwksFile" if not sources else "give only one"
        raise field_error(at(sources[1]) if sources else path, f"{problem} (the JWT keys)")
    keys: KeySet | None = None
    if "jwks" in given:
        keys = parse_jwks(given["jwks"][1], at("jwks"), algorithms=algorithms)
    jwks_file = get("jwksFile", parse_text, None)
    if jwks_file is not None:
        keys = load_jwks_file(jwks_file, at("jwksFile"), algorithms=algorithms)
    whitelist = get("whitelist", _paths, ())
    blacklist = get("blacklist", _paths, ())
    if whitelist and blacklist:
        raise field_error(at("blacklist"), "cannot be combined with whitelist (FC rejects both)")
    return JwtAuthConfig(
        jwks=keys,
        jwks_url=get("jwksUrl", _url, None),
        jwks_file=jwks_file,
        token_lookup=get("tokenLookup", _token_lookup, JwtAuthConfig.token_lookup),
        claim_pass_by=get("claimPassBy", _claim_pass_by, ()),
        whitelist=whitelist,
        blacklist=blacklist,
        algorithms=algorithms,
        leeway_seconds=get("leewaySeconds", _seconds(0, 86400), 0),
        issuer=get("issuer", _names, ()),
        audience=get("audience", _names, ()),
        jwks_cache_seconds=get("jwksCacheSeconds", _seconds(0, 7 * 86400), 300),
        jwks_refresh_cooldown_seconds=get("jwksRefreshCooldownSeconds", _seconds(0, 86400), 30),
        jwks_timeout_seconds=get("jwksTimeoutSeconds", _seconds(0.1, 120), 5),
    )


def _entries(value: Any, path: str) -> list[tuple[str, str]]:
    """FC's comma-separated string, or (our extension) an array of entries."""
    if isinstance(value, str):
        return [(f"{path}[{i}]", item) for i, item in enumerate(value.split(","))]
    if isinstance(value, list):
        return [(f"{path}[{i}]", parse_text(item, f"{path}[{i}]")) for i, item in enumerate(value)]
    raise field_error(path, f"must be a string or an array of strings, got {type_name(value)}")


def _token_lookup(value: Any, path: str) -> tuple[TokenSource, ...]:
    sources: dict[TokenSource, None] = {}
    for where, entry in _entries(value, path):
        kind, _, rest = entry.strip().partition(":")
        name, _, prefix = rest.partition(":")
        kind, name, prefix = kind.strip().lower(), name.strip(), prefix.strip()
        if kind not in _KINDS:
            raise field_error(where, f"must start with one of {', '.join(_KINDS)}: (<kind>:<name>)")
        if not name or (kind == "header" and not _HTTP_TOKEN.match(name)):
            raise field_error(where, f"needs a {kind} name ({kind}:<name>)")
        if prefix and kind != "header":
            raise field_error(where, "only header sources take a prefix")
        sources[TokenSource(kind, name, prefix)] = None  # type: ignore[arg-type]
    if not sources:
        raise field_error(path, "must list at least one token source")
    return tuple(sources)


def _claim_pass_by(value: Any, path: str) -> tuple[ClaimPass, ...]:
    passes: list[ClaimPass] = []
    seen: set[tuple[str, str]] = set()
    for where, entry in _entries(value, path):
        parts = [part.strip() for part in entry.split(":")]
        if len(parts) != 3:
            raise field_error(where, "must be <position>:<claim>:<mapped name>")
        position, claim, mapped = parts[0].lower(), parts[1], parts[2]
        if position not in _KINDS:
            raise field_error(where, f"position must be one of {', '.join(_KINDS)}")
        if not claim and not mapped:
            continue  # Serverless Devs sends "query::" for "pass nothing"
        if not claim or not mapped:
            raise field_error(where, "needs both a claim name and a mapped name")
        if position == "header":
            if not _HTTP_TOKEN.match(mapped):
                raise field_error(where, "mapped name must be a valid header name")
            if mapped.lower() in ("content-type", "content-length"):
                raise field_error(where, f"cannot overwrite {mapped}")
        key = (position, mapped.lower() if position == "header" else mapped)
        if key in seen:
            raise field_error(where, f"{position} {mapped} is already mapped")
        seen.add(key)
        passes.append(ClaimPass(position, claim, mapped))  # type: ignore[arg-type]
    return tuple(passes)


def _paths(value: Any, path: str) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise field_error(path, f"must be an array of paths, got {type_name(value)}")
    for i, item in enumerate(value):
        if not isinstance(item, str) or not item.startswith("/"):
            raise field_error(f"{path}[{i}]", 'must be a path starting with "/"')
    return tuple(dict.fromkeys(value))


def _algorithms(value: Any, path: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise field_error(path, "must be a non-empty array of algorithm names")
    for i, item in enumerate(value):
        if isinstance(item, str) and item.lower() == "none":
            raise field_error(f"{path}[{i}]", "unsigned tokens (none) are never accepted")
        if item not in SUPPORTED_ALGORITHMS:
            raise field_error(f"{path}[{i}]", f"must be one of {', '.join(SUPPORTED_ALGORITHMS)}")
    return tuple(dict.fromkeys(value))


def _names(value: Any, path: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value:
        raise field_error(path, "must be a string or a non-empty array of strings")
    return tuple(parse_text(item, f"{path}[{i}]") for i, item in enumerate(value))


def _url(value: Any, path: str) -> str:
    url = parse_text(value, path)
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise field_error(path, "must be an http:// or https:// URL")
    return url


def _seconds(low: float, high: float) -> Callable[[Any, str], float]:
    def parse(value: Any, path: str) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise field_error(path, f"must be a number of seconds, got {type_name(value)}")
        if not low <= value <= high:
            raise field_error(path, f"must be {low:g}..{high:g} seconds, got {value}")
        return value

    return parse


# -- the verified-token cache ------------------------------------------------------------------


@dataclass(frozen=True)
class _Grant:
    """What a verified token gives a request, computed once per token."""

    expires_at: float
    generation: int
    claims: Mapping[str, Any]
    headers: tuple[str | None, ...]  # one per header pass, None: claim absent
    cookies: tuple[str, ...]  # "name=value" cookie pairs
    queries: tuple[str, ...]  # "name=value" query pairs
    forms: tuple[bytes, ...]  # b"name=value" form pairs


class TokenCache:
    """Verified tokens by their exact text: a bounded LRU whose entries end at the token's exp."""

    def __init__(self, max_entries: int = TOKEN_CACHE_ENTRIES) -> None:
        self._max = max_entries
        self._entries: OrderedDict[str, _Grant] = OrderedDict()
        self._lock = threading.Lock()  # gthread workers share one verifier

    def get(self, token: str, now: float, generation: int) -> _Grant | None:
        with self._lock:
            grant = self._entries.get(token)
            if grant is None:
                return None
            if now >= grant.expires_at or grant.generation != generation:
                del self._entries[token]
                return None
            self._entries.move_to_end(token)
            return grant

    def put(self, token: str, grant: _Grant) -> None:
        if len(token) > MAX_CACHED_TOKEN_BYTES:
            return
        with self._lock:
            self._entries[token] = grant
            self._entries.move_to_end(token)
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


# -- the verifier ------------------------------------------------------------------------------


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
        form = _Form(environ) if self._uses_form else None
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

    def _find_token(self, environ: WSGIEnvironment, form: _Form | None) -> str | None:
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
                value = _cookie_value(environ.get("HTTP_COOKIE", ""), name)
            elif kind == "query":
                value = _query_value(environ.get("QUERY_STRING", ""), name)
            else:
                body = form.body() if form is not None else None
                value = _form_value(body, name) if body else None
            if value:
                return value
        return None

    # -- verifying it --------------------------------------------------------------------------

    def _verify(self, token: str, now: float) -> _Grant:
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
        return _Grant(
            expires_at=exp if exp is not None else now + NO_EXP_CACHE_SECONDS,
            generation=generation,
            claims=MappingProxyType(claims),
            headers=tuple(_header_text(claims, claim) for _, claim in self._header_passes),
            cookies=_pairs(claims, self._cookie_passes, _cookie_quote),
            queries=_pairs(claims, self._query_passes, _query_quote),
            forms=tuple(p.encode() for p in _pairs(claims, self._form_passes, _form_quote)),
        )

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
        self, environ: WSGIEnvironment, grant: _Grant | None, form: _Form | None
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
                cookie = _rewrite_cookie(cookie, self._cookie_names, added)
                if cookie:
                    environ["HTTP_COOKIE"] = cookie
                else:
                    environ.pop("HTTP_COOKIE", None)
        if self._query_passes:
            added = grant.queries if grant is not None else ()
            query = environ.get("QUERY_STRING", "")
            if added or ("%" in query or "+" in query or _any_in(self._query_names, query)):
                _set_query(environ, _rewrite_query(query, self._query_names, added))
        if self._form_passes and form is not None:
            body = form.body()
            if form.too_large:
                raise InvalidArgument(
                    f"a form body over {MAX_FORM_BYTES} bytes cannot carry passed-through claims"
                )
            if body is not None:
                forms = grant.forms if grant is not None else ()
                form.replace(_rewrite_form(body, self._form_names, forms))


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


# -- claim values --------------------------------------------------------------------------------


def _claim_text(claims: dict[str, Any], claim: str) -> str | None:
    if claim not in claims:
        return None
    value = claims[claim]
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _header_text(claims: dict[str, Any], claim: str) -> str | None:
    text = _claim_text(claims, claim)
    if text is None:
        return None
    if _HEADER_CTL.search(text):  # CR/LF would split a header if the app forwards it
        raise _invalid(f"token claim {claim} cannot be passed in a header")
    return text.encode("utf-8").decode("latin-1")  # PEP 3333: headers as latin-1 text


def _pairs(
    claims: dict[str, Any], passes: tuple[tuple[str, str], ...], quote: Callable[[str], str]
) -> tuple[str, ...]:
    pairs = []
    for name, claim in passes:
        text = _claim_text(claims, claim)
        if text is not None:
            pairs.append(f"{quote(name)}={quote(text)}")
    return tuple(pairs)


def _cookie_quote(text: str) -> str:
    return urllib.parse.quote(text, safe=_COOKIE_SAFE)


def _query_quote(text: str) -> str:
    return urllib.parse.quote(text, safe="")


def _form_quote(text: str) -> str:
    return urllib.parse.quote_plus(text, safe="")


# -- cookies, query strings, form bodies -------------------------------------------------------


def _cookie_value(cookie: str, name: str) -> str | None:
    for part in cookie.split(";"):
        key, _, value = part.partition("=")
        if key.strip() == name:
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
            return value
    return None


def _rewrite_cookie(cookie: str, names: frozenset[str], added: tuple[str, ...]) -> str:
    kept = [
        part.strip()
        for part in cookie.split(";")
        if part.strip() and part.partition("=")[0].strip() not in names
    ]
    return "; ".join([*kept, *added])


def _query_value(query: str, name: str) -> str | None:
    for key, value in urllib.parse.parse_qsl(query, keep_blank_values=True):
        if key == name:
            return value
    return None


def _rewrite_query(query: str, names: frozenset[str], added: tuple[str, ...]) -> str:
    kept = [
        part
        for part in query.split("&")
        if part and urllib.parse.unquote_plus(part.partition("=")[0]) not in names
    ]
    return "&".join([*kept, *added])


def _set_query(environ: WSGIEnvironment, query: str) -> None:
    environ["QUERY_STRING"] = query
    for key in ("REQUEST_URI", "RAW_URI"):  # servers' raw request targets, if any
        uri = environ.get(key)
        if uri is not None:
            environ[key] = uri.partition("?")[0] + ("?" + query if query else "")


def _form_name(part: bytes) -> bytes:
    return urllib.parse.unquote_to_bytes(part.partition(b"=")[0].replace(b"+", b" "))


def _form_value(body: bytes, name: str) -> str | None:
    wanted = name.encode()
    for part in body.split(b"&"):
        if _form_name(part) == wanted:
            value = part.partition(b"=")[2].replace(b"+", b" ")
            return urllib.parse.unquote_to_bytes(value).decode("latin-1")
    return None


def _rewrite_form(body: bytes, names: frozenset[bytes], added: tuple[bytes, ...]) -> bytes:
    kept = [part for part in body.split(b"&") if part and _form_name(part) not in names]
    return b"&".join([*kept, *added])


class _Form:
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
        self._environ["wsgi.input"] = io.BytesIO(body)
        self._environ["CONTENT_LENGTH"] = str(len(body))

    def _load(self) -> bytes | None:
        environ = self._environ
        content_type = environ.get("CONTENT_TYPE", "")
        if content_type.partition(";")[0].strip().lower() != _FORM_TYPE:
            return None
        length_text = environ.get("CONTENT_LENGTH", "")
        if length_text:
            try:
                length = int(length_text)
            except ValueError:
                return None
            if length > MAX_FORM_BYTES:
                self.too_large = True  # left unread, for the app
                return None
        elif environ.get("wsgi.input_terminated"):
            length = MAX_FORM_BYTES + 1  # read to the end, one byte past the bound at most
        else:
            length = 0  # PEP 3333: no Content-Length, no body
        body = _read_up_to(environ["wsgi.input"], length) if length > 0 else b""
        if len(body) > MAX_FORM_BYTES:  # chunked and over the bound: consumed, cannot replay
            raise InvalidArgument(f"form body over {MAX_FORM_BYTES} bytes")
        self.replace(body)
        return body


def _read_up_to(stream: Any, size: int) -> bytes:
    chunks, left = [], size
    while left > 0:
        chunk = stream.read(min(left, 65536))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)
