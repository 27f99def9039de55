"""The ``fc-wsgi sign`` functions: FC's vectors, Alibaba's SDKs, and our own verifier agree."""

from __future__ import annotations

import hashlib
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit

import pytest
from alibabacloud_openapi_util.client import Client as OpenApiUtil
from fc2.auth import Auth
from hypothesis import given, settings
from hypothesis import strategies as st
from Tea.request import TeaRequest
from werkzeug.test import EnvironBuilder

from fc_wsgi.auth.canonical import EMPTY_SHA256, format_acs_date
from fc_wsgi.auth.signature import SignatureVerifier
from fc_wsgi.auth.signing import requote_url, sign_headers, sign_url
from fc_wsgi.config import AccessKey
from fc_wsgi.errors import SignatureNotMatch

NOW = 1_136_214_245.0
DATE = "Mon, 02 Jan 2006 15:04:05 GMT"
CREDENTIALS = {"access_key_id": "ak", "access_key_secret": "secret"}


def werkzeug_environ(method: str, url: str, headers=(), body: bytes = b"") -> dict[str, Any]:
    """The environ werkzeug's own builder makes: REQUEST_URI/RAW_URI, headers joined by ", "."""
    parts = urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    base = f"{parts.scheme}://{parts.netloc}"
    builder = EnvironBuilder(
        method=method, path=target, base_url=base, headers=list(headers), data=body
    )
    try:
        return builder.get_environ()
    finally:
        builder.close()


def verify(environ: dict[str, Any], now: float = NOW, **keys: str) -> str:
    access_keys = [AccessKey(k, v) for k, v in (keys or {"ak": "secret"}).items()]
    return SignatureVerifier(access_keys, clock=lambda: now).verify(environ)


# -- fc-spec.md 8.5 vectors ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("token", "expected"),
    [
        pytest.param(
            "stsToken",
            "http://localhost/2016-08-15/proxy/service/func/?x-fc-access-key-id=akid"
            "&x-fc-expires=1583339600&x-fc-security-token=stsToken"
            "&x-fc-signature=Yi0jCBQ6cTZc%2BtN8wtYUz9FbYNijx5jDiE3sVNW6XwA%3D",
            id="sts token",
        ),
        pytest.param(
            "",
            "http://localhost/2016-08-15/proxy/service/func/?x-fc-access-key-id=akid"
            "&x-fc-expires=1583339600&x-fc-signature=6Rc4KxEAv3%2BlHpbNQWceIUqWVWq3ewxhadlJBRzZ0XQ%3D",
            id="no token",
        ),
    ],
)
def test_vector_2_sign_url_matches_go_exactly(token, expected):
    url = sign_url(
        "GET",
        "http://localhost/2016-08-15/proxy/service/func/",
        access_key_id="akid",
        access_key_secret="akSec",
        expires=1583339600,
        security_token=token,
    )
    assert url == expected


def test_vector_1_signed_url_with_headers_and_query():
    url = sign_url(
        "GET",
        "http://localhost/2016-08-15/proxy/service.LATEST/func/abc 123?x=xyz&x=456&a=123 45",
        access_key_id="akID",
        access_key_secret="S9MWOBG0AOWHSO9HPASP216QOPHT5YR4NLH3A",
        expires=1583221068,
        security_token="stsToken",
        headers=[
            ("x-fc-trace-id", "trace-id"),
            ("Content-Type", "text/json"),
            ("Content-MD5", "ef5b43a0fe1d5b401b62c3ba33a7a3d6"),
        ],
    )
    signature = dict(parse_qsl(urlsplit(url).query))["x-fc-signature"]
    assert signature == "QFdNhz0Dl+onUM/MvpX940WFH3H8OHayZHbby1c01aI="
    assert urlsplit(url).path == "/2016-08-15/proxy/service.LATEST/func/abc%20123"


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
            "http://h/hello world?b=3&a=1&b=2",
            [],
            "FC ak:/aUswbkQd85Ua4Kb3AN14sefPcLjIHCNVjmEBHq3ThU=",
            id="get, repeated query, Date added",
        ),
    ],
)
def test_vector_6_sign_headers(method, url, headers, expected):
    sent = sign_headers(method, url, headers=headers, now=NOW, **CREDENTIALS)
    assert sent[-1] == ("Authorization", expected)
    assert ("Date", DATE) in sent


# -- agreement with Alibaba's SDK code -----------------------------------------------------------

FC_CASES = [
    pytest.param("GET", "http://h/", [], id="root"),
    pytest.param("GET", "http://h/ünï/路径 x?q=a b&q=c&k=ü", [], id="unicode"),
    pytest.param("DELETE", "http://h/a%2Fb%20c?x=%2B&y=", [], id="escaped"),
    pytest.param(
        "PUT",
        "http://h/p",
        [("Content-MD5", "1B2M2Y8AsgTpgAmY7PhCfg=="), ("Content-Type", "text/plain")],
        id="md5 and type",
    ),
    pytest.param(
        "POST", "http://h/p", [("X-Fc-Trace-Id", "t"), ("x-fc-log-type", "Tail")], id="x-fc"
    ),
]


@pytest.mark.parametrize(("method", "url", "headers"), FC_CASES)
def test_fc_scheme_matches_fc2_auth(method, url, headers):
    sent = sign_headers(method, url, headers=headers, now=NOW, security_token="tok", **CREDENTIALS)
    parts = urlsplit(requote_url(url))
    queries: dict[str, list[str]] = {}
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        queries.setdefault(key, []).append(value)
    fc2_headers = {name.lower(): value for name, value in sent[:-1]}
    expected = Auth("ak", "secret").sign_request(method, unquote(parts.path), fc2_headers, queries)
    assert sent[-1] == ("Authorization", expected)
    assert ("x-fc-security-token", "tok") in sent
    assert verify(werkzeug_environ(method, requote_url(url), sent)) == "ak"


ACS3_CASES = [
    pytest.param("GET", "http://fc.example/", [], b"", id="root"),
    pytest.param("GET", "http://fc.example:9000/数据/a b?b=x y&a=1%2B2&e=", [], b"", id="unicode"),
    pytest.param(
        "POST",
        "http://user@fc.example/p",
        [("Content-Type", "application/json"), ("x-acs-extra", " padded ")],
        b'{"a": 1}',
        id="body",
    ),
]


@pytest.mark.parametrize(("method", "url", "headers", "body"), ACS3_CASES)
def test_acs3_scheme_matches_openapi_util(method, url, headers, body):
    sent = sign_headers(
        method,
        url,
        headers=headers,
        body=body,
        scheme="acs3",
        now=NOW,
        security_token="t",
        **CREDENTIALS,
    )
    values = dict(sent)
    assert values["x-acs-date"] == format_acs_date(NOW) == "2006-01-02T15:04:05Z"
    assert values["x-acs-content-sha256"] == hashlib.sha256(body).hexdigest()
    assert values["host"] == urlsplit(url).netloc.rpartition("@")[2]
    assert values["x-acs-security-token"] == "t"
    parts = urlsplit(requote_url(url))
    request = TeaRequest()
    request.method, request.pathname = method, parts.path or "/"
    request.query = {k: v for k, v in parse_qsl(parts.query, keep_blank_values=True)}
    request.headers = {name: value for name, value in sent[:-1]}
    payload = values["x-acs-content-sha256"]
    expected = OpenApiUtil.get_authorization(request, "ACS3-HMAC-SHA256", payload, "ak", "secret")
    assert sent[-1] == ("Authorization", expected)
    environ = werkzeug_environ(method, requote_url(url), sent, body)
    assert verify(environ) == "ak"
    assert environ["wsgi.input"].read() == body


# -- details -------------------------------------------------------------------------------------


def test_requote_url_encodes_only_what_cannot_travel():
    assert requote_url("http://h/a b/ü?q=a b&r=%2F") == "http://h/a%20b/%C3%BC?q=a%20b&r=%2F"
    assert requote_url("http://h/a%20b?x=1") == "http://h/a%20b?x=1"


def test_given_dates_are_kept_and_x_fc_date_wins():
    sent = sign_headers("GET", "http://h/", headers=[("x-fc-date", DATE)], now=0, **CREDENTIALS)
    assert not any(name.lower() == "date" for name, _ in sent)
    assert verify(werkzeug_environ("GET", "http://h/", sent)) == "ak"


def test_repeated_headers_are_signed_as_a_server_joins_them():
    headers = [("x-acs-list", "b"), ("x-acs-list", "a")]
    sent = sign_headers("GET", "http://h/", headers=headers, scheme="acs3", now=NOW, **CREDENTIALS)
    assert verify(werkzeug_environ("GET", "http://h/", sent)) == "ak"


def test_empty_body_hash():
    sent = sign_headers("GET", "http://h/", scheme="acs3", now=NOW, **CREDENTIALS)
    assert dict(sent)["x-acs-content-sha256"] == EMPTY_SHA256


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(dict(headers=[("authorization", "x")]), id="authorization given"),
        pytest.param(dict(scheme="sigv4"), id="unknown scheme"),
    ],
)
def test_sign_headers_refuses(call):
    with pytest.raises(ValueError):
        sign_headers("GET", "http://h/", **CREDENTIALS, **call)


def test_signed_url_keeps_the_query_and_expires():
    url = sign_url("GET", "http://h/p?z=1&a", expires=int(NOW) + 60, **CREDENTIALS)
    assert url.startswith("http://h/p?z=1&a&x-fc-access-key-id=ak&x-fc-expires=1136214305&")
    assert verify(werkzeug_environ("GET", url), now=NOW + 60) == "ak"


# -- property: whatever is signed here, the verifier accepts, and only as signed -------------------

text = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=8)
value = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=8)


@settings(max_examples=100, deadline=None)
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE"]),
    # Non-empty segments: werkzeug's builder reads a "//x" target as a host, as urlsplit does.
    path=st.lists(text.filter(bool), max_size=3),
    query=st.lists(st.tuples(text, text), max_size=4),
    headers=st.lists(
        st.tuples(st.sampled_from(["x-fc-a", "x-fc-b", "x-acs-c"]), value), max_size=3
    ),
    body=st.binary(max_size=16),
    scheme=st.sampled_from(["fc", "acs3", "url"]),
)
def test_property_signed_requests_verify_through_werkzeug(
    method, path, query, headers, body, scheme
):
    encoded = "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in query)
    url = "http://fc.example/" + "/".join(quote(p, safe="") for p in path)
    url += f"?{encoded}" if encoded else ""
    # The legacy scheme signs one value per x-fc-* name; servers join repeats anyway.
    headers = list(dict(headers).items())
    if scheme == "url":
        url = sign_url(method, url, expires=int(NOW), headers=headers, **CREDENTIALS)
        sent = headers
    else:
        sent = sign_headers(
            method, url, headers=headers, body=body, scheme=scheme, now=NOW, **CREDENTIALS
        )
    assert verify(werkzeug_environ(method, url, sent, body)) == "ak"
    with pytest.raises(SignatureNotMatch):
        verify(werkzeug_environ("HEAD", url, sent, body))
