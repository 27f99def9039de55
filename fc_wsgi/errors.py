"""FC's error answers and request ids, built in one place.

Every layer raises (or hands over) an :class:`FcError`; only this module turns one into an
HTTP answer, so status, body shape, ``X-Fc-Request-Id`` and ``X-Fc-Error-Type`` can never
drift apart between layers (fc-spec.md sections 1, 6 and 13.16). The body shape follows the
config's ``profile``: ``fc3`` sends ``{"Code", "Message", "RequestId"}``, ``fc2`` FC's
data-plane ``{"ErrorCode", "ErrorMessage"}``. Function failures use the runtime's
``{"errorMessage", "errorType"}`` body; the stack trace goes to the log, never to the client.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Iterable
from random import getrandbits as _random_bits
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIEnvironment

    from .common import Profile

log = logging.getLogger(__name__)

#: environ key holding the one request id of a request, set by whichever layer needs it first.
REQUEST_ID_KEY = "fc.request_id"
#: environ key holding the FC error code of the answer, set when an FC error answers (read by
#: the metrics and the access log; absent for the app's own answers).
ERROR_CODE_KEY = "fc.error_code"
#: The code counted for a function that raised: FC's ``X-Fc-Error-Type`` of that answer.
UNHANDLED_CODE = "UnhandledInvocationError"
#: ``environ["fc.error_code"]`` of a function answered FC's timeout (section 15): still FC's
#: UnhandledInvocationError on the wire, told apart for the metrics and the async runner.
TIMEOUT_CODE = "FunctionTimeout"

_JSON = ("Content-Type", "application/json")


class FcError(Exception):
    """An FC gateway error answer; subclasses fix the status, ErrorCode and error type."""

    status: ClassVar[str] = "500 Internal Server Error"
    code: ClassVar[str] = "InternalServerError"
    error_type: ClassVar[str] = "FcCommonError"

    def __init__(self, message: str, *, headers: Iterable[tuple[str, str]] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.extra_headers = tuple(headers)


class InvalidArgument(FcError):
    status = "400 Bad Request"
    code = "InvalidArgument"


class InvalidBody(InvalidArgument, ValueError):
    """Raised from ``wsgi.input`` when a streamed body cannot be read as the client sent it.

    Also a ``ValueError``, as frameworks expect of a failing stream: werkzeug then answers
    its own 400 (``ClientDisconnected``) for an app that does not let the error through.
    """


class BodyTooLarge(InvalidBody):
    """Raised from ``wsgi.input`` when a streamed body passes the trigger's limit."""


class MissingRequiredHeader(FcError):
    status = "400 Bad Request"
    code = "MissingRequiredHeader"


class AccessDenied(FcError):
    status = "403 Forbidden"
    code = "AccessDenied"


class SignatureNotMatch(FcError):
    status = "403 Forbidden"
    code = "SignatureNotMatch"


class InvalidAccessKeyID(FcError):
    status = "403 Forbidden"
    code = "InvalidAccessKeyID"


class InvalidToken(FcError):
    status = "401 Unauthorized"
    code = "InvalidToken"


class TaskAlreadyExists(FcError):
    status = "409 Conflict"
    code = "ResourceAlreadyExists"


class ResourceExhausted(FcError):
    status = "429 Too Many Requests"
    code = "ResourceExhausted"


class ResourceThrottled(FcError):
    status = "503 Service Unavailable"
    code = "ResourceThrottled"


class DomainNameNotFound(FcError):
    """A Host that is none of the project's custom domains (fc-spec-runtime 19.2)."""

    status = "404 Not Found"
    code = "DomainNameNotFound"


class DomainRouteNotFound(FcError):
    """No route of the custom domain matches the path and method (fc-spec-runtime 19.2)."""

    status = "404 Not Found"
    code = "DomainRouteNotFound"


class ServiceNotFound(FcError):
    """FC 2.0's default endpoint names a service the project does not have."""

    status = "404 Not Found"
    code = "ServiceNotFound"


class FunctionNotFound(FcError):
    """The default endpoint names a function the project does not serve."""

    status = "404 Not Found"
    code = "FunctionNotFound"


class BadResponse(FcError):
    status = "502 Bad Gateway"
    code = "BadResponse"
    error_type = "UnhandledInvocationError"


def request_id(environ: WSGIEnvironment, profile: Profile = "fc3") -> str:
    """The request's id, created on first use: FC 3.0 ``1-<hex time>-<24 hex>``, FC 2.0 a UUID."""
    rid: str | None = environ.get(REQUEST_ID_KEY)
    if rid is None:
        rid = environ[REQUEST_ID_KEY] = new_request_id(profile)
    return rid


def new_request_id(profile: Profile = "fc3") -> str:
    if profile == "fc2":
        return str(uuid.uuid4())
    # Ids are unique, not secret: random (reseeded in each forked worker) is enough and
    # cheaper than a system call; the time part is formatted once a second.
    global _time_prefix
    now = int(time.time())
    second, prefix = _time_prefix
    if now != second:
        prefix = f"1-{now:08x}-"
        _time_prefix = (now, prefix)
    return prefix + _random_bits(96).to_bytes(12, "big").hex()


#: The second and the "1-<hex time>-" part of FC 3.0 ids made in it (one tuple: thread-safe).
_time_prefix: tuple[int, str] = (0, "")


def error_body(error: FcError, rid: str, profile: Profile) -> bytes:
    if profile == "fc2":
        payload = {"ErrorCode": error.code, "ErrorMessage": error.message}
    else:
        payload = {"Code": error.code, "Message": error.message, "RequestId": rid}
    return json.dumps(payload).encode()


def error_headers(rid: str, error_type: str, body: bytes) -> list[tuple[str, str]]:
    return [
        _JSON,
        ("Content-Length", str(len(body))),
        ("X-Fc-Request-Id", rid),
        ("X-Fc-Error-Type", error_type),
    ]


def error_response(
    error: FcError,
    environ: WSGIEnvironment,
    start_response: StartResponse,
    profile: Profile = "fc3",
    exc_info: object = None,
) -> list[bytes]:
    """Answer ``error`` as FC's gateway does; ``exc_info`` when replacing a started response."""
    rid = request_id(environ, profile)
    environ[ERROR_CODE_KEY] = error.code
    body = error_body(error, rid, profile)
    headers = error_headers(rid, error.error_type, body)
    headers.extend(error.extra_headers)
    start_response(error.status, headers, exc_info)  # type: ignore[arg-type]
    return [_unless_head(environ, body)]


def function_error_response(
    exc: BaseException,
    environ: WSGIEnvironment,
    start_response: StartResponse,
    profile: Profile = "fc3",
    exc_info: object = None,
    message: str | None = None,
) -> list[bytes]:
    """FC's answer to a function that raised: 502 ``UnhandledInvocationError``, logged."""
    rid = request_id(environ, profile)
    log.error("request %s: unhandled error in the function", rid, exc_info=exc)
    payload = {"errorMessage": message or str(exc), "errorType": type(exc).__name__}
    return function_answer(payload, environ, start_response, profile=profile, exc_info=exc_info)


def function_answer(
    payload: dict[str, str],
    environ: WSGIEnvironment,
    start_response: StartResponse,
    *,
    error_type: str = UNHANDLED_CODE,
    code: str | None = None,
    profile: Profile = "fc3",
    exc_info: object = None,
) -> list[bytes]:
    """A function error as the runtime reports it: 502, the runtime's JSON ``payload`` as body
    (``errorMessage``, and ``errorType`` where FC sends it), ``X-Fc-Error-Type``; not logged."""
    rid = request_id(environ, profile)
    body = json.dumps(payload).encode()
    environ[ERROR_CODE_KEY] = code or error_type
    headers = error_headers(rid, error_type, body)
    start_response(BadResponse.status, headers, exc_info)  # type: ignore[arg-type]
    return [_unless_head(environ, body)]


def _unless_head(environ: WSGIEnvironment, body: bytes) -> bytes:
    # HEAD answers keep the Content-Length of the body they would have had.
    return b"" if environ.get("REQUEST_METHOD") == "HEAD" else body
