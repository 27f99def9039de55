"""`fc-wsgi serve` over real HTTP: every foundation behaviour through a real gunicorn."""

from __future__ import annotations

import http.client
import json
import sys

import pytest
from servers import launch, stop, with_journal
from support import free_port

pytestmark = pytest.mark.e2e

TRIGGER = {
    "authType": "anonymous",
    "methods": ["GET", "POST", "HEAD"],
    "limits": {"maxBodyBytes": 100_000},
}


def request(server, method, path, body=None, headers=None, chunks=None):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        if chunks is not None:
            conn.putrequest(method, path)
            for name, value in (headers or {}).items():
                conn.putheader(name, value)
            conn.putheader("Transfer-Encoding", "chunked")
            conn.endheaders()
            for chunk in chunks:
                conn.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            conn.send(b"0\r\n\r\n")
        else:
            conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def fc_code(body: bytes) -> str:
    return json.loads(body)["Code"]


@pytest.fixture(scope="module")
def hello(tmp_path_factory):
    """One server (2 workers) for the checks of this module that change nothing."""
    folder = tmp_path_factory.mktemp("hello")
    config = folder / "trigger.json"
    config.write_text(json.dumps(with_journal(TRIGGER, folder)))
    port = free_port()
    server = launch(
        [
            sys.executable,
            "-m",
            "fc_wsgi",
            "serve",
            "examples.hello:handler",
            "--config",
            str(config),
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "2",
        ],
        port,
        folder / "server.log",
    )
    yield server
    stop(server)


def test_get_passes_with_request_id_and_cors(hello):
    status, headers, body = request(hello, "GET", "/hi?x=1", headers={"Origin": "http://p.example"})
    assert status == 200
    seen = json.loads(body)
    assert seen["requestId"] == headers["X-Fc-Request-Id"]
    assert seen["query"] == "x=1"
    assert headers["Access-Control-Allow-Origin"] == "http://p.example"
    assert headers["Content-Length"] == str(len(body))


def test_method_not_allowed_is_fc_403(hello):
    status, headers, body = request(hello, "DELETE", "/")
    assert (status, fc_code(body)) == (403, "AccessDenied")
    assert headers["X-Fc-Error-Type"] == "FcCommonError"


@pytest.mark.parametrize(("size", "status"), [(4096, 200), (4097, 400)])
def test_url_limit_is_fcs_not_gunicorns(hello, size, status):
    path = "/p?q=" + "a" * (size - len("/p?q="))
    got, _, body = request(hello, "GET", path)
    assert got == status
    if status == 400:
        assert fc_code(body) == "InvalidArgument"


def test_header_limit_is_fcs_not_gunicorns(hello):
    status, _, body = request(hello, "GET", "/", headers={"X-Big": "v" * 9000})
    assert (status, fc_code(body)) == (400, "InvalidArgument")
    status, _, _ = request(hello, "GET", "/", headers={"X-Big": "v" * 7000})
    assert status == 200


def test_content_length_over_the_limit_is_refused(hello):
    status, _, body = request(hello, "POST", "/", body=b"x" * 100_001)
    assert (status, fc_code(body)) == (400, "InvalidArgument")
    status, _, body = request(hello, "POST", "/", body=b"x" * 100_000)
    assert status == 200 and json.loads(body)["bodyBytes"] == 100_000


def test_chunked_body_within_the_limit_reaches_the_app(hello):
    status, _, body = request(hello, "POST", "/", chunks=[b"a" * 50_000, b"b" * 50_000])
    assert status == 200 and json.loads(body)["bodyBytes"] == 100_000


def test_chunked_body_over_the_limit_is_refused_while_streaming(hello):
    status, _, body = request(hello, "POST", "/", chunks=[b"a" * 60_000, b"b" * 60_000])
    assert (status, fc_code(body)) == (400, "InvalidArgument")


def test_async_body_limit_applies_to_chunked_async_requests(hello):
    chunks = [b"c" * 70_000, b"d" * 70_000]  # 140 000 > 128 KiB, < the sync limit
    headers = {"X-Fc-Invocation-Type": "Async"}
    status, _, body = request(hello, "POST", "/", chunks=chunks, headers=headers)
    assert (status, fc_code(body)) == (400, "InvalidArgument")


def test_app_that_raises_gets_502_and_the_server_goes_on(hello):
    status, headers, body = request(hello, "GET", "/boom")
    assert status == 502
    assert headers["X-Fc-Error-Type"] == "UnhandledInvocationError"
    assert json.loads(body) == {
        "errorMessage": "the function failed on purpose",
        "errorType": "RuntimeError",
    }
    assert "Traceback" not in body.decode()
    assert request(hello, "GET", "/")[0] == 200
    assert headers["X-Fc-Request-Id"] in hello.output()


def test_reserved_headers_both_ways(hello):
    _, headers, body = request(hello, "GET", "/", headers={"X-Fc-Whatever": "1"})
    assert json.loads(body)["fcHeadersSeen"] == ["HTTP_X_FC_REQUEST_ID"]
    assert headers["Server"] == "gunicorn"


def test_preflight_is_answered_when_options_is_not_a_trigger_method(hello):
    status, headers, _ = request(
        hello,
        "OPTIONS",
        "/",
        headers={"Origin": "http://p.example", "Access-Control-Request-Method": "POST"},
    )
    assert status == 200
    assert headers["Access-Control-Allow-Methods"] == "POST"


def test_flask_app_under_fc_wsgi_serve(serve):
    server = serve("examples.flask_app:app", TRIGGER, "--threads", "4")
    status, headers, body = request(server, "GET", "/", headers={"Origin": "http://p.example"})
    assert status == 200
    assert json.loads(body)["requestId"] == headers["X-Fc-Request-Id"]
    status, _, body = request(
        server, "POST", "/echo", body=b"{}", headers={"Content-Type": "application/json"}
    )
    assert json.loads(body) == {"received": 2, "contentType": "application/json"}
    status, headers, body = request(server, "GET", "/boom")
    assert (status, headers["X-Fc-Error-Type"]) == (502, "UnhandledInvocationError")
    assert "gthread" in server.output()


def test_fc2_profile_and_default_domain(serve):
    server = serve("examples.hello:handler", {**TRIGGER, "profile": "fc2", "defaultDomain": True})
    status, headers, body = request(server, "DELETE", "/")
    assert json.loads(body) == {
        "ErrorCode": "AccessDenied",
        "ErrorMessage": "method 'DELETE' is not allowed by this HTTP trigger",
    }
    _, headers, _ = request(server, "GET", "/")
    assert headers["Content-Disposition"] == "attachment"


def test_plain_gunicorn_with_app_from_env(start_server, tmp_path):
    config = tmp_path / "t.json"
    config.write_text(json.dumps(with_journal(TRIGGER, tmp_path)))
    server = start_server(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "--bind",
            "127.0.0.1:{port}",
            "--no-control-socket",
            "fc_wsgi.serve:app_from_env()",
        ],
        env={"FC_WSGI_APP": "examples.hello:handler", "FC_WSGI_CONFIG": str(config)},
    )
    status, headers, _ = request(server, "DELETE", "/")
    assert status == 403 and headers["X-Fc-Request-Id"]


def test_dev_server_serves_the_same_stack(serve):
    server = serve("examples.hello:handler", TRIGGER, "--dev")
    status, headers, body = request(server, "DELETE", "/")
    assert (status, fc_code(body)) == (403, "AccessDenied")
    status, _, body = request(server, "POST", "/", chunks=[b"a" * 60_000, b"b" * 60_000])
    assert (status, fc_code(body)) == (400, "InvalidArgument")
