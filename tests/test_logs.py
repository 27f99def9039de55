"""JSON log lines carry the request id of the request (or async run) that logged them."""

from __future__ import annotations

import json
import logging

from support import Recorder, hello_app, make_environ, validated

from fc_wsgi.errors import REQUEST_ID_KEY
from fc_wsgi.logs import REQUEST_ID, JsonFormatter, RequestIdFilter
from fc_wsgi.request_log import RequestLogContext


def format_record(message: str, **extra: object) -> dict:
    record = logging.LogRecord("app", logging.WARNING, __file__, 1, message, (), None)
    for key, value in extra.items():
        setattr(record, key, value)
    RequestIdFilter().filter(record)
    return json.loads(JsonFormatter().format(record))


def test_a_record_outside_any_request_has_no_request_id():
    entry = format_record("hello")
    assert (entry["request_id"], entry["level"], entry["logger"], entry["message"]) == (
        None, "WARNING", "app", "hello",
    )  # fmt: skip
    assert entry["time"].endswith("Z")


def test_records_inside_a_request_carry_its_id_and_extras():
    seen = {}

    def app(environ, start_response):
        seen["entry"] = format_record("inside", order=42)
        seen["rid"] = environ[REQUEST_ID_KEY]
        return hello_app(environ, start_response)

    assert validated(RequestLogContext, app).get("/").text == "hello"
    assert seen["entry"]["request_id"] == seen["rid"] and seen["entry"]["order"] == 42
    assert REQUEST_ID.get() is None  # reset once the body was closed


def test_the_id_stays_set_until_close_and_is_the_answers():
    app = RequestLogContext(hello_app)
    environ = make_environ()
    recorder = Recorder()
    body = app(environ, recorder.start_response)
    assert REQUEST_ID.get() == environ[REQUEST_ID_KEY]
    list(body)
    body.close()
    assert REQUEST_ID.get() is None
