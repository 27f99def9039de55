"""examples/project over a real gunicorn: routes, rewrites, Hosts and FC's answers on the wire."""

from __future__ import annotations

import http.client
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from support import http_request, wait_for

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


def request(server, method: str, path: str, host: str = "www.example.com"):
    return http_request(server.port, method, path, headers={"Host": host})


@pytest.fixture
def example(start_server, tmp_path):
    """`fc-wsgi serve s.yaml` on a copy of the example (its journals stay in tmp_path)."""
    shutil.copytree(ROOT / "examples/project", tmp_path / "project")
    argv = [
        sys.executable, "-m", "fc_wsgi", "serve", str(tmp_path / "project/s.yaml"),
        "--bind", "127.0.0.1:{port}", "--workers", "2",
    ]  # fmt: skip
    return start_server(argv, env={"GREETING": "Hello over gunicorn"})


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


def test_async_runs_on_the_function_that_took_it(example, tmp_path):
    """Each function keeps its own journal beside the s.yaml; `fc-wsgi tasks` reads one."""
    headers = {"Host": "www.example.com", "X-Fc-Invocation-Type": "Async"}
    status, answer_headers, _ = http_request(example.port, "POST", "/v1/3", b"{}", headers)
    assert status == 202
    request_id = answer_headers["X-Fc-Request-Id"]
    project = tmp_path / "project"

    def tasks(function: str) -> list[dict]:
        argv = [sys.executable, "-m", "fc_wsgi", "tasks", "list", "--json",
                "--config", str(project / "s.yaml"), "--function", function]  # fmt: skip
        out = subprocess.run(argv, capture_output=True, text=True, check=True, cwd=ROOT)
        return [json.loads(line) for line in out.stdout.splitlines()]

    done = wait_for(
        lambda: [t for t in tasks("notes") if t["state"] == "Succeeded"], 20, "notes' task ran"
    )
    assert [t["request_id"] for t in done] == [request_id]
    assert (project / ".fc-wsgi/notes.sqlite3").exists()
    assert tasks("hello") == []  # the other function's journal holds nothing of it


def test_dev_reloads_when_a_code_file_or_the_s_yaml_changes(start_server, tmp_path):
    """`fc-wsgi serve s.yaml --dev`: werkzeug's reloader watches s.yaml and the code folders."""
    project = tmp_path / "project"
    shutil.copytree(ROOT / "examples/project", project)
    argv = [sys.executable, "-m", "fc_wsgi", "serve", str(project / "s.yaml"), "--dev",
            "--bind", "127.0.0.1:{port}"]  # fmt: skip
    server = start_server(argv)
    assert request(server, "GET", "/hello")[2].startswith(b"Hello from /hello")
    code = project / "hello/index.py"
    code.write_text(code.read_text().replace("{greeting} from", "{greeting}, reloaded, from"))

    def greets_with(prefix: bytes):
        def check():
            try:
                return request(server, "GET", "/hello")[2].startswith(prefix)
            except (OSError, http.client.HTTPException):  # the dev server is restarting
                return False

        return check

    wait_for(greets_with(b"Hello, reloaded, from /hello"), 20, "the code change served")
    spec = project / "s.yaml"
    spec.write_text(spec.read_text().replace("${env('GREETING', 'Hello')}", "Howdy"))
    wait_for(greets_with(b"Howdy, reloaded, from /hello"), 20, "the s.yaml change served")
