"""make_trigger_app: the whole stack in DESIGN.md's order, around any WSGI app."""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

import pytest
import webtest
from hypothesis import given, settings
from hypothesis import strategies as st
from support import ClosingBody, Recorder, both_sides, hello_app, make_environ

from fc_wsgi import AsyncDispatcher, ConfigError, TriggerConfig, make_trigger_app
from fc_wsgi.config import AsyncConfig
from fc_wsgi.cors import CorsDefaults, CorsStart
from fc_wsgi.errors import REQUEST_ID_KEY
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


# The fused CORS path: HeaderFilter sends CorsDefaults' headers itself (cors.CorsStart).

ORIGIN = "http://page.example"
CORS_DEFAULTS = {
    ("Access-Control-Allow-Origin", ORIGIN),
    ("Access-Control-Allow-Credentials", "true"),
    ("Vary", "Origin"),
}


def answering(headers, body=b"hi"):
    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain"), *headers])
        return [body]

    return app


def cors_of(recorder):
    return {(n, v) for n, v in recorder.headers if n.lower().startswith("access-control-")} | {
        (n, v) for n, v in recorder.headers if n.lower() == "vary"
    }


def test_the_apps_own_cors_headers_win_over_the_defaults():
    app = answering([("Access-Control-Allow-Origin", "https://own"), ("Vary", "Accept-Encoding")])
    recorder = Recorder()
    recorder.run(both_sides(app, BASE), make_environ(HTTP_ORIGIN=ORIGIN))
    assert recorder.header("Access-Control-Allow-Origin") == "https://own"
    assert recorder.header("Access-Control-Allow-Credentials") == "true"
    assert recorder.header("Vary") == "Accept-Encoding, Origin"


@pytest.mark.parametrize(
    ("vary", "merged"),
    [
        ("origin", "origin"),
        ("*", "*"),
        ("Accept, Origin", "Accept, Origin"),
        ("Accept", "Accept, Origin"),
    ],
)
def test_vary_is_merged_exactly(vary, merged):
    recorder = Recorder()
    recorder.run(both_sides(answering([("vary", vary)]), BASE), make_environ(HTTP_ORIGIN=ORIGIN))
    assert [v for n, v in recorder.headers if n.lower() == "vary"] == [merged]


def test_the_fused_answer_has_each_default_once_after_the_apps_headers():
    recorder = Recorder()
    app = both_sides(answering([]), BASE)
    body = recorder.run(app, make_environ(HTTP_ORIGIN=ORIGIN))
    names = [name for name, _ in recorder.headers]
    assert names[:2] == ["Content-Type", "X-Fc-Request-Id"]  # validator's body: no length
    assert sorted(names[2:]) == sorted(
        ["Access-Control-Allow-Origin", "Access-Control-Allow-Credentials",
         "Access-Control-Expose-Headers", "Vary"]
    )  # fmt: skip
    assert cors_of(recorder) >= CORS_DEFAULTS and body == b"hi"


def _raises(environ, start_response):
    raise RuntimeError("boom")


def _too_many_headers(environ, start_response):
    start_response("200 OK", [("X-Big", "x" * 9000)])
    return [b"never sent"]


@pytest.mark.parametrize(
    ("config", "app", "environ", "status"),
    [
        ({}, hello_app, {"REQUEST_METHOD": "DELETE"}, "403"),  # LimitGuard: method
        ({}, hello_app, {"PATH_INFO": "/" + "a" * 5000}, "400"),  # LimitGuard: URL
        ({"authType": "function", "accessKeys": [{"id": "k", "secret": "s"}]}, hello_app, {}, "4"),
        ({}, hello_app, {"HTTP_X_FC_INVOCATION_TYPE": "Async"}, "202"),  # dispatcher
        ({}, hello_app, {"HTTP_X_FC_INVOCATION_TYPE": "bogus"}, "400"),  # dispatcher
        ({}, _raises, {}, "502"),  # HeaderFilter: the app raised
        ({}, _too_many_headers, {}, "502"),  # HeaderFilter: BadResponse
    ],
)
def test_every_layers_error_answer_carries_cors(config, app, environ, status):
    recorder = Recorder()
    recorder.run(both_sides(app, {**BASE, **config}), make_environ(HTTP_ORIGIN=ORIGIN, **environ))
    assert recorder.status.startswith(status)
    assert cors_of(recorder) >= CORS_DEFAULTS
    assert len(recorder.headers) == len({name.lower() for name, _ in recorder.headers})


def test_lazy_streaming_app_under_validator_is_started_and_closed():
    body = ClosingBody([b"a", b"b"])

    def lazy(environ, start_response):
        def chunks():
            start_response("200 OK", [("Content-Type", "text/plain")])
            yield from body

        return ClosingChunks(chunks(), body)

    recorder = Recorder()
    assert recorder.run(both_sides(lazy, BASE), make_environ(HTTP_ORIGIN=ORIGIN)) == b"ab"
    assert body.closed and cors_of(recorder) >= CORS_DEFAULTS
    assert recorder.header("Content-Length") is None  # streamed: framed by the server


class ClosingChunks:
    """A generator's chunks, closing ``body`` when the server closes the iterable."""

    def __init__(self, chunks, body):
        self._chunks, self._body = chunks, body

    def __iter__(self):
        return self._chunks

    def close(self):
        self._chunks.close()
        self._body.close()


def test_head_keeps_no_length_of_an_unsent_body_and_carries_cors():
    recorder = Recorder()
    app = answering([], b"")
    recorder.run(both_sides(app, {**BASE, "methods": ["HEAD"]}), make_environ(
        REQUEST_METHOD="HEAD", HTTP_ORIGIN=ORIGIN))  # fmt: skip
    assert recorder.status == "200 OK" and recorder.header("Content-Length") is None
    assert cors_of(recorder) >= CORS_DEFAULTS


def test_exc_info_replaces_an_unsent_answer_with_cors():
    def recovers(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        try:
            raise ValueError("late")
        except ValueError:
            start_response("500 Internal Server Error", [("Content-Type", "text/plain")],
                           sys.exc_info())  # fmt: skip
        return [b"sorry"]

    recorder = Recorder()
    body = recorder.run(both_sides(recovers, BASE), make_environ(HTTP_ORIGIN=ORIGIN))
    assert (recorder.status, body) == ("500 Internal Server Error", b"sorry")
    assert cors_of(recorder) >= CORS_DEFAULTS


def test_legacy_write_sends_the_fused_headers_first():
    def writes(environ, start_response):
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"early ")
        return [b"late"]

    recorder = Recorder()
    assert recorder.run(both_sides(writes, BASE), make_environ(HTTP_ORIGIN=ORIGIN)) == b"early late"
    assert recorder.calls == 1 and cors_of(recorder) >= CORS_DEFAULTS


def test_headerfilter_sends_the_defaults_itself_unless_the_app_set_cors_headers(monkeypatch):
    calls = []
    merge = CorsStart.__call__
    monkeypatch.setattr(CorsStart, "__call__", lambda *args: calls.append(1) or merge(*args))
    app = both_sides(answering([]), BASE)
    Recorder().run(app, make_environ(HTTP_ORIGIN=ORIGIN))
    assert calls == []  # fused: the defaults went out without CorsStart's call
    Recorder().run(both_sides(answering([("Vary", "Accept")]), BASE), make_environ())
    assert calls == [1]


REQUEST_ID = "1-00000000-000000000000000000000000"
RESPONSE_NAMES = st.sampled_from(
    [
        "Content-Type", "Access-Control-Allow-Origin", "access-control-allow-credentials",
        "Access-Control-Expose-Headers", "Access-Control-Max-Age", "Vary", "vary",
        "X-Vary-Note", "X-Fc-Own", "Content-Length", "Set-Cookie", "Connection",
    ]
)  # fmt: skip
RESPONSE_VALUES = st.sampled_from(["*", "Origin", "Accept-Encoding", "origin, accept", "x" * 9000])
ANSWERS = st.fixed_dictionaries(
    {
        "status": st.sampled_from(["200 OK", "204 No Content", "404 Not Found"]),
        "headers": st.lists(st.tuples(RESPONSE_NAMES, RESPONSE_VALUES), max_size=4),
        "shape": st.sampled_from(["list", "lazy", "write", "raise"]),
        "chunks": st.lists(st.binary(max_size=8), max_size=3),
    }
)
REQUESTS = st.fixed_dictionaries(
    {
        "REQUEST_METHOD": st.sampled_from(["GET", "POST", "HEAD", "DELETE", "OPTIONS"]),
        "HTTP_ORIGIN": st.sampled_from([None, ORIGIN, "http://bad\x01"]),
        "HTTP_ACCESS_CONTROL_REQUEST_METHOD": st.sampled_from([None, "PUT"]),
        "HTTP_X_FC_INVOCATION_TYPE": st.sampled_from([None, "Sync", "bogus"]),
        "HTTP_X_FC_TRACE": st.sampled_from([None, "t"]),
    }
)


def scripted(environ, start_response):
    """Answers as ``environ["test.answer"]`` says: list, lazy, write() or raising."""
    answer = environ["test.answer"]
    status, headers, chunks = answer["status"], answer["headers"], answer["chunks"]
    if answer["shape"] == "raise":
        raise RuntimeError("scripted")
    if answer["shape"] == "write":
        write = start_response(status, list(headers))
        for chunk in chunks:
            write(chunk)
        return []
    if answer["shape"] == "lazy":

        def lazily():
            start_response(status, list(headers))
            yield from chunks

        return lazily()
    start_response(status, list(headers))
    return list(chunks)


def test_the_fused_stack_answers_as_the_layers_stacked_by_hand(tmp_path):
    fused = make_trigger_app(scripted, BASE)
    by_hand = CorsDefaults(
        LimitGuard(
            AsyncDispatcher(
                # A plain start_response wrapper in between: HeaderFilter cannot fuse.
                lambda environ, start: HeaderFilter(scripted)(environ, lambda *args: start(*args)),
                journal=str(tmp_path / "by-hand.sqlite3"),
            ),
            methods=BASE["methods"],
        ),
        methods=BASE["methods"],
    )

    def answer(app, request, script):
        environ = make_environ(**{k: v for k, v in request.items() if v is not None})
        environ.update({"test.answer": script, REQUEST_ID_KEY: REQUEST_ID})
        recorder = Recorder()
        body = recorder.run(app, environ)
        return recorder.status, Counter(recorder.headers), body

    @settings(max_examples=300, deadline=None)
    @given(request=REQUESTS, script=ANSWERS)
    def same_answer(request, script):
        assert answer(fused, request, script) == answer(by_hand, request, script)

    same_answer()
