"""Property tests over the raw environ: each middleware alone and the whole stack.

Every example is one request: a random method, path, query, headers (latin-1 text with control
characters, FC's own ``x-fc-*`` headers, CORS and auth headers), ``Content-Length`` (right,
wrong, hostile) and body, served to a random app behaviour (reads the body or not, raises,
answers lazily, sets reserved or oversized headers, swallows the body error). The answer must
be valid PEP 3333 on both sides (``wsgiref.validate.validator``; environs that break PEP 3333
on purpose, such as ``CONTENT_LENGTH: "-1"``, skip the outer one) and a well-formed FC answer:
a gateway error carries JSON ``Code``/``Message``/``RequestId`` (or, for a function failure,
``errorMessage``/``errorType``) and ``X-Fc-Request-Id``; no traceback ever reaches the body.

Budget: ``FC_WSGI_FUZZ_EXAMPLES`` examples per test (200 by default, a few seconds in all;
``FC_WSGI_FUZZ_EXAMPLES=20000`` for a long run).
"""

from __future__ import annotations

import io
import json
import os
import re
from wsgiref.validate import validator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from relsupport import ACCESS_KEY_ID, ACCESS_KEY_SECRET, jwt_trigger
from support import Recorder, make_environ

from fc_wsgi import AuthGate, CorsDefaults, HeaderFilter, LimitGuard, make_trigger_app
from fc_wsgi.config import AccessKey
from fc_wsgi.dispatch import AsyncDispatcher, Journal
from fc_wsgi.errors import FcError

EXAMPLES = int(os.environ.get("FC_WSGI_FUZZ_EXAMPLES", "200"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
LIMITS = {"max_header_bytes": 2048, "max_url_bytes": 256, "max_body_bytes": 64,
          "max_async_body_bytes": 32}  # fmt: skip
METHODS = ("GET", "HEAD", "POST", "OPTIONS", "PATCH", "PUT", "DELETE", "TRACE")
STATUS_LINE = re.compile(r"[1-5][0-9]{2} [^\r\n]*\Z")

# -- strategies ---------------------------------------------------------------------------

latin1 = st.text(st.characters(min_codepoint=0, max_codepoint=255), max_size=40)
big = st.integers(0, 9000).map(lambda n: "v" * n)
header_value = st.one_of(latin1, big, st.sampled_from(["", " ", "\r\n", "a\x00b", "ü"]))
NAMED = {
    "HTTP_X_FC_INVOCATION_TYPE": st.sampled_from(["Async", "async", " ASYNC ", "Sync", "maybe"]),
    "HTTP_X_FC_ASYNC_DELAY": st.sampled_from(["0", "1", "3600", "3601", "-1", "x", "٣"]),
    "HTTP_X_FC_ASYNC_TASK_ID": st.one_of(
        st.from_regex(r"[A-Za-z_][\w-]{0,10}", fullmatch=True), latin1
    ),
    "HTTP_ORIGIN": st.sampled_from(["http://page.example", "null", "", "http://evil\r\n"]),
    "HTTP_ACCESS_CONTROL_REQUEST_METHOD": st.sampled_from(["POST", "DELETE", "", "x y"]),
    "HTTP_ACCESS_CONTROL_REQUEST_HEADERS": st.sampled_from(["x-a", "content-type, x-b", ","]),
    "HTTP_AUTHORIZATION": st.one_of(
        st.sampled_from(
            [
                "Bearer ",
                "Bearer a.b.c",
                "FC :",
                f"FC {ACCESS_KEY_ID}:x",
                "ACS3-HMAC-SHA256 Credential=a",
                "Basic eA==",
            ]
        ),
        latin1.map(lambda v: "Bearer " + v),
    ),
    "HTTP_DATE": st.sampled_from(["Mon, 02 Jan 2006 15:04:05 GMT", "yesterday", ""]),
    "HTTP_X_FC_DATE": st.sampled_from(["Mon, 02 Jan 2006 15:04:05 GMT", "\x00"]),
    "HTTP_TRANSFER_ENCODING": st.sampled_from(["chunked", "gzip, chunked", "identity"]),
    "HTTP_COOKIE": st.sampled_from(["role=root", "a=b; role=x", "=;;", "role"]),
    "HTTP_X_UID": latin1,
    "HTTP_CONNECTION": st.just("keep-alive"),
    "HTTP_X_FC_REQUEST_ID": st.just("spoofed"),
}
any_header = st.from_regex(r"HTTP_[A-Z][A-Z0-9_]{0,15}", fullmatch=True).filter(
    lambda k: k not in ("HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH")
)


@st.composite
def environs(draw, *, hostile: bool = False) -> dict:
    body = draw(st.binary(max_size=120))
    lengths = [
        None,
        str(len(body)),
        str(len(body) + 5),
        "0",
        str(max(0, len(body) - 1)),
        "99999999999999999999",
    ]
    if hostile:
        lengths += ["-1", "²", "abc", " 5", "+3", "5_0", "1e3", "٣"]
    environ = make_environ(
        REQUEST_METHOD=draw(st.sampled_from(METHODS)),
        PATH_INFO=draw(
            st.one_of(
                st.just("/"),
                latin1.map(lambda p: "/" + p),
                st.sampled_from(["/public/x", "/public/../priv", "//a/./b"]),
            )
        ),
        QUERY_STRING=draw(st.one_of(latin1, st.sampled_from(["x-fc-signature=a", "a=%ff&b"]))),
    )
    environ["wsgi.input"] = io.BytesIO(body)
    length = draw(st.sampled_from(lengths))
    if length is not None:
        environ["CONTENT_LENGTH"] = length
    if draw(st.booleans()):
        environ["CONTENT_TYPE"] = draw(
            st.sampled_from(["application/x-www-form-urlencoded", "text/plain", "\x00"])
        )
    if draw(st.booleans()):
        environ["wsgi.input_terminated"] = True
    for key in draw(st.lists(st.sampled_from(sorted(NAMED)), max_size=6, unique=True)):
        environ[key] = draw(NAMED[key])
    for key, value in draw(st.dictionaries(any_header, header_value, max_size=4)).items():
        environ[key] = value
    return environ


BEHAVIOURS = ("list", "lazy", "read", "readline", "swallow", "raise", "raise_in_body", "write",
              "big_headers", "reserved_headers", "app_500", "no_start")  # fmt: skip


#: environ key carrying the example's app behaviour (replayed async tasks answer "list").
BEHAVIOUR_KEY = "fuzz.behaviour"
_HEADERS = [("Content-Type", "text/plain"), ("X-App", "1")]


def fuzz_app(environ, start_response):
    """An app (valid PEP 3333 unless its behaviour is to be broken) marked ``X-App``.

    One app for every example, so each stack (and its dispatcher threads) is built once.
    """
    behaviour = environ.get(BEHAVIOUR_KEY, "list")
    headers = _HEADERS

    def read_body(environ) -> bytes:
        stream = environ["wsgi.input"]
        if behaviour == "readline":
            return b"".join(iter(lambda: stream.readline(16), b""))
        chunks = []
        while chunk := stream.read(16):
            chunks.append(chunk)
        return b"".join(chunks)

    if behaviour == "raise":
        raise RuntimeError("the function failed")
    if behaviour in ("read", "readline"):
        read_body(environ)
    if behaviour == "swallow":
        try:
            read_body(environ)
        except Exception:  # an app that hides the body error: the gateway answers anyway
            pass
    if behaviour == "lazy":

        def lazy():
            start_response("200 OK", headers)
            yield b"lazy"

        return lazy()
    if behaviour == "raise_in_body":

        def failing():
            start_response("200 OK", headers)
            raise ValueError("failed while streaming")
            yield b""  # pragma: no cover

        return failing()
    if behaviour == "write":
        write = start_response("200 OK", headers)
        write(b"legacy ")
        return [b"write"]
    if behaviour == "big_headers":
        start_response("200 OK", [*headers, ("X-Big", "b" * 9000)])
        return [b"big"]
    if behaviour == "reserved_headers":
        extra = [("X-Fc-Request-Id", "app"), ("Date", "x"), ("Content-Length", "999")]
        start_response("200 OK", [*headers, *extra])
        return [b"reserved"]
    if behaviour == "app_500":
        start_response("500 Internal Server Error", headers)
        return [b"app error"]
    if behaviour == "no_start":
        return []
    start_response("200 OK", headers)
    return [b"ok"]


def serve(stack, environ: dict, *, outer: bool) -> tuple[Recorder, bytes]:
    recorder = Recorder()
    app = validator(stack) if outer else stack
    try:
        body = recorder.run(app, environ)
    except FcError as error:  # pragma: no cover - would be a bug: reported with its request
        raise AssertionError(f"an FcError escaped the stack: {error!r}") from error
    return recorder, body


def check_answer(recorder: Recorder, body: bytes, environ: dict, *, request_id: bool) -> None:
    status = recorder.status
    assert status is not None and STATUS_LINE.match(status), status
    assert b"Traceback" not in body and b'File "' not in body
    code = int(status[:3])
    rid = recorder.header("X-Fc-Request-Id")
    if request_id:
        assert rid and "," not in rid and rid != "spoofed", recorder.headers
    if code < 400 or recorder.header("X-App"):
        return
    assert rid, (status, recorder.headers)  # a gateway answer always carries its id
    error_type = recorder.header("X-Fc-Error-Type")
    assert error_type in ("FcCommonError", "UnhandledInvocationError"), recorder.headers
    assert recorder.header("Content-Type") == "application/json"
    if environ["REQUEST_METHOD"] == "HEAD":
        assert body == b""
        return
    payload = json.loads(body)
    if "errorType" in payload:  # a function failure: FC's runtime body, no stack trace
        assert (code, error_type) == (502, "UnhandledInvocationError")
        assert set(payload) == {"errorMessage", "errorType"}
    else:
        assert set(payload) == {"Code", "Message", "RequestId"}, payload
        assert payload["RequestId"] == rid


# -- the stacks ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def journal(tmp_path_factory):
    with Journal(tmp_path_factory.mktemp("fuzz") / "async.sqlite3") as j:
        yield j


@pytest.fixture(scope="module")
def stacks(journal, public_jwk, tmp_path_factory):
    """name -> (build(app) -> stack, whether every answer carries X-Fc-Request-Id)."""
    keys = [AccessKey(ACCESS_KEY_ID, ACCESS_KEY_SECRET)]
    jwt_config = jwt_trigger(public_jwk)["authConfig"]
    folder = tmp_path_factory.mktemp("fuzz-stack")
    built: list[AsyncDispatcher] = []

    def dispatcher(app):
        d = AsyncDispatcher(app, journal=journal, max_queued_tasks=10**6)
        built.append(d)
        return d

    def whole(config):
        def build(app):
            stack = make_trigger_app(app, config)
            layer = stack
            while not isinstance(layer, AsyncDispatcher):
                layer = layer.app
            built.append(layer)
            return stack

        return build

    base = {
        "methods": ["GET", "POST", "PUT", "HEAD", "DELETE"],
        "limits": {
            "maxBodyBytes": 64,
            "maxAsyncBodyBytes": 32,
            "maxUrlBytes": 256,
            "maxHeaderBytes": 2048,
        },
        "async": {"journal": str(folder / "stack.sqlite3"), "maxQueuedTasks": 10**6},
    }
    yield {
        "LimitGuard": (lambda app: LimitGuard(app, **LIMITS), False),
        "HeaderFilter": (lambda app: HeaderFilter(app, max_response_header_bytes=4096), True),
        "CorsDefaults fc": (lambda app: CorsDefaults(app, methods=["GET", "POST"]), False),
        "CorsDefaults strict": (
            lambda app: CorsDefaults(
                app, mode="strict", allow_origins=["http://page.example"], methods=["GET"]
            ),
            False,
        ),
        "AuthGate jwt": (lambda app: AuthGate(app, auth_type="jwt", auth_config=jwt_config), False),
        "AuthGate function": (
            lambda app: AuthGate(app, auth_type="function", access_keys=keys),
            False,
        ),
        "AsyncDispatcher": (dispatcher, False),
        "stack anonymous": (whole({**base, "authType": "anonymous"}), True),
        "stack jwt fc2": (
            whole({**jwt_trigger(public_jwk), **base, "authType": "jwt", "profile": "fc2"}),
            True,
        ),
        "stack function strict": (
            whole(
                {
                    **base,
                    "authType": "function",
                    "accessKeys": [{"id": ACCESS_KEY_ID, "secret": ACCESS_KEY_SECRET}],
                    "cors": {"mode": "strict", "allowOrigins": ["http://page.example"]},
                }
            ),
            True,
        ),
    }
    for d in built:
        d.close(5)


@pytest.fixture(scope="module")
def built_stacks(stacks):
    """``(name, inner validator?)`` -> the stack, built once: one set of dispatcher threads."""
    cache: dict[tuple[str, bool], object] = {}

    def get(name: str, inner: bool):
        if (name, inner) not in cache:
            build, _ = stacks[name]
            cache[name, inner] = build(validator(fuzz_app) if inner else fuzz_app)
        return cache[name, inner]

    return get


STACK_NAMES = ["LimitGuard", "HeaderFilter", "CorsDefaults fc", "CorsDefaults strict",
               "AuthGate jwt", "AuthGate function", "AsyncDispatcher", "stack anonymous",
               "stack jwt fc2", "stack function strict"]  # fmt: skip


#: The app's own failures. HeaderFilter turns them into FC's 502; a layer used without it
#: passes them through untouched, to the server, as a WSGI middleware must.
APP_ERRORS = ("the function failed", "failed while streaming")


def _run(stacks, built_stacks, name, environ, behaviour, *, outer, inner=True):
    with_id = stacks[name][1]
    alone = not with_id and name != "HeaderFilter"
    if alone and behaviour == "no_start":
        behaviour = "list"  # a broken app is the server's to report when no HeaderFilter runs
    environ[BEHAVIOUR_KEY] = behaviour
    stack = built_stacks(name, inner)
    try:
        recorder, body = serve(stack, environ, outer=outer)
    except (RuntimeError, ValueError) as exc:
        if alone and str(exc) in APP_ERRORS:
            return
        raise
    if "fc2" in name and recorder.header("X-App") is None and recorder.status[0] in "45":
        if environ["REQUEST_METHOD"] != "HEAD" and b"ErrorCode" in body:
            payload = json.loads(body)
            assert set(payload) == {"ErrorCode", "ErrorMessage"}, payload
            assert recorder.header("X-Fc-Request-Id")
            return
    check_answer(recorder, body, environ, request_id=with_id)


@pytest.mark.parametrize("name", STACK_NAMES)
@FUZZ
@given(data=st.data())
def test_valid_environs_give_pep3333_fc_answers(stacks, built_stacks, name, data):
    environ = data.draw(environs())
    behaviour = data.draw(st.sampled_from(BEHAVIOURS))
    _run(stacks, built_stacks, name, environ, behaviour, outer=True)


@pytest.mark.parametrize(
    "name",
    ["LimitGuard", "AuthGate jwt", "AsyncDispatcher", "stack anonymous", "stack function strict"],
)
@FUZZ
@given(data=st.data())
def test_hostile_environs_never_crash_the_stack(stacks, built_stacks, name, data):
    environ = data.draw(environs(hostile=True))
    behaviour = data.draw(st.sampled_from(BEHAVIOURS))
    # Without LimitGuard in front, a hostile CONTENT_LENGTH reaches the app, whose validator
    # would refuse it: there the app runs unvalidated.
    inner = "stack" in name or name == "LimitGuard"
    _run(stacks, built_stacks, name, environ, behaviour, outer=False, inner=inner)
