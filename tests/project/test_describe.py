"""describe_project: the lines ``fc-wsgi check s.yaml`` prints."""

from __future__ import annotations

from pathlib import Path

from fc_wsgi.project import describe_project, load_project

FIXTURES = Path(__file__).parent / "fixtures"


def test_shop_description():
    project = load_project(FIXTURES / "shop/s.yaml", env={"ORDERS_QUEUE": "secret-queue-name"})
    lines = dict(describe_project(project))
    assert lines["project"] == "shop (edition 3.0.0, profile fc3)"
    users = FIXTURES.resolve() / "shop/users"
    assert lines["function users"] == (
        f"index.handler in {users}, default endpoint /2023-03-30/proxy/users/"
    )
    assert lines["function orders environment"] == "SERVICE_ROLE, ORDERS_QUEUE, RETRIES"
    assert "secret-queue-name" not in "".join(lines.values())
    assert lines["function cleanup"] == "not served (no HTTP trigger; not served)"
    assert lines["domain shop.example.com"] == "HTTP, 8 routes"
    assert lines["domain shop.example.com route /orders/*"] == "orders (POST)"
    assert lines["domain shop.example.com route /api/*"] == "users (all methods, rewritten)"
    assert lines["domain admin.example.com authConfig"] == "jwt"


def test_fc2_default_endpoint_names_the_service():
    template = FIXTURES / "start-fc/http-function/fc-http-python3/src/s.yaml"
    lines = dict(describe_project(load_project(template)))
    function = lines["function hello-world-service/http-function"]
    assert function.endswith(
        "default endpoint /2016-08-15/proxy/hello-world-service/http-function/"
    )
