"""The async task model every backend shares: FC's states, the task record, the errors.

FC's async tasks move through nine states (fc-spec.md section 11) and keep attempts, times and
the last error. The SQLite journal and the Redis records store the same :class:`TaskRecord`,
raise the same errors and answer ``fc-wsgi tasks`` alike, so the dispatcher, the CLI and the
task page never ask which backend they have. Nothing here imports a backend.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

ENQUEUED = "Enqueued"
RUNNING = "Running"
SUCCEEDED = "Succeeded"
FAILED = "Failed"
RETRYING = "Retrying"
EXPIRED = "Expired"
STOPPING = "Stopping"
STOPPED = "Stopped"
INVALID = "Invalid"  # the stored request cannot be decoded (FC: the function is gone)
STATES = (ENQUEUED, RUNNING, SUCCEEDED, FAILED, RETRYING, EXPIRED, STOPPING, STOPPED, INVALID)
#: Waiting for their due time; counted against ``max_pending``.
PENDING_STATES = (ENQUEUED, RETRYING)
#: Holding a lease.
ACTIVE_STATES = (RUNNING, STOPPING)
#: Done for good; pruned after the retention time.
FINISHED_STATES = (SUCCEEDED, FAILED, EXPIRED, STOPPED, INVALID)


class StoreError(Exception):
    """The task store could not do what was asked (I/O error, read-only or corrupt file,
    Redis error): FC's 500 on the request path."""


class StoreBusy(StoreError):
    """The store is locked or unreachable longer than its timeout: FC's 503."""


class DuplicateTask(StoreError):
    """A task with this id already exists."""


class QueueFull(StoreError):
    """``max_pending`` tasks are already waiting."""


class TaskNotFound(StoreError, LookupError):
    """No task has this id (or request id)."""


class TaskBusy(StoreError):
    """The task holds a lease (Running or Stopping), so it cannot be changed now."""


class TaskFinished(StoreError):
    """The task has already finished, so it cannot be stopped (FC's StopAsyncTask refuses a
    finished task too)."""


#: A keyset page position: the ``(created, id)`` of the last task shown. The next page holds
#: the tasks listed after it, newest first, so paging stays one index seek at any depth.
PageCursor = tuple[float, str]


@dataclasses.dataclass(frozen=True)
class StoredRequest:
    """What is needed to replay a request: its CGI/``HTTP_*`` environ strings and its body."""

    environ: Mapping[str, str]
    body: bytes

    @property
    def method(self) -> str:
        return self.environ.get("REQUEST_METHOD", "GET")

    @property
    def path(self) -> str:
        return self.environ.get("PATH_INFO", "/")


@dataclasses.dataclass(frozen=True)
class TaskRecord:
    """One task row. ``request`` is loaded by :meth:`Journal.get` and claims, not by listings."""

    id: str
    request_id: str
    state: str
    attempts: int
    created: float
    enqueued: float  # age for maxAsyncEventAgeInSeconds is measured from here
    updated: float
    due: float
    started: float | None
    ended: float | None
    last_error: str | None
    status: int | None
    lease_owner: str | None
    lease_expiry: float | None
    method: str
    path: str
    request: StoredRequest | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready summary (no body, no headers): for ``fc-wsgi tasks --json``."""
        data = dataclasses.asdict(self)
        del data["request"]
        return data
