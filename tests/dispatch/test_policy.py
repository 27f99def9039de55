"""FC's retry policy for async runs (fc-spec.md 11) and what a finished run delivers."""

from __future__ import annotations

import pytest

from fc_wsgi.dispatch import StoredRequest, TaskRecord
from fc_wsgi.dispatch.destinations import EVENT_AGE_EXCEEDED, RETRIES_EXHAUSTED, SUCCESS
from fc_wsgi.dispatch.policy import (
    MAX_BACKOFF_SECONDS,
    RetryPolicy,
    claimed_condition,
    recorded_condition,
)
from fc_wsgi.dispatch.runner import Outcome

OK = Outcome(200, [], b"ok")
FAILED_RUN = Outcome(None, [], b"", "ValueError: boom", "UnhandledInvocationError")


def task(state: str = "Running", attempts: int = 1) -> TaskRecord:
    return TaskRecord(
        "t1", "r1", state, attempts, 0.0, 0.0, 0.0, 0.0, None, None, "why", None, None, None,
        "POST", "/", StoredRequest({}, b""),
    )  # fmt: skip


@pytest.mark.parametrize(
    ("attempts", "expected"),
    [
        pytest.param(1, ("Retrying", 0.5), id="first failure: 0.5 s"),
        pytest.param(2, ("Retrying", 1.0), id="second: 1 s"),
        pytest.param(3, ("Retrying", 2.0), id="third: 2 s"),
        pytest.param(4, ("Failed", None), id="retries exhausted"),
    ],
)
def test_failures_back_off_doubling_until_the_retries_are_spent(attempts, expected):
    assert RetryPolicy(max_async_retry_attempts=3).judge(attempts, FAILED_RUN) == expected


def test_success_is_final_and_no_retry_policy_fails_at_once():
    assert RetryPolicy().judge(1, OK) == ("Succeeded", None)
    assert RetryPolicy(max_async_retry_attempts=0).judge(1, FAILED_RUN) == ("Failed", None)
    assert RetryPolicy(max_async_retry_attempts=0).max_attempts == 1


def test_backoff_is_capped():
    policy = RetryPolicy(max_async_retry_attempts=8, retry_base_seconds=1000.0)
    assert policy.judge(8, FAILED_RUN) == ("Retrying", MAX_BACKOFF_SECONDS)


@pytest.mark.parametrize(
    ("state", "condition"),
    [("Expired", EVENT_AGE_EXCEEDED), ("Failed", RETRIES_EXHAUSTED), ("Stopped", None)],
)
def test_a_claim_that_finished_the_task_delivers_its_condition(state, condition):
    assert claimed_condition(task(state)) == condition


@pytest.mark.parametrize(
    ("written", "outcome", "condition"),
    [
        ("Succeeded", OK, SUCCESS),
        ("Failed", FAILED_RUN, RETRIES_EXHAUSTED),
        ("Retrying", FAILED_RUN, None),
        ("Stopped", OK, None),  # FC's StopAsyncTask: never delivered
        (None, OK, None),  # the lease was lost: another run records the result
    ],
)
def test_a_recorded_run_delivers_only_final_outcomes(written, outcome, condition):
    assert recorded_condition(task(), written, outcome, 0.5) == condition
