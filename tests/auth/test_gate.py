"""AuthGate: anonymous triggers and FC's disabled public URL."""

from __future__ import annotations

from support import hello_app, validated

from fc_wsgi import AuthGate


def test_anonymous_lets_every_request_through():
    assert validated(AuthGate, hello_app).get("/").body == b"hello"


def test_disabled_internet_url_answers_fcs_403():
    response = validated(AuthGate, hello_app, disable_url_internet=True).get("/", status=403)
    assert response.json["Code"] == "AccessDenied"
    assert response.json["Message"] == "access denied due to function internet URL is disable"
    assert response.headers["X-Fc-Error-Type"] == "FcCommonError"
