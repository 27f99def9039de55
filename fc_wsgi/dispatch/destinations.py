"""Result callbacks: where a finished async task's record goes (FC's ``destinationConfig``).

FC sends an invocation record to ``onSuccess`` after a success and to ``onFailure`` once retries
are exhausted or the event expired (fc-spec.md section 11). FC's destinations are cloud ARNs
(MNS, EventBridge, another function); the local stand-ins are an ``http(s)://`` URL, which gets
the record as a JSON POST, and ``module:function``, called with the record dict.

Delivery is best effort, as a callback should be: a few tries with a short timeout, failures
logged with the request id, never an error for the task, which has finished either way. The
dispatcher runs deliveries on a small executor of their own so a slow receiver never holds up
the task queue. A record not yet delivered when the process dies is lost (the task's own
result is in the journal).

``condition`` values follow the record shape FC shares with AWS Lambda **[unverified]**:
``Success``, ``RetriesExhausted``, ``EventAgeExceeded``.
"""

from __future__ import annotations

import importlib
import json
import logging
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from ..config import ConfigError, DestinationConfig
from .runner import UNHANDLED

if TYPE_CHECKING:
    from .runner import Outcome
    from .tasks import TaskRecord

log = logging.getLogger(__name__)

SUCCESS = "Success"
RETRIES_EXHAUSTED = "RetriesExhausted"
EVENT_AGE_EXCEEDED = "EventAgeExceeded"

#: Per-try timeout of an HTTP delivery, in seconds.
DELIVERY_TIMEOUT_SECONDS = 5.0
#: Tries per record before giving up.
DELIVERY_ATTEMPTS = 3
#: Pause before the second try, doubled for each further one, in seconds.
DELIVERY_BACKOFF_SECONDS = 0.2
#: FC's ARN for the function; we have no account or region.
FUNCTION_ARN = "local"

Record = dict[str, Any]
Target = Callable[[Record], object]

_IMPORT_REF = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


class DeliveryError(Exception):
    """One delivery try failed (the receiver was down or answered an error)."""


def build_record(
    *,
    request_id: str,
    condition: str,
    attempts: int,
    request_body: bytes,
    status: int | None,
    function_error: str | None,
    response_body: bytes,
    now: float,
) -> Record:
    """FC's destination record. Bodies are sent as text (UTF-8, undecodable bytes replaced)."""
    return {
        "timestamp": int(now * 1000),
        "requestContext": {
            "requestId": request_id,
            "functionArn": FUNCTION_ARN,
            "condition": condition,
            "approximateInvokeCount": attempts,
        },
        "requestPayload": request_body.decode("utf-8", "replace"),
        "responseContext": {"statusCode": status, "functionError": function_error or ""},
        "responsePayload": response_body.decode("utf-8", "replace"),
    }


def task_record(task: TaskRecord, condition: str, outcome: Outcome | None, now: float) -> Record:
    """The record of a finished task; ``outcome`` is None when the claim ended it (expired, or
    its workers died too often), which FC reports as no answer."""
    if outcome is None:
        status, response = None, b""
        function_error: str | None = "" if condition == EVENT_AGE_EXCEEDED else UNHANDLED
    else:
        status, function_error, response = outcome.status, outcome.error_type, outcome.body
    return build_record(
        request_id=task.request_id,
        condition=condition,
        attempts=task.attempts,
        request_body=task.request.body if task.request is not None else b"",
        status=status,
        function_error=function_error,
        response_body=response,
        now=now,
    )


def check_destination(spec: str, where: str = "destination") -> str:
    """Return ``spec`` if it is an ``http(s)://`` URL or ``module:function``; else ConfigError."""
    if spec.startswith(("http://", "https://")) or _IMPORT_REF.match(spec):
        return spec
    raise ConfigError(f"{where}: must be an http(s):// URL or module:function, got {spec!r}")


class Destinations:
    """Delivers records to the configured onSuccess/onFailure destinations."""

    def __init__(
        self,
        config: DestinationConfig | None,
        *,
        timeout_seconds: float = DELIVERY_TIMEOUT_SECONDS,
        attempts: int = DELIVERY_ATTEMPTS,
        backoff_seconds: float = DELIVERY_BACKOFF_SECONDS,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        success = config.on_success if config is not None else None
        failure = config.on_failure if config is not None else None
        where = "async.destinationConfig"
        self.on_success = (
            check_destination(success.destination, f"{where}.onSuccess.destination")
            if success is not None
            else None
        )
        self.on_failure = (
            check_destination(failure.destination, f"{where}.onFailure.destination")
            if failure is not None
            else None
        )
        self._timeout_seconds = timeout_seconds
        self._attempts = max(1, attempts)
        self._backoff_seconds = backoff_seconds
        self._sleep = sleep
        self._targets: dict[str, Target] = {}  # module:function, imported on first use
        # urllib's default handlers: the usual proxy variables (and no_proxy) apply.
        self._opener = urllib.request.build_opener()

    def __bool__(self) -> bool:
        return self.on_success is not None or self.on_failure is not None

    def target_for(self, condition: str) -> str | None:
        return self.on_success if condition == SUCCESS else self.on_failure

    def deliver(self, destination: str, record: Mapping[str, Any]) -> bool:
        """Send ``record`` with retries; True once delivered. Never raises."""
        request_id = record.get("requestContext", {}).get("requestId", "-")
        pause = self._backoff_seconds
        for attempt in range(1, self._attempts + 1):
            try:
                self._send(destination, dict(record))
            except Exception as exc:  # the receiver's problem: log, retry, never propagate
                log.warning(
                    "request %s: destination %s failed (try %d of %d): %s",
                    request_id,
                    _shown(destination),
                    attempt,
                    self._attempts,
                    exc,
                )
                if attempt < self._attempts:
                    self._sleep(pause)
                    pause *= 2
                continue
            log.info("request %s: record delivered to %s", request_id, _shown(destination))
            return True
        log.error(
            "request %s: record for %s dropped after %d tries",
            request_id,
            _shown(destination),
            self._attempts,
        )
        return False

    def _send(self, destination: str, record: Record) -> None:
        if destination.startswith(("http://", "https://")):
            data = json.dumps(record).encode()
            request = urllib.request.Request(
                destination,
                data=data,
                method="POST",
                headers={"Content-Type": "application/json", "User-Agent": "fc-wsgi"},
            )
            try:
                with self._opener.open(request, timeout=self._timeout_seconds) as answer:
                    answer.read()
                    status = answer.status
            except urllib.error.HTTPError as exc:
                exc.close()  # it holds the answer's socket
                raise DeliveryError(f"answered {exc.code}") from None
            if not 200 <= status < 300:
                raise DeliveryError(f"answered {status}")
            return
        self._target(destination)(record)

    def _target(self, ref: str) -> Target:
        target = self._targets.get(ref)
        if target is None:
            module_name, _, attr_path = ref.partition(":")
            obj: Any = importlib.import_module(module_name)
            for attr in attr_path.split("."):
                obj = getattr(obj, attr)
            if not callable(obj):
                raise DeliveryError(f"{ref} is not callable")
            target = self._targets[ref] = obj
        return target


def _shown(destination: str) -> str:
    """The destination without query string or userinfo, which may carry secrets."""
    if destination.startswith(("http://", "https://")):
        scheme, _, rest = destination.partition("://")
        host_path = rest.split("?", 1)[0].split("#", 1)[0]
        if "@" in host_path.split("/", 1)[0]:
            host_path = host_path.split("@", 1)[1]
        return f"{scheme}://{host_path}"
    return destination
