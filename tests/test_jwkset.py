"""JWK Sets parsed into verification keys: algorithms from the key, bad keys named, files."""

from __future__ import annotations

import base64
import json
import logging
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from fc_wsgi.config import ConfigError
from fc_wsgi.jwkset import SUPPORTED_ALGORITHMS, load_jwks_file, parse_jwks

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
    with caplog.at_level(logging.WARNING, logger="fc_wsgi.jwkset"):
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
    with caplog.at_level(logging.WARNING, logger="fc_wsgi.jwkset"):
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
