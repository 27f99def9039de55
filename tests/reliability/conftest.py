"""Fixtures of the reliability suite: keys and tokens, and the path to the e2e helpers.

Real servers come from ``tests/e2e/servers.py`` (own session, free loopback port, journal in
tmp via ``with_journal``); raw HTTP goes through :mod:`rawhttp`, so garbage can be sent;
``relsupport`` holds the FC answer checks and trigger configs.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))


@pytest.fixture(scope="session")
def rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="session")
def public_jwk(rsa_key) -> dict:
    jwk = json.loads(RSAAlgorithm.to_jwk(rsa_key.public_key()))
    jwk.update(kid="k1", alg="RS256", use="sig")
    return jwk


@pytest.fixture(scope="session")
def mint(rsa_key):
    """``mint(claims, **header)``: an RS256 token from the trigger's key, valid for an hour."""

    def make(claims: dict | None = None, *, key=None, algorithm="RS256", **header) -> str:
        payload = {"exp": int(time.time()) + 3600, **(claims or {})}
        header.setdefault("kid", "k1")
        return jwt.encode(payload, key or rsa_key, algorithm, headers=header)

    return make
