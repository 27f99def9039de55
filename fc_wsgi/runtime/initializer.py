"""The initializer hook: once per instance, before its first invocation (section 14.5).

One instance is one worker process here. The initializer runs lazily on the worker's first
invocation, under a lock (concurrent first requests wait for it), with the context and its own
timeout (``initializationTimeout`` or ``instanceLifecycleConfig.initializer.timeout``). A
failure or timeout answers FC's ``InitializationError`` (open questions 1 and 3) and the
worker is replaced, so the next request meets a fresh worker and a fresh attempt; outside
gunicorn the same process simply tries again on the next request. Logged as FC logs it:
``FC Initialize Start RequestId: <id>`` / ``FC Initialize End RequestId: <id>``.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from . import logtail
from .handler import load_handler
from .timeout import FunctionTimeout, run_with_deadline

if TYPE_CHECKING:
    from .context import FCContext

log = logging.getLogger(__name__)

_shared: dict[tuple[str, str], Initializer] = {}
_shared_lock = threading.Lock()


class InitializationFailed(Exception):
    """The initializer raised, timed out or could not be loaded; ``payload`` is FC's body."""

    def __init__(self, payload: dict[str, str]) -> None:
        super().__init__(payload["errorMessage"])
        self.payload = payload


def initializer_for(handler: str, code_root: str, timeout_seconds: int) -> Initializer:
    """The process's one :class:`Initializer` of this hook: a function served by several
    stacks (a project's endpoints) still initializes once per worker, as one FC instance."""
    key = (handler, code_root)
    with _shared_lock:
        shared = _shared.get(key)
        if shared is None:
            shared = _shared[key] = Initializer(handler, code_root, timeout_seconds)
        return shared


class Initializer:
    """Runs ``handler(context)`` once per process, the first time :meth:`ensure` is called."""

    def __init__(self, handler: str, code_root: str, timeout_seconds: int) -> None:
        self.handler, self.code_root, self.timeout_seconds = handler, code_root, timeout_seconds
        self.done = not handler
        self._lock = threading.Lock()

    def ensure(self, context: FCContext, tail: list[str] | None = None) -> None:
        """Run the initializer unless it already succeeded; raise InitializationFailed.
        ``tail``: the invocation's log capture, which gets the initializer's lines too."""
        if self.done:
            return
        with self._lock:
            if not self.done:
                self._run(context, tail)
                self.done = True

    def _run(self, context: FCContext, tail: list[str] | None) -> None:
        rid = context.request_id

        def announce(line: str, level: int = logging.INFO) -> None:
            log.log(level, "%s", line)  # the process log; the tail gets it as FC prints it
            logtail.note(tail, line)

        announce(f"FC Initialize Start RequestId: {rid}")
        try:
            hook = load_handler(self.handler, self.code_root)
            call = logtail.captured(lambda: hook(context), tail, rid)
            run_with_deadline(call, self.timeout_seconds)
        except FunctionTimeout:
            message = f"Function initialization timed out after {self.timeout_seconds} seconds"
            announce(f"FC Initialize End RequestId: {rid}, Error: {message}", logging.ERROR)
            raise InitializationFailed({"errorMessage": message}) from None
        except Exception as exc:
            log.error("request %s: initializer %s failed", rid, self.handler, exc_info=exc)
            end = f"FC Initialize End RequestId: {rid}, Error: Unhandled function error"
            announce(end, logging.ERROR)
            payload = {"errorMessage": str(exc), "errorType": type(exc).__name__}
            raise InitializationFailed(payload) from exc
        announce(f"FC Initialize End RequestId: {rid}")
