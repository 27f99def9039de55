"""HeaderFilter: reserved headers both ways, response-header limit, app failures."""

from __future__ import annotations

import json
import logging
from wsgiref.validate import validator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support import ClosingBody, Recorder, make_environ, validated

from fc_wsgi import HeaderFilter
from fc_wsgi.errors import BodyTooLarge
from fc_wsgi.headers import RESERVED_RESPONSE_HEADERS

SEEN: dict[str, object] = {}


def snooping_app(environ, start_response):
    SEEN.clear()
    SEEN.update(environ)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


def app_with_headers(*headers: tuple[str, str], body=(b"body",)):
    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain"), *headers])
        return list(body)

    return app


def test_reserved_request_headers_never_reach_the_app():
    app = validated(HeaderFilter, snooping_app)
    app.get(
        "/",
        headers={
            "X-Fc-Invocation-Type": "Sync",
            "X-Fc-Anything": "1",
            "Keep-Alive": "timeout=5",
            "X-Fcdummy": "kept",
            "X-Custom": "kept",
        },
    )
    assert "HTTP_X_FC_ANYTHING" not in SEEN
    assert "HTTP_X_FC_INVOCATION_TYPE" not in SEEN
    assert "HTTP_KEEP_ALIVE" not in SEEN
    assert SEEN["HTTP_X_FCDUMMY"] == "kept"
    assert SEEN["HTTP_X_CUSTOM"] == "kept"


def test_the_app_sees_the_gateways_request_id_not_the_clients():
    app = validated(HeaderFilter, snooping_app)
    response = app.get("/", headers={"X-Fc-Request-Id": "spoofed"})
    assert SEEN["HTTP_X_FC_REQUEST_ID"] == SEEN["fc.request_id"] != "spoofed"
    assert response.headers["X-Fc-Request-Id"] == SEEN["fc.request_id"]


def test_request_ids_are_fc3_shaped_and_unique():
    app = validated(HeaderFilter, snooping_app)
    ids = {app.get("/").headers["X-Fc-Request-Id"] for _ in range(20)}
    assert len(ids) == 20
    for rid in ids:
        one, stamp, rest = rid.split("-")
        assert one == "1" and len(stamp) == 8 and len(rest) == 24


def test_fc2_request_ids_are_uuids():
    app = validated(HeaderFilter, snooping_app, profile="fc2")
    assert len(app.get("/").headers["X-Fc-Request-Id"].split("-")) == 5


@pytest.mark.parametrize("name", [*RESERVED_RESPONSE_HEADERS, "X-Fc-Request-Id", "x-fc-custom"])
def test_reserved_response_headers_are_dropped(name: str, recorder: Recorder):
    if name in (
        "connection",
        "keep-alive",
        "upgrade",
        "transfer-encoding",
        "te",
        "trailer",
        "proxy-authenticate",
    ):
        app = HeaderFilter(app_with_headers((name, "x")))  # validator refuses hop-by-hop
    else:
        app = validator(HeaderFilter(validator(app_with_headers((name, "from-app")))))
    recorder.run(app, make_environ())
    values = [v for n, v in recorder.headers if n.lower() == name.lower()]
    assert "from-app" not in values and "x" not in values


def test_content_length_is_recomputed_for_a_list_body(recorder: Recorder):
    # No inner validator here: it wraps the list, and only a real list has a known length.
    app = app_with_headers(("Content-Length", "999"), body=[b"abc", b"de"])
    assert recorder.run(validator(HeaderFilter(app)), make_environ()) == b"abcde"
    assert recorder.header("Content-Length") == "5"


def test_streaming_body_is_not_buffered_and_gets_no_content_length(recorder: Recorder):
    pulled = []

    def streaming(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "6")])
        for chunk in (b"abc", b"def"):
            pulled.append(chunk)
            yield chunk

    body = validator(HeaderFilter(validator(streaming)))(make_environ(), recorder.start_response)
    first = next(iter(body))
    assert first == b"abc" and pulled == [b"abc"]  # one chunk pulled, one handed on
    assert recorder.header("Content-Length") is None
    assert b"".join(body) == b"def"
    body.close()


def test_file_wrapper_body_is_returned_untouched(recorder: Recorder):
    import io
    from wsgiref.util import FileWrapper

    wrapped = FileWrapper(io.BytesIO(b"file"))

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return wrapped

    assert HeaderFilter(app)(make_environ(), recorder.start_response) is wrapped


@pytest.mark.parametrize("extra", [-1, 0, 1], ids=["limit-1", "limit", "limit+1"])
def test_response_header_limit_is_502_bad_response(extra: int, recorder: Recorder):
    limit = 300
    # Content-Type + text/plain = 22; X-Big = 5
    app = app_with_headers(("X-Big", "v" * (limit - 27 + extra)))
    closed = ClosingBody([b"never sent"])

    def closing(environ, start_response):
        app(environ, start_response)
        return closed

    body = recorder.run(
        validator(HeaderFilter(validator(closing), max_response_header_bytes=limit)),
        make_environ(),
    )
    assert closed.closed
    if extra > 0:
        assert recorder.status.startswith("502")
        assert recorder.header("X-Fc-Error-Type") == "UnhandledInvocationError"
        assert json.loads(body)["Code"] == "BadResponse"
    else:
        assert recorder.status == "200 OK" and body == b"never sent"


def test_default_domain_forces_attachment(recorder: Recorder):
    app = app_with_headers(("Content-Disposition", "inline"))
    recorder.run(validator(HeaderFilter(validator(app), default_domain=True)), make_environ())
    assert recorder.header("Content-Disposition") == "attachment"


def test_custom_domain_keeps_the_apps_disposition(recorder: Recorder):
    app = app_with_headers(("Content-Disposition", "inline"))
    recorder.run(HeaderFilter(app), make_environ())
    assert recorder.header("Content-Disposition") == "inline"


def test_exception_before_start_is_fc_unhandled_error(recorder: Recorder, caplog):
    def broken(environ, start_response):
        raise ValueError("secret-free failure")

    with caplog.at_level(logging.ERROR, logger="fc_wsgi.errors"):
        body = recorder.run(validator(HeaderFilter(validator(broken))), make_environ())
    assert recorder.status.startswith("502")
    assert recorder.header("X-Fc-Error-Type") == "UnhandledInvocationError"
    assert json.loads(body) == {"errorMessage": "secret-free failure", "errorType": "ValueError"}
    rid = recorder.header("X-Fc-Request-Id")
    assert rid in caplog.text and "ValueError" in caplog.text


def test_exception_after_start_response_before_body_is_replaced(recorder: Recorder):
    def broken(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        raise KeyError("late")

    recorder.run(HeaderFilter(broken), make_environ())
    assert recorder.status.startswith("502")


def test_exception_in_a_lazy_generator_is_replaced(recorder: Recorder):
    def broken(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        raise RuntimeError("in the generator")
        yield b""  # pragma: no cover

    body = recorder.run(validator(HeaderFilter(validator(broken))), make_environ())
    assert recorder.status.startswith("502")
    assert json.loads(body)["errorType"] == "RuntimeError"


def test_exception_after_bytes_went_out_reaches_the_server(recorder: Recorder):
    def broken(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield b"partial"
        raise RuntimeError("mid-stream")

    with pytest.raises(RuntimeError, match="mid-stream"):
        recorder.run(HeaderFilter(broken), make_environ())


def test_gateway_errors_raised_through_the_app_are_not_function_errors():
    def app(environ, start_response):
        raise BodyTooLarge("too big")

    with pytest.raises(BodyTooLarge):
        HeaderFilter(app)(make_environ(), Recorder().start_response)


def test_legacy_write_goes_out_with_filtered_headers(recorder: Recorder):
    def legacy(environ, start_response):
        write = start_response("200 OK", [("Content-Type", "text/plain"), ("Server", "app")])
        write(b"written ")
        return [b"returned"]

    body = recorder.run(validator(HeaderFilter(validator(legacy))), make_environ())
    assert body == b"written returned"
    assert recorder.header("Server") is None
    assert recorder.header("X-Fc-Request-Id")


def test_head_keeps_no_recomputed_length(recorder: Recorder):
    app = app_with_headers(body=[])
    recorder.run(validator(HeaderFilter(validator(app))), make_environ(REQUEST_METHOD="HEAD"))
    assert recorder.header("Content-Length") is None


header_names = st.text(
    alphabet=st.sampled_from("abcdefghijklmnopqrstuvwxyz-"), min_size=1, max_size=20
).filter(lambda n: not n.startswith("-"))


@settings(max_examples=100, deadline=None)
@given(names=st.lists(header_names, max_size=8), prefixed=st.lists(header_names, max_size=4))
def test_property_filtering_keeps_exactly_the_unreserved(names, prefixed):
    headers = [(n, "v") for n in names] + [("x-fc-" + n, "v") for n in prefixed]
    recorder = Recorder()
    recorder.run(HeaderFilter(app_with_headers(*headers)), make_environ())
    got = {n.lower() for n, _ in recorder.headers} - {"content-type", "x-fc-request-id"}
    expected = {
        n for n in names if n not in RESERVED_RESPONSE_HEADERS and not n.startswith("x-fc-")
    } - {"content-type"}
    assert got - {"content-length"} == expected - {"content-length"}


@settings(max_examples=100, deadline=None)
@given(names=st.lists(header_names, max_size=8))
def test_property_no_client_x_fc_header_reaches_the_app(names):
    environ = make_environ(**{"HTTP_X_FC_" + n.upper().replace("-", "_"): "v" for n in names})
    HeaderFilter(snooping_app)(environ, Recorder().start_response)
    assert [k for k in SEEN if k.startswith("HTTP_X_FC_")] == ["HTTP_X_FC_REQUEST_ID"]


def test_one_filter_drops_each_requests_own_reserved_headers_past_its_memory():
    # The keys to drop are remembered per set of environ keys, for a bounded number of sets:
    # the same set again, a new set, and sets past the bound are all cleaned alike.
    header_filter = HeaderFilter(snooping_app)
    for i in range(300):
        extra = {f"HTTP_X_CUSTOM_{i % 270}": "kept"}
        if i % 3:
            extra[f"HTTP_X_FC_TRY_{i % 7}"] = "dropped"
        if i % 5 == 0:
            extra["HTTP_CONNECTION"] = "keep-alive"
        header_filter(make_environ(**extra), Recorder().start_response)
        assert [k for k in SEEN if k.startswith("HTTP_X_FC_")] == ["HTTP_X_FC_REQUEST_ID"]
        assert "HTTP_CONNECTION" not in SEEN and SEEN[f"HTTP_X_CUSTOM_{i % 270}"] == "kept"
