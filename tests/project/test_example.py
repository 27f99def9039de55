"""examples/project: the README's curl lines, in-process, through real trigger stacks."""

from __future__ import annotations

from pathlib import Path
from wsgiref.validate import validator

import webtest

from fc_wsgi.project import load_project
from tests.support import project_app

EXAMPLE = Path(__file__).resolve().parents[2] / "examples/project/s.yaml"


def served(tmp_path: Path) -> webtest.TestApp:
    return webtest.TestApp(validator(project_app(EXAMPLE, tmp_path, env={})))


def test_the_example_loads_two_functions_and_one_domain():
    project = load_project(EXAMPLE, env={"GREETING": "Hi"})
    assert [f.key for f in project.served] == ["hello", "notes"]
    assert project.function("hello").environment == {"GREETING": "Hi"}
    assert project.function("notes").environment == {
        "NOTES_TITLE": "fc-wsgi release notes",
        "NOTES_LIMIT": "3",
    }
    (domain,) = project.domains
    assert [route.path for route in domain.routes] == ["/hello", "/notes/*", "/v1/*", "/*"]


def test_the_readme_requests(tmp_path: Path):
    app = served(tmp_path)
    hello = app.get("/hello?x=1")
    assert hello.text == "Hello from /hello (fc.request_uri: /hello?x=1)\n"
    assert "Content-Disposition" not in hello.headers
    note = app.get("/notes/2").json
    assert note["notes"] == {"2": "Custom-domain routes and rewrites"}
    assert note["greeting"] is None  # hello's variables stay hello's
    assert note["title"] == "fc-wsgi release notes"
    rewritten = app.get("/v1/3").json
    assert rewritten["notes"] == {"3": "FC's default endpoint"}
    assert rewritten["request_uri"] == "/notes/3"
    listing = app.get("/notes/").json
    assert list(listing["notes"]) == ["1", "2", "3"]  # NOTES_LIMIT
    missing = app.post("/notes/2", status=404).json
    assert missing["Code"] == "DomainRouteNotFound"
    default = app.get("/2023-03-30/proxy/hello/any/path")
    assert default.headers["Content-Disposition"] == "attachment"
    assert default.text == "Hello from /any/path (fc.request_uri: /any/path)\n"
    assert app.delete("/2023-03-30/proxy/hello/", status=403).json["Code"] == "AccessDenied"
