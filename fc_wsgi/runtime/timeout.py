"""Running a call with a deadline: the function's ``timeout`` and the initializer's (section 15).

Two mechanisms, chosen per call by the thread it arrives on:

- **Main thread** (gunicorn's sync worker): ``setitimer(ITIMER_REAL)`` and a SIGALRM handler
  that raises :class:`FunctionTimeout` in the call. It costs two system calls, and interrupts
  Python code and blocking system calls (``sleep``, socket reads, ``select``): the handler's
  ``finally`` blocks and the app iterable's ``close()`` still run. It cannot interrupt C code
  that holds the GIL without checking for signals (a long regex, a C extension's loop): the
  answer then comes when that code returns to Python. If the app installed its own SIGALRM
  handler before the first call, the other mechanism is used; a handler it installs later
  replaces ours, and the deadline then runs the app's handler instead of stopping the call.
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
import queue
import signal
import sys
import threading
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
    if threading.get_ident() == threading.main_thread().ident and (_alarm_ready or _use_alarm()):
        return _run_with_alarm(call, timeout_seconds)
    return _run_on_runtime_thread(call, timeout_seconds)


#: SIGALRM is ours in this process (checked once: ``signal.getsignal`` is slow).
_alarm_ready = False


def _use_alarm() -> bool:
    """Install our SIGALRM handler, unless the platform lacks timers or the app has its own."""
    global _alarm_ready
    if hasattr(signal, "setitimer") and signal.getsignal(signal.SIGALRM) in (
        signal.SIG_DFL,
        _on_alarm,
    ):
        signal.signal(signal.SIGALRM, _on_alarm)
        _alarm_ready = True
    return _alarm_ready


def _on_alarm(signum: int, frame: Any) -> None:
    raise FunctionTimeout("".join(traceback.format_stack(frame)))


def _run_with_alarm(call: Callable[[], T], timeout_seconds: float) -> T:
    try:
        signal.setitimer(signal.ITIMER_REAL, timeout_seconds)
        try:
            return call()
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
    except FunctionTimeout as timeout:
        # Also when the alarm struck between the call's return and the timer's reset: the
        # deadline had passed.
        raise FunctionTimeout(timeout.stack) from None


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
