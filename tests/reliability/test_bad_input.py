"""Bad input over raw sockets against a real ``fc-wsgi serve`` (gthread, JWT trigger).

Every case gets either FC's JSON error answer (``Code``, ``X-Fc-Request-Id``) or gunicorn's own
plain 4xx for bytes that are not HTTP at all (listed as ``GUNICORN`` below, and in
docs/reliability.md); no answer carries a traceback, and the same worker then serves a normal
request with 200.
"""

from __future__ import annotations

import json
import sys

import pytest
from rawhttp import exchange, request_bytes
from relsupport import assert_fc_error, jwt_trigger
from servers import launch, stop, with_journal
from support import free_port

pytestmark = pytest.mark.e2e

GUNICORN = "gunicorn"  # gunicorn's own plain answer (text/html, Connection: close)
H = "Host: x"


def raw(line: str, *headers: str, body: bytes = b"") -> bytes:
    head = line + "\r\n" + "".join(h + "\r\n" for h in headers) + "\r\n"
    return head.encode("latin-1") + body


# (id, bytes sent, expected): GUNICORN, or (status, FC Code).
CASES = [
    ("garbage bytes", b"\x00\x01\x02 garbage\r\n\r\n", GUNICORN),
    ("request line without version", b"GET /\r\n\r\n", GUNICORN),
    ("unknown HTTP version", raw("GET / HTTP/9.9", H), GUNICORN),
    ("method with @", raw("G@T / HTTP/1.1", H), GUNICORN),
    ("lower-case method", raw("get / HTTP/1.1", H), GUNICORN),
    ("TRACE", raw("TRACE /public/x HTTP/1.1", H), (403, "AccessDenied")),
    ("OPTIONS * (not a trigger method)", raw("OPTIONS * HTTP/1.1", H), (403, "AccessDenied")),
    ("bare LF line ends", b"GET /public/x HTTP/1.1\nHost: x\n\n", GUNICORN),
    ("space in header name", raw("GET /public/x HTTP/1.1", H, "Ho st: x"), GUNICORN),
    ("header without colon", raw("GET /public/x HTTP/1.1", H, "Broken"), GUNICORN),
    ("CR inside a header value", raw("GET /public/x HTTP/1.1", H, "X-A: a\rb"), GUNICORN),
    ("NUL inside a header value", raw("GET /public/x HTTP/1.1", H, "X-A: a\x00b"), GUNICORN),
    ("obsolete line folding", raw("GET /public/x HTTP/1.1", H, "X-A: a", " b"), GUNICORN),
    ("raw non-UTF-8 bytes in path", raw("GET /public/\xff\xfe HTTP/1.1", H), GUNICORN),
    ("raw non-UTF-8 bytes in query", raw("GET /public/x?a=\xff HTTP/1.1", H), GUNICORN),
    (
        "two different Content-Length",
        raw("POST /public/x HTTP/1.1", H, "Content-Length: 1", "Content-Length: 2", body=b"ab"),
        GUNICORN,
    ),
    (
        "Content-Length and chunked",
        raw(
            "POST /public/x HTTP/1.1",
            H,
            "Content-Length: 2",
            "Transfer-Encoding: chunked",
            body=b"0\r\n\r\n",
        ),
        GUNICORN,
    ),
    ("negative Content-Length", raw("POST /public/x HTTP/1.1", H, "Content-Length: -5"), GUNICORN),
    (
        "Content-Length +5",
        raw("POST /public/x HTTP/1.1", H, "Content-Length: +5", body=b"abcde"),
        GUNICORN,
    ),
    (
        "Content-Length of 10**23",
        raw("POST /public/x HTTP/1.1", H, "Content-Length: 99999999999999999999999"),
        (400, "InvalidArgument"),
    ),
    (
        "Content-Length one over the limit",
        raw("POST /public/x HTTP/1.1", H, "Content-Length: 100001"),
        (400, "InvalidArgument"),
    ),
    (
        "body shorter than Content-Length, half-closed",
        raw("POST /public/x HTTP/1.1", H, "Content-Length: 100", body=b"abc"),
        (400, "InvalidArgument"),
    ),
    (
        "async body shorter than Content-Length",
        raw(
            "POST /public/x HTTP/1.1",
            H,
            "X-Fc-Invocation-Type: Async",
            "Content-Length: 100",
            body=b"abc",
        ),
        (400, "InvalidArgument"),
    ),
    (
        "chunk size not hex",
        raw(
            "POST /public/x HTTP/1.1",
            H,
            "Transfer-Encoding: chunked",
            body=b"zz\r\nabc\r\n0\r\n\r\n",
        ),
        (400, "InvalidArgument"),
    ),
    (
        "chunk longer than its size",
        raw(
            "POST /public/x HTTP/1.1",
            H,
            "Transfer-Encoding: chunked",
            body=b"3\r\nabcX\r\n0\r\n\r\n",
        ),
        (400, "InvalidArgument"),
    ),
    (
        "chunked body cut short",
        raw("POST /public/x HTTP/1.1", H, "Transfer-Encoding: chunked", body=b"10\r\nabc"),
        (400, "InvalidArgument"),
    ),
    (
        "async chunked body cut short",
        raw(
            "POST /public/x HTTP/1.1",
            H,
            "X-Fc-Invocation-Type: Async",
            "Transfer-Encoding: chunked",
            body=b"10\r\nabc",
        ),
        (400, "InvalidArgument"),
    ),
    (
        "chunked body over the limit",
        raw(
            "POST /public/x HTTP/1.1",
            H,
            "Transfer-Encoding: chunked",
            body=b"186a1\r\n" + b"x" * 100_001 + b"\r\n0\r\n\r\n",
        ),
        (400, "InvalidArgument"),
    ),
    (
        "Transfer-Encoding gzip",
        raw("POST /public/x HTTP/1.1", H, "Transfer-Encoding: gzip"),
        GUNICORN,
    ),
    (
        "Transfer-Encoding chunked twice",
        raw(
            "POST /public/x HTTP/1.1",
            H,
            "Transfer-Encoding: chunked",
            "Transfer-Encoding: chunked",
            body=b"0\r\n\r\n",
        ),
        GUNICORN,
    ),
    (
        "path over 4 KiB",
        raw("GET /public/" + "a" * 4100 + " HTTP/1.1", H),
        (400, "InvalidArgument"),
    ),
    (
        "path over gunicorn's request line",
        raw("GET /public/" + "a" * 8200 + " HTTP/1.1", H),
        GUNICORN,
    ),
    (
        "headers over 8 KiB",
        raw("GET /public/x HTTP/1.1", H, "X-Big: " + "b" * 8200),
        (400, "InvalidArgument"),
    ),
    (
        "one header over gunicorn's field limit",
        raw("GET /public/x HTTP/1.1", H, "X-Big: " + "b" * 20000),
        GUNICORN,
    ),
    (
        "X-Fc-Invocation-Type Maybe",
        raw("GET /public/x HTTP/1.1", H, "X-Fc-Invocation-Type: Maybe"),
        (400, "InvalidArgument"),
    ),
    (
        "X-Fc-Async-Delay -1",
        raw("GET /public/x HTTP/1.1", H, "X-Fc-Invocation-Type: Async", "X-Fc-Async-Delay: -1"),
        (400, "InvalidArgument"),
    ),
    (
        "async task id ../../x",
        raw(
            "GET /public/x HTTP/1.1",
            H,
            "X-Fc-Invocation-Type: Async",
            "X-Fc-Async-Task-Id: ../../x",
        ),
        (400, "InvalidArgument"),
    ),
    ("no token on a private path", raw("GET /priv HTTP/1.1", H), (401, "InvalidToken")),
    (
        "token that is not a JWT",
        raw("GET /priv HTTP/1.1", H, "Authorization: Bearer \xff\xfe.e30.\xe9"),
        (401, "InvalidToken"),
    ),
    ("whitelisted prefix with ..", raw("GET /public/../priv HTTP/1.1", H), (401, "InvalidToken")),
    (
        "whitelisted prefix with %2e%2e",
        raw("GET /public/%2e%2e/priv HTTP/1.1", H),
        (401, "InvalidToken"),
    ),
]


@pytest.fixture(scope="module")
def server(tmp_path_factory, public_jwk):
    folder = tmp_path_factory.mktemp("bad-input")
    config = folder / "trigger.json"
    config.write_text(json.dumps(with_journal(jwt_trigger(public_jwk), folder)))
    port = free_port()
    app = "tests.reliability.apps:echo"
    argv = [sys.executable, "-m", "fc_wsgi", "serve", app, "--config", str(config)]
    argv += ["--bind", f"127.0.0.1:{port}", "--threads", "4"]
    srv = launch(argv, port, folder / "server.log")
    yield srv
    stop(srv)
    log = srv.output()
    assert "Traceback" not in log, log[-4000:]
    assert "eyJ" not in log  # no token (base64url JSON header) was ever logged


def normal(server, mint) -> dict:
    token = mint({"uid": "u1"})
    answer = exchange(
        server.port, request_bytes("GET", "/priv", {"Authorization": f"Bearer {token}"})
    )
    assert answer.status == 200, answer.raw[:500]
    return json.loads(answer.body)


@pytest.fixture(scope="module")
def worker_pid(server, mint):
    return normal(server, mint)["pid"]


@pytest.mark.parametrize("data, expected", [pytest.param(d, e, id=i) for i, d, e in CASES])
def test_bad_input_gets_a_clear_answer_and_the_worker_goes_on(
    server, mint, worker_pid, data, expected
):
    answer = exchange(server.port, data)
    assert b"Traceback" not in answer.raw and b'File "' not in answer.raw
    if expected == GUNICORN:
        assert answer.status in (400, 414, 431, 501), answer.raw[:300]
        assert answer.headers["connection"] == "close"
        assert answer.headers["content-type"] == "text/html"
    else:
        status, code = expected
        assert answer.status == status, answer.raw[:400]
        assert_fc_error(answer.status, answer.headers, answer.body, code)
    assert normal(server, mint)["pid"] == worker_pid  # the same worker, still serving


@pytest.mark.parametrize(
    "target, path, query",
    [
        pytest.param("/public/%ff%fe?q=%ff", "/public/\xff\xfe", "q=%ff", id="non-UTF-8 escapes"),
        pytest.param("/public/%00x", "/public/\x00x", "", id="escaped NUL in path"),
        pytest.param("/public/x?a=%zz&b=%", "/public/x", "a=%zz&b=%", id="broken escapes"),
    ],
)
def test_non_utf8_paths_reach_the_app_as_latin1(server, target, path, query):
    answer = exchange(server.port, request_bytes("GET", target))
    assert answer.status == 200, answer.raw[:400]
    seen = json.loads(answer.body)
    assert (seen["path"], seen["query"]) == (path, query)


@pytest.mark.parametrize(
    "claim",
    [
        pytest.param("u1\r\nX-Injected: 1", id="CRLF"),
        pytest.param("u1\nX-Injected: 1", id="LF"),
        pytest.param("u1\x00admin", id="NUL"),
        pytest.param("u1\x7f", id="DEL"),
    ],
)
def test_claims_that_would_inject_headers_are_refused(server, mint, claim):
    token = mint({"uid": claim})
    data = request_bytes("GET", "/priv", {"Authorization": f"Bearer {token}"})
    answer = exchange(server.port, data)
    payload = assert_fc_error(answer.status, answer.headers, answer.body, "InvalidToken")
    assert "X-Injected" not in answer.raw.decode("latin-1")
    assert token not in json.dumps(payload)


def test_claim_passed_as_cookie_cannot_add_cookies(server, mint):
    token = mint({"uid": "u1", "role": "x; uid=admin"})
    data = request_bytes("GET", "/priv", {"Authorization": f"Bearer {token}"})
    seen = json.loads(exchange(server.port, data).body)
    assert seen["cookie"] == "role=x%3B%20uid=admin"  # one cookie: "=" is a cookie-octet


def test_utf8_claim_reaches_the_app_as_pep3333_latin1(server, mint):
    token = mint({"uid": "ü"})
    data = request_bytes("GET", "/priv", {"Authorization": f"Bearer {token}"})
    seen = json.loads(exchange(server.port, data).body)
    assert seen["headers"]["HTTP_X_UID"] == "ü".encode().decode("latin-1")


@pytest.mark.parametrize("path", ["/priv", "/public/x"])
def test_client_sent_pass_through_headers_never_reach_the_app(server, mint, path):
    """Claim headers and cookies are the gateway's: a client's copies are dropped."""
    token = mint({"role": "user"})  # no uid claim: X-Uid must be absent, not the client's
    headers = {
        "Authorization": f"Bearer {token}",
        "X-Uid": "admin",
        "x-uid": "admin2",
        "Cookie": "role=root; keep=1",
        "X-Fc-Request-Id": "spoofed",
    }
    answer = exchange(server.port, request_bytes("GET", path, headers))
    seen = json.loads(answer.body)
    assert "HTTP_X_UID" not in seen["headers"]
    role = "role=user" if path == "/priv" else None
    assert seen["cookie"] == "; ".join(c for c in ("keep=1", role) if c)
    assert seen["headers"]["HTTP_X_FC_REQUEST_ID"] == answer.headers["x-fc-request-id"]
    assert answer.headers["x-fc-request-id"] != "spoofed"
