"""gunicorn access lines that carry what FC's logs carry: the request id and the error code.

gunicorn formats access lines from "atoms" of the request and response; :class:`AccessLogger`
adds two read from the WSGI environ, ``%(fc_request_id)s`` (the one id of the request, also in
``X-Fc-Request-Id``) and ``%(fc_error_code)s`` (the FC error code of the answer, ``-`` for
the app's own). :data:`ACCESS_LOG_FORMAT` is ``fc-wsgi serve``'s default. It logs the path
without the query string, which may carry a signed URL's signature or a token. With
``--log-format json`` each access is one JSON object, beside the application records.
"""

from __future__ import annotations

import logging
from typing import Any

from gunicorn.glogging import Logger

from .errors import ERROR_CODE_KEY, REQUEST_ID_KEY
from .logs import JsonFormatter, RequestIdFilter, log_format

#: Client, time, method and path (no query), status, bytes, duration, request id, FC code.
ACCESS_LOG_FORMAT = (
    '%(h)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(B)s %(M)sms'
    ' rid=%(fc_request_id)s code=%(fc_error_code)s "%(a)s"'
)


class AccessLogger(Logger):  # type: ignore[misc]
    """gunicorn's logger with the fc atoms, and JSON lines under ``--log-format json``."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        self._json = log_format() == "json"
        if self._json:
            for logger in (self.error_log, self.access_log):
                for handler in logger.handlers:
                    handler.setFormatter(JsonFormatter())
                    handler.addFilter(RequestIdFilter())

    def atoms(self, resp: Any, req: Any, environ: Any, request_time: Any) -> dict[str, Any]:
        atoms: dict[str, Any] = super().atoms(resp, req, environ, request_time)
        atoms["fc_request_id"] = environ.get(REQUEST_ID_KEY) or _header(resp, "x-fc-request-id")
        atoms["fc_error_code"] = environ.get(ERROR_CODE_KEY) or "-"
        return atoms

    def access(self, resp: Any, req: Any, environ: Any, request_time: Any) -> None:
        if not getattr(self, "_json", False):
            super().access(resp, req, environ, request_time)
            return
        if not self.access_log_enabled:
            return
        atoms = self.atoms(resp, req, environ, request_time)
        self.access_log.log(
            logging.INFO,
            "%s %s %s",
            atoms["m"],
            atoms["U"],
            atoms["s"],
            extra={
                "request_id": atoms["fc_request_id"],
                "method": atoms["m"],
                "path": atoms["U"],
                "status": int(atoms["s"]) if str(atoms["s"]).isdigit() else atoms["s"],
                "bytes": atoms["B"],
                "duration_seconds": request_time.total_seconds(),
                "error_code": environ.get(ERROR_CODE_KEY, ""),
                "remote": atoms["h"],
                "user_agent": atoms["a"],
            },
        )


def _header(resp: Any, name: str) -> str:
    for key, value in getattr(resp, "headers", ()) or ():
        if key.lower() == name:
            return str(value)
    return "-"
