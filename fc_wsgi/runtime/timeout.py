"""Running a call with a deadline: the function's ``timeout`` and the initializer's (section 15).

One watchdog thread per process sleeps until the earliest deadline of the calls it watches.
Arming a call costs no system call: the call records its deadline, and the watchdog acts only
if that same call (compared by identity) is still running when the deadline passes. What it
does then depends on the thread the call runs on:

- **Main thread** (gunicorn's sync worker): it signals the main thread (``pthread_kill``,
  SIGALRM), whose handler raises :class:`FunctionTimeout` in the call. The signal interrupts
  Python code and blocking system calls (``sleep``, socket reads, ``select``): the handler's
  ``finally`` blocks and the app iterable's ``close()`` still run. It cannot interrupt C code
  that holds the GIL without checking for signals (a long regex, a C extension's loop): the
  answer then comes when that code returns to Python. If the app installed its own SIGALRM
  handler before the first call, the main thread is treated like any other (below); a
  handler it installs later replaces ours, and the deadline then runs the app's handler.
- **A request on any other thread** (gthread workers), when the caller can answer from
  another thread (``answer_late``): the call runs on its own thread, and at the deadline the
  watchdog *answers for it* (``answer_late``, which sends FC's timeout answer through the
  server's ``write()``), then raises :class:`FunctionTimeout` asynchronously in the call's
  thread. That stops Python code at its next bytecode, not a blocking system call: the
  thread then goes on until the call returns, and the caller, told the answer is out
  (``FunctionTimeout.answered``), sends nothing more. Python offers no way to interrupt a
  blocked system call on a thread other than the main one, so such a worker is replaced
  (recycle.py); :func:`stuck_calls` counts the calls that have not come back.
- **Anything else** (the async dispatcher's pool, an initializer off the main thread): the
  call runs on a runtime-owned daemon thread and the caller waits with a timeout, so the
  caller returns on time whatever the call does; the runtime thread is interrupted the same
  way. This costs a thread hand-off per call (tens of µs), which is why requests avoid it.

``FunctionTimeout`` derives from ``BaseException`` so that the function's ``except Exception``
blocks do not swallow it.
"""

from __future__ import annotations

import ctypes
import logging
import math
import os
import queue
import signal
import sys
import threading
import time
import traceback
from _thread import LockType
from collections.abc import Callable
from typing import Any, Generic, NoReturn, TypeVar

T = TypeVar("T")

log = logging.getLogger(__name__)


class FunctionTimeout(BaseException):
    """The call ran past its deadline; ``stack`` is where it was when the deadline passed.

    ``answered``: the watchdog has already answered for the call (``answer_late``).
    """

    def __init__(self, stack: str = "", answered: bool = False) -> None:
        super().__init__("the call ran past its deadline")
        self.stack = stack
        self.answered = answered


def run_with_deadline(
    call: Callable[[], T],
    timeout_seconds: float,
    answer_late: Callable[[str], None] | None = None,
) -> T:
    """``call()``, or :class:`FunctionTimeout` once ``timeout_seconds`` have passed.

    ``answer_late(stack)``, when given, may answer for the call from the watchdog's thread;
    it lets a call on a thread other than the main one run where it is, without a hand-off.
    """
    if threading.get_ident() == _main_thread_id and (_alarm_ours or _take_alarm()):
        return (_watchdog or _start_watchdog()).run_main(call, timeout_seconds)
    if answer_late is not None:
        return (_watchdog or _start_watchdog()).run_here(call, timeout_seconds, answer_late)
    return _run_on_runtime_thread(call, timeout_seconds)


def stuck_calls() -> int:
    """Calls the watchdog has answered for whose thread has not come back from them yet."""
    watchdog = _watchdog
    return len(watchdog.stuck) if watchdog is not None else 0


class _Call:
    """A call under watch: compared by identity, so each call is its own."""

    __slots__ = ("deadline",)

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline


class _Watched(_Call):
    """A call on another thread, which the watchdog answers for if it outlives its deadline."""

    __slots__ = ("answer_late", "thread_id", "claim", "inside", "answered", "done")

    def __init__(self, deadline: float, answer_late: Callable[[str], None]) -> None:
        self.deadline = deadline
        self.answer_late = answer_late
        self.thread_id = threading.get_ident()
        # Tokens, each taken once (see ``_take``) by the call's thread as the call ends or by
        # the watchdog at the deadline: who takes ``claim`` gives the answer; if the watchdog
        # takes ``inside``, it raises FunctionTimeout in the call.
        self.claim = [True]
        self.inside = [True]
        self.answered: LockType | None = None  # the watchdog's, held until its answer is out
        self.done = False


class _Watchdog:
    """Keeps the deadlines of this process's calls (one per process)."""

    def __init__(self) -> None:
        self.running: _Call | None = None  # the main thread's call, set and cleared by it
        self.expired: _Call | None = None  # the main thread's call the watchdog signalled
        self.watched: dict[int, _Watched] = {}  # other threads' calls, by thread
        self.stuck: set[_Watched] = set()  # answered for, their thread not back yet
        # The watchdog never sleeps longer than this: a call starting meanwhile ends no
        # sooner, so its deadline is never missed.
        self.shortest_seconds = math.inf
        self._wake = threading.Event()
        threading.Thread(target=self._watch, name="fc-deadline", daemon=True).start()

    def _shorten(self, timeout_seconds: float) -> None:
        self.shortest_seconds = timeout_seconds
        self._wake.set()  # it may be asleep for a longer timeout

    def run_main(self, call: Callable[[], T], timeout_seconds: float) -> T:
        if timeout_seconds < self.shortest_seconds:
            self._shorten(timeout_seconds)
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

    def run_here(
        self, call: Callable[[], T], timeout_seconds: float, answer_late: Callable[[str], None]
    ) -> T:
        if timeout_seconds < self.shortest_seconds:
            self._shorten(timeout_seconds)
        watched = _Watched(time.monotonic() + timeout_seconds, answer_late)
        self.watched[watched.thread_id] = watched
        try:
            try:
                result = call()
            finally:
                self.watched.pop(watched.thread_id, None)
                # Taken: from here on the watchdog raises nothing here. Lost: it raised, or is
                # about to: take that exception here.
                if not _take(watched.inside):
                    _settle(watched)
        except BaseException:
            # Once past ``inside``, no FunctionTimeout can land in this thread any more.
            if _take(watched.claim):
                raise  # the call's own error, for the caller to answer
            self._settled(watched)
        if _take(watched.claim):
            return result
        self._settled(watched)

    def _settled(self, watched: _Watched) -> NoReturn:
        """The watchdog has answered for the call: wait until that answer is out."""
        _settle(watched)
        self.stuck.discard(watched)
        raise FunctionTimeout(answered=True) from None

    def _watch(self) -> None:
        while True:
            now = time.monotonic()
            wait = self.shortest_seconds
            running = self.running
            if running is not None:
                if now < running.deadline:
                    wait = min(wait, running.deadline - now)
                else:
                    self.expired = running
                    signal.pthread_kill(_main_thread_id or 0, signal.SIGALRM)
            for watched in list(self.watched.values()):  # one C-level copy: safe under the GIL
                if now < watched.deadline:
                    wait = min(wait, watched.deadline - now)
                else:  # on this thread: a small answer, written into the socket's buffer
                    self._answer_for(watched)
            self._wake.wait(None if wait == math.inf else wait)
            self._wake.clear()

    def _answer_for(self, watched: _Watched) -> None:
        """Answer for a call past its deadline, then stop it where it runs Python code."""
        if self.watched.get(watched.thread_id) is watched:
            del self.watched[watched.thread_id]
        answered = threading.Lock()
        answered.acquire()
        watched.answered = answered  # set before the claim: whoever loses it waits on it
        if not _take(watched.claim):
            return  # the call ended at its deadline and answers itself
        frame = sys._current_frames().get(watched.thread_id)
        try:
            watched.answer_late("".join(traceback.format_stack(frame)) if frame else "")
        except OSError as exc:  # the client is gone: nothing left to answer
            log.warning("the answer for a call past its deadline was not sent: %s", exc)
        except Exception:
            log.exception("answering for a call past its deadline failed")
        finally:
            if _take(watched.inside):  # still in the call: stop it there (Python code only)
                _raise_in(watched.thread_id)
            self.stuck.add(watched)  # until its thread is back (it waits for ``answered``)
            watched.done = True
            answered.release()


def _take(token: list[bool]) -> bool:
    """Pop a one-item token, atomically under the GIL: True for the one caller that got it."""
    try:
        return token.pop()
    except IndexError:
        return False


def _settle(watched: _Watched) -> None:
    """In the call's thread, once the watchdog has taken a token: wait until it is done (its
    answer out, its FunctionTimeout raised here), and take that exception wherever it lands,
    so that none reaches the server after this call returns."""
    while True:
        try:
            if not watched.done and watched.answered is not None:
                watched.answered.acquire()
            _clear_pending(watched.thread_id)
            return
        except FunctionTimeout:
            continue


#: This process's watchdog (None until the first call, and in a fork).
_watchdog: _Watchdog | None = None
#: The thread SIGALRM's handler runs on (in a fork: the thread that forked).
_main_thread_id = threading.main_thread().ident
#: SIGALRM's handler is ours; or it is not (the app had its own, or no pthread_kill).
_alarm_ours = False
_alarm_taken = False


def _start_watchdog() -> _Watchdog:
    """This process's watchdog, started by the first call (of any thread)."""
    global _watchdog
    with _starting:
        _watchdog = _watchdog or _Watchdog()
    return _watchdog


_starting = threading.Lock()


def _take_alarm() -> bool:
    """Install our SIGALRM handler, unless the app has its own (checked once: it is slow)."""
    global _alarm_ours, _alarm_taken
    if _alarm_taken:
        return False
    if hasattr(signal, "pthread_kill") and signal.getsignal(signal.SIGALRM) in (
        signal.SIG_DFL,
        _on_alarm,
    ):
        signal.signal(signal.SIGALRM, _on_alarm)
        _alarm_ours = True
    else:
        _alarm_taken = True
    return _alarm_ours


def _forget_watchdog() -> None:
    """In a forked child (a gunicorn worker): the parent's watchdog thread did not come along."""
    global _watchdog, _main_thread_id
    _watchdog = None
    _main_thread_id = threading.main_thread().ident


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
        _raise_in(job.thread_id)
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


def _raise_in(thread_id: int) -> None:
    """Raise FunctionTimeout in that thread at its next bytecode (Python code only)."""
    if thread_id:
        _set_async_exc(ctypes.c_ulong(thread_id), ctypes.py_object(FunctionTimeout))


def _clear_pending(thread_id: int) -> None:
    """Drop a FunctionTimeout raised in that thread that has not landed yet."""
    _set_async_exc(ctypes.c_ulong(thread_id), None)


_set_async_exc = ctypes.pythonapi.PyThreadState_SetAsyncExc
