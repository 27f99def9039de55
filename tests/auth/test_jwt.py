"""JWT authentication: token lookup, verification, the token cache, claim pass-through."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable
from typing import Any

import jwt as pyjwt
import pytest
from cryptography.hazmat.primitives import serialization
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from support import HS_SECRET, b64url, make_environ

from fc_wsgi.auth.jwt import CLAIMS_ENVIRON_KEY, MAX_TOKEN_BYTES, NO_EXP_CACHE_SECONDS, JwtVerifier
from fc_wsgi.errors import InvalidArgument, InvalidToken
from fc_wsgi.jwt_config import ClaimPass, parse_auth_config

NOW = 1_700_000_000.0


KID_FOR_ALG = {
    **dict.fromkeys(["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"], "rsa"),
    "ES256": "ec256",
    "ES384": "ec384",
    "ES512": "ec521",
    "EdDSA": "ed",
    **dict.fromkeys(["HS256", "HS384", "HS512"], "hs"),
}


@pytest.fixture
def mint(keys: dict[str, Any]) -> Callable[..., str]:
    def mint(alg: str = "RS256", *, kid: str | None = "", key: Any = None, **claims: Any) -> str:
        kid = KID_FOR_ALG[alg] if kid == "" else kid
        headers = {"kid": kid} if kid is not None else {}
        claims.setdefault("sub", "u1")
        claims.setdefault("exp", NOW + 300)
        claims = {name: value for name, value in claims.items() if value is not None}
        signing_key = key if key is not None else keys[KID_FOR_ALG[alg]]
        return pyjwt.encode(claims, signing_key, algorithm=alg, headers=headers)

    return mint


class Clock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def verifier(jwks: dict[str, Any], clock: Clock) -> Callable[..., JwtVerifier]:
    def build(**auth_config: Any) -> JwtVerifier:
        return JwtVerifier(parse_auth_config({"jwks": jwks, **auth_config}), clock=clock)

    return build


def bearer(token: str, **overrides: Any) -> dict[str, Any]:
    return make_environ(HTTP_AUTHORIZATION=f"Bearer {token}", **overrides)


def refused(verifier: JwtVerifier, environ: dict[str, Any]) -> InvalidToken:
    with pytest.raises(InvalidToken) as caught:
        verifier.authenticate(environ)
    error = caught.value
    assert error.status == "401 Unauthorized"
    assert error.code == "InvalidToken"
    assert [name for name, _ in error.extra_headers] == ["WWW-Authenticate"]
    assert error.extra_headers[0][1].startswith("Bearer ")
    return error


# -- verification -------------------------------------------------------------------------------


@pytest.mark.parametrize("alg", sorted(KID_FOR_ALG))
def test_every_algorithm_verifies_with_its_key(alg, mint, verifier):
    environ = bearer(mint(alg, role="admin"))
    verifier().authenticate(environ)
    assert environ[CLAIMS_ENVIRON_KEY]["role"] == "admin"


def test_claims_are_read_only(mint, verifier):
    environ = bearer(mint())
    verifier().authenticate(environ)
    with pytest.raises(TypeError):
        environ[CLAIMS_ENVIRON_KEY]["sub"] = "root"


def forge_hs256_with_rsa_public_key(keys: dict[str, Any]) -> str:
    """The classic confusion: HS256 keyed with the RSA public key's PEM text."""
    pem = (
        keys["rsa"]
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    header = b64url(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "rsa"}).encode())
    payload = b64url(json.dumps({"sub": "admin", "exp": NOW + 300}).encode())
    signature = hmac.new(pem, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{b64url(signature)}"


def alg_none(keys: dict[str, Any]) -> str:
    return pyjwt.encode({"sub": "admin", "exp": NOW + 300}, None, "none", headers={"kid": "rsa"})


def bad_base64(token: str) -> str:
    header, payload, signature = token.split(".")
    return f"{header}.{payload[:5]}!{payload[6:]}.{signature}"


def payload_not_an_object(keys: dict[str, Any]) -> str:
    return pyjwt.api_jws.encode(b"[1, 2]", HS_SECRET, "HS256", headers={"kid": "hs"})


ATTACKS = [
    pytest.param(lambda m, k: m(exp=NOW - 1), "token has expired", id="expired"),
    pytest.param(lambda m, k: m(exp=NOW), "token has expired", id="exp == now"),
    pytest.param(lambda m, k: m(nbf=NOW + 60), "token is not yet valid", id="not yet valid"),
    pytest.param(lambda m, k: m(iat=NOW + 60), "token is not yet valid", id="issued in future"),
    pytest.param(
        lambda m, k: m("ES256", key=k["other_ec256"]), "token signature is invalid", id="wrong key"
    ),
    pytest.param(lambda m, k: m(kid="nope"), "token key is unknown", id="unknown kid"),
    pytest.param(lambda m, k: m(kid=None), "token has no kid", id="no kid, no kid-less key"),
    pytest.param(lambda m, k: alg_none(k), "token algorithm is not allowed", id="alg none"),
    pytest.param(
        lambda m, k: forge_hs256_with_rsa_public_key(k),
        "token algorithm is not allowed",
        id="HS256 with the RSA public key",
    ),
    pytest.param(
        lambda m, k: m("ES256", kid="rsa", key=k["ec256"]),
        "token algorithm is not allowed",
        id="ES256 token naming the RSA key",
    ),
    pytest.param(
        lambda m, k: m("ES512", kid="ec256", key=k["ec521"]),
        "token algorithm is not allowed",
        id="ES512 token naming the P-256 key",
    ),
    pytest.param(lambda m, k: m()[:-10], "token signature is invalid", id="truncated signature"),
    pytest.param(lambda m, k: m().rpartition(".")[0], "token is malformed", id="two segments"),
    pytest.param(lambda m, k: bad_base64(m()), "token is malformed", id="bad base64"),
    pytest.param(lambda m, k: "not a token at all", "token is malformed", id="garbage"),
    pytest.param(lambda m, k: m(exp="tomorrow"), "token claims are malformed", id="exp string"),
    pytest.param(lambda m, k: m(exp=float("nan")), "token claims are malformed", id="exp NaN"),
    pytest.param(lambda m, k: m(exp=True), "token claims are malformed", id="exp boolean"),
    pytest.param(lambda m, k: payload_not_an_object(k), "token is malformed", id="payload list"),
    pytest.param(lambda m, k: "a" * (MAX_TOKEN_BYTES + 1), "token is too large", id="over 16 KiB"),
]


@pytest.mark.parametrize(("make_token", "message"), ATTACKS)
def test_attacks_are_refused_without_echoing_the_token(make_token, message, mint, keys, verifier):
    token = make_token(mint, keys)
    error = refused(verifier(), bearer(token))
    assert error.message == message
    assert token[-8:] not in error.message
    assert message in error.extra_headers[0][1]
    assert 'error="invalid_token"' in error.extra_headers[0][1]


def test_a_token_just_under_the_size_bound_is_parsed(verifier):
    error = refused(verifier(), bearer("a" * MAX_TOKEN_BYTES))
    assert error.message == "token is malformed"


def test_missing_token_gets_a_bare_bearer_challenge(verifier):
    error = refused(verifier(), make_environ())
    assert error.message == "missing token"
    assert error.extra_headers == (("WWW-Authenticate", 'Bearer realm="fc"'),)


@pytest.mark.parametrize(
    ("leeway", "exp", "nbf", "accepted"),
    [
        pytest.param(0, NOW + 1, None, True, id="exp ahead, leeway 0"),
        pytest.param(10, NOW - 9, None, True, id="expired 9 s ago, leeway 10"),
        pytest.param(10, NOW - 10, None, False, id="expired 10 s ago, leeway 10"),
        pytest.param(10, NOW + 60, NOW + 10, True, id="nbf 10 s ahead, leeway 10"),
        pytest.param(10, NOW + 60, NOW + 11, False, id="nbf 11 s ahead, leeway 10"),
    ],
)
def test_leeway(leeway, exp, nbf, accepted, mint, verifier):
    claims = {"exp": exp} if nbf is None else {"exp": exp, "nbf": nbf}
    check = verifier(leewaySeconds=leeway)
    if accepted:
        check.authenticate(bearer(mint(**claims)))
    else:
        refused(check, bearer(mint(**claims)))


def test_token_without_exp_is_accepted(mint, verifier):
    verifier().authenticate(bearer(mint(exp=None)))


@pytest.mark.parametrize(
    ("claims", "message"),
    [
        pytest.param({"iss": "https://idp", "aud": "fc"}, None, id="both match"),
        pytest.param({"iss": "https://idp", "aud": ["x", "fc"]}, None, id="aud list"),
        pytest.param(
            {"iss": "https://evil", "aud": "fc"}, "token issuer is not accepted", id="iss"
        ),
        pytest.param({"aud": "fc"}, "token issuer is not accepted", id="iss missing"),
        pytest.param(
            {"iss": "https://idp", "aud": "web"}, "token audience is not accepted", id="aud"
        ),
        pytest.param({"iss": "https://idp"}, "token audience is not accepted", id="aud missing"),
        pytest.param(
            {"iss": "https://idp", "aud": 7}, "token audience is not accepted", id="aud int"
        ),
    ],
)
def test_issuer_and_audience(claims, message, mint, verifier):
    check = verifier(issuer="https://idp", audience=["fc", "api"])
    environ = bearer(mint(**claims))
    if message is None:
        check.authenticate(environ)
    else:
        assert refused(check, environ).message == message


def test_issuer_must_be_a_string(verifier):
    payload = json.dumps({"sub": "u1", "iss": ["https://idp"], "aud": "fc"}).encode()
    token = pyjwt.api_jws.encode(payload, HS_SECRET, "HS256", headers={"kid": "hs"})
    check = verifier(issuer="https://idp", audience="fc")
    assert refused(check, bearer(token)).message == "token issuer is not accepted"


def test_issuer_and_audience_unchecked_unless_configured(mint, verifier):
    verifier().authenticate(bearer(mint(iss="anyone", aud="anything")))


def test_kidless_token_uses_the_kidless_key(keys, clock):
    jwk = {**ECAlgorithm.to_jwk(keys["ec256"].public_key(), as_dict=True)}
    check = JwtVerifier(parse_auth_config({"jwks": {"keys": [jwk]}}), clock=clock)
    token = pyjwt.encode({"sub": "u1"}, keys["ec256"], "ES256")
    check.authenticate(bearer(token))
    with_kid = pyjwt.encode({"sub": "u1"}, keys["ec256"], "ES256", headers={"kid": "x"})
    assert refused(check, bearer(with_kid)).message == "token key is unknown"


def test_allow_list_narrows_the_keys_algorithms(mint, keys, clock):
    jwk = {**RSAAlgorithm.to_jwk(keys["rsa"].public_key(), as_dict=True), "kid": "rsa"}
    config = parse_auth_config({"jwks": {"keys": [jwk]}, "algorithms": ["PS256"]})
    check = JwtVerifier(config, clock=clock)
    check.authenticate(bearer(mint("PS256")))
    assert refused(check, bearer(mint("RS256"))).message == "token algorithm is not allowed"


# -- the token cache ----------------------------------------------------------------------------


class CountingVerifier:
    """Counts signature checks by wrapping the verifier's PyJWS object."""

    def __init__(self, verifier: JwtVerifier, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        jws = verifier._jws
        real = jws.decode_complete

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            return real(*args, **kwargs)

        monkeypatch.setattr(jws, "decode_complete", counted)


def test_repeated_token_is_verified_once(mint, verifier, monkeypatch):
    check = verifier(claimPassBy="header:sub:x-user")
    counter = CountingVerifier(check, monkeypatch)
    token = mint()
    for _ in range(3):
        environ = bearer(token, HTTP_X_USER="spoofed")
        check.authenticate(environ)
        assert environ["HTTP_X_USER"] == "u1"
        assert environ[CLAIMS_ENVIRON_KEY]["sub"] == "u1"
    assert counter.calls == 1


def test_cache_never_extends_a_token_past_exp(mint, verifier, clock, monkeypatch):
    check = verifier(leewaySeconds=0)
    counter = CountingVerifier(check, monkeypatch)
    token = mint(exp=NOW + 60)
    check.authenticate(bearer(token))
    clock.now = NOW + 59.999
    check.authenticate(bearer(token))
    assert counter.calls == 1
    clock.now = NOW + 60
    assert refused(check, bearer(token)).message == "token has expired"


def test_cache_leaves_leeway_to_a_fresh_verification(mint, verifier, clock, monkeypatch):
    check = verifier(leewaySeconds=30)
    counter = CountingVerifier(check, monkeypatch)
    token = mint(exp=NOW + 60)
    check.authenticate(bearer(token))
    clock.now = NOW + 70  # past exp, inside the leeway: verified again, not served from cache
    check.authenticate(bearer(token))
    assert counter.calls == 2
    clock.now = NOW + 90
    assert refused(check, bearer(token)).message == "token has expired"


def test_token_without_exp_is_cached_briefly(mint, verifier, clock, monkeypatch):
    check = verifier()
    counter = CountingVerifier(check, monkeypatch)
    token = mint(exp=None)
    check.authenticate(bearer(token))
    clock.now = NOW + NO_EXP_CACHE_SECONDS - 1
    check.authenticate(bearer(token))
    assert counter.calls == 1
    clock.now = NOW + NO_EXP_CACHE_SECONDS
    check.authenticate(bearer(token))
    assert counter.calls == 2


def test_refused_tokens_are_not_cached(mint, verifier, clock):
    check = verifier()
    token = mint(nbf=NOW + 10)
    refused(check, bearer(token))
    clock.now = NOW + 10
    check.authenticate(bearer(token))


# -- token lookup ---------------------------------------------------------------------------------


def form_post(body: bytes, **overrides: Any) -> dict[str, Any]:
    return make_environ(
        REQUEST_METHOD="POST",
        CONTENT_TYPE="application/x-www-form-urlencoded; charset=utf-8",
        body=body,
        **overrides,
    )


@pytest.mark.parametrize(
    ("lookup", "environ_for"),
    [
        pytest.param(
            "header:Authorization:Bearer ",
            lambda t: make_environ(HTTP_AUTHORIZATION=f"bearer   {t} "),
            id="header, prefix any case",
        ),
        pytest.param(
            "header:X-Token", lambda t: make_environ(HTTP_X_TOKEN=t), id="header, no prefix"
        ),
        pytest.param(
            "cookie:jwt",
            lambda t: make_environ(HTTP_COOKIE=f'a=1; jwt="{t}"; b=2'),
            id="cookie",
        ),
        pytest.param(
            "query:access_token",
            lambda t: make_environ(QUERY_STRING=f"x=1&access_token={t}"),
            id="query",
        ),
        pytest.param("form:token", lambda t: form_post(f"a=1&token={t}&b=2".encode()), id="form"),
    ],
)
def test_token_lookup_sources(lookup, environ_for, mint, verifier):
    environ = environ_for(mint())
    verifier(tokenLookup=lookup).authenticate(environ)
    assert environ[CLAIMS_ENVIRON_KEY]["sub"] == "u1"


def test_token_lookup_order_first_hit_wins(mint, verifier):
    check = verifier(tokenLookup="cookie:jwt,header:Authorization:Bearer")
    environ = bearer(mint(sub="from-header"), HTTP_COOKIE=f"jwt={mint(sub='from-cookie')}")
    check.authenticate(environ)
    assert environ[CLAIMS_ENVIRON_KEY]["sub"] == "from-cookie"
    environ = bearer(mint(sub="from-header"))
    check.authenticate(environ)
    assert environ[CLAIMS_ENVIRON_KEY]["sub"] == "from-header"


def test_header_without_the_prefix_is_no_token(mint, verifier):
    environ = make_environ(HTTP_AUTHORIZATION=f"Basic {mint()}")
    assert refused(verifier(), environ).message == "missing token"


def test_form_lookup_replays_the_body(mint, verifier):
    body = f"a=1&token={mint()}&b=%20x".encode()
    environ = form_post(body)
    verifier(tokenLookup="form:token").authenticate(environ)
    assert environ["wsgi.input"].read() == body
    assert environ["CONTENT_LENGTH"] == str(len(body))


def test_form_lookup_reads_a_chunked_body_to_its_end(mint, verifier):
    body = f"token={mint()}".encode()
    environ = form_post(body, **{"wsgi.input_terminated": True})
    del environ["CONTENT_LENGTH"]
    verifier(tokenLookup="form:token").authenticate(environ)
    assert environ["wsgi.input"].read() == body
    assert environ["CONTENT_LENGTH"] == str(len(body))


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({"CONTENT_TYPE": "application/json"}, id="not a form"),
        pytest.param({"CONTENT_LENGTH": str(2 * 1024 * 1024)}, id="over the form bound"),
    ],
)
def test_form_lookup_leaves_other_bodies_unread(overrides, mint, verifier):
    body = f"token={mint()}".encode()
    environ = form_post(body)
    environ.update(overrides)
    stream = environ["wsgi.input"]
    assert refused(verifier(tokenLookup="form:token"), environ).message == "missing token"
    assert environ["wsgi.input"] is stream
    assert stream.tell() == 0


# -- claim pass-through ---------------------------------------------------------------------------


def test_claims_pass_to_headers_overwriting_client_values(mint, verifier):
    check = verifier(claimPassBy="header:sub:x-uid,header:roles:X-Roles,header:missing:x-gone")
    environ = bearer(mint(roles=["a", "b"]), HTTP_X_UID="root", HTTP_X_GONE="spoof")
    check.authenticate(environ)
    assert environ["HTTP_X_UID"] == "u1"
    assert environ["HTTP_X_ROLES"] == '["a","b"]'  # non-string claims: JSON text
    assert "HTTP_X_GONE" not in environ  # claim absent: the client's value is removed anyway


def test_non_ascii_claim_reaches_the_header_as_pep3333_text(mint, verifier):
    environ = bearer(mint(name="张三"))
    verifier(claimPassBy="header:name:x-name").authenticate(environ)
    assert environ["HTTP_X_NAME"].encode("latin-1").decode("utf-8") == "张三"


@pytest.mark.parametrize("value", ["u1\r\nX-Admin: yes", "u1\nx", "u1\x00", "u1\x7f"])
def test_control_characters_never_reach_a_header(value, mint, verifier):
    environ = bearer(mint(sub=value), HTTP_X_UID="client")
    error = refused(verifier(claimPassBy="header:sub:x-uid"), environ)
    assert error.message == "token claim sub cannot be passed in a header"
    assert "HTTP_X_ADMIN" not in environ


def test_claims_pass_to_cookies(mint, verifier):
    environ = bearer(mint(sub='u 1;"x"'), HTTP_COOKIE="uid=spoof; keep=1;uid=again")
    verifier(claimPassBy="cookie:sub:uid").authenticate(environ)
    assert environ["HTTP_COOKIE"] == "keep=1; uid=u%201%3B%22x%22"


def test_claims_pass_to_the_query_string(mint, verifier):
    environ = bearer(
        mint(sub="a&b=c"),
        QUERY_STRING="uid=spoof&q=1&u%69d=spoof2&x=%20",
        REQUEST_URI="/p?uid=spoof&q=1&u%69d=spoof2&x=%20",
    )
    verifier(claimPassBy="query:sub:uid").authenticate(environ)
    assert environ["QUERY_STRING"] == "q=1&x=%20&uid=a%26b%3Dc"
    assert environ["REQUEST_URI"] == "/p?q=1&x=%20&uid=a%26b%3Dc"


def test_claims_pass_to_form_fields(mint, verifier):
    environ = form_post(b"uid=spoof&a=%41+b&u%69d=spoof2&b=", HTTP_AUTHORIZATION=f"Bearer {mint()}")
    verifier(claimPassBy="form:sub:uid").authenticate(environ)
    body = b"a=%41+b&b=&uid=u1"  # other fields byte for byte, in order
    assert environ["wsgi.input"].read() == body
    assert environ["CONTENT_LENGTH"] == str(len(body))


def test_form_pass_through_refuses_bodies_it_cannot_rewrite(mint, verifier):
    environ = form_post(b"uid=spoof", HTTP_AUTHORIZATION=f"Bearer {mint()}")
    environ["CONTENT_LENGTH"] = str(2 * 1024 * 1024)
    with pytest.raises(InvalidArgument):
        verifier(claimPassBy="form:sub:uid").authenticate(environ)


def test_form_pass_through_ignores_non_form_bodies(mint, verifier):
    body = b'{"uid": "client"}'
    environ = bearer(mint(), REQUEST_METHOD="POST", CONTENT_TYPE="application/json", body=body)
    verifier(claimPassBy="form:sub:uid").authenticate(environ)
    assert environ["wsgi.input"].read() == body


def test_spoofed_pass_through_values_removed_where_no_token_is_needed(verifier):
    check = verifier(
        whitelist=["/public/*"],
        claimPassBy="header:sub:x-uid,cookie:sub:uid,query:sub:uid,form:sub:uid",
    )
    environ = form_post(
        b"uid=spoof&a=1",
        PATH_INFO="/public/page",
        HTTP_X_UID="spoof",
        HTTP_COOKIE="uid=spoof",
        QUERY_STRING="uid=spoof&q=1",
    )
    check.authenticate(environ)
    assert "HTTP_X_UID" not in environ
    assert "HTTP_COOKIE" not in environ
    assert environ["QUERY_STRING"] == "q=1"
    assert environ["wsgi.input"].read() == b"a=1"
    assert CLAIMS_ENVIRON_KEY not in environ


# -- path rules -----------------------------------------------------------------------------------

PATHS = [
    ("/public/x", False, True),
    ("/public/", False, True),
    ("/public", True, False),  # "/a/*" does not match "/a"
    ("/publicity", True, False),
    ("/health", False, True),
    ("/health/x", True, False),
    ("/a*b", False, True),  # "*" not at the end is literal
    ("/aXb", True, False),
    ("/", True, False),
    ("/public/../admin", True, True),  # public only if its normalised form (/admin) is too
    ("/public//x", False, True),
    ("//public/x", True, True),
]


@pytest.mark.parametrize(("path", "whitelisted_needs", "blacklisted_needs"), PATHS)
def test_path_rules(path, whitelisted_needs, blacklisted_needs, verifier):
    rules = ["/public/*", "/health", "/a*b"]
    assert verifier(whitelist=rules).requires_token(path) is whitelisted_needs
    assert verifier(blacklist=rules).requires_token(path) is blacklisted_needs
    assert verifier().requires_token(path) is True


def test_blacklisted_dot_segments_still_need_a_token(verifier):
    assert verifier(blacklist=["/admin/*"]).requires_token("/x/../admin/users") is True


def test_whitelisted_path_needs_no_token(verifier):
    environ = make_environ(PATH_INFO="/public/x")
    verifier(whitelist=["/public/*"]).authenticate(environ)
    refused(verifier(whitelist=["/public/*"]), make_environ(PATH_INFO="/private"))


# -- authConfig forms the verifier takes -----------------------------------------------------------


def test_fc_json_string_form(keys, mint, clock):
    """fc-spec.md section 2's example, as FC's API takes it: JSON text, FC's key casing."""
    numbers = keys["rsa"].public_key().public_numbers()
    n = b64url(numbers.n.to_bytes(256, "big"))
    auth_config = (
        '{"jwks":{"keys":[{"kty":"RSA","alg":"RS256","use":"sig","e":"AQAB","n":"' + n + '"}]},'
        '"tokenLookup":"header:Authorization:Bearer ","claimPassBy":"header:uid:x-uid",'
        '"whitelist":["/public/*"]}'
    )
    config = parse_auth_config(auth_config)
    assert config.claim_pass_by == (ClaimPass("header", "uid", "x-uid"),)
    assert config.whitelist == ("/public/*",)
    check = JwtVerifier(config, clock=clock)
    environ = bearer(mint(kid=None, uid="42"))
    check.authenticate(environ)
    assert environ["HTTP_X_UID"] == "42"
    refused(check, bearer(mint("PS256", kid=None)))  # the JWK's alg pins RS256


def test_jwks_file(tmp_path, jwks, mint, clock):
    file = tmp_path / "jwks.json"
    file.write_text(json.dumps(jwks))
    config = parse_auth_config({"jwksFile": str(file)})
    assert config.jwks_file == str(file)
    JwtVerifier(config, clock=clock).authenticate(bearer(mint("EdDSA")))
