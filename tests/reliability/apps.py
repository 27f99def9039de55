"""Apps served by the reliability tests (``fc-wsgi serve tests.reliability.apps:echo``).

``echo`` answers what the function saw (path, query, the claim headers auth passed on, the
request id). When ``FC_WSGI_RUNS_FILE`` is set, every async run appends one line
``<request id> <attempt> <pid> <wall-clock start>`` to that file (``O_APPEND``: one write per
line, so lines from several workers never interleave); the soak test reads it to prove no
accepted task was lost.
"""

from __future__ import annotations

import json
import os
import time


def echo(environ, start_response):
    length = environ.get("CONTENT_LENGTH")
    stream = environ["wsgi.input"]
    if length:
        body = stream.read(int(length))
    elif environ.get("wsgi.input_terminated"):
        body = stream.read()
    else:
        body = b""
    path = environ.get("PATH_INFO", "/")
    if path == "/boom":
        raise RuntimeError("the function failed on purpose")
    attempt = environ.get("fc.async_attempt")
    runs = os.environ.get("FC_WSGI_RUNS_FILE")
    if attempt is not None and runs:  # at the start: a run killed midway is on record too
        line = f"{environ['fc.request_id']} {attempt} {os.getpid()} {time.time():.3f}\n".encode()
        fd = os.open(runs, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)
    if path == "/sleep":
        time.sleep(0.2)
    answer = {
        "method": environ["REQUEST_METHOD"],
        "path": path,
        "query": environ.get("QUERY_STRING", ""),
        "requestId": environ.get("fc.request_id"),
        "pid": os.getpid(),
        "bodyBytes": len(body),
        "headers": {k: v for k, v in environ.items() if k.startswith("HTTP_")},
        "cookie": environ.get("HTTP_COOKIE"),
    }
    data = json.dumps(answer).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [data]
