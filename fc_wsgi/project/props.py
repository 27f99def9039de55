"""Reading the parts of a function's props both editions share (fc-spec-runtime 18, 19.1).

Code folders, environment variables, the HTTP trigger, custom-domain routes, rewrite rules
and domain ``authConfig`` look the same under ``fc`` and ``fc3``; the edition readers
(``fc2.py``, ``fc3.py``) only say where each one sits. Unknown props are never read, so they
are ignored; everything read is checked and a mistake names its YAML path and line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._fields import type_name
from ..common import ALL_METHODS, Profile
from ..config import ConfigError, load_config
from .expressions import ExpressionError, Ref, parse_template
from .rewrite import compile_rule
from .spec import FunctionSpec, RewriteConfig, RouteSpec
from .variables import Node

#: Largest values FC accepts (fc-spec-runtime 18.1, open question 4).
MAX_TIMEOUT_SECONDS = 86400
MAX_MEMORY_MB = 32768
MAX_INSTANCE_CONCURRENCY = 200
MAX_INITIALIZATION_TIMEOUT_SECONDS = 300

_AUTH_TYPES = ("anonymous", "function", "jwt")
_RULE_KEYS = (("equalRules", "equal"), ("wildcardRules", "wildcard"), ("regexRules", "regex"))


@dataclass
class DomainDecl:
    """One declaration of a custom domain; the loader merges those with the same name."""

    name: str
    protocol: str
    routes: list[RouteSpec]
    auth_config: dict[str, Any] | None
    node: Node = field(repr=False)


def unserved_runtime(runtime: str) -> str | None:
    """Why a function of ``runtime`` is not served here, or None for Python runtimes."""
    if runtime.startswith("python"):
        return None
    if runtime.startswith("custom"):
        return f"runtime {runtime} runs its own HTTP server, not a handler; not served"
    return f"runtime {runtime} is not Python; not served"


def code_folder(props: Node, key: str) -> tuple[Path | None, str | None]:
    """The absolute code folder at ``props.<key>`` (a path or ``{src}``), or why there is none."""
    node = props.get(key)
    if node is None:
        return None, f"no {key}; not served"
    if isinstance(node.value, dict):
        src = node.text("src")
        if src is None:
            return None, f"{key} is in OSS, not a local folder; not served"
    else:
        src = props.required_text(key)
    folder = (node.source.folder / src).resolve()
    if folder.is_file():
        return None, f"{key} {src} is an archive, not a folder; not served"
    if not folder.is_dir():
        raise node.error(f"folder {src} does not exist ({folder})")
    return folder, None


def environment(props: Node, key: str = "environmentVariables") -> dict[str, str]:
    """``environmentVariables``: names to text (numbers and booleans written as YAML shows)."""
    node = props.mapping(key)
    if node is None:
        return {}
    variables = {}
    for name, value in node.items():
        raw = value.value
        if isinstance(raw, bool):
            raw = "true" if raw else "false"
        elif isinstance(raw, (int, float)):
            raw = str(raw)
        elif not isinstance(raw, str):
            raise value.error(f"must be text, got {type(raw).__name__}")
        variables[name] = raw
    return variables


def http_trigger(props: Node, type_key: str) -> Node | None:
    """The one HTTP trigger of ``props.triggers``; FC allows one per function version."""
    found = [t for t in props.elements("triggers") if _text_lower(t, type_key) == "http"]
    if len(found) > 1:
        raise found[1].error("a second HTTP trigger; FC allows one per function")
    return found[0] if found else None


def _text_lower(node: Node, key: str) -> str:
    return (node.text(key) or "").lower()


def trigger_mapping(
    trigger: Node, key: str, profile: Profile, function: dict[str, Any]
) -> dict[str, Any]:
    """``make_trigger_app``'s mapping: ``trigger.<key>``, ``profile`` and ``function``.

    The trigger part is checked with :func:`load_config` now, so that its errors point into
    the YAML file rather than surfacing when the server starts.
    """
    config = trigger.require(key)
    if not isinstance(config.value, dict):
        raise config.error(f"must be an object, got {type_name(config.value)}")
    mapping: dict[str, Any] = {**config.plain(), "profile": profile}
    checked(config, mapping)
    mapping["function"] = function
    return mapping


def checked(node: Node, mapping: dict[str, Any], *, under: str = "") -> None:
    """Load ``mapping`` as a trigger config; its errors are placed below ``node``.

    ``under`` is the config field ``node`` stands for (a domain's ``authInfo`` is the
    trigger's ``authConfig``), dropped from the field paths load_config names.
    """
    try:
        load_config(mapping)
    except ConfigError as exc:
        field_path, _, problem = str(exc).partition(": ")
        if under and field_path.startswith(under):
            field_path = field_path[len(under) :].lstrip(".")
        if not field_path:
            raise node.error(problem) from None
        try:
            parts = parse_template("${" + field_path + "}")
        except ExpressionError:
            parts = []
        if not problem or len(parts) != 1 or not isinstance(parts[0], Ref):
            raise node.error(str(exc)) from None
        names = parts[0].names
        raise node.source.error(
            (*node.where, *names), problem, origin=(*node.origin, *names)
        ) from None


def route(node: Node, function: str) -> RouteSpec:
    """One route (``PathConfig``) to the function whose key is ``function``."""
    path = node.required_text("path")
    path_node = node.require("path")
    if not path.startswith("/"):
        raise path_node.error(f"must start with /, got {path!r}")
    if "*" in path[:-1]:
        raise path_node.error(f"only a trailing * is a wildcard in FC routes, got {path!r}")
    methods = []
    for item in node.elements("methods"):
        method = str(item.value).upper()
        if method not in ALL_METHODS:
            raise item.error(f"must be one of {' '.join(ALL_METHODS)}; got {item.value!r}")
        methods.append(method)
    return RouteSpec(
        path=path,
        function=function,
        methods=tuple(dict.fromkeys(methods)),
        qualifier=node.text("qualifier", "LATEST") or "LATEST",
        rewrite=rewrite_config(node.mapping("rewriteConfig")),
        declared_at=node.location(),
    )


def rewrite_config(node: Node | None) -> RewriteConfig:
    if node is None:
        return RewriteConfig()
    lists: dict[str, tuple[tuple[str, str], ...]] = {}
    for key, kind in _RULE_KEYS:
        rules = []
        for rule in node.elements(key):
            match = rule.required_text("match")
            replacement = rule.text("replacement", "") or ""
            if kind != "equal":
                try:
                    compile_rule(kind, match, replacement)
                except ValueError as exc:
                    raise rule.error(str(exc)) from None
            rules.append((match, replacement))
        lists[kind] = tuple(rules)
    return RewriteConfig(**lists)


def domain_auth(node: Node | None) -> dict[str, Any] | None:
    """A domain's ``authConfig`` (FC 3.0): ``{authType, authInfo}``, checked."""
    if node is None:
        return None
    auth_type = node.required_text("authType")
    if auth_type not in _AUTH_TYPES:
        raise node.require("authType").error(f"must be one of {', '.join(_AUTH_TYPES)}")
    auth: dict[str, Any] = {"authType": auth_type}
    info = node.get("authInfo")
    if info is not None:
        auth["authInfo"] = info.plain()
    if auth_type == "jwt":
        if info is None:
            raise node.error("authType jwt needs authInfo (the JWT settings)")
        jwt = {"authType": "jwt", "methods": list(ALL_METHODS), "authConfig": auth["authInfo"]}
        checked(info, jwt, under="authConfig")
    return auth


def host_name(name: str) -> str:
    """A name usable as a Host: lower case, ``_`` and ``$`` as ``-``."""
    return name.lower().replace("_", "-").replace("$", "-")


@dataclass
class Reading:
    """What an edition reader found: functions, domain declarations, ignored resources."""

    functions: list[FunctionSpec] = field(default_factory=list)
    domains: list[DomainDecl] = field(default_factory=list)
    ignored: list[tuple[str, str]] = field(default_factory=list)


def component(resource: Node) -> str:
    """The component name without owner and version: ``devsapp/fc3@0.1`` → ``fc3``."""
    name = resource.required_text("component").strip()
    return name.rpartition("/")[2].partition("@")[0]


def function_fields(node: Node, *, memory_mb_default: int, **known: Any) -> dict[str, Any]:
    """FC's function fields read from ``node`` plus the ``known`` ones (None left out)."""
    fields: dict[str, Any] = {
        "memorySize": node.integer("memorySize", memory_mb_default, 64, MAX_MEMORY_MB),
        "timeout": node.integer("timeout", 3, 1, MAX_TIMEOUT_SECONDS),
        "instanceConcurrency": node.integer("instanceConcurrency", 1, 1, MAX_INSTANCE_CONCURRENCY),
    }
    lifecycle = node.mapping("instanceLifecycleConfig")
    if lifecycle is not None:
        fields["instanceLifecycleConfig"] = lifecycle.plain()
    fields.update((name, value) for name, value in known.items() if value is not None)
    return fields


def protocol(node: Node) -> str:
    return (node.text("protocol", "HTTP") or "HTTP").upper()


def initialization_timeout(node: Node | None, key: str) -> int | None:
    if node is None:
        return None
    return node.integer(key, 3, 1, MAX_INITIALIZATION_TIMEOUT_SECONDS)
