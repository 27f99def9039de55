"""The Dramatiq actor that runs the async tasks of the Dramatiq backend, in ``fc-wsgi worker``.

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
SIGKILL stops sending heartbeats; after the broker's ``heartbeat_timeout`` (15 s) the next
maintenance pass of any live or restarted worker (:mod:`.dramatiq_upkeep`, every 5 s and at
boot) requeues its unacknowledged messages, running and prefetched, and another worker runs
them again, ``fc.async_attempt`` one higher for the one that was running. A task whose
workers die ``maxAsyncRetryAttempts + 1`` times is ``Failed``.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from typing import TYPE_CHECKING

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.errors import Retry
from dramatiq.middleware import AgeLimit, Middleware, Retries, TimeLimit

from .. import metrics
from ..common import Clock
from .destinations import Destinations, task_record
from .dramatiq_backend import ACTOR_NAME, QUEUE_NAME, BrokerSettings, RedisTaskStore, make_broker
from .dramatiq_upkeep import Upkeep
from .policy import (
    MAX_BACKOFF_SECONDS,
    RETRY_BASE_SECONDS,
    RetryPolicy,
    claimed_condition,
    recorded_condition,
)
from .runner import Outcome, run_task
from .tasks import FAILED, RETRYING, RUNNING, TaskRecord

if TYPE_CHECKING:
    from wsgiref.types import WSGIApplication

    from dramatiq.broker import MessageProxy

    from ..config import DestinationConfig, TriggerConfig

log = logging.getLogger(__name__)

#: Dramatiq retries of a message whose bookkeeping (not the app) hit a Redis error, at least.
STORE_RETRIES = 5

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
        clock: Clock = time.time,
    ) -> None:
        self.app = app
        self.store = store
        self.policy = RetryPolicy(max_async_retry_attempts, retry_base_seconds)
        self.max_async_event_age_in_seconds = max_async_event_age_in_seconds
        self.fail_on_5xx = fail_on_5xx
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
            max_attempts=self.policy.max_attempts,
        )
        if task is None:
            return
        if task.state != RUNNING:
            self._notify(task, claimed_condition(task), None)
            if task.state == FAILED:  # its workers died too often: dead-letter the message
                raise TaskFailed(task.last_error or "failed")
            return
        metrics.observe_start_lateness((task.started or task.due) - task.due)
        outcome = run_task(self.app, task, fail_on_5xx=self.fail_on_5xx)
        self._record(task, owner, outcome)

    def expire(self, task_id: str, token: str) -> None:
        """Dramatiq's AgeLimit dropped the message: record ``Expired`` and notify."""
        # A maximum age of 0 makes the claim expire the task if it may still run.
        task = self.store.claim(
            task_id, token, "age-limit", now=self._clock(), max_age_seconds=0, max_attempts=1
        )
        if task is not None and task.state != RUNNING:
            self._notify(task, claimed_condition(task), None)

    def _record(self, task: TaskRecord, owner: str, outcome: Outcome) -> None:
        now = self._clock()
        state, backoff = self.policy.judge(task.attempts, outcome)
        written = self.store.finish(
            task.id, owner, state=state, now=now, status=outcome.status, error=outcome.error,
            due=None if backoff is None else now + backoff,
        )  # fmt: skip
        self._notify(task, recorded_condition(task, written, outcome, backoff), outcome)
        if written == RETRYING and backoff is not None:
            raise Retry(f"attempt {task.attempts} failed", delay=round(backoff * 1000))
        if written == FAILED:
            raise TaskFailed(outcome.error or "failed")

    def _notify(self, task: TaskRecord, condition: str | None, outcome: Outcome | None) -> None:
        """Deliver the destination record on this thread (best effort, never raises), before
        the message is acknowledged."""
        destination = None if condition is None else self._destinations.target_for(condition)
        if condition is None or destination is None:
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
    broker.add_middleware(Upkeep(QUEUE_NAME))
    dramatiq.Actor(
        runner.perform,
        broker=broker,
        actor_name=ACTOR_NAME,
        queue_name=QUEUE_NAME,
        priority=0,
        options={"throws": (TaskFailed,)},
    )
    return broker


__all__ = ["ExpiryRecorder", "TaskFailed", "TaskRunner", "build_worker_broker"]
