"""Group commit: concurrent accepts share one transaction and one fsync, each its own answer.

FC answers an async request 202 only once it is persisted (fc-spec.md section 11), so every
accept waits for a durable commit; one fsync per request caps a server at about one accept per
fsync. Here the first caller to arrive while nobody commits becomes the *leader*: it commits at
once what is queued (itself, when idle: no added latency) and meanwhile later callers queue up;
when its commit returns, each caller of the batch gets its own outcome (its result, or its own
exception: a duplicate id, a full queue) and the next waiter leads the batch that gathered
during that fsync. A failure of the whole commit (I/O error, lock timeout) is every caller's
failure, so no caller is told "stored" for a row that is not on disk.

There is no committer thread: a leader is a request thread doing what it would have done
alone. Batches are per process (each process has its own connection); processes take turns
on SQLite's write lock. The journal queues the executor's claims and results here too, so
they ride in the accepts' transactions: a transaction costs its page writes and thread
switches more than its rows, fsync or not.
"""

from __future__ import annotations

import copy
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

#: Most items one transaction commits; more wait for the next one.
MAX_BATCH = 256


class _Entry(Generic[T, R]):
    """One caller's item, its outcome, and the lock it sleeps on until woken."""

    __slots__ = ("item", "done", "outcome", "wake")

    def __init__(self, item: T) -> None:
        self.item = item
        self.done = False
        self.outcome: R | BaseException | None = None
        self.wake = threading.Lock()
        self.wake.acquire()  # released once: when done, or when handed the lead


class GroupCommit(Generic[T, R]):
    """Hands queued items to ``commit`` in batches, one batch at a time, leader/follower.

    ``commit(items)`` stores them in one transaction and returns one outcome per item (its
    result, or the exception for that item alone), or raises when the transaction failed.
    Each waiting caller is woken exactly once, by its own lock: a shared condition's
    ``notify_all`` woke every waiter per batch, and those thread switches cost more CPU than
    the commits (measured with perf under gunicorn's gthread worker).
    """

    def __init__(
        self, commit: Callable[[Sequence[T]], Sequence[R | BaseException]], *,
        max_batch: int = MAX_BATCH,
    ) -> None:  # fmt: skip
        self._commit = commit
        self._max_batch = max_batch
        self._lock = threading.Lock()
        self._queue: list[_Entry[T, R]] = []  # waiting to be committed, oldest first
        self._leading = False
        self._items = 0
        #: Transactions by batch size, bucketed by powers of two (1, 2, 4, ...: 4 counts 4-7).
        self.batch_sizes: Counter[int] = Counter()

    def submit(self, item: T) -> R:
        """Commit ``item`` with whatever else is queued; its result, or raise its own error."""
        entry: _Entry[T, R] = _Entry(item)
        with self._lock:
            self._queue.append(entry)
            lead = not self._leading
            self._leading = True
        if not lead:
            entry.wake.acquire()  # done by another leader, or handed the lead
            lead = not entry.done
        while not entry.done:  # leading: commit what gathered (ours, unless a batch is full)
            with self._lock:
                batch = self._queue[: self._max_batch]
                del self._queue[: self._max_batch]
            self._run(batch, entry)
        if lead:
            self._hand_over()
        outcome, entry.outcome = entry.outcome, None
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome  # type: ignore[return-value]  # done: a result of type R

    def stats(self) -> tuple[int, int, dict[int, int]]:
        """``(transactions, items, {bucket: transactions})`` committed so far."""
        with self._lock:
            sizes = dict(sorted(self.batch_sizes.items()))
            return sum(sizes.values()), self._items, sizes

    def _hand_over(self) -> None:
        """The leader is done: wake the oldest waiter to lead the next batch, or stand down."""
        with self._lock:
            if self._queue:
                self._queue[0].wake.release()
            else:
                self._leading = False

    def _run(self, batch: list[_Entry[T, R]], leader: _Entry[T, R]) -> None:
        outcomes: list[R | BaseException]
        try:
            outcomes = list(self._commit([entry.item for entry in batch]))
            if len(outcomes) != len(batch):
                raise RuntimeError(f"{len(outcomes)} outcomes for {len(batch)} items")
        except BaseException as exc:
            # Each caller raises its own copy: one exception object raised in many threads
            # would collect all their tracebacks.
            outcomes = [_copy(exc) for _ in batch]
        with self._lock:
            self.batch_sizes[1 << (len(batch).bit_length() - 1)] += 1
            self._items += len(batch)
        for entry, outcome in zip(batch, outcomes, strict=True):
            entry.outcome, entry.done = outcome, True
            if entry is not leader:
                entry.wake.release()


def _copy(exc: BaseException) -> BaseException:
    clone = copy.copy(exc)
    clone.__cause__ = exc.__cause__ or exc
    return clone
