"""FunctionRuntime: FC's Python runtime around a handler (fc-spec-runtime.md sections 14-17).

Placed ``AsyncDispatcher → FunctionRuntime → HeaderFilter → app``: outside HeaderFilter, so
its answers (429, InitializationError, timeout) and headers (``X-Fc-Invocation-Duration``,
``X-Fc-Max-Memory-Usage``, ``X-Fc-Log-Result``) are the gateway's and survive the filter;
inside AsyncDispatcher, so async runs get the same context (with their own retry count),
deadline and log capture. Per request it:

1. takes a concurrency slot, or answers 429 ``ResourceExhausted`` at once (section 16);
2. fills the environ as FC's runtime does: the function's environment (precomputed), ``HTTP:
   on``, ``fc.request_uri`` (unless a router set it) and ``fc.context`` (section 14.2);
3. runs the initializer once per process (initializer.py);
4. runs the invocation under its deadline (timeout.py); the answer is buffered, as FC's
   runtime buffers it (``list(result)``), so a timeout can still replace it;
5. answers with the duration and memory headers, and the log tail when asked for.

The handler string header ``X-Fc-Function-Handler`` is set by :class:`FunctionHandler`, inside
HeaderFilter, since that filter drops every ``HTTP_X_FC_*`` key on its way to the app.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from .._wsgi import close_iterable
from ..dispatch.runner import ATTEMPT_KEY
from ..errors import (
    REQUEST_ID_KEY,
    TIMEOUT_CODE,
    ResourceExhausted,
    ResourceThrottled,
    error_response,
    function_answer,
    request_id,
)
from . import logtail
from .context import FCContext, FunctionMeta, RequestLogger, ServiceMeta, credentials_from
from .environment import environ_extras, function_variables
from .initializer import InitializationFailed, initializer_for
from .recycle import recycle_worker
from .slots import Slots, slots_for
from .timeout import FunctionTimeout, run_with_deadline, stuck_calls

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

    from ..common import Profile
    from ..function_config import FunctionConfig

log = logging.getLogger(__name__)


Response = tuple[str, list[tuple[str, str]], list[bytes]]

#: Open question 5: honoured (threads), but FC's built-in Python runtimes ignore it.
CONCURRENCY_WARNING = (
    "instanceConcurrency > 1: FC's built-in Python runtimes run one request per instance; "
    "served here with one thread per concurrent request"
)


class FunctionRuntime:
    """Context, environment, initializer, deadline, concurrency cap and log tail of a function.

    ``process_environ`` (default ``os.environ``) is copied into each environ under the
    function's variables; ``hidden_values`` are values never copied (the trigger's secrets).
    """

    def __init__(
        self,
        app: WSGIApplication,
        *,
        function: FunctionConfig,
        profile: Profile = "fc3",
        slots: Slots | None = None,
        process_environ: Mapping[str, str] | None = None,
        hidden_values: Iterable[str] = (),
    ) -> None:
        self.app = app
        self.function = function
        self.profile = profile
        self.timeout_seconds = function.timeout
        capacity = (function.max_instances or 1) * function.instance_concurrency
        self.slots = slots if slots is not None else slots_for(function.name, capacity)
        self._overloaded = ResourceExhausted(
            f"concurrent invocations exceeded the limit of {self.slots.capacity}"
        )
        variables = function_variables(function, profile)
        process = os.environ if process_environ is None else process_environ
        # The trigger's own secrets (accessKeys' secretEnv) are the gateway's, not the
        # function's: a process variable holding one is not copied into environ.
        hidden = frozenset(hidden_values)
        process = {k: v for k, v in process.items() if v not in hidden}
        # The function's environment merged into each environ: built once, here.
        self._extras = environ_extras(variables, process)
        self._extra_keys = frozenset(self._extras)
        self._credentials = credentials_from({**process, **variables})
        self._meta = FunctionMeta(
            function.name, function.handler, function.memory_size, function.timeout
        )
        service_name = function.service_name if profile == "fc2" else ""
        self._service = ServiceMeta(service_name, "", "", function.qualifier, "")
        self._per_request_logger = function.instance_concurrency > 1
        if self._per_request_logger:
            log.warning("function %s: %s", function.name, CONCURRENCY_WARNING)
        self.initializer = initializer_for(
            function.init_handler, function.code_uri, function.init_timeout_seconds
        )
        logtail.install()

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        attempt = environ.get(ATTEMPT_KEY)  # the async run's number, 1 on the first run
        # Async runs have no caller waiting: they wait up to a timeout for a slot, then fail
        # (503 ResourceThrottled) and are retried; sync requests over the cap get 429 at once.
        if not self.slots.acquire(self.timeout_seconds if attempt else 0.0):
            error = ResourceThrottled(self._overloaded.message) if attempt else self._overloaded
            return error_response(error, environ, start_response, self.profile)
        started = time.perf_counter()
        log_type = environ.get("HTTP_X_FC_LOG_TYPE")
        tail: list[str] | None = [] if log_type and log_type.lower() == "tail" else None
        rid = environ.get(REQUEST_ID_KEY) or request_id(environ, self.profile)
        try:
            context = self._context(environ, rid, attempt)
            self.initializer.ensure(context, tail)
        except InitializationFailed as failed:
            self.slots.release()
            recycle_worker("the initializer failed")
            return self._answer_error(failed.payload, "InitializationError", environ,
                                      start_response, started, tail, rid)  # fmt: skip
        except BaseException:
            self.slots.release()
            raise
        invocation = _Invocation(self, environ, start_response, started, tail, rid)
        # A request's caller waits: on a server thread, the watchdog may answer for the call.
        answer_late = None if attempt else invocation.answer_late
        try:
            status, headers, body = run_with_deadline(
                invocation.run, self.timeout_seconds, answer_late
            )
        except FunctionTimeout as timeout:
            if timeout.answered:
                return []  # the watchdog sent the answer while the call ran on
            return self._timed_out(invocation, timeout.stack, start_response)
        headers.extend(self._metrics(started, tail))
        start_response(status, headers)
        return body

    def _timed_out(
        self,
        invocation: _Invocation,
        stack: str,
        start_response: StartResponse,
        stuck: Callable[[], int] | None = None,
    ) -> list[bytes]:
        """FC's timeout answer (section 15); the worker is replaced, without waiting for
        the calls ``stuck()`` counts."""
        # Answered, so over for the caller and the cap, even if its thread runs on in a
        # worker that is being replaced.
        invocation.release_slot()
        rid, tail = invocation.rid, invocation.tail
        memory = logtail.peak_memory_mb()
        message = (
            f"Function timed out after {self.timeout_seconds} seconds "
            f"(maxMemoryUsage: {memory:.2f}MB)"
        )
        # FC's runtime logs the stack as it stops the instance (section 15).
        log.error("request %s: %s; Dumping stack trace after function timeout:\n%s",
                  rid, message, stack)  # fmt: skip
        logtail.note(tail, f"FC Invoke End RequestId: {rid}, Error: {message}")
        recycle_worker(f"request {rid} timed out", stuck)
        return self._answer_error({"errorMessage": message}, "UnhandledInvocationError",
                                  invocation.environ, start_response, invocation.started, tail,
                                  rid, code=TIMEOUT_CODE)  # fmt: skip

    def _context(self, environ: WSGIEnvironment, rid: str, attempt: Any) -> FCContext:
        extras = self._extras
        if self._extra_keys.isdisjoint(environ):
            environ.update(extras)
        else:  # a key the server set wins over the process environment (open question 7)
            for key, value in extras.items():
                environ.setdefault(key, value)
        environ["HTTP"] = "on"
        if "fc.request_uri" not in environ:
            environ["fc.request_uri"] = _request_uri(environ)
        logger = (
            RequestLogger(logging.getLogger(), {"fc_request_id": rid})
            if self._per_request_logger
            else None
        )
        context = FCContext(
            rid, self._credentials, self._meta, self._service, self.function.region,
            self.function.account_id, attempt - 1 if attempt else 0, logger=logger,
        )  # fmt: skip
        environ["fc.context"] = context
        return context

    def _metrics(self, started: float, tail: list[str] | None) -> list[tuple[str, str]]:
        """``X-Fc-Invocation-Duration``, ``X-Fc-Max-Memory-Usage``, and the tail if asked."""
        duration = time.perf_counter() - started
        # The log tail's summary reads it afresh; a bare answer takes one at most 0.1 s old.
        memory = logtail.recent_peak_memory_mb() if tail is None else logtail.peak_memory_mb()
        headers = [
            ("X-Fc-Invocation-Duration", str(logtail.billed_ms(duration))),
            ("X-Fc-Max-Memory-Usage", f"{memory:.2f}"),
        ]
        if tail is not None:
            tail.append("\n" + logtail.summary(duration, self.function.memory_size, memory) + "\n")
            headers.append(("X-Fc-Log-Result", logtail.tail_result(tail)))
        return headers

    def _answer_error(
        self,
        payload: dict[str, str],
        error_type: str,
        environ: WSGIEnvironment,
        start_response: StartResponse,
        started: float,
        tail: list[str] | None,
        rid: str,
        code: str | None = None,
    ) -> list[bytes]:
        extra = self._metrics(started, tail)

        def start_with_metrics(status: str, headers: list[tuple[str, str]], exc_info: Any = None):  # type: ignore[no-untyped-def]
            return start_response(status, headers + extra, exc_info)

        return function_answer(payload, environ, start_with_metrics, error_type=error_type,
                               code=code, profile=self.profile)  # fmt: skip


class _Invocation:
    """One call of the stack inside the runtime, buffered; runs on the deadline's thread."""

    __slots__ = (
        "runtime", "environ", "start_response", "started", "tail", "rid", "status", "headers",
        "_slot_held",
    )  # fmt: skip

    def __init__(
        self,
        runtime: FunctionRuntime,
        environ: WSGIEnvironment,
        start_response: StartResponse,
        started: float,
        tail: list[str] | None,
        rid: str,
    ) -> None:
        self.runtime, self.environ, self.start_response = runtime, environ, start_response
        self.started, self.tail, self.rid = started, tail, rid
        self.status: str | None = None
        self.headers: list[tuple[str, str]] = []
        self._slot_held = [True]  # popped once (atomic under the GIL) by whoever gives it back

    def run(self) -> Response:
        try:
            if self.tail is None:
                return self._call()
            return logtail.captured(self._call, self.tail, self.rid)()
        finally:
            self.release_slot()

    def release_slot(self) -> None:
        """Give the slot back, once: at the end of the call, or when it timed out."""
        try:
            self._slot_held.pop()
        except IndexError:
            return
        self.runtime.slots.release()

    def answer_late(self, stack: str) -> None:
        """On the watchdog's thread, at the deadline: FC's timeout answer, through the
        server's ``write()``, while the call runs on."""
        writes = []

        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None):  # type: ignore[no-untyped-def]
            writes.append(self.start_response(status, headers, exc_info))
            return writes[-1]

        # The call runs on, maybe blocked for good: the worker leaves without it.
        for chunk in self.runtime._timed_out(self, stack, start, stuck_calls):
            writes[0](chunk)

    def _call(self) -> Response:
        tail, rid = self.tail, self.rid
        if tail is not None:
            logtail.note(tail, f"FC Invoke Start RequestId: {rid}")
        chunks: list[bytes] = []

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None):  # type: ignore[no-untyped-def]
            if exc_info is not None:
                exc_info = None  # nothing has left yet: the new answer replaces the old
            elif self.status is not None:
                raise RuntimeError("start_response called twice without exc_info")
            self.status, self.headers = status, list(headers)
            return chunks.append

        body = self.runtime.app(self.environ, start_response)
        try:
            chunks.extend(body)
        finally:
            close_iterable(body)
        if self.status is None:
            raise RuntimeError("the app did not call start_response")
        if tail is not None:
            failed = any(n.lower() == "x-fc-error-type" for n, _ in self.headers)
            end = ", Error: Unhandled function error" if failed else ""
            logtail.note(tail, f"FC Invoke End RequestId: {rid}{end}")
        return self.status, self.headers, chunks


class FunctionHandler:
    """The innermost app: FC's handler call, with ``HTTP_X_FC_FUNCTION_HANDLER`` set."""

    def __init__(self, handler: Any, handler_name: str) -> None:
        self.handler, self.handler_name = handler, handler_name

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        environ["HTTP_X_FC_FUNCTION_HANDLER"] = self.handler_name
        result = self.handler(environ, start_response)
        # FC's runtime sends a bytes result as the body itself (section 14.1).
        return [result] if isinstance(result, bytes) else result


def _request_uri(environ: WSGIEnvironment) -> str:
    """The URI as received, path and query (gunicorn's RAW_URI, else rebuilt)."""
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if raw:
        return str(raw)
    path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
    uri = quote(path.encode("latin-1"), safe="/;=,@:!$&'()*+~")
    query = environ.get("QUERY_STRING")
    return f"{uri}?{query}" if query else uri
