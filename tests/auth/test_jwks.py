"""JWK Sets: parsing (inline, file), remote fetching with cache, cooldown and last good keys."""

from __future__ import annotations

import base64
import http.server
import json
import logging
import threading
import urllib.error
from typing import Any

import jwt as pyjwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm
from support import make_environ

from fc_wsgi.auth.jwks import (
    SUPPORTED_ALGORITHMS,
    KeysUnavailable,
    RemoteKeySet,
    load_jwks_file,
    parse_jwks,
)
from fc_wsgi.auth.jwt import CLAIMS_ENVIRON_KEY, JwtVerifier, parse_auth_config
from fc_wsgi.config import ConfigError
from fc_wsgi.errors import InvalidToken

NOW = 1_700_000_000.0
ALL = SUPPORTED_ALGORITHMS


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def rsa_jwk(key: rsa.RSAPrivateKey, **extra: Any) -> dict[str, Any]:
    return {**RSAAlgorithm.to_jwk(key.public_key(), as_dict=True), **extra}


def ec_jwk(key: ec.EllipticCurvePrivateKey, **extra: Any) -> dict[str, Any]:
    return {**ECAlgorithm.to_jwk(key.public_key(), as_dict=True), **extra}


def parse_one(jwk: dict[str, Any], algorithms: tuple[str, ...] = ALL) -> frozenset[str]:
    keys = parse_jwks({"keys": [jwk]}, "jwks", algorithms=algorithms)
    key = keys.get(jwk.get("kid"))
    assert key is not None
    return key.algorithms


# -- parsing -------------------------------------------------------------------------------------


def test_algorithms_come_from_the_key(rsa_key):
    assert parse_one(rsa_jwk(rsa_key, kid="a")) == {
        "RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
    }  # fmt: skip
    assert parse_one(rsa_jwk(rsa_key, kid="a", alg="PS384")) == {"PS384"}
    assert parse_one(rsa_jwk(rsa_key, kid="a"), ("RS256", "ES256")) == {"RS256"}


@pytest.mark.parametrize(
    ("curve", "alg"),
    [(ec.SECP256R1(), "ES256"), (ec.SECP384R1(), "ES384"), (ec.SECP521R1(), "ES512")],
)
def test_ec_curve_decides_the_algorithm(curve, alg):
    assert parse_one(ec_jwk(ec.generate_private_key(curve), kid="e")) == {alg}


@pytest.mark.parametrize("private", [ed25519.Ed25519PrivateKey, ed448.Ed448PrivateKey])
def test_okp_keys_verify_eddsa(private):
    jwk = {**OKPAlgorithm.to_jwk(private.generate().public_key(), as_dict=True), "kid": "o"}
    assert parse_one(jwk) == {"EdDSA"}


@pytest.mark.parametrize(
    ("length", "algorithms"),
    [(32, {"HS256"}), (48, {"HS256", "HS384"}), (64, {"HS256", "HS384", "HS512"})],
)
def test_hmac_key_length_limits_its_algorithms(length, algorithms):
    assert parse_one({"kty": "oct", "kid": "h", "k": b64url(bytes(length))}) == algorithms


def test_skips_encryption_keys(rsa_key):
    keys = parse_jwks(
        {
            "keys": [
                rsa_jwk(rsa_key, kid="enc", use="enc"),
                rsa_jwk(rsa_key, kid="wrap", key_ops=["wrapKey"]),
                rsa_jwk(rsa_key, kid="sig", use="sig", key_ops=["verify"]),
            ]
        },
        "jwks",
        algorithms=ALL,
    )
    assert keys.get("enc") is None and keys.get("wrap") is None
    assert keys.get("sig") is not None
    assert repr(keys) == "KeySet(kids=['sig'])"


def test_private_key_material_is_reduced_to_the_public_key(caplog):
    private = ec.generate_private_key(ec.SECP256R1())
    jwk = {**ECAlgorithm.to_jwk(private, as_dict=True), "kid": "p"}
    with caplog.at_level(logging.WARNING, logger="fc_wsgi.auth.jwks"):
        key = parse_jwks({"keys": [jwk]}, "jwks", algorithms=ALL).get("p")
    assert isinstance(key.key, ec.EllipticCurvePublicKey)
    assert "jwks.keys[0] holds private key material" in caplog.text
    assert jwk["d"] not in caplog.text


BAD_KEYS = [
    ({"kty": "RSA", "kid": "a", "e": "AQAB", "n": "!!!"}, "keys[0]: is not a valid RSA key"),
    ({"kty": "RSA", "e": "AQAB"}, "keys[0]: is not a valid RSA key"),
    ({"kty": "EC", "crv": "secp256k1", "x": "AA", "y": "AA"}, "keys[0].crv: must be one of"),
    ({"kty": "OKP", "crv": "X25519", "x": "AA"}, "keys[0].crv: must be one of Ed25519, Ed448"),
    ({"kty": "DSA"}, "keys[0].kty: must be one of RSA, EC, OKP, oct"),
    ({"kty": "oct", "alg": "RS256", "k": "AA"}, "keys[0].alg: 'RS256' does not fit a oct key"),
    ({"kty": "oct", "kid": 7, "k": "AA"}, "keys[0].kid: must be a non-empty string"),
    ({"kty": "oct", "k": b64url(b"x" * 16)}, "keys[0]: HMAC key of 16 bytes is below 32"),
    ({"kty": "oct", "alg": "HS512", "k": b64url(b"x" * 32)}, "keys[0]: HMAC key of 32 bytes"),
    ("not a JWK", "keys[0]: must be a JWK object"),
]


@pytest.mark.parametrize(("jwk", "message"), BAD_KEYS)
def test_bad_keys_name_their_path_and_hide_their_material(jwk, message):
    with pytest.raises(ConfigError) as caught:
        parse_jwks({"keys": [jwk]}, "authConfig.jwks", algorithms=ALL)
    assert str(caught.value).startswith(f"authConfig.jwks.{message}")
    if isinstance(jwk, dict) and "k" in jwk and len(jwk["k"]) > 4:
        assert jwk["k"] not in str(caught.value)


def test_weak_rsa_keys_are_refused():
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    with pytest.raises(ConfigError, match=r"keys\[0\]: RSA key of 1024 bits is below 2048"):
        parse_jwks({"keys": [rsa_jwk(weak)]}, "jwks", algorithms=ALL)


def test_key_unusable_under_the_allow_list(rsa_key):
    with pytest.raises(ConfigError, match=r"keys\[0\]: none of its algorithms .* is allowed"):
        parse_jwks({"keys": [rsa_jwk(rsa_key, alg="RS256")]}, "jwks", algorithms=("PS256",))


def test_duplicate_kids_and_kidless_keys(rsa_key):
    with pytest.raises(ConfigError, match=r"jwks\.keys\[1\]\.kid: duplicate kid 'a'"):
        parse_jwks({"keys": [rsa_jwk(rsa_key, kid="a")] * 2}, "jwks", algorithms=ALL)
    with pytest.raises(ConfigError, match=r"jwks\.keys\[1\]: a second key without kid"):
        parse_jwks({"keys": [rsa_jwk(rsa_key)] * 2}, "jwks", algorithms=ALL)
    keys = parse_jwks(
        {"keys": [rsa_jwk(rsa_key), rsa_jwk(rsa_key, kid="a")]}, "jwks", algorithms=ALL
    )
    assert keys.get(None) is not None and keys.get("a") is not None and len(keys) == 2


def test_lenient_parsing_skips_what_it_cannot_use(rsa_key, caplog):
    jwks = {
        "keys": [{"kty": "DSA", "kid": "x"}, rsa_jwk(rsa_key, kid="a")]
        + [rsa_jwk(rsa_key, kid="a")]
    }
    with caplog.at_level(logging.WARNING, logger="fc_wsgi.auth.jwks"):
        keys = parse_jwks(jwks, "jwksUrl", algorithms=ALL, strict=False)
    assert repr(keys) == "KeySet(kids=['a'])"
    assert "jwksUrl.keys[0].kty" in caplog.text and "jwksUrl.keys[2].kid" in caplog.text


def test_jwks_file(tmp_path, rsa_key):
    file = tmp_path / "keys.json"
    file.write_text(json.dumps({"keys": [rsa_jwk(rsa_key, kid="f")]}))
    assert load_jwks_file(str(file), "authConfig.jwksFile", algorithms=ALL).get("f") is not None
    file.write_text("{oops")
    with pytest.raises(ConfigError, match=r"^authConfig\.jwksFile: is not valid JSON"):
        load_jwks_file(str(file), "authConfig.jwksFile", algorithms=ALL)


# -- remote key sets -----------------------------------------------------------------------------


class Clock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class FakeIdp:
    """An injected fetch function: serves `document`, or raises `failure`, and counts calls."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self.failure: Exception | None = None
        self.calls: list[tuple[str, float]] = []

    def __call__(self, url: str, timeout: float) -> bytes:
        self.calls.append((url, timeout))
        if self.failure is not None:
            raise self.failure
        return json.dumps(self.document).encode()


@pytest.fixture(scope="module")
def ec_keys() -> dict[str, ec.EllipticCurvePrivateKey]:
    return {kid: ec.generate_private_key(ec.SECP256R1()) for kid in ("k1", "k2")}


def doc(ec_keys: dict[str, Any], *kids: str) -> dict[str, Any]:
    return {"keys": [ec_jwk(ec_keys[kid], kid=kid) for kid in kids]}


def remote(idp: FakeIdp, clock: Clock, **options: Any) -> RemoteKeySet:
    options = {"cache_seconds": 300, "cooldown_seconds": 30, "timeout_seconds": 2.5, **options}
    return RemoteKeySet("https://idp/jwks", algorithms=ALL, fetch=idp, clock=clock, **options)


def test_remote_keys_are_fetched_lazily_and_cached(ec_keys):
    idp, clock = FakeIdp(doc(ec_keys, "k1")), Clock()
    keys = remote(idp, clock)
    assert idp.calls == []
    assert keys.get("k1") is not None
    assert idp.calls == [("https://idp/jwks", 2.5)]
    clock.now += 299
    assert keys.get("k1") is not None
    assert len(idp.calls) == 1
    clock.now += 1  # the cache has aged out
    assert keys.get("k1") is not None
    assert len(idp.calls) == 2


def test_unknown_kid_refetches_once_per_cooldown(ec_keys):
    idp, clock = FakeIdp(doc(ec_keys, "k1")), Clock()
    keys = remote(idp, clock)
    keys.get("k1")
    clock.now += 30
    assert keys.get("nope") is None
    assert keys.get("random") is None
    assert len(idp.calls) == 2  # a storm of unknown kids costs one fetch
    idp.document = doc(ec_keys, "k1", "k2")  # the provider rotates in k2
    clock.now += 29
    assert keys.get("k2") is None
    clock.now += 1
    assert keys.get("k2") is not None
    assert len(idp.calls) == 3


def test_failed_refresh_keeps_the_last_good_keys(ec_keys, caplog):
    idp, clock = FakeIdp(doc(ec_keys, "k1")), Clock()
    keys = remote(idp, clock)
    keys.get("k1")
    generation = keys.current_generation()
    idp.failure = urllib.error.URLError("connection refused")
    clock.now += 301
    with caplog.at_level(logging.WARNING, logger="fc_wsgi.auth.jwks"):
        assert keys.get("k1") is not None
    assert keys.current_generation() == generation
    assert "JWKS refresh from https://idp/jwks failed" in caplog.text
    assert "keeping the 1 last good keys" in caplog.text
    assert (
        ec_keys["k1"].public_key().public_numbers().x.to_bytes(32, "big").hex() not in caplog.text
    )
    idp.failure = None
    idp.document = {"keys": "garbage"}  # a bad document is a failure too
    clock.now += 30
    assert keys.get("k1") is not None
    assert len(idp.calls) == 3


def test_first_fetch_failure_is_a_gateway_error_until_the_cooldown_ends(ec_keys):
    idp, clock = FakeIdp(doc(ec_keys, "k1")), Clock()
    idp.failure = TimeoutError("timed out")
    keys = remote(idp, clock)
    with pytest.raises(KeysUnavailable) as caught:
        keys.get("k1")
    assert caught.value.status.startswith("500")
    with pytest.raises(KeysUnavailable):
        keys.get("k1")
    assert len(idp.calls) == 1
    idp.failure = None
    clock.now += 30
    assert keys.get("k1") is not None


def test_generation_changes_only_with_the_document(ec_keys):
    idp, clock = FakeIdp(doc(ec_keys, "k1")), Clock()
    keys = remote(idp, clock, cache_seconds=0, cooldown_seconds=0)
    keys.get("k1")
    first = keys.current_generation()
    assert keys.refresh() is True
    assert keys.current_generation() == first
    idp.document = doc(ec_keys, "k2")
    assert keys.refresh() is True
    assert keys.current_generation() == first + 1
    assert keys.get("k1") is None


def test_logged_urls_hide_credentials_and_query(ec_keys, caplog):
    idp = FakeIdp(doc(ec_keys, "k1"))
    idp.failure = OSError("down")
    keys = RemoteKeySet(
        "https://user:pw@idp:8443/jwks?key=s3cret", algorithms=ALL, fetch=idp, clock=Clock()
    )
    with caplog.at_level(logging.ERROR, logger="fc_wsgi.auth.jwks"), pytest.raises(KeysUnavailable):
        keys.get("k1")
    assert "JWKS fetch from https://idp:8443/jwks failed" in caplog.text
    assert "pw" not in caplog.text and "s3cret" not in caplog.text


# -- the verifier over a remote key set ----------------------------------------------------------


def mint(ec_keys: dict[str, Any], kid: str, **claims: Any) -> str:
    claims = {"sub": "u1", "exp": NOW + 3600, **claims}
    return pyjwt.encode(claims, ec_keys[kid], algorithm="ES256", headers={"kid": kid})


def bearer(token: str) -> dict[str, Any]:
    return make_environ(HTTP_AUTHORIZATION=f"Bearer {token}")


def test_verifier_follows_key_rotation(ec_keys):
    idp, clock = FakeIdp(doc(ec_keys, "k1")), Clock()
    config = parse_auth_config(
        {"jwksUrl": "https://idp/jwks", "jwksCacheSeconds": 60, "jwksRefreshCooldownSeconds": 10}
    )
    verifier = JwtVerifier(config, fetch_jwks=idp, clock=clock)
    old = mint(ec_keys, "k1")
    verifier.authenticate(bearer(old))
    idp.document = doc(ec_keys, "k2")  # k1 retired, k2 in
    clock.now += 10
    verifier.authenticate(bearer(mint(ec_keys, "k2")))  # unknown kid: refetched
    assert len(idp.calls) == 2
    with pytest.raises(InvalidToken) as caught:  # cached, but the keys changed since
        verifier.authenticate(bearer(old))
    assert caught.value.message == "token key is unknown"


def test_hot_cached_token_still_sees_a_retired_key(ec_keys):
    idp, clock = FakeIdp(doc(ec_keys, "k1")), Clock()
    config = parse_auth_config({"jwksUrl": "https://idp/jwks", "jwksCacheSeconds": 60})
    verifier = JwtVerifier(config, fetch_jwks=idp, clock=clock)
    token = mint(ec_keys, "k1")
    verifier.authenticate(bearer(token))
    idp.document = doc(ec_keys, "k2")
    clock.now += 60  # the JWKS cache ages out while the token is only ever served from cache
    with pytest.raises(InvalidToken):
        verifier.authenticate(bearer(token))


class JwksHandler(http.server.BaseHTTPRequestHandler):
    document = b""

    def do_GET(self) -> None:  # http.server names handlers do_<METHOD>
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.document)))
        self.end_headers()
        self.wfile.write(self.document)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_real_jwks_server_stopped_mid_test(ec_keys, caplog):
    handler = type("Handler", (JwksHandler,), {"document": json.dumps(doc(ec_keys, "k1")).encode()})
    server = http.server.HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    stopped = False
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/.well-known/jwks.json"
        clock = Clock()
        config = parse_auth_config({"jwksUrl": url, "jwksTimeoutSeconds": 2})
        verifier = JwtVerifier(config, clock=clock)  # the real urllib fetch
        verifier.authenticate(bearer(mint(ec_keys, "k1")))
        server.shutdown()
        server.server_close()
        thread.join(5)
        stopped = True
        clock.now += 301  # keys stale: the next miss tries the (now closed) server
        with caplog.at_level(logging.WARNING, logger="fc_wsgi.auth.jwks"):
            environ = bearer(mint(ec_keys, "k1", sub="u2"))
            verifier.authenticate(environ)
        assert environ[CLAIMS_ENVIRON_KEY]["sub"] == "u2"
        assert f"JWKS refresh from {url} failed" in caplog.text
    finally:
        if not stopped:
            server.shutdown()
            server.server_close()
            thread.join(5)
