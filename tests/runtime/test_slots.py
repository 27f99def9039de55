"""The concurrency count: local, and shared by forked workers with dead workers' slots freed."""

from __future__ import annotations

import multiprocessing
import os
import threading

from fc_wsgi.runtime.slots import LocalSlots, SharedSlots


def test_local_slots_cap_and_wait():
    slots = LocalSlots(2)
    assert slots.acquire() and slots.acquire() and not slots.acquire()
    threading.Timer(0.1, slots.release).start()
    assert slots.acquire(wait_seconds=2)  # an async run waits for a slot
    assert not slots.acquire(wait_seconds=0.05)


def test_local_slots_never_go_over_the_cap_under_threads():
    slots, holders, peak, lock = LocalSlots(3), [0], [0], threading.Lock()

    def work():
        for _ in range(2000):
            if slots.acquire(wait_seconds=0.5 if _ % 7 == 0 else 0.0):
                with lock:
                    holders[0] += 1
                    peak[0] = max(peak[0], holders[0])
                with lock:
                    holders[0] -= 1
                slots.release()

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert peak[0] <= 3 and holders[0] == 0
    assert [slots.acquire() for _ in range(4)] == [True, True, True, False]  # none leaked


def _hold(slots: SharedSlots, row: int, count: int, ready, results) -> None:
    slots.bind_row(row)
    results.put(sum(slots.acquire() for _ in range(count)))
    ready.wait(10)
    os._exit(0)  # dies holding its slots, as a killed worker would


def test_shared_slots_across_processes_and_a_dead_workers_slots_come_back():
    slots = SharedSlots(3, rows=4)
    fork = multiprocessing.get_context("fork")
    ready, results = fork.Event(), fork.Queue()
    row = slots.assign_row()
    child = fork.Process(target=_hold, args=(slots, row, 5, ready, results))
    child.start()
    assert results.get(timeout=10) == 3  # never above the cap, across processes
    assert not slots.acquire()  # the master sees the child's slots taken
    ready.set()
    child.join(10)
    slots.release_row(row)  # gunicorn's child_exit
    assert [slots.acquire() for _ in range(4)] == [True, True, True, False]
