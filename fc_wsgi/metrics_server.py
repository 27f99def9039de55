"""The metrics endpoint: every process's counts summed, and the async queue read at scrape time.

``fc-wsgi serve --metrics-bind HOST:PORT`` (and ``fc-wsgi worker --metrics-bind``) serve
Prometheus's text format on their own socket, never on the function's: a function keeps every
path it has. The endpoint runs in the process that outlives the others (gunicorn's master, the
worker supervisor), sums the value files all processes write to ``PROMETHEUS_MULTIPROC_DIR``
(prometheus_client's multiprocess mode) and adds ``fc_wsgi_async_tasks{function, state}`` read
from the task store when scraped (one ``GROUP BY`` over an index, or one Lua pass in Redis).
A fresh directory per server keeps an old server's counts out; the files of a worker that
exited are merged into the totals by :func:`mark_dead`, so its counts are not lost.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from .metrics import MULTIPROC_DIR_ENV

if TYPE_CHECKING:
    from .config import AsyncConfig

log = logging.getLogger(__name__)

#: Set by ``--metrics-bind``: where the server's master serves the endpoint (also read by the
#: gunicorn hooks under plain ``gunicorn -c python:fc_wsgi.serve``).
METRICS_BIND_ENV = "FC_WSGI_METRICS_BIND"


def parse_bind(text: str) -> tuple[str, int]:
    """``HOST:PORT`` → ``(host, port)``; ValueError naming the value."""
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"expected HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port)


def prepare_directory() -> tuple[str, bool]:
    """The multiprocess directory: the one in ``PROMETHEUS_MULTIPROC_DIR`` (yours, shared with
    ``fc-wsgi worker`` on this host), else a fresh one made here and set in the environment for
    the processes started after. Returns it and whether it was made here."""
    given = os.environ.get(MULTIPROC_DIR_ENV)
    if given:
        os.makedirs(given, exist_ok=True)
        return given, False
    made = tempfile.mkdtemp(prefix="fc-wsgi-metrics-")
    os.environ[MULTIPROC_DIR_ENV] = made
    return made, True


def remove_directory(path: str) -> None:
    shutil.rmtree(path, ignore_errors=True)


def start_endpoint(bind: str, tasks: Mapping[str, AsyncConfig] | None = None) -> Any:
    """Serve the summed metrics on ``bind`` from a daemon thread; ``tasks``: each function's
    task store by its label, read at scrape time. Returns the HTTP server."""
    from prometheus_client import CollectorRegistry, start_http_server
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    if tasks:
        registry.register(TaskGauge(tasks))
    host, port = parse_bind(bind)
    server, _thread = start_http_server(port, addr=host, registry=registry)
    log.info("metrics on http://%s:%d/metrics", host, port)
    return server


def mark_dead(pid: int) -> None:
    """A process exited: fold its live gauges away (its counters stay in the totals)."""
    if os.environ.get(MULTIPROC_DIR_ENV):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


class TaskGauge:
    """``fc_wsgi_async_tasks{function, state}``: each store's counts, read at each scrape."""

    def __init__(self, stores: Mapping[str, AsyncConfig]) -> None:
        self._configs = dict(stores)
        self._stores: dict[str, Any] = {}

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        from .dispatch.tasks import StoreError

        family = GaugeMetricFamily(
            "fc_wsgi_async_tasks", "Async tasks per FC state, read from the task store.",
            labels=["function", "state"],
        )  # fmt: skip
        for function in self._configs:
            try:
                counts = self._counts(function)
            except StoreError as exc:
                log.warning("fc_wsgi_async_tasks of %s not read: %s", function, exc)
                continue
            for state, count in counts.items():
                family.add_metric([function, state], count)
        yield family

    def _counts(self, function: str) -> dict[str, int]:
        from .dispatch.backend import open_backend
        from .dispatch.tasks import STATES

        config = self._configs[function]
        if config.backend == "sqlite" and not os.path.exists(config.journal):
            return dict.fromkeys(STATES, 0)  # no async request yet: create nothing
        store = self._stores.get(function)
        if store is None:
            store = self._stores[function] = open_backend(config)
        counts: dict[str, int] = store.counts()
        return counts
