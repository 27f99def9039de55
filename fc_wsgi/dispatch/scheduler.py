"""The delay queue and the bounded pool that run async tasks when they fall due.

FC starts an async request after its ``x-fc-async-delay`` and re-runs failures after a backoff
(fc-spec.md section 11). Here a heap of due times and a ``threading.Condition`` decide when: the
one scheduler thread sleeps until the earliest due time, a local enqueue (``push``), a free
worker slot or the next journal rescan, never spinning. The decision itself is
:meth:`DelayQueue.pop_due`, a pure function of ``now`` tested with an injected clock.

Tasks enqueued by other processes sharing the journal, and tasks whose owner died, are not
pushed here; the ``rescan`` callback finds them. It runs every ``rescan_interval_seconds``
(default 1 s) and returns ``(task_id, due)`` pairs falling due before the next rescan, so such a
task starts at most about one interval late. A rescan reads at most ``rescan_page`` tasks; when
it fills its page with tasks it had not seen, the next page is read as soon as the local queue
is empty, not an interval later, so a backlog (after a restart, or accepted by another process)
drains as fast as the pool runs it. The pool is a ``ThreadPoolExecutor`` of
``workers`` threads and the scheduler never hands it more tasks than it has free threads: the
rest stay in the journal, where an idle process sharing it can take them.
"""

from __future__ import annotations

import heapq
import logging
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor

from ..common import Clock

log = logging.getLogger(__name__)

#: How often the journal is re-read for tasks from other processes and expired leases, seconds.
RESCAN_INTERVAL_SECONDS = 1.0


class DelayQueue:
    """Task ids by due time. Not thread-safe: :class:`Scheduler` holds its condition's lock."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, str]] = []
        self._due: dict[str, float] = {}  # the live entry per id; other heap entries are stale

    def __len__(self) -> int:
        return len(self._due)

    def __contains__(self, task_id: object) -> bool:
        return task_id in self._due

    def push(self, task_id: str, due: float) -> bool:
        """Queue ``task_id`` for ``due``; a later push for a queued id only ever moves it
        earlier. Returns True when this became the earliest entry (the sleeper must wake)."""
        current = self._due.get(task_id)
        if current is not None and current <= due:
            return False
        self._due[task_id] = due
        heapq.heappush(self._heap, (due, task_id))
        return self._heap[0] == (due, task_id)

    def pop_due(self, now: float, limit: int) -> tuple[list[str], float | None]:
        """Take up to ``limit`` ids due at ``now`` (earliest first) and return them with the
        due time of the next entry left, or None when the queue is empty."""
        heap, live = self._heap, self._due
        ready: list[str] = []
        while heap:
            due, task_id = heap[0]
            if live.get(task_id) != due:  # superseded by an earlier push, or already popped
                heapq.heappop(heap)
                continue
            if due > now or len(ready) >= limit:
                return ready, due
            heapq.heappop(heap)
            del live[task_id]
            ready.append(task_id)
        return ready, None

    def clear(self) -> None:
        self._heap.clear()
        self._due.clear()


class Scheduler:
    """Runs ``run(task_id)`` on a bounded pool when each queued task falls due."""

    def __init__(
        self,
        run: Callable[[str], None],
        *,
        workers: int,
        rescan: Callable[[float], Iterable[tuple[str, float]]] | None = None,
        rescan_interval_seconds: float = RESCAN_INTERVAL_SECONDS,
        clock: Clock = time.time,
        name: str = "fc-wsgi-async",
        rescan_page: int | None = None,
    ) -> None:
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        self._run = run
        self._workers = workers
        self._rescan = rescan
        self._rescan_interval_seconds = rescan_interval_seconds
        self._rescan_page = rescan_page
        self._last_page: set[str] = set()
        self._more = False  # the last rescan filled its page: the journal holds more
        self._clock = clock
        self._name = name
        self._queue = DelayQueue()
        self._cond = threading.Condition()
        self._busy = 0
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._executor: ThreadPoolExecutor | None = None

    @property
    def busy(self) -> int:
        """Tasks handed to the pool and not finished yet."""
        return self._busy

    def start(self) -> None:
        with self._cond:
            if self._thread is not None:
                return
            self._executor = ThreadPoolExecutor(self._workers, thread_name_prefix=self._name)
            # A daemon: it holds no task state, and must not keep a dying process alive.
            self._thread = threading.Thread(
                target=self._loop, name=f"{self._name}-scheduler", daemon=True
            )
            self._thread.start()

    def push(self, task_id: str, due: float) -> None:
        """Queue a task id; wakes the scheduler thread when it is the new earliest."""
        with self._cond:
            if self._queue.push(task_id, due):
                self._cond.notify()

    def wake(self) -> None:
        """Re-check the queue now (tests that move an injected clock call this)."""
        with self._cond:
            self._cond.notify()

    def stop(
        self, timeout: float | None = None, *, on_wait: Callable[[], None] | None = None
    ) -> bool:
        """Start nothing more, then wait up to ``timeout`` seconds for running tasks.

        ``on_wait`` is called about every second while waiting (the dispatcher renews its
        leases there, since the scheduler thread that normally does it has stopped). Returns
        True when every running task finished; otherwise they keep running on their threads,
        and the pool is left to finish them without us.
        """
        with self._cond:
            self._stopping = True
            self._queue.clear()
            self._cond.notify_all()
            thread, executor = self._thread, self._executor
        if thread is not None:
            thread.join()
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._busy:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    break
                self._cond.wait(1.0 if left is None else min(left, 1.0))
                if self._busy and on_wait is not None:
                    on_wait()
            finished = self._busy == 0
        if executor is not None:
            executor.shutdown(wait=finished, cancel_futures=True)
        return finished

    # -- the sleeping thread: decide with pop_due, then wait ---------------------------------

    def _loop(self) -> None:
        next_rescan = 0.0  # time.monotonic() of the next rescan
        while True:
            if self._rescan is not None and time.monotonic() >= next_rescan:
                self._rescan_once(self._rescan)
                next_rescan = time.monotonic() + self._rescan_interval_seconds
            with self._cond:
                if self._stopping:
                    return
                now = self._clock()
                ready, next_due = self._queue.pop_due(now, self._workers - self._busy)
                for task_id in ready:
                    self._submit(task_id)
                if self._more and not self._queue and self._busy < self._workers:
                    next_rescan = 0.0  # read the journal's next page now
                    continue
                if ready:
                    continue
                timeout = self._rescan_interval_seconds
                if self._rescan is not None:
                    timeout = next_rescan - time.monotonic()
                if next_due is not None and self._busy < self._workers:
                    timeout = min(timeout, next_due - now)
                if timeout > 0:
                    self._cond.wait(timeout)

    def _rescan_once(self, rescan: Callable[[float], Iterable[tuple[str, float]]]) -> None:
        try:
            found = list(rescan(self._clock()))
        except Exception as exc:  # a locked or broken journal must not kill the scheduler
            log.warning("async journal rescan failed, trying again later: %s", exc)
            with self._cond:
                self._more = False
            return
        page = {task_id for task_id, _ in found}
        with self._cond:
            # More only when the page was full of tasks not all seen last time: the same page
            # again means its claims fail (or another process is slow to take them), and then
            # reading it in a loop would only burn CPU.
            full = self._rescan_page is not None and len(found) >= self._rescan_page
            self._more = full and not page <= self._last_page
            self._last_page = page
            for task_id, due in found:
                self._queue.push(task_id, due)

    def _submit(self, task_id: str) -> None:
        # Called with self._cond held, after start() made the pool.
        executor = self._executor
        if executor is None:
            return
        self._busy += 1
        try:
            executor.submit(self._run_one, task_id)
        except RuntimeError:  # the pool was shut down meanwhile
            self._busy -= 1

    def _run_one(self, task_id: str) -> None:
        try:
            self._run(task_id)
        except Exception:
            log.exception("async task %s: unexpected error in the runner", task_id)
        finally:
            with self._cond:
                self._busy -= 1
                self._cond.notify_all()
