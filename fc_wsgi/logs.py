"""Log lines for the processes fc-wsgi starts: one format, set up once per process.

``fc-wsgi serve`` (in each gunicorn worker) and ``fc-wsgi worker`` (in each child) log like
gunicorn itself, so a deployment reads one kind of line; ``--log-format json`` (or
``FC_WSGI_LOG_FORMAT=json``) makes every record one JSON object per line instead, access lines
included, each with the id of the request that logged it: :data:`REQUEST_ID` is set per request
(:class:`fc_wsgi.request_log.RequestLogContext`) and per async run, and
:class:`RequestIdFilter` copies it into the records. A process whose root logger already has a
handler (an app that configured logging, a test harness) is left alone.
"""

from __future__ import annotations

import json
import logging
import os
import time
from contextvars import ContextVar

#: Our log lines look like gunicorn's own.
LOG_FORMAT = "[%(asctime)s] [%(process)d] [%(levelname)s] %(name)s: %(message)s"
#: ``text`` (the default) or ``json``; set by ``--log-format`` for the processes it starts.
LOG_FORMAT_ENV = "FC_WSGI_LOG_FORMAT"
LOG_FORMATS = ("text", "json")

#: The request id of the request (or async run) the current thread is working for.
REQUEST_ID: ContextVar[str | None] = ContextVar("fc_wsgi_request_id", default=None)

#: LogRecord attributes that are not extra fields of a record.
_STANDARD = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "request_id"}


def log_format() -> str:
    """The log format this process was asked for."""
    return "json" if os.environ.get(LOG_FORMAT_ENV) == "json" else "text"


class RequestIdFilter(logging.Filter):
    """Give each record the ``request_id`` of the request that logged it (None outside one)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = REQUEST_ID.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, pid, request id, message, extras."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "pid": record.process,
            "request_id": getattr(record, "request_id", None) or REQUEST_ID.get(),
            "message": record.getMessage(),
        }
        entry.update((k, v) for k, v in vars(record).items() if k not in _STANDARD)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(fmt: str | None = None) -> None:
    """INFO and above to stderr in :data:`LOG_FORMAT` or as JSON, unless logging is already
    set up."""
    root = logging.getLogger()
    if root.handlers:
        return
    handler = logging.StreamHandler()
    json_lines = (fmt or log_format()) == "json"
    handler.setFormatter(JsonFormatter() if json_lines else logging.Formatter(LOG_FORMAT))
    handler.addFilter(RequestIdFilter())
    root.addHandler(handler)
    root.setLevel(logging.INFO)
