"""Replacing a worker that can no longer be trusted: after a timeout or a failed initializer.

FC stops an instance whose invocation timed out and starts a fresh one, which runs the
initializer again (fc-spec-runtime.md 14.5, 15). A Python thread cannot be killed safely, so
the gunicorn worker that ran such an invocation is asked to exit gracefully once its current
requests are answered; gunicorn's arbiter then forks a fresh worker. Outside gunicorn (tests,
``wsgiref``) there is no worker to replace: the request is logged and the process serves on.
"""

from __future__ import annotations

import logging
import os
from typing import Any

log = logging.getLogger(__name__)

#: The gunicorn worker of this process, bound by serve.py's ``post_worker_init`` hook.
_worker: Any = None


def bind_worker(worker: Any) -> None:
    """Remember this process's gunicorn worker (called in the worker after it started)."""
    global _worker
    _worker = worker


def recycle_worker(reason: str) -> bool:
    """Ask the worker to exit after its current requests; False when there is none."""
    worker = _worker
    if worker is None:
        log.warning("pid %d: %s (no gunicorn worker to replace)", os.getpid(), reason)
        return False
    log.warning("worker %d: %s; it exits and gunicorn starts a fresh one", os.getpid(), reason)
    worker.handle_exit(None, None)  # SIGTERM's handler: stop accepting, finish, exit
    return True
