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

With a ``function`` section (fc-spec-runtime.md 14-17) the server also: writes the function's
environment into each worker's ``os.environ`` before the handler loads; runs gthread workers
with ``instanceConcurrency`` threads plus :data:`SPARE_THREADS` (so that a request over the
cap is answered 429 at once instead of waiting for a thread); keeps gunicorn's ``timeout``
above the function's (a sync worker busy past it would be killed by gunicorn, not answered);
and shares the concurrency count between workers (slots made before fork, a dead worker's
slots released in ``child_exit``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from gunicorn.app.base import BaseApplication

from .access_log import ACCESS_LOG_FORMAT
from .config import AsyncConfig, ConfigError, TriggerConfig, load_config
from .dispatch import drain_all, start_all
from .factory import DEFAULT_TRIGGER, make_project_app, make_trigger_app, project_triggers
from .logs import configure_logging
from .metrics import MULTIPROC_DIR_ENV, label_of
from .metrics import flush as flush_metrics
from .metrics_server import METRICS_BIND_ENV, mark_dead, start_endpoint
from .runtime import apply_process_environment, recycle, slots

if TYPE_CHECKING:
    from wsgiref.types import WSGIApplication

    from .function_config import FunctionConfig
    from .project import Project

#: gunicorn's hard ceiling for a request line (method + URI + version).
GUNICORN_MAX_REQUEST_LINE = 8190
#: Threads beyond instanceConcurrency: they only answer the requests over the cap (429).
SPARE_THREADS = 4
#: Seconds gunicorn's own worker timeout stays above the function's timeout + initializer's.
TIMEOUT_MARGIN_SECONDS = 30


def gunicorn_options(config: TriggerConfig, **overrides: Any) -> dict[str, Any]:
    """gunicorn settings for ``config``: our defaults, its limits raised above FC's."""
    return _options([config], overrides)


def project_options(triggers: Sequence[TriggerConfig], **overrides: Any) -> dict[str, Any]:
    """gunicorn settings for a project's functions: room for the largest of each need."""
    return _options(triggers, overrides)


def _options(triggers: Sequence[TriggerConfig], overrides: Mapping[str, Any]) -> dict[str, Any]:
    header_bytes = max((t.limits.max_header_bytes for t in triggers), default=8192)
    options: dict[str, Any] = {
        "bind": "127.0.0.1:9000",
        "workers": 1,
        # Explicit numbers: gunicorn reads 0 as its default of 8190 for a field, not unlimited.
        "limit_request_line": GUNICORN_MAX_REQUEST_LINE,
        "limit_request_field_size": 2 * header_bytes + 1024,
        "limit_request_fields": 1000,
        "post_worker_init": post_worker_init,
        "worker_exit": worker_exit,
        "pre_fork": pre_fork,
        "when_ready": when_ready,
        "child_exit": child_exit,
        "logger_class": logger_class,
        "access_log_format": access_log_format,
    }
    functions = [t.function for t in triggers if t.function is not None]
    if functions:
        concurrency = max(f.instance_concurrency for f in functions)
        options["threads"] = concurrency + SPARE_THREADS
        options["timeout"] = TIMEOUT_MARGIN_SECONDS + max(
            f.timeout + f.init_timeout_seconds for f in functions
        )
    options.update({k: v for k, v in overrides.items() if v is not None})
    if options.get("threads", 1) > 1 and "worker_class" not in overrides:
        options["worker_class"] = "gthread"
    return options


class _Server(BaseApplication):  # type: ignore[misc]
    """gunicorn in-process, configured from our options, not its argv."""

    def __init__(self, options: Mapping[str, Any], functions: Sequence[FunctionConfig]) -> None:
        self._options = dict(options)
        super().__init__()  # calls load_config(): set attributes first
        workers = int(self.cfg.workers)
        for function in functions:  # in the master, before fork: the count all workers share
            capacity = (function.max_instances or workers) * function.instance_concurrency
            slots.share_slots(function.name, capacity, rows=2 * workers + 2)

    def task_stores(self) -> dict[str, AsyncConfig]:
        """Where each served function keeps its async tasks, by its metrics label (read by the
        master's metrics endpoint)."""
        raise NotImplementedError

    def load_config(self) -> None:
        if "control_socket_disable" in self.cfg.settings:
            # gunicorn >= 25.1 opens one control socket per user home: two servers collide.
            self.cfg.set("control_socket_disable", True)
        for key, value in self._options.items():
            if key not in self.cfg.settings:
                raise ConfigError(f"unknown gunicorn setting {key!r}")
            self.cfg.set(key, value)


class TriggerServer(_Server):
    """``fc-wsgi serve [MODULE:APP] --config FILE``: one trigger."""

    def __init__(
        self, app_ref: str | None, config: TriggerConfig, options: Mapping[str, Any]
    ) -> None:
        self._app_ref, self._config = app_ref, config
        super().__init__(options, [config.function] if config.function is not None else [])

    def task_stores(self) -> dict[str, AsyncConfig]:
        return {label_of(self._config): self._config.async_}

    def load(self) -> WSGIApplication:
        # Runs in each worker after fork (once in the master with --preload).
        configure_logging()
        if self._config.function is not None:
            apply_process_environment(self._config.function, self._config.profile)
        return make_trigger_app(self._app_ref, self._config)


class ProjectServer(_Server):
    """``fc-wsgi serve s.yaml``: every function of a project behind one router.

    ``os.environ`` is left alone: each function's variables reach only its own requests.
    """

    def __init__(
        self, project: Project, triggers: Sequence[TriggerConfig], options: Mapping[str, Any]
    ) -> None:
        self._project = project
        super().__init__(options, [t.function for t in triggers if t.function is not None])

    def task_stores(self) -> dict[str, AsyncConfig]:
        return {key: t.async_ for key, t in project_triggers(self._project).items()}

    def load(self) -> WSGIApplication:
        configure_logging()
        return make_project_app(self._project)


# gunicorn hooks, also found by name under `gunicorn -c python:fc_wsgi.serve ...`.


def post_worker_init(worker: Any) -> None:
    """Start the async scheduler in each worker, so tasks a killed server left run at once;
    let the function runtime count this worker's slots and replace it after a timeout."""
    slots.in_worker(worker)
    recycle.bind_worker(worker)
    start_all()


def pre_fork(server: Any, worker: Any) -> None:
    """In the master: the worker about to be forked gets its rows in the shared slot counts."""
    slots.before_fork(worker)


def child_exit(server: Any, worker: Any) -> None:
    """In the master: the slots a dead (or killed) worker held are free again, and its live
    metric files are folded into the totals."""
    slots.after_exit(worker)
    mark_dead(worker.pid)


def worker_exit(server: Any, worker: Any) -> None:
    """Write the worker's last request counts, then finish running async tasks (or release
    their leases) within the graceful timeout."""
    flush_metrics()
    drain_all(max(1.0, worker.cfg.graceful_timeout - 1.0))


def when_ready(server: Any) -> None:
    """In the master, once listening: serve the metrics when ``--metrics-bind`` asked for it."""
    bind = os.environ.get(METRICS_BIND_ENV)
    if not bind or not os.environ.get(MULTIPROC_DIR_ENV):
        return
    app = getattr(server, "app", None)
    if isinstance(app, _Server):
        stores = app.task_stores()
    else:  # plain gunicorn -c python:fc_wsgi.serve
        config = _config_from_env()
        stores = {label_of(config): config.async_}
    start_endpoint(bind, stores)


#: gunicorn settings found by name under ``-c python:fc_wsgi.serve``.
logger_class = "fc_wsgi.access_log.AccessLogger"
access_log_format = ACCESS_LOG_FORMAT


def _config_from_env() -> TriggerConfig:
    path = os.environ.get("FC_WSGI_CONFIG")
    return load_config(path) if path else DEFAULT_TRIGGER


def app_from_env() -> WSGIApplication:
    """For plain gunicorn: ``FC_WSGI_APP=module:app FC_WSGI_CONFIG=trigger.json`` (the app may
    be left out when the config's ``function`` section names the handler)."""
    app_ref = os.environ.get("FC_WSGI_APP") or None
    config_path = os.environ.get("FC_WSGI_CONFIG") or None
    config = load_config(config_path) if config_path else None
    if config is not None and config.function is not None:
        apply_process_environment(config.function, config.profile)
    elif not app_ref:
        raise ConfigError("FC_WSGI_APP: set it to the app to serve, as module:attr")
    return make_trigger_app(app_ref, config)
