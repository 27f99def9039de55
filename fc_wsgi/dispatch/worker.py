"""``fc-wsgi worker``: runs the async tasks of the Dramatiq backend, on as many hosts as needed.

The serving processes only store tasks (:mod:`fc_wsgi.dispatch.dramatiq_backend`); this runs
them with the SQLite backend's semantics (fc-spec.md section 11, DESIGN.md "Scale-out"): the
same environ and failure rules (:func:`~fc_wsgi.dispatch.runner.run_task`, through the same
HeaderFilter the dispatcher wraps), the same retry policy (``maxAsyncRetryAttempts`` re-runs
after 0.5, 1, 2, 4 ... s), the same event-age expiry, the same destinations and task states.

Dramatiq does the delivering, delaying and retrying, configured to agree with FC rather than
fought: ``Retries`` re-enqueues a failed run after exactly our backoff (the actor raises
``Retry(delay=...)``; its ``retry_when`` follows our decision) and dead-letters a task whose
retries are exhausted (``throws=TaskFailed``); ``AgeLimit`` drops messages older than
``maxAsyncEventAgeInSeconds`` (a middleware here records them ``Expired`` and notifies
``onFailure``); ``TimeLimit`` is unlimited, as the SQLite backend has no run-time limit.

At least once: a message is acknowledged only after its run is recorded. A worker killed with
SIGKILL stops sending heartbeats; after the broker's ``heartbeat_timeout`` Dramatiq requeues
its unacknowledged messages and another worker runs them again, ``fc.async_attempt`` one
higher. A task whose workers die ``maxAsyncRetryAttempts + 1`` times is ``Failed``.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.errors import Retry
from dramatiq.middleware import AgeLimit, Middleware, Retries, TimeLimit

from ..common import redact_url
from ..config import ConfigError, DestinationConfig, TriggerConfig
from .destinations import EVENT_AGE_EXCEEDED, RETRIES_EXHAUSTED, SUCCESS, Destinations, task_record
from .dispatcher import MAX_BACKOFF_SECONDS, RETRY_BASE_SECONDS
from .dramatiq_backend import (
    ACTOR_NAME,
    QUEUE_NAME,
    BrokerSettings,
    RedisTaskStore,
    make_broker,
)
from .journal import EXPIRED, FAILED, RETRYING, RUNNING, SUCCEEDED, TaskRecord
from .runner import Outcome, run_task

if TYPE_CHECKING:
    from multiprocessing.process import BaseProcess
    from wsgiref.types import WSGIApplication

    from dramatiq.broker import MessageProxy

log = logging.getLogger(__name__)

#: Dramatiq retries of a message whose bookkeeping (not the app) hit a Redis error, at least.
STORE_RETRIES = 5
#: How long a stopping worker lets running tasks finish, in seconds; then it exits and their
#: messages are requeued once its heartbeat times out.
GRACEFUL_TIMEOUT_SECONDS = 30.0
#: How often Dramatiq's threads poll when idle, in milliseconds (its default).
POLL_MILLISECONDS = 1000
#: A child process that dies sooner than this after starting is not restarted: a crash loop.
MIN_CHILD_LIFETIME_SECONDS = 5.0

_HOST = socket.gethostname()


class TaskFailed(Exception):
    """The run failed and no retry is left: Dramatiq dead-letters the message (``throws``)."""


class TaskRunner:
    """The actor's body: claim the task, run the app, record the result, notify, retry."""

    def __init__(
        self,
        app: WSGIApplication,
        store: RedisTaskStore,
        *,
        max_async_retry_attempts: int = 3,
        max_async_event_age_in_seconds: float = 86400,
        destination_config: DestinationConfig | None = None,
        fail_on_5xx: bool = True,
        retry_base_seconds: float = RETRY_BASE_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.app = app
        self.store = store
        self.max_async_retry_attempts = max_async_retry_attempts
        self.max_async_event_age_in_seconds = max_async_event_age_in_seconds
        self.fail_on_5xx = fail_on_5xx
        self._retry_base_seconds = retry_base_seconds
        self._clock = clock
        self._destinations = Destinations(destination_config)

    def perform(self, task_id: str, token: str) -> None:
        """Dramatiq's actor: one delivery of one task's message."""
        owner = f"{_HOST}:{os.getpid()}:{threading.get_native_id()}"
        task = self.store.claim(
            task_id,
            token,
            owner,
            now=self._clock(),
            max_age_seconds=self.max_async_event_age_in_seconds,
            max_attempts=self.max_async_retry_attempts + 1,
        )
        if task is None:
            return
        if task.state == EXPIRED:
            log.warning("request %s: async task %s expired, not run", task.request_id, task.id)
            self._notify(task, EVENT_AGE_EXCEEDED, None)
            return
        if task.state == FAILED:  # its workers died too often
            log.error("request %s: async task %s: %s", task.request_id, task.id, task.last_error)
            self._notify(task, RETRIES_EXHAUSTED, None)
            raise TaskFailed(task.last_error or "failed")
        if task.state != RUNNING:
            log.warning("request %s: async task %s is %s", task.request_id, task.id, task.state)
            return
        outcome = run_task(self.app, task, fail_on_5xx=self.fail_on_5xx)
        self._record(task, owner, outcome)

    def expire(self, task_id: str, token: str) -> None:
        """Dramatiq's AgeLimit dropped the message: record ``Expired`` and notify."""
        # A maximum age of 0 makes the claim expire the task if it may still run.
        task = self.store.claim(
            task_id, token, "age-limit", now=self._clock(), max_age_seconds=0, max_attempts=1
        )
        if task is not None and task.state == EXPIRED:
            log.warning("request %s: async task %s expired, not run", task.request_id, task.id)
            self._notify(task, EVENT_AGE_EXCEEDED, None)

    def _record(self, task: TaskRecord, owner: str, outcome: Outcome) -> None:
        now = self._clock()
        due = backoff = None
        if not outcome.failed:
            state = SUCCEEDED
        elif task.attempts <= self.max_async_retry_attempts:
            state = RETRYING
            backoff = min(self._retry_base_seconds * 2 ** (task.attempts - 1), MAX_BACKOFF_SECONDS)
            due = now + backoff
        else:
            state = FAILED
        written = self.store.finish(
            task.id, owner, state=state, now=now, status=outcome.status, error=outcome.error,
            due=due,
        )  # fmt: skip
        rid = task.request_id
        if written is None:
            log.warning("request %s: async task %s was taken over; result dropped", rid, task.id)
        elif written == RETRYING and backoff is not None:
            log.info(
                "request %s: async task %s attempt %d failed (%s); retry in %.1f s",
                rid,
                task.id,
                task.attempts,
                outcome.error,
                backoff,
            )
            raise Retry(f"attempt {task.attempts} failed", delay=round(backoff * 1000))
        elif written == SUCCEEDED:
            log.debug("request %s: async task %s succeeded", rid, task.id)
            self._notify(task, SUCCESS, outcome)
        elif written == FAILED:
            log.error(
                "request %s: async task %s failed after %d attempts: %s",
                rid,
                task.id,
                task.attempts,
                outcome.error,
            )
            self._notify(task, RETRIES_EXHAUSTED, outcome)
            raise TaskFailed(outcome.error or "failed")

    def _notify(self, task: TaskRecord, condition: str, outcome: Outcome | None) -> None:
        """Deliver the destination record on this thread (best effort, never raises), before
        the message is acknowledged."""
        destination = self._destinations.target_for(condition)
        if destination is None:
            return
        record = task_record(task, condition, outcome, self._clock())
        self._destinations.deliver(destination, record)


class ExpiryRecorder(Middleware):
    """Records the tasks Dramatiq's AgeLimit skipped as ``Expired`` (FC's EventAgeExceeded)."""

    def __init__(self, runner: TaskRunner) -> None:
        self.runner = runner

    def after_skip_message(self, broker: dramatiq.Broker, message: MessageProxy) -> None:
        if message.actor_name != ACTOR_NAME or not message.failed:
            return
        try:
            self.runner.expire(*message.args)
        except Exception:  # a Redis error: the record keeps its state until it expires
            log.exception("async task %s: expiry not recorded", message.args[:1])


def build_worker_broker(app: WSGIApplication, config: TriggerConfig) -> RedisBroker:
    """The broker with Dramatiq's middleware set to FC's policy, and the task actor on it."""
    async_ = config.async_
    settings = BrokerSettings.from_url(async_.broker_url)
    max_retries = async_.max_async_retry_attempts

    def retry_when(retries: int, exc: BaseException) -> bool:
        # Retry is our own decision (attempts left, backoff computed). Anything else came from
        # the bookkeeping (Redis trouble): the task re-runs, a few times at least.
        return isinstance(exc, Retry) or retries < max(max_retries, STORE_RETRIES)

    broker = make_broker(
        settings,
        middleware=[
            AgeLimit(max_age=async_.max_async_event_age_in_seconds * 1000),
            TimeLimit(time_limit=float("inf")),
            Retries(
                max_retries=max_retries,
                min_backoff=round(RETRY_BASE_SECONDS * 1000),
                max_backoff=round(MAX_BACKOFF_SECONDS * 1000),
                retry_when=retry_when,
            ),
        ],
    )
    store = RedisTaskStore(
        broker.client,
        namespace=settings.namespace,
        max_age_seconds=async_.max_async_event_age_in_seconds,
        retention_seconds=async_.retention_seconds,
    )
    runner = TaskRunner(
        app,
        store,
        max_async_retry_attempts=max_retries,
        max_async_event_age_in_seconds=async_.max_async_event_age_in_seconds,
        destination_config=async_.destination_config,
        fail_on_5xx=async_.fail_on_5xx,
    )
    broker.add_middleware(ExpiryRecorder(runner))
    dramatiq.Actor(
        runner.perform,
        broker=broker,
        actor_name=ACTOR_NAME,
        queue_name=QUEUE_NAME,
        priority=0,
        options={"throws": (TaskFailed,)},
    )
    return broker


def task_app(app_ref: str, config: TriggerConfig) -> WSGIApplication:
    """The app as the dispatcher runs it: inside HeaderFilter, as in ``make_trigger_app``."""
    from ..factory import load_app
    from ..headers import HeaderFilter

    return HeaderFilter(
        load_app(app_ref),
        max_response_header_bytes=config.limits.max_response_header_bytes,
        default_domain=config.default_domain,
        profile=config.profile,
    )


def run_worker(app_ref: str, config: TriggerConfig, processes: int = 1, threads: int = 4) -> int:
    """``fc-wsgi worker``: ``processes`` OS processes of ``threads`` Dramatiq worker threads
    each, until SIGTERM or SIGINT. Returns the exit status."""
    if config.async_.backend != "dramatiq":
        raise ConfigError(
            "async.backend: fc-wsgi worker runs the dramatiq backend's tasks; "
            "with sqlite, fc-wsgi serve runs them"
        )
    if processes < 1 or threads < 1:
        raise ConfigError("--processes and --threads must be at least 1")
    BrokerSettings.from_url(config.async_.broker_url)  # a bad URL: exit 2 here, not per child
    task_app(app_ref, config)  # an import error: exit 2 here, not in every child
    _configure_logging()
    if processes == 1:
        return _work(app_ref, config, threads)
    return _supervise(app_ref, config, processes, threads)


def _work(app_ref: str, config: TriggerConfig, threads: int) -> int:
    """One worker process: Dramatiq's Worker in-process until a stop signal."""
    _configure_logging()
    broker = build_worker_broker(task_app(app_ref, config), config)
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


def _child(app_ref: str, config: TriggerConfig, threads: int) -> None:
    raise SystemExit(_work(app_ref, config, threads))


def _supervise(app_ref: str, config: TriggerConfig, processes: int, threads: int) -> int:
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


def _configure_logging() -> None:
    if not logging.getLogger().handlers:
        from ..serve import LOG_FORMAT

        logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)


__all__ = ["TaskFailed", "TaskRunner", "build_worker_broker", "run_worker", "task_app"]
