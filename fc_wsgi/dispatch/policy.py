"""FC's retry policy for async runs, and what a finished run means: one copy for both backends.

FC re-runs a failed async invocation up to ``maxAsyncRetryAttempts`` times with a backoff that
starts at 0.5 s and doubles (fc-spec.md section 11), and hands a finished task to its
``onSuccess`` / ``onFailure`` destination. The SQLite executor and the Dramatiq worker apply
exactly this; they differ only in how they wait (the local scheduler, Dramatiq's ``Retry``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from .. import metrics
from .destinations import EVENT_AGE_EXCEEDED, RETRIES_EXHAUSTED, SUCCESS
from .runner import Outcome
from .tasks import EXPIRED, FAILED, RETRYING, STOPPED, SUCCEEDED, TaskRecord

log = logging.getLogger(__name__)

#: First retry's backoff, in seconds; doubled for each further retry (fc-spec.md 11).
RETRY_BASE_SECONDS = 0.5
#: Longest single backoff, in seconds.
MAX_BACKOFF_SECONDS = 3600.0


@dataclass(frozen=True)
class RetryPolicy:
    """When a failed run is tried again, and after how long."""

    max_async_retry_attempts: int = 3
    retry_base_seconds: float = RETRY_BASE_SECONDS

    @property
    def max_attempts(self) -> int:
        """Runs a task may start in all: the first and its retries."""
        return self.max_async_retry_attempts + 1

    def judge(self, attempts: int, outcome: Outcome) -> tuple[str, float | None]:
        """The state to record after run number ``attempts`` (``Succeeded``, ``Retrying`` or
        ``Failed``) and, when ``Retrying``, the backoff before the next run, in seconds."""
        if not outcome.failed:
            return SUCCEEDED, None
        if attempts <= self.max_async_retry_attempts:
            backoff = self.retry_base_seconds * 2 ** (attempts - 1)
            return RETRYING, min(backoff, MAX_BACKOFF_SECONDS)
        return FAILED, None


def claimed_condition(task: TaskRecord, *, function: str | None = None) -> str | None:
    """For a claim that finished ``task`` instead of running it (too old, its workers died
    too often, stopped): log why, and name the destination condition to deliver, if any.
    ``function``: the metrics label of the run (None: the process's)."""
    metrics.count_async_run(task.state, function=function)
    if task.state == EXPIRED:
        log.warning("request %s: async task %s expired, not run", task.request_id, task.id)
        return EVENT_AGE_EXCEEDED
    if task.state == FAILED:
        log.error("request %s: async task %s: %s", task.request_id, task.id, task.last_error)
        return RETRIES_EXHAUSTED
    log.warning("request %s: async task %s is %s", task.request_id, task.id, task.state)
    return None


def recorded_condition(
    task: TaskRecord,
    written: str | None,
    outcome: Outcome,
    backoff: float | None,
    *,
    function: str | None = None,
) -> str | None:
    """Log what the store recorded for a run (``written``: None when the lease was lost), and
    name the destination condition to deliver, if any. Stopped tasks deliver nothing.
    ``function``: the metrics label of the run (None: the process's)."""
    metrics.count_async_run(written, timed_out=outcome.timed_out, function=function)
    rid = task.request_id
    if written is None:
        log.warning("request %s: async task %s lost its lease; result dropped", rid, task.id)
    elif written == RETRYING:
        log.info(
            "request %s: async task %s attempt %d failed (%s); retry in %.1f s",
            rid, task.id, task.attempts, outcome.error, backoff or 0.0,
        )  # fmt: skip
    elif written == SUCCEEDED:
        log.debug("request %s: async task %s succeeded", rid, task.id)
        return SUCCESS
    elif written == FAILED:
        log.error(
            "request %s: async task %s failed after %d attempts: %s",
            rid, task.id, task.attempts, outcome.error,
        )  # fmt: skip
        return RETRIES_EXHAUSTED
    elif written == STOPPED:
        log.info("request %s: async task %s stopped", rid, task.id)
    return None
