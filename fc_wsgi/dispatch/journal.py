"""The async journal: every accepted async request, durable before FC's 202 goes out.

FC persists an ``X-Fc-Invocation-Type: Async`` request before it answers 202 (fc-spec.md
section 11); "any other status means it was not accepted". We keep that promise with one SQLite
file in WAL mode, shared by every gunicorn worker on the host: a row is committed before the
dispatcher answers. With ``durability="fsync"`` (the default, ``synchronous=FULL``) the commit
is fsynced and survives a power loss; with ``"process"`` (``synchronous=NORMAL``) it is in the
OS's page cache: it survives SIGKILL of any process, not an OS crash, and costs no fsync.
Accepts arriving together share one transaction and one fsync (:mod:`.group_commit`), each
still getting its own answer; the executor's claims and results join the same batches. The
worker path's writes (claims, heartbeats, results) are never fsynced on their own: losing one
in a power cut only means a task runs again, which at-least-once allows, and the next accept's
fsync makes them durable anyway.

Running a task is guarded by a lease. A worker claims a due task in one ``BEGIN IMMEDIATE``
transaction that sets ``lease_owner`` and ``lease_expiry``; only the owner may record the
result. A process killed with SIGKILL leaves its lease behind: on this host its owner
(host, pid and process start time, :mod:`.owners`) is seen dead at the next rescan and any
process sharing the journal claims the task again (attempt + 1) within about a second; an
owner on another host keeps its lease until it expires. So a task runs at least once and is
never lost; apps that must not repeat work read ``environ["fc.async_attempt"]``.

Times are wall-clock seconds (``time.time``): they are compared across processes.

One connection per ``Journal`` and process, used under a lock (the WSGI threads, the scheduler
and the pool share it). A connection is never used across ``fork()``: after a fork the child
opens its own and leaves the inherited one untouched, as SQLite requires.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, NamedTuple

from ..common import AsyncDurability
from .group_commit import GroupCommit
from .owners import HOST, dead_here
from .tasks import (
    ACTIVE_STATES,
    ENQUEUED,
    EXPIRED,
    FAILED,
    FINISHED_STATES,
    INVALID,
    PENDING_STATES,
    RETRYING,
    RUNNING,
    STATES,
    STOPPED,
    STOPPING,
    SUCCEEDED,
    DuplicateTask,
    PageCursor,
    QueueFull,
    StoreBusy,
    StoredRequest,
    StoreError,
    TaskBusy,
    TaskFinished,
    TaskNotFound,
    TaskRecord,
)

log = logging.getLogger(__name__)

#: How long a write waits for another process's write lock, in seconds.
BUSY_TIMEOUT_SECONDS = 5.0
#: First and longest sleep between tries for the write lock, in seconds.
BEGIN_RETRY_FIRST_SECONDS = 0.0002
BEGIN_RETRY_MAX_SECONDS = 0.002
#: ``async.durability``: fsync every accept's commit, or leave it to the OS (see above).
DURABILITY_MODES = ("fsync", "process")
_SYNCHRONOUS = {"fsync": "FULL", "process": "NORMAL"}
#: ``PRAGMA user_version`` of the schema below. 2 added the listing indexes: an older journal
#: runs the whole (idempotent) script again when opened and gains them.
SCHEMA_VERSION = 2

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tasks (
    id            TEXT PRIMARY KEY,
    request_id    TEXT NOT NULL,
    state         TEXT NOT NULL,
    attempts      INTEGER NOT NULL DEFAULT 0,
    created       REAL NOT NULL,
    enqueued      REAL NOT NULL,
    updated       REAL NOT NULL,
    due           REAL NOT NULL,
    started       REAL,
    ended         REAL,
    last_error    TEXT,
    status        INTEGER,
    lease_owner   TEXT,
    lease_expiry  REAL,
    method        TEXT NOT NULL,
    path          TEXT NOT NULL,
    environ       TEXT NOT NULL,
    body          BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS tasks_state_due ON tasks (state, due);
CREATE INDEX IF NOT EXISTS tasks_state_lease ON tasks (state, lease_expiry);
CREATE INDEX IF NOT EXISTS tasks_request_id ON tasks (request_id);
-- Listings, newest first, paged by (created, id): one index seek per page at any depth.
DROP INDEX IF EXISTS tasks_created;
CREATE INDEX IF NOT EXISTS tasks_created_id ON tasks (created, id);
CREATE INDEX IF NOT EXISTS tasks_state_created_id ON tasks (state, created, id);
"""

_SUMMARY = (
    "id, request_id, state, attempts, created, enqueued, updated, due, started, ended, "
    "last_error, status, lease_owner, lease_expiry, method, path"
)

# Owners of this host's processes (host:pid:start:n), for a first cut in SQL; dead_here decides.
_LOCAL_OWNERS = HOST.replace("%", "_") + ":%"

# Connections opened before a fork(): the child must neither use nor close them (closing could
# checkpoint and remove the WAL under the parent's feet), so they are kept here, unreferenced.
_INHERITED: list[sqlite3.Connection] = []


class _Accept(NamedTuple):
    """One accept waiting for the group commit: its row and its queue bound."""

    row: tuple[Any, ...]
    max_pending: int | None


class _Claim(NamedTuple):
    task_id: str
    owner: str
    now: float
    lease: float
    max_age_seconds: float | None
    max_attempts: int | None


class _Finish(NamedTuple):
    task_id: str
    owner: str
    state: str
    now: float
    status: int | None
    error: str | None
    due: float | None


class _Write(NamedTuple):
    """One write waiting for the group commit: ``apply(conn, arg)`` inside the batch's
    transaction, and whether the batch must then be fsynced (an accept) or not."""

    apply: Callable[[sqlite3.Connection, Any], Any]
    arg: Any
    durable: bool


class Journal:
    """The SQLite task journal shared by all processes on a host.

    ``path`` is a file path (its directory is created; a new file is made mode 0600 because it
    holds request headers and bodies) or an SQLite ``file:`` URI such as ``file:x?mode=ro``.
    """

    #: The serving processes run the tasks (the dispatcher's scheduler); see backend.py.
    runs_locally = True

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        busy_timeout_seconds: float = BUSY_TIMEOUT_SECONDS,
        clock: Callable[[], float] = time.time,
        durability: AsyncDurability = "fsync",
    ) -> None:
        if durability not in _SYNCHRONOUS:
            raise ValueError(f"durability must be one of {DURABILITY_MODES}, got {durability!r}")
        path = os.fspath(path)
        self._uri = path.startswith("file:")
        # Absolute now, so a later chdir (gunicorn --chdir, a CLI) cannot move the journal.
        self.path = path if self._uri or path == ":memory:" else os.path.abspath(path)
        self._busy_timeout_seconds = busy_timeout_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self.durability = durability
        self._synchronous = _SYNCHRONOUS[durability]
        self._conn: sqlite3.Connection | None = None
        self._conn_synchronous = ""  # the connection's PRAGMA synchronous now
        self._pid = 0
        self._writes: GroupCommit[_Write, Any] = GroupCommit(self._commit)
        self._writes_pid = os.getpid()
        # Accepts per committed transaction (powers of two, as GroupCommit's), for the log.
        self._accept_batches: Counter[int] = Counter()
        self._accepted = 0
        self._batch_pending: int | None = None  # waiting tasks, within the batch committing
        # Write transactions of this process that found SQLite's lock taken, and their wait.
        self._lock_waits = 0
        self._lock_wait_seconds = 0.0
        # Waiting tasks as last counted, plus this process's accepts since (_insert).
        self._pending_estimate: int | None = None
        self._pending_counted_at = float("-inf")

    def __repr__(self) -> str:
        return f"Journal({self.path!r})"

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- connection ------------------------------------------------------------------------

    def close(self) -> None:
        """Close this process's connection; the next call opens a new one."""
        transactions, accepts, sizes = self.commit_stats()
        if transactions:
            log.info(
                "journal %s: group commit: %d accepts in %d transactions; batch sizes %s;"
                " %d write transactions waited for another process's lock, %.0f ms in all",
                self.path, accepts, transactions,
                " ".join(f"{size}+:{count}" for size, count in sizes.items()),
                self._lock_waits, self._lock_wait_seconds * 1000,
            )  # fmt: skip
        with self._lock:
            conn, self._conn = self._conn, None
            if conn is not None and self._pid == os.getpid():
                conn.close()
            elif conn is not None:
                _INHERITED.append(conn)

    def _connection(self) -> sqlite3.Connection:
        conn = self._conn
        if conn is not None and self._pid == os.getpid():
            return conn
        if conn is not None:  # opened before a fork
            _INHERITED.append(conn)
            self._conn = None
        if not self._uri:
            _create_private_file(self.path)
        conn = sqlite3.connect(
            self.path,
            timeout=self._busy_timeout_seconds,
            isolation_level=None,  # we issue BEGIN IMMEDIATE / COMMIT ourselves
            check_same_thread=False,  # shared under self._lock
            uri=self._uri,
        )
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._conn_synchronous = "NORMAL"
            if conn.execute("PRAGMA user_version").fetchone()[0] < SCHEMA_VERSION:
                # One transaction, so processes starting together create it once.
                conn.executescript(
                    f"BEGIN IMMEDIATE; {_SCHEMA} PRAGMA user_version={SCHEMA_VERSION}; COMMIT;"
                )
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            conn.close()
            raise
        self._conn, self._pid = conn, os.getpid()
        return conn

    @contextmanager
    def _transaction(
        self, *, write: bool = True, durable: bool = True
    ) -> Iterator[sqlite3.Connection]:
        """A write transaction (BEGIN IMMEDIATE: the write lock up front, no upgrade deadlock)
        or a plain read; sqlite errors come out as :class:`StoreError`. A ``durable`` write
        commits with the journal's durability; the worker path's with NORMAL (see above)."""
        with self._lock:
            try:
                conn = self._connection()
                if not write:
                    yield conn
                    return
                synchronous = self._synchronous if durable else "NORMAL"
                if synchronous != self._conn_synchronous:
                    conn.execute(f"PRAGMA synchronous={synchronous}")
                    self._conn_synchronous = synchronous
                self._begin_immediate(conn)
                try:
                    yield conn
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                raise _translate(exc, self.path) from exc
            except OSError as exc:
                raise StoreError(f"journal {self.path}: {exc.strerror or exc}") from exc

    def _begin_immediate(self, conn: sqlite3.Connection) -> None:
        """Take SQLite's write lock, retrying every few milliseconds until the busy timeout.

        SQLite's own busy handler backs off to 100 ms sleeps, so a writer that queued behind
        a few fsyncs of other processes sleeps long after the lock came free: that was the p99
        of the 202. Short steps keep every waiter close behind the lock; the bound stays.
        """
        conn.execute("PRAGMA busy_timeout=0")
        try:
            start = time.monotonic()
            deadline = start + self._busy_timeout_seconds
            step = BEGIN_RETRY_FIRST_SECONDS
            while True:
                try:
                    conn.execute("BEGIN IMMEDIATE")
                    if step != BEGIN_RETRY_FIRST_SECONDS:  # it waited: another process wrote
                        self._lock_waits += 1
                        self._lock_wait_seconds += time.monotonic() - start
                    return
                except sqlite3.OperationalError as exc:
                    # sqlite_errorname is 3.11+; older Pythons only have the text.
                    name = getattr(exc, "sqlite_errorname", "")
                    busy = name.startswith("SQLITE_BUSY") or "database is locked" in str(exc)
                    if not busy or time.monotonic() + step > deadline:
                        raise
                time.sleep(step)
                step = min(step * 2, BEGIN_RETRY_MAX_SECONDS)
        finally:
            conn.execute(f"PRAGMA busy_timeout={int(self._busy_timeout_seconds * 1000)}")

    # -- the request path --------------------------------------------------------------------

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
        """Store a new task and commit it (fsync) before returning.

        Raises :class:`DuplicateTask`, :class:`QueueFull`, :class:`StoreBusy` or
        :class:`StoreError`; on any of them nothing was stored.
        """
        now = self._clock() if now is None else now
        environ_json = json.dumps(dict(request.environ), separators=(",", ":"))
        row: tuple[Any, ...] = (task_id, request_id, ENQUEUED, now, now, now, due)
        row += (request.method, request.path, environ_json, request.body)
        self._writer().submit(_Write(self._insert, _Accept(row, max_pending), True))

    def _insert(self, conn: sqlite3.Connection, accept: _Accept) -> None:
        """One accept inside a batch's transaction; the queue bound is counted once a batch."""
        if accept.max_pending is not None:
            if self._batch_pending is None:
                self._batch_pending = self._pending_upper_bound(conn, accept.max_pending)
            if self._batch_pending >= accept.max_pending:
                raise QueueFull(f"{self._batch_pending} tasks are already waiting")
        try:
            conn.execute(
                "INSERT INTO tasks (id, request_id, state, attempts, created, enqueued,"
                " updated, due, method, path, environ, body)"
                " VALUES (?, ?, ?, 0, ?, ?, ?, ?, ?, ?, ?, ?)",
                accept.row,
            )
        except sqlite3.IntegrityError as exc:
            raise DuplicateTask(f"task {accept.row[0]!r} already exists") from exc
        if self._batch_pending is not None:
            self._batch_pending += 1

    def _commit(self, writes: Sequence[_Write]) -> list[Any]:
        """The group commit's ``commit``: a batch of accepts, claims and results in one
        transaction, fsynced (with ``durability="fsync"``) when it holds an accept. A refused
        accept (duplicate id, full queue) is that accept's outcome alone."""
        accepts = sum(write.durable for write in writes)
        outcomes: list[Any] = []
        self._batch_pending = None
        with self._transaction(durable=accepts > 0) as conn:
            for write in writes:
                try:
                    outcomes.append(write.apply(conn, write.arg))
                except (DuplicateTask, QueueFull) as exc:
                    outcomes.append(exc)
        if self._batch_pending is not None:
            self._pending_estimate = self._batch_pending
        if accepts:
            self._accept_batches[1 << (accepts.bit_length() - 1)] += 1
            self._accepted += accepts
        return outcomes

    def _pending_upper_bound(self, conn: sqlite3.Connection, bound: int) -> int:
        """The waiting tasks, for ``maxQueuedTasks``: counted (a scan of the state index, which
        grows with the backlog), unless a count under a second old plus this process's accepts
        since is below half the bound. Then only other processes' accepts of that second are
        unseen, and the bound still holds unless they took half of it meanwhile."""
        now = time.monotonic()
        estimate = self._pending_estimate
        if estimate is not None and estimate < bound // 2 and now < self._pending_counted_at + 1:
            return estimate
        (pending,) = conn.execute(
            "SELECT COUNT(*) FROM tasks WHERE state IN (?, ?)", PENDING_STATES
        ).fetchone()
        self._pending_counted_at = now
        return int(pending)

    def commit_stats(self) -> tuple[int, int, dict[int, int]]:
        """Group commit in this process: ``(transactions, accepts, {batch size bucket:
        transactions})`` over the transactions holding accepts, buckets being powers of two
        (4 counts batches of 4 to 7 accepts)."""
        sizes = dict(sorted(self._accept_batches.items()))
        return sum(sizes.values()), self._accepted, sizes

    def _writer(self) -> GroupCommit[_Write, Any]:
        if self._writes_pid != os.getpid():  # forked: the parent's batches are not ours
            self._writes, self._writes_pid = GroupCommit(self._commit), os.getpid()
        return self._writes

    # -- the worker path ---------------------------------------------------------------------

    def due_tasks(
        self, *, now: float, horizon_seconds: float = 0.0, limit: int = 100
    ) -> list[tuple[str, float]]:
        """``(task_id, due)`` of waiting tasks due before ``now + horizon_seconds`` and of leased
        tasks whose lease expires by then, earliest first; first of all, due ``now``, the
        leased tasks of processes of this host that are dead (:func:`.owners.dead_here`)."""
        until = now + horizon_seconds
        with self._transaction(write=False) as conn:
            local = conn.execute(
                "SELECT id, lease_owner FROM tasks WHERE state IN (?, ?) AND lease_expiry > ?"
                " AND lease_owner LIKE ?",
                (*ACTIVE_STATES, until, _LOCAL_OWNERS),
            ).fetchall()
            rows = conn.execute(
                "SELECT id, due FROM tasks WHERE state IN (?, ?) AND due <= ?"
                " UNION ALL"
                " SELECT id, lease_expiry FROM tasks WHERE state IN (?, ?) AND lease_expiry <= ?"
                " ORDER BY 2 LIMIT ?",
                (*PENDING_STATES, until, *ACTIVE_STATES, until, limit),
            ).fetchall()
        orphans = [(task_id, now) for task_id, owner in local if dead_here(owner)]
        return (orphans + [(task_id, float(due)) for task_id, due in rows])[:limit]

    def claim(
        self,
        task_id: str,
        owner: str,
        *,
        now: float,
        lease_seconds: float,
        max_age_seconds: float | None = None,
        max_attempts: int | None = None,
    ) -> TaskRecord | None:
        """Take the lease on a due task in one transaction, or return None if it is not due,
        already leased, or gone.

        The returned record is ``Running`` (with its request, ``attempts`` already counting
        this run) unless the claim finished the task instead: ``Expired`` when older than
        ``max_age_seconds`` (measured from ``enqueued``), ``Failed`` when a dead owner's lease
        expired (or the owner died on this host) and ``max_attempts`` runs were already
        started (a task that kills its worker must not loop forever), ``Stopped`` for a dead
        owner's ``Stopping`` task, ``Invalid`` when the stored request cannot be decoded.
        """
        claim = _Claim(task_id, owner, now, lease_seconds, max_age_seconds, max_attempts)
        record: TaskRecord | None = self._writer().submit(_Write(self._claim_in, claim, False))
        return record

    def _claim_in(self, conn: sqlite3.Connection, claim: _Claim) -> TaskRecord | None:
        """One claim inside a batch's transaction (see :meth:`claim`)."""
        task_id, owner, now, lease_seconds = claim.task_id, claim.owner, claim.now, claim.lease
        max_age_seconds, max_attempts = claim.max_age_seconds, claim.max_attempts
        row = conn.execute(
            f"SELECT {_SUMMARY}, environ, body FROM tasks WHERE id = ?"
            " AND ((state IN (?, ?) AND due <= ?)"
            " OR (state IN (?, ?) AND (lease_expiry <= ? OR lease_owner LIKE ?)))",
            (task_id, *PENDING_STATES, now, *ACTIVE_STATES, now, _LOCAL_OWNERS),
        ).fetchone()
        if row is None:
            return None
        task = _record(row[:-2])
        lease_left = task.lease_expiry is not None and task.lease_expiry > now
        if task.state in ACTIVE_STATES and lease_left and not dead_here(task.lease_owner):
            return None  # a live process of this host holds it
        final: str | None = None
        error = task.last_error
        if task.state == STOPPING:
            final, error = STOPPED, "stopped while its worker was gone"
        elif max_age_seconds is not None and now - task.enqueued >= max_age_seconds:
            final, error = EXPIRED, f"older than {max_age_seconds:g} s; not run"
        elif task.state == RUNNING and max_attempts is not None and task.attempts >= max_attempts:
            final, error = FAILED, f"worker lost ({task.lease_owner} died or its lease expired)"
        request = _decode_request(row[-2], row[-1])
        if final is None and request is None:
            final, error = INVALID, "stored request cannot be decoded"
        if final is not None:
            conn.execute(
                "UPDATE tasks SET state = ?, updated = ?, ended = ?, last_error = ?,"
                " lease_owner = NULL, lease_expiry = NULL WHERE id = ?",
                (final, now, now, error, task_id),
            )
            return dataclasses.replace(
                task, state=final, updated=now, ended=now, last_error=error, request=request
            )
        attempts = task.attempts + 1
        expiry = now + lease_seconds
        conn.execute(
            "UPDATE tasks SET state = ?, attempts = ?, updated = ?, started = ?,"
            " lease_owner = ?, lease_expiry = ? WHERE id = ?",
            (RUNNING, attempts, now, now, owner, expiry, task_id),
        )
        return dataclasses.replace(
            task,
            state=RUNNING,
            attempts=attempts,
            updated=now,
            started=now,
            lease_owner=owner,
            lease_expiry=expiry,
            request=request,
        )

    def renew(self, leases: Mapping[str, str], *, lease_expiry: float) -> int:
        """Heartbeat: push the expiry of the leases ``{task_id: owner}`` still held."""
        if not leases:
            return 0
        with self._transaction(durable=False) as conn:
            cursor = conn.executemany(
                "UPDATE tasks SET lease_expiry = ? WHERE id = ? AND lease_owner = ?"
                " AND state IN (?, ?)",
                [(lease_expiry, tid, owner, *ACTIVE_STATES) for tid, owner in leases.items()],
            )
            return cursor.rowcount

    def finish(
        self,
        task_id: str,
        owner: str,
        *,
        state: str,
        now: float,
        status: int | None = None,
        error: str | None = None,
        due: float | None = None,
    ) -> str | None:
        """Record a run's result if ``owner`` still holds the lease; return the state written
        (``Stopped`` when the task was asked to stop meanwhile) or None when the lease was lost.

        ``state`` is ``Succeeded``, ``Failed`` or ``Retrying`` (then ``due`` is the next run).
        """
        if state not in (SUCCEEDED, FAILED, RETRYING):
            raise ValueError(f"cannot finish a run as {state!r}")
        finish = _Finish(task_id, owner, state, now, status, error, due)
        written: str | None = self._writer().submit(_Write(self._finish_in, finish, False))
        return written

    def _finish_in(self, conn: sqlite3.Connection, finish: _Finish) -> str | None:
        """One result inside a batch's transaction (see :meth:`finish`)."""
        task_id, owner, state, now = finish.task_id, finish.owner, finish.state, finish.now
        row = conn.execute(
            "SELECT state FROM tasks WHERE id = ? AND lease_owner = ? AND state IN (?, ?)",
            (task_id, owner, *ACTIVE_STATES),
        ).fetchone()
        if row is None:
            return None
        if row[0] == STOPPING:
            state = STOPPED
        ended = None if state == RETRYING else now
        due = finish.due if state == RETRYING else None
        conn.execute(
            "UPDATE tasks SET state = ?, updated = ?, ended = ?, status = ?, last_error = ?,"
            " due = COALESCE(?, due), lease_owner = NULL, lease_expiry = NULL WHERE id = ?",
            (state, now, ended, finish.status, finish.error, due, task_id),
        )
        return state

    def release(self, task_id: str, owner: str, *, now: float | None = None) -> bool:
        """Give a lease back at shutdown: the task is due again at once, elsewhere or after a
        restart. The interrupted run still counts in ``attempts`` (the app may have started)."""
        now = self._clock() if now is None else now
        with self._transaction(durable=False) as conn:
            cursor = conn.execute(
                "UPDATE tasks SET state = CASE WHEN state = ? THEN ?"
                " WHEN attempts > 1 THEN ? ELSE ? END,"
                " ended = CASE WHEN state = ? THEN ? ELSE ended END,"
                " updated = ?, due = ?, lease_owner = NULL, lease_expiry = NULL"
                " WHERE id = ? AND lease_owner = ? AND state IN (?, ?)",
                (STOPPING, STOPPED, RETRYING, ENQUEUED, STOPPING, now, now, now)
                + (task_id, owner, *ACTIVE_STATES),
            )
            return cursor.rowcount == 1

    def prune(self, *, before: float) -> int:
        """Delete finished tasks last updated before ``before``; return how many."""
        marks = ", ".join("?" * len(FINISHED_STATES))
        with self._transaction(durable=False) as conn:
            cursor = conn.execute(
                f"DELETE FROM tasks WHERE state IN ({marks}) AND updated < ?",
                (*FINISHED_STATES, before),
            )
            return cursor.rowcount

    # -- the operator path (fc-wsgi tasks) ---------------------------------------------------

    def get(self, task_id: str) -> TaskRecord | None:
        """The task with this id, or else the one with this request id, with its request."""
        with self._transaction(write=False) as conn:
            row = conn.execute(
                f"SELECT {_SUMMARY}, environ, body FROM tasks WHERE id = ?"
                f" UNION ALL SELECT {_SUMMARY}, environ, body FROM tasks WHERE request_id = ?"
                " LIMIT 1",
                (task_id, task_id),
            ).fetchone()
        if row is None:
            return None
        return dataclasses.replace(_record(row[:-2]), request=_decode_request(row[-2], row[-1]))

    def list_tasks(
        self,
        *,
        limit: int = 100,
        state: str | None = None,
        since: float | None = None,
        after: PageCursor | None = None,
    ) -> list[TaskRecord]:
        """Newest first, without requests: in ``state``, created at or after ``since``, listed
        after the cursor ``after`` (the previous page's last task). Every filter is an index
        range (``tasks_state_created_id``, ``tasks_created_id``), never a scan or an OFFSET."""
        query, args = _listing(state, since, after)
        with self._transaction(write=False) as conn:
            rows = conn.execute(query + " LIMIT ?", (*args, limit))
            return [_record(row) for row in rows.fetchall()]

    def counts(self) -> dict[str, int]:
        """Tasks per state (every state present, zero included)."""
        with self._transaction(write=False) as conn:
            found = dict(conn.execute("SELECT state, COUNT(*) FROM tasks GROUP BY state"))
        return {state: found.get(state, 0) for state in STATES}

    def retry(self, task_id: str, *, now: float | None = None) -> TaskRecord:
        """Run a task again now, from attempt 1, its age counted afresh. Refused while it holds
        a lease (:class:`TaskBusy`). Accepts the task id or the request id."""
        now = self._clock() if now is None else now
        with self._transaction() as conn:
            row = _id_and_state(conn, task_id)
            if row[1] in ACTIVE_STATES:
                raise TaskBusy(f"task {row[0]!r} is {row[1]}; retry it once it has finished")
            conn.execute(
                "UPDATE tasks SET state = ?, attempts = 0, enqueued = ?, updated = ?, due = ?,"
                " started = NULL, ended = NULL, last_error = NULL, status = NULL WHERE id = ?",
                (ENQUEUED, now, now, now, row[0]),
            )
            task_id = row[0]
        record = self.get(task_id)
        if record is None:  # pruned in between: vanishingly rare
            raise TaskNotFound(f"no task {task_id!r}")
        return record

    def stop(self, task_id: str, *, now: float | None = None) -> TaskRecord:
        """FC's StopAsyncTask: a waiting task becomes ``Stopped`` and never runs; a running
        one ``Stopping`` (its run's result is recorded as ``Stopped``: no retry, no
        destination). :class:`TaskFinished` for a finished task. Accepts the request id."""
        now = self._clock() if now is None else now
        with self._transaction() as conn:
            task_id, state = _id_and_state(conn, task_id)
            if state in FINISHED_STATES:
                raise TaskFinished(f"task {task_id!r} is {state}; only waiting or running"
                                   " tasks can be stopped")  # fmt: skip
            if state != STOPPING:
                new = STOPPING if state == RUNNING else STOPPED
                conn.execute(
                    "UPDATE tasks SET state = ?, updated = ?, ended = ? WHERE id = ?",
                    (new, now, now if new == STOPPED else None, task_id),
                )
        record = self.get(task_id)
        if record is None:  # pruned in between: vanishingly rare
            raise TaskNotFound(f"no task {task_id!r}")
        return record

    def integrity_check(self) -> list[str]:
        """SQLite's ``PRAGMA integrity_check``: an empty list when the file is sound."""
        with self._transaction(write=False) as conn:
            problems = [row[0] for row in conn.execute("PRAGMA integrity_check")]
        return [] if problems == ["ok"] else problems


def _id_and_state(conn: sqlite3.Connection, task_id: str) -> tuple[str, str]:
    """The task named by its task id or its request id (what the CLI is given)."""
    row = conn.execute(
        "SELECT id, state FROM tasks WHERE id = ? OR request_id = ? LIMIT 1", (task_id, task_id)
    ).fetchone()
    if row is None:
        raise TaskNotFound(f"no task {task_id!r}")
    return row[0], row[1]


def _listing(
    state: str | None, since: float | None, after: PageCursor | None
) -> tuple[str, tuple[Any, ...]]:
    """The SELECT of :meth:`Journal.list_tasks` (without its LIMIT) and its arguments."""
    where, args = [], list[Any]()
    if state is not None:
        where.append("state = ?")
        args.append(state)
    if since is not None:
        where.append("created >= ?")
        args.append(since)
    if after is not None:
        where.append("(created, id) < (?, ?)")
        args.extend(after)
    clause = f" WHERE {' AND '.join(where)}" if where else ""
    return f"SELECT {_SUMMARY} FROM tasks{clause} ORDER BY created DESC, id DESC", tuple(args)


def _create_private_file(path: str) -> None:
    """Create the journal's directory, and the file itself with mode 0600, if missing."""
    if os.path.exists(path) or path == ":memory:":
        return
    directory = os.path.dirname(path)
    if directory:
        os.makedirs(directory, exist_ok=True)
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))


def _record(row: tuple[Any, ...]) -> TaskRecord:
    return TaskRecord(*row)


def _decode_request(environ_json: str, body: bytes) -> StoredRequest | None:
    try:
        environ = json.loads(environ_json)
    except ValueError:
        return None
    if not isinstance(environ, dict):
        return None
    return StoredRequest(environ=environ, body=bytes(body))


def _translate(exc: sqlite3.Error, path: str) -> StoreError:
    name = getattr(exc, "sqlite_errorname", "")
    text = str(exc)
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "locked" in text:
        return StoreBusy(f"journal {path} is locked: {text}")
    return StoreError(f"journal {path}: {text}")
