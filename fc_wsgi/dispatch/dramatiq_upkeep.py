"""Heartbeats and dead-worker maintenance for ``fc-wsgi worker``, on a clock, not by chance.

FC runs an accepted async request at least once (fc-spec.md section 11); a worker killed with
SIGKILL must not take its tasks with it. Dramatiq's Redis broker requeues the unacknowledged
messages of a worker whose heartbeat is older than ``heartbeat_timeout``, but only in a
*maintenance pass*, which it runs on a random 0.1 % of broker commands, and a worker's
heartbeat is only the time of its last broker command. On a quiet system the pass may not come
for many minutes (measured: a killed worker's task had not run again after 180 s), and a busy
worker whose consumers are full sends no command at all.

So each worker process runs one thread that, every third of ``heartbeat_timeout``, sends a
broker command with maintenance forced on, for the task queue and its delay queue: that is
this process's heartbeat and a maintenance pass, at once. The first goes out when the worker
boots. With fc-wsgi's default ``heartbeat_timeout`` of 15 s (Dramatiq's is 60 s), a killed
worker's running and prefetched messages are back in the queue at most about 20 s after the
kill (15 s to be declared dead, then up to 5 s to the next pass by any live worker or a
restarted one), and a live worker has missed three heartbeats before anyone may think it dead.

The command is Dramatiq's own ``dispatch`` script (``qsize``: a read) called with its
documented argument order; this relies on Dramatiq 1.x/2.x's Redis broker internals
(``scripts``, ``broker_id``), which have kept that order since 1.0.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

from dramatiq.common import current_millis, dq_name
from dramatiq.middleware import Middleware

if TYPE_CHECKING:
    from dramatiq import Broker, Worker
    from dramatiq.brokers.redis import RedisBroker

log = logging.getLogger(__name__)

#: Heartbeats (each with a maintenance pass) per ``heartbeat_timeout``.
BEATS_PER_TIMEOUT = 3


class Upkeep(Middleware):
    """Sends this worker process's heartbeat and a dead-worker maintenance pass on a timer."""

    def __init__(self, queue_name: str) -> None:
        self.queues = (queue_name, dq_name(queue_name))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def after_worker_boot(self, broker: Broker, worker: Worker) -> None:
        redis_broker: RedisBroker = broker  # type: ignore[assignment]
        interval_seconds = redis_broker.heartbeat_timeout / 1000 / BEATS_PER_TIMEOUT
        self.beat(redis_broker)  # at start: a dead predecessor's messages come back now
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._loop,
            args=(redis_broker, interval_seconds),
            name="fc-wsgi-upkeep",
            daemon=True,
        )
        self._thread.start()

    def after_worker_shutdown(self, broker: Broker, worker: Worker) -> None:
        # After, not before: running tasks finish during the shutdown and must keep beating.
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def beat(self, broker: RedisBroker) -> None:
        """One heartbeat and maintenance pass over the task queue and its delay queue."""
        internals: Any = broker  # scripts and _max_unpack_size are untyped
        dispatch = internals.scripts["dispatch"]
        for queue_name in self.queues:
            try:
                dispatch(
                    args=[
                        "qsize", current_millis(), queue_name, broker.broker_id,
                        broker.heartbeat_timeout, broker.dead_message_ttl,
                        1,  # do_maintenance
                        internals._max_unpack_size(),
                    ],
                    keys=[broker.namespace],
                )  # fmt: skip
            except Exception as exc:  # Redis away: beat again later, the worker goes on
                log.warning("dramatiq heartbeat on %s failed: %s", queue_name, exc)

    def _loop(self, broker: RedisBroker, interval_seconds: float) -> None:
        while not self._stop.wait(interval_seconds):
            self.beat(broker)
