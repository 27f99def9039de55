"""Tally: nothing lost between threads, buckets as Prometheus's, a flush thread per process."""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap
import threading

from support import wait_for

from fc_wsgi.metrics_tally import Tally

BOUNDS = (0.001, 0.01, 0.1, math.inf)


class Sink:
    """Sums every flush it receives, as the metric files would."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.buckets = [0] * len(BOUNDS)
        self.sum_seconds = 0.0
        self.flushes = 0

    def __call__(self, counts: dict[str, int], buckets: list[int], sum_seconds: float) -> None:
        for key, n in counts.items():
            self.counts[key] = self.counts.get(key, 0) + n
        self.buckets = [a + b for a, b in zip(self.buckets, buckets, strict=True)]
        self.sum_seconds += sum_seconds
        self.flushes += 1


def test_a_value_lands_in_the_first_bucket_whose_bound_holds_it():
    sink = Sink()
    tally = Tally(BOUNDS, sink)
    for seconds in (0.0, 0.001, 0.0011, 0.01, 0.05, 0.1, 0.2, 1e9):
        tally.add("k", seconds)
    assert sink.flushes == 0  # nothing reaches the sink before a flush
    tally.flush()
    assert sink.buckets == [2, 2, 2, 2]  # a bound holds its own value (le: <=)
    assert sink.counts == {"k": 8}
    assert math.isclose(sink.sum_seconds, 0.3621 + 1e9)
    tally.flush()  # nothing new: the sink is not called
    assert sink.flushes == 1


def test_no_count_is_lost_between_eight_threads_and_a_flushing_one():
    sink = Sink()
    tally = Tally(BOUNDS, sink)
    done = threading.Event()

    def count(key: str) -> None:
        for i in range(5000):
            tally.add(key, (i % 4) * 0.005)  # 0, 0.005, 0.01, 0.015: buckets 0, 1, 1, 2

    def flush_meanwhile() -> None:
        while not done.is_set():
            tally.flush()

    flusher = threading.Thread(target=flush_meanwhile)
    flusher.start()
    threads = [threading.Thread(target=count, args=(f"t{i % 2}",)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    done.set()
    flusher.join()
    tally.flush()
    assert sink.counts == {"t0": 20000, "t1": 20000}
    assert sink.buckets == [10000, 20000, 10000, 0]
    assert math.isclose(sink.sum_seconds, 8 * 1250 * (0.005 + 0.01 + 0.015))
    assert sink.flushes > 1  # the flushes really ran while the threads counted


def test_the_first_count_starts_the_flush_thread():
    sink = Sink()
    tally = Tally(BOUNDS, sink, interval_seconds=0.05)
    tally.add("k", 0.0)
    wait_for(lambda: sink.counts == {"k": 1}, 5, "a flush from the thread")


def test_a_forked_child_counts_alone_and_flushes_at_exit(tmp_path):
    """The child forgets what its parent had not flushed, starts its own flush thread, and
    what it counted last is flushed by atexit (the thread is a daemon)."""
    script = textwrap.dedent(
        """
        import os, sys, threading
        from fc_wsgi.metrics_tally import Tally

        def sink(counts, buckets, sum_seconds):
            print(os.getpid() == parent, sorted(counts.items()), buckets, flush=True)

        parent = os.getpid()
        tally = Tally((1.0, float("inf")), sink, interval_seconds=60)
        tally.add("parent", 0.5)
        pid = os.fork()
        if pid == 0:
            tally.add("child", 2.0)
            names = [t.name for t in threading.enumerate()]
            print("flush thread", names.count("fc-wsgi-metrics-flush"), flush=True)
            sys.exit(0)  # atexit flushes
        os.waitpid(pid, 0)
        tally.flush()
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert out.stdout.splitlines() == [
        "flush thread 1",
        "False [('child', 1)] [0, 1]",
        "True [('parent', 1)] [1, 0]",
    ], out.stderr
