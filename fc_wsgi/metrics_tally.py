"""Tally: per-request counts in plain process memory, handed to prometheus_client in batches.

prometheus_client's multiprocess mode takes a lock and writes an mmap'd file for each
increment: a request's counter and duration histogram cost about 3 µs that way, enough to
pull the served stack under issue 15's 0.85x of the bare app. A :class:`Tally` counts under
one lock into a dict and a list instead, and a flush hands the deltas over in one write per
changed value: every :data:`FLUSH_INTERVAL_SECONDS` from a daemon thread started by the first
count in a process (after a fork too: a gunicorn worker is forked from the master), at
``atexit``, and from gunicorn's ``worker_exit`` hook (:mod:`fc_wsgi.serve`). The trade-off:
the metrics endpoint lags the requests by up to about a second.

At a fork the child forgets what its parent had not flushed yet (the parent flushes that
itself) and makes a fresh lock, so nothing is counted twice and no lock is inherited held.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import weakref
from bisect import bisect_left
from collections.abc import Callable, Hashable, Sequence
from typing import Any, Generic, TypeVar

log = logging.getLogger(__name__)

#: How often the counts reach the metric files, in seconds: the endpoint's lag at most.
FLUSH_INTERVAL_SECONDS = 1.0

K = TypeVar("K", bound=Hashable)
#: Receives a flush: counts by key, observations per bucket (not cumulative), their sum.
Sink = Callable[[dict[K, int], list[int], float], None]


class Tally(Generic[K]):
    """Counts by key and a histogram of seconds over ``bounds`` (ascending, the last one
    ``inf``: each value lands in the first bucket whose bound is >= it, as in Prometheus)."""

    def __init__(
        self,
        bounds: Sequence[float],
        sink: Sink[K],
        *,
        interval_seconds: float = FLUSH_INTERVAL_SECONDS,
    ) -> None:
        self._bounds = tuple(bounds)
        self._sink = sink
        self._interval_seconds = interval_seconds
        self._started = False  # the flush thread of this process
        self._reset()
        _tallies.add(self)

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[K, int] = {}
        self._buckets = [0] * len(self._bounds)
        self._sum_seconds = 0.0

    def add(self, key: K, seconds: float) -> None:
        """Count one ``key`` and observe ``seconds``."""
        if not self._started:
            self._start()
        index = bisect_left(self._bounds, seconds)
        with self._lock:
            counts = self._counts
            counts[key] = counts.get(key, 0) + 1
            self._buckets[index] += 1
            self._sum_seconds += seconds

    def flush(self) -> None:
        """Hand what was counted since the last flush to the sink (nothing if nothing was)."""
        with self._lock:
            counts, buckets, sum_seconds = self._counts, self._buckets, self._sum_seconds
            if not counts:
                return
            self._counts, self._buckets, self._sum_seconds = {}, [0] * len(buckets), 0.0
        self._sink(counts, buckets, sum_seconds)

    def _start(self) -> None:
        with self._lock:
            if self._started:
                return
            self._started = True
        thread = threading.Thread(
            target=_flush_every, args=(weakref.ref(self), self._interval_seconds),
            name="fc-wsgi-metrics-flush", daemon=True,
        )  # fmt: skip
        thread.start()

    def _after_fork(self) -> None:
        self._started = False
        self._reset()


def _flush_every(ref: weakref.ref[Tally[K]], interval_seconds: float) -> None:
    """The flush thread: ends when its tally is gone."""
    while True:
        time.sleep(interval_seconds)
        tally = ref()
        if tally is None:
            return
        _flush_logged(tally)
        del tally


_tallies: weakref.WeakSet[Tally[Any]] = weakref.WeakSet()


def flush_all() -> None:
    """Flush every tally of this process (at exit: the flush thread is a daemon)."""
    for tally in list(_tallies):
        _flush_logged(tally)


def _flush_logged(tally: Tally[Any]) -> None:
    try:
        tally.flush()
    except Exception:  # that batch is lost; the next ones are not
        log.exception("metrics flush failed")


def _after_fork_in_child() -> None:
    for tally in list(_tallies):
        tally._after_fork()


atexit.register(flush_all)
os.register_at_fork(after_in_child=_after_fork_in_child)
