"""FC's JWT authConfig parsed: defaults, FC's key casing, our extensions, every bad value."""

from __future__ import annotations

import pytest
from jwt.algorithms import ECAlgorithm
from support import HS_SECRET, b64url

from fc_wsgi.config import ConfigError
from fc_wsgi.jwt_config import TokenSource, parse_auth_config


def test_defaults(jwks):
    config = parse_auth_config({"jwks": jwks})
    assert config.token_lookup == (TokenSource("header", "Authorization", "Bearer"),)
    assert config.claim_pass_by == ()
    assert config.leeway_seconds == 0
    assert (config.jwks_cache_seconds, config.jwks_refresh_cooldown_seconds) == (300, 30)
    assert config.jwks_timeout_seconds == 5
    assert "EdDSA" in config.algorithms and "none" not in config.algorithms
    assert HS_SECRET.hex() not in repr(config) and b64url(HS_SECRET) not in repr(config)


def test_keys_are_case_insensitive(jwks):
    config = parse_auth_config(
        {"JWKS": jwks, "TokenLookup": "cookie:t", "ClaimPassBy": "query::", "WhiteList": ["/p"]}
    )
    assert config.token_lookup == (TokenSource("cookie", "t"),)
    assert config.claim_pass_by == ()  # Serverless Devs' "nothing"
    assert config.whitelist == ("/p",)


def test_extensions(jwks):
    config = parse_auth_config(
        {
            "jwks": {"keys": jwks["keys"][:2]},  # the RSA and P-256 keys
            "tokenLookup": ["header:X-Token", "query:t"],
            "claimPassBy": ["cookie:sub:uid", "form:sub:uid"],
            "algorithms": ["ES256", "RS256"],
            "leewaySeconds": 5,
            "issuer": "https://idp",
            "audience": ["a", "b"],
        }
    )
    assert [s.kind for s in config.token_lookup] == ["header", "query"]
    assert config.algorithms == ("ES256", "RS256")
    assert config.issuer == ("https://idp",) and config.audience == ("a", "b")


BAD_CONFIGS = [
    ({"tokenLookup": "bearer:Authorization"}, "authConfig.tokenLookup[0]: must start with"),
    ({"tokenLookup": "header:X,cookie:c:Bearer"}, "authConfig.tokenLookup[1]: only header"),
    ({"tokenLookup": "header:"}, "authConfig.tokenLookup[0]: needs a header name"),
    ({"tokenLookup": "header:Bad Name"}, "authConfig.tokenLookup[0]: needs a header name"),
    ({"tokenLookup": 7}, "authConfig.tokenLookup: must be a string or an array"),
    ({"ClaimPassBy": "header:uid"}, "authConfig.ClaimPassBy[0]: must be <position>"),
    ({"claimPassBy": "body:uid:x"}, "authConfig.claimPassBy[0]: position must be one of"),
    ({"claimPassBy": "header:uid:"}, "authConfig.claimPassBy[0]: needs both"),
    ({"claimPassBy": "header:a:x-a,header:b:X-A"}, "authConfig.claimPassBy[1]: header X-A is"),
    ({"claimPassBy": "header:a:content-length"}, "authConfig.claimPassBy[0]: cannot overwrite"),
    ({"whitelist": ["/a"], "blacklist": ["/b"]}, "authConfig.blacklist: cannot be combined"),
    ({"whitelist": "/a"}, "authConfig.whitelist: must be an array"),
    ({"blacklist": ["admin/*"]}, 'authConfig.blacklist[0]: must be a path starting with "/"'),
    ({"algorithms": ["RS256", "none"]}, "authConfig.algorithms[1]: unsigned tokens"),
    ({"algorithms": ["HS1"]}, "authConfig.algorithms[0]: must be one of"),
    ({"algorithms": []}, "authConfig.algorithms: must be a non-empty array"),
    ({"leewaySeconds": -1}, "authConfig.leewaySeconds: must be 0..86400 seconds, got -1"),
    ({"leewaySeconds": "5"}, "authConfig.leewaySeconds: must be a number"),
    ({"jwksTimeoutSeconds": 0}, "authConfig.jwksTimeoutSeconds: must be 0.1..120"),
    ({"issuer": ""}, "authConfig.issuer[0]: must be a non-empty string"),
    ({"audience": []}, "authConfig.audience: must be a string or a non-empty array"),
    ({"jwksUrl": "https://idp/jwks"}, "authConfig.jwksUrl: give only one"),
    ({"Jwks": {"keys": []}}, "authConfig.Jwks: given twice (also as jwks)"),
    ({"tokenlookupp": "x"}, "authConfig.tokenlookupp: unknown field"),
]


@pytest.mark.parametrize(("extra", "message"), BAD_CONFIGS)
def test_bad_values_name_their_field(extra, message, jwks):
    with pytest.raises(ConfigError) as caught:
        parse_auth_config({"jwks": jwks, **extra})
    assert str(caught.value).startswith(message)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({}, "authConfig: needs one of jwks, jwksUrl, jwksFile"),
        ("", "authConfig: needs one of jwks, jwksUrl, jwksFile"),
        ("{not json", "authConfig: is not valid JSON"),
        ([], "authConfig: must be an object, got array"),
        ({"jwksUrl": "ftp://idp/jwks"}, "authConfig.jwksUrl: must be an http:// or https:// URL"),
        ({"jwksUrl": "https:///jwks"}, "authConfig.jwksUrl: must be an http:// or https:// URL"),
        ({"jwks": "[]"}, "authConfig.jwks: must be a JWK Set object"),
        ({"jwks": {"keys": []}}, "authConfig.jwks.keys: no usable signature key"),
    ],
)
def test_bad_auth_configs(raw, message):
    with pytest.raises(ConfigError) as caught:
        parse_auth_config(raw)
    assert str(caught.value).startswith(message)


def test_jwks_problems_never_show_key_material():
    short = b64url(b"s3cr3t-but-short")
    with pytest.raises(ConfigError) as caught:
        parse_auth_config({"jwks": {"keys": [{"kty": "oct", "kid": "a", "k": short}]}})
    assert str(caught.value).startswith("authConfig.jwks.keys[0]: HMAC key of 16 bytes")
    assert short not in str(caught.value)


def test_two_kidless_keys_are_a_config_error(keys):
    jwk = ECAlgorithm.to_jwk(keys["ec256"].public_key(), as_dict=True)
    with pytest.raises(ConfigError, match=r"authConfig\.jwks\.keys\[1\]: a second key without kid"):
        parse_auth_config({"jwks": {"keys": [jwk, dict(jwk)]}})


def test_missing_jwks_file_names_the_field(tmp_path):
    with pytest.raises(ConfigError, match=r"^authConfig\.jwksFile: cannot read .*missing\.json"):
        parse_auth_config({"jwksFile": str(tmp_path / "missing.json")})
