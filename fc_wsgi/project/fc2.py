"""``edition: 1.0.0``: ``services`` of component ``fc`` / ``devsapp/fc`` (fc-spec-runtime 18.2).

Each entry holds a ``service``, one ``function``, its ``triggers`` (``type``, ``config``) and
``customDomains[].routeConfigs``, whose ``serviceName`` and ``functionName`` default to the
entry's own. Component defaults are the ``fc`` component's: ``runtime: nodejs10`` (so a
function without a runtime is not served), ``handler: index.handler``, ``memorySize`` 128,
``timeout`` 3, ``initializationTimeout`` 3.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .props import (
    DomainDecl,
    Reading,
    code_folder,
    component,
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

MEMORY_MB_DEFAULT = 128
RUNTIME_DEFAULT = "nodejs10"
HANDLER_DEFAULT = "index.handler"


def read_services(services: Node, config: Mapping[str, Any]) -> Reading:
    reading = Reading()
    for key, entry in services.items():
        kind = component(entry)
        if kind == "fc":
            _function(key, entry.require("props"), config, reading)
        else:
            reading.ignored.append((key, f"component {kind} is not fc"))
    return reading


def _function(key: str, props: Node, config: Mapping[str, Any], reading: Reading) -> None:
    region = props.required_text("region")
    service = props.require("service").required_text("name")
    node = props.require("function")
    name = node.required_text("name")
    runtime = node.text("runtime", RUNTIME_DEFAULT) or RUNTIME_DEFAULT
    handler = node.text("handler", HANDLER_DEFAULT)
    env = environment(node)
    trigger = http_trigger(props, "type")
    skipped = unserved_runtime(runtime) if trigger else "no HTTP trigger; not served"
    code_dir = None
    if skipped is None:
        code_dir, skipped = code_folder(node, "codeUri")
    mapping = None
    if skipped is None and trigger is not None:
        initializer = node.text("initializer")
        function = function_fields(
            node,
            memory_mb_default=MEMORY_MB_DEFAULT,
            functionName=name,
            serviceName=service,
            environmentVariables=env,
            handler=handler,
            codeUri=str(code_dir),
            initializer=initializer,
            initializationTimeout=initialization_timeout(
                node if initializer else None, "initializationTimeout"
            ),
            region=region,
            accountId=config.get("AccountID"),
            qualifier=trigger.text("qualifier", "LATEST"),
        )
        mapping = trigger_mapping(trigger, "config", "fc2", function)
    reading.functions.append(
        FunctionSpec(
            name=name,
            resource=key,
            profile="fc2",
            runtime=runtime,
            handler=handler,
            code_dir=code_dir,
            environment=env,
            service=service,
            has_http_trigger=trigger is not None,
            trigger=mapping,
            skipped=skipped,
        )
    )
    for domain in props.elements("customDomains"):
        routes = [
            route(item, f"{item.text('serviceName', service)}/{item.text('functionName', name)}")
            for item in domain.elements("routeConfigs")
        ]
        declared = domain.required_text("domainName")
        # ``auto`` is FC's generated test domain, <function>.<service>.<account>.<region>...
        local = f"{host_name(name)}.{host_name(service)}.localhost"
        domain_name = local if declared == "auto" else declared.lower()
        reading.domains.append(DomainDecl(domain_name, protocol(domain), routes, None, domain))
