"""SignatureVerifier against FC's published vectors, Alibaba's SDK code and broken requests."""

from __future__ import annotations

import hashlib
import io
import logging
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, unquote, unquote_to_bytes, urlsplit

import pytest
import requests
from alibabacloud_openapi_util.client import Client as OpenApiUtil
from fc2 import client as fc2_client
from fc2.auth import Auth
from hypothesis import given, settings
from hypothesis import strategies as st
from Tea.core import TeaCore
from Tea.request import TeaRequest

from fc_wsgi.auth.canonical import (
    acs3_signature,
    fc_resource,
    fc_signature,
    format_acs_date,
    format_http_date,
    parse_query,
)
from fc_wsgi.auth.signature import (
    SIGNATURE_NOT_MATCH_MESSAGE,
    SignatureVerifier,
    _acs3_fields,
    _acs3_strings,
    _decoded_path,
    _legacy_strings,
)
from fc_wsgi.auth.signing import sign_headers, sign_url
from fc_wsgi.config import AccessKey
from fc_wsgi.errors import (
    AccessDenied,
    InvalidAccessKeyID,
    InvalidArgument,
    MissingRequiredHeader,
    SignatureNotMatch,
)

NOW = 1_136_214_245.0  # Mon, 02 Jan 2006 15:04:05 GMT
DATE = "Mon, 02 Jan 2006 15:04:05 GMT"
KEY = AccessKey("ak", "secret")
URL = "http://fc.example/2016-08-15/proxy/svc.LATEST/fn/hello"


def request_environ(
    method: str,
    url: str,
    headers: Iterable[tuple[str, str]] = (),
    body: bytes = b"",
    *,
    server: str = "gunicorn",
    chunked: bool = False,
) -> dict[str, Any]:
    """A complete PEP 3333 environ for ``method url``, as gunicorn (or werkzeug) builds it.

    ``url`` must be what goes on the wire (percent-encoded). PATH_INFO is the decoded path as
    latin-1 text of its bytes; the raw target goes to RAW_URI (gunicorn) or REQUEST_URI
    (werkzeug), or nowhere (``server="plain"``). Repeated headers are joined with ``,``.
    """
    parts = urlsplit(url)
    raw_path = parts.path or "/"
    target = raw_path + (f"?{parts.query}" if parts.query else "")
    host = parts.netloc or "localhost"
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": "",
        "PATH_INFO": unquote_to_bytes(raw_path).decode("latin-1"),
        "QUERY_STRING": parts.query,
        "SERVER_NAME": host.partition(":")[0],
        "SERVER_PORT": host.partition(":")[2] or "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": host,
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": parts.scheme or "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": io.StringIO(),
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    if server == "gunicorn":
        environ["RAW_URI"] = target
    elif server == "werkzeug":
        environ["REQUEST_URI"] = target
    if chunked:
        environ["wsgi.input_terminated"] = True
    elif body:
        environ["CONTENT_LENGTH"] = str(len(body))
    for name, value in headers:
        lower = name.lower()
        if lower == "content-type":
            key = "CONTENT_TYPE"
        elif lower == "content-length":
            key = "CONTENT_LENGTH"
        else:
            key = "HTTP_" + lower.upper().replace("-", "_")
        text = value.encode("utf-8").decode("latin-1").strip()
        if key in environ and key.startswith("HTTP_") and key != "HTTP_HOST":
            environ[key] += "," + text
        else:
            environ[key] = text
    return environ


def verifier(*keys: AccessKey, now: float = NOW, **options: Any) -> SignatureVerifier:
    """A verifier of fc-spec's strict form unless ``sdk_variants=True`` is asked for."""
    options.setdefault("sdk_variants", False)
    return SignatureVerifier(keys or (KEY,), clock=lambda: now, **options)


def signed_environ(method: str = "GET", url: str = URL, headers=(), body=b"", **sign: Any):
    sign.setdefault("now", NOW)
    sent = sign_headers(
        method,
        url,
        access_key_id="ak",
        access_key_secret="secret",
        headers=headers,
        body=body,
        **sign,
    )
    return request_environ(method, url, sent, body)


# -- fc-spec.md 8.5: every published vector, exactly -------------------------------------------

GO_SECRET = "S9MWOBG0AOWHSO9HPASP216QOPHT5YR4NLH3A"
GO_STRING = (
    "GET\nef5b43a0fe1d5b401b62c3ba33a7a3d6\ntext/json\n1583221068\nx-fc-trace-id:trace-id\n"
    "/2016-08-15/proxy/service.LATEST/func/abc 123\na=123 45\nx-fc-access-key-id=akID\n"
    "x-fc-expires=1583221068\nx-fc-security-token=stsToken\nx=456\nx=xyz"
)
GO_SIGNATURE = "QFdNhz0Dl+onUM/MvpX940WFH3H8OHayZHbby1c01aI="


def test_vector_1_go_get_signature_string_and_signature():
    assert fc_signature(GO_SECRET.encode(), GO_STRING.encode()).decode() == GO_SIGNATURE


def test_vector_1_as_a_signed_url_request():
    query = (
        "x=xyz&x=456&a=123+45&x-fc-expires=1583221068&x-fc-access-key-id=akID"
        f"&x-fc-security-token=stsToken&x-fc-signature={quote(GO_SIGNATURE, safe='')}"
    )
    headers = [
        ("x-fc-trace-id", "trace-id"),
        ("Content-Type", "text/json"),
        ("Content-MD5", "ef5b43a0fe1d5b401b62c3ba33a7a3d6"),
    ]
    url = f"http://localhost/2016-08-15/proxy/service.LATEST/func/abc%20123?{query}"
    check = verifier(AccessKey("akID", GO_SECRET), now=1583221068)
    assert check.verify(request_environ("GET", url, headers)) == "akID"


GO_URL_WITH_TOKEN = (
    "http://localhost/2016-08-15/proxy/service/func/?x-fc-access-key-id=akid"
    "&x-fc-expires=1583339600&x-fc-security-token=stsToken"
    "&x-fc-signature=Yi0jCBQ6cTZc%2BtN8wtYUz9FbYNijx5jDiE3sVNW6XwA%3D"
)
GO_URL_NO_TOKEN = (
    "http://localhost/2016-08-15/proxy/service/func/?x-fc-access-key-id=akid"
    "&x-fc-expires=1583339600&x-fc-signature=6Rc4KxEAv3%2BlHpbNQWceIUqWVWq3ewxhadlJBRzZ0XQ%3D"
)


@pytest.mark.parametrize("url", [GO_URL_WITH_TOKEN, GO_URL_NO_TOKEN], ids=["sts token", "no token"])
def test_vector_2_go_signed_url_is_accepted_until_it_expires(url):
    key = AccessKey("akid", "akSec")
    assert verifier(key, now=1583339600).verify(request_environ("GET", url)) == "akid"
    with pytest.raises(AccessDenied, match="expired"):
        verifier(key, now=1583339601).verify(request_environ("GET", url))


def test_vector_2_token_is_signed():
    tampered = GO_URL_WITH_TOKEN.replace("stsToken", "stsTokem")
    with pytest.raises(SignatureNotMatch):
        verifier(AccessKey("akid", "akSec"), now=0).verify(request_environ("GET", tampered))


PY_PATH = "/path/action with-escaped~chars_here.ext"
PY_RESOURCE = (
    f"{PY_PATH}\nfoo=bar\nkey1=abc\nkey1=xyz\nkey2=123\nkey3\n"
    "key4-with /escaped~chars_here.ext=value-with /escaped~chars_here.ext"
)


def test_vector_3_python_sign_resource_from_the_environ():
    escaped = "key4-with%20%2Fescaped~chars_here.ext=value-with%20%2Fescaped~chars_here.ext"
    url = f"http://h{quote(PY_PATH)}?key3&key2=123&foo=bar&{escaped}&key1=xyz&key1=abc"
    environ = request_environ("GET", url)
    params = parse_query(environ["QUERY_STRING"].encode("latin-1"))
    assert fc_resource(_decoded_path(environ), params).decode() == PY_RESOURCE
    queries = {
        "key3": [],
        "key2": ["123"],
        "foo": "bar",
        "key4-with /escaped~chars_here.ext": "value-with /escaped~chars_here.ext",
        "key1": ["xyz", "abc"],
    }
    assert Auth._get_sign_resource(PY_PATH, queries) == PY_RESOURCE
    assert fc_resource(PY_PATH.encode(), []) == PY_PATH.encode() + b"\n"


def test_vector_4_node_string_to_sign_from_the_environ():
    headers = [
        ("content-md5", "1bca714f406993b309bb87fabeb30a6b"),
        ("content-type", "text/json"),
        ("date", "today"),
        ("x-fc-foo", "123"),
        ("x-fc-bar", "xyz"),
        ("x-fcdummy", "dummy"),
        ("test", "foo"),
    ]
    key3 = (
        quote("key3 with-escaped~chars_here.ext") + "=" + quote("value with-escaped~chars_here.ext")
    )
    url = f"http://h{quote(PY_PATH)}?foo=bar&key1=xyz&key1=abc&{key3}&key2=123"
    environ = request_environ("GET", url, headers)
    expected = (
        "GET\n1bca714f406993b309bb87fabeb30a6b\ntext/json\ntoday\nx-fc-bar:xyz\nx-fc-foo:123\n"
        f"{PY_PATH}\nfoo=bar\nkey1=abc\nkey1=xyz\nkey2=123\n"
        "key3 with-escaped~chars_here.ext=value with-escaped~chars_here.ext"
    )
    assert _legacy_strings(environ, b"today", variants=False) == [expected.encode()]


V5_CANONICAL = (
    "GET\n/\nempty=&test=ok\nx-acs-test:http,https\n\nx-acs-test\n"
    "55e12e91650d2fec56ec74e1d3e4ddbfce2ef3a65890c2a19ecf88a307e76a23"
)
V5_AUTHORIZATION = (
    "ACS3-HMAC-SHA256 Credential=acesskey,SignedHeaders=x-acs-test,"
    "Signature=d16b30a7699ae9e43875b13195b2f81bcc3ed10c14a9b5eb780e51619aa50be1"
)


def test_vector_5_acs3_canonical_request_and_signature():
    request = TeaRequest()
    request.method, request.pathname = "GET", "/"
    request.query = {"test": "ok", "empty": ""}
    request.headers = {"x-acs-test": "http", "x-acs-TEST": "https"}
    payload = V5_CANONICAL.rsplit("\n", 1)[1]
    sdk = OpenApiUtil.get_authorization(request, "ACS3-HMAC-SHA256", payload, "acesskey", "secret")
    assert sdk == V5_AUTHORIZATION
    # The same request through a server: both header lines arrive as one "http,https".
    environ = request_environ(
        "GET", "http://h/?test=ok&empty=", [("x-acs-test", "http"), ("x-acs-TEST", "https")]
    )
    strings = _acs3_strings(environ, "x-acs-test", payload.encode(), variants=False)
    assert strings == [V5_CANONICAL.encode()]
    signature = acs3_signature(b"secret", strings[0]).decode()
    assert V5_AUTHORIZATION.endswith(f"Signature={signature}")


@pytest.mark.parametrize(
    ("method", "url", "headers", "expected"),
    [
        pytest.param(
            "POST",
            "http://h/2016-08-15/proxy/svc.LATEST/fn/hello",
            [("Content-Type", "application/json"), ("Date", DATE), ("x-fc-trace-id", "abc")],
            "FC ak:l76wfOS7ywXmr9QxYnHhulifc1NHGKVL/vCqhbThfZU=",
            id="post, x-fc header",
        ),
        pytest.param(
            "GET",
            "http://h/hello%20world?b=3&a=1&b=2",
            [("Date", DATE)],
            "FC ak:/aUswbkQd85Ua4Kb3AN14sefPcLjIHCNVjmEBHq3ThU=",
            id="get, repeated query",
        ),
    ],
)
def test_vector_6_derived_legacy_requests(method, url, headers, expected):
    environ = request_environ(method, url, [*headers, ("Authorization", expected)])
    assert verifier().verify(environ) == "ak"


# -- Alibaba's fc2 SDK: its client signs, our gateway verifies ---------------------------------


def fc2_request(monkeypatch, *, token: str = "", bare: str = "", **call: Any) -> dict[str, Any]:
    """Run fc2's ``Client.do_http_request`` up to the socket and return the environ it makes."""
    sent: dict[str, Any] = {}

    def capture(method: str, url: str, **kwargs: Any) -> None:
        sent.update(method=method, url=url, **kwargs)

    monkeypatch.setattr(fc2_client, "requestWithTry", capture)
    client = fc2_client.Client(
        endpoint="http://127.0.0.1:9000",
        accessKeyID="ak",
        accessKeySecret="secret",
        securityToken=token,
    )
    client.do_http_request(serviceName="svc", functionName="fn", **call)
    prepared = requests.Request(
        sent["method"],
        sent["url"],
        headers=sent["headers"],
        params=sent["params"],
        data=sent["data"],
    ).prepare()
    url = prepared.url
    if bare:  # requests drops keys without values; a hand-built URL keeps them
        url += ("&" if "?" in url else "?") + bare
    headers = [(k, v) for k, v in prepared.headers.items() if k.lower() != "content-length"]
    return request_environ(prepared.method, url, headers, prepared.body or b"")


FC2_CASES = [
    pytest.param(dict(method="GET", path="/hello"), id="plain"),
    pytest.param(dict(method="GET", path="/"), id="root"),
    pytest.param(dict(method="GET", path="/路径/ünïcode ok"), id="unicode path"),
    pytest.param(dict(method="GET", path="/a%20b/c%2Fd/e+f~g"), id="escaped path"),
    pytest.param(
        dict(method="GET", path="/q", params={"k": ["b", "a", "b"], "j": "1"}), id="repeated keys"
    ),
    pytest.param(
        dict(method="GET", path="/q", params={"q": "a b+c&d=e", "ключ": "значение", "e": ""}),
        id="escaped query",
    ),
    pytest.param(
        dict(
            method="PUT",
            path="/md5",
            headers={
                "content-md5": "1B2M2Y8AsgTpgAmY7PhCfg==",
                "content-type": "text/plain; charset=utf-8",
            },
            body=b"",
        ),
        id="content-md5 and type",
    ),
    pytest.param(
        dict(
            method="POST",
            path="/x",
            headers={
                "X-Fc-Invocation-Type": "Sync",
                "x-fc-trace-id": "t-1",
                "x-fc-log-type": "None",
            },
            body=b'{"a": 1}',
        ),
        id="x-fc headers and body",
    ),
]


@pytest.mark.parametrize("call", FC2_CASES)
def test_fc2_client_requests_are_accepted(monkeypatch, call):
    environ = fc2_request(monkeypatch, **call)
    assert SignatureVerifier([KEY]).verify(environ) == "ak"


def test_fc2_client_sts_token_is_signed(monkeypatch):
    environ = fc2_request(monkeypatch, token="CAIS-opaque-token", method="GET", path="/sts")
    assert environ["HTTP_X_FC_SECURITY_TOKEN"] == "CAIS-opaque-token"
    assert SignatureVerifier([KEY]).verify(environ) == "ak"
    environ["HTTP_X_FC_SECURITY_TOKEN"] = "CAIS-other-token"
    with pytest.raises(SignatureNotMatch):
        SignatureVerifier([KEY]).verify(environ)


def test_fc2_key_without_value_is_signed_bare(monkeypatch):
    environ = fc2_request(
        monkeypatch, bare="flag", method="GET", path="/b", params={"flag": [], "a": "1"}
    )
    assert environ["QUERY_STRING"] == "a=1&flag"
    assert SignatureVerifier([KEY]).verify(environ) == "ak"


def test_fc2_auth_on_a_custom_domain_path():
    # On fcapp.run or a custom domain the signed path is the plain path (fc-spec.md 8.2).
    headers = {"date": format_http_date(NOW), "content-type": "application/json", "x-fc-x": "1"}
    queries = {"a": ["2", "1"], "b c": "d e"}
    authorization = Auth("ak", "secret").sign_request("DELETE", "/items/ä 1", headers, queries)
    url = "http://h/items/%C3%A4%201?a=2&a=1&b+c=d+e"
    environ = request_environ("DELETE", url, [*headers.items(), ("Authorization", authorization)])
    assert verifier().verify(environ) == "ak"


# -- SDK variance (fc-spec.md 8.2): accepted only with sdk_variants=True ------------------------


def _legacy_request_signed_over(resource: bytes, url: str) -> dict[str, Any]:
    string = b"GET\n\n\n" + DATE.encode() + b"\n" + resource
    authorization = "FC ak:" + fc_signature(b"secret", string).decode()
    return request_environ("GET", url, [("Date", DATE), ("Authorization", authorization)])


@pytest.mark.parametrize(
    ("url", "resource"),
    [
        # alibabacloud_gateway_fc_util: "\n".join(unquote(query).split("&")), in the order sent.
        pytest.param("http://h/p?b=2&a=1&c", b"/p\nb=2\na=1\nc", id="python helper, as sent"),
        # fc-go-sdk's trigger helper: url.Values turns a bare key into "key=".
        pytest.param("http://h/p?b=2&a=1&c", b"/p\na=1\nb=2\nc=", id="go, bare key as key="),
    ],
)
def test_sdk_variants_are_accepted_only_when_enabled(url, resource):
    with pytest.raises(SignatureNotMatch):
        verifier().verify(_legacy_request_signed_over(resource, url))
    assert verifier(sdk_variants=True).verify(_legacy_request_signed_over(resource, url)) == "ak"
    # On by default, in the verifier as in the config (fc-spec.md 13.5).
    default = SignatureVerifier((KEY,), clock=lambda: NOW)
    assert default.verify(_legacy_request_signed_over(resource, url)) == "ak"


def test_sdk_variants_still_refuse_a_changed_query():
    environ = _legacy_request_signed_over(b"/p\nb=2\na=1", "http://h/p?b=2&a=3")
    with pytest.raises(SignatureNotMatch):
        verifier(sdk_variants=True).verify(environ)


# -- ACS3 with Alibaba's openapi util -----------------------------------------------------------


def acs3_request(
    method: str = "GET",
    pathname: str = "/",
    query: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
    body: bytes = b"",
    *,
    with_sha256: bool = True,
    key_id: str = "ak",
    secret: str = "secret",
    spaces: str = " ",
) -> dict[str, Any]:
    """Sign with ``OpenApiUtil.get_authorization`` and send as Tea would (``compose_url``)."""
    request = TeaRequest()
    request.method = method
    request.pathname = OpenApiUtil.get_encode_path(pathname)
    request.query = dict(query or {})
    request.headers = {"host": "fc.example", "x-acs-date": format_acs_date(NOW), **(headers or {})}
    payload = ""
    if with_sha256:
        payload = request.headers["x-acs-content-sha256"] = hashlib.sha256(body).hexdigest()
    authorization = OpenApiUtil.get_authorization(
        request, "ACS3-HMAC-SHA256", payload, key_id, secret
    )
    authorization = authorization.replace("ACS3-HMAC-SHA256 ", "ACS3-HMAC-SHA256" + spaces, 1)
    url = TeaCore.compose_url(request)
    sent = [*request.headers.items(), ("Authorization", authorization)]
    return request_environ(method, url, sent, body)


ACS3_CASES = [
    pytest.param({}, id="plain"),
    pytest.param(dict(pathname="/数据/a b~c"), id="unicode path"),
    pytest.param(dict(query={"b": "x y", "a": "1+2", "empty": "", "u": "ü"}), id="query"),
    pytest.param(
        dict(method="POST", body=b'{"k": "v"}', headers={"content-type": "application/json"}),
        id="body",
    ),
    pytest.param(dict(headers={"x-acs-security-token": "opaque-sts"}), id="sts token"),
    pytest.param(dict(spaces="  "), id="two spaces after the algorithm"),
    pytest.param(dict(with_sha256=False, method="POST", body=b"unhashed"), id="no content hash"),
]


@pytest.mark.parametrize("request_args", ACS3_CASES)
def test_acs3_util_requests_are_accepted(request_args):
    assert verifier().verify(acs3_request(**request_args)) == "ak"


def test_acs3_body_is_replayed_to_the_app():
    environ = acs3_request(method="POST", body=b"payload bytes")
    verifier().verify(environ)
    assert environ["wsgi.input"].read() == b"payload bytes"
    assert environ["CONTENT_LENGTH"] == "13"


def test_acs3_chunked_body_is_read_to_eof_and_replayed():
    environ = acs3_request(method="POST", body=b"chunked body")
    del environ["CONTENT_LENGTH"]
    environ["wsgi.input_terminated"] = True
    verifier().verify(environ)
    assert environ["wsgi.input"].read() == b"chunked body"
    assert environ["CONTENT_LENGTH"] == "12"


class Unreadable(io.RawIOBase):
    def read(self, size: int | None = -1) -> bytes:
        raise AssertionError("a request without a body was read")


def test_acs3_empty_body_hash_without_a_body_is_not_read():
    environ = acs3_request()
    assert "CONTENT_LENGTH" not in environ and "HTTP_TRANSFER_ENCODING" not in environ
    environ["wsgi.input"] = Unreadable()
    assert verifier().verify(environ) == "ak"


def test_acs3_empty_body_hash_over_a_chunked_body_is_refused():
    environ = acs3_request(method="POST")  # signs the empty body's hash
    environ.update(HTTP_TRANSFER_ENCODING="chunked", **{"wsgi.input_terminated": True})
    environ["wsgi.input"] = io.BytesIO(b"smuggled")
    with pytest.raises(SignatureNotMatch):
        verifier().verify(environ)


@pytest.mark.parametrize(
    "text",
    [
        " Credential=ak,SignedHeaders=host;x-acs-date,Signature=abc",
        "  Credential=ak , SignedHeaders=host , Signature=abc ",
        " SignedHeaders=host,Credential=ak,Signature=abc",
        " Credential=a=b,SignedHeaders=host,Signature=abc",
        " Credential=a b,SignedHeaders=host,Signature=abc",
        " Credential=ak,SignedHeaders=host,Signature=abc,Signature=def",
        " Credential=ak,Signature=abc",
        " Credential=,SignedHeaders=host,Signature=abc",
    ],
)
def test_acs3_fields_read_every_form_as_the_general_parse_does(text):
    fields = {}
    for item in text.split(","):
        field, _, value = item.strip().partition("=")
        fields[field] = value.strip()
    expected = tuple(fields.get(name) for name in ("Credential", "SignedHeaders", "Signature"))
    assert _acs3_fields(text) == expected


def test_acs3_body_read_never_passes_content_length():
    environ = acs3_request(method="POST", body=b"0123456789")
    environ["wsgi.input"] = io.BytesIO(b"0123456789 and the next request")
    verifier().verify(environ)
    assert environ["wsgi.input"].read() == b"0123456789"


def test_acs3_changed_body_is_refused():
    environ = acs3_request(method="POST", body=b"original")
    environ["wsgi.input"] = io.BytesIO(b"tampered")
    with pytest.raises(SignatureNotMatch):
        verifier().verify(environ)


def test_acs3_util_names_unencoded_need_sdk_variants():
    environ = acs3_request(query={"a key": "v"})
    with pytest.raises(SignatureNotMatch):
        verifier().verify(environ)
    assert verifier(sdk_variants=True).verify(acs3_request(query={"a key": "v"})) == "ak"


def test_acs3_path_re_encoded_needs_sdk_variants():
    # The client signed "/a%21b" but its HTTP library sent "/a!b".
    environ = acs3_request(pathname="/a!b")
    environ["RAW_URI"] = "/a!b"
    with pytest.raises(SignatureNotMatch):
        verifier().verify(environ)
    environ = acs3_request(pathname="/a!b")
    environ["RAW_URI"] = "/a!b"
    assert verifier(sdk_variants=True).verify(environ) == "ak"


@pytest.mark.parametrize("server", ["werkzeug", "plain"])
def test_acs3_raw_path_from_request_uri_or_path_info(server):
    request = acs3_request(pathname="/x y/ü")
    environ = {k: v for k, v in request.items() if k != "RAW_URI"}
    if server == "werkzeug":
        environ["REQUEST_URI"] = request["RAW_URI"]
    assert verifier().verify(environ) == "ak"


def test_acs3_header_with_a_comma_is_one_value_or_several():
    environ = acs3_request(headers={"x-acs-list": "b, a"})
    assert verifier().verify(environ) == "ak"


# -- refusals: each with FC's code and message ------------------------------------------------


def legacy(**changes: Any) -> dict[str, Any]:
    environ = signed_environ(
        "POST",
        URL + "?b=2&a=1&flag",
        [("Content-Type", "text/plain"), ("Content-MD5", "abc"), ("x-fc-trace-id", "t1")],
    )
    environ.update(changes)
    return environ


def test_legacy_request_is_accepted():
    assert verifier().verify(legacy()) == "ak"


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"REQUEST_METHOD": "PUT"}, id="method"),
        pytest.param({"PATH_INFO": "/2016-08-15/proxy/svc.LATEST/fn/hellO"}, id="path"),
        pytest.param({"QUERY_STRING": "b=2&a=2&flag"}, id="query value"),
        pytest.param({"QUERY_STRING": "b=2&a=1&flag="}, id="bare key given a value"),
        pytest.param({"QUERY_STRING": "b=2&a=1"}, id="query key removed"),
        pytest.param({"QUERY_STRING": "b=2&a=1&flag&c=3"}, id="query key added"),
        pytest.param({"HTTP_X_FC_TRACE_ID": "t2"}, id="x-fc header"),
        pytest.param({"HTTP_X_FC_EXTRA": "1"}, id="x-fc header added"),
        pytest.param({"CONTENT_TYPE": "text/html"}, id="content-type"),
        pytest.param({"HTTP_CONTENT_MD5": "abd"}, id="content-md5"),
        pytest.param({"HTTP_DATE": "Mon, 02 Jan 2006 15:04:06 GMT"}, id="date"),
    ],
)
def test_legacy_changed_part_is_refused(changes):
    with pytest.raises(SignatureNotMatch) as caught:
        verifier().verify(legacy(**changes))
    assert caught.value.message == SIGNATURE_NOT_MATCH_MESSAGE
    assert caught.value.status.startswith("403")


def test_unsigned_headers_may_change():
    assert verifier().verify(legacy(HTTP_USER_AGENT="curl", HTTP_X_FCDUMMY="1")) == "ak"


def test_unknown_access_key_id():
    environ = legacy(HTTP_AUTHORIZATION="FC nobody:c2lnbmF0dXJl")
    with pytest.raises(InvalidAccessKeyID) as caught:
        verifier().verify(environ)
    assert caught.value.message == "invalid access key ID 'nobody'"
    assert caught.value.status.startswith("403")


def test_key_rotation_accepts_either_key():
    check = verifier(AccessKey("old", "s1"), KEY)
    assert check.verify(legacy()) == "ak"


@pytest.mark.parametrize(
    ("drop", "message"),
    [
        pytest.param(("HTTP_DATE",), "required HTTP header Date was not specified", id="no date"),
        pytest.param(
            ("HTTP_AUTHORIZATION",),
            "required HTTP header Authorization was not specified",
            id="no authorization",
        ),
        pytest.param(
            ("HTTP_DATE", "HTTP_AUTHORIZATION"),
            "required HTTP header Date was not specified",
            id="bare curl",
        ),
    ],
)
def test_missing_required_header(drop, message):
    environ = legacy()
    for key in drop:
        del environ[key]
    with pytest.raises(MissingRequiredHeader) as caught:
        verifier().verify(environ)
    assert caught.value.message == message
    assert caught.value.status.startswith("400")


@pytest.mark.parametrize(
    ("offset", "accepted"),
    [
        pytest.param(-901, False, id="-901s"),
        pytest.param(-900, True, id="-900s"),
        pytest.param(0, True, id="0s"),
        pytest.param(900, True, id="+900s"),
        pytest.param(901, False, id="+901s"),
    ],
)
def test_date_skew_boundaries(offset, accepted):
    check = verifier(now=NOW + offset)
    if accepted:
        assert check.verify(legacy()) == "ak"
        return
    with pytest.raises(AccessDenied) as caught:
        check.verify(legacy())
    now = format_http_date(NOW + offset)
    assert caught.value.message == (
        f"the difference between the request time '{DATE}' and the current time '{now}' "
        "is too large"
    )


def test_x_fc_date_wins_over_date():
    environ = signed_environ(
        headers=[("x-fc-date", DATE), ("Date", "Sun, 01 Jan 2006 00:00:00 GMT")]
    )
    assert verifier().verify(environ) == "ak"
    with pytest.raises(AccessDenied, match="too large"):
        verifier(now=NOW + 901).verify(environ)


def test_unparsable_date_is_refused():
    environ = legacy(HTTP_DATE="yesterday")
    with pytest.raises(AccessDenied, match="not a valid date"):
        verifier().verify(environ)


@pytest.mark.parametrize(
    "authorization",
    ["FC ak", "FC :c2ln", "Bearer abc", "Basic YWs6c2VjcmV0", "ACS3-HMAC-SHA256 Credential=ak"],
)
def test_malformed_or_foreign_authorization(authorization):
    with pytest.raises(SignatureNotMatch):
        verifier().verify(legacy(HTTP_AUTHORIZATION=authorization))


def test_signed_url_changed_parts_are_refused():
    url = sign_url(
        "GET", URL + "?a=1", access_key_id="ak", access_key_secret="secret", expires=int(NOW)
    )
    assert verifier().verify(request_environ("GET", url)) == "ak"
    for old, new in [("a=1", "a=2"), ("x-fc-expires=1136214245", "x-fc-expires=1136214246")]:
        with pytest.raises(SignatureNotMatch):
            verifier().verify(request_environ("GET", url.replace(old, new)))
    with pytest.raises(SignatureNotMatch):
        verifier().verify(request_environ("POST", url))


def test_signed_url_signature_with_unencoded_plus():
    url = sign_url("GET", URL, access_key_id="ak", access_key_secret="secret", expires=int(NOW))
    assert verifier().verify(request_environ("GET", unquote(url))) == "ak"


@pytest.mark.parametrize(
    ("query", "error"),
    [
        pytest.param("x-fc-signature=abc&x-fc-expires=1", InvalidArgument, id="no id"),
        pytest.param("x-fc-signature=abc&x-fc-access-key-id=ak", InvalidArgument, id="no expiry"),
        pytest.param(
            "x-fc-signature=abc&x-fc-access-key-id=zz&x-fc-expires=1", InvalidAccessKeyID, id="id"
        ),
        pytest.param(
            "x-fc-signature=abc&x-fc-access-key-id=ak&x-fc-expires=soon", AccessDenied, id="expiry"
        ),
    ],
)
def test_signed_url_malformed(query, error):
    with pytest.raises(error):
        verifier(now=0).verify(request_environ("GET", f"{URL}?{query}"))


@pytest.mark.parametrize(
    ("scheme", "environ"),
    [
        pytest.param("fc", lambda: legacy(), id="fc"),
        pytest.param(
            "signed-url",
            lambda: request_environ(
                "GET",
                sign_url(
                    "GET", URL, access_key_id="ak", access_key_secret="secret", expires=int(NOW)
                ),
            ),
            id="signed-url",
        ),
        pytest.param("acs3", lambda: acs3_request(), id="acs3"),
    ],
)
def test_scheme_not_accepted(scheme, environ):
    others = [name for name in ("fc", "signed-url", "acs3") if name != scheme]
    with pytest.raises(AccessDenied, match=f"scheme {scheme} is not accepted"):
        verifier(schemes=others).verify(environ())
    assert verifier(schemes=[scheme]).verify(environ()) == "ak"


def test_only_acs3_accepted_asks_for_authorization_not_date():
    environ = legacy()
    del environ["HTTP_DATE"], environ["HTTP_AUTHORIZATION"]
    with pytest.raises(MissingRequiredHeader, match="Authorization"):
        verifier(schemes=["acs3"]).verify(environ)


@pytest.mark.parametrize(
    "options", [dict(schemes=["fc", "sigv4"]), dict(schemes=[]), dict(max_skew_seconds=-1)]
)
def test_bad_options(options):
    with pytest.raises(ValueError):
        SignatureVerifier([KEY], **options)


def test_acs3_refusals():
    environ = acs3_request()
    del environ["HTTP_X_ACS_DATE"]
    with pytest.raises(MissingRequiredHeader, match="x-acs-date"):
        verifier().verify(environ)
    environ = acs3_request()
    environ["HTTP_AUTHORIZATION"] = environ["HTTP_AUTHORIZATION"].replace(";x-acs-date", "")
    with pytest.raises(AccessDenied, match="SignedHeaders"):
        verifier().verify(environ)
    environ = acs3_request()
    del environ["HTTP_HOST"]  # listed in SignedHeaders, not sent
    with pytest.raises(SignatureNotMatch):
        verifier().verify(environ)
    with pytest.raises(InvalidAccessKeyID):
        verifier().verify(acs3_request(key_id="zz"))
    with pytest.raises(SignatureNotMatch):
        verifier().verify(acs3_request(secret="wrong"))
    with pytest.raises(AccessDenied, match="too large"):
        verifier(now=NOW + 901).verify(acs3_request())
    for key, value in [("REQUEST_METHOD", "PUT"), ("QUERY_STRING", "a=1"), ("HTTP_HOST", "evil")]:
        environ = acs3_request()
        environ[key] = value
        with pytest.raises(SignatureNotMatch):
            verifier().verify(environ)


def test_no_secret_or_expected_signature_in_errors_or_logs(caplog):
    caplog.set_level(logging.DEBUG, logger="fc_wsgi")
    environ = legacy(REQUEST_METHOD="PUT")
    expected = _legacy_strings(environ, DATE.encode(), variants=False)[0]
    with pytest.raises(SignatureNotMatch) as caught:
        verifier().verify(environ)
    leaked = [b"secret", fc_signature(b"secret", expected)]
    text = (str(caught.value) + caplog.text).encode()
    assert not any(part in text for part in leaked)


# -- properties ----------------------------------------------------------------------------------

segment = st.text(st.characters(blacklist_categories=("Cs",)), max_size=8)
token_text = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=10)
query_items = st.lists(st.tuples(segment, st.none() | segment), max_size=5)
header_names = st.from_regex(r"[a-z0-9]{1,8}", fullmatch=True).filter(lambda name: name != "date")
fc_header_values = st.dictionaries(header_names, token_text, max_size=3)


def build_url(path: list[str], query: list[tuple[str, str | None]]) -> str:
    encoded = "&".join(
        quote(key, safe="") if value is None else f"{quote(key, safe='')}={quote(value, safe='')}"
        for key, value in query
    )
    return (
        "http://fc.example/"
        + "/".join(quote(part, safe="") for part in path)
        + (f"?{encoded}" if encoded else "")
    )


@st.composite
def signed_requests(draw: st.DrawFn) -> dict[str, Any]:
    headers = [(f"x-fc-{name}", value) for name, value in draw(fc_header_values).items()]
    if draw(st.booleans()):
        headers.append(("Content-Type", draw(token_text)))
    return dict(
        method=draw(st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH"])),
        url=build_url(draw(st.lists(segment, max_size=3)), draw(query_items)),
        headers=headers,
        body=draw(st.binary(max_size=32)),
        scheme=draw(st.sampled_from(["fc", "acs3"])),
    )


MUTATIONS = ["method", "path", "query added", "query value", "header", "content-type", "body"]


@settings(max_examples=150, deadline=None)
@given(request=signed_requests(), mutation=st.sampled_from(MUTATIONS))
def test_property_any_change_to_a_signed_part_is_refused(request, mutation):
    environ = signed_environ(**request)
    assert verifier().verify(environ) == "ak"
    environ = signed_environ(**request)
    if mutation == "method":
        environ["REQUEST_METHOD"] = "HEAD"
    elif mutation == "path":
        environ["PATH_INFO"] += "x"
        path, mark, query = environ["RAW_URI"].partition("?")
        environ["RAW_URI"] = f"{path}x{mark}{query}"
    elif mutation == "query added":
        environ["QUERY_STRING"] = "&".join(filter(None, [environ["QUERY_STRING"], "zz-added=1"]))
    elif mutation == "query value":  # the last value (or bare key) gets one more character
        environ["QUERY_STRING"] += "x"
    elif mutation == "header":
        environ["HTTP_X_FC_MUTATED"] = "1"
        if request["scheme"] == "acs3":  # ACS3 signs the listed headers: change one of them
            environ["HTTP_X_ACS_DATE"] = format_acs_date(NOW + 1)
    elif mutation == "content-type":
        environ["CONTENT_TYPE"] = environ.get("CONTENT_TYPE", "") + "x"
        if request["scheme"] == "acs3" and "Content-Type" not in dict(request["headers"]):
            environ["HTTP_HOST"] = "other.example"
    elif mutation == "body":
        if request["scheme"] == "fc":  # the legacy scheme does not sign the body
            return
        environ["wsgi.input"] = io.BytesIO(request["body"] + b"!")
        environ["CONTENT_LENGTH"] = str(len(request["body"]) + 1)
    with pytest.raises(SignatureNotMatch):
        verifier().verify(environ)


@settings(max_examples=100, deadline=None)
@given(request=signed_requests(), order=st.randoms(use_true_random=False))
def test_property_canonical_strings_are_stable(request, order):
    first = signed_environ(**{**request, "scheme": "fc"})
    again = signed_environ(**{**request, "scheme": "fc"})
    date = first["HTTP_DATE"].encode()
    assert _legacy_strings(first, date, variants=False) == _legacy_strings(
        again, date, variants=False
    )
    # Sorted form: the order of the query parameters on the wire does not matter.
    pairs = first["QUERY_STRING"].split("&") if first["QUERY_STRING"] else []
    order.shuffle(pairs)
    first["QUERY_STRING"] = "&".join(pairs)
    assert _legacy_strings(first, date, variants=False) == _legacy_strings(
        again, date, variants=False
    )
    assert verifier().verify(first) == "ak"
