"""``fc-wsgi worker``: the process that runs the Dramatiq backend's async tasks, on any host.

The serving processes only store tasks (:mod:`fc_wsgi.dispatch.dramatiq_backend`); this
process entry point runs them: ``--processes`` OS processes (spawned, supervised, replaced when
one dies) of Dramatiq worker threads, each consuming with the actor of
:mod:`fc_wsgi.dispatch.dramatiq_worker` over the app as :func:`~fc_wsgi.factory.make_task_app`
builds it. It sits beside ``serve.py``, above the library: signals, supervision and logging
are a process's business, not the task engine's.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
import time
from typing import TYPE_CHECKING

import dramatiq

from . import metrics
from .common import redact_url
from .config import ConfigError, TriggerConfig
from .dispatch.dramatiq_backend import QUEUE_NAME, BrokerSettings
from .dispatch.dramatiq_worker import build_worker_broker
from .factory import make_task_app
from .logs import configure_logging
from .metrics_server import mark_dead, start_endpoint
from .runtime import apply_process_environment

if TYPE_CHECKING:
    from multiprocessing.process import BaseProcess

log = logging.getLogger(__name__)

#: How long a stopping worker lets running tasks finish, in seconds; then it exits and their
#: messages are requeued once its heartbeat times out.
GRACEFUL_TIMEOUT_SECONDS = 30.0
#: How often Dramatiq's threads poll when idle, in milliseconds (its default).
POLL_MILLISECONDS = 1000
#: A child process that dies sooner than this after starting is not restarted: a crash loop.
MIN_CHILD_LIFETIME_SECONDS = 5.0


def run_worker(
    app_ref: str | None,
    config: TriggerConfig,
    processes: int = 1,
    threads: int = 4,
    *,
    metrics_bind: str | None = None,
) -> int:
    """``fc-wsgi worker``: ``processes`` OS processes of ``threads`` Dramatiq worker threads
    each, until SIGTERM or SIGINT. Returns the exit status. ``metrics_bind``: serve the
    metrics of every process (``PROMETHEUS_MULTIPROC_DIR`` set) there, from this one."""
    if config.async_.backend != "dramatiq":
        raise ConfigError(
            "async.backend: fc-wsgi worker runs the dramatiq backend's tasks; "
            "with sqlite, fc-wsgi serve runs them"
        )
    if processes < 1 or threads < 1:
        raise ConfigError("--processes and --threads must be at least 1")
    BrokerSettings.from_url(config.async_.broker_url)  # a bad URL: exit 2 here, not per child
    make_task_app(app_ref, config)  # an import error: exit 2 here, not in every child
    configure_logging()
    if metrics_bind:
        start_endpoint(metrics_bind, {metrics.label_of(config): config.async_})
    if processes == 1:
        return _work(app_ref, config, threads)
    return _supervise(app_ref, config, processes, threads)


def _work(app_ref: str | None, config: TriggerConfig, threads: int) -> int:
    """One worker process: Dramatiq's Worker in-process until a stop signal."""
    configure_logging()
    if config.function is not None:  # this process is the function's instance, as serve's are
        apply_process_environment(config.function, config.profile)
    metrics.enable(metrics.label_of(config))  # counts runs when PROMETHEUS_MULTIPROC_DIR is set
    broker = build_worker_broker(make_task_app(app_ref, config), config)
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    broker.emit_after("process_boot")
    worker = dramatiq.Worker(broker, worker_threads=threads, worker_timeout=POLL_MILLISECONDS)
    worker.start()
    log.info(
        "fc-wsgi worker %d: %d threads on %s, queue %s",
        os.getpid(),
        threads,
        redact_url(config.async_.broker_url),
        QUEUE_NAME,
    )
    while not stopping.wait(1.0):
        pass
    # Dramatiq stops its worker threads before its consumers, so heartbeats go on while
    # running tasks finish; prefetched messages are requeued at once.
    worker.stop(timeout=round(GRACEFUL_TIMEOUT_SECONDS * 1000))
    broker.close()
    log.info("fc-wsgi worker %d stopped", os.getpid())
    return 0


def _child(app_ref: str | None, config: TriggerConfig, threads: int) -> None:
    raise SystemExit(_work(app_ref, config, threads))


def _supervise(app_ref: str | None, config: TriggerConfig, processes: int, threads: int) -> int:
    """Start ``processes`` children (spawned: no threads or sockets inherited), pass stop
    signals on, and replace a child that dies unless it died at once (a crash loop)."""
    context = multiprocessing.get_context("spawn")
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())

    def start() -> tuple[BaseProcess, float]:
        child = context.Process(target=_child, args=(app_ref, config, threads), daemon=False)
        child.start()
        return child, time.monotonic()

    children = [start() for _ in range(processes)]
    status = 0
    while not stopping.wait(0.5):
        for i, (child, started) in enumerate(children):
            if child.is_alive():
                continue
            if time.monotonic() - started < MIN_CHILD_LIFETIME_SECONDS:
                log.error(
                    "worker process %d exited at once (%s): stopping", child.pid, child.exitcode
                )
                status = 1
                stopping.set()
                break
            log.warning("worker process %d died (%s): starting another", child.pid, child.exitcode)
            if child.pid is not None:
                mark_dead(child.pid)
            children[i] = start()
    for child, _ in children:
        if child.is_alive() and child.pid is not None:
            os.kill(child.pid, signal.SIGTERM)
    for child, _ in children:
        child.join(GRACEFUL_TIMEOUT_SECONDS + 5)
        if child.is_alive():
            child.kill()
            child.join()
        if child.exitcode not in (0, -signal.SIGTERM, None):
            status = status or 1
    return status
