"""A function for the observe e2e tests: known answers by path, one log record per request.

``.../boom`` raises (FC's 502 UnhandledInvocationError); ``?fail=N`` raises on async attempts
1..N, then answers; ``?fail_while=FILE`` raises while that file exists; anything else
answers 200. Every call logs ``handled <path>`` through
``logging``, so the JSON log test can match the record to the request id that logged it.
"""

from __future__ import annotations

import logging
import os
from urllib.parse import parse_qs

log = logging.getLogger("observe_app")


def app(environ, start_response):
    path = environ.get("PATH_INFO", "/")
    log.info("handled %s", path)
    query = {k: v[-1] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
    attempt = environ.get("fc.async_attempt", 0)
    flag = query.get("fail_while")
    failing = path.endswith("/boom") or 0 < attempt <= int(query.get("fail", 0))
    if failing or (flag and os.path.exists(flag)):
        raise RuntimeError(f"failing {path} on purpose")
    body = b"ok " + path.encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
