"""The bugs this suite found, pinned in-process (their e2e forms are in test_bad_input.py)."""

from __future__ import annotations

import io
import json
from wsgiref.validate import validator

import pytest
from support import Recorder, make_environ

from fc_wsgi import CorsDefaults, LimitGuard, make_trigger_app
from fc_wsgi.errors import InvalidBody


class BrokenChunks(io.BytesIO):
    """A server's chunked stream that meets bad framing after some bytes (gunicorn raises
    ``InvalidChunkSize``, ``ChunkMissingTerminator`` or ``NoMoreData``, all its own types)."""

    def read(self, size=-1):
        raise OSError("Invalid chunk size: b'zz'")


def reading_app(environ, start_response):
    environ["wsgi.input"].read(16)  # an app that never checks: the gateway must answer
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"read"]


def swallowing_app(environ, start_response):
    try:
        environ["wsgi.input"].read(16)
    except InvalidBody:
        pass
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"swallowed"]


@pytest.mark.parametrize("app", [reading_app, swallowing_app])
def test_broken_chunked_framing_is_fcs_400_not_a_function_error(app, tmp_path):
    stack = make_trigger_app(app, {"methods": ["POST"], "authType": "anonymous",
                                   "async": {"journal": str(tmp_path / "j.db")}})  # fmt: skip
    environ = make_environ(REQUEST_METHOD="POST", HTTP_TRANSFER_ENCODING="chunked")
    environ.update({"wsgi.input": BrokenChunks(), "wsgi.input_terminated": True})
    recorder = Recorder()
    body = recorder.run(validator(stack), environ)
    assert recorder.status.startswith("400")
    assert json.loads(body)["Code"] == "InvalidArgument"
    assert recorder.header("X-Fc-Error-Type") == "FcCommonError"


@pytest.mark.parametrize("app", [reading_app, swallowing_app])
def test_a_body_shorter_than_its_content_length_never_reaches_the_app_whole(app):
    environ = make_environ(REQUEST_METHOD="POST", body=b"abc")
    environ["CONTENT_LENGTH"] = "100"  # the client announced 100 bytes, sent 3, half-closed
    recorder = Recorder()
    body = recorder.run(LimitGuard(validator(app)), environ)
    if app is swallowing_app:  # the app handled the error itself: its answer stands
        assert recorder.status.startswith("200")
        return
    assert recorder.status.startswith("400")
    assert json.loads(body)["Message"] == "request body ended after 3 of 100 bytes"


@pytest.mark.parametrize("size", [1, 3, 16, -1])
def test_a_whole_body_reads_as_before(size):
    seen = []

    def app(environ, start_response):
        stream = environ["wsgi.input"]
        if size == -1:
            seen.append(stream.read())
        else:
            seen.append(b"".join(iter(lambda: stream.read(size), b"")))
        seen.append(b"".join(stream))  # iteration after the end: nothing more
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    recorder = Recorder()
    recorder.run(LimitGuard(app), make_environ(REQUEST_METHOD="POST", body=b"line1\nline2"))
    assert recorder.status.startswith("200") and seen == [b"line1\nline2", b""]


@pytest.mark.parametrize("length", ["²", "١٢", "-1", "+3", "5_0", " 5"])
def test_content_length_must_be_ascii_digits(length):
    environ = make_environ(REQUEST_METHOD="POST", CONTENT_LENGTH=length)
    recorder = Recorder()
    body = recorder.run(LimitGuard(reading_app), environ)
    assert recorder.status.startswith("400")
    assert json.loads(body)["Code"] == "InvalidArgument"


@pytest.mark.parametrize("origin", ["http://evil\r\nSet-Cookie: a=b", "http://a\x00", "\n"])
def test_an_origin_with_control_characters_is_never_echoed(origin):
    recorder = Recorder()
    recorder.run(validator(CorsDefaults(reading_app)), make_environ(HTTP_ORIGIN=origin))
    assert recorder.header("Access-Control-Allow-Origin") is None
    assert recorder.header("Access-Control-Expose-Headers")  # FC's defaults still go out


def test_a_preflight_with_control_characters_is_refused():
    environ = make_environ(
        REQUEST_METHOD="OPTIONS",
        HTTP_ORIGIN="http://page.example",
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST\r\nX-Injected: 1",
    )
    recorder = Recorder()
    body = recorder.run(validator(CorsDefaults(reading_app, methods=["POST"])), environ)
    assert recorder.status.startswith("403")
    assert json.loads(body)["Code"] == "AccessDenied"
    assert "X-Injected" not in repr(recorder.headers)


@pytest.mark.parametrize("propagate", [False, True])
def test_flask_sees_a_short_body_as_a_client_disconnect(propagate):
    """``InvalidBody`` is also a ``ValueError``: werkzeug's stream turns it into its own 400."""
    flask = pytest.importorskip("flask")
    app = flask.Flask(__name__)
    app.config["PROPAGATE_EXCEPTIONS"] = propagate

    @app.post("/")
    def post():
        return {"bytes": len(flask.request.get_data())}

    environ = make_environ(REQUEST_METHOD="POST", body=b"abc", CONTENT_TYPE="text/plain")
    environ["CONTENT_LENGTH"] = "100"
    recorder = Recorder()
    recorder.run(LimitGuard(app), environ)
    assert recorder.status.startswith("400")
