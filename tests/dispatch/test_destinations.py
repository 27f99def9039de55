"""Destination records reach a real local HTTP server and a module:function; failures retry."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest

from fc_wsgi.config import ConfigError, Destination, DestinationConfig
from fc_wsgi.dispatch.destinations import (
    RETRIES_EXHAUSTED,
    SUCCESS,
    Destinations,
    build_record,
    check_destination,
)

T0 = 1_700_000_000.5


class Receiver:
    """An http.server on 127.0.0.1, port 0, recording POSTed JSON; answers ``status``."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.status = 200
        self.received = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                length = int(self.headers["Content-Length"])
                receiver.records.append(json.loads(self.rfile.read(length)))
                receiver.headers.append(dict(self.headers))
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()
                receiver.received.set()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook?token=secret"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


@pytest.fixture
def hooks_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    (tmp_path / "dest_hooks_mod.py").write_text(
        "received = []\n"
        "calls = 0\n"
        "def collect(record):\n"
        "    received.append(record)\n"
        "def flaky(record):\n"
        "    global calls\n"
        "    calls += 1\n"
        "    if calls < 3:\n"
        "        raise ConnectionError('not yet')\n"
        "    received.append(record)\n"
        "class ns:\n"
        "    @staticmethod\n"
        "    def nested(record):\n"
        "        received.append(('nested', record))\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    import dest_hooks_mod  # type: ignore[import-not-found]

    yield dest_hooks_mod
    sys.modules.pop("dest_hooks_mod", None)


def record(condition: str = SUCCESS) -> dict[str, Any]:
    return build_record(
        request_id="1-65000000-abc",
        condition=condition,
        attempts=2,
        request_body=b'{"job": 1}',
        status=200,
        function_error=None,
        response_body=b"done \xff",
        now=T0,
    )


def config(on_success: str | None = None, on_failure: str | None = None) -> DestinationConfig:
    return DestinationConfig(
        on_success=Destination(on_success) if on_success else None,
        on_failure=Destination(on_failure) if on_failure else None,
    )


def test_record_has_fc_shape() -> None:
    assert record() == {
        "timestamp": 1_700_000_000_500,
        "requestContext": {
            "requestId": "1-65000000-abc",
            "functionArn": "local",
            "condition": "Success",
            "approximateInvokeCount": 2,
        },
        "requestPayload": '{"job": 1}',
        "responseContext": {"statusCode": 200, "functionError": ""},
        "responsePayload": "done \ufffd",
    }


def test_http_destination_receives_a_json_post(receiver: Receiver) -> None:
    destinations = Destinations(config(on_success=receiver.url))
    assert destinations.target_for(SUCCESS) == receiver.url
    assert destinations.target_for(RETRIES_EXHAUSTED) is None
    assert destinations.deliver(receiver.url, record()) is True
    assert receiver.records == [record()]
    assert receiver.headers[0]["Content-Type"] == "application/json"


def test_http_destination_errors_are_retried_then_dropped(
    receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    receiver.status = 503
    pauses: list[float] = []
    destinations = Destinations(config(on_failure=receiver.url), sleep=pauses.append)
    assert destinations.deliver(receiver.url, record(RETRIES_EXHAUSTED)) is False
    assert len(receiver.records) == 3 and pauses == [0.2, 0.4]
    assert "dropped after 3 tries" in caplog.text
    assert "secret" not in caplog.text  # the URL's query never reaches the log


def test_unreachable_http_destination_never_raises() -> None:
    destinations = Destinations(None, timeout_seconds=0.5, attempts=2, sleep=lambda s: None)
    assert not destinations  # nothing configured
    assert destinations.deliver("http://127.0.0.1:9/closed", record()) is False


def test_module_function_destination(hooks_module: Any) -> None:
    destinations = Destinations(
        config(on_success="dest_hooks_mod:collect", on_failure="dest_hooks_mod:ns.nested")
    )
    assert destinations.deliver("dest_hooks_mod:collect", record()) is True
    assert destinations.deliver("dest_hooks_mod:ns.nested", record(RETRIES_EXHAUSTED)) is True
    assert hooks_module.received == [record(), ("nested", record(RETRIES_EXHAUSTED))]


def test_module_function_failures_are_retried(hooks_module: Any) -> None:
    destinations = Destinations(None, sleep=lambda s: None)
    assert destinations.deliver("dest_hooks_mod:flaky", record()) is True
    assert hooks_module.calls == 3 and hooks_module.received == [record()]
    assert destinations.deliver("dest_hooks_mod:missing", record()) is False


@pytest.mark.parametrize(
    "spec", ["ftp://host/x", "module", "mod:", ":func", "1mod:f", "mod:f-g", "acs:mns:cn:queue"]
)
def test_bad_destinations_are_config_errors(spec: str) -> None:
    with pytest.raises(ConfigError, match="onSuccess.destination"):
        Destinations(config(on_success=spec))
    with pytest.raises(ConfigError):
        check_destination(spec)
