"""The concurrency cap: ``maxInstances × instanceConcurrency`` invocations at once (section 16).

FC creates instances up to the function's maximum and gives each ``instanceConcurrency``
requests; beyond that it answers 429 ``ResourceExhausted`` at once, without queueing (open
questions 5, 6). Here an instance is a gunicorn worker process, so the count must be shared by
every worker of a server and must never go above the cap, even while workers die:

- :class:`SharedSlots` (``fc-wsgi serve``): a process-shared semaphore made in the gunicorn
  master before it forks, so ``acquire`` is one atomic ``sem_trywait``. Each worker also keeps
  how many slots it holds in its own row of a shared array (row given by the master in
  ``pre_fork``); when a worker dies, the master's ``child_exit`` hook gives its slots back. A
  slot is taken before the row is incremented and the row decremented before the slot is given
  back, so a worker killed between the two steps can only leak a slot, never add one.
- :class:`LocalSlots`: a counter under a lock, for one process (tests, the project server,
  plain gunicorn, where each worker then caps itself at ``maxInstances × instanceConcurrency``).
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import threading
import time
from multiprocessing.sharedctypes import RawArray
from typing import Any, Protocol

log = logging.getLogger(__name__)


class Slots(Protocol):
    capacity: int

    def acquire(self, wait_seconds: float = 0.0) -> bool: ...

    def release(self) -> None: ...


class LocalSlots:
    """At most ``capacity`` holders in this process.

    The free slots are tokens in a list, whose ``pop`` and ``append`` are atomic under the GIL:
    taking and giving back a slot takes no lock (the sync path runs on every request); only an
    async run that waits for a slot sleeps on a condition, which ``release`` then notifies.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._tokens = [True] * capacity
        self._changed = threading.Condition(threading.Lock())
        self._waiting = 0

    def acquire(self, wait_seconds: float = 0.0) -> bool:
        try:
            return self._tokens.pop()
        except IndexError:
            if wait_seconds <= 0:
                return False
        deadline = time.monotonic() + wait_seconds
        with self._changed:
            self._waiting += 1  # before the next try: a release after it will notify us
            try:
                while True:
                    try:
                        return self._tokens.pop()
                    except IndexError:
                        left = deadline - time.monotonic()
                        if left <= 0:
                            return False
                        self._changed.wait(left)
            finally:
                self._waiting -= 1

    def release(self) -> None:
        self._tokens.append(True)
        if self._waiting:
            with self._changed:
                self._changed.notify()


class SharedSlots:
    """At most ``capacity`` holders across the forked workers of one gunicorn server."""

    def __init__(self, capacity: int, rows: int) -> None:
        self.capacity = capacity
        self._semaphore = multiprocessing.get_context("fork").Semaphore(capacity)
        self._held = RawArray(ctypes.c_int, rows)  # slots held, per worker row
        self._rows_free = list(range(rows))  # master side only
        self._row = -1  # worker side: this process's row (-1: untracked)
        self._row_lock = threading.Lock()

    # master side (gunicorn hooks, single-threaded)
    def assign_row(self) -> int:
        """A free row for the worker about to be forked (-1 when none is left)."""
        return self._rows_free.pop(0) if self._rows_free else -1

    def release_row(self, row: int) -> None:
        """Give back the slots a dead worker held, and its row."""
        if row < 0:
            return
        held, self._held[row] = self._held[row], 0
        for _ in range(held):
            self._semaphore.release()
        if held:
            log.warning("a worker died holding %d invocation slots; released", held)
        self._rows_free.append(row)

    # worker side
    def bind_row(self, row: int) -> None:
        self._row = row
        if row >= 0:
            self._held[row] = 0

    def acquire(self, wait_seconds: float = 0.0) -> bool:
        if wait_seconds > 0:
            taken = self._semaphore.acquire(True, wait_seconds)
        else:
            taken = self._semaphore.acquire(False)
        if taken and self._row >= 0:
            with self._row_lock:
                self._held[self._row] += 1
        return bool(taken)

    def release(self) -> None:
        if self._row >= 0:
            with self._row_lock:
                self._held[self._row] -= 1
        self._semaphore.release()


#: Slots made in the gunicorn master before forking, by function name.
_shared: dict[str, SharedSlots] = {}


def share_slots(name: str, capacity: int, rows: int) -> SharedSlots:
    """Make (in the master, before fork) the shared slots of function ``name``."""
    slots = _shared[name] = SharedSlots(capacity, rows)
    return slots


def slots_for(name: str, capacity: int) -> Slots:
    """The server's shared slots for ``name`` when the master made them, else local ones."""
    shared = _shared.get(name)
    return shared if shared is not None else LocalSlots(capacity)


# gunicorn hooks (serve.py): rows per worker, given in the master, bound in the worker


def before_fork(worker: Any) -> None:
    """Master, ``pre_fork``: give the worker about to be forked a row in every shared count."""
    worker.fc_slot_rows = {name: slots.assign_row() for name, slots in _shared.items()}


def in_worker(worker: Any) -> None:
    """Worker, ``post_worker_init``: count this process's slots in its rows."""
    for name, row in getattr(worker, "fc_slot_rows", {}).items():
        _shared[name].bind_row(row)


def after_exit(worker: Any) -> None:
    """Master, ``child_exit``: release what the dead worker held."""
    for name, row in getattr(worker, "fc_slot_rows", {}).items():
        _shared[name].release_row(row)
