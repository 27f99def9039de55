"""Replacing a worker that can no longer be trusted: after a timeout or a failed initializer.

FC stops an instance whose invocation timed out and starts a fresh one, which runs the
initializer again (fc-spec-runtime.md 14.5, 15). A Python thread cannot be killed safely, so
the gunicorn worker that ran such an invocation is asked to exit gracefully once its current
requests are answered; gunicorn's arbiter then forks a fresh worker. Outside gunicorn (tests,
``wsgiref``) there is no worker to replace: the request is logged and the process serves on.

A call blocked in a system call on a gthread worker's thread cannot be stopped at all (see
timeout.py): gunicorn would wait for its connection up to ``graceful_timeout``, and Python's
exit would then wait for the thread. So while such a call is stuck, the worker, once stopping
with no other connection open, runs its ``worker_exit`` hook and leaves at once.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

#: The gunicorn worker of this process, bound by serve.py's ``post_worker_init`` hook.
_worker: Any = None


def bind_worker(worker: Any) -> None:
    """Remember this process's gunicorn worker (called in the worker after it started)."""
    global _worker
    _worker = worker


#: How often a stopping worker looks whether only stuck calls keep it, in seconds.
POLL_SECONDS = 0.05


def recycle_worker(reason: str, stuck: Callable[[], int] | None = None) -> bool:
    """Ask the worker to exit after its current requests; False when there is none.

    ``stuck()`` counts the calls that could not be stopped: the worker does not wait for them.
    """
    worker = _worker
    if worker is None:
        log.warning("pid %d: %s (no gunicorn worker to replace)", os.getpid(), reason)
        return False
    log.warning("worker %d: %s; it exits and gunicorn starts a fresh one", os.getpid(), reason)
    worker.handle_exit(None, None)  # SIGTERM's handler: stop accepting, finish, exit
    if stuck is not None:
        threading.Thread(
            target=_leave_stuck_calls, args=(worker, stuck), name="fc-recycle", daemon=True
        ).start()
    return True


def _leave_stuck_calls(worker: Any, stuck: Callable[[], int]) -> None:
    """Exit once the stopping worker's only open connections are those of stuck calls (a
    daemon thread: if they come back, the worker's own exit ends it)."""
    while True:
        time.sleep(POLL_SECONDS)
        count = stuck()
        # gthread counts its open connections; other workers run no call off the main thread.
        if count and not worker.alive and getattr(worker, "nr_conns", count + 1) <= count:
            log.warning("worker %d: leaving %d call(s) blocked past their deadline",
                        os.getpid(), count)  # fmt: skip
            try:
                worker.cfg.worker_exit(None, worker)  # flush metrics, drain async tasks
            finally:
                logging.shutdown()
                os._exit(0)
