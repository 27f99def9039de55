"""The project's two ``index.handler`` functions in one process, loaded by the runtime itself."""

from __future__ import annotations

import json
from pathlib import Path
from wsgiref.validate import validator

from support import Recorder, make_environ

from fc_wsgi import make_trigger_app
from fc_wsgi.project import Router, load_project

PROJECT = Path(__file__).resolve().parents[2] / "examples" / "project" / "s.yaml"


def test_each_function_gets_its_own_module_environment_and_uri(tmp_path):
    project = load_project(PROJECT, env={"GREETING": "Hi"})

    def build(endpoint):  # the loader's mapping as it is, function section included
        mapping = {**endpoint.trigger, "async": {"journal": str(tmp_path / "a.sqlite3")}}
        return make_trigger_app(None, mapping)

    app = validator(Router(project, build))

    def get(path: str) -> bytes:
        recorder = Recorder()
        body = recorder.run(app, make_environ(PATH_INFO=path, HTTP_HOST="127.0.0.1:9000"))
        assert recorder.status == "200 OK", body
        assert recorder.header("X-Fc-Invocation-Duration") is not None
        return body

    assert get("/hello") == b"Hi from /hello (fc.request_uri: /hello)\n"
    notes = json.loads(get("/v1/3"))  # a rewrite: the router's fc.request_uri is kept
    assert notes["request_uri"] == "/notes/3" and notes["greeting"] is None  # not hello's
    assert notes["title"] == "fc-wsgi release notes"
