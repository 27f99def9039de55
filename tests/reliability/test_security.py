"""Security matrix: replayed and re-targeted signatures, JWT attacks, spoofed pass-through
headers, a JWKS fetch storm, and secrets that must never reach a log line or an answer."""

from __future__ import annotations

import base64
import hashlib
import hmac
import inspect
import io
import json
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote_to_bytes, urlsplit

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from relsupport import ACCESS_KEY_ID, ACCESS_KEY_SECRET
from support import Recorder, hello_app

from fc_wsgi import AuthGate, make_trigger_app
from fc_wsgi.auth import jwks as jwks_module
from fc_wsgi.auth import signature as signature_module
from fc_wsgi.auth.signing import sign_headers, sign_url
from fc_wsgi.config import AccessKey

NOW = 1_700_000_000.0
URL = "http://fc.example/orders/42?b=2&a=1"
KEYS = (AccessKey(ACCESS_KEY_ID, ACCESS_KEY_SECRET),)


def environ_for(method: str, url: str, headers=(), body: bytes = b"") -> dict:
    """The PEP 3333 environ gunicorn builds for ``method url`` with ``headers``."""
    parts = urlsplit(url)
    environ = {
        "REQUEST_METHOD": method, "SCRIPT_NAME": "",
        "PATH_INFO": unquote_to_bytes(parts.path or "/").decode("latin-1"),
        "QUERY_STRING": parts.query,
        "RAW_URI": parts.path + (f"?{parts.query}" if parts.query else ""),
        "SERVER_NAME": "fc.example", "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": parts.netloc, "wsgi.version": (1, 0), "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body), "wsgi.errors": io.StringIO(), "wsgi.multithread": False,
        "wsgi.multiprocess": False, "wsgi.run_once": False,
    }  # fmt: skip
    if body:
        environ["CONTENT_LENGTH"] = str(len(body))
    for name, value in headers:
        key = name.upper().replace("-", "_")
        environ[key if key == "CONTENT_TYPE" else "HTTP_" + key] = value
    return environ


def gate(now: float = NOW, **options) -> AuthGate:
    return AuthGate(hello_app, auth_type="function", access_keys=KEYS, clock=lambda: now,
                    **options)  # fmt: skip


def call(app, environ) -> tuple[Recorder, dict | None]:
    recorder = Recorder()
    body = recorder.run(app, environ)
    return recorder, (json.loads(body) if recorder.status[:3] != "200" else None)


def signed(method="GET", url=URL, body=b"", scheme="fc", now=NOW, headers=()):
    return sign_headers(method, url, access_key_id=ACCESS_KEY_ID,
                        access_key_secret=ACCESS_KEY_SECRET, body=body, scheme=scheme, now=now,
                        headers=headers)  # fmt: skip


# -- signatures ------------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["fc", "acs3"])
@pytest.mark.parametrize(
    "age, status",
    [(-901, "403"), (-899, "200"), (899, "200"), (901, "403")],
    ids=["from the future", "just in time (early)", "just in time", "replayed later"],
)
def test_replay_outside_the_time_window_is_refused(scheme, age, status):
    headers = signed(scheme=scheme, now=NOW)
    recorder, payload = call(gate(now=NOW + age), environ_for("GET", URL, headers))
    assert recorder.status[:3] == status
    if status == "403":
        assert payload["Code"] == "AccessDenied"
        assert "is too large" in payload["Message"]


def test_signed_url_is_refused_after_it_expires():
    url = sign_url("GET", URL, access_key_id=ACCESS_KEY_ID, access_key_secret=ACCESS_KEY_SECRET,
                   expires=int(NOW) + 60)  # fmt: skip
    assert call(gate(now=NOW + 60), environ_for("GET", url))[0].status[:3] == "200"
    recorder, payload = call(gate(now=NOW + 61), environ_for("GET", url))
    assert (recorder.status[:3], payload["Code"]) == ("403", "AccessDenied")


@pytest.mark.parametrize("scheme", ["fc", "acs3"])
@pytest.mark.parametrize(
    "method, url",
    [
        ("POST", URL),
        ("GET", "http://fc.example/orders/43?b=2&a=1"),
        ("GET", "http://fc.example/orders/42?b=2&a=2"),
        ("GET", "http://fc.example/orders/42?b=2&a=1&admin=1"),
        ("GET", "http://fc.example/orders/42"),
    ],
    ids=["method", "path", "query value", "query added", "query dropped"],
)
def test_a_signature_does_not_cover_a_different_request(scheme, method, url):
    headers = signed(scheme=scheme)
    recorder, payload = call(gate(), environ_for(method, url, headers))
    assert (recorder.status[:3], payload["Code"]) == ("403", "SignatureNotMatch")


def test_acs3_signature_does_not_cover_a_different_body():
    headers = signed("POST", scheme="acs3", body=b'{"amount": 1}')
    environ = environ_for("POST", URL, headers, body=b'{"amount": 1000}')
    recorder, payload = call(gate(), environ)
    assert (recorder.status[:3], payload["Code"]) == ("403", "SignatureNotMatch")
    ok = environ_for("POST", URL, headers, body=b'{"amount": 1}')
    assert call(gate(), ok)[0].status[:3] == "200"


def test_fc_scheme_signs_content_md5_not_the_body():
    """FC's legacy scheme signs Content-MD5 and x-fc-* headers, not the body (fc-spec.md 8.2,
    13.7): a client that needs body integrity signs Content-MD5 or uses ACS3."""
    md5 = base64.b64encode(hashlib.md5(b"a").digest()).decode()
    headers = signed("POST", headers=[("Content-MD5", md5)])
    changed = [(n, v if n != "Content-MD5" else "x" + v) for n, v in headers]
    recorder, payload = call(gate(), environ_for("POST", URL, changed, body=b"a"))
    assert payload["Code"] == "SignatureNotMatch"


def test_signatures_are_compared_in_constant_time(monkeypatch):
    source = inspect.getsource(signature_module)
    assert "compare_digest" in source and "== provided" not in source
    calls = []
    real = hmac.compare_digest

    def recording(a, b):
        calls.append((len(a), len(b)))
        return real(a, b)

    monkeypatch.setattr(signature_module.hmac, "compare_digest", recording)
    for scheme in ("fc", "acs3"):
        headers = [(n, v[:-4] + "AAA=" if n == "Authorization" else v)
                   for n, v in signed(scheme=scheme)]  # fmt: skip
        assert call(gate(), environ_for("GET", URL, headers))[1]["Code"] == "SignatureNotMatch"
    assert len(calls) >= 2


@pytest.mark.parametrize("key_id", ["../../etc/passwd", "' OR 1=1 --", "\x00", "a" * 5000])
def test_hostile_access_key_ids_are_unknown_keys(key_id):
    environ = environ_for("GET", URL, [("Date", "Mon, 02 Jan 2006 15:04:05 GMT"),
                                       ("Authorization", f"FC {key_id}:c2ln")])  # fmt: skip
    recorder, payload = call(gate(), environ)
    assert (recorder.status[:3], payload["Code"]) == ("403", "InvalidAccessKeyID")


# -- JWT -------------------------------------------------------------------------------------


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned(header: dict, claims: dict) -> str:
    return f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}."


def raw_signed(header: dict, claims: dict, key) -> str:
    """RS256 over any header, even one PyJWT would refuse to write (a numeric kid)."""
    signing_input = unsigned({"alg": "RS256", **header}, claims)[:-1]
    algorithm = jwt.algorithms.RSAAlgorithm(jwt.algorithms.RSAAlgorithm.SHA256)
    return signing_input + "." + b64(algorithm.sign(signing_input.encode(), key))


@pytest.fixture(scope="module")
def jwt_gate(public_jwk):
    config = {"jwks": {"keys": [public_jwk]}, "claimPassBy": "header:uid:x-uid,query:uid:uid"}
    return AuthGate(hello_app, auth_type="jwt", auth_config=config)


def bearer(token: str, path: str = "/", query: str = "", **headers) -> dict:
    environ = environ_for(
        "GET",
        f"http://fc.example{path}?{query}" if query else f"http://fc.example{path}",
        [("Authorization", f"Bearer {token}")],
    )
    environ.update(headers)
    return environ


def test_a_valid_token_passes(jwt_gate, mint):
    assert call(jwt_gate, bearer(mint({"uid": "u1"})))[0].status[:3] == "200"


def _attacks(rsa_key, mint):
    pem = rsa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    claims = {"uid": "admin", "exp": int(time.time()) + 3600}
    confused = jwt.api_jws.PyJWS()
    confused._algorithms["HS256"].prepare_key = lambda key: key  # PyJWT refuses PEM as HMAC key
    return {
        "alg none": unsigned({"alg": "none", "kid": "k1"}, claims),
        "alg None": unsigned({"alg": "None", "kid": "k1"}, claims),
        "alg none, no kid": unsigned({"alg": "none"}, claims),
        "HS256 with the RSA public key (key confusion)": confused.encode(
            json.dumps(claims).encode(), pem, "HS256", headers={"kid": "k1"}
        ),
        "signed by another key": mint({"uid": "admin"}, key=other),
        "jku pointing elsewhere": mint({"uid": "admin"}, key=other, jku="http://evil/jwks"),
        "embedded jwk": jwt.encode(
            claims,
            other,
            "RS256",
            headers={
                "kid": "k1",
                "jwk": json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(other.public_key())),
            },
        ),
        "kid ../../etc/passwd": mint({"uid": "admin"}, kid="../../etc/passwd"),
        "kid ' OR 1=1": mint({"uid": "admin"}, kid="' OR 1=1 --"),
        "kid with NUL": mint({"uid": "admin"}, kid="k1\x00"),
        "kid not a string": raw_signed({"kid": 1}, claims, rsa_key),
        "expired": mint({"uid": "u1", "exp": int(time.time()) - 1}),
        "not yet valid": mint({"uid": "u1", "nbf": int(time.time()) + 600}),
        "exp not a number": raw_signed({"kid": "k1"}, {**claims, "exp": "tomorrow"}, rsa_key),
        "payload swapped": ".".join(
            [mint().split(".")[0], b64(json.dumps(claims).encode()), mint().split(".")[2]]
        ),
        "signature stripped": mint({"uid": "u1"}).rsplit(".", 1)[0] + ".",
        "garbage": "a.b.c",
        "huge": "a" * 20000,
    }


ATTACK_IDS = [
    "alg none",
    "alg None",
    "alg none, no kid",
    "HS256 with the RSA public key (key confusion)",
    "signed by another key",
    "jku pointing elsewhere",
    "embedded jwk",
    "kid ../../etc/passwd",
    "kid ' OR 1=1",
    "kid with NUL",
    "kid not a string",
    "expired",
    "not yet valid",
    "exp not a number",
    "payload swapped",
    "signature stripped",
    "garbage",
    "huge",
]


@pytest.mark.parametrize("attack", ATTACK_IDS)
def test_jwt_attacks_are_refused(jwt_gate, rsa_key, mint, attack, monkeypatch):
    opened = []
    real_open = open
    monkeypatch.setattr("builtins.open", lambda *a, **k: opened.append(a) or real_open(*a, **k))
    token = _attacks(rsa_key, mint)[attack]
    recorder, payload = call(jwt_gate, bearer(token, HTTP_X_UID="admin"))
    assert (recorder.status[:3], payload["Code"]) == ("401", "InvalidToken"), payload
    assert token not in json.dumps(payload) and token not in str(recorder.headers)
    assert not [a for a in opened if "passwd" in str(a)]


def test_client_sent_pass_through_values_are_replaced(jwt_gate, mint):
    seen = {}

    def app(environ, start_response):
        seen.update(environ)
        return hello_app(environ, start_response)

    gate_ = AuthGate(app, auth_type="jwt", auth_config=jwt_gate._check.__self__.config)
    call(gate_, bearer(mint({"role": "x"}), query="uid=evil&uid=evil2&keep=1", HTTP_X_UID="evil"))
    assert "HTTP_X_UID" not in seen and seen["QUERY_STRING"] == "keep=1"
    seen.clear()
    call(gate_, bearer(mint({"uid": "u1"}), query="uid=evil", HTTP_X_UID="evil"))
    assert seen["HTTP_X_UID"] == "u1" and seen["QUERY_STRING"] == "uid=u1"


class _JwksServer:
    """A local JWKS endpoint that counts the fetches it serves."""

    def __init__(self, jwks: dict) -> None:
        body = json.dumps(jwks).encode()
        self.fetches = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's name
                outer.fetches += 1
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/jwks.json"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_unknown_kid_flood_fetches_the_remote_jwks_once_per_cooldown(public_jwk, mint):
    with _JwksServer({"keys": [public_jwk]}) as jwks_server:
        config = {"jwksUrl": jwks_server.url, "jwksRefreshCooldownSeconds": 30}
        gate_ = AuthGate(hello_app, auth_type="jwt", auth_config=config)
        assert call(gate_, bearer(mint()))[0].status[:3] == "200"
        statuses = {call(gate_, bearer(mint(kid=f"random-{i}")))[0].status[:3]
                    for i in range(300)}  # fmt: skip
        assert statuses == {"401"}
        assert call(gate_, bearer(mint()))[0].status[:3] == "200"
    # The first fetch, then at most one refresh for the whole flood (30 s cooldown).
    assert jwks_server.fetches <= 2, jwks_server.fetches


def test_jwks_fetches_are_bounded_in_size_and_time():
    source = inspect.getsource(jwks_module.fetch_jwks_url)
    assert "MAX_JWKS_BYTES + 1" in source and "timeout=timeout" in source


# -- secrets never in logs or answers -------------------------------------------------------


def test_secrets_never_reach_logs_or_answers(caplog, mint, public_jwk, tmp_path):
    caplog.set_level(logging.DEBUG)
    hmac_key = "an-hmac-key-of-at-least-32-bytes-long!!"
    oct_jwk = {"kty": "oct", "kid": "h1", "alg": "HS256", "k": b64(hmac_key.encode())}
    token = mint({"uid": "u1"})
    answers: list[str] = []
    config_base = {"methods": ["GET", "POST"], "async": {"journal": str(tmp_path / "j.db")}}
    function_app = make_trigger_app(hello_app, {**config_base, "authType": "function",
        "accessKeys": [{"id": ACCESS_KEY_ID, "secret": ACCESS_KEY_SECRET}]})  # fmt: skip
    jwt_app = make_trigger_app(hello_app, {**config_base, "authType": "jwt", "authConfig": {
        "jwks": {"keys": [public_jwk, oct_jwk]}}})  # fmt: skip
    good = signed()
    sig = dict(good)["Authorization"].rpartition(":")[2]
    bad = [(n, v.replace(sig, sig[::-1]) if n == "Authorization" else v) for n, v in good]
    environs = [
        (function_app, environ_for("GET", URL, bad)),
        (function_app, environ_for("GET", URL, signed(now=NOW))),  # skewed: real clock
        (function_app, environ_for("GET", URL, signed(scheme="acs3", now=NOW))),
        (jwt_app, bearer(token + "x")),
        (jwt_app, bearer(jwt.encode({"exp": 1}, hmac_key, "HS256", headers={"kid": "h1"}))),
        (
            jwt_app,
            bearer(
                jwt.encode(
                    {"a": 1},
                    "wrong-key-of-at-least-32-bytes-long!!",
                    "HS256",
                    headers={"kid": "h1"},
                )
            ),
        ),  # fmt: skip
        (jwt_app, bearer(token, HTTP_X_FC_INVOCATION_TYPE="Async")),
    ]
    for app, environ in environs:
        recorder = Recorder()
        body = recorder.run(app, environ)
        answers.append(recorder.status + repr(recorder.headers) + body.decode("latin-1"))
    text = "\n".join(answers) + caplog.text
    for secret in (ACCESS_KEY_SECRET, hmac_key, b64(hmac_key.encode()), token, sig):
        assert secret not in text
    assert any(a.startswith("403") for a in answers) and any(a.startswith("401") for a in answers)


def test_config_errors_never_show_secrets(tmp_path):
    from fc_wsgi.config import ConfigError, load_config

    bad = {"authType": "function", "methods": ["GET"],
           "accessKeys": [{"id": "a", "secret": ACCESS_KEY_SECRET, "extra": 1}]}  # fmt: skip
    with pytest.raises(ConfigError) as info:
        load_config(bad)
    assert ACCESS_KEY_SECRET not in str(info.value)
    path = tmp_path / "t.json"
    path.write_text(json.dumps(bad))
    with pytest.raises(ConfigError) as info:
        load_config(Path(path))
    assert ACCESS_KEY_SECRET not in str(info.value)
