"""The ``function`` section: the FC function behind the trigger (fc-spec-runtime.md 14-17).

FC's own field names, both generations: ``functionName`` (FC 2.0 ``name``), ``codeUri`` (FC 3.0
``code``), ``handler``, ``memorySize``, ``timeout``, ``initializer`` + ``initializationTimeout``
(FC 3.0 ``instanceLifecycleConfig.initializer``), ``instanceConcurrency``,
``environmentVariables``, ``region``, ``accountId``, ``qualifier``, ``serviceName``, and our
``maxInstances``. Declared with config.py's machinery (one declaration drives loading, errors,
``fc-wsgi check`` and the README reference); the runtime that uses it is ``fc_wsgi/runtime/``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ._fields import (
    field_error,
    int_in,
    json_object,
    parse_text,
    section,
    setting,
    text_list,
    type_name,
)


def _account_id(value: Any, path: str) -> str:
    """A string; a number (a UID read from YAML) is taken as its digits."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return _text_or_empty(value, path)


def _text_or_empty(value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise field_error(path, f"must be a string, got {type_name(value)}")
    return value


def _memory_mb(value: Any, path: str) -> int:
    memory: int = int_in(64, 32768)(value, path)
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

    handler: str = setting(
        "handler", "", _text_or_empty, "module.function, as the function's handler"
    )
    timeout: int = setting("timeout", 3, int_in(1, 300), "seconds the hook may run")
    command: tuple[str, ...] = setting(
        "command", (), text_list, "custom images' hook command; accepted, not run", shown=False
    )


@dataclasses.dataclass(frozen=True)
class LifecycleConfig:
    """FC 3.0's ``instanceLifecycleConfig``; only the initializer runs here."""

    initializer: LifecycleHook | None = setting(
        "initializer", None, section(LifecycleHook), "FC 3.0 spelling of initializer",
        optional_section=LifecycleHook,
    )  # fmt: skip
    pre_stop: Mapping[str, Any] | None = setting(
        "preStop", None, json_object, "accepted, not run", shown=False
    )
    pre_freeze: Mapping[str, Any] | None = setting(
        "preFreeze", None, json_object, "accepted, not run", shown=False
    )


@dataclasses.dataclass(frozen=True)
class FunctionConfig:
    """The function behind the trigger, with FC's names (fc-spec-runtime.md sections 14-17).

    With this section fc-wsgi also plays FC's Python runtime: ``fc.context``, the function's
    environment, initializer, timeout, concurrency cap and log tail.
    """

    name: str = setting(
        "functionName", "function", parse_text, "function name (FC 2.0: name)", aliases=("name",)
    )
    handler: str = setting(
        "handler", "index.handler", parse_text, "module.function under codeUri (FC's handler)"
    )
    code_uri: str = setting(
        "codeUri", ".", parse_text,
        "code root, relative to the config file's folder (FC 3.0: code)", aliases=("code",),
    )  # fmt: skip
    memory_size: int = setting(
        "memorySize", 512, _memory_mb, "MB, reported only (no limit is enforced): 64..32768"
    )
    timeout: int = setting(
        "timeout", 3, int_in(1, 86400), "seconds an invocation may run; then 502 timed out"
    )
    initializer: str = setting(
        "initializer",
        "",
        _text_or_empty,
        "module.function run once per worker before its first call",
    )
    initialization_timeout: int = setting(
        "initializationTimeout", 3, int_in(1, 300), "seconds the initializer may run"
    )
    instance_lifecycle_config: LifecycleConfig = setting(
        "instanceLifecycleConfig", LifecycleConfig(), section(LifecycleConfig), "FC 3.0 hooks"
    )
    instance_concurrency: int = setting(
        "instanceConcurrency", 1, int_in(1, 200), "concurrent invocations per worker (threads)"
    )
    max_instances: int | None = setting(
        "maxInstances", None, int_in(1, 10000),
        "worker processes counted by the cap (none: the workers); over it: 429",
    )  # fmt: skip
    environment_variables: Mapping[str, str] | None = setting(
        "environmentVariables", None, _environment, "set for the function, seen in environ"
    )
    region: str = setting("region", "cn-hangzhou", parse_text, "FC_REGION, context.region")
    account_id: str = setting("accountId", "", _account_id, "FC_ACCOUNT_ID, context.account_id")
    qualifier: str = setting("qualifier", "LATEST", parse_text, "context.service.qualifier")
    service_name: str = setting(
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


def resolve_function(function: FunctionConfig, base: Path, path: str) -> FunctionConfig:
    """The code root made absolute (relative to ``base``, the config file's folder); one
    initializer, whichever generation's spelling names it."""
    hook = function.instance_lifecycle_config.initializer
    if function.initializer and hook is not None and hook.handler != function.initializer:
        problem = "initializer and instanceLifecycleConfig.initializer name different handlers"
        raise field_error(f"{path}.initializer", problem)
    code_uri = str((base / function.code_uri).resolve())
    return dataclasses.replace(function, code_uri=code_uri)
