"""load_project on real start-fc templates, a three-function project, and every mistake."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from fc_wsgi.config import ConfigError, load_config
from fc_wsgi.project import Endpoint, load_project
from tests.support import write_tree

FIXTURES = Path(__file__).parent / "fixtures"
FC2_TEMPLATE = FIXTURES / "start-fc/http-function/fc-http-python3/src/s.yaml"
FC3_TEMPLATE = FIXTURES / "start-fc/fc-python/simple-http/src/s.yaml"
SHOP = FIXTURES / "shop/s.yaml"


def without_function(mapping: dict) -> dict:
    return {key: value for key, value in mapping.items() if key != "function"}


def test_fc2_template_gives_one_function_its_trigger_and_an_auto_domain():
    project = load_project(FC2_TEMPLATE)
    assert (project.name, project.edition, project.profile) == ("hello-world-app", "1.0.0", "fc2")
    (function,) = project.functions
    assert function.key == "hello-world-service/http-function"
    assert (function.service, function.handler, function.runtime) == (
        "hello-world-service",
        "index.handler",
        "python3",
    )
    assert function.code_dir == FC2_TEMPLATE.parent / "code"
    assert function.code_dir.is_absolute()
    assert function.trigger == {
        "authType": "anonymous",
        "methods": ["GET"],
        "profile": "fc2",
        "function": {
            "functionName": "http-function",
            "serviceName": "hello-world-service",
            "handler": "index.handler",
            "codeUri": str(FC2_TEMPLATE.parent / "code"),
            "memorySize": 128,
            "timeout": 60,
            "instanceConcurrency": 1,
            "environmentVariables": {},
            "region": "cn-hangzhou",
            "qualifier": "LATEST",
        },
    }
    assert load_config(without_function(function.trigger)).profile == "fc2"
    (domain,) = project.domains
    assert domain.name == "http-function.hello-world-service.localhost"
    (route,) = domain.routes
    assert (route.path, route.function, route.methods) == (
        "/*",
        "hello-world-service/http-function",
        ("GET", "POST"),
    )
    assert route.declared_at.endswith(
        "s.yaml:38: services.helloworld.props.customDomains[0].routeConfigs[0]"
    )


def test_fc3_template_gives_one_function_with_fc3_defaults():
    project = load_project(FC3_TEMPLATE)
    assert (project.edition, project.profile, project.domains) == ("3.0.0", "fc3", ())
    (function,) = project.functions
    assert (function.key, function.service, function.resource) == (
        "hello-world",
        None,
        "hello_world",
    )
    assert function.trigger is not None
    assert function.trigger["methods"] == ["GET", "POST"]
    assert function.trigger["disableURLInternet"] is False
    assert function.trigger["function"]["memorySize"] == 128
    assert function.trigger["function"]["timeout"] == 30
    assert "serviceName" not in function.trigger["function"]
    assert load_config(without_function(function.trigger)).methods == ("GET", "POST")


def test_shop_keeps_environment_variables_per_function():
    project = load_project(SHOP, env={"ORDERS_QUEUE": "orders-ci"})
    by_key = {function.key: function for function in project.functions}
    assert by_key["users"].environment == {"SERVICE_ROLE": "users", "USERS_TABLE": "users-v1"}
    assert by_key["orders"].environment == {
        "SERVICE_ROLE": "orders",
        "ORDERS_QUEUE": "orders-ci",
        "RETRIES": "3",
    }
    assert by_key["static"].environment == {}
    assert by_key["orders"].trigger["function"]["environmentVariables"] == {
        "SERVICE_ROLE": "orders",
        "ORDERS_QUEUE": "orders-ci",
        "RETRIES": "3",
    }
    assert by_key["orders"].trigger["function"]["memorySize"] == 1024
    assert by_key["users"].trigger["function"]["memorySize"] == 512  # fc3's default
    # A shared ${vars.anonymous} trigger config is copied, not shared, between functions.
    assert by_key["users"].trigger is not by_key["orders"].trigger
    assert by_key["users"].trigger["methods"] is not by_key["orders"].trigger["methods"]


def test_shop_lists_the_timer_function_as_skipped():
    project = load_project(SHOP)
    assert [f.key for f in project.served] == ["users", "orders", "static"]
    cleanup = project.function("cleanup")
    assert (cleanup.served, cleanup.has_http_trigger, cleanup.skipped) == (
        False,
        False,
        "no HTTP trigger; not served",
    )
    assert cleanup.handler == "index.cleanup"


def test_shop_domains_and_domain_auth_for_the_lead_to_wire():
    project = load_project(SHOP)
    shop, admin = sorted(project.domains, key=lambda d: d.name != "shop.example.com")
    assert [r.path for r in shop.routes][:4] == [
        "/users",
        "/users/*",
        "/users/admin/*",
        "/orders/*",
    ]
    assert shop.auth_config is None and shop.trigger_auth() is None
    assert admin.name == "admin.example.com"
    assert admin.trigger_auth()["authType"] == "jwt"
    orders = project.function("orders")
    mapping = Endpoint(orders, default_domain=False, domain=admin).trigger
    assert mapping["authType"] == "jwt" and mapping["defaultDomain"] is False
    assert load_config(without_function(mapping)).auth_type == "jwt"
    default = Endpoint(orders, default_domain=True).trigger
    assert default["authType"] == "anonymous" and default["defaultDomain"] is True
    assert "defaultDomain" not in orders.trigger  # the spec is never changed


def test_only_keeps_the_named_functions_and_their_routes():
    project = load_project(SHOP).only(["static"])
    assert [f.key for f in project.functions] == ["static"]
    (shop,) = project.domains
    assert {route.function for route in shop.routes} == {"static"}
    with pytest.raises(ConfigError, match="'nope' is no function of this project"):
        load_project(SHOP).only(["nope"])


BASE = """\
edition: 3.0.0
name: t
resources:
  api:
    component: fc3
    props:
      region: cn-hangzhou
      functionName: api
      runtime: python3.10
      code: ./code
      handler: index.handler
      triggers:
        - triggerName: http
          triggerType: http
          triggerConfig:
            authType: anonymous
            methods: [GET]
"""

DOMAIN = """\
  site:
    component: fc3-domain
    props:
      domainName: Site.Example.com
      routeConfig:
        routes:
          - path: /a
            functionName: api
"""


def load(tmp_path: Path, text: str, **files: str):
    write_tree(tmp_path, {"s.yaml": text, "code/index.py": "", **files})
    return load_project(tmp_path / "s.yaml", env={})


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        pytest.param(
            "[GET]", "[FETCH]",
            "17: resources.api.props.triggers[0].triggerConfig.methods[0]: must be one of",
            id="trigger methods",
        ),
        pytest.param(
            "authType: anonymous", "authType: jwt",
            "15: resources.api.props.triggers[0].triggerConfig.authConfig: authType jwt needs",
            id="trigger jwt without authConfig",
        ),
        pytest.param(
            "authType: anonymous", "authTyp: anonymous",
            "16: resources.api.props.triggers[0].triggerConfig.authTyp: unknown field",
            id="trigger unknown field",
        ),
        pytest.param(
            "          triggerConfig:\n            authType: anonymous\n"
            "            methods: [GET]\n",
            "",
            "13: resources.api.props.triggers[0].triggerConfig: required",
            id="trigger without config",
        ),
        pytest.param(
            "      functionName: api\n", "",
            "6: resources.api.props.functionName: required", id="functionName missing",
        ),
        pytest.param(
            "code: ./code", "code: ./nope",
            "10: resources.api.props.code: folder ./nope does not exist", id="code folder",
        ),
        pytest.param("edition: 3.0.0", "edition: 2.0.0", "1: edition: must be 3.0.0 or 1.0.0",
                     id="edition"),
        pytest.param(
            "handler: index.handler", "handler: index.handler\n      memorySize: 100000",
            "12: resources.api.props.memorySize: must be 64..32768, got 100000", id="memorySize",
        ),
        pytest.param(
            "handler: index.handler", "handler: index.handler\n      timeout: soon",
            "12: resources.api.props.timeout: must be an integer 1..86400, got 'soon'",
            id="timeout",
        ),
        pytest.param(
            "handler: index.handler",
            "handler: index.handler\n      environmentVariables:\n        A: [1]",
            "13: resources.api.props.environmentVariables.A: must be text, got list",
            id="environment value",
        ),
        pytest.param(
            "triggers:\n", "triggers:\n        - {triggerName: h2, triggerType: http}\n",
            "14: resources.api.props.triggers[1]: a second HTTP trigger", id="two HTTP triggers",
        ),
        pytest.param("name: t", "name: [t", "not valid YAML", id="not YAML"),
        pytest.param("resources:", "things:", ": resources: required for edition 3.0.0",
                     id="no resources"),
        pytest.param(
            "handler: index.handler",
            "handler: index.handler\n      customDomain:\n        domainName: x.com\n"
            "        route: {path: a}",
            "14: resources.api.props.customDomain.route.path: must start with /",
            id="route path",
        ),
        pytest.param(
            "handler: index.handler",
            "handler: index.handler\n      customDomain:\n        domainName: x.com\n"
            "        route: {path: /a/*/b}",
            "only a trailing * is a wildcard", id="route wildcard inside",
        ),
        pytest.param(
            "handler: index.handler",
            "handler: index.handler\n      customDomain:\n        domainName: x.com\n"
            "        route: {path: /a, methods: [FETCH]}",
            "customDomain.route.methods[0]: must be one of", id="route methods",
        ),
        pytest.param(
            "handler: index.handler",
            "handler: index.handler\n      customDomain:\n        domainName: x.com\n"
            "        route:\n          path: /a\n          rewriteConfig:\n"
            "            regexRules: [{match: '(', replacement: /b}]",
            "17: resources.api.props.customDomain.route.rewriteConfig.regexRules[0]: not a valid",
            id="rewrite regex",
        ),
        pytest.param(
            "handler: index.handler",
            "handler: index.handler\n      customDomain:\n        domainName: x.com\n"
            "        route:\n          path: /a/*\n          rewriteConfig:\n"
            "            wildcardRules: [{match: ^/a/*, replacement: /$2}]",
            "$2 in the replacement, but the pattern has 1", id="rewrite group",
        ),
        pytest.param(
            "handler: index.handler",
            "handler: index.handler\n      customDomain:\n        domainName: x.com\n"
            "        authConfig: {authType: signed}",
            "customDomain.authConfig.authType: must be one of anonymous, function, jwt",
            id="domain authType",
        ),
        pytest.param(
            "handler: index.handler",
            "handler: index.handler\n      customDomain:\n        domainName: x.com\n"
            "        authConfig: {authType: jwt}",
            "customDomain.authConfig: authType jwt needs authInfo", id="domain jwt, no authInfo",
        ),
        pytest.param(
            "handler: index.handler",
            "handler: index.handler\n      customDomain:\n        domainName: x.com\n"
            "        authConfig: {authType: jwt, authInfo: '{nope'}",
            "14: resources.api.props.customDomain.authConfig.authInfo: is not valid JSON",
            id="domain jwt, bad authInfo",
        ),
    ],
)  # fmt: skip
def test_mistakes_name_the_yaml_path_and_line(tmp_path: Path, old: str, new: str, message: str):
    assert old in BASE
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, BASE.replace(old, new, 1))
    text, file = str(caught.value), tmp_path / "s.yaml"
    if message[0].isdigit():
        assert f"{file}:{message}" in text
    else:
        assert text.startswith(str(file)) and message in text


def test_domain_routes_to_unknown_functions_and_twice_routed_paths_are_errors(tmp_path: Path):
    with pytest.raises(ConfigError, match=r"s\.yaml:24: resources\.site\.props\.routeConfig"
                       r"\.routes\[0\]: routes to 'nope', which is no function"):  # fmt: skip
        load(tmp_path, BASE + DOMAIN.replace("functionName: api", "functionName: nope"))
    twice = DOMAIN + "          - {path: /a, functionName: api}\n"
    with pytest.raises(ConfigError, match=r"routes\[1\]: path /a with these methods is already"):
        load(tmp_path, BASE + twice)
    other_methods = DOMAIN + "          - {path: /a, functionName: api, methods: [POST]}\n"
    assert len(load(tmp_path, BASE + other_methods).domains[0].routes) == 2


def test_domain_names_are_lower_case_and_declarations_merge(tmp_path: Path):
    custom = (
        "handler: index.handler\n      customDomain:\n        domainName: site.example.COM\n"
        "        route: {path: /b/*}"
    )
    project = load(tmp_path, BASE.replace("handler: index.handler", custom) + DOMAIN)
    (domain,) = project.domains
    assert domain.name == "site.example.com"
    assert [route.path for route in domain.routes] == ["/b/*", "/a"]


@pytest.mark.parametrize(
    ("old", "new", "reason"),
    [
        pytest.param("python3.10", "nodejs18", "runtime nodejs18 is not Python", id="nodejs"),
        pytest.param(
            "python3.10", "custom.debian10", "runs its own HTTP server", id="custom runtime"
        ),
        pytest.param(
            "code: ./code",
            "code: {ossBucketName: b, ossObjectName: o.zip}",
            "code is in OSS",
            id="OSS code",
        ),
        pytest.param("code: ./code", "code: ./code.zip", "is an archive", id="zip"),
        pytest.param("triggerType: http", "triggerType: timer", "no HTTP trigger", id="timer"),
    ],
)
def test_functions_that_cannot_be_served_are_listed_with_the_reason(
    tmp_path: Path, old: str, new: str, reason: str
):
    project = load(tmp_path, BASE.replace(old, new) + DOMAIN, **{"code.zip": "PK"})
    (function,) = project.functions
    assert not function.served and reason in function.skipped
    assert project.served == ()
    assert project.domains[0].routes == ()
    ((where, why),) = project.ignored
    assert where.endswith("routes[0]") and why.startswith("route to api: ")


def test_unknown_props_and_components_are_ignored(tmp_path: Path):
    text = BASE.replace(
        "handler: index.handler",
        "handler: index.handler\n      vpcConfig: ${config('VpcId')}\n      frobnicate: 3",
    )
    text += "  bucket:\n    component: oss\n    props: {bucket: b}\n"
    project = load(tmp_path, text)
    assert [f.key for f in project.served] == ["api"]
    assert project.ignored == (("bucket", "component oss is not fc3 or fc3-domain"),)


def test_fc2_defaults_and_route_targets(tmp_path: Path):
    text = """\
edition: 1.0.0
services:
  one:
    component: devsapp/fc@0.1.2
    props:
      region: cn-shanghai
      service: {name: svc}
      function:
        name: fn
        runtime: python3.9
        codeUri: ./code
        initializer: index.init
        environmentVariables:
          TOKEN: ${env(FC_TOKEN)}
      triggers:
        - {name: t, type: http, qualifier: prod, config: {authType: anonymous, methods: [GET]}}
      customDomains:
        - domainName: api.example.com
          routeConfigs:
            - path: /x
            - {path: /y, functionName: other}
  two:
    component: fc
    props:
      region: cn-shanghai
      service: {name: svc}
      function: {name: other, codeUri: ./code}
      triggers: [{name: t, type: http, config: {authType: anonymous, methods: [GET]}}]
"""
    write_tree(tmp_path, {"s.yaml": text, "code/index.py": ""})
    project = load_project(tmp_path / "s.yaml", env={"FC_TOKEN": "t0k"})
    fn, other = project.functions
    assert fn.trigger["function"] == {
        "functionName": "fn",
        "serviceName": "svc",
        "handler": "index.handler",
        "codeUri": str((tmp_path / "code").resolve()),
        "memorySize": 128,
        "timeout": 3,
        "instanceConcurrency": 1,
        "initializer": "index.init",
        "initializationTimeout": 3,
        "environmentVariables": {"TOKEN": "t0k"},
        "region": "cn-shanghai",
        "qualifier": "prod",
    }
    # fc's default runtime is nodejs10: a function that names none is not served.
    assert (other.runtime, other.has_http_trigger, other.served) == ("nodejs10", True, False)
    (domain,) = project.domains
    assert [(r.path, r.function) for r in domain.routes] == [("/x", "svc/fn")]
    assert project.ignored[0][1].startswith("route to svc/other: runtime nodejs10")


def test_config_account_id_fills_the_function(tmp_path: Path):
    write_tree(tmp_path, {"s.yaml": BASE, "code/index.py": ""})
    project = load_project(tmp_path / "s.yaml", env={}, config={"AccountID": "1234"})
    assert project.function("api").trigger["function"]["accountId"] == "1234"


def test_line_numbers_come_from_the_file_not_a_guess(tmp_path: Path):
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, BASE.replace("[GET]", "[GET, FETCH]"))
    line = int(re.search(r"s\.yaml:(\d+):", str(caught.value)).group(1))
    assert BASE.splitlines()[line - 1].strip().startswith("methods:")
