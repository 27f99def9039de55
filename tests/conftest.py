"""Shared fixtures; the helpers themselves live in support.py (importable by name)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm
from support import HS_SECRET, Recorder, b64url


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture(scope="session")
def keys() -> dict[str, Any]:
    """Real keys of every family FC's JWT triggers verify, generated once per run."""
    return {
        "rsa": rsa.generate_private_key(public_exponent=65537, key_size=2048),
        "ec256": ec.generate_private_key(ec.SECP256R1()),
        "ec384": ec.generate_private_key(ec.SECP384R1()),
        "ec521": ec.generate_private_key(ec.SECP521R1()),
        "ed": ed25519.Ed25519PrivateKey.generate(),
        "hs": HS_SECRET,
        "other_ec256": ec.generate_private_key(ec.SECP256R1()),
    }


@pytest.fixture(scope="session")
def jwks(keys: dict[str, Any]) -> dict[str, Any]:
    def public(kid: str, to_jwk: Callable[..., dict[str, Any]]) -> dict[str, Any]:
        return {**to_jwk(keys[kid].public_key(), as_dict=True), "kid": kid}

    return {
        "keys": [
            public("rsa", RSAAlgorithm.to_jwk),
            public("ec256", ECAlgorithm.to_jwk),
            public("ec384", ECAlgorithm.to_jwk),
            public("ec521", ECAlgorithm.to_jwk),
            public("ed", OKPAlgorithm.to_jwk),
            {"kty": "oct", "kid": "hs", "k": b64url(HS_SECRET)},
        ]
    }
