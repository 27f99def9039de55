"""``edition: 3.0.0``: ``resources`` of components ``fc3`` and ``fc3-domain``, fc-spec-runtime 18.1.

One function per ``fc3`` resource, its props flat (``functionName``, ``code``, ``handler``,
``triggers[].triggerConfig``), an optional ``customDomain`` with one ``route``; domains of
their own as ``fc3-domain`` resources with ``routeConfig.routes`` and an ``authConfig``.
Component defaults are FC 3.0's: ``memorySize`` 512, ``timeout`` 3.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .props import (
    DomainDecl,
    Reading,
    code_folder,
    component,
    domain_auth,
    environment,
    function_fields,
    host_name,
    http_trigger,
    initialization_timeout,
    protocol,
    route,
    trigger_mapping,
    unserved_runtime,
)
from .spec import FunctionSpec
from .variables import Node

MEMORY_MB_DEFAULT = 512


def read_resources(resources: Node, config: Mapping[str, Any]) -> Reading:
    reading = Reading()
    for key, resource in resources.items():
        kind = component(resource)
        if kind == "fc3":
            _function(key, resource.require("props"), config, reading)
        elif kind == "fc3-domain":
            reading.domains.append(_domain(resource.require("props")))
        else:
            reading.ignored.append((key, f"component {kind} is not fc3 or fc3-domain"))
    return reading


def _function(key: str, props: Node, config: Mapping[str, Any], reading: Reading) -> None:
    name = props.required_text("functionName")
    region = props.required_text("region")
    runtime = props.required_text("runtime")
    env = environment(props)
    trigger = http_trigger(props, "triggerType")
    skipped = unserved_runtime(runtime) if trigger else "no HTTP trigger; not served"
    code_dir = None
    if skipped is None:
        code_dir, skipped = code_folder(props, "code")
    handler = props.required_text("handler") if skipped is None else props.text("handler")
    mapping = None
    if skipped is None and trigger is not None:
        lifecycle = props.mapping("instanceLifecycleConfig")
        initializer = lifecycle.mapping("initializer") if lifecycle is not None else None
        function = function_fields(
            props,
            memory_mb_default=MEMORY_MB_DEFAULT,
            functionName=name,
            environmentVariables=env,
            handler=handler,
            codeUri=str(code_dir),
            initializer=initializer.text("handler") if initializer is not None else None,
            initializationTimeout=initialization_timeout(initializer, "timeout"),
            region=region,
            accountId=config.get("AccountID"),
            qualifier=trigger.text("qualifier", "LATEST"),
        )
        mapping = trigger_mapping(trigger, "triggerConfig", "fc3", function)
    reading.functions.append(
        FunctionSpec(
            name=name,
            resource=key,
            profile="fc3",
            runtime=runtime,
            handler=handler,
            code_dir=code_dir,
            environment=env,
            has_http_trigger=trigger is not None,
            trigger=mapping,
            skipped=skipped,
        )
    )
    custom = props.mapping("customDomain")
    if custom is not None:
        domain = _declared_name(custom, name)
        routes = [route(custom.require("route"), name)] if custom.get("route") else []
        auth = domain_auth(custom.mapping("authConfig"))
        reading.domains.append(DomainDecl(domain, protocol(custom), routes, auth, custom))


def _domain(props: Node) -> DomainDecl:
    routes_node = props.mapping("routeConfig")
    routes = []
    for item in routes_node.elements("routes") if routes_node is not None else []:
        routes.append(route(item, item.required_text("functionName")))
    fallback = routes[0].function if routes else "domain"
    auth = domain_auth(props.mapping("authConfig"))
    return DomainDecl(_declared_name(props, fallback), protocol(props), routes, auth, props)


def _declared_name(node: Node, function: str) -> str:
    """``domainName``; ``auto`` (FC's test domain) is ``<function>.localhost`` here."""
    name = node.required_text("domainName")
    return f"{host_name(function)}.localhost" if name == "auto" else name.lower()
