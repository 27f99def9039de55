"""make_trigger_app: the whole stack in DESIGN.md's order, around any WSGI app."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import webtest
from support import hello_app

from fc_wsgi import AsyncDispatcher, ConfigError, TriggerConfig, make_trigger_app
from fc_wsgi.config import AsyncConfig
from fc_wsgi.cors import CorsDefaults
from fc_wsgi.headers import HeaderFilter
from fc_wsgi.limits import LimitGuard

BASE = {"authType": "anonymous", "methods": ["GET", "POST"]}


@pytest.fixture(autouse=True)
def _journal_in_tmp(tmp_path, monkeypatch):
    """Keep the async journal of configs without one out of the working tree."""
    BASE["async"] = {"journal": str(tmp_path / "async.sqlite3")}
    monkeypatch.setattr(
        "fc_wsgi.factory.DEFAULT_TRIGGER",
        TriggerConfig(auth_type="anonymous", async_=AsyncConfig(journal=BASE["async"]["journal"])),
    )


def layers(app):
    found = []
    while hasattr(app, "app"):
        found.append(type(app))
        app = app.app
    return found


def test_layers_are_in_design_order():
    assert layers(make_trigger_app(hello_app, BASE)) == [
        CorsDefaults,
        LimitGuard,
        AsyncDispatcher,
        HeaderFilter,
    ]


def test_layers_with_nothing_to_do_are_left_out():
    config = {**BASE, "cors": {"mode": "off"}}
    assert layers(make_trigger_app(hello_app, config)) == [
        LimitGuard,
        AsyncDispatcher,
        HeaderFilter,
    ]


def test_import_string_and_no_config():
    app = webtest.TestApp(make_trigger_app("examples.hello:handler"))
    response = app.options("/", headers={"Origin": "http://a"})  # every method allowed
    assert response.json["method"] == "OPTIONS"


def test_bad_import_string_is_a_config_error():
    with pytest.raises(ConfigError, match="cannot import"):
        make_trigger_app("examples.nowhere:app", BASE)
    with pytest.raises(ConfigError, match="not a WSGI callable"):
        make_trigger_app("examples.hello:__doc__", BASE)


def test_errors_of_inner_layers_carry_cors_and_request_id():
    app = webtest.TestApp(make_trigger_app(hello_app, BASE))
    response = app.delete("/", headers={"Origin": "http://page.example"}, status=403)
    assert response.headers["Access-Control-Allow-Origin"] == "http://page.example"
    assert response.json["RequestId"] == response.headers["X-Fc-Request-Id"]


def test_one_request_id_per_request_across_layers():
    app = webtest.TestApp(make_trigger_app("examples.hello:handler", BASE))
    response = app.get("/x")
    assert response.json["requestId"] == response.headers["X-Fc-Request-Id"]
    assert response.json["fcHeadersSeen"] == ["HTTP_X_FC_REQUEST_ID"]


def test_flask_app_is_wrapped():
    from examples.flask_app import app as flask_app

    config = {**json.loads(Path("examples/trigger.json").read_text()), "async": BASE["async"]}
    app = webtest.TestApp(make_trigger_app(flask_app, config))
    response = app.get("/", headers={"Origin": "http://page.example"})
    assert response.json["hello"] == "world"
    assert response.json["requestId"] == response.headers["X-Fc-Request-Id"]
    assert response.headers["Access-Control-Allow-Origin"] == "http://page.example"
    assert response.headers["Content-Length"] == str(len(response.body))
    failed = app.get("/boom", status=502)
    assert failed.headers["X-Fc-Error-Type"] == "UnhandledInvocationError"
    assert json.loads(failed.body)["errorType"] == "RuntimeError"


def test_default_domain_and_disabled_url():
    config = {**BASE, "defaultDomain": True, "disableURLInternet": True}
    app = webtest.TestApp(make_trigger_app(hello_app, config))
    assert app.get("/", status=403).json["Code"] == "AccessDenied"
    served = webtest.TestApp(make_trigger_app(hello_app, {**BASE, "defaultDomain": True}))
    assert served.get("/").headers["Content-Disposition"] == "attachment"


def test_no_app_needs_a_function_section():
    with pytest.raises(ConfigError, match="no app given"):
        make_trigger_app(None, {"authType": "anonymous", "methods": ["GET"]})


def test_a_function_section_adds_the_runtime_between_dispatcher_and_filter(tmp_path):
    from fc_wsgi.runtime import FunctionHandler

    config = {"authType": "anonymous", "methods": ["GET"], "cors": {"mode": "off"},
              "async": {"journal": str(tmp_path / "a.sqlite3")},
              "function": {"codeUri": str(tmp_path)}}  # fmt: skip
    layers = []
    layer = make_trigger_app(hello_app, config)
    while hasattr(layer, "app"):
        layers.append(type(layer).__name__)
        layer = layer.app
    assert layers == ["LimitGuard", "AsyncDispatcher", "FunctionRuntime", "HeaderFilter"]
    assert isinstance(layer, FunctionHandler) and layer.handler is hello_app


def test_async_tasks_of_the_dramatiq_worker_get_the_function_runtime_too(tmp_path):
    from fc_wsgi.factory import make_task_app
    from fc_wsgi.runtime import FunctionRuntime

    config = {"authType": "anonymous", "methods": ["GET"],
              "function": {"codeUri": str(tmp_path)}}  # fmt: skip
    assert isinstance(make_task_app(hello_app, config), FunctionRuntime)
