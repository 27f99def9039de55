"""The one interface between the AsyncDispatcher (and ``fc-wsgi tasks``) and where tasks live.

FC persists an async request before it answers 202 (fc-spec.md section 11). Where it is
persisted is a deployment choice (DESIGN.md, "Scale-out"): the SQLite
:class:`~fc_wsgi.dispatch.journal.Journal` keeps tasks on one host and runs them in the serving
processes; the Dramatiq backend (:mod:`fc_wsgi.dispatch.dramatiq_backend`) commits them to
Redis and ``fc-wsgi worker`` runs them on any number of hosts. The dispatcher sees only
:class:`TaskBackend`: it stores a task, and starts its local scheduler only when the backend
says tasks run locally. The CLI and the task page see the operator's side, :class:`TaskStore`.
Both report failures with the exceptions of :mod:`~fc_wsgi.dispatch.tasks` (``DuplicateTask``,
``QueueFull``, ``StoreBusy``, ``StoreError``, ``TaskNotFound``, ``TaskBusy``,
``TaskFinished``), so the FC answers do not depend on the backend.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

from ..common import redact_url
from ..config import ConfigError
from .journal import Journal
from .tasks import PageCursor, StoredRequest, TaskRecord

if TYPE_CHECKING:
    from types import TracebackType

    from ..config import AsyncConfig

__all__ = ["TaskBackend", "TaskStore", "describe_backend", "open_backend"]

#: What to install when ``async.backend`` is ``dramatiq`` and Dramatiq is missing.
DRAMATIQ_EXTRA = "pip install 'fc-wsgi[dramatiq]'"


@runtime_checkable
class TaskStore(Protocol):
    """The operator's side, ``fc-wsgi tasks`` and ``fc-wsgi dashboard``: the same calls and
    records for every backend."""

    def get(self, task_id: str) -> TaskRecord | None:
        """The task with this id, or else the one with this request id, with its request."""

    def list_tasks(
        self,
        *,
        limit: int = 100,
        state: str | None = None,
        since: float | None = None,
        after: PageCursor | None = None,
    ) -> list[TaskRecord]:
        """Newest first, without requests: in ``state``, created at or after ``since``
        (wall-clock seconds), the page after the cursor ``after`` (keyset paging)."""

    def counts(self) -> dict[str, int]:
        """Tasks per state, every state present (zero included)."""

    def retry(self, task_id: str, *, now: float | None = None) -> TaskRecord:
        """Run a finished task again from attempt 1; :class:`TaskBusy` while it runs."""

    def stop(self, task_id: str, *, now: float | None = None) -> TaskRecord:
        """FC's StopAsyncTask: waiting → ``Stopped``, running → ``Stopping`` (``Stopped``
        when its run ends, never retried nor delivered); :class:`TaskFinished` when done."""

    def close(self) -> None:
        """Release connections; the object may be used again afterwards."""

    def __enter__(self) -> TaskStore: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
        /,
    ) -> None: ...


@runtime_checkable
class TaskBackend(TaskStore, Protocol):
    """What the AsyncDispatcher needs: commit a task before the 202, and know who runs it."""

    #: True when the serving processes run the tasks (SQLite); False when workers elsewhere
    #: do (Dramatiq: ``fc-wsgi worker``), so the dispatcher starts no scheduler of its own.
    runs_locally: bool

    def enqueue(
        self,
        task_id: str,
        request_id: str,
        request: StoredRequest,
        *,
        due: float,
        now: float | None = None,
        max_pending: int | None = None,
    ) -> None:
        """Store a new task durably before returning; run it at ``due`` (wall-clock seconds).

        Raises :class:`DuplicateTask`, :class:`QueueFull`, :class:`StoreBusy` (the store is
        busy or unreachable: FC's 503) or :class:`StoreError` (FC's 500); on any of them
        nothing was accepted.
        """


def open_backend(config: AsyncConfig) -> Journal | TaskBackend:
    """The backend ``config`` names, for the dispatcher (and the CLI's read side).

    Dramatiq is imported only here and only for ``backend: dramatiq``, so the SQLite path
    never needs the optional extra.
    """
    if config.backend == "sqlite":
        return Journal(config.journal, durability=config.durability)
    if config.backend == "dramatiq":
        try:
            from .dramatiq_backend import DramatiqBackend
        except ImportError as exc:
            raise ConfigError(
                f"async.backend: dramatiq needs Dramatiq and redis ({DRAMATIQ_EXTRA}): {exc}"
            ) from None
        return DramatiqBackend.from_config(config)
    raise ConfigError(f"async.backend: unknown backend {config.backend!r}")


def describe_backend(config: AsyncConfig) -> str:
    """Where tasks live, for messages: the journal path, or the broker URL without secrets."""
    return redact_url(config.broker_url) if config.backend == "dramatiq" else config.journal
