"""AsyncDispatcher: FC's ``X-Fc-Invocation-Type: Async``, persisted before the 202.

FC answers an async request with 202 and ``X-Fc-Request-Id`` once it has persisted it, then
runs the function later, after ``x-fc-async-delay`` seconds, retrying failures and expiring old
events (fc-spec.md section 11). This middleware is the request path: it validates the async
headers, commits the request to a :class:`~fc_wsgi.dispatch.backend.TaskBackend` (the SQLite
:class:`~fc_wsgi.dispatch.journal.Journal`, fsynced, or Redis for the Dramatiq backend) and
only then answers 202. If the store cannot take it, the client gets an FC error answer (503
``ResourceThrottled`` when it is locked or unreachable too long, else 500), never a 202.

Sync requests (no header, or ``Sync``) cost one dict lookup and reach the app untouched.

With the journal, the tasks run in the serving processes, on a
:class:`~fc_wsgi.dispatch.executor.LocalExecutor`: at least once, with leases, retries under
:class:`~fc_wsgi.dispatch.policy.RetryPolicy` and event-age expiry (see there). With Dramatiq
(``runs_locally`` is False) this starts no thread and ``fc-wsgi worker`` runs them.

Threads start lazily on the first async request in the serving process (after gunicorn's
fork, ``--preload`` safe), or at :meth:`~AsyncDispatcher.start`, which the server calls in
``post_worker_init`` so that tasks left by a killed server run without waiting for a request.
:meth:`~AsyncDispatcher.close` (``drain_all`` in ``worker_exit``) lets running tasks finish
within the timeout and releases the leases of those that do not. After it, an async request is
still stored and answered 202, but runs only after a start or in another process.
"""

from __future__ import annotations

import logging
import os
import re
import time
import weakref
from collections.abc import Iterable
from typing import TYPE_CHECKING

from .. import metrics
from .._wsgi import read_body
from ..common import MAX_BODY_BYTES, AsyncDurability, Clock, Profile
from ..errors import (
    FcError,
    InvalidArgument,
    ResourceExhausted,
    ResourceThrottled,
    TaskAlreadyExists,
    error_response,
    request_id,
)
from .destinations import Destinations
from .executor import LocalExecutor
from .journal import Journal
from .policy import RETRY_BASE_SECONDS, RetryPolicy
from .scheduler import RESCAN_INTERVAL_SECONDS
from .tasks import DuplicateTask, QueueFull, StoreBusy, StoredRequest, StoreError

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

    from ..config import DestinationConfig
    from .backend import TaskBackend

log = logging.getLogger(__name__)

#: How long a run's lease lasts without a heartbeat, in seconds.
LEASE_SECONDS = 30.0
#: ``x-fc-async-delay`` range, in seconds (fc-spec.md 11).
MAX_DELAY_SECONDS = 3600
#: Default graceful-stop budget, in seconds (gunicorn's default graceful_timeout).
CLOSE_TIMEOUT_SECONDS = 30.0

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
        # The URI as received (the server's, or a project router's rewrite of it): the
        # function runtime hands it to a replayed task as fc.request_uri.
        "RAW_URI",
        "REQUEST_URI",
        "fc.request_uri",
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
        durability: AsyncDurability = "fsync",
        workers: int = 4,
        max_async_retry_attempts: int = 3,
        max_async_event_age_in_seconds: float = 86400,
        destination_config: DestinationConfig | None = None,
        profile: Profile = "fc3",
        fail_on_5xx: bool = True,
        max_queued_tasks: int = 100_000,
        retention_seconds: float = 7 * 86400,
        clock: Clock = time.time,
        lease_seconds: float = LEASE_SECONDS,
        retry_base_seconds: float = RETRY_BASE_SECONDS,
        rescan_interval_seconds: float = RESCAN_INTERVAL_SECONDS,
        metrics_label: str | None = None,
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
            Journal(journal, clock=clock, durability=durability)
            if isinstance(journal, (str, os.PathLike))
            else journal
        )
        self.workers = workers
        self.max_async_retry_attempts = max_async_retry_attempts
        self.max_async_event_age_in_seconds = max_async_event_age_in_seconds
        self.profile: Profile = profile
        self.fail_on_5xx = fail_on_5xx
        self.max_queued_tasks = max_queued_tasks
        self.retention_seconds = retention_seconds
        self._clock = clock
        self._task_id_headers = _TASK_ID_HEADERS[profile]
        # The ``function`` label of this dispatcher's async metrics (None: the process's).
        self._metrics_label = metrics_label
        # Only a journal's tasks run here; Dramatiq's run in `fc-wsgi worker`.
        self._executor: LocalExecutor | None = None
        if isinstance(self.journal, Journal) and self.journal.runs_locally:
            self._executor = LocalExecutor(
                app,
                self.journal,
                policy=RetryPolicy(max_async_retry_attempts, retry_base_seconds),
                destinations=Destinations(destination_config),
                workers=workers,
                fail_on_5xx=fail_on_5xx,
                max_age_seconds=max_async_event_age_in_seconds,
                retention_seconds=retention_seconds,
                lease_seconds=lease_seconds,
                rescan_interval_seconds=rescan_interval_seconds,
                clock=clock,
                metrics_label=metrics_label,
            )
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
            body = read_body(environ, MAX_BODY_BYTES)
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
        except StoreBusy as exc:
            log.error("request %s: async request not stored: %s", rid, exc)
            refusal = ResourceThrottled("the async queue is busy; try again later")
        except StoreError as exc:
            log.error("request %s: async request not stored: %s", rid, exc)
            refusal = FcError("the async request could not be stored")
        if refusal is not None:
            return error_response(refusal, environ, start_response, profile)
        log.debug("request %s: async task %s accepted, due in %d s", rid, task_id, delay)
        metrics.count_async_accepted(self._metrics_label)
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

    @property
    def running(self) -> bool:
        """Whether this process runs the executor's threads now."""
        return self._executor is not None and self._executor.started_here

    def start(self) -> None:
        """Start the executor in this process (again after :meth:`close`); nothing when the
        backend's tasks run elsewhere (Dramatiq: ``fc-wsgi worker``)."""
        if self._executor is not None:
            self._executor.start()

    def close(self, timeout: float = CLOSE_TIMEOUT_SECONDS) -> bool:
        """Stop: start no task, give running ones ``timeout`` seconds, release the leases of
        those still running (they become due again, for another process or a restart).
        Returns True when nothing had to be released."""
        finished = True if self._executor is None else self._executor.close(timeout)
        if self._owns_journal:
            self.journal.close()
        return finished

    def wake(self) -> None:
        """Look at the queue now (for tests that move an injected clock)."""
        if self._executor is not None:
            self._executor.wake()

    def _schedule(self, task_id: str, due: float) -> None:
        if self._executor is not None:  # else fc-wsgi worker runs it
            self._executor.push(task_id, due)


def _parse_delay(header: str | None) -> int:
    if header is None:
        return 0
    value = header.strip()
    if not _DELAY.match(value) or int(value) > MAX_DELAY_SECONDS:
        raise InvalidArgument(
            f"invalid X-Fc-Async-Delay {value[:16]!r}: must be an integer 0..{MAX_DELAY_SECONDS}"
        )
    return int(value)


def _kept_environ(environ: WSGIEnvironment) -> dict[str, str]:
    return {
        key: value
        for key, value in environ.items()
        if isinstance(value, str)
        and (key in _KEPT_KEYS or (key.startswith("HTTP_") and key not in _DROPPED_KEYS))
    }
