"""environ['fc.context'] against FC's FCContext attribute table (fc-spec-runtime.md 14.3)."""

from __future__ import annotations

import json
import logging

import pytest

from fc_wsgi.runtime.context import Tracing


def seen_context(function_stack, headers=None, extra_environ=None, **function):
    seen = {}

    def handler(environ, start_response):
        seen["context"] = environ["fc.context"]
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    app = function_stack(handler, **function)
    response = app.get("/", headers=headers or {}, extra_environ=extra_environ or {})
    return seen["context"], response


FUNCTION = {
    "functionName": "hello",
    "handler": "index.handler",
    "memorySize": 256,
    "timeout": 30,
    "region": "cn-shanghai",
    "accountId": "1234567890",
    "qualifier": "prod",
    "serviceName": "svc",
}


@pytest.mark.parametrize(
    ("attribute", "expected"),
    [
        ("function.name", "hello"),
        ("function.handler", "index.handler"),
        ("function.memory", 256),
        ("function.timeout", 30),
        ("service.name", ""),  # fc3: FC 3.0 has no services (open question 8)
        ("service.version_id", ""),
        ("service.versionId", ""),
        ("service.qualifier", "prod"),
        ("service.log_project", ""),
        ("service.logProject", ""),
        ("service.log_store", ""),
        ("service.logStore", ""),
        ("region", "cn-shanghai"),
        ("account_id", "1234567890"),
        ("accountId", "1234567890"),
        ("retry_count", 0),
        ("retryCount", 0),
        ("credentials.access_key_id", "STS.id"),
        ("credentials.accessKeyId", "STS.id"),
        ("credentials.access_key_secret", "sts-secret"),
        ("credentials.accessKeySecret", "sts-secret"),
        ("credentials.security_token", "sts-token"),
        ("credentials.securityToken", "sts-token"),
        ("tracing.span_context", ""),
        ("tracing.jaeger_endpoint", ""),
        ("tracing.span_baggages", {}),
        ("logger", None),  # instanceConcurrency 1: FC's runtime passes None
    ],
)
def test_every_attribute_of_fc_context(function_stack, monkeypatch, attribute, expected):
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", "STS.id")
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "sts-secret")
    monkeypatch.setenv("ALIBABA_CLOUD_SECURITY_TOKEN", "sts-token")
    context, _ = seen_context(function_stack, **FUNCTION)
    value = context
    for part in attribute.split("."):
        value = getattr(value, part)
    assert value == expected


def test_request_id_is_the_answer_id(function_stack):
    context, response = seen_context(function_stack)
    assert context.request_id == context.requestId == response.headers["X-Fc-Request-Id"]


def test_fc2_profile_reports_the_service_name(function_stack):
    context, _ = seen_context(function_stack, profile="fc2", serviceName="svc")
    assert context.service.name == context.service.service_name == "svc"


def test_credentials_are_empty_without_a_role_never_the_trigger_keys(function_stack, monkeypatch):
    for name in ("ID", "SECRET"):
        monkeypatch.delenv(f"ALIBABA_CLOUD_ACCESS_KEY_{name}", raising=False)
    monkeypatch.delenv("ALIBABA_CLOUD_SECURITY_TOKEN", raising=False)
    context, _ = seen_context(function_stack)
    assert context.credentials.to_dict() == {
        "accessKeyId": "",
        "accessKeySecret": "",
        "securityToken": "",
    }


def test_async_runs_count_their_retries(function_stack):
    context, _ = seen_context(function_stack, extra_environ={"fc.async_attempt": 3})
    assert context.retry_count == 2


def test_logger_prefixes_the_request_id_with_instance_concurrency(function_stack, caplog):
    context, _ = seen_context(function_stack, instanceConcurrency=4)
    with caplog.at_level(logging.INFO):
        context.logger.info("hello from the function")
    assert caplog.records[-1].fc_request_id == context.request_id


def test_to_json_is_camel_case(function_stack):
    context, _ = seen_context(function_stack, **FUNCTION)
    data = json.loads(context.to_json())
    assert data["requestId"] == context.request_id
    assert data["function"] == {
        "name": "hello",
        "handler": "index.handler",
        "memory": 256,
        "timeout": 30,
    }
    assert data["service"]["qualifier"] == "prod"
    assert data["accountId"] == "1234567890" and data["retryCount"] == 0
    assert set(data["credentials"]) == {"accessKeyId", "accessKeySecret", "securityToken"}


def test_tracing_baggage_is_base64_json():
    assert Tracing(baggage="eyJrIjogInYifQ==").span_baggages == {"k": "v"}
    assert Tracing.parseOpenTracingBaggages("not base64 json") == {}
