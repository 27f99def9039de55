"""Remote JWK Sets: lazy fetch, cache, refresh cooldown, last good keys, the verifier over them."""

from __future__ import annotations

import http.server
import json
import logging
import threading
import urllib.error
from typing import Any

import jwt as pyjwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm
from support import FakeClock, make_environ

from fc_wsgi.auth.jwks import KeysUnavailable, RemoteKeySet
from fc_wsgi.auth.jwt import CLAIMS_ENVIRON_KEY, JwtVerifier
from fc_wsgi.errors import InvalidToken
from fc_wsgi.jwkset import SUPPORTED_ALGORITHMS
from fc_wsgi.jwt_config import parse_auth_config

NOW = 1_700_000_000.0
ALL = SUPPORTED_ALGORITHMS


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


def ec_jwk(key: ec.EllipticCurvePrivateKey, **extra: Any) -> dict[str, Any]:
    return {**ECAlgorithm.to_jwk(key.public_key(), as_dict=True), **extra}


def doc(ec_keys: dict[str, Any], *kids: str) -> dict[str, Any]:
    return {"keys": [ec_jwk(ec_keys[kid], kid=kid) for kid in kids]}


def remote(idp: FakeIdp, clock: FakeClock, **options: Any) -> RemoteKeySet:
    options = {"cache_seconds": 300, "cooldown_seconds": 30, "timeout_seconds": 2.5, **options}
    return RemoteKeySet("https://idp/jwks", algorithms=ALL, fetch=idp, clock=clock, **options)


def test_remote_keys_are_fetched_lazily_and_cached(ec_keys):
    idp, clock = FakeIdp(doc(ec_keys, "k1")), FakeClock(NOW)
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
    idp, clock = FakeIdp(doc(ec_keys, "k1")), FakeClock(NOW)
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
    idp, clock = FakeIdp(doc(ec_keys, "k1")), FakeClock(NOW)
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
    idp, clock = FakeIdp(doc(ec_keys, "k1")), FakeClock(NOW)
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
    idp, clock = FakeIdp(doc(ec_keys, "k1")), FakeClock(NOW)
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
        "https://user:pw@idp:8443/jwks?key=s3cret", algorithms=ALL, fetch=idp, clock=FakeClock(NOW)
    )
    with caplog.at_level(logging.ERROR, logger="fc_wsgi.auth.jwks"), pytest.raises(KeysUnavailable):
        keys.get("k1")
    assert "JWKS fetch from https://user:***@idp:8443/jwks failed" in caplog.text
    assert "pw" not in caplog.text and "s3cret" not in caplog.text


# -- the verifier over a remote key set ----------------------------------------------------------


def mint(ec_keys: dict[str, Any], kid: str, **claims: Any) -> str:
    claims = {"sub": "u1", "exp": NOW + 3600, **claims}
    return pyjwt.encode(claims, ec_keys[kid], algorithm="ES256", headers={"kid": kid})


def bearer(token: str) -> dict[str, Any]:
    return make_environ(HTTP_AUTHORIZATION=f"Bearer {token}")


def test_verifier_follows_key_rotation(ec_keys):
    idp, clock = FakeIdp(doc(ec_keys, "k1")), FakeClock(NOW)
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
    idp, clock = FakeIdp(doc(ec_keys, "k1")), FakeClock(NOW)
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
        clock = FakeClock(NOW)
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
