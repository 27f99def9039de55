"""The trigger config: FC's own ``triggerConfig`` fields plus our extensions, validated once.

Each field is declared once, as a dataclass field whose metadata carries its JSON name, its
parser (type, bounds) and a one-line doc. That one declaration drives loading, the error
messages (which name the field path, never a secret), ``fc-wsgi check`` and the README's
config reference (a test keeps the README in step). FC's field names and shapes are kept
exactly (fc-spec.md section 2), so a trigger copied from Serverless Devs or FC's API loads
unchanged; a whole trigger resource (``{"triggerType": "http", "triggerConfig": {...}}``)
is accepted as well as the bare ``triggerConfig``.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, TypeAlias

from ._fields import (
    ConfigError,
    describe_fields,
    field_error,
    int_in,
    join,
    json_object,
    load_section,
    one_of,
    parse_bool,
    parse_text,
    reference_fields,
    section,
    setting,
    text_list,
    type_name,
)
from .common import (
    ALL_METHODS,
    FC_EXPOSE_HEADERS,
    MAX_SKEW_SECONDS,
    SDK_VARIANTS,
    SIGNATURE_SCHEMES,
    AsyncBackendName,
    AsyncDurability,
    AuthType,
    CorsMode,
    Profile,
    redact_url,
)
from .function_config import FunctionConfig, resolve_function
from .jwt_config import parse_auth_config

__all__ = ["ConfigError", "FunctionConfig", "TriggerConfig", "load_config"]

#: Where a ``function`` trigger without ``accessKeys`` finds its one key pair.
ACCESS_KEY_ID_ENV = "FC_WSGI_ACCESS_KEY_ID"
ACCESS_KEY_SECRET_ENV = "FC_WSGI_ACCESS_KEY_SECRET"

_KIB = 1024
_MIB = 1024 * 1024


def _methods(value: Any, path: str) -> tuple[str, ...]:
    methods = text_list(value, path)
    if not methods:
        raise field_error(path, f"must list at least one of {' '.join(ALL_METHODS)}")
    upper = tuple(dict.fromkeys(m.upper() for m in methods))
    for i, method in enumerate(upper):
        if method not in ALL_METHODS:
            raise field_error(
                f"{path}[{i}]", f"must be one of {' '.join(ALL_METHODS)}; got {method!r}"
            )
    return upper


def _broker_url(value: Any, path: str) -> str:
    url = parse_text(value, path)
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise field_error(path, "must be a redis://, rediss:// or unix:// URL")
    return url


# -- the declarations ------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class AccessKey:
    """One AccessKey pair for signature authentication; several allow rotation."""

    id: str
    secret: str = dataclasses.field(repr=False)


def _access_keys(value: Any, path: str) -> tuple[AccessKey, ...]:
    if not isinstance(value, list):
        shape = "{id, secret or secretEnv}"
        raise field_error(path, f"must be an array of {shape}, got {type_name(value)}")
    keys: dict[str, AccessKey] = {}
    for i, item in enumerate(value):
        where = f"{path}[{i}]"
        if not isinstance(item, dict):
            raise field_error(where, f"must be an object, got {type_name(item)}")
        unknown = set(item) - {"id", "secret", "secretEnv"}
        if unknown:
            raise field_error(f"{where}.{sorted(unknown)[0]}", "unknown field")
        key_id = parse_text(item.get("id"), f"{where}.id")
        if ("secret" in item) == ("secretEnv" in item):
            raise field_error(where, "needs exactly one of secret or secretEnv")
        if "secret" in item:
            secret = parse_text(item["secret"], f"{where}.secret")
        else:
            env_name = parse_text(item["secretEnv"], f"{where}.secretEnv")
            secret = os.environ.get(env_name, "")
            if not secret:
                problem = f"environment variable {env_name} is not set"
                raise field_error(f"{where}.secretEnv", problem)
        if key_id in keys:
            raise field_error(f"{where}.id", f"duplicate access key id {key_id!r}")
        keys[key_id] = AccessKey(key_id, secret)
    return tuple(keys.values())


def _schemes(value: Any, path: str) -> tuple[str, ...]:
    schemes = text_list(value, path)
    if not schemes:
        raise field_error(path, f"must list at least one of {', '.join(SIGNATURE_SCHEMES)}")
    for i, scheme in enumerate(schemes):
        if scheme not in SIGNATURE_SCHEMES:
            raise field_error(f"{path}[{i}]", f"must be one of {', '.join(SIGNATURE_SCHEMES)}")
    return schemes


@dataclasses.dataclass(frozen=True)
class SignatureConfig:
    """How ``authType: function`` checks FC signatures (fc-spec.md section 8)."""

    schemes: tuple[str, ...] = setting(
        "schemes", SIGNATURE_SCHEMES, _schemes, "accepted: fc (header), signed-url, acs3"
    )
    max_skew_seconds: int = setting(
        "maxSkewSeconds", MAX_SKEW_SECONDS, int_in(0, 86400),
        "allowed client clock difference (FC: 15 min)",
    )  # fmt: skip
    sdk_variants: bool = setting(
        "sdkVariants", SDK_VARIANTS, parse_bool,
        "also accept the strings real Alibaba SDKs sign (unsorted query, key=, ACS3 encodings)",
    )  # fmt: skip


@dataclasses.dataclass(frozen=True)
class Limits:
    """FC's request and response size limits (fc-spec.md sections 3 and 4), in bytes."""

    max_header_bytes: int = setting(
        "maxHeaderBytes", 8 * _KIB, int_in(1, 1 * _MIB),
        "request header names + values; over it: 400 InvalidArgument",
    )  # fmt: skip
    max_url_bytes: int = setting(
        "maxUrlBytes", 4 * _KIB, int_in(1, 8000),
        "raw path + query; over it: 400 InvalidArgument (at most 8000: gunicorn's line limit)",
    )  # fmt: skip
    max_body_bytes: int = setting(
        "maxBodyBytes", 32 * _MIB, int_in(0, 2**40),
        "sync request body; over it: 400 InvalidArgument",
    )  # fmt: skip
    max_async_body_bytes: int = setting(
        "maxAsyncBodyBytes", 128 * _KIB, int_in(0, 2**40),
        "body of an X-Fc-Invocation-Type: Async request; over it: 400 InvalidArgument",
    )  # fmt: skip
    max_response_header_bytes: int = setting(
        "maxResponseHeaderBytes", 8 * _KIB, int_in(1, 1 * _MIB),
        "response header names + values from the app; over it: 502 BadResponse",
    )  # fmt: skip


@dataclasses.dataclass(frozen=True)
class CorsConfig:
    """CORS answers; ``fc`` reproduces FC's defaults (fc-spec.md section 10)."""

    mode: CorsMode = setting(
        "mode", "fc", one_of("fc", "strict", "off"),
        "fc: FC's defaults; strict: listed origins only, preflight answered; off: no CORS headers",
    )  # fmt: skip
    allow_origins: tuple[str, ...] = setting(
        "allowOrigins", (), text_list, 'strict: origins allowed (exact, or "*" for any)'
    )
    allow_methods: tuple[str, ...] = setting(
        "allowMethods", (), text_list, "strict: preflight methods; empty = the trigger's methods"
    )
    allow_headers: tuple[str, ...] = setting(
        "allowHeaders", (), text_list,
        "strict: preflight headers; empty = safelisted only, \"*\" = echo the request",
    )  # fmt: skip
    expose_headers: tuple[str, ...] = setting(
        "exposeHeaders", FC_EXPOSE_HEADERS, text_list, "Access-Control-Expose-Headers"
    )
    allow_credentials: bool = setting(
        "allowCredentials", True, parse_bool, "send Access-Control-Allow-Credentials: true"
    )
    max_age: int = setting(
        "maxAge", 3600, int_in(0, 86400), "Access-Control-Max-Age of preflight answers, seconds"
    )


@dataclasses.dataclass(frozen=True)
class Destination:
    """Where a finished async task's record goes: an ``http(s)://`` URL or ``module:function``."""

    destination: str = setting("destination", "", parse_text, "URL or module:function")


def _destination(value: Any, path: str) -> Destination | None:
    return load_section(Destination, value, path)


@dataclasses.dataclass(frozen=True)
class DestinationConfig:
    """FC's ``destinationConfig``, with local stand-ins for FC's ARNs."""

    on_success: Destination | None = setting(
        "onSuccess", None, _destination, 'after a success: {"destination": URL or module:function}'
    )
    on_failure: Destination | None = setting(
        "onFailure", None, _destination, 'after a failure: {"destination": URL or module:function}'
    )


@dataclasses.dataclass(frozen=True)
class AsyncConfig:
    """Async invocation (fc-spec.md section 11): FC's async-config names plus our backend."""

    backend: AsyncBackendName = setting(
        "backend", "sqlite", one_of("sqlite", "dramatiq"), "where accepted tasks are persisted"
    )
    journal: str = setting(
        "journal", ".fc-wsgi/async.sqlite3", parse_text, "SQLite journal file shared by all workers"
    )
    durability: AsyncDurability = setting(
        "durability", "fsync", one_of("fsync", "process"),
        "sqlite: fsync (every 202 survives power loss) or process (survives SIGKILL, no fsync)",
    )  # fmt: skip
    workers: int = setting("workers", 4, int_in(1, 256), "threads running tasks per process")
    max_async_retry_attempts: int = setting(
        "maxAsyncRetryAttempts", 3, int_in(0, 8), "re-runs after a failure (FC: 0..8)"
    )
    max_async_event_age_in_seconds: int = setting(
        "maxAsyncEventAgeInSeconds", 86400, int_in(1, 604800),
        "tasks older than this expire instead of running (FC: 1..604800)",
    )  # fmt: skip
    destination_config: DestinationConfig = setting(
        "destinationConfig", DestinationConfig(), section(DestinationConfig),
        "onSuccess/onFailure destinations",
    )  # fmt: skip
    lease_seconds: int = setting(
        "leaseSeconds", 30, int_in(3, 3600),
        "a running task's lease, renewed while it runs; after it, another host re-runs the task",
    )  # fmt: skip
    fail_on_5xx: bool = setting(
        "failOn5xx", True, parse_bool, "count an app's 5xx answer as a failure (retried)"
    )
    max_queued_tasks: int = setting(
        "maxQueuedTasks", 100_000, int_in(1, 10**9),
        "pending tasks beyond this: 429 ResourceExhausted",
    )  # fmt: skip
    retention_seconds: int = setting(
        "retentionSeconds", 7 * 86400, int_in(0, 10**9), "finished tasks are pruned after this"
    )
    broker_url: str = setting(
        "brokerUrl", "redis://127.0.0.1:6379/0", _broker_url, "dramatiq backend: Redis URL"
    )


@dataclasses.dataclass(frozen=True)
class TriggerConfig:
    """An HTTP trigger's behaviour: FC's ``triggerConfig`` fields and our extensions."""

    auth_type: AuthType = setting(
        "authType", "function", one_of("anonymous", "function", "jwt"),
        "anonymous, function (FC signature) or jwt; FC's API default is function",
    )  # fmt: skip
    methods: tuple[str, ...] = setting(
        "methods", ALL_METHODS, _methods, "allowed methods; others: 403 AccessDenied",
        required=True,
    )  # fmt: skip
    disable_url_internet: bool = setting(
        "disableURLInternet", False, parse_bool,
        "with defaultDomain: every request 403 AccessDenied, as FC's disabled public URL",
    )  # fmt: skip
    auth_config: Mapping[str, Any] | None = setting(
        "authConfig", None, json_object, "jwt settings: object or FC's JSON string", shown=False
    )
    cors_config: Mapping[str, Any] = setting(
        "corsConfig", None, json_object, "FC 3.0's newer field; accepted and ignored (use cors)",
        shown=False,
    )  # fmt: skip
    access_keys: tuple[AccessKey, ...] = setting(
        "accessKeys", (), _access_keys, "function auth: [{id, secret or secretEnv}]", shown=False
    )
    signature: SignatureConfig = setting(
        "signature", SignatureConfig(), section(SignatureConfig), "signature checks"
    )
    profile: Profile = setting(
        "profile", "fc3", one_of("fc3", "fc2"), "FC generation: error body keys, request ids"
    )
    default_domain: bool = setting(
        "defaultDomain", False, parse_bool,
        "act as FC's default domain: Content-Disposition: attachment",
    )  # fmt: skip
    limits: Limits = setting("limits", Limits(), section(Limits), "size limits")
    cors: CorsConfig = setting("cors", CorsConfig(), section(CorsConfig), "CORS")
    async_: AsyncConfig = setting("async", AsyncConfig(), section(AsyncConfig), "async")
    function: FunctionConfig | None = setting(
        "function", None, section(FunctionConfig), "run an FC function (fc-spec-runtime 14-17)",
        optional_section=FunctionConfig,
    )  # fmt: skip


_RESOURCE_KEYS = frozenset({"triggerName", "triggerType", "qualifier", "description"})


ConfigSource: TypeAlias = "str | os.PathLike[str] | Mapping[str, Any] | TriggerConfig"


def load_config(source: ConfigSource) -> TriggerConfig:
    """Load and validate a trigger config from a JSON file path, a mapping or a loaded config."""
    if isinstance(source, TriggerConfig):
        return source
    if isinstance(source, Mapping):
        raw: Any = dict(source)
        base = Path.cwd()
    else:
        path = Path(source)
        base = path.resolve().parent
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None
        except ValueError as exc:
            raise ConfigError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"(top): must be an object, got {type_name(raw)}")
    return _load_trigger(raw, base)


def _access_keys_from_environment() -> tuple[AccessKey, ...]:
    """The key a ``function`` trigger checks when its config lists none (an ``s.yaml``
    cannot: FC checks the caller's account keys). Our own variable names, so that the
    function's ``ALIBABA_CLOUD_*`` credentials (its role's, in FC) are never the gateway's."""
    key_id = os.environ.get(ACCESS_KEY_ID_ENV, "")
    secret = os.environ.get(ACCESS_KEY_SECRET_ENV, "")
    return (AccessKey(key_id, secret),) if key_id and secret else ()


def _load_trigger(raw: dict[str, Any], base: Path) -> TriggerConfig:
    """``base``: the folder a relative ``function.codeUri`` is resolved against."""
    path = ""
    if "triggerConfig" in raw:  # a whole FC trigger resource
        unknown = set(raw) - _RESOURCE_KEYS - {"triggerConfig"}
        if unknown:
            raise field_error(sorted(unknown)[0], "unknown field")
        if raw.get("triggerType", "http").lower() != "http":
            raise field_error("triggerType", f"must be http, got {raw['triggerType']!r}")
        raw, path = raw["triggerConfig"], "triggerConfig"
        if not isinstance(raw, dict):
            raise field_error(path, f"must be an object, got {type_name(raw)}")
    config = load_section(TriggerConfig, raw, path)
    if config.auth_type == "function" and not config.access_keys:
        keys = _access_keys_from_environment()
        if not keys:
            raise field_error(
                join(path, "accessKeys"),
                f"authType function needs at least one key (or {ACCESS_KEY_ID_ENV} and "
                f"{ACCESS_KEY_SECRET_ENV} set)",
            )
        config = dataclasses.replace(config, access_keys=keys)
    if config.auth_type == "jwt":
        if config.auth_config is None:
            raise field_error(join(path, "authConfig"), "authType jwt needs the JWT settings")
        parse_auth_config(config.auth_config, join(path, "authConfig"))  # refuse bad ones now
    if config.function is not None:
        function = resolve_function(config.function, base, join(path, "function"))
        config = dataclasses.replace(config, function=function)
    return config


# -- describing a config: `fc-wsgi check` and the README reference ---------------------------


def describe(config: TriggerConfig) -> Iterator[tuple[str, str]]:
    """The effective settings as ``(name, value)`` pairs, secrets left out."""
    yield "authType", config.auth_type
    if config.auth_type == "function":
        yield "accessKeys", ", ".join(k.id for k in config.access_keys)
        yield from describe_fields(config.signature, "signature", show=_shown)
    elif config.auth_type == "jwt" and config.auth_config is not None:
        for name, value in parse_auth_config(config.auth_config).describe():
            yield f"authConfig.{name}", value
    yield from describe_fields(config, "", skip=_DESCRIBED_ABOVE, show=_shown)
    yield "preflight", preflight_answerer(config)


_DESCRIBED_ABOVE = frozenset({"authType", "signature"})


def _shown(name: str, value: Any) -> str:
    return redact_url(value) if name.endswith("brokerUrl") else str(value)  # may hold a password


def preflight_answerer(config: TriggerConfig) -> str:
    """Who answers a CORS preflight under ``config`` (fc-spec.md 13.12), as CorsDefaults
    decides it: the app only in ``fc`` mode with OPTIONS among the trigger's methods."""
    if config.cors.mode == "off":
        return "passed to the app (CORS off)"
    if app_answers_preflight(config.cors.mode, config.methods):
        return "passed to the app"
    return "answered by fc-wsgi"


def app_answers_preflight(mode: str, methods: tuple[str, ...]) -> bool:
    """The preflight rule, in one place: FC's mode lets OPTIONS through to the app when the
    trigger allows it; strict mode always answers preflights itself."""
    return mode == "fc" and "OPTIONS" in methods


def reference() -> Iterator[tuple[str, str, str]]:
    """Every declared field as ``(path, default, doc)``: the README's config reference."""
    yield from reference_fields(TriggerConfig, "")
