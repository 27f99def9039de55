"""FC's JWT ``authConfig``, parsed once: where the token is, which keys, which claims go on.

FC's JWT trigger (fc-spec.md 2, 9, 13.13) takes ``authConfig`` as an object or as the JSON
text its API types it as, with keys in any case (``JWKS``, ``TokenLookup``, ``claimPassBy``):
the JWKS, ``tokenLookup`` (``header:<name>[:<prefix>]``, ``cookie:``, ``query:``, ``form:``,
comma-separated), ``claimPassBy`` (``<position>:<claim>:<mapped name>``) and the
``whitelist`` / ``blacklist`` path rules. Our extensions: ``jwksUrl`` / ``jwksFile``, an
algorithm allow-list, ``leewaySeconds``, ``issuer``, ``audience`` and the remote-JWKS timings.

It sits on the ground floor, under config.py, so that a bad ``authConfig`` is refused when
the config loads (naming its field path, never key material), and the verifier
(:mod:`fc_wsgi.auth.jwt`) receives it parsed.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from ._fields import field_error, parse_text, type_name
from .jwkset import SUPPORTED_ALGORITHMS, KeySet, load_jwks_file, parse_jwks

TokenKind = Literal["header", "cookie", "query", "form"]

_KINDS = ("header", "cookie", "query", "form")
_HTTP_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+\Z")


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
