"""make_trigger_app: the one place that knows the order of the layers.

```
CorsDefaults → LimitGuard → AuthGate → AsyncDispatcher → [FunctionRuntime →] HeaderFilter → app
```
CORS is outermost so that every answer, errors included, carries CORS headers; limits come
before authentication so that an oversized request costs no signature check; the header
filter is innermost so that auth and async read their ``x-fc-*`` headers before the app is
shielded from them (DESIGN.md, "Request flow"). FunctionRuntime, only with a ``function``
section, sits outside the filter so that its answers and headers are the gateway's, and inside
the dispatcher so that async runs get the same context and deadline. A layer with nothing to
do for this config is left out rather than called on every request. With metrics on,
RequestMetrics wraps the whole stack from outside, so every answer is counted and timed; a
project server's wraps its router, and each function's stack starts with FunctionLabel, so a
request is counted under the function that served it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from werkzeug.utils import ImportStringError, import_string

from . import metrics
from .auth.gate import AuthGate
from .config import ConfigError, TriggerConfig, load_config
from .cors import CorsDefaults
from .dispatch import AsyncDispatcher
from .dispatch.backend import open_backend
from .headers import HeaderFilter
from .limits import LimitGuard
from .logs import log_format
from .project.spec import Endpoint, Project
from .request_log import RequestLogContext

if TYPE_CHECKING:
    from wsgiref.types import WSGIApplication

    from .config import ConfigSource

#: The trigger used when no config is given: anonymous, every method (as `fc-wsgi serve`).
DEFAULT_TRIGGER = TriggerConfig(auth_type="anonymous")


def make_trigger_app(
    app: WSGIApplication | str | None, config: ConfigSource | None = None
) -> WSGIApplication:
    """Wrap ``app`` (a WSGI callable or ``"module:attr"``) in FC's HTTP-trigger behaviour.

    ``config`` is a JSON file path, a mapping, or a loaded :class:`TriggerConfig`; without
    one the trigger is anonymous and allows every method. With a ``function`` section the
    stack also plays FC's function runtime, and ``app`` may be None: the handler is then
    loaded from the section's code root.
    """
    trigger = DEFAULT_TRIGGER if config is None else load_config(config)
    label = metrics.label_of(trigger)
    stack = _trigger_stack(app, trigger, label)
    measured = _enable_metrics(label)  # None unless metrics are on
    if measured is not None:
        from .request_metrics import RequestMetrics

        stack = RequestMetrics(stack, measured.function(label))
    return stack


def _trigger_stack(
    app: WSGIApplication | str | None, trigger: TriggerConfig, label: str
) -> WSGIApplication:
    """The trigger's layers around its app; ``label``: its async metrics' ``function``."""
    wsgi_app = _app(app, trigger)
    profile = trigger.profile
    limits = trigger.limits

    stack = _inner_layers(wsgi_app, trigger)
    async_ = trigger.async_
    stack = AsyncDispatcher(
        stack,
        # SQLite: the path (the dispatcher owns the journal); dramatiq: the Redis backend.
        journal=async_.journal if async_.backend == "sqlite" else open_backend(async_),
        durability=async_.durability,
        workers=async_.workers,
        max_async_retry_attempts=async_.max_async_retry_attempts,
        max_async_event_age_in_seconds=async_.max_async_event_age_in_seconds,
        destination_config=async_.destination_config,
        profile=profile,
        fail_on_5xx=async_.fail_on_5xx,
        max_queued_tasks=async_.max_queued_tasks,
        retention_seconds=async_.retention_seconds,
        lease_seconds=async_.lease_seconds,
        metrics_label=label,
    )
    disabled = trigger.disable_url_internet and trigger.default_domain
    if trigger.auth_type != "anonymous" or disabled:
        stack = AuthGate(
            stack,
            auth_type=trigger.auth_type,
            auth_config=trigger.auth_config,
            access_keys=trigger.access_keys,
            profile=profile,
            disable_url_internet=disabled,
            signature_schemes=trigger.signature.schemes,
            max_skew_seconds=trigger.signature.max_skew_seconds,
            sdk_variants=trigger.signature.sdk_variants,
        )
    stack = LimitGuard(
        stack,
        methods=trigger.methods,
        max_header_bytes=limits.max_header_bytes,
        max_url_bytes=limits.max_url_bytes,
        max_body_bytes=limits.max_body_bytes,
        max_async_body_bytes=limits.max_async_body_bytes,
        profile=profile,
    )
    cors = trigger.cors
    if cors.mode != "off":
        stack = CorsDefaults(
            stack,
            mode=cors.mode,
            allow_origins=cors.allow_origins,
            allow_methods=cors.allow_methods,
            allow_headers=cors.allow_headers,
            expose_headers=cors.expose_headers,
            allow_credentials=cors.allow_credentials,
            max_age=cors.max_age,
            methods=trigger.methods,
            profile=profile,
        )
    if log_format() == "json":  # each record carries the id of the request that logged it
        stack = RequestLogContext(stack, profile=profile)
    return stack


def _enable_metrics(label: str) -> metrics.Metrics | None:
    """The process's metrics (``label``: its default ``function``), None when off."""
    try:
        return metrics.enable(label)
    except ImportError as exc:
        raise ConfigError(str(exc)) from None


#: Where a project's functions keep their async journals, beside its s.yaml: one per function.
PROJECT_JOURNALS = ".fc-wsgi"


def make_project_app(
    project: str | os.PathLike[str] | Project,
    *,
    functions: Iterable[str] = (),
    env: Mapping[str, str] | None = None,
) -> WSGIApplication:
    """Serve a Serverless Devs project (``s.yaml``, or a loaded :class:`Project`): one trigger
    stack per function behind FC's default endpoint and the custom domains' routes.

    ``functions`` keeps only those (by name, ``service/function`` for FC 2.0). Each function
    runs its own handler from its own code folder with its own variables and
    ``function`` settings, and keeps its async tasks in its own journal,
    ``.fc-wsgi/<function>.sqlite3`` beside the s.yaml (``<service>/<function>`` for FC 2.0).
    With metrics on, each function's are labelled with its key, and the router's own answers
    (no such function, route or domain) with ``--function-label`` or the project's name.
    """
    from .project import Router, load_project

    loaded = project if isinstance(project, Project) else load_project(project, env=env)
    names = tuple(functions)
    if names:
        loaded = loaded.only(names)
    journals = loaded.file.parent / PROJECT_JOURNALS
    measured = _enable_metrics(os.environ.get(metrics.FUNCTION_ENV) or loaded.name)

    def build(endpoint: Endpoint) -> WSGIApplication:
        key = endpoint.function.key
        stack = _trigger_stack(None, load_config(_mapping(endpoint, journals)), key)
        if measured is None:
            return stack
        from .request_metrics import FunctionLabel

        return FunctionLabel(stack, measured.function(key))

    router = Router(loaded, build)
    if measured is None:
        return router
    from .request_metrics import RequestMetrics

    return RequestMetrics(router, measured.default)


def project_triggers(project: Project) -> dict[str, TriggerConfig]:
    """Each served function's trigger config as its default endpoint runs it, by key."""
    journals = project.file.parent / PROJECT_JOURNALS
    return {f.key: load_config(_mapping(Endpoint(f, True), journals)) for f in project.served}


def _mapping(endpoint: Endpoint, journals: Path) -> dict[str, Any]:
    """The endpoint's trigger config; every endpoint of a function shares its journal (and, in
    the runtime, its handler module, initializer and concurrency cap)."""
    mapping = endpoint.trigger
    journal = str(journals / f"{endpoint.function.key}.sqlite3")
    mapping["async"] = {"journal": journal, **mapping.get("async", {})}
    return mapping


def make_task_app(app: WSGIApplication | str | None, config: ConfigSource) -> WSGIApplication:
    """The app as async tasks run it in ``fc-wsgi worker``: the layers inside AsyncDispatcher
    ([FunctionRuntime,] HeaderFilter), exactly as :func:`make_trigger_app` stacks them for the
    local executor."""
    trigger = load_config(config)
    return _inner_layers(_app(app, trigger), trigger)


def _app(app: WSGIApplication | str | None, trigger: TriggerConfig) -> WSGIApplication:
    """The innermost app: ``app`` (imported if a string), or the function's handler."""
    wsgi_app = load_app(app) if isinstance(app, str) else app
    if trigger.function is not None:
        from .runtime import function_app

        return function_app(wsgi_app, trigger.function)
    if wsgi_app is None:
        raise ConfigError("function: no app given, and the config has no function section")
    return wsgi_app


def _inner_layers(app: WSGIApplication, trigger: TriggerConfig) -> WSGIApplication:
    """What runs inside AsyncDispatcher: the same for a request served now and a task run later."""
    stack: WSGIApplication = HeaderFilter(
        app,
        max_response_header_bytes=trigger.limits.max_response_header_bytes,
        default_domain=trigger.default_domain,
        profile=trigger.profile,
    )
    if trigger.function is not None:
        from .runtime import FunctionRuntime

        secrets = [key.secret for key in trigger.access_keys]
        stack = FunctionRuntime(
            stack, function=trigger.function, profile=trigger.profile, hidden_values=secrets
        )
    return stack


def load_app(ref: str) -> WSGIApplication:
    """Import ``"module:attr"`` (or ``module.attr``) from the working directory."""
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        app = import_string(ref)
    except ImportStringError as exc:
        raise ConfigError(f"{ref}: cannot import ({exc.exception})") from None
    if not callable(app):
        raise ConfigError(f"{ref}: is not a WSGI callable")
    return app  # type: ignore[no-any-return]
