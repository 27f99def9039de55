"""Running a call with a deadline: the function's ``timeout`` and the initializer's (section 15).

Two mechanisms, chosen per call by the thread it arrives on:

- **Main thread** (gunicorn's sync worker): a watchdog thread that, when the deadline passes,
  signals the main thread (``pthread_kill``, SIGALRM), whose handler raises
  :class:`FunctionTimeout` in the call. Arming it costs no system call: the call records its
  deadline and the watchdog, asleep until the deadline it last saw, signals only if that same
  call is still running (``setitimer`` would cost two system calls per call, which a virtual
  machine's timer emulation makes ~10 µs). The signal interrupts Python code and blocking
  system calls (``sleep``, socket reads, ``select``): the handler's ``finally`` blocks and the
  app iterable's ``close()`` still run. It cannot interrupt C code that holds the GIL without
  checking for signals (a long regex, a C extension's loop): the answer then comes when that
  code returns to Python. If the app installed its own SIGALRM handler before the first call,
  the other mechanism is used; a handler it installs later replaces ours, and the deadline then
  runs the app's handler instead of stopping the call.
- **Any other thread** (gthread workers, the async dispatcher's pool): the call runs on a
  runtime-owned daemon thread and the caller waits with a timeout, so the answer leaves on time
  whatever the call does. At the deadline :class:`FunctionTimeout` is also raised
  asynchronously in the runtime thread, which stops Python code at its next bytecode but not a
  blocking system call; the thread may go on until that call returns, which is why the worker
  is then replaced (recycle.py). This path costs a thread hand-off per call.

``FunctionTimeout`` derives from ``BaseException`` so that the function's ``except Exception``
blocks do not swallow it.
"""

from __future__ import annotations

import ctypes
import math
import os
import queue
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class FunctionTimeout(BaseException):
    """The call ran past its deadline; ``stack`` is where it was when the deadline passed."""

    def __init__(self, stack: str = "") -> None:
        super().__init__("the call ran past its deadline")
        self.stack = stack


def run_with_deadline(call: Callable[[], T], timeout_seconds: float) -> T:
    """``call()``, or :class:`FunctionTimeout` once ``timeout_seconds`` have passed."""
    if threading.get_ident() == threading.main_thread().ident:
        watchdog = _watchdog or _start_watchdog()
        if watchdog is not None:
            return watchdog.run(call, timeout_seconds)
    return _run_on_runtime_thread(call, timeout_seconds)


class _Call:
    """The main thread's call under watch: compared by identity, so each call is its own."""

    __slots__ = ("deadline",)

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline


class _Watchdog:
    """Signals the main thread when its call outlives its deadline (one per process)."""

    def __init__(self) -> None:
        self.running: _Call | None = None  # the main thread's call, set and cleared by it
        self.expired: _Call | None = None  # the call the watchdog signalled
        # With nothing running the watchdog sleeps this long: a call starting meanwhile ends
        # no sooner, so its deadline is never missed.
        self.shortest_seconds = math.inf
        self._wake = threading.Event()
        self._main = threading.main_thread().ident or 0
        threading.Thread(target=self._watch, name="fc-deadline", daemon=True).start()

    def run(self, call: Callable[[], T], timeout_seconds: float) -> T:
        if timeout_seconds < self.shortest_seconds:
            self.shortest_seconds = timeout_seconds
            self._wake.set()  # it may be asleep for a longer timeout
        watched = _Call(time.monotonic() + timeout_seconds)
        previous, self.running = self.running, watched
        try:
            try:
                return call()
            finally:
                self.running = previous
        except FunctionTimeout as timeout:
            # Also when the signal struck between the call's return and ``running``'s reset:
            # the deadline had passed.
            raise FunctionTimeout(timeout.stack) from None

    def _watch(self) -> None:
        while True:
            running = self.running
            now = time.monotonic()
            if running is None:
                wait = self.shortest_seconds
            elif now < running.deadline:
                wait = running.deadline - now
            else:
                self.expired = running
                signal.pthread_kill(self._main, signal.SIGALRM)
                wait = self.shortest_seconds  # again, if the call swallows the timeout
            self._wake.wait(None if wait == math.inf else wait)
            self._wake.clear()


#: This process's watchdog (None until the first call on the main thread, and in a fork).
_watchdog: _Watchdog | None = None
#: SIGALRM is not ours: the app had its own handler, or the platform has no pthread_kill.
_alarm_taken = False


def _start_watchdog() -> _Watchdog | None:
    """Install our SIGALRM handler and start the watchdog, unless the app has its own handler."""
    global _watchdog, _alarm_taken
    if _alarm_taken:
        return None
    if hasattr(signal, "pthread_kill") and signal.getsignal(signal.SIGALRM) in (
        signal.SIG_DFL,
        _on_alarm,
    ):
        signal.signal(signal.SIGALRM, _on_alarm)
        _watchdog = _Watchdog()
    else:
        _alarm_taken = True  # checked once: ``signal.getsignal`` is slow
    return _watchdog


def _forget_watchdog() -> None:
    """In a forked child (a gunicorn worker): the parent's watchdog thread did not come along."""
    global _watchdog
    _watchdog = None


os.register_at_fork(after_in_child=_forget_watchdog)


def _on_alarm(signum: int, frame: Any) -> None:
    watchdog = _watchdog
    # A signal that arrives after its call ended (or in a call it was not meant for) is void.
    if watchdog is not None and watchdog.running is not None:
        if watchdog.running is watchdog.expired:
            raise FunctionTimeout("".join(traceback.format_stack(frame)))


class _Job(Generic[T]):
    """One call handed to a runtime thread; the caller waits on ``done``."""

    __slots__ = ("call", "done", "result", "error", "thread_id")

    def __init__(self, call: Callable[[], T]) -> None:
        self.call = call
        self.done = threading.Lock()
        self.done.acquire()
        self.result: T | None = None
        self.error: BaseException | None = None
        self.thread_id = 0


_jobs: queue.SimpleQueue[_Job[Any]] = queue.SimpleQueue()
_idle = 0  # runtime threads waiting for a job
_idle_lock = threading.Lock()


def _run_on_runtime_thread(call: Callable[[], T], timeout_seconds: float) -> T:
    global _idle
    job = _Job(call)
    with _idle_lock:
        if _idle:
            _idle -= 1
        else:
            threading.Thread(target=_runtime_thread, name="fc-runtime", daemon=True).start()
    _jobs.put(job)
    if not job.done.acquire(timeout=timeout_seconds):
        frame = sys._current_frames().get(job.thread_id)
        stack = "".join(traceback.format_stack(frame)) if frame is not None else ""
        _interrupt(job)
        raise FunctionTimeout(stack)
    if job.error is not None:
        error, job.error = job.error, None
        raise error
    return job.result  # type: ignore[return-value]


def _runtime_thread() -> None:
    global _idle
    ident = threading.get_ident()
    while True:
        try:
            job = _jobs.get()
            job.thread_id = ident
            try:
                job.result = job.call()
            except BaseException as exc:  # handed to the waiting caller, which re-raises it
                job.error = exc
            finally:
                job.thread_id = 0
                job.done.release()
            with _idle_lock:
                _idle += 1
        except FunctionTimeout:
            continue  # a late interrupt, meant for a job that had just finished


def _interrupt(job: _Job[Any]) -> None:
    """Raise FunctionTimeout in the runtime thread still running ``job`` (Python code only)."""
    ident = job.thread_id
    if ident:
        ctypes.pythonapi.PyThreadState_SetAsyncExc(
            ctypes.c_ulong(ident), ctypes.py_object(FunctionTimeout)
        )
