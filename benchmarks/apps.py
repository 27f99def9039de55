"""The apps the benchmarks serve: a bare WSGI function and the Flask pair it is compared with.

The bare app does what a small FC function does (reads its body, answers a little JSON), so a
stack's cost is measured against real work rather than against nothing. The Flask peer is what
a user would build instead of fc-wsgi: Flask + flask-cors + a PyJWT ``before_request`` check.
Flask is imported only by its factories, so the micro-benchmark never needs it.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from fc_wsgi.common import FC_EXPOSE_HEADERS

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

#: What every app answers, byte for byte.
BODY = b'{"hello":"world"}'
_HEADERS = [("Content-Type", "application/json"), ("Content-Length", str(len(BODY)))]
#: The peer stack reads the RS256 public key (a JWK, JSON) from the file this names.
PUBLIC_JWK_ENV = "FCBENCH_JWT_PUBLIC_JWK"
#: The ``function`` section of the "anonymous+function" stack: the bare app as an FC function.
#: ``maxInstances`` lifts the per-worker cap above wrk's connections (plain gunicorn gives each
#: worker its own count), so every answer is the app's 200 and the runtime's cost is measured.
FUNCTION_SECTION = {"functionName": "bench", "timeout": 30, "maxInstances": 256}


def bare(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
    """An FC-style handler: read the body (if any), answer 200 with a small JSON body."""
    length = environ.get("CONTENT_LENGTH")
    if length:
        environ["wsgi.input"].read(int(length))
    start_response("200 OK", list(_HEADERS))
    return [BODY]


def fc_headers(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
    """The bare app answering the five headers FC adds to a browser's GET (request id, three
    CORS headers, ``Vary``): what an FC-faithful stack cannot go below, served side by side."""
    origin = environ.get("HTTP_ORIGIN", "")
    start_response("200 OK", [*_HEADERS, *_FC_HEADERS, (_ACAO, origin)])
    return [BODY]


_ACAO = "Access-Control-Allow-Origin"
_FC_HEADERS = (
    ("X-Fc-Request-Id", "1-6b107c11-3b2f34896a744510084b1a27"),
    ("Access-Control-Allow-Credentials", "true"),
    ("Access-Control-Expose-Headers", ",".join(FC_EXPOSE_HEADERS)),
    ("Vary", "Origin"),
)


def flask_bare() -> WSGIApplication:
    """The same answer from Flask, with nothing around it."""
    from flask import Flask, Response

    app = Flask("bench_flask")

    @app.route("/", methods=["GET", "POST"])
    def index() -> Any:
        return Response(BODY, content_type="application/json")

    return app


def flask_peer() -> WSGIApplication:
    """Flask + flask-cors + PyJWT: the stack fc-wsgi's JWT trigger is measured against."""
    import jwt
    from flask import abort, request
    from flask_cors import CORS

    # Parsed once: passing the key text to jwt.decode() would parse it on every request.
    with open(os.environ[PUBLIC_JWK_ENV], encoding="utf-8") as file:
        public_key = jwt.algorithms.RSAAlgorithm.from_jwk(file.read())
    app = flask_bare()
    CORS(app, supports_credentials=True)

    @app.before_request
    def check_token() -> None:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Bearer "):
            abort(401)
        try:
            request.environ["jwt.claims"] = jwt.decode(header[7:], public_key, algorithms=["RS256"])
        except jwt.PyJWTError:
            abort(401)

    return app


def trigger_from_env_logging_commits() -> WSGIApplication:
    """``fc_wsgi.serve:app_from_env()`` with the journal's INFO lines on stderr, so that the
    group commit's batch sizes (logged as each worker exits) reach the benchmark's log."""
    import logging

    from fc_wsgi.serve import app_from_env

    journal_log = logging.getLogger("fc_wsgi.dispatch.journal")
    journal_log.setLevel(logging.INFO)
    journal_log.addHandler(logging.StreamHandler())
    return app_from_env()
