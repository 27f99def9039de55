"""``environ['fc.context']``: an object shaped like FC's Python ``FCContext`` (section 14.3).

FC 2.0 handlers read ``context.request_id``, ``context.credentials.access_key_id``,
``context.function.name``, ``context.service.name`` and friends; this module gives them every
attribute of FC's classes, with FC's camelCase aliases. Everything but the request id, the
retry count and the logger is fixed per function, so it is built once and shared; one request
costs one small object. Credentials are the ``ALIBABA_CLOUD_*`` variables of the function's
environment (FC's STS key of the function's role), never the trigger's ``accessKeys``.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Mapping
from operator import attrgetter
from typing import Any


def _alias(attribute: str) -> Any:
    """FC's camelCase name for ``attribute``, read-only, as FC's classes have them."""
    return property(attrgetter(attribute), doc=f"FC's camelCase name for ``{attribute}``.")


class Credentials:
    """The function role's STS key (empty strings when there is none)."""

    __slots__ = ("access_key_id", "access_key_secret", "security_token")

    def __init__(self, access_key_id: str, access_key_secret: str, security_token: str) -> None:
        self.access_key_id = access_key_id
        self.access_key_secret = access_key_secret
        self.security_token = security_token

    accessKeyId = _alias("access_key_id")
    accessKeySecret = _alias("access_key_secret")
    securityToken = _alias("security_token")

    def to_dict(self) -> dict[str, str]:
        return {
            "accessKeyId": self.access_key_id,
            "accessKeySecret": self.access_key_secret,
            "securityToken": self.security_token,
        }


class FunctionMeta:
    """``context.function``: name, handler, memory (MB) and timeout (seconds)."""

    __slots__ = ("name", "handler", "memory", "timeout")

    def __init__(self, name: str, handler: str, memory: int, timeout: int) -> None:
        self.name, self.handler, self.memory, self.timeout = name, handler, memory, timeout

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "handler": self.handler, "memory": self.memory,
                "timeout": self.timeout}  # fmt: skip


class ServiceMeta:
    """``context.service``; FC 3.0 has no services, so its name and version id are empty."""

    __slots__ = ("name", "log_project", "log_store", "qualifier", "version_id")

    def __init__(
        self, name: str, log_project: str, log_store: str, qualifier: str, version_id: str
    ) -> None:
        self.name, self.log_project, self.log_store = name, log_project, log_store
        self.qualifier, self.version_id = qualifier, version_id

    @property
    def service_name(self) -> str:
        """Older FC 2.0 docs call the name ``service_name``."""
        return self.name

    logProject = _alias("log_project")
    logStore = _alias("log_store")
    versionId = _alias("version_id")

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "logProject": self.log_project, "logStore": self.log_store,
                "qualifier": self.qualifier, "versionId": self.version_id}  # fmt: skip


class Tracing:
    """``context.tracing``: OpenTracing span context, Jaeger endpoint, baggage (base64 JSON)."""

    __slots__ = ("span_context", "jaeger_endpoint", "span_baggages")

    def __init__(
        self, span_context: str = "", jaeger_endpoint: str = "", baggage: str = ""
    ) -> None:
        self.span_context, self.jaeger_endpoint = span_context, jaeger_endpoint
        self.span_baggages = self.parseOpenTracingBaggages(baggage)

    @staticmethod
    def parseOpenTracingBaggages(baggage: str) -> dict[str, Any]:  # noqa: N802 - FC's name
        """FC's method: the baggage header's base64 JSON as a dict ({} when absent or bad)."""
        if not baggage:
            return {}
        try:
            parsed = json.loads(base64.b64decode(baggage))
        except ValueError:
            return {}
        return parsed if isinstance(parsed, dict) else {}

    def to_dict(self) -> dict[str, Any]:
        return {"openTracingSpanContext": self.span_context,
                "jaegerEndpoint": self.jaeger_endpoint,
                "openTracingSpanBaggages": self.span_baggages}  # fmt: skip


#: No tracing configured: one shared instance (its fields are never changed).
NO_TRACING = Tracing()


class FCContext:
    """One invocation's context: request id and retry count; the rest is the function's."""

    __slots__ = (
        "request_id", "credentials", "function", "service", "region", "account_id",
        "retry_count", "tracing", "logger",
    )  # fmt: skip

    def __init__(
        self,
        request_id: str,
        credentials: Credentials,
        function: FunctionMeta,
        service: ServiceMeta,
        region: str,
        account_id: str,
        retry_count: int = 0,
        tracing: Tracing = NO_TRACING,
        logger: logging.Logger | logging.LoggerAdapter[logging.Logger] | None = None,
    ) -> None:
        self.request_id, self.credentials = request_id, credentials
        self.function, self.service = function, service
        self.region, self.account_id, self.retry_count = region, account_id, retry_count
        self.tracing, self.logger = tracing, logger

    requestId = _alias("request_id")
    accountId = _alias("account_id")
    retryCount = _alias("retry_count")

    def to_json(self) -> str:
        """The context as FC's camelCase JSON."""
        return json.dumps(
            {
                "requestId": self.request_id,
                "credentials": self.credentials.to_dict(),
                "function": self.function.to_dict(),
                "service": self.service.to_dict(),
                "region": self.region,
                "accountId": self.account_id,
                "retryCount": self.retry_count,
                "tracing": self.tracing.to_dict(),
            }
        )


def credentials_from(environment: Mapping[str, str]) -> Credentials:
    """The ``ALIBABA_CLOUD_*`` key of the function's environment, else empty strings."""
    return Credentials(
        environment.get("ALIBABA_CLOUD_ACCESS_KEY_ID", ""),
        environment.get("ALIBABA_CLOUD_ACCESS_KEY_SECRET", ""),
        environment.get("ALIBABA_CLOUD_SECURITY_TOKEN", ""),
    )


class RequestLogger(logging.LoggerAdapter):  # type: ignore[type-arg]
    """``context.logger`` with ``instanceConcurrency > 1``: records carry the request id."""

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        kwargs["extra"] = {**(kwargs.get("extra") or {}), **(self.extra or {})}
        return msg, kwargs
