"""LimitGuard: methods, URL, header and body limits at their exact boundaries."""

from __future__ import annotations

import io
import json
from wsgiref.validate import validator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support import ClosingBody, Recorder, hello_app, make_environ, validated

from fc_wsgi import LimitGuard
from fc_wsgi.errors import BodyTooLarge


def reading_app(environ, start_response):
    """Reads the whole body (chunked too), answers its size."""
    data = (
        environ["wsgi.input"].read(-1)
        if "CONTENT_LENGTH" not in environ
        else (environ["wsgi.input"].read(int(environ["CONTENT_LENGTH"] or 0)))
    )
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(len(data)).encode()]


def fc_error(response) -> tuple[int, str]:
    assert response.headers["X-Fc-Request-Id"]
    assert response.headers["X-Fc-Error-Type"] == "FcCommonError"
    return response.status_int, json.loads(response.body)["Code"]


def test_allowed_method_passes():
    app = validated(LimitGuard, hello_app, methods=["GET"])
    assert app.get("/").body == b"hello"


def test_method_not_in_trigger_is_403_access_denied():
    app = validated(LimitGuard, hello_app, methods=["GET"])
    response = app.post("/", b"x", status=403)
    assert fc_error(response) == (403, "AccessDenied")
    assert "'POST' is not allowed" in response.json["Message"]


def test_unknown_method_is_refused_like_a_disallowed_one(recorder: Recorder):
    guard = validator(LimitGuard(validator(hello_app)))
    recorder.run(guard, make_environ(REQUEST_METHOD="TRACE"))
    assert recorder.status.startswith("403")


@pytest.mark.parametrize(
    ("extra", "status"),
    [
        pytest.param(-1, 200, id="limit-1"),
        pytest.param(0, 200, id="limit"),
        pytest.param(1, 400, id="limit+1"),
    ],
)
def test_url_limit_counts_raw_path_and_query(extra: int, status: int, recorder: Recorder):
    limit = 100
    query = "q=" + "a" * (limit - len("/p?q=") + extra)
    raw = "/p?" + query
    guard = validator(LimitGuard(validator(hello_app), max_url_bytes=limit))
    recorder.run(guard, make_environ(PATH_INFO="/p", QUERY_STRING=query, RAW_URI=raw))
    assert recorder.status.startswith(str(status))


def test_url_limit_without_raw_uri_reencodes_the_path(recorder: Recorder):
    # "é" arrives as two latin-1 characters in PATH_INFO and was six bytes on the wire.
    path = "/" + "é".encode().decode("latin-1") * 10
    guard = LimitGuard(hello_app, max_url_bytes=60)
    recorder.run(guard, make_environ(PATH_INFO=path))
    assert recorder.status.startswith("400")  # 1 + 10 * 6 = 61 bytes


@pytest.mark.parametrize("extra", [-1, 0, 1], ids=["limit-1", "limit", "limit+1"])
def test_header_limit_counts_names_and_values(extra: int, recorder: Recorder):
    limit = 200
    # "x-big" (5) + value; plus "content-type" (12) + "text/plain" (10).
    value = "v" * (limit - 5 - 22 + extra)
    guard = validator(LimitGuard(validator(hello_app), max_header_bytes=limit))
    recorder.run(guard, make_environ(HTTP_X_BIG=value, CONTENT_TYPE="text/plain"))
    assert recorder.status.startswith("400" if extra > 0 else "200")


def test_header_limit_measures_each_request_with_the_same_header_names():
    # The header names of a set of environ keys are counted once; values never are.
    guard = LimitGuard(hello_app, max_header_bytes=100)
    for value, status in [("v" * 95, "200"), ("v" * 96, "400"), ("v", "200"), ("v" * 96, "400")]:
        recorder = Recorder()
        recorder.run(guard, make_environ(HTTP_X_BIG=value))
        assert recorder.status.startswith(status), (len(value), recorder.status)


@pytest.mark.parametrize("extra", [-1, 0, 1], ids=["limit-1", "limit", "limit+1"])
def test_content_length_limit_is_checked_before_the_app(extra: int):
    called = []

    def app(environ, start_response):
        called.append(True)
        return reading_app(environ, start_response)

    guarded = validated(LimitGuard, app, max_body_bytes=64)
    response = guarded.post("/", b"x" * (64 + extra), status="*")
    if extra > 0:
        assert fc_error(response) == (400, "InvalidArgument")
        assert "64 bytes" in response.json["Message"]
        assert not called
    else:
        assert response.body == str(64 + extra).encode()


def test_async_requests_get_the_async_body_limit():
    guarded = validated(LimitGuard, reading_app, max_body_bytes=1000, max_async_body_bytes=10)
    guarded.post("/", b"x" * 11, status=200)
    response = guarded.post("/", b"x" * 11, headers={"X-Fc-Invocation-Type": "async"}, status=400)
    assert "async request body" in response.json["Message"]


@pytest.mark.parametrize("length", ["-1", "1e3", "abc", " 5"])
def test_malformed_content_length_is_invalid_argument(length: str, recorder: Recorder):
    guard = LimitGuard(reading_app)
    recorder.run(guard, make_environ(REQUEST_METHOD="POST", CONTENT_LENGTH=length))
    assert recorder.status.startswith("400")


def chunked_environ(size: int, **extra):
    return make_environ(
        REQUEST_METHOD="POST",
        HTTP_TRANSFER_ENCODING="chunked",
        **{"wsgi.input": io.BytesIO(b"y" * size), "wsgi.input_terminated": True},
        **extra,
    )


@pytest.mark.parametrize("extra", [-1, 0, 1, 5000], ids=["limit-1", "limit", "limit+1", "far"])
def test_chunked_body_is_counted_while_streaming(extra: int, recorder: Recorder):
    limit = 1024
    guard = validator(LimitGuard(validator(reading_app), max_body_bytes=limit))
    body = recorder.run(guard, chunked_environ(limit + extra))
    if extra > 0:
        assert recorder.status.startswith("400")
        assert json.loads(body)["Code"] == "InvalidArgument"
    else:
        assert recorder.status.startswith("200")
        assert body == str(limit + extra).encode()


def test_chunked_overflow_swallowed_by_the_app_still_answers_fc_400(recorder: Recorder):
    closed = ClosingBody([b"app answer"])

    def swallowing_app(environ, start_response):
        try:
            environ["wsgi.input"].read(-1)
        except BodyTooLarge:
            pass
        start_response("500 Internal Server Error", [("Content-Type", "text/plain")])
        return closed

    guard = validator(LimitGuard(validator(swallowing_app), max_body_bytes=10))
    body = recorder.run(guard, chunked_environ(11))
    assert recorder.status.startswith("400")
    assert json.loads(body)["Code"] == "InvalidArgument"
    assert closed.closed


def test_chunked_overflow_in_a_lazy_app_is_fc_400(recorder: Recorder):
    def lazy_app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield environ["wsgi.input"].read(-1)

    guard = validator(LimitGuard(validator(lazy_app), max_body_bytes=10))
    body = recorder.run(guard, chunked_environ(50))
    assert recorder.status.startswith("400")
    assert json.loads(body)["Code"] == "InvalidArgument"


def test_chunked_body_needs_input_terminated(recorder: Recorder):
    environ = make_environ(REQUEST_METHOD="POST", HTTP_TRANSFER_ENCODING="chunked")
    body = recorder.run(LimitGuard(reading_app), environ)
    assert recorder.status.startswith("400")
    assert b"wsgi.input_terminated" in body


def test_app_iterable_is_closed_on_pass_through(recorder: Recorder):
    closed = ClosingBody([b"a", b"b"])

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return closed

    assert recorder.run(validator(LimitGuard(validator(app))), make_environ()) == b"ab"
    assert closed.closed


def test_error_answer_follows_the_fc2_profile():
    guarded = validated(LimitGuard, hello_app, methods=["GET"], profile="fc2")
    response = guarded.delete("/", status=403)
    assert set(response.json) == {"ErrorCode", "ErrorMessage"}
    assert response.json["ErrorCode"] == "AccessDenied"


@settings(max_examples=60, deadline=None)
@given(limit=st.integers(1, 4096), delta=st.integers(-64, 64))
def test_property_content_length_boundary(limit: int, delta: int):
    size = max(0, limit + delta)
    recorder = Recorder()
    guard = LimitGuard(reading_app, max_body_bytes=limit)
    recorder.run(guard, make_environ(REQUEST_METHOD="POST", body=b"z" * size))
    assert recorder.status.startswith("200" if size <= limit else "400")


@settings(max_examples=60, deadline=None)
@given(limit=st.integers(0, 4096), delta=st.integers(-64, 64), chunk=st.integers(1, 700))
def test_property_chunked_boundary(limit: int, delta: int, chunk: int):
    size = max(0, limit + delta)

    def app_reading_in_chunks(environ, start_response):
        total = 0
        while data := environ["wsgi.input"].read(chunk):
            total += len(data)
        start_response("200 OK", [])
        return [str(total).encode()]

    recorder = Recorder()
    guard = LimitGuard(app_reading_in_chunks, max_body_bytes=limit)
    body = recorder.run(guard, chunked_environ(size))
    if size <= limit:
        assert (recorder.status, body) == ("200 OK", str(size).encode())
    else:
        assert recorder.status.startswith("400")


@settings(max_examples=60, deadline=None)
@given(limit=st.integers(30, 2000), delta=st.integers(-40, 40))
def test_property_header_boundary(limit: int, delta: int):
    value = "v" * max(0, limit - len("x-h") + delta)
    recorder = Recorder()
    recorder.run(LimitGuard(hello_app, max_header_bytes=limit), make_environ(HTTP_X_H=value))
    assert recorder.status.startswith("200" if len(value) + 3 <= limit else "400")
