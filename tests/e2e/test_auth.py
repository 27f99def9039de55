"""Signature and JWT authentication through a real `fc-wsgi serve`, signed by Alibaba's SDKs."""

from __future__ import annotations

import hashlib
import http.server
import json
import threading
import time
from email.utils import formatdate

import jwt as pyjwt
import pytest
import requests
from alibabacloud_openapi_util.client import Client as OpenApiUtil
from cryptography.hazmat.primitives.asymmetric import rsa
from fc2.client import Client as Fc2Client
from Tea.core import TeaCore
from Tea.request import TeaRequest

from fc_wsgi.cli import main as cli_main

pytestmark = pytest.mark.e2e

KEYS = [{"id": "AK-OLD", "secret": "old-secret-0123456789"},
        {"id": "AK-NEW", "secret": "new-secret-9876543210"}]  # fmt: skip
FUNCTION = {"authType": "function", "methods": ["GET", "POST"], "accessKeys": KEYS}


@pytest.fixture
def signed(serve):
    return serve("examples.hello:handler", FUNCTION)


def fc2_client(server, key=KEYS[1]) -> Fc2Client:
    return Fc2Client(endpoint=server.url, accessKeyID=key["id"], accessKeySecret=key["secret"])


def test_fc2_sdk_requests_pass_with_either_rotated_key(signed):
    for key in KEYS:
        response = fc2_client(signed, key).do_http_request(
            "POST", "svc", "fn", "/ünï code", headers={"x-fc-trace-id": "t-1"},
            params={"b": ["2", "1"], "a": "x y"}, body=b'{"k": 1}',
        )  # fmt: skip
        assert response.status_code == 200, response.text
        seen = response.json()
        assert seen["path"] == "/2016-08-15/proxy/svc/fn/ünï code".encode().decode("latin-1")
        assert seen["bodyBytes"] == 8


def test_wrong_secret_and_unknown_key_are_refused(signed):
    wrong = fc2_client(signed, {"id": "AK-NEW", "secret": "not-the-secret"})
    response = wrong.do_http_request("GET", "svc", "fn", "/")
    assert (response.status_code, response.json()["Code"]) == (403, "SignatureNotMatch")
    assert "not-the-secret" not in response.text and "new-secret" not in response.text
    unknown = fc2_client(signed, {"id": "AK-GONE", "secret": "x"})
    response = unknown.do_http_request("GET", "svc", "fn", "/")
    assert (response.status_code, response.json()["Code"]) == (403, "InvalidAccessKeyID")


def test_missing_date_and_stale_date(signed):
    response = requests.get(signed.url + "/", timeout=5)
    assert (response.status_code, response.json()["Code"]) == (400, "MissingRequiredHeader")
    assert response.json()["Message"] == "required HTTP header Date was not specified"
    stale = formatdate(time.time() - 16 * 60, usegmt=True)
    lines = _cli_sign(
        [
            "GET",
            signed.url + "/",
            "--access-key-id",
            "AK-NEW",
            "--access-key-secret",
            KEYS[1]["secret"],
            "-H",
            f"Date: {stale}",
        ]
    )
    response = requests.get(signed.url + "/", headers=dict(lines), timeout=5)
    assert (response.status_code, response.json()["Code"]) == (403, "AccessDenied")


def test_signature_over_a_different_body_path_or_method_is_refused(signed):
    lines = dict(
        _cli_sign(
            [
                "POST",
                signed.url + "/a?x=1",
                "--access-key-id",
                "AK-NEW",
                "--access-key-secret",
                KEYS[1]["secret"],
                "--scheme",
                "acs3",
                "--data",
                "original",
            ]
        )
    )
    assert (
        requests.post(signed.url + "/a?x=1", data="original", headers=lines, timeout=5).status_code
        == 200
    )
    for method, path, body in [
        ("POST", "/a?x=1", "tampered"),
        ("POST", "/b?x=1", "original"),
        ("PUT", "/a?x=1", "original"),
        ("POST", "/a?x=2", "original"),
    ]:
        response = requests.request(method, signed.url + path, data=body, headers=lines, timeout=5)
        assert response.status_code in (403, 400), (method, path, body)


def test_acs3_signed_by_alibabas_openapi_util(signed):
    body = b'{"hello": "acs3"}'
    request = TeaRequest()
    request.method = "POST"
    request.pathname = OpenApiUtil.get_encode_path("/数据/a b")
    request.query = {"q": "1 2", "empty": ""}
    host = signed.url.removeprefix("http://")
    payload = hashlib.sha256(body).hexdigest()
    request.headers = {
        "host": host,
        "x-acs-date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "x-acs-content-sha256": payload,
        "content-type": "application/json",
    }
    request.headers["Authorization"] = OpenApiUtil.get_authorization(
        request, "ACS3-HMAC-SHA256", payload, "AK-OLD", KEYS[0]["secret"]
    )
    url = TeaCore.compose_url(request)
    response = requests.post(url, data=body, headers=request.headers, timeout=5)
    assert response.status_code == 200, response.text
    assert response.json()["bodyBytes"] == len(body)  # the app still reads the hashed body


def test_signed_url_from_the_cli(signed):
    argv = ["sign", "GET", signed.url + "/shared?x=1", "--access-key-id", "AK-NEW",
            "--access-key-secret", KEYS[1]["secret"], "--expires"]  # fmt: skip
    url = _cli_output([*argv, "60"]).strip()
    assert requests.get(url, timeout=5).status_code == 200
    assert requests.get(url.replace("x=1", "x=2"), timeout=5).status_code == 403
    short = _cli_output([*argv, "1"]).strip()
    time.sleep(2.1)
    response = requests.get(short, timeout=5)
    assert (response.status_code, response.json()["Code"]) == (403, "AccessDenied")


def _cli_output(argv: list[str]) -> str:
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cli_main(argv) == 0
    return out.getvalue()


def _cli_sign(argv: list[str]) -> list[tuple[str, str]]:
    lines = _cli_output(["sign", *argv]).splitlines()
    return [tuple(part.strip() for part in line.split(":", 1)) for line in lines]  # type: ignore[misc]


# -- JWT with a remote JWKS served by a local server ---------------------------------------------


class JwksServer:
    """A JWKS endpoint on loopback that counts fetches and can be stopped mid-test."""

    def __init__(self, keys: list[dict]) -> None:
        self.keys, self.fetches = keys, 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                outer.fetches += 1
                body = json.dumps({"keys": outer.keys}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/jwks.json"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


def rsa_jwk(kid: str):
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(pyjwt.algorithms.RSAAlgorithm.to_jwk(private.public_key()))
    return private, {**jwk, "kid": kid, "alg": "RS256", "use": "sig"}


def token(private, kid: str, **claims) -> str:
    body = {"sub": "user-1", "uid": "u-42", "exp": int(time.time()) + 300, **claims}
    return pyjwt.encode(body, private, algorithm="RS256", headers={"kid": kid})


def test_jwt_with_a_remote_jwks_that_goes_away(serve):
    private, jwk = rsa_jwk("k1")
    other, other_jwk = rsa_jwk("k2")
    jwks = JwksServer([jwk])
    try:
        config = {
            "authType": "jwt",
            "methods": ["GET"],
            "authConfig": json.dumps(
                {
                    "jwksUrl": jwks.url,
                    "tokenLookup": "header:Authorization:Bearer ",
                    "claimPassBy": "header:uid:x-uid",
                    "whitelist": ["/public/*"],
                    "jwksRefreshCooldownSeconds": 0.5,
                }
            ),
        }
        server = serve("examples.claims:app", config)
        good = {"Authorization": "Bearer " + token(private, "k1")}
        response = requests.get(
            server.url + "/private", headers={**good, "X-Uid": "spoofed"}, timeout=5
        )
        assert response.status_code == 200, response.text
        assert response.json()["x-uid"] == "u-42"
        assert requests.get(server.url + "/public/doc", timeout=5).status_code == 200
        missing = requests.get(server.url + "/private", timeout=5)
        assert (missing.status_code, missing.json()["Code"]) == (401, "InvalidToken")
        assert missing.headers["WWW-Authenticate"].startswith("Bearer")

        jwks.stop()  # the JWKS endpoint goes away: the last good keys keep serving
        fresh = {"Authorization": "Bearer " + token(private, "k1", jti="second")}
        assert requests.get(server.url + "/private", headers=fresh, timeout=5).status_code == 200
        unknown = {"Authorization": "Bearer " + token(other, "k2")}
        response = requests.get(server.url + "/private", headers=unknown, timeout=5)
        assert response.status_code == 401
        assert unknown["Authorization"][7:] not in response.text
        assert f"JWKS refresh from {jwks.url} failed" in server.output()
        assert "keeping the 1 last good keys" in server.output()
    finally:
        if jwks.thread.is_alive():
            jwks.stop()
