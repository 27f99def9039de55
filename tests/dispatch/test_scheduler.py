"""The delay queue decides from an injected ``now``; the scheduler thread only waits."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from support import FakeClock

from fc_wsgi.dispatch.scheduler import DelayQueue, Scheduler

T0 = 1_700_000_000.0


def test_pop_due_takes_due_ids_in_order_and_reports_the_next() -> None:
    queue = DelayQueue()
    queue.push("late", T0 + 30)
    queue.push("b", T0 + 2)
    queue.push("a", T0 + 1)
    assert queue.pop_due(T0, limit=10) == ([], T0 + 1)
    assert queue.pop_due(T0 + 2, limit=10) == (["a", "b"], T0 + 30)
    assert queue.pop_due(T0 + 30, limit=10) == (["late"], None)
    assert len(queue) == 0


@pytest.mark.parametrize(
    ("limit", "taken", "next_due"),
    [
        pytest.param(0, [], T0, id="no free worker"),
        pytest.param(1, ["a"], T0 + 1, id="one free worker"),
        pytest.param(3, ["a", "b", "c"], None, id="limit = queued"),
        pytest.param(4, ["a", "b", "c"], None, id="limit > queued"),
    ],
)
def test_pop_due_never_takes_more_than_the_free_workers(
    limit: int, taken: list[str], next_due: float | None
) -> None:
    queue = DelayQueue()
    for n, task_id in enumerate("abc"):
        queue.push(task_id, T0 + n)
    assert queue.pop_due(T0 + 10, limit) == (taken, next_due)


def test_a_second_push_only_moves_a_task_earlier() -> None:
    queue = DelayQueue()
    assert queue.push("a", T0 + 10) is True  # the new earliest: wake the sleeper
    assert queue.push("b", T0 + 20) is False
    assert queue.push("a", T0 + 30) is False  # later: ignored
    assert queue.push("b", T0 + 5) is True  # earlier: moved, the old entry goes stale
    assert len(queue) == 2 and "b" in queue
    assert queue.pop_due(T0 + 5, limit=10) == (["b"], T0 + 10)
    assert queue.pop_due(T0 + 25, limit=10) == (["a"], None)  # stale b@20 skipped


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def ran() -> dict[str, threading.Event]:
    return {name: threading.Event() for name in ("a", "b", "c", "d", "e")}


@pytest.fixture
def scheduler(clock: FakeClock, ran: dict[str, threading.Event]) -> Iterator[Scheduler]:
    sched = Scheduler(lambda task_id: ran[task_id].set(), workers=2, clock=clock)
    sched.start()
    yield sched
    assert sched.stop(timeout=5)


def test_scheduler_runs_a_task_when_the_clock_reaches_its_due_time(
    scheduler: Scheduler, clock: FakeClock, ran: dict[str, threading.Event]
) -> None:
    scheduler.push("a", T0)
    scheduler.push("b", T0 + 60)
    assert ran["a"].wait(5)
    assert not ran["b"].is_set()
    clock.now = T0 + 60
    scheduler.wake()
    assert ran["b"].wait(5)


def test_scheduler_keeps_at_most_workers_tasks_running(clock: FakeClock) -> None:
    gate = threading.Event()
    lock = threading.Lock()
    running, peak, done = [0], [0], threading.Semaphore(0)

    def run(task_id: str) -> None:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        gate.wait(5)
        with lock:
            running[0] -= 1
        done.release()

    sched = Scheduler(run, workers=2, clock=clock)
    sched.start()
    try:
        for n in range(5):
            sched.push(f"t{n}", T0)
        threading.Timer(0.1, gate.set).start()
        for _ in range(5):
            assert done.acquire(timeout=5)
        assert peak[0] == 2
    finally:
        gate.set()
        assert sched.stop(timeout=5)


def test_rescan_feeds_tasks_from_other_processes_and_survives_errors(clock: FakeClock) -> None:
    ran = threading.Event()
    calls: list[float] = []

    def rescan(now: float) -> list[tuple[str, float]]:
        calls.append(now)
        if len(calls) == 1:
            raise RuntimeError("journal locked")
        return [("from-elsewhere", now)]

    sched = Scheduler(
        lambda task_id: ran.set(),
        workers=1,
        clock=clock,
        rescan=rescan,
        rescan_interval_seconds=0.01,
    )
    sched.start()
    try:
        assert ran.wait(5)
        assert calls[0] == T0  # the rescan is told the injected time
    finally:
        assert sched.stop(timeout=5)


def test_stop_reports_a_task_still_running_and_calls_on_wait(clock: FakeClock) -> None:
    started, gate = threading.Event(), threading.Event()

    def run(task_id: str) -> None:
        started.set()
        gate.wait(10)

    waits: list[int] = []
    sched = Scheduler(run, workers=1, clock=clock)
    sched.start()
    sched.push("stuck", T0)
    assert started.wait(5)
    sched.push("never", T0)  # queued behind the stuck one: stop() must not start it
    try:
        assert sched.stop(timeout=1.2, on_wait=lambda: waits.append(1)) is False
        assert sched.busy == 1 and waits
    finally:
        gate.set()


def test_workers_must_be_positive() -> None:
    with pytest.raises(ValueError, match="workers"):
        Scheduler(lambda task_id: None, workers=0)


def test_a_full_rescan_page_is_followed_by_the_next_at_once(clock: FakeClock) -> None:
    backlog = [f"t{n:03d}" for n in range(250)]  # in the journal, found only by rescans
    ran: list[str] = []
    done = threading.Event()
    lock = threading.Lock()

    def run(task_id: str) -> None:
        with lock:
            if task_id in backlog:  # the claim: a task taken once is gone from the journal
                backlog.remove(task_id)
                ran.append(task_id)
            if not backlog:
                done.set()

    def rescan(now: float) -> list[tuple[str, float]]:
        with lock:
            return [(task_id, now) for task_id in backlog[:100]]

    sched = Scheduler(
        run, workers=4, clock=clock, rescan=rescan, rescan_interval_seconds=60, rescan_page=100
    )
    sched.start()
    try:
        assert done.wait(5), f"{len(ran)} of 250 ran: the next page waited for the interval"
        assert sorted(ran) == [f"t{n:03d}" for n in range(250)]
    finally:
        assert sched.stop(timeout=5)


def test_the_same_full_page_again_waits_for_the_interval(clock: FakeClock) -> None:
    calls: list[float] = []
    page = [(f"stuck{n}", T0) for n in range(10)]  # claims keep failing: never leaves

    def rescan(now: float) -> list[tuple[str, float]]:
        calls.append(now)
        return page

    sched = Scheduler(
        lambda task_id: None,
        workers=2,
        clock=clock,
        rescan=rescan,
        rescan_interval_seconds=60,
        rescan_page=10,
    )
    sched.start()
    try:
        time.sleep(0.5)
        assert len(calls) == 2  # the first page, then one look for more, then the interval
    finally:
        assert sched.stop(timeout=5)
