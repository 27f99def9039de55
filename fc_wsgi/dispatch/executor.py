"""The local executor: runs the SQLite journal's due tasks in the serving process.

The request path (:class:`~fc_wsgi.dispatch.dispatcher.AsyncDispatcher`) only stores a task
and answers 202; this runs it later, as FC does after ``x-fc-async-delay`` (fc-spec.md
section 11). A :class:`~fc_wsgi.dispatch.scheduler.Scheduler` thread feeds a bounded pool;
each run claims its task with a lease in the journal, drives the app (the runner), and records
the result under :class:`~fc_wsgi.dispatch.policy.RetryPolicy`.

* At least once, never lost. A run holds a lease of ``lease_seconds`` (30 s), renewed every
  third of that by the scheduler thread while the app runs (a heartbeat), so a long task keeps
  its lease. The lease names its process (host, pid, start time: :mod:`.owners`): when that
  process is killed with SIGKILL, the next rescan of any process of the same host sharing the
  journal sees it dead and runs the task again within about a second (other hosts: once the
  lease expires), with ``environ["fc.async_attempt"]`` one higher.
* Tasks accepted by other processes sharing the journal, and dead owners' tasks, are found by a
  journal rescan every ``rescan_interval_seconds`` (1 s, at most a third of the lease); a local
  enqueue wakes the scheduler at once (:meth:`push`). Finished tasks older than the retention
  time are pruned hourly.
* Threads start on :meth:`start`, in the process that runs tasks (after gunicorn's fork).
  :meth:`close` starts nothing new, lets running tasks finish within the timeout and releases
  the leases of those that do not, so they run again elsewhere or after a restart.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from typing import TYPE_CHECKING

from .. import metrics
from ..common import Clock
from .destinations import Destinations, task_record
from .owners import owner_prefix
from .policy import RetryPolicy, claimed_condition, recorded_condition
from .runner import Outcome, run_task
from .scheduler import Scheduler
from .tasks import RETRYING, RUNNING, StoreError, TaskRecord

if TYPE_CHECKING:
    from wsgiref.types import WSGIApplication

    from .journal import Journal

log = logging.getLogger(__name__)

#: How often finished tasks older than the retention time are deleted, in seconds.
PRUNE_INTERVAL_SECONDS = 3600.0
#: Most tasks one journal rescan reads; a full page is followed by the next at once.
RESCAN_PAGE = 100
#: Threads delivering destination records, per process.
DESTINATION_WORKERS = 2

_CLAIMS = itertools.count(1)  # makes every lease owner unique within a process


class LocalExecutor:
    """Claims, runs and records the journal's due tasks on a pool in this process."""

    def __init__(
        self,
        app: WSGIApplication,
        journal: Journal,
        *,
        policy: RetryPolicy,
        destinations: Destinations,
        workers: int,
        fail_on_5xx: bool,
        max_age_seconds: float,
        retention_seconds: float,
        lease_seconds: float,
        rescan_interval_seconds: float,
        clock: Clock,
        metrics_label: str | None = None,
    ) -> None:
        self.app, self.journal, self.workers = app, journal, workers
        self._metrics_label = metrics_label  # the runs' function label (None: the process's)
        self._policy = policy
        self._destinations = destinations
        self._fail_on_5xx = fail_on_5xx
        self._max_age_seconds = max_age_seconds
        self._retention_seconds = retention_seconds
        self._clock = clock
        self._lease_seconds = lease_seconds
        self._heartbeat_seconds = lease_seconds / 3
        # The heartbeat rides on the rescan: wake at least three times per lease.
        self._rescan_interval_seconds = min(rescan_interval_seconds, self._heartbeat_seconds)
        self._rescan_page = max(RESCAN_PAGE, 4 * workers)
        # Per-process run state, (re)made by start(); guarded by _lock.
        self._lock = threading.Lock()
        self._pid = 0
        self._owner_prefix = ""
        self._scheduler: Scheduler | None = None
        self._delivery: ThreadPoolExecutor | None = None
        self._deliveries: set[Future[bool]] = set()
        self._running: dict[str, str] = {}  # task id -> lease owner, for the heartbeat
        self._released: set[str] = set()  # lease owners given back by close()
        self._next_heartbeat = 0.0
        self._next_prune = 0.0

    @property
    def started_here(self) -> bool:
        """Whether this process runs the threads (not a parent before a fork)."""
        return self._pid == os.getpid() and self._scheduler is not None

    def start(self) -> None:
        """Start the scheduler and pool in this process, unless they already run."""
        with self._lock:
            pid = os.getpid()
            if self._pid == pid and self._scheduler is not None:
                return
            if self._pid != pid:  # a fresh process, or a fork: the parent's threads are not here
                self._running, self._released, self._deliveries = {}, set(), set()
            self._pid = pid
            self._owner_prefix = owner_prefix(pid)
            self._next_heartbeat = self._next_prune = 0.0
            if self._destinations:
                self._delivery = ThreadPoolExecutor(
                    DESTINATION_WORKERS, thread_name_prefix="fc-wsgi-destination"
                )
            self._scheduler = Scheduler(
                self._run_task,
                workers=self.workers,
                rescan=self._rescan,
                rescan_interval_seconds=self._rescan_interval_seconds,
                clock=self._clock,
                rescan_page=self._rescan_page,
            )
            self._scheduler.start()
        log.info("async executor started: %r, %d workers", self.journal, self.workers)

    def close(self, timeout: float) -> bool:
        """Start no task, give running ones ``timeout`` seconds, release the leases of those
        still running. True when nothing had to be released."""
        deadline = time.monotonic() + timeout
        with self._lock:
            scheduler, delivery = self._scheduler, self._delivery
            self._scheduler = self._delivery = None
            if self._pid != os.getpid():  # started before a fork: those threads are not here
                scheduler = delivery = None
        finished = True
        if scheduler is not None:
            finished = scheduler.stop(timeout, on_wait=lambda: self._heartbeat(self._clock()))
        if not finished:
            self._release_running()
        if delivery is not None:
            pending = list(self._deliveries)
            left = max(0.0, deadline - time.monotonic())
            done, not_done = wait_futures(pending, timeout=left) if pending else ((), ())
            if not_done:
                log.warning("%d destination deliveries dropped at shutdown", len(not_done))
            delivery.shutdown(wait=not not_done, cancel_futures=True)
        return finished

    def push(self, task_id: str, due: float) -> None:
        """Run ``task_id`` at ``due``: a task this process just stored or rescheduled."""
        if self._pid != os.getpid():
            self.start()
        scheduler = self._scheduler
        if scheduler is not None:  # closed: the journal keeps it for a restart
            scheduler.push(task_id, due)

    def wake(self) -> None:
        """Look at the queue now (for tests that move an injected clock)."""
        scheduler = self._scheduler
        if scheduler is not None:
            scheduler.wake()

    def _release_running(self) -> None:
        for task_id, owner in list(self._running.items()):
            self._released.add(owner)
            try:
                released = self.journal.release(task_id, owner, now=self._clock())
            except StoreError as exc:
                log.error("async task %s: lease not released: %s", task_id, exc)
                continue
            if released:
                log.warning("async task %s still running at shutdown: lease released", task_id)

    # -- the scheduler thread ----------------------------------------------------------------

    def _rescan(self, now: float) -> list[tuple[str, float]]:
        """Heartbeat, housekeeping, then the journal's tasks due before the next rescan."""
        self._heartbeat(now)
        mono = time.monotonic()
        if mono >= self._next_prune:
            self._next_prune = mono + PRUNE_INTERVAL_SECONDS
            try:
                pruned = self.journal.prune(before=now - self._retention_seconds)
            except StoreError as exc:
                log.warning("async journal prune failed: %s", exc)
            else:
                if pruned:
                    log.info("pruned %d finished async tasks", pruned)
        return self.journal.due_tasks(
            now=now, horizon_seconds=self._rescan_interval_seconds, limit=self._rescan_page
        )

    def _heartbeat(self, now: float) -> None:
        mono = time.monotonic()
        if not self._running or mono < self._next_heartbeat:
            return
        self._next_heartbeat = mono + self._heartbeat_seconds
        try:
            self.journal.renew(dict(self._running), lease_expiry=now + self._lease_seconds)
        except StoreError as exc:
            log.warning("async lease heartbeat failed: %s", exc)

    # -- a pool thread -------------------------------------------------------------------------

    def _run_task(self, task_id: str) -> None:
        owner = f"{self._owner_prefix}:{next(_CLAIMS)}"
        try:
            task = self.journal.claim(
                task_id,
                owner,
                now=self._clock(),
                lease_seconds=self._lease_seconds,
                max_age_seconds=self._max_age_seconds,
                max_attempts=self._policy.max_attempts,
            )
        except StoreError as exc:
            log.warning("async task %s: claim failed, a later rescan retries: %s", task_id, exc)
            return
        if task is None:  # not due any more: another process took it, or it was retried
            return
        if task.state != RUNNING:
            self._notify(task, claimed_condition(task, function=self._metrics_label), None)
            return
        self._running[task.id] = owner
        metrics.observe_start_lateness((task.started or task.due) - task.due, self._metrics_label)
        try:
            outcome = run_task(self.app, task, fail_on_5xx=self._fail_on_5xx)
        finally:
            self._running.pop(task.id, None)
        self._record(task, owner, outcome)

    def _record(self, task: TaskRecord, owner: str, outcome: Outcome) -> None:
        if owner in self._released:  # close() gave the lease back: another run owns it now
            log.warning("request %s: result of async task %s dropped", task.request_id, task.id)
            return
        now = self._clock()
        state, backoff = self._policy.judge(task.attempts, outcome)
        due = None if backoff is None else now + backoff
        try:
            written = self.journal.finish(
                task.id, owner, state=state, now=now, status=outcome.status,
                error=outcome.error, due=due,
            )  # fmt: skip
        except StoreError as exc:
            log.error(
                "request %s: async task %s result not recorded (lease will expire, task"
                " re-runs): %s",
                task.request_id, task.id, exc,
            )  # fmt: skip
            return
        if written == RETRYING and due is not None:
            self.push(task.id, due)
        condition = recorded_condition(
            task, written, outcome, backoff, function=self._metrics_label
        )
        self._notify(task, condition, outcome)

    def _notify(self, task: TaskRecord, condition: str | None, outcome: Outcome | None) -> None:
        destination = None if condition is None else self._destinations.target_for(condition)
        delivery = self._delivery
        if condition is None or destination is None or delivery is None:
            return
        record = task_record(task, condition, outcome, self._clock())
        try:
            future = delivery.submit(self._destinations.deliver, destination, record)
        except RuntimeError:  # shutting down
            log.warning("request %s: destination record dropped at shutdown", task.request_id)
            return
        self._deliveries.add(future)
        future.add_done_callback(self._deliveries.discard)
