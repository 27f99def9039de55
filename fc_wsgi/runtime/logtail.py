"""``X-Fc-Log-Type: Tail``: the invocation's own log lines, FC's format (section 17).

FC answers a request asking for the tail with ``X-Fc-Log-Result``: base64 of the last 4 KB of
what the invocation logged: ``FC Invoke Start/End RequestId`` lines, root-logger records as
``<UTC time> <request id> [LEVEL] message``, raw ``print``/stdout/stderr text, and the
``Duration ... Max Memory Used`` summary (open question 9: the final 4096 bytes of the UTF-8
text). Capture is per thread: a root-logger handler and tee streams on ``sys.stdout`` and
``sys.stderr`` append to the buffer of the thread running the invocation, when it has one, and
write through to the real streams as before. Two concurrent invocations never see each other's
lines; threads the function starts itself are not captured.
"""

from __future__ import annotations

import base64
import logging
import math
import resource
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, TextIO, TypeVar

#: FC's line format for the function's ``logging`` records (section 17).
FC_LOG_FORMAT = "%(asctime)s.%(msecs)03dZ %(fc_request_id)s [%(levelname)s] %(message)s"
FC_DATE_FORMAT = "%Y-%m-%dT%H:%M:%S"
#: How much of the log the answer carries, in bytes of UTF-8 (FC's "last 4 KB").
TAIL_BYTES = 4096

T = TypeVar("T")

_local = threading.local()
_install_lock = threading.Lock()


class FcLogFormatter(logging.Formatter):
    """FC's record format, in UTC, with the request id of the record or of its invocation."""

    def __init__(self) -> None:
        super().__init__(FC_LOG_FORMAT, FC_DATE_FORMAT)
        self.converter = time.gmtime

    def format(self, record: logging.LogRecord) -> str:
        if not hasattr(record, "fc_request_id"):
            record.fc_request_id = getattr(_local, "request_id", "")
        return super().format(record)


class _TailHandler(logging.Handler):
    """Appends root-logger records to the current thread's capture, if any."""

    def emit(self, record: logging.LogRecord) -> None:
        lines = getattr(_local, "lines", None)
        if lines is not None and not record.name.startswith("fc_wsgi."):  # the function's only
            try:
                lines.append(self.format(record) + "\n")
            except Exception:  # pragma: no cover - logging's own contract: never raise
                self.handleError(record)


class _TeeStream:
    """``sys.stdout``/``sys.stderr``: text also goes to the current thread's capture."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        lines = getattr(_local, "lines", None)
        if lines is not None:
            lines.append(text)
        return self._stream.write(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def install() -> None:
    """Hook the root logger and the standard streams once per process (idempotent)."""
    with _install_lock:
        root = logging.getLogger()
        if not any(isinstance(h, _TailHandler) for h in root.handlers):
            handler = _TailHandler()
            handler.setFormatter(FcLogFormatter())
            root.addHandler(handler)
        if not isinstance(sys.stdout, _TeeStream):
            sys.stdout = _TeeStream(sys.stdout)
        if not isinstance(sys.stderr, _TeeStream):
            sys.stderr = _TeeStream(sys.stderr)


def captured(call: Callable[[], T], lines: list[str] | None, request_id: str) -> Callable[[], T]:
    """``call`` made to capture its thread's output into ``lines`` (None: no capture)."""
    if lines is None:
        return call

    def run() -> T:
        _local.lines, _local.request_id = lines, request_id
        try:
            return call()
        finally:
            _local.lines = None
            _local.request_id = ""

    return run


def note(lines: list[str] | None, line: str) -> None:
    """Add one of the runtime's own lines (``FC Invoke Start ...``) to a capture."""
    if lines is not None:
        lines.append(line + "\n")


def current_request_id() -> str:
    return getattr(_local, "request_id", "") or ""


#: Linux reports the process's peak RSS for one thread's usage too, without summing every
#: thread's times under a lock (RUSAGE_SELF): about half the cost.
_PEAK_OF = getattr(resource, "RUSAGE_THREAD", resource.RUSAGE_SELF)
#: How old a peak RSS reading may be when an answer's ``X-Fc-Max-Memory-Usage`` reuses it.
PEAK_MEMORY_REUSE_SECONDS = 0.1


def peak_memory_mb() -> float:
    """This process's peak RSS in MiB (Linux reports KiB; macOS bytes)."""
    global _last_peak
    peak = resource.getrusage(_PEAK_OF).ru_maxrss
    mb = peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024
    _last_peak = (time.monotonic(), mb)
    return mb


def recent_peak_memory_mb() -> float:
    """The peak RSS read at most :data:`PEAK_MEMORY_REUSE_SECONDS` ago, else read now.

    The reading is a system call that costs ~10 µs in a busy gunicorn worker on a virtual
    machine, more than the rest of the runtime layer; under load one reading serves every
    answer of the next 0.1 s. A peak never falls, so a reused one is at most that old."""
    read_at, mb = _last_peak
    if time.monotonic() - read_at < PEAK_MEMORY_REUSE_SECONDS:
        return mb
    return peak_memory_mb()


_last_peak = (-PEAK_MEMORY_REUSE_SECONDS, 0.0)  # (monotonic time read, MiB): one tuple, thread-safe


def billed_ms(duration_seconds: float) -> int:
    """``X-Fc-Invocation-Duration``: the wall time rounded up to whole ms (open question 10)."""
    return math.ceil(duration_seconds * 1000)


def summary(duration_seconds: float, memory_size_mb: int, used_mb: float) -> str:
    """FC's closing line: ``Duration: ... ms, Billed Duration: ... ms, Memory Size ...``."""
    return (
        f"Duration: {duration_seconds * 1000:.2f} ms, Billed Duration: "
        f"{billed_ms(duration_seconds)} ms, Memory Size: {memory_size_mb} MB, "
        f"Max Memory Used: {used_mb:.2f} MB"
    )


def tail_result(lines: list[str]) -> str:
    """``X-Fc-Log-Result``: base64 (padded) of the last 4096 bytes of the UTF-8 log."""
    data = "".join(lines).encode("utf-8", "replace")[-TAIL_BYTES:]
    return base64.b64encode(data).decode("ascii")
