"""The function's environment: FC's ``FC_*`` variables, ``environmentVariables``, ``environ``.

FC runs each function in its own instance whose environment holds ``FC_REGION``,
``FC_FUNCTION_NAME``, ... and the configured ``environmentVariables`` (fc-spec-runtime.md
14.4), and its Python runtime starts each WSGI ``environ`` as a copy of that environment
(14.2, open question 7). Real FC projects read ``environ['FC_REGION']`` or their own variables
from ``environ``. Here a function's variables live in a dict of their own, merged into the
environ of *its* requests only, so two functions served by one process never see each other's.
Writing them into ``os.environ`` (where ``os.environ['X']`` at import time finds them) is one
explicit call, :func:`apply_process_environment`, made by the single-function ``serve`` path.
"""

from __future__ import annotations

import logging
import os
import secrets
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..function_config import FunctionConfig

#: Keys a WSGI server may set that the process environment must never overwrite.
CGI_KEYS = frozenset(
    {
        "REQUEST_METHOD", "SCRIPT_NAME", "PATH_INFO", "QUERY_STRING", "CONTENT_TYPE",
        "CONTENT_LENGTH", "SERVER_NAME", "SERVER_PORT", "SERVER_PROTOCOL", "SERVER_SOFTWARE",
        "REMOTE_ADDR", "REMOTE_HOST", "REMOTE_PORT", "REMOTE_USER", "REMOTE_IDENT", "AUTH_TYPE",
        "GATEWAY_INTERFACE", "PATH_TRANSLATED", "RAW_URI", "REQUEST_URI", "HTTPS", "HTTP",
    }
)  # fmt: skip

_instance_id: tuple[int, str] = (0, "")


def instance_id() -> str:
    """This process's FC-style instance id (``c-<8 hex>-<20 hex>``), new after a fork."""
    global _instance_id
    pid, value = _instance_id
    if pid != os.getpid():
        value = f"c-{int(time.time()):08x}-{secrets.token_hex(10)}"
        _instance_id = (os.getpid(), value)
    return value


def function_variables(function: FunctionConfig, profile: str = "fc3") -> dict[str, str]:
    """The variables FC sets in the function's instance, then its ``environmentVariables``."""
    variables = {
        "FC_FUNC_CODE_PATH": function.code_uri,
        "FC_FUNCTION_NAME": function.name,
        "FC_FUNCTION_HANDLER": function.handler,
        "FC_FUNCTION_MEMORY_SIZE": str(function.memory_size),
        "FC_REGION": function.region,
        "FC_ACCOUNT_ID": function.account_id,
        "FC_SERVICE_NAME": function.service_name if profile == "fc2" else "",
        "FC_QUALIFIER": function.qualifier,
        "FC_INSTANCE_ID": instance_id(),
    }
    variables.update(function.environment_variables or {})
    return variables


def environ_extras(variables: Mapping[str, str], process: Mapping[str, str]) -> dict[str, str]:
    """What each request's environ gets: the process environment, then the function's
    variables, without any key a server sets (CGI names, ``HTTP_*``, dotted WSGI keys)."""
    merged = {**process, **variables}
    return {
        key: value
        for key, value in merged.items()
        if key not in CGI_KEYS and not key.startswith("HTTP_") and "." not in key
    }


def apply_process_environment(function: FunctionConfig, profile: str = "fc3") -> None:
    """Write the function's variables into ``os.environ`` and set the root log level from
    ``FC_SERVER_LOG_LEVEL`` (default INFO), as FC's instance does. For one function per
    process only: a project server serving several functions must not call it."""
    os.environ.update(function_variables(function, profile))
    level = os.environ.get("FC_SERVER_LOG_LEVEL", "INFO").upper()
    logging.getLogger().setLevel(getattr(logging, level, logging.INFO))
