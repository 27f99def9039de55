"""AuthGate: anonymous triggers and FC's disabled public URL."""

from __future__ import annotations

import time

import jwt as pyjwt
import pytest
from support import hello_app, validated

from fc_wsgi import AuthGate
from fc_wsgi.auth.signing import sign_headers
from fc_wsgi.config import AccessKey


def test_anonymous_lets_every_request_through():
    assert validated(AuthGate, hello_app).get("/").body == b"hello"


def test_disabled_internet_url_answers_fcs_403():
    response = validated(AuthGate, hello_app, disable_url_internet=True).get("/", status=403)
    assert response.json["Code"] == "AccessDenied"
    assert response.json["Message"] == "access denied due to function internet URL is disable"
    assert response.headers["X-Fc-Error-Type"] == "FcCommonError"


# -- function and jwt: the gate builds its checker once and answers FC's errors ----------------

KEY = AccessKey("AK1", "secret-0123456789")
HMAC_SECRET = "a-32-byte-hmac-secret-for-tests!"
JWT_CONFIG = {
    "jwks": {"keys": [{"kty": "oct", "kid": "h1", "alg": "HS256",
                       "k": pyjwt.utils.base64url_encode(HMAC_SECRET.encode()).decode()}]},
    "claimPassBy": "header:sub:x-user",
}  # fmt: skip


def signed_headers(method="GET", url="http://localhost/", **kw):
    return dict(sign_headers(method, url, access_key_id="AK1", access_key_secret=KEY.secret, **kw))


def test_function_auth_passes_a_signed_request():
    app = validated(AuthGate, hello_app, auth_type="function", access_keys=[KEY])
    assert app.get("/", headers=signed_headers()).body == b"hello"


def test_function_auth_refuses_with_fcs_answer_and_never_calls_the_app():
    app = validated(AuthGate, hello_app, auth_type="function", access_keys=[KEY])
    response = app.get("/other", headers=signed_headers(), status=403)
    assert response.json["Code"] == "SignatureNotMatch"
    assert KEY.secret not in response.text
    assert app.get("/", status=400).json["Code"] == "MissingRequiredHeader"


def test_skew_uses_the_injected_clock():
    headers = signed_headers(now=1_700_000_000)
    late = validated(AuthGate, hello_app, auth_type="function", access_keys=[KEY],
                     clock=lambda: 1_700_000_000 + 901)  # fmt: skip
    assert late.get("/", headers=headers, status=403).json["Code"] == "AccessDenied"
    on_time = validated(AuthGate, hello_app, auth_type="function", access_keys=[KEY],
                        clock=lambda: 1_700_000_000 + 900)  # fmt: skip
    assert on_time.get("/", headers=headers).status_int == 200


def test_preflight_skips_authentication():
    app = validated(AuthGate, hello_app, auth_type="function", access_keys=[KEY])
    headers = {"Origin": "http://p.example", "Access-Control-Request-Method": "POST"}
    assert app.options("/", headers=headers).body == b"hello"
    assert app.options("/", status=400).json["Code"] == "MissingRequiredHeader"


def test_jwt_auth_passes_claims_and_refuses_with_401():
    app = validated(AuthGate, hello_app, auth_type="jwt", auth_config=JWT_CONFIG)
    token = pyjwt.encode({"sub": "u1", "exp": time.time() + 60}, HMAC_SECRET, "HS256",
                         headers={"kid": "h1"})  # fmt: skip
    assert app.get("/", headers={"Authorization": f"Bearer {token}"}).body == b"hello"
    refused = app.get("/", headers={"Authorization": "Bearer nope"}, status=401)
    assert refused.json["Code"] == "InvalidToken"
    assert refused.headers["WWW-Authenticate"].startswith("Bearer")


def test_unknown_auth_type_and_jwt_without_config_are_refused():
    with pytest.raises(ValueError, match="auth_type"):
        AuthGate(hello_app, auth_type="basic")
    with pytest.raises(ValueError, match="auth_config"):
        AuthGate(hello_app, auth_type="jwt")
