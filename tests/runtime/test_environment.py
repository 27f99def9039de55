"""The function's environment (14.4) and its copy into environ (14.2, open question 7)."""

from __future__ import annotations

import logging
import os

from fc_wsgi.config import FunctionConfig
from fc_wsgi.runtime.environment import (
    apply_process_environment,
    environ_extras,
    function_variables,
    instance_id,
)

FUNCTION = FunctionConfig(
    name="f", handler="index.handler", code_uri="/code", memory_size=256, region="cn-shanghai",
    account_id="123", service_name="svc", environment_variables={"DB": "sqlite"},
)  # fmt: skip


def test_fc_variables_and_the_configured_ones():
    variables = function_variables(FUNCTION, "fc2")
    assert variables == {
        "FC_FUNC_CODE_PATH": "/code",
        "FC_FUNCTION_NAME": "f",
        "FC_FUNCTION_HANDLER": "index.handler",
        "FC_FUNCTION_MEMORY_SIZE": "256",
        "FC_REGION": "cn-shanghai",
        "FC_ACCOUNT_ID": "123",
        "FC_SERVICE_NAME": "svc",
        "FC_QUALIFIER": "LATEST",
        "FC_INSTANCE_ID": instance_id(),
        "DB": "sqlite",
    }
    assert function_variables(FUNCTION, "fc3")["FC_SERVICE_NAME"] == ""


def test_environ_extras_never_carry_server_keys():
    process = {"PATH": "/bin", "QUERY_STRING": "x", "HTTP_HOST": "h", "wsgi.x": "y", "HTTP": "1"}
    extras = environ_extras({"DB": "sqlite"}, process)
    assert extras == {"PATH": "/bin", "DB": "sqlite"}


def test_apply_process_environment_writes_os_environ_and_the_log_level(monkeypatch):
    monkeypatch.setenv("FC_SERVER_LOG_LEVEL", "warning")
    root = logging.getLogger()
    level = root.level
    saved = dict(os.environ)
    try:
        apply_process_environment(FUNCTION)
        assert os.environ["FC_REGION"] == "cn-shanghai" and os.environ["DB"] == "sqlite"
        assert root.level == logging.WARNING
    finally:
        os.environ.clear()
        os.environ.update(saved)
        root.setLevel(level)
