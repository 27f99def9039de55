"""Helpers of the reliability suite, importable by name (conftest.py holds the fixtures)."""

from __future__ import annotations

import json

#: An access key secret, an HMAC key: tests grep logs and answers for them.
ACCESS_KEY_ID = "reliability-ak"
ACCESS_KEY_SECRET = "s3cr3t-reliability-access-key-value"


def jwt_trigger(public_jwk: dict, **extra) -> dict:
    """A JWT trigger passing claims on as a header and a cookie; ``/public/*`` needs no token."""
    return {
        "authType": "jwt",
        "methods": ["GET", "POST", "PUT", "HEAD"],
        "authConfig": {
            "jwks": {"keys": [public_jwk]},
            "tokenLookup": "header:Authorization:Bearer",
            "claimPassBy": "header:uid:x-uid,cookie:role:role",
            "whitelist": ["/public/*"],
        },
        "limits": {"maxBodyBytes": 100_000},
        **extra,
    }


def assert_fc_error(status: int, headers: dict, body: bytes, code: str | None = None) -> dict:
    """A gateway error answer: JSON ``Code``/``Message``/``RequestId``, matching header id."""
    assert status >= 400, (status, body)
    assert headers.get("content-type") == "application/json", headers
    payload = json.loads(body)
    assert set(payload) == {"Code", "Message", "RequestId"}, payload
    assert payload["RequestId"] == headers.get("x-fc-request-id"), (payload, headers)
    assert headers.get("x-fc-error-type") in ("FcCommonError", "UnhandledInvocationError")
    if code is not None:
        assert payload["Code"] == code, payload
    return payload
