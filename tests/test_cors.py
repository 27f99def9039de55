"""CorsDefaults: FC's defaults, strict mode, off, preflight, Vary."""

from __future__ import annotations

from wsgiref.validate import validator

import pytest
from support import Recorder, hello_app, make_environ, validated

from fc_wsgi import FC_EXPOSE_HEADERS, CorsDefaults

ORIGIN = "http://page.example"
PREFLIGHT = {"Origin": ORIGIN, "Access-Control-Request-Method": "PUT"}


def test_fc_mode_echoes_origin_with_credentials_and_fc_exposed_headers():
    response = validated(CorsDefaults, hello_app).get("/", headers={"Origin": ORIGIN})
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert response.headers["Access-Control-Allow-Credentials"] == "true"
    assert response.headers["Access-Control-Expose-Headers"] == ",".join(FC_EXPOSE_HEADERS)
    assert response.headers["Vary"] == "Origin"
    assert response.body == b"hello"


def test_fc_mode_without_origin_echoes_nothing_but_varies_on_origin():
    response = validated(CorsDefaults, hello_app).get("/")
    assert "Access-Control-Allow-Origin" not in response.headers
    assert response.headers["Vary"] == "Origin"  # a shared cache must not reuse it for CORS
    assert response.headers["Access-Control-Allow-Credentials"] == "true"


def test_values_the_app_sets_win_over_the_defaults():
    def app(environ, start_response):
        start_response(
            "200 OK",
            [
                ("Content-Type", "text/plain"),
                ("Access-Control-Allow-Origin", "https://mine.example"),
                ("Vary", "Accept-Encoding"),
            ],
        )
        return [b"x"]

    response = validated(CorsDefaults, app).get("/", headers={"Origin": ORIGIN})
    assert response.headers.getall("Access-Control-Allow-Origin") == ["https://mine.example"]
    assert response.headers["Vary"] == "Accept-Encoding, Origin"


def test_fc_mode_answers_preflight_like_fcs_emulator_when_options_is_not_allowed():
    called = []

    def app(environ, start_response):
        called.append(True)
        return hello_app(environ, start_response)

    cors = validated(CorsDefaults, app, methods=["GET", "PUT"])
    response = cors.options("/", headers={**PREFLIGHT, "Access-Control-Request-Headers": "x-a"})
    assert response.status_int == 200 and not called
    assert response.headers["Access-Control-Allow-Methods"] == "PUT"
    assert response.headers["Access-Control-Allow-Headers"] == "x-a"
    assert response.headers["Access-Control-Max-Age"] == "3600"
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert response.headers["X-Fc-Request-Id"]


def test_fc_mode_passes_preflight_to_the_app_when_options_is_allowed():
    cors = validated(CorsDefaults, hello_app, methods=["GET", "OPTIONS"])
    response = cors.options("/", headers=PREFLIGHT)
    assert response.body == b"hello"
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN


def test_error_answers_carry_cors_headers_too():
    def failing(environ, start_response):
        start_response("403 Forbidden", [("Content-Type", "application/json")])
        return [b"{}"]

    response = validated(CorsDefaults, failing).get("/", headers={"Origin": ORIGIN}, status=403)
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN


STRICT = {
    "mode": "strict",
    "allow_origins": [ORIGIN],
    "allow_headers": ["x-custom"],
    "methods": ["GET", "PUT"],
    "max_age": 600,
}


def test_strict_mode_allows_listed_origins():
    response = validated(CorsDefaults, hello_app, **STRICT).get("/", headers={"Origin": ORIGIN})
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert response.headers["Vary"] == "Origin"


def test_strict_mode_gives_other_origins_no_cors_headers_but_vary():
    response = validated(CorsDefaults, hello_app, **STRICT).get(
        "/", headers={"Origin": "http://evil.example"}
    )
    assert "Access-Control-Allow-Origin" not in response.headers
    assert "Access-Control-Allow-Credentials" not in response.headers
    assert response.headers["Vary"] == "Origin"


def test_strict_preflight_is_answered_with_the_allow_lists():
    response = validated(CorsDefaults, hello_app, **STRICT).options(
        "/", headers={**PREFLIGHT, "Access-Control-Request-Headers": "X-Custom, content-type"}
    )
    assert response.headers["Access-Control-Allow-Methods"] == "GET,PUT"
    assert response.headers["Access-Control-Allow-Headers"] == "X-Custom, content-type"
    assert response.headers["Access-Control-Max-Age"] == "600"


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param(
            {"Origin": "http://evil.example", "Access-Control-Request-Method": "GET"}, id="origin"
        ),
        pytest.param({"Origin": ORIGIN, "Access-Control-Request-Method": "DELETE"}, id="method"),
        pytest.param({**PREFLIGHT, "Access-Control-Request-Headers": "x-other"}, id="header"),
    ],
)
def test_strict_preflight_refuses_what_is_not_listed(headers):
    response = validated(CorsDefaults, hello_app, **STRICT).options(
        "/", headers=headers, status=403
    )
    assert response.json["Code"] == "AccessDenied"
    assert "Access-Control-Allow-Origin" not in response.headers


def test_strict_star_headers_echo_the_request():
    cors = validated(CorsDefaults, hello_app, **{**STRICT, "allow_headers": ["*"]})
    response = cors.options("/", headers={**PREFLIGHT, "Access-Control-Request-Headers": "x-q"})
    assert response.headers["Access-Control-Allow-Headers"] == "x-q"


def test_strict_star_origin_with_credentials_echoes_the_origin():
    cors = validated(CorsDefaults, hello_app, mode="strict", allow_origins=["*"])
    response = cors.get("/", headers={"Origin": "http://any.example"})
    assert response.headers["Access-Control-Allow-Origin"] == "http://any.example"


def test_off_mode_adds_nothing(recorder: Recorder):
    app = validator(CorsDefaults(validator(hello_app), mode="off"))
    recorder.run(app, make_environ(HTTP_ORIGIN=ORIGIN))
    assert not [n for n, _ in recorder.headers if n.lower().startswith("access-control")]


def test_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="mode"):
        CorsDefaults(hello_app, mode="lax")
