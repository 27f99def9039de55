"""examples/project over a real gunicorn: routes, rewrites, Hosts and FC's answers on the wire."""

from __future__ import annotations

import http.client
import json
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


def request(server, method: str, path: str, host: str = "www.example.com"):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        conn.request(method, path, headers={"Host": host})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


@pytest.fixture
def example(start_server, tmp_path):
    argv = [
        sys.executable, "-m", "gunicorn", "--bind", "127.0.0.1:{port}", "--workers", "2",
        "--no-control-socket", "tests.e2e.project_app:app",
    ]  # fmt: skip
    env = {
        "FC_WSGI_PROJECT": str(ROOT / "examples/project/s.yaml"),
        "FC_WSGI_JOURNALS": str(tmp_path),
        "GREETING": "Hello over gunicorn",
    }
    return start_server(argv, env=env)


def test_example_project_over_gunicorn(example):
    status, headers, body = request(example, "GET", "/hello?x=%20y")
    assert status == 200, body
    assert body == b"Hello over gunicorn from /hello (fc.request_uri: /hello?x=%20y)\n"
    assert "Content-Disposition" not in headers and headers["X-Fc-Request-Id"]
    status, _, body = request(example, "GET", "/v1/2", host="anything.test:8080")
    assert status == 200 and json.loads(body)["request_uri"] == "/notes/2"
    status, headers, body = request(example, "POST", "/notes/2")
    assert (status, json.loads(body)["Code"]) == (404, "DomainRouteNotFound")
    assert headers["X-Fc-Error-Type"] == "FcCommonError"
    status, headers, body = request(example, "GET", "/2023-03-30/proxy/notes/notes/1")
    assert status == 200 and headers["Content-Disposition"] == "attachment"
    assert json.loads(body)["notes"] == {"1": "Serve a Serverless Devs project"}
    status, _, body = request(example, "GET", "/2023-03-30/proxy/nope/")
    assert (status, json.loads(body)["Code"]) == (404, "FunctionNotFound")
