"""Deadlines: SIGALRM on the main thread, a runtime thread elsewhere (section 15, OQ 2)."""

from __future__ import annotations

import json
import signal
import threading
import time

import pytest
from support import Recorder, both_sides, make_environ

from fc_wsgi.runtime import recycle
from fc_wsgi.runtime import timeout as deadlines
from fc_wsgi.runtime.timeout import FunctionTimeout, run_with_deadline


class Worker:
    """Stands in for gunicorn's worker: records the graceful-exit request."""

    def __init__(self) -> None:
        self.exits = 0
        self.alive = True

    def handle_exit(self, sig, frame) -> None:
        self.exits += 1
        self.alive = False


@pytest.fixture
def worker():
    stand_in = Worker()
    recycle.bind_worker(stand_in)
    yield stand_in
    recycle.bind_worker(None)


def sleeper(environ, start_response):
    try:
        time.sleep(float(environ.get("QUERY_STRING") or 0))
    except Exception:  # the function's own catch-all must not swallow the timeout
        pass
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"awake"]


def test_main_thread_deadline_interrupts_a_blocking_call():
    started = time.monotonic()
    with pytest.raises(FunctionTimeout):
        run_with_deadline(lambda: time.sleep(5), 0.2)
    assert time.monotonic() - started < 1
    assert run_with_deadline(lambda: 42, 1) == 42


def test_a_shorter_deadline_is_kept_while_the_watchdog_sleeps_for_a_longer_one():
    assert run_with_deadline(lambda: "quick", 30) == "quick"  # the watchdog now idles 30 s
    started = time.monotonic()
    with pytest.raises(FunctionTimeout):
        run_with_deadline(lambda: time.sleep(5), 0.3)
    assert time.monotonic() - started < 1.5


def test_a_signal_for_a_call_that_already_ended_is_void():
    assert run_with_deadline(lambda: 1, 1) == 1
    # The watchdog signalled a call that returned meanwhile: the next call must not be hit.
    deadlines._watchdog.expired = deadlines._Call(0.0)
    assert run_with_deadline(lambda: signal.raise_signal(signal.SIGALRM) or "kept", 1) == "kept"
    signal.raise_signal(signal.SIGALRM)  # and between calls, nothing is raised


def test_a_call_that_swallows_its_timeout_is_signalled_again():
    hits = []

    def stubborn():
        for _ in range(3):
            try:
                time.sleep(5)
            except FunctionTimeout:
                hits.append(time.monotonic())
        return "gave up"

    # Every signal lands after the deadline (0.2 s), one per shortest timeout seen (0.2 s).
    assert run_with_deadline(stubborn, 0.2) == "gave up"
    assert len(hits) == 3 and hits[-1] - hits[0] < 2


def test_other_thread_deadline_answers_on_time():
    outcome = {}

    def call():
        started = time.monotonic()
        try:
            run_with_deadline(lambda: time.sleep(2), 0.2)
        except FunctionTimeout:
            outcome["elapsed"] = time.monotonic() - started
        outcome["next"] = run_with_deadline(lambda: "next", 1)

    thread = threading.Thread(target=call)
    thread.start()
    thread.join(5)
    assert outcome["elapsed"] < 1 and outcome["next"] == "next"


def test_errors_of_the_call_reach_the_caller_on_both_paths():
    def boom():
        raise ValueError("boom")

    with pytest.raises(ValueError):
        run_with_deadline(boom, 1)
    caught = []
    thread = threading.Thread(target=lambda: caught.append(_raises(boom)))
    thread.start()
    thread.join(5)
    assert caught == [ValueError]


def _raises(call):
    try:
        run_with_deadline(call, 1)
    except Exception as exc:
        return type(exc)
    return None


def test_timeout_answer_with_real_duration_and_recycle(function_stack, worker):
    app = function_stack(sleeper, timeout=1)
    response = app.get("/", params="3", status=502)
    assert response.headers["X-Fc-Error-Type"] == "UnhandledInvocationError"
    message = response.json["errorMessage"]
    assert message.startswith("Function timed out after 1 seconds (maxMemoryUsage: ")
    assert message.endswith("MB)") and list(response.json) == ["errorMessage"]  # OQ 2
    assert 1000 <= int(response.headers["X-Fc-Invocation-Duration"]) < 2500
    assert worker.exits == 1
    assert app.get("/", params="0").text == "awake"  # the next request is served


class TimedRecorder(Recorder):
    """Also notes when the answer started, and on which thread."""

    def start_response(self, status, headers, exc_info=None):
        self.answered_at = time.monotonic()
        self.answered_on = threading.current_thread().name
        return super().start_response(status, headers, exc_info)


def test_timeout_on_a_server_thread(function_stack, worker, tmp_path):
    config = {"authType": "anonymous", "methods": ["GET"],
              "async": {"journal": str(tmp_path / "a.sqlite3")},
              "function": {"codeUri": str(tmp_path), "timeout": 1}}  # fmt: skip
    app = both_sides(sleeper, config)
    results = []

    def serve(query):
        recorder = TimedRecorder()
        body = recorder.run(app, make_environ(QUERY_STRING=query))
        results.append((recorder, body, time.monotonic()))

    started = time.monotonic()
    thread = threading.Thread(target=serve, args=("3",))
    thread.start()
    thread.join(10)
    recorder, body, returned_at = results[0]
    # Answered at the deadline, by the watchdog, through the server's write(); the call's
    # thread came back only when its sleep ended, and added nothing to the answer.
    assert recorder.answered_at - started < 2.5 and recorder.answered_on == "fc-deadline"
    assert returned_at - started >= 3
    assert recorder.status.startswith("502") and recorder.calls == 1
    assert body == recorder.written and "timed out" in json.loads(body)["errorMessage"]
    assert worker.exits == 1 and deadlines.stuck_calls() == 0
    thread = threading.Thread(target=serve, args=("0",))
    thread.start()
    thread.join(10)
    recorder, body, _ = results[1]
    assert (recorder.status, body) == ("200 OK", b"awake")


def test_the_log_has_the_stack_where_the_call_was_stopped(function_stack, worker, caplog):
    function_stack(sleeper, timeout=1).get("/", params="3", status=502)
    dumped = [r.getMessage() for r in caplog.records if "Dumping stack trace" in r.getMessage()]
    assert dumped and "in sleeper" in dumped[0] and "time.sleep" in dumped[0]


def test_a_server_thread_timeout_dumps_the_runtime_threads_stack():
    stacks = []

    def call():
        try:
            run_with_deadline(lambda: time.sleep(2), 0.2)
        except FunctionTimeout as timeout:
            stacks.append(timeout.stack)

    thread = threading.Thread(target=call)
    thread.start()
    thread.join(5)
    assert "time.sleep(2)" in stacks[0]


def _on_a_thread(call):
    """Run ``call`` on a fresh thread; its outcome and when it came back."""
    outcome = {}

    def target():
        try:
            outcome["result"] = call()
        except BaseException as exc:  # noqa: BLE001 - the test inspects whatever came out
            outcome["error"] = exc
        outcome["back_at"] = time.monotonic()

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(10)
    assert not thread.is_alive()
    return outcome


def test_a_server_thread_in_python_code_is_stopped_at_its_deadline():
    answers = []

    def spin():
        while True:
            pass

    started = time.monotonic()
    outcome = _on_a_thread(lambda: run_with_deadline(spin, 0.2, answers.append))
    assert len(answers) == 1 and "in spin" in answers[0]  # the stack where it was
    assert isinstance(outcome["error"], FunctionTimeout) and outcome["error"].answered
    assert outcome["back_at"] - started < 1.5  # stopped, not left spinning
    assert deadlines.stuck_calls() == 0


def test_a_shorter_deadline_on_another_thread_wakes_the_watchdog():
    answers = []
    long_call = threading.Thread(
        target=lambda: run_with_deadline(lambda: time.sleep(1), 30, answers.append)
    )
    long_call.start()
    time.sleep(0.05)  # the watchdog now sleeps until the 30 s deadline or the shortest timeout
    started = time.monotonic()
    outcome = _on_a_thread(lambda: run_with_deadline(lambda: time.sleep(2), 0.25, answers.append))
    assert outcome["error"].answered and len(answers) == 1
    assert answers and outcome["back_at"] - started >= 2  # blocked in sleep: came back after it
    long_call.join(5)
    assert len(answers) == 1  # the long call ended on its own


def test_a_main_thread_deadline_after_a_long_call_ended():
    run_with_deadline(lambda: None, 0.3)  # the shortest timeout seen so far
    run_with_deadline(lambda: time.sleep(0.5), 30)  # the watchdog must not sleep 30 s meanwhile
    started = time.monotonic()
    with pytest.raises(FunctionTimeout):
        run_with_deadline(lambda: time.sleep(5), 0.3)
    assert time.monotonic() - started < 1.5


@pytest.mark.parametrize("work", ["sleep", "spin"])
def test_calls_ending_at_their_deadline_get_exactly_one_answer(work):
    """Calls that end just before, at or just after their deadline: each is answered once,
    by itself or by the watchdog, and no timeout lands in the thread after the call."""
    timeout = 0.02

    def call(duration):
        if work == "sleep":
            time.sleep(duration)
        else:
            end = time.monotonic() + duration
            while time.monotonic() < end:
                pass
        return "done"

    def one(duration):
        answers = []
        try:
            result = run_with_deadline(lambda: call(duration), timeout, answers.append)
        except FunctionTimeout as timeout_:
            assert timeout_.answered and len(answers) == 1
            result = "answered late"
        else:
            assert answers == [] and result == "done"
        for _ in range(1000):  # bytecodes in which a stray timeout would land
            pass
        return result

    def many():
        return [one(timeout * (0.8 + 0.4 * i / 40)) for i in range(40)]

    outcomes = []
    threads = [
        threading.Thread(target=lambda: outcomes.append(_on_a_thread(many))) for _ in range(3)
    ]
    for thread in threads:  # three at once: the watchdog answers for several threads
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(outcomes) == 3 and all("error" not in outcome for outcome in outcomes), outcomes
    results = [result for outcome in outcomes for result in outcome["result"]]
    assert set(results) <= {"done", "answered late"} and len(results) == 120
    assert deadlines.stuck_calls() == 0


def test_a_late_answer_to_a_client_that_left_is_logged_and_the_call_still_settles(caplog):
    def client_gone(stack):
        raise BrokenPipeError(32, "Broken pipe")

    outcome = _on_a_thread(lambda: run_with_deadline(lambda: time.sleep(0.5), 0.1, client_gone))
    assert isinstance(outcome["error"], FunctionTimeout) and outcome["error"].answered
    assert "was not sent: [Errno 32] Broken pipe" in caplog.text
    assert deadlines.stuck_calls() == 0


def test_the_main_thread_without_our_alarm_is_answered_for_like_any_other(monkeypatch):
    # The app had its own SIGALRM handler: the watchdog answers for the call instead.
    monkeypatch.setattr(deadlines, "_alarm_ours", False)
    monkeypatch.setattr(deadlines, "_alarm_taken", True)
    answers = []
    started = time.monotonic()
    with pytest.raises(FunctionTimeout) as timeout:
        run_with_deadline(lambda: time.sleep(0.6), 0.1, answers.append)
    assert timeout.value.answered and len(answers) == 1
    assert time.monotonic() - started >= 0.6  # the sleep was not interrupted: no signal
    with pytest.raises(FunctionTimeout) as timeout:  # without answer_late: the hand-off
        run_with_deadline(lambda: time.sleep(0.6), 0.1)
    assert not timeout.value.answered and time.monotonic() - started < 1.2
