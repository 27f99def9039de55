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
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Literal, TypeAlias, TypeVar

Profile = Literal["fc3", "fc2"]

#: Every method an FC HTTP trigger can allow (fc-spec.md section 5).
ALL_METHODS: tuple[str, ...] = ("GET", "POST", "PUT", "DELETE", "HEAD", "PATCH", "OPTIONS")

#: FC's signature schemes (fc-spec.md 8.1): legacy header, signed URL, ACS3 V3.
SIGNATURE_SCHEMES: tuple[str, ...] = ("fc", "signed-url", "acs3")

#: FC's ``Access-Control-Expose-Headers`` as seen in real answers (fc-spec.md section 10).
FC_EXPOSE_HEADERS: tuple[str, ...] = (
    "Date",
    "x-fc-request-id",
    "x-fc-error-type",
    "x-fc-code-checksum",
    "x-fc-invocation-duration",
    "x-fc-max-memory-usage",
    "x-fc-log-result",
    "x-fc-invocation-code-version",
)


_KIB = 1024
_MIB = 1024 * 1024


class ConfigError(ValueError):
    """A config value is missing, unknown, of the wrong type or out of range.

    The message starts with the field path (``async.maxAsyncRetryAttempts: ...``) and never
    contains a secret.
    """


T = TypeVar("T")
Parser = Callable[[Any, str], Any]


def _setting(
    name: str,
    default: Any,
    parse: Parser,
    doc: str,
    *,
    shown: bool = True,
    required: bool = False,
    aliases: tuple[str, ...] = (),
    section: type | None = None,
) -> Any:
    """Declare a config field: its JSON ``name``, default, parser and one-line doc.

    ``required`` fields must be in a loaded config; their default serves configs built in code.
    ``aliases`` are other JSON names for the same field (FC 2.0 and 3.0 spell some fields
    differently); ``section`` is the dataclass of an optional section whose default is None,
    so the reference still lists its fields.
    """
    meta = {
        "json": name,
        "parse": parse,
        "doc": doc,
        "shown": shown,
        "required": required,
        "aliases": aliases,
        "section": section,
    }
    if isinstance(default, (list, dict, set)):
        raise TypeError("mutable default")  # pragma: no cover - guards the declarations
    if dataclasses.is_dataclass(default):
        return dataclasses.field(default_factory=lambda: default, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


# -- parsers: each takes the raw JSON value and its path, returns the Python value ----------


def field_error(path: str, problem: str) -> ConfigError:
    """A ConfigError for the field at ``path`` (shared by the parsers of every section)."""
    return ConfigError(f"{path}: {problem}")


def type_name(value: Any) -> str:
    """The JSON name of ``value``'s type, for messages."""
    return {dict: "object", list: "array", str: "string", bool: "boolean"}.get(
        type(value), type(value).__name__
    )


def _bool(value: Any, path: str) -> bool:
    if not isinstance(value, bool):
        raise field_error(path, f"must be true or false, got {type_name(value)}")
    return value


def _int_in(low: int, high: int) -> Parser:
    def parse(value: Any, path: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise field_error(path, f"must be an integer {low}..{high}, got {type_name(value)}")
        if not low <= value <= high:
            raise field_error(path, f"must be {low}..{high}, got {value}")
        return value

    return parse


def _one_of(*choices: str) -> Parser:
    def parse(value: Any, path: str) -> str:
        if value not in choices:
            shown = repr(value) if isinstance(value, str) else type_name(value)
            raise field_error(path, f"must be one of {', '.join(choices)}; got {shown}")
        return str(value)

    return parse


def parse_text(value: Any, path: str) -> str:
    """A non-empty string."""
    if not isinstance(value, str) or not value.strip():
        raise field_error(path, "must be a non-empty string")
    return value


def _text_list(value: Any, path: str) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise field_error(path, f"must be an array of strings, got {type_name(value)}")
    return tuple(parse_text(item, f"{path}[{i}]") for i, item in enumerate(value))


def _methods(value: Any, path: str) -> tuple[str, ...]:
    methods = _text_list(value, path)
    if not methods:
        raise field_error(path, f"must list at least one of {' '.join(ALL_METHODS)}")
    upper = tuple(dict.fromkeys(m.upper() for m in methods))
    for i, method in enumerate(upper):
        if method not in ALL_METHODS:
            raise field_error(
                f"{path}[{i}]", f"must be one of {' '.join(ALL_METHODS)}; got {method!r}"
            )
    return upper


def _json_object(value: Any, path: str) -> dict[str, Any]:
    """An object, or the JSON text of one (FC's API types ``authConfig`` as a string)."""
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else {}
        except json.JSONDecodeError as exc:
            problem = f"is not valid JSON ({exc.msg} at position {exc.pos})"
            raise field_error(path, problem) from None
    if not isinstance(value, dict):
        raise field_error(path, f"must be an object, got {type_name(value)}")
    return value


def _broker_url(value: Any, path: str) -> str:
    url = parse_text(value, path)
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise field_error(path, "must be a redis://, rediss:// or unix:// URL")
    return url


def _any_object(value: Any, path: str) -> Mapping[str, Any]:
    return _json_object(value, path)


def _account_id(value: Any, path: str) -> str:
    """A string; a number (a UID read from YAML) is taken as its digits."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return _text_or_empty(value, path)


def _text_or_empty(value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise field_error(path, f"must be a string, got {type_name(value)}")
    return value


def _section(cls: type[T]) -> Parser:
    def parse(value: Any, path: str) -> T:
        return _load_section(cls, value, path)

    return parse


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
    schemes = _text_list(value, path)
    if not schemes:
        raise field_error(path, f"must list at least one of {', '.join(SIGNATURE_SCHEMES)}")
    for i, scheme in enumerate(schemes):
        if scheme not in SIGNATURE_SCHEMES:
            raise field_error(f"{path}[{i}]", f"must be one of {', '.join(SIGNATURE_SCHEMES)}")
    return schemes


@dataclasses.dataclass(frozen=True)
class SignatureConfig:
    """How ``authType: function`` checks FC signatures (fc-spec.md section 8)."""

    schemes: tuple[str, ...] = _setting(
        "schemes", SIGNATURE_SCHEMES, _schemes, "accepted: fc (header), signed-url, acs3"
    )
    max_skew_seconds: int = _setting(
        "maxSkewSeconds", 900, _int_in(0, 86400), "allowed client clock difference (FC: 15 min)"
    )
    sdk_variants: bool = _setting(
        "sdkVariants", True, _bool,
        "also accept the strings real Alibaba SDKs sign (unsorted query, key=, ACS3 encodings)",
    )  # fmt: skip


@dataclasses.dataclass(frozen=True)
class Limits:
    """FC's request and response size limits (fc-spec.md sections 3 and 4), in bytes."""

    max_header_bytes: int = _setting(
        "maxHeaderBytes", 8 * _KIB, _int_in(1, 1 * _MIB),
        "request header names + values; over it: 400 InvalidArgument",
    )  # fmt: skip
    max_url_bytes: int = _setting(
        "maxUrlBytes", 4 * _KIB, _int_in(1, 8000),
        "raw path + query; over it: 400 InvalidArgument (at most 8000: gunicorn's line limit)",
    )  # fmt: skip
    max_body_bytes: int = _setting(
        "maxBodyBytes", 32 * _MIB, _int_in(0, 2**40),
        "sync request body; over it: 400 InvalidArgument",
    )  # fmt: skip
    max_async_body_bytes: int = _setting(
        "maxAsyncBodyBytes", 128 * _KIB, _int_in(0, 2**40),
        "body of an X-Fc-Invocation-Type: Async request; over it: 400 InvalidArgument",
    )  # fmt: skip
    max_response_header_bytes: int = _setting(
        "maxResponseHeaderBytes", 8 * _KIB, _int_in(1, 1 * _MIB),
        "response header names + values from the app; over it: 502 BadResponse",
    )  # fmt: skip


@dataclasses.dataclass(frozen=True)
class CorsConfig:
    """CORS answers; ``fc`` reproduces FC's defaults (fc-spec.md section 10)."""

    mode: str = _setting(
        "mode", "fc", _one_of("fc", "strict", "off"),
        "fc: FC's defaults; strict: listed origins only, preflight answered; off: no CORS headers",
    )  # fmt: skip
    allow_origins: tuple[str, ...] = _setting(
        "allowOrigins", (), _text_list, 'strict: origins allowed (exact, or "*" for any)'
    )
    allow_methods: tuple[str, ...] = _setting(
        "allowMethods", (), _text_list, "strict: preflight methods; empty = the trigger's methods"
    )
    allow_headers: tuple[str, ...] = _setting(
        "allowHeaders", (), _text_list,
        "strict: preflight headers; empty = safelisted only, \"*\" = echo the request",
    )  # fmt: skip
    expose_headers: tuple[str, ...] = _setting(
        "exposeHeaders", FC_EXPOSE_HEADERS, _text_list, "Access-Control-Expose-Headers"
    )
    allow_credentials: bool = _setting(
        "allowCredentials", True, _bool, "send Access-Control-Allow-Credentials: true"
    )
    max_age: int = _setting(
        "maxAge", 3600, _int_in(0, 86400), "Access-Control-Max-Age of preflight answers, seconds"
    )


@dataclasses.dataclass(frozen=True)
class Destination:
    """Where a finished async task's record goes: an ``http(s)://`` URL or ``module:function``."""

    destination: str = _setting("destination", "", parse_text, "URL or module:function")


def _destination(value: Any, path: str) -> Destination | None:
    return _load_section(Destination, value, path)


@dataclasses.dataclass(frozen=True)
class DestinationConfig:
    """FC's ``destinationConfig``, with local stand-ins for FC's ARNs."""

    on_success: Destination | None = _setting(
        "onSuccess", None, _destination, 'after a success: {"destination": URL or module:function}'
    )
    on_failure: Destination | None = _setting(
        "onFailure", None, _destination, 'after a failure: {"destination": URL or module:function}'
    )


@dataclasses.dataclass(frozen=True)
class AsyncConfig:
    """Async invocation (fc-spec.md section 11): FC's async-config names plus our backend."""

    backend: str = _setting(
        "backend", "sqlite", _one_of("sqlite", "dramatiq"), "where accepted tasks are persisted"
    )
    journal: str = _setting(
        "journal", ".fc-wsgi/async.sqlite3", parse_text, "SQLite journal file shared by all workers"
    )
    workers: int = _setting("workers", 4, _int_in(1, 256), "threads running tasks per process")
    max_async_retry_attempts: int = _setting(
        "maxAsyncRetryAttempts", 3, _int_in(0, 8), "re-runs after a failure (FC: 0..8)"
    )
    max_async_event_age_in_seconds: int = _setting(
        "maxAsyncEventAgeInSeconds", 86400, _int_in(1, 604800),
        "tasks older than this expire instead of running (FC: 1..604800)",
    )  # fmt: skip
    destination_config: DestinationConfig = _setting(
        "destinationConfig", DestinationConfig(), _section(DestinationConfig),
        "onSuccess/onFailure destinations",
    )  # fmt: skip
    lease_seconds: int = _setting(
        "leaseSeconds", 30, _int_in(3, 3600),
        "a running task's lease, renewed while it runs; a killed worker's task re-runs after it",
    )  # fmt: skip
    fail_on_5xx: bool = _setting(
        "failOn5xx", True, _bool, "count an app's 5xx answer as a failure (retried)"
    )
    max_queued_tasks: int = _setting(
        "maxQueuedTasks", 100_000, _int_in(1, 10**9),
        "pending tasks beyond this: 429 ResourceExhausted",
    )  # fmt: skip
    retention_seconds: int = _setting(
        "retentionSeconds", 7 * 86400, _int_in(0, 10**9), "finished tasks are pruned after this"
    )
    broker_url: str = _setting(
        "brokerUrl", "redis://127.0.0.1:6379/0", _broker_url, "dramatiq backend: Redis URL"
    )


def _memory_mb(value: Any, path: str) -> int:
    memory: int = _int_in(64, 32768)(value, path)
    if memory % 64:
        raise field_error(path, f"must be a multiple of 64, got {memory}")
    return memory


def _environment(value: Any, path: str) -> Mapping[str, str]:
    """FC's ``environmentVariables``: names to strings (YAML numbers and booleans stringified)."""
    if not isinstance(value, dict):
        raise field_error(path, f"must be an object of name: string, got {type_name(value)}")
    variables: dict[str, str] = {}
    for name, item in value.items():
        if not name or "=" in name or "\0" in name:
            raise field_error(f"{path}.{name}", "is not a valid environment variable name")
        if isinstance(item, bool):
            item = "true" if item else "false"
        elif isinstance(item, (int, float)):
            item = str(item)
        elif not isinstance(item, str):
            raise field_error(f"{path}.{name}", f"must be a string, got {type_name(item)}")
        variables[name] = item
    return variables


@dataclasses.dataclass(frozen=True)
class LifecycleHook:
    """FC 3.0's ``instanceLifecycleConfig.<hook>``: a handler string and its own timeout."""

    handler: str = _setting(
        "handler", "", _text_or_empty, "module.function, as the function's handler"
    )
    timeout: int = _setting("timeout", 3, _int_in(1, 300), "seconds the hook may run")
    command: tuple[str, ...] = _setting(
        "command", (), _text_list, "custom images' hook command; accepted, not run", shown=False
    )


@dataclasses.dataclass(frozen=True)
class LifecycleConfig:
    """FC 3.0's ``instanceLifecycleConfig``; only the initializer runs here."""

    initializer: LifecycleHook | None = _setting(
        "initializer", None, _section(LifecycleHook), "FC 3.0 spelling of initializer",
        section=LifecycleHook,
    )  # fmt: skip
    pre_stop: Mapping[str, Any] | None = _setting(
        "preStop", None, _any_object, "accepted, not run", shown=False
    )
    pre_freeze: Mapping[str, Any] | None = _setting(
        "preFreeze", None, _any_object, "accepted, not run", shown=False
    )


@dataclasses.dataclass(frozen=True)
class FunctionConfig:
    """The function behind the trigger, with FC's names (fc-spec-runtime.md sections 14-17).

    With this section fc-wsgi also plays FC's Python runtime: ``fc.context``, the function's
    environment, initializer, timeout, concurrency cap and log tail.
    """

    name: str = _setting(
        "functionName", "function", parse_text, "function name (FC 2.0: name)", aliases=("name",)
    )
    handler: str = _setting(
        "handler", "index.handler", parse_text, "module.function under codeUri (FC's handler)"
    )
    code_uri: str = _setting(
        "codeUri", ".", parse_text,
        "code root, relative to the config file's folder (FC 3.0: code)", aliases=("code",),
    )  # fmt: skip
    memory_size: int = _setting(
        "memorySize", 512, _memory_mb, "MB, reported only (no limit is enforced): 64..32768"
    )
    timeout: int = _setting(
        "timeout", 3, _int_in(1, 86400), "seconds an invocation may run; then 502 timed out"
    )
    initializer: str = _setting(
        "initializer",
        "",
        _text_or_empty,
        "module.function run once per worker before its first call",
    )
    initialization_timeout: int = _setting(
        "initializationTimeout", 3, _int_in(1, 300), "seconds the initializer may run"
    )
    instance_lifecycle_config: LifecycleConfig = _setting(
        "instanceLifecycleConfig", LifecycleConfig(), _section(LifecycleConfig), "FC 3.0 hooks"
    )
    instance_concurrency: int = _setting(
        "instanceConcurrency", 1, _int_in(1, 200), "concurrent invocations per worker (threads)"
    )
    max_instances: int | None = _setting(
        "maxInstances", None, _int_in(1, 10000),
        "worker processes counted by the cap (none: the workers); over it: 429",
    )  # fmt: skip
    environment_variables: Mapping[str, str] | None = _setting(
        "environmentVariables", None, _environment, "set for the function, seen in environ"
    )
    region: str = _setting("region", "cn-hangzhou", parse_text, "FC_REGION, context.region")
    account_id: str = _setting("accountId", "", _account_id, "FC_ACCOUNT_ID, context.account_id")
    qualifier: str = _setting("qualifier", "LATEST", parse_text, "context.service.qualifier")
    service_name: str = _setting(
        "serviceName", "", _text_or_empty, "context.service.name (profile fc2; fc3: empty)"
    )

    @property
    def init_handler(self) -> str:
        """The initializer to run, by either generation's spelling ("" for none)."""
        hook = self.instance_lifecycle_config.initializer
        return hook.handler if hook is not None and hook.handler else self.initializer

    @property
    def init_timeout_seconds(self) -> int:
        hook = self.instance_lifecycle_config.initializer
        return hook.timeout if hook is not None and hook.handler else self.initialization_timeout


@dataclasses.dataclass(frozen=True)
class TriggerConfig:
    """An HTTP trigger's behaviour: FC's ``triggerConfig`` fields and our extensions."""

    auth_type: str = _setting(
        "authType", "function", _one_of("anonymous", "function", "jwt"),
        "anonymous, function (FC signature) or jwt; FC's API default is function",
    )  # fmt: skip
    methods: tuple[str, ...] = _setting(
        "methods", ALL_METHODS, _methods, "allowed methods; others: 403 AccessDenied",
        required=True,
    )  # fmt: skip
    disable_url_internet: bool = _setting(
        "disableURLInternet", False, _bool,
        "with defaultDomain: every request 403 AccessDenied, as FC's disabled public URL",
    )  # fmt: skip
    auth_config: Mapping[str, Any] | None = _setting(
        "authConfig", None, _json_object, "jwt settings: object or FC's JSON string", shown=False
    )
    cors_config: Mapping[str, Any] = _setting(
        "corsConfig", None, _any_object, "FC 3.0's newer field; accepted and ignored (use cors)",
        shown=False,
    )  # fmt: skip
    access_keys: tuple[AccessKey, ...] = _setting(
        "accessKeys", (), _access_keys, "function auth: [{id, secret or secretEnv}]", shown=False
    )
    signature: SignatureConfig = _setting(
        "signature", SignatureConfig(), _section(SignatureConfig), "signature checks"
    )
    profile: Profile = _setting(
        "profile", "fc3", _one_of("fc3", "fc2"), "FC generation: error body keys, request ids"
    )
    default_domain: bool = _setting(
        "defaultDomain", False, _bool, "act as FC's default domain: Content-Disposition: attachment"
    )
    limits: Limits = _setting("limits", Limits(), _section(Limits), "size limits")
    cors: CorsConfig = _setting("cors", CorsConfig(), _section(CorsConfig), "CORS")
    async_: AsyncConfig = _setting("async", AsyncConfig(), _section(AsyncConfig), "async")
    function: FunctionConfig | None = _setting(
        "function", None, _section(FunctionConfig), "run an FC function (sections 14-17)",
        section=FunctionConfig,
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


def _load_trigger(raw: dict[str, Any], base: Path) -> TriggerConfig:
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
    config = _load_section(TriggerConfig, raw, path)
    if config.auth_type == "function" and not config.access_keys:
        raise field_error(_join(path, "accessKeys"), "authType function needs at least one key")
    if config.auth_type == "jwt":
        from .auth.jwt import parse_auth_config  # the JWT layer, only for JWT triggers

        if config.auth_config is None:
            raise field_error(_join(path, "authConfig"), "authType jwt needs the JWT settings")
        parse_auth_config(config.auth_config, _join(path, "authConfig"))  # refuse bad ones now
    if config.function is not None:
        config = dataclasses.replace(config, function=_resolve_function(config.function, base))
    return config


def _resolve_function(function: FunctionConfig, base: Path) -> FunctionConfig:
    """The code root made absolute (relative to the config file's folder); one initializer."""
    hook = function.instance_lifecycle_config.initializer
    if function.initializer and hook is not None and hook.handler != function.initializer:
        problem = "initializer and instanceLifecycleConfig.initializer name different handlers"
        raise field_error("function.initializer", problem)
    code_uri = str((base / function.code_uri).resolve())
    return dataclasses.replace(function, code_uri=code_uri)


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _load_section(cls: type[T], raw: Any, path: str) -> T:
    if not isinstance(raw, dict):
        raise field_error(path, f"must be an object, got {type_name(raw)}")
    fields = dataclasses.fields(cls)  # type: ignore[arg-type]
    by_json = {name: f for f in fields for name in (f.metadata["json"], *f.metadata["aliases"])}
    for declared in fields:
        if declared.metadata["required"] and raw.get(declared.metadata["json"]) is None:
            raise field_error(_join(path, declared.metadata["json"]), "required")
    values: dict[str, Any] = {}
    given: dict[str, str] = {}  # field name -> the JSON name it was given as
    for key, value in raw.items():
        field = by_json.get(key)
        if field is None:
            raise field_error(_join(path, key), "unknown field")
        if field.name in given:
            problem = f"give {given[field.name]} or {key}, not both"
            raise field_error(_join(path, key), problem)
        given[field.name] = key
        if value is None:
            continue  # JSON null: the default
        values[field.name] = field.metadata["parse"](value, _join(path, key))
    return cls(**values)


# -- describing a config: `fc-wsgi check` and the README reference ---------------------------


def describe(config: TriggerConfig) -> Iterator[tuple[str, str]]:
    """The effective settings as ``(name, value)`` pairs, secrets left out."""
    yield "authType", config.auth_type
    if config.auth_type == "function":
        yield "accessKeys", ", ".join(k.id for k in config.access_keys)
        yield from _describe_fields(config.signature, "signature")
    elif config.auth_type == "jwt" and config.auth_config is not None:
        from .auth.jwt import parse_auth_config

        for name, value in parse_auth_config(config.auth_config).describe():
            yield f"authConfig.{name}", value
    yield from _describe_fields(config, "")


def _describe_fields(obj: Any, path: str) -> Iterator[tuple[str, str]]:
    for field in dataclasses.fields(obj):
        value = getattr(obj, field.name)
        name = _join(path, field.metadata["json"])
        if not field.metadata["shown"] or name in ("authType", "signature"):
            continue
        if dataclasses.is_dataclass(value):
            yield from _describe_fields(value, name)
        elif isinstance(value, Mapping):  # environment variables: names only, values may be secret
            yield name, ", ".join(value) if value else "(none)"
        elif isinstance(value, tuple):
            yield name, ", ".join(value) if value else "(none)"
        elif isinstance(value, bool):
            yield name, "true" if value else "false"
        elif value is None or value == "":
            yield name, "(none)"
        elif name.endswith("brokerUrl"):  # may carry a password
            from .dispatch.backend import redact_url

            yield name, redact_url(value)
        else:
            yield name, str(value)


def reference() -> Iterator[tuple[str, str, str]]:
    """Every declared field as ``(path, default, doc)``: the README's config reference."""
    yield from _reference(TriggerConfig, "")


def _reference(cls: Any, path: str) -> Iterator[tuple[str, str, str]]:
    for field in dataclasses.fields(cls):
        name = _join(path, field.metadata["json"])
        default = (
            field.default
            if field.default_factory is dataclasses.MISSING
            else field.default_factory()
        )
        if dataclasses.is_dataclass(default):
            yield from _reference(type(default), name)
            continue
        if field.metadata["section"] is not None:  # optional section: list its fields
            yield from _reference(field.metadata["section"], name)
            continue
        if field.metadata["required"]:
            shown = "(required)"
        elif default is None:
            shown = "(none)"
        else:
            shown = json.dumps(list(default) if isinstance(default, tuple) else default)
        yield name, shown, field.metadata["doc"]
