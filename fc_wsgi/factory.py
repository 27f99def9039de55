"""make_trigger_app: the one place that knows the order of the layers.

```
CorsDefaults → LimitGuard → AuthGate → AsyncDispatcher → HeaderFilter → app
```
CORS is outermost so that every answer, errors included, carries CORS headers; limits come
before authentication so that an oversized request costs no signature check; the header
filter is innermost so that auth and async read their ``x-fc-*`` headers before the app is
shielded from them (DESIGN.md, "Request flow"). A layer with nothing to do for this config is
left out rather than called on every request.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

from werkzeug.utils import ImportStringError, import_string

from .auth.gate import AuthGate
from .config import ConfigError, TriggerConfig, load_config
from .cors import CorsDefaults
from .dispatch import AsyncDispatcher
from .dispatch.backend import open_backend
from .headers import HeaderFilter
from .limits import LimitGuard

if TYPE_CHECKING:
    from wsgiref.types import WSGIApplication

    from .config import ConfigSource

#: The trigger used when no config is given: anonymous, every method (as `fc-wsgi serve`).
DEFAULT_TRIGGER = TriggerConfig(auth_type="anonymous")


def make_trigger_app(
    app: WSGIApplication | str, config: ConfigSource | None = None
) -> WSGIApplication:
    """Wrap ``app`` (a WSGI callable or ``"module:attr"``) in FC's HTTP-trigger behaviour.

    ``config`` is a JSON file path, a mapping, or a loaded :class:`TriggerConfig`; without
    one the trigger is anonymous and allows every method.
    """
    trigger = DEFAULT_TRIGGER if config is None else load_config(config)
    wsgi_app = load_app(app) if isinstance(app, str) else app
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
    return stack


def make_task_app(app: WSGIApplication | str, config: ConfigSource) -> WSGIApplication:
    """The app as async tasks run it in ``fc-wsgi worker``: the layers inside AsyncDispatcher
    (HeaderFilter), exactly as :func:`make_trigger_app` stacks them for the local executor."""
    trigger = load_config(config)
    wsgi_app = load_app(app) if isinstance(app, str) else app
    return _inner_layers(wsgi_app, trigger)


def _inner_layers(app: WSGIApplication, trigger: TriggerConfig) -> WSGIApplication:
    """What runs inside AsyncDispatcher: the same for a request served now and a task run later."""
    return HeaderFilter(
        app,
        max_response_header_bytes=trigger.limits.max_response_header_bytes,
        default_domain=trigger.default_domain,
        profile=trigger.profile,
    )


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
