"""Serving a trigger app under gunicorn, in-process (``fc-wsgi serve``) or as plain gunicorn.

gunicorn answers some oversized requests itself (request line over ``limit_request_line``,
one header over ``limit_request_field_size``) before the app is called, with its own plain
400. So that FC's answers reach the client, :data:`GUNICORN_DEFAULTS` raises those limits
above FC's. Under plain ``gunicorn 'fc_wsgi.serve:app_from_env()'`` gunicorn's own limits
come first unless the same options are given on its command line, and
``-c python:fc_wsgi.serve`` installs the worker hooks that start and drain the async scheduler,
the access-log format with the request id and FC error code, and, when
``FC_WSGI_METRICS_BIND`` and ``PROMETHEUS_MULTIPROC_DIR`` are set, the metrics endpoint in
the master (README, "Observe").
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from gunicorn.app.base import BaseApplication

from .access_log import ACCESS_LOG_FORMAT
from .config import ConfigError, TriggerConfig, load_config
from .dispatch import drain_all, start_all
from .factory import DEFAULT_TRIGGER, make_trigger_app
from .logs import configure_logging
from .metrics import MULTIPROC_DIR_ENV
from .metrics_server import METRICS_BIND_ENV, mark_dead, start_endpoint

if TYPE_CHECKING:
    from wsgiref.types import WSGIApplication

#: gunicorn's hard ceiling for a request line (method + URI + version).
GUNICORN_MAX_REQUEST_LINE = 8190


def gunicorn_options(config: TriggerConfig, **overrides: Any) -> dict[str, Any]:
    """gunicorn settings for ``config``: our defaults, its limits raised above FC's."""
    limits = config.limits
    options: dict[str, Any] = {
        "bind": "127.0.0.1:9000",
        "workers": 1,
        # Explicit numbers: gunicorn reads 0 as its default of 8190 for a field, not unlimited.
        "limit_request_line": GUNICORN_MAX_REQUEST_LINE,
        "limit_request_field_size": 2 * limits.max_header_bytes + 1024,
        "limit_request_fields": 1000,
        "post_worker_init": post_worker_init,
        "worker_exit": worker_exit,
        "when_ready": when_ready,
        "child_exit": child_exit,
        "logger_class": logger_class,
        "access_log_format": access_log_format,
    }
    options.update({k: v for k, v in overrides.items() if v is not None})
    if options.get("threads", 1) > 1 and "worker_class" not in overrides:
        options["worker_class"] = "gthread"
    return options


class TriggerServer(BaseApplication):  # type: ignore[misc]
    """``fc-wsgi serve``: gunicorn in-process, configured from our options, not its argv."""

    def __init__(self, app_ref: str, config: TriggerConfig, options: Mapping[str, Any]) -> None:
        self._app_ref, self._config, self._options = app_ref, config, dict(options)
        super().__init__()  # calls load_config(): set attributes first

    @property
    def trigger(self) -> TriggerConfig:
        """The trigger config this server serves (read by the master's hooks)."""
        return self._config

    def load_config(self) -> None:
        if "control_socket_disable" in self.cfg.settings:
            # gunicorn >= 25.1 opens one control socket per user home: two servers collide.
            self.cfg.set("control_socket_disable", True)
        for key, value in self._options.items():
            if key not in self.cfg.settings:
                raise ConfigError(f"unknown gunicorn setting {key!r}")
            self.cfg.set(key, value)

    def load(self) -> WSGIApplication:
        # Runs in each worker after fork (once in the master with --preload).
        configure_logging()
        return make_trigger_app(self._app_ref, self._config)


# gunicorn hooks, also found by name under `gunicorn -c python:fc_wsgi.serve ...`.


def post_worker_init(worker: Any) -> None:
    """Start the async scheduler in each worker, so tasks a killed server left run at once."""
    start_all()


def worker_exit(server: Any, worker: Any) -> None:
    """Finish running async tasks, or release their leases, within the graceful timeout."""
    drain_all(max(1.0, worker.cfg.graceful_timeout - 1.0))


def when_ready(server: Any) -> None:
    """In the master, once listening: serve the metrics when ``--metrics-bind`` asked for it."""
    bind = os.environ.get(METRICS_BIND_ENV)
    if not bind or not os.environ.get(MULTIPROC_DIR_ENV):
        return
    app = getattr(server, "app", None)
    config = app.trigger if isinstance(app, TriggerServer) else _config_from_env()
    start_endpoint(bind, config.async_)


def child_exit(server: Any, worker: Any) -> None:
    """In the master, when a worker exited: fold its live metric files into the totals."""
    mark_dead(worker.pid)


#: gunicorn settings found by name under ``-c python:fc_wsgi.serve``.
logger_class = "fc_wsgi.access_log.AccessLogger"
access_log_format = ACCESS_LOG_FORMAT


def _config_from_env() -> TriggerConfig:
    path = os.environ.get("FC_WSGI_CONFIG")
    return load_config(path) if path else DEFAULT_TRIGGER


def app_from_env() -> WSGIApplication:
    """For plain gunicorn: ``FC_WSGI_APP=module:app FC_WSGI_CONFIG=trigger.json``."""
    app_ref = os.environ.get("FC_WSGI_APP")
    if not app_ref:
        raise ConfigError("FC_WSGI_APP: set it to the app to serve, as module:attr")
    return make_trigger_app(app_ref, os.environ.get("FC_WSGI_CONFIG") or None)
