"""Handler strings under a code root, FC's load-failure answers, and two code roots at once."""

from __future__ import annotations

import json
import sys
import uuid
from wsgiref.validate import validator

import pytest
from support import make_environ, write_tree

from fc_wsgi import make_trigger_app
from fc_wsgi.runtime.handler import (
    HandlerNotFound,
    ImportModuleError,
    InvalidHandleName,
    UserCodeError,
    UserCodeSyntaxError,
    load_handler,
)

HANDLER = """
def handler(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [WHO]
"""


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def test_module_function_and_sub_directories_with_packages(tmp_path):
    name = unique("pkg")
    files = {
        "index.py": "WHO = b'index'\n" + HANDLER,
        f"{name}/sub/main.py": "WHO = b'main'\n" + HANDLER,
    }
    root = str(write_tree(tmp_path, files))
    assert load_handler("index.handler", root).__module__ == "index"
    # FC: `test.test_code.main.func` -> func in test/test_code/main.py; `/` works as well.
    for handler in (f"{name}.sub.main.handler", f"{name}/sub.main.handler"):
        assert load_handler(handler, root).__globals__["WHO"] == b"main"
    sys.modules.pop("index", None)


@pytest.mark.parametrize(
    ("source", "handler", "error", "message"),
    [
        (None, "missing_mod.handler", ImportModuleError, "Unable to import module 'missing_mod'"),
        ("def handler(:\n", "MOD.handler", UserCodeSyntaxError, "Syntax error in module 'MOD'"),
        ("x = 1\n", "nodot", InvalidHandleName, "Invalid handler 'nodot'"),
        (
            "raise RuntimeError('no database')\n",
            "MOD.handler",
            UserCodeError,
            "Module initialization error: 'no database'",
        ),
        ("x = 1\n", "MOD.other", HandlerNotFound, "Handler 'other' is missing on module 'MOD'"),
        ("import not_installed_dependency\n", "MOD.h", ImportModuleError, "Unable to import"),
    ],
)
def test_load_failures_are_fc_errors(tmp_path, source, handler, error, message):
    module = unique("mod")
    handler = handler.replace("MOD", module)
    if source is not None:
        write_tree(tmp_path, {f"{module}.py": source})
    with pytest.raises(error) as raised:
        load_handler(handler, str(tmp_path))
    assert str(raised.value).startswith(message.replace("MOD", module))


def test_a_load_failure_answers_502_with_fc_body_and_no_traceback(tmp_path, recorder):
    module = unique("broken")
    write_tree(tmp_path, {f"{module}.py": "raise ValueError('bad config')\n"})
    config = {
        "authType": "anonymous",
        "methods": ["GET"],
        "function": {"codeUri": str(tmp_path), "handler": f"{module}.handler"},
    }
    app = validator(make_trigger_app(None, config))
    for _ in range(2):  # every invocation answers it, the server goes on
        body = recorder.run(app, make_environ())
        assert recorder.status.startswith("502")
        assert recorder.header("X-Fc-Error-Type") == "UnhandledInvocationError"
        assert json.loads(body) == {
            "errorMessage": "Module initialization error: 'bad config'",
            "errorType": "UserCodeError",
        }
        recorder.status = None


def test_two_code_roots_with_the_same_module_names_do_not_collide(tmp_path):
    module, helper = unique("index"), unique("helper")
    roots = []
    for who in ("a", "b"):
        source = f"import {helper}\nWHO = {helper}.WHO\n" + HANDLER
        files = {f"{module}.py": source, f"{helper}.py": f"WHO = b'{who}'\n"}
        roots.append(str(write_tree(tmp_path / who, files)))
    first = load_handler(f"{module}.handler", roots[0])
    second = load_handler(f"{module}.handler", roots[1])
    assert first.__globals__["WHO"] == b"a"
    assert second.__globals__["WHO"] == b"b"
    # the first function keeps the names in sys.modules; the second's live through its handler
    assert sys.modules[module].WHO == b"a"
    assert load_handler(f"{module}.handler", roots[1]).__globals__["WHO"] == b"b"
