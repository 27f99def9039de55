"""Prometheus metrics: what FC's console shows, counted in every process that serves or runs.

Off unless ``PROMETHEUS_MULTIPROC_DIR`` is set (``fc-wsgi serve --metrics-bind`` sets it): then
:func:`enable` imports ``prometheus_client`` (the ``fc-wsgi[metrics]`` extra) and every
gunicorn worker and ``fc-wsgi worker`` process writes its counts to its own files in that
directory, which one exposition endpoint sums (prometheus_client's multiprocess mode). Off,
nothing is imported and each hook below costs one test of a module global; the per-request
layer (:mod:`fc_wsgi.request_metrics`) is then not in the stack at all.

The per-request counter and duration histogram go through a :class:`~fc_wsgi.metrics_tally.Tally`
(plain memory, flushed to the files about every second and at exit), so the endpoint shows a
request up to about a second after it was answered; the other hooks are rare and write at once.

Label values are bounded: ``function`` is a configured name (one per process for a trigger,
each function's key in a project server, :class:`FunctionMetrics`), ``method`` one of FC's
seven (else ``OTHER``), ``status`` three digits, ``code`` an FC error code; never a path, a
token or a request id. A request's function is found in its environ (:data:`FUNCTION_KEY`),
an async run's from the dispatcher that runs it. The ground floor: it imports nothing from
fc_wsgi above ``common``.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .common import ALL_METHODS

if TYPE_CHECKING:
    from .config import TriggerConfig
    from .metrics_tally import Tally

log = logging.getLogger(__name__)

#: prometheus_client's own switch for its multiprocess mode: the directory of the value files.
MULTIPROC_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
#: The ``function`` label of a trigger's metrics (``--function-label``).
FUNCTION_ENV = "FC_WSGI_FUNCTION"
DEFAULT_FUNCTION = "default"
#: The environ key of the :class:`FunctionMetrics` a request is counted in
#: (:mod:`fc_wsgi.request_metrics` sets it).
FUNCTION_KEY = "fc_wsgi.metrics"
#: What to install when metrics are asked for and prometheus_client is missing.
METRICS_EXTRA = "pip install 'fc-wsgi[metrics]'"

#: Request latency buckets, in seconds: a hello answers in well under a millisecond.
DURATION_BUCKETS_SECONDS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)  # fmt: skip
#: Async start lateness buckets, in seconds: scheduler jitter up to a backlog of hours.
LATENESS_BUCKETS_SECONDS = (
    0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
)  # fmt: skip
#: The ``outcome`` values of ``fc_wsgi_async_runs_total``, by the state a run or claim wrote.
RUN_OUTCOMES = {
    "Succeeded": "succeeded",
    "Retrying": "retried",
    "Failed": "failed",
    "Expired": "expired",
    "Stopped": "stopped",
    "Invalid": "invalid",
    None: "lost",  # the lease was lost: another process owns the task now
}
_METHODS = frozenset(ALL_METHODS)


class Metrics:
    """The metric families of this process, and one :class:`FunctionMetrics` per ``function``
    label (:meth:`function`); ``default`` is the label of whatever names no function."""

    def __init__(self, function: str = DEFAULT_FUNCTION, registry: Any = None) -> None:
        from prometheus_client import REGISTRY, Counter, Histogram

        registry = REGISTRY if registry is None else registry
        self.requests = Counter(
            "fc_wsgi_requests", "HTTP requests answered, by FC error code ('' when none).",
            ["function", "method", "status", "code"], registry=registry,
        )  # fmt: skip
        self.duration = Histogram(
            "fc_wsgi_request_duration_seconds",
            "From the first layer in to the last byte out.",
            ["function"], buckets=DURATION_BUCKETS_SECONDS, registry=registry,
        )  # fmt: skip
        self.async_accepted = Counter(
            "fc_wsgi_async_accepted", "Async requests stored and answered 202.",
            ["function"], registry=registry,
        )  # fmt: skip
        self.async_runs = Counter(
            "fc_wsgi_async_runs", "Async runs (and claims that finished a task) by outcome.",
            ["function", "outcome"], registry=registry,
        )  # fmt: skip
        self.async_lateness = Histogram(
            "fc_wsgi_async_start_lateness_seconds", "An async run's start minus its due time.",
            ["function"], buckets=LATENESS_BUCKETS_SECONDS, registry=registry,
        )  # fmt: skip
        self.jwks_fetches = Counter(
            "fc_wsgi_jwks_fetches", "JWKS URL fetches by outcome (success, failure).",
            ["outcome"], registry=registry,
        )  # fmt: skip
        self.auth_refusals = Counter(
            "fc_wsgi_auth_refusals", "Requests AuthGate refused, by FC error code.",
            ["function", "code"], registry=registry,
        )  # fmt: skip
        self._functions: dict[str, FunctionMetrics] = {}
        self.default = self.function(function)

    def function(self, name: str) -> FunctionMetrics:
        """The metrics of the function labelled ``name``, made on first use."""
        found = self._functions.get(name)
        if found is None:  # two threads may both make one: the first stored wins
            found = self._functions.setdefault(name, FunctionMetrics(self, name))
        return found

    def flush(self) -> None:
        """Write the requests counted so far to the metric files (else done within
        :data:`~fc_wsgi.metrics_tally.FLUSH_INTERVAL_SECONDS`)."""
        for function in list(self._functions.values()):
            function.request_tally.flush()


class FunctionMetrics:
    """One ``function`` label's children of the families, and the tally of its requests."""

    def __init__(self, families: Metrics, name: str) -> None:
        from .metrics_tally import Tally

        self.name = name
        self._families = families
        self.duration = families.duration.labels(name)
        self.async_accepted = families.async_accepted.labels(name)
        self.async_lateness = families.async_lateness.labels(name)
        #: Each request's count and duration, in process memory until a flush (see
        #: :mod:`fc_wsgi.metrics_tally`): keys are (method, status, FC error code).
        self.request_tally: Tally[tuple[str, str, str]] = Tally(
            (*DURATION_BUCKETS_SECONDS, math.inf), self._apply_requests
        )
        # Children by label values: prometheus_client's labels() takes a lock and builds a key.
        self._request_children: dict[tuple[str, str, str], Any] = {}

    def count_auth_refusal(self, code: str) -> None:
        self._families.auth_refusals.labels(self.name, code).inc()

    def count_async_run(self, outcome: str) -> None:
        self._families.async_runs.labels(self.name, outcome).inc()

    def _apply_requests(
        self, counts: dict[tuple[str, str, str], int], buckets: list[int], sum_seconds: float
    ) -> None:
        for (method, status, code), n in counts.items():
            label = method if method in _METHODS else "OTHER"
            key = (label, status, code)
            child = self._request_children.get(key)
            if child is None:
                child = self._families.requests.labels(self.name, label, status, code)
                self._request_children[key] = child
            child.inc(n)
        # A histogram child has no public "add n observations": its per-bucket values
        # (not cumulative) and its sum, stable since prometheus_client 0.4, guarded by a test.
        duration = self.duration
        duration._sum.inc(sum_seconds)
        for value, n in zip(duration._buckets, buckets, strict=True):
            if n:
                value.inc(n)


_active: Metrics | None = None


def enable(function: str | None = None) -> Metrics | None:
    """The process's metrics when ``PROMETHEUS_MULTIPROC_DIR`` is set, made on first call;
    None (and nothing imported) otherwise. Raises ImportError naming the extra when the
    directory is set but prometheus_client is missing."""
    global _active
    if _active is not None or not os.environ.get(MULTIPROC_DIR_ENV):
        return _active
    try:
        import prometheus_client  # noqa: F401
    except ImportError as exc:
        raise ImportError(f"{MULTIPROC_DIR_ENV} is set: metrics need {METRICS_EXTRA}") from exc
    _active = Metrics(function or os.environ.get(FUNCTION_ENV) or DEFAULT_FUNCTION)
    return _active


def label_of(config: TriggerConfig) -> str:
    """The ``function`` label of a trigger's metrics: ``--function-label`` (its variable),
    else the function section's name, else ``default``."""
    name = config.function.name if config.function is not None else DEFAULT_FUNCTION
    return os.environ.get(FUNCTION_ENV) or name


def active() -> Metrics | None:
    """The metrics :func:`enable` made in this process, if any."""
    return _active


def flush() -> None:
    """Write this process's pending request counts now (gunicorn's ``worker_exit``)."""
    if _active is not None:
        _active.flush()


def _function(name: str | None) -> FunctionMetrics | None:
    """The metrics of the function labelled ``name`` (None: the process's default), if on."""
    if _active is None:
        return None
    return _active.default if name is None else _active.function(name)


def count_auth_refusal(code: str, environ: Mapping[str, Any] | None = None) -> None:
    """A request refused by AuthGate: counted for the function the request's ``environ``
    names (:data:`FUNCTION_KEY`), else the process's default."""
    if _active is not None:
        function = environ.get(FUNCTION_KEY) if environ is not None else None
        (function or _active.default).count_auth_refusal(code)


def count_jwks_fetch(ok: bool) -> None:
    if _active is not None:
        _active.jwks_fetches.labels("success" if ok else "failure").inc()


def count_async_accepted(function: str | None = None) -> None:
    measured = _function(function)
    if measured is not None:
        measured.async_accepted.inc()


def count_async_run(
    state: str | None, *, timed_out: bool = False, function: str | None = None
) -> None:
    """A run recorded ``state`` (None: its lease was lost), or a claim finished the task;
    a failed run that hit the function's timeout counts as ``timeout``."""
    measured = _function(function)
    if measured is not None:
        failed = state in ("Retrying", "Failed")
        outcome = "timeout" if timed_out and failed else RUN_OUTCOMES.get(state, "other")
        measured.count_async_run(outcome)


def observe_start_lateness(seconds: float, function: str | None = None) -> None:
    measured = _function(function)
    if measured is not None:
        measured.async_lateness.observe(max(0.0, seconds))
