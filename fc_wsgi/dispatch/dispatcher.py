"""AsyncDispatcher: FC's ``X-Fc-Invocation-Type: Async``, persisted before the 202.

FC answers an async request with 202 and ``X-Fc-Request-Id`` once it has persisted it, then
runs the function later, after ``x-fc-async-delay`` seconds, retrying failures and expiring old
events (fc-spec.md section 11). This middleware does the same on one host: the request is
committed to the SQLite :class:`~fc_wsgi.dispatch.journal.Journal` (fsynced) before the 202 is
sent, and a :class:`~fc_wsgi.dispatch.scheduler.Scheduler` in each serving process runs due
tasks through the wrapped app. If the journal cannot store it, the client gets an FC error
answer (503 ``ResourceThrottled`` when locked too long, else 500), never a 202.

Sync requests (no header, or ``Sync``) cost one dict lookup and reach the app untouched.

The store is any :class:`~fc_wsgi.dispatch.backend.TaskBackend`. With the Dramatiq backend
(``async.backend: "dramatiq"``) the request is committed to Redis instead, this middleware
starts no scheduler (``runs_locally`` is False) and ``fc-wsgi worker`` runs the tasks; what
follows describes the SQLite journal.

Guarantees and choices:

* At least once, never lost. A run holds a lease of ``lease_seconds`` (30 s), renewed every
  third of that by the scheduler thread while the app runs (a heartbeat), so a long task keeps
  its lease and a process killed with SIGKILL loses it within 30 s; then any process sharing
  the journal runs it again, with ``environ["fc.async_attempt"]`` one higher.
* A task is failed by an exception or a missing/invalid response, and by a 5xx answer when
  ``fail_on_5xx`` (FC documents only function errors; fc-spec.md 13.14). Failures are re-run up
  to ``max_async_retry_attempts`` times after ``retry_base_seconds * 2**(n-1)`` (0.5, 1, 2, 4 s).
* A task whose age, measured from when it was accepted (so including its delay and its
  retries' backoff), reaches ``max_async_event_age_in_seconds`` becomes ``Expired`` when it is
  next due, and is not run.
* Tasks accepted by other processes sharing the journal, and dead owners' tasks, are found by a
  journal rescan every ``rescan_interval_seconds`` (1 s, at most a third of the lease); a local
  enqueue wakes the scheduler at once. The journal holds request headers and bodies: it is
  created mode 0600.
* Threads start lazily on the first async request in the serving process (after gunicorn's
  fork, ``--preload`` safe), or at :meth:`start`, which the server calls in ``post_worker_init``
  so that tasks left by a killed server run without waiting for a request. :meth:`close`
  (``drain_all`` in ``worker_exit``) starts nothing new, lets running tasks finish within the
  timeout and releases the leases of those that do not. After :meth:`close` an async request
  is still stored and answered 202, but runs only after :meth:`start` or in another process.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import socket
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from typing import TYPE_CHECKING

from ..common import Profile
from ..config import DestinationConfig
from ..errors import (
    FcError,
    InvalidArgument,
    ResourceExhausted,
    ResourceThrottled,
    TaskAlreadyExists,
    error_response,
    request_id,
)
from .backend import TaskBackend
from .destinations import (
    EVENT_AGE_EXCEEDED,
    RETRIES_EXHAUSTED,
    SUCCESS,
    Destinations,
    task_record,
)
from .journal import (
    EXPIRED,
    FAILED,
    RETRYING,
    RUNNING,
    SUCCEEDED,
    DuplicateTask,
    Journal,
    JournalBusy,
    JournalError,
    QueueFull,
    StoredRequest,
    TaskRecord,
)
from .runner import Outcome, run_task
from .scheduler import RESCAN_INTERVAL_SECONDS, Scheduler

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

log = logging.getLogger(__name__)

#: How long a run's lease lasts without a heartbeat, in seconds.
LEASE_SECONDS = 30.0
#: First retry's backoff, in seconds; doubled for each further retry (fc-spec.md 11).
RETRY_BASE_SECONDS = 0.5
#: Longest single backoff, in seconds.
MAX_BACKOFF_SECONDS = 3600.0
#: How often finished tasks older than the retention time are deleted, in seconds.
PRUNE_INTERVAL_SECONDS = 3600.0
#: ``x-fc-async-delay`` range, in seconds (fc-spec.md 11).
MAX_DELAY_SECONDS = 3600
#: Largest body stored even when no LimitGuard stands in front: FC's sync maximum, in bytes.
MAX_STORED_BODY_BYTES = 32 * 1024 * 1024
#: Most tasks one journal rescan reads; a full page is followed by the next at once.
RESCAN_PAGE = 100
#: Threads delivering destination records, per process.
DESTINATION_WORKERS = 2
#: Default graceful-stop budget, in seconds (gunicorn's default graceful_timeout).
CLOSE_TIMEOUT_SECONDS = 30.0

_READ_CHUNK_BYTES = 64 * 1024
# Caller-chosen task ids (fc-spec.md 11): a letter or _, then letters, digits, _ or -; <= 128.
_TASK_ID = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,127}\Z")
_DELAY = re.compile(r"[0-9]{1,4}\Z")
# environ keys (besides HTTP_*) kept to replay a request; everything else is the server's.
_KEPT_KEYS = frozenset(
    {
        "REQUEST_METHOD",
        "SCRIPT_NAME",
        "PATH_INFO",
        "QUERY_STRING",
        "CONTENT_TYPE",
        "REMOTE_ADDR",
        "SERVER_NAME",
        "SERVER_PORT",
        "SERVER_PROTOCOL",
        "wsgi.url_scheme",
    }
)
# Consumed here: the replayed request must not ask for async again.
_DROPPED_KEYS = frozenset({"HTTP_X_FC_INVOCATION_TYPE", "HTTP_X_FC_ASYNC_DELAY"})
_TASK_ID_HEADERS = {
    "fc3": (
        ("HTTP_X_FC_ASYNC_TASK_ID", "X-Fc-Async-Task-Id"),
        ("HTTP_X_FC_STATEFUL_ASYNC_INVOCATION_ID", "X-Fc-Stateful-Async-Invocation-Id"),
    ),
    "fc2": (
        ("HTTP_X_FC_STATEFUL_ASYNC_INVOCATION_ID", "X-Fc-Stateful-Async-Invocation-Id"),
        ("HTTP_X_FC_ASYNC_TASK_ID", "X-Fc-Async-Task-Id"),
    ),
}

# The 202's body is empty (FC's is unpublished); PEP 3333 checkers want a Content-Type anyway.
_ACCEPTED_HEADERS = (("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", "0"))
_HOST = socket.gethostname()
_CLAIMS = itertools.count(1)  # makes every lease owner unique within a process
_LIVE: weakref.WeakSet[AsyncDispatcher] = weakref.WeakSet()


def start_all() -> None:
    """Start every dispatcher built in this process (gunicorn's ``post_worker_init``)."""
    for dispatcher in list(_LIVE):
        dispatcher.start()


def drain_all(timeout: float = CLOSE_TIMEOUT_SECONDS) -> bool:
    """Close every live dispatcher within ``timeout`` seconds in all (gunicorn's
    ``worker_exit``). True when no running task had to be released."""
    deadline = time.monotonic() + timeout
    results = [d.close(max(0.0, deadline - time.monotonic())) for d in list(_LIVE)]
    return all(results)


class AsyncDispatcher:
    """Persist ``X-Fc-Invocation-Type: Async`` requests, answer 202, run them later."""

    def __init__(
        self,
        app: WSGIApplication,
        *,
        journal: str | os.PathLike[str] | TaskBackend = ".fc-wsgi/async.sqlite3",
        workers: int = 4,
        max_async_retry_attempts: int = 3,
        max_async_event_age_in_seconds: float = 86400,
        destination_config: DestinationConfig | None = None,
        profile: Profile = "fc3",
        fail_on_5xx: bool = True,
        max_queued_tasks: int = 100_000,
        retention_seconds: float = 7 * 86400,
        clock: Callable[[], float] = time.time,
        lease_seconds: float = LEASE_SECONDS,
        retry_base_seconds: float = RETRY_BASE_SECONDS,
        rescan_interval_seconds: float = RESCAN_INTERVAL_SECONDS,
    ) -> None:
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        if max_async_retry_attempts < 0:
            raise ValueError(
                f"max_async_retry_attempts must be >= 0, got {max_async_retry_attempts}"
            )
        if max_async_event_age_in_seconds <= 0 or lease_seconds <= 0:
            raise ValueError("max_async_event_age_in_seconds and lease_seconds must be > 0")
        if max_queued_tasks < 1:
            raise ValueError(f"max_queued_tasks must be at least 1, got {max_queued_tasks}")
        if profile not in _TASK_ID_HEADERS:
            raise ValueError(f"profile must be fc3 or fc2, got {profile!r}")
        self.app = app
        # An injected backend belongs to the caller; a Journal made from a path is ours to close.
        self._owns_journal = isinstance(journal, (str, os.PathLike))
        self.journal: TaskBackend = (
            Journal(journal, clock=clock) if isinstance(journal, (str, os.PathLike)) else journal
        )
        self.workers = workers
        self.max_async_retry_attempts = max_async_retry_attempts
        self.max_async_event_age_in_seconds = max_async_event_age_in_seconds
        self.profile: Profile = profile
        self.fail_on_5xx = fail_on_5xx
        self.max_queued_tasks = max_queued_tasks
        self.retention_seconds = retention_seconds
        self._clock = clock
        self._lease_seconds = lease_seconds
        self._heartbeat_seconds = lease_seconds / 3
        self._retry_base_seconds = retry_base_seconds
        # The heartbeat rides on the rescan: wake at least three times per lease.
        self._rescan_interval_seconds = min(rescan_interval_seconds, self._heartbeat_seconds)
        self._rescan_page = max(RESCAN_PAGE, 4 * workers)
        self._destinations = Destinations(destination_config)
        self._task_id_headers = _TASK_ID_HEADERS[profile]
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
        _LIVE.add(self)

    # -- the request path --------------------------------------------------------------------

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        kind = environ.get("HTTP_X_FC_INVOCATION_TYPE")
        if kind is None:
            return self.app(environ, start_response)
        kind = kind.strip().lower()
        if kind == "async":
            return self._accept(environ, start_response)
        if kind == "sync":
            return self.app(environ, start_response)
        error = InvalidArgument(
            f"invalid X-Fc-Invocation-Type {kind[:32]!r}: must be Sync or Async"
        )
        return error_response(error, environ, start_response, self.profile)

    def _accept(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        profile = self.profile
        try:
            delay = _parse_delay(environ.get("HTTP_X_FC_ASYNC_DELAY"))
            task_id, echo = self._task_id(environ)
            body = _read_body(environ)
        except FcError as exc:
            return error_response(exc, environ, start_response, profile)
        rid = request_id(environ, profile)
        task_id = task_id or rid
        now = self._clock()
        stored = StoredRequest(environ=_kept_environ(environ), body=body)
        refusal: FcError | None = None
        try:
            self.journal.enqueue(
                task_id, rid, stored, due=now + delay, now=now, max_pending=self.max_queued_tasks
            )
        except DuplicateTask:
            refusal = TaskAlreadyExists(f"async task {task_id!r} already exists")
        except QueueFull:
            log.warning("request %s: async queue full (%d tasks)", rid, self.max_queued_tasks)
            refusal = ResourceExhausted("too many async tasks are waiting; try again later")
        except JournalBusy as exc:
            log.error("request %s: async request not stored: %s", rid, exc)
            refusal = ResourceThrottled("the async queue is busy; try again later")
        except JournalError as exc:
            log.error("request %s: async request not stored: %s", rid, exc)
            refusal = FcError("the async request could not be stored")
        if refusal is not None:
            return error_response(refusal, environ, start_response, profile)
        log.debug("request %s: async task %s accepted, due in %d s", rid, task_id, delay)
        self._schedule(task_id, now + delay)
        start_response("202 Accepted", [*_ACCEPTED_HEADERS, ("X-Fc-Request-Id", rid), *echo])
        return []

    def _task_id(self, environ: WSGIEnvironment) -> tuple[str | None, list[tuple[str, str]]]:
        for key, name in self._task_id_headers:
            value = environ.get(key)
            if value is None:
                continue
            if not _TASK_ID.match(value):
                raise InvalidArgument(
                    f"invalid {name}: a letter or _, then letters, digits, _ or -, "
                    "at most 128 characters"
                )
            return value, [(name, value)]
        return None, []

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start the scheduler and pool in this process (again after :meth:`close`); nothing
        when the backend's tasks run elsewhere (Dramatiq: ``fc-wsgi worker``)."""
        if not self.journal.runs_locally:
            return
        with self._lock:
            pid = os.getpid()
            if self._pid == pid and self._scheduler is not None:
                return
            if self._pid != pid:  # a fresh process, or a fork: the parent's threads are not here
                self._running, self._released, self._deliveries = {}, set(), set()
            self._pid = pid
            self._owner_prefix = f"{_HOST}:{pid}"
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
        log.info("async dispatcher started: %r, %d workers", self.journal, self.workers)

    def close(self, timeout: float = CLOSE_TIMEOUT_SECONDS) -> bool:
        """Stop: start no task, give running ones ``timeout`` seconds, release the leases of
        those still running (they become due again, for another process or a restart).
        Returns True when nothing had to be released."""
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
            for task_id, owner in list(self._running.items()):
                self._released.add(owner)
                try:
                    released = self._local.release(task_id, owner, now=self._clock())
                except JournalError as exc:
                    log.error("async task %s: lease not released: %s", task_id, exc)
                    continue
                if released:
                    log.warning("async task %s still running at shutdown: lease released", task_id)
        if delivery is not None:
            pending = list(self._deliveries)
            left = max(0.0, deadline - time.monotonic())
            done, not_done = wait_futures(pending, timeout=left) if pending else ((), ())
            if not_done:
                log.warning("%d destination deliveries dropped at shutdown", len(not_done))
            delivery.shutdown(wait=not not_done, cancel_futures=True)
        if self._owns_journal:
            self.journal.close()
        return finished

    def wake(self) -> None:
        """Look at the queue now (for tests that move an injected clock)."""
        scheduler = self._scheduler
        if scheduler is not None:
            scheduler.wake()

    def _schedule(self, task_id: str, due: float) -> None:
        if not self.journal.runs_locally:  # fc-wsgi worker runs it
            return
        if self._pid != os.getpid():
            self.start()
        scheduler = self._scheduler
        if scheduler is not None:  # closed: the journal keeps it for a restart
            scheduler.push(task_id, due)

    @property
    def _local(self) -> Journal:
        """The journal the local scheduler works on; it starts only for one (``runs_locally``)."""
        if not isinstance(self.journal, Journal):
            raise TypeError(f"{self.journal!r} runs its tasks elsewhere")
        return self.journal

    # -- the scheduler thread ----------------------------------------------------------------

    def _rescan(self, now: float) -> list[tuple[str, float]]:
        """Heartbeat, housekeeping, then the journal's tasks due before the next rescan."""
        self._heartbeat(now)
        mono = time.monotonic()
        if mono >= self._next_prune:
            self._next_prune = mono + PRUNE_INTERVAL_SECONDS
            try:
                pruned = self._local.prune(before=now - self.retention_seconds)
            except JournalError as exc:
                log.warning("async journal prune failed: %s", exc)
            else:
                if pruned:
                    log.info("pruned %d finished async tasks", pruned)
        return self._local.due_tasks(
            now=now,
            horizon_seconds=self._rescan_interval_seconds,
            limit=self._rescan_page,
        )

    def _heartbeat(self, now: float) -> None:
        mono = time.monotonic()
        if not self._running or mono < self._next_heartbeat:
            return
        self._next_heartbeat = mono + self._heartbeat_seconds
        try:
            self._local.renew(dict(self._running), lease_expiry=now + self._lease_seconds)
        except JournalError as exc:
            log.warning("async lease heartbeat failed: %s", exc)

    # -- a pool thread -------------------------------------------------------------------------

    def _run_task(self, task_id: str) -> None:
        owner = f"{self._owner_prefix}:{next(_CLAIMS)}"
        try:
            task = self._local.claim(
                task_id,
                owner,
                now=self._clock(),
                lease_seconds=self._lease_seconds,
                max_age_seconds=self.max_async_event_age_in_seconds,
                max_attempts=self.max_async_retry_attempts + 1,
            )
        except JournalError as exc:
            log.warning("async task %s: claim failed, a later rescan retries: %s", task_id, exc)
            return
        if task is None:  # not due any more: another process took it, or it was retried
            return
        if task.state == EXPIRED:
            log.warning("request %s: async task %s expired, not run", task.request_id, task.id)
            self._notify(task, EVENT_AGE_EXCEEDED, None)
            return
        if task.state == FAILED:
            log.error("request %s: async task %s: %s", task.request_id, task.id, task.last_error)
            self._notify(task, RETRIES_EXHAUSTED, None)
            return
        if task.state != RUNNING:
            log.warning("request %s: async task %s is %s", task.request_id, task.id, task.state)
            return
        self._running[task.id] = owner
        try:
            outcome = run_task(self.app, task, fail_on_5xx=self.fail_on_5xx)
        finally:
            self._running.pop(task.id, None)
        self._record(task, owner, outcome)

    def _record(self, task: TaskRecord, owner: str, outcome: Outcome) -> None:
        if owner in self._released:  # close() gave the lease back: another run owns it now
            log.warning("request %s: result of async task %s dropped", task.request_id, task.id)
            return
        now = self._clock()
        due = None
        if not outcome.failed:
            state = SUCCEEDED
        elif task.attempts <= self.max_async_retry_attempts:
            state = RETRYING
            backoff = self._retry_base_seconds * 2 ** (task.attempts - 1)
            due = now + min(backoff, MAX_BACKOFF_SECONDS)
        else:
            state = FAILED
        try:
            written = self._local.finish(
                task.id,
                owner,
                state=state,
                now=now,
                status=outcome.status,
                error=outcome.error,
                due=due,
            )
        except JournalError as exc:
            log.error(
                "request %s: async task %s result not recorded (lease will expire, task"
                " re-runs): %s",
                task.request_id,
                task.id,
                exc,
            )
            return
        if written is None:
            log.warning(
                "request %s: async task %s lost its lease; result dropped",
                task.request_id,
                task.id,
            )
        elif written == RETRYING and due is not None:
            log.info(
                "request %s: async task %s attempt %d failed (%s); retry in %.1f s",
                task.request_id,
                task.id,
                task.attempts,
                outcome.error,
                due - now,
            )
            self._schedule(task.id, due)
        elif written == SUCCEEDED:
            log.debug("request %s: async task %s succeeded", task.request_id, task.id)
            self._notify(task, SUCCESS, outcome)
        elif written == FAILED:
            log.error(
                "request %s: async task %s failed after %d attempts: %s",
                task.request_id,
                task.id,
                task.attempts,
                outcome.error,
            )
            self._notify(task, RETRIES_EXHAUSTED, outcome)

    def _notify(self, task: TaskRecord, condition: str, outcome: Outcome | None) -> None:
        destination = self._destinations.target_for(condition)
        delivery = self._delivery
        if destination is None or delivery is None:
            return
        record = task_record(task, condition, outcome, self._clock())
        try:
            future = delivery.submit(self._destinations.deliver, destination, record)
        except RuntimeError:  # shutting down
            log.warning("request %s: destination record dropped at shutdown", task.request_id)
            return
        self._deliveries.add(future)
        future.add_done_callback(self._deliveries.discard)


def _parse_delay(header: str | None) -> int:
    if header is None:
        return 0
    value = header.strip()
    if not _DELAY.match(value) or int(value) > MAX_DELAY_SECONDS:
        raise InvalidArgument(
            f"invalid X-Fc-Async-Delay {value[:16]!r}: must be an integer 0..{MAX_DELAY_SECONDS}"
        )
    return int(value)


def _read_body(environ: WSGIEnvironment) -> bytes:
    """The whole body, never reading past Content-Length (PEP 3333), or to EOF when the server
    set ``wsgi.input_terminated``. An FcError from a limiting stream is passed on."""
    length_text = environ.get("CONTENT_LENGTH", "")
    if length_text:
        try:
            limit: int | None = int(length_text)
        except ValueError:
            raise InvalidArgument("invalid Content-Length") from None
        if limit is None or limit < 0:
            raise InvalidArgument("invalid Content-Length")
        if limit > MAX_STORED_BODY_BYTES:
            raise InvalidArgument(f"request body exceeds {MAX_STORED_BODY_BYTES} bytes")
    elif environ.get("wsgi.input_terminated"):
        limit = None
    else:
        return b""
    stream = environ["wsgi.input"]
    chunks: list[bytes] = []
    size = 0
    while limit is None or size < limit:
        want = _READ_CHUNK_BYTES if limit is None else min(_READ_CHUNK_BYTES, limit - size)
        chunk = stream.read(want)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
        if size > MAX_STORED_BODY_BYTES:
            raise InvalidArgument(f"request body exceeds {MAX_STORED_BODY_BYTES} bytes")
    if limit is not None and size < limit:
        raise InvalidArgument(f"request body ended after {size} of {limit} bytes")
    return b"".join(chunks)


def _kept_environ(environ: WSGIEnvironment) -> dict[str, str]:
    return {
        key: value
        for key, value in environ.items()
        if isinstance(value, str)
        and (key in _KEPT_KEYS or (key.startswith("HTTP_") and key not in _DROPPED_KEYS))
    }
