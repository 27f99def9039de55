"""FunctionRuntime: the environ FC's runtime builds (14.2), its headers (17), cap (16), defaults."""

from __future__ import annotations

import base64
import json
import threading

from support import Recorder, both_sides, make_environ, validated

from fc_wsgi import make_trigger_app
from fc_wsgi.runtime import FunctionRuntime
from fc_wsgi.runtime.slots import LocalSlots


def echo_environ(environ, start_response):
    keys = ("fc.request_uri", "HTTP", "HTTP_X_FC_FUNCTION_HANDLER", "FC_REGION", "FC_FUNCTION_NAME",
            "GREETING", "PATH_INFO", "REQUEST_METHOD", "FC_INSTANCE_ID", "SHADOW")  # fmt: skip
    body = json.dumps({k: environ.get(k) for k in keys}).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]


def test_environ_keys_of_fc_python_runtime(function_stack, monkeypatch):
    monkeypatch.setenv("PATH_INFO", "/from-the-process")  # a CGI key: the server's value wins
    monkeypatch.setenv("SHADOW", "process")
    app = function_stack(
        echo_environ,
        functionName="f1",
        region="cn-beijing",
        environmentVariables={"GREETING": "hi", "SHADOW": "function"},
    )
    seen = app.get("/a/b?x=1").json
    assert seen["fc.request_uri"] == "/a/b?x=1"
    assert seen["HTTP"] == "on"
    assert seen["HTTP_X_FC_FUNCTION_HANDLER"] == "index.handler"
    assert seen["FC_REGION"] == "cn-beijing" and seen["FC_FUNCTION_NAME"] == "f1"
    assert seen["FC_INSTANCE_ID"].startswith("c-")
    assert seen["GREETING"] == "hi" and seen["SHADOW"] == "function"
    assert seen["PATH_INFO"] == "/a/b" and seen["REQUEST_METHOD"] == "GET"


def test_a_router_set_request_uri_is_kept(function_stack):
    app = function_stack(echo_environ)
    seen = app.get("/p", extra_environ={"fc.request_uri": "/2016-08-15/proxy/s/f/p"}).json
    assert seen["fc.request_uri"] == "/2016-08-15/proxy/s/f/p"


def test_two_functions_in_one_process_see_only_their_own_variables(tmp_path):
    def stack(name, variables):
        function = {"functionName": name, "codeUri": str(tmp_path),
                    "environmentVariables": variables}  # fmt: skip
        config = {"authType": "anonymous", "methods": ["GET"], "function": function,
                  "async": {"journal": str(tmp_path / f"{name}.sqlite3")}}  # fmt: skip
        return validated(lambda inner: make_trigger_app(inner, config), echo_environ)

    first = stack("one", {"GREETING": "from one"}).get("/").json
    second = stack("two", {"SHADOW": "from two"}).get("/").json
    assert first["GREETING"] == "from one" and first["SHADOW"] != "from two"
    assert second["SHADOW"] == "from two" and second["GREETING"] != "from one"
    assert (first["FC_FUNCTION_NAME"], second["FC_FUNCTION_NAME"]) == ("one", "two")


def test_metrics_headers_on_every_function_answer(function_stack):
    response = function_stack(echo_environ).get("/")
    assert int(response.headers["X-Fc-Invocation-Duration"]) >= 1  # ceil of the ms (OQ 10)
    memory = response.headers["X-Fc-Max-Memory-Usage"]
    assert float(memory) > 1 and len(memory.split(".")[1]) == 2  # MiB, 2 decimals (OQ 10)
    assert "X-Fc-Log-Result" not in response.headers  # only when asked (OQ 9)


def test_log_tail_in_fc_format(function_stack):
    def handler(environ, start_response):
        import logging

        print("printed line")
        logging.getLogger().warning("logged %s", "line")
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    response = function_stack(handler, memorySize=128).get("/", headers={"X-Fc-Log-Type": "tail"})
    rid = response.headers["X-Fc-Request-Id"]
    log = base64.b64decode(response.headers["X-Fc-Log-Result"]).decode()
    lines = log.splitlines()
    assert lines[0] == f"FC Invoke Start RequestId: {rid}"
    assert lines[1] == "printed line"
    assert lines[2].endswith(f"Z {rid} [WARNING] logged line")
    assert lines[3] == f"FC Invoke End RequestId: {rid}"
    assert lines[4] == ""
    assert (
        lines[5].startswith("Duration: ") and "Memory Size: 128 MB, Max Memory Used: " in lines[5]
    )


def test_log_type_other_than_tail_is_none(function_stack):
    response = function_stack(echo_environ).get("/", headers={"X-Fc-Log-Type": "None"})
    assert "X-Fc-Log-Result" not in response.headers


def test_tail_is_the_last_4096_bytes(function_stack):
    def chatty(environ, start_response):
        for i in range(300):
            print(f"line {i:04d} " + "x" * 40)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    response = function_stack(chatty).get("/", headers={"X-Fc-Log-Type": "Tail"})
    data = base64.b64decode(response.headers["X-Fc-Log-Result"], validate=True)
    assert len(data) == 4096
    assert data.decode().rstrip("\n").splitlines()[-1].startswith("Duration: ")
    assert b"line 0000" not in data and b"line 0299" in data


def test_failed_invocation_end_line_and_answer(function_stack):
    def broken(environ, start_response):
        raise KeyError("missing")

    response = function_stack(broken).get("/", headers={"X-Fc-Log-Type": "Tail"}, status=502)
    assert response.json == {"errorMessage": "'missing'", "errorType": "KeyError"}
    log = base64.b64decode(response.headers["X-Fc-Log-Result"]).decode()
    assert ", Error: Unhandled function error" in log
    assert "X-Fc-Invocation-Duration" in response.headers


def test_over_the_cap_is_429_resource_exhausted_at_once(tmp_path):
    release = threading.Event()
    entered = threading.Event()

    def slow(environ, start_response):
        entered.set()
        release.wait(5)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    function = both_sides(
        slow, {"authType": "anonymous", "methods": ["GET"],
               "async": {"journal": str(tmp_path / "a.sqlite3")},
               "function": {"codeUri": str(tmp_path), "timeout": 10}},
    )  # fmt: skip
    first = Recorder()
    worker = threading.Thread(target=first.run, args=(function, make_environ()))
    worker.start()
    try:
        assert entered.wait(5)
        second = Recorder()
        body = second.run(function, make_environ())
        assert second.status.startswith("429")
        assert second.header("X-Fc-Error-Type") == "FcCommonError"  # open question 6
        assert json.loads(body)["Code"] == "ResourceExhausted"
        assert json.loads(body)["Message"] == "concurrent invocations exceeded the limit of 1"
    finally:
        release.set()
        worker.join()
    assert first.status.startswith("200")


def test_runtime_alone_on_an_app(tmp_path):
    from fc_wsgi.config import FunctionConfig

    app = validated(
        FunctionRuntime, echo_environ, function=FunctionConfig(code_uri=str(tmp_path)),
        slots=LocalSlots(2),
    )  # fmt: skip
    assert app.get("/").json["HTTP"] == "on"


def test_the_triggers_secret_variables_stay_out_of_environ(tmp_path, monkeypatch):
    from fc_wsgi.auth.signing import sign_headers

    monkeypatch.setenv("AK2_SECRET", "trigger-secret-value")
    monkeypatch.setenv("OTHER", "visible")

    def handler(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [repr(sorted(environ.items(), key=str)).encode()]

    config = {"authType": "function", "methods": ["GET"],
              "accessKeys": [{"id": "AK2", "secretEnv": "AK2_SECRET"}],
              "async": {"journal": str(tmp_path / "a.sqlite3")},
              "function": {"codeUri": str(tmp_path)}}  # fmt: skip
    app = validated(lambda inner: make_trigger_app(inner, config), handler)
    signed = sign_headers("GET", "http://localhost/", access_key_id="AK2",
                          access_key_secret="trigger-secret-value")  # fmt: skip
    body = app.get("/", headers=dict(signed)).text
    assert "'OTHER', 'visible'" in body and "trigger-secret-value" not in body


def test_instance_concurrency_above_one_is_honoured_with_a_warning(function_stack, caplog):
    function_stack(echo_environ, instanceConcurrency=8).get("/")  # open question 5
    assert any("instanceConcurrency > 1" in r.getMessage() for r in caplog.records)
