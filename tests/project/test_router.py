"""Router: FC's default endpoint and custom-domain routing, PEP 3333 checked on both sides."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any
from wsgiref.validate import validator

import jwt
import pytest
import webtest

from fc_wsgi import make_trigger_app
from fc_wsgi.project import Endpoint, Router, load_project
from tests.support import ClosingBody, Recorder, make_environ

FIXTURES = Path(__file__).parent / "fixtures"
SHOP = FIXTURES / "shop/s.yaml"
FC2_TEMPLATE = FIXTURES / "start-fc/http-function/fc-http-python3/src/s.yaml"
SHOP_HOST = {"HTTP_HOST": "shop.example.com"}
ADMIN_SECRET = base64.urlsafe_b64decode("c2hvcC10ZXN0LXNlY3JldC1ub3QtZm9yLXVzZS0zMmI=")


def echo(endpoint: Endpoint):
    """A function that answers with what the router handed it."""

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        body = json.dumps(
            {
                "function": endpoint.function.key,
                "default_domain": endpoint.default_domain,
                "auth_domain": endpoint.domain.name if endpoint.domain else None,
                "script_name": environ["SCRIPT_NAME"],
                "path": environ["PATH_INFO"],
                "query": environ.get("QUERY_STRING", ""),
                "request_uri": environ.get("fc.request_uri"),
                "user": environ.get("HTTP_X_USER"),
            }
        ).encode()
        start_response("200 OK", [("Content-Type", "application/json")])
        return [body]

    return app


class Built:
    """``build`` for the router: a validated echo app per endpoint, each one recorded."""

    def __init__(self) -> None:
        self.endpoints: list[Endpoint] = []

    def __call__(self, endpoint: Endpoint):
        self.endpoints.append(endpoint)
        return validator(echo(endpoint))


def served(path: Path = SHOP) -> tuple[webtest.TestApp, Built]:
    built = Built()
    return webtest.TestApp(validator(Router(load_project(path, env={}), built))), built


@pytest.mark.parametrize(
    ("method", "url", "function", "path", "query", "request_uri"),
    [
        pytest.param("GET", "/users", "users", "/users", "", "/users", id="exact"),
        pytest.param("GET", "/users/", "users", "/users/", "", "/users/", id="exact is exact: /x/"),
        pytest.param("GET", "/users/42?a=1", "users", "/users/42", "a=1", "/users/42?a=1",
                     id="wildcard"),
        pytest.param("GET", "/users/admin/x", "orders", "/users/admin/x", "", "/users/admin/x",
                     id="longest prefix wins"),
        pytest.param("GET", "/users/admin", "users", "/users/admin", "", "/users/admin",
                     id="/p/* does not match /p"),
        pytest.param("POST", "/orders/1", "orders", "/orders/1", "", "/orders/1",
                     id="route methods match"),
        pytest.param("GET", "/orders/1", "static", "/orders/1", "", "/orders/1",
                     id="route methods skip to the next"),
        pytest.param("GET", "/Users", "static", "/Users", "", "/Users", id="case-sensitive"),
        pytest.param("GET", "/", "static", "/", "", "/", id="/* takes the rest"),
        pytest.param("HEAD", "/x", "static", "/x", "", "/x", id="HEAD"),
        pytest.param("GET", "/api/users/7?x=1", "users", "/v2/users/7", "x=1", "/v2/users/7?x=1",
                     id="rewrite: wildcard with ^ and $1"),
        pytest.param("GET", "/old?keep=1", "static", "/new", "from=old", "/new?from=old",
                     id="rewrite: equal, query from the replacement"),
        pytest.param("GET", "/blog/index", "static", "/posts", "", "/posts",
                     id="rewrite: equal before regex"),
        pytest.param("GET", "/blog/2024/hello", "static", "/posts/hello", "year=2024",
                     "/posts/hello?year=2024", id="rewrite: regex groups"),
        pytest.param("GET", "/blog/misc?p=2", "static", "/blog/misc", "p=2", "/blog/misc?p=2",
                     id="rewrite: no rule matches"),
        pytest.param("GET", "/caf%C3%A9/x", "static", "/caf\u00c3\u00a9/x", "", "/caf%C3%A9/x",
                     id="encoded path"),
    ],
)  # fmt: skip
def test_custom_domain_routes(method, url, function, path, query, request_uri):
    app, _ = served()
    answer = getattr(app, method.lower())(url, extra_environ=SHOP_HOST)
    assert answer.status_int == 200
    if method == "HEAD":
        return
    seen = answer.json
    assert (seen["function"], seen["path"], seen["query"]) == (function, path, query)
    assert seen["request_uri"] == request_uri
    assert (seen["script_name"], seen["default_domain"]) == ("", False)
    assert "Content-Disposition" not in answer.headers


def test_no_route_is_fcs_domain_route_not_found():
    app, _ = served()
    answer = app.delete("/orders/1", extra_environ=SHOP_HOST, status=404)
    assert answer.headers["X-Fc-Error-Type"] == "FcCommonError"
    body = answer.json
    assert body["Code"] == "DomainRouteNotFound"
    assert (
        body["Message"] == "no route of custom domain 'shop.example.com' matches path '/orders/1'"
    )
    assert body["RequestId"] == answer.headers["X-Fc-Request-Id"]


@pytest.mark.parametrize(
    "host", ["admin.example.com", "ADMIN.Example.com:8080", "admin.example.com."]
)
def test_several_domains_are_told_apart_by_host(host):
    app, _ = served()
    seen = app.get("/orders/9", extra_environ={"HTTP_HOST": host}).json
    assert (seen["function"], seen["auth_domain"]) == ("orders", "admin.example.com")
    missing = app.get("/users", extra_environ={"HTTP_HOST": host}, status=404).json
    assert missing["Code"] == "DomainRouteNotFound"


def test_an_unknown_host_with_several_domains_is_domain_name_not_found():
    app, _ = served()
    answer = app.get("/users", extra_environ={"HTTP_HOST": "other.example.com:9000"}, status=404)
    assert answer.json["Code"] == "DomainNameNotFound"
    assert answer.json["Message"] == "domain name 'other.example.com' does not exist"


@pytest.mark.parametrize("host", ["[::1]", "[::1]:9000"])
def test_an_ipv6_host_keeps_its_colons(host):
    app, _ = served()
    answer = app.get("/users", extra_environ={"HTTP_HOST": host}, status=404)
    assert answer.json["Message"] == "domain name '[::1]' does not exist"


def test_one_domain_takes_every_host():
    app, _ = served(FC2_TEMPLATE)
    for host in ("127.0.0.1:9000", "http-function.hello-world-service.localhost", "x.test"):
        seen = app.get("/anything?q=1", extra_environ={"HTTP_HOST": host}).json
        assert (seen["function"], seen["path"]) == (
            "hello-world-service/http-function",
            "/anything",
        )


@pytest.mark.parametrize(
    ("url", "function", "script_name", "path", "request_uri"),
    [
        pytest.param("/2023-03-30/proxy/users/a/b?q=1", "users", "/2023-03-30/proxy/users",
                     "/a/b", "/a/b?q=1", id="fc3"),
        pytest.param("/2023-03-30/proxy/orders.LATEST/", "orders",
                     "/2023-03-30/proxy/orders.LATEST", "/", "/", id="fc3, qualifier"),
        pytest.param("/2023-03-30/proxy/static", "static", "/2023-03-30/proxy/static", "/", "/",
                     id="fc3, nothing after the name"),
    ],
)  # fmt: skip
def test_fc3_default_endpoint(url, function, script_name, path, request_uri):
    app, _ = served()
    seen = app.get(url, extra_environ=SHOP_HOST).json  # any Host: the path decides
    assert (seen["function"], seen["default_domain"]) == (function, True)
    assert (seen["script_name"], seen["path"]) == (script_name, path)
    assert seen["request_uri"] == request_uri


@pytest.mark.parametrize(
    ("url", "script_name", "path"),
    [
        pytest.param("/2016-08-15/proxy/hello-world-service/http-function/x/y?z=1",
                     "/2016-08-15/proxy/hello-world-service/http-function", "/x/y", id="fc2"),
        pytest.param("/2016-08-15/proxy/hello-world-service.LATEST/http-function/",
                     "/2016-08-15/proxy/hello-world-service.LATEST/http-function", "/",
                     id="fc2, qualifier"),
        pytest.param("/2016-08-15/proxy/hello-world-service/http-function",
                     "/2016-08-15/proxy/hello-world-service/http-function", "/",
                     id="fc2, nothing after the name"),
    ],
)  # fmt: skip
def test_fc2_default_endpoint_keeps_the_whole_uri(url, script_name, path):
    app, _ = served(FC2_TEMPLATE)
    seen = app.get(url).json
    assert (seen["function"], seen["default_domain"]) == ("hello-world-service/http-function", True)
    assert (seen["script_name"], seen["path"]) == (script_name, path)
    assert seen["request_uri"] == url  # as received: handlers strip the prefix themselves


@pytest.mark.parametrize(
    ("project", "url", "code", "message"),
    [
        pytest.param(SHOP, "/2023-03-30/proxy/nope/", "FunctionNotFound",
                     "function 'nope' does not exist", id="fc3 unknown"),
        pytest.param(SHOP, "/2023-03-30/proxy/cleanup/", "FunctionNotFound",
                     "function 'cleanup' is not served here: no HTTP trigger; not served",
                     id="fc3 timer function"),
        pytest.param(FC2_TEMPLATE, "/2016-08-15/proxy/nope/http-function/", "ServiceNotFound",
                     "service 'nope' does not exist", id="fc2 unknown service"),
        pytest.param(FC2_TEMPLATE, "/2016-08-15/proxy/hello-world-service/nope", "FunctionNotFound",
                     "function 'nope' does not exist", id="fc2 unknown function"),
        pytest.param(FC2_TEMPLATE, "/2016-08-15/proxy/hello-world-service", "FunctionNotFound",
                     "function '' does not exist", id="fc2 no function"),
    ],
)  # fmt: skip
def test_default_endpoint_unknown_names(project, url, code, message):
    app, _ = served(project)
    answer = app.get(url, status=404)
    key = "Code" if project == SHOP else "ErrorCode"
    assert answer.json[key] == code
    assert answer.json["Message" if project == SHOP else "ErrorMessage"] == message


def test_stacks_are_built_once_per_function_kind_and_domain_auth():
    _, built = served()
    kinds = sorted(
        (e.function.key, e.default_domain, e.domain.name if e.domain else "")
        for e in built.endpoints
    )
    assert kinds == [
        ("orders", False, ""),
        ("orders", False, "admin.example.com"),
        ("orders", True, ""),
        ("static", False, ""),
        ("static", True, ""),
        ("users", False, ""),
        ("users", True, ""),
    ]


def test_request_uri_is_the_raw_target_when_the_server_keeps_it():
    built = Built()
    router = Router(load_project(SHOP, env={}), built)
    recorder = Recorder()
    environ = make_environ(
        PATH_INFO="/users/~me",
        QUERY_STRING="a=%20",
        RAW_URI="/users/%7Eme?a=%20",
        HTTP_HOST="shop.example.com",
    )
    seen = json.loads(recorder.run(validator(router), environ))
    assert seen["request_uri"] == "/users/%7Eme?a=%20"
    fc3 = make_environ(
        PATH_INFO="/2023-03-30/proxy/users/~me", RAW_URI="/2023-03-30/proxy/users/%7Eme?a=1"
    )
    assert json.loads(recorder.run(validator(router), fc3))["request_uri"] == "/%7Eme?a=1"
    encoded_prefix = make_environ(
        PATH_INFO="/2023-03-30/proxy/users/~me",
        QUERY_STRING="a=1",
        RAW_URI="/2023-03-30/proxy/%75sers/~me?a=1",
    )
    assert json.loads(recorder.run(validator(router), encoded_prefix))["request_uri"] == "/~me?a=1"


def test_the_stacks_iterable_is_passed_through_and_closed():
    bodies: list[ClosingBody] = []

    def build(endpoint: Endpoint):
        def app(environ, start_response):
            start_response("200 OK", [("Content-Type", "text/plain")])
            bodies.append(ClosingBody([b"a", b"b"]))
            return bodies[-1]

        return validator(app)

    app = webtest.TestApp(validator(Router(load_project(SHOP, env={}), build)))
    assert app.get("/users", extra_environ=SHOP_HOST).body == b"ab"
    assert bodies[-1].closed


def test_real_stacks_default_domain_attachment_and_domain_jwt():
    def build(endpoint: Endpoint):
        mapping = {k: v for k, v in endpoint.trigger.items() if k != "function"}
        return make_trigger_app(validator(echo(endpoint)), mapping)

    app = webtest.TestApp(validator(Router(load_project(SHOP, env={}), build)))
    default = app.get("/2023-03-30/proxy/users/a")
    assert default.headers["Content-Disposition"] == "attachment"
    custom = app.get("/users/a", extra_environ=SHOP_HOST)
    assert "Content-Disposition" not in custom.headers
    admin = {"HTTP_HOST": "admin.example.com"}
    refused = app.get("/orders/1", extra_environ=admin, status=401)
    assert refused.json["Code"] == "InvalidToken"
    token = jwt.encode({"sub": "ana"}, ADMIN_SECRET, algorithm="HS256", headers={"kid": "shop"})
    admin["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    seen = app.get("/orders/1", extra_environ=admin).json
    assert (seen["function"], seen["user"]) == ("orders", "ana")
    # The trigger's methods still apply behind the domain's auth (open question 15).
    assert app.get("/2023-03-30/proxy/static/", status=200)
    assert app.post("/2023-03-30/proxy/static/", status=403).json["Code"] == "AccessDenied"
