"""Log capture per thread: two invocations logging at once never see each other's lines."""

from __future__ import annotations

import base64
import logging
import subprocess
import sys
import threading

import pytest
from support import Recorder, both_sides, make_environ

from fc_wsgi.runtime import logtail


def test_two_threads_logging_at_once_keep_their_own_lines(tmp_path):
    barrier = threading.Barrier(2)

    def handler(environ, start_response):
        me = environ["QUERY_STRING"]
        barrier.wait(5)  # both invocations are inside the capture now
        for i in range(50):
            logging.getLogger().warning("%s record %d", me, i)
            print(f"{me} print {i}")
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [me.encode()]

    config = {"authType": "anonymous", "methods": ["GET"],
              "async": {"journal": str(tmp_path / "a.sqlite3")},
              "function": {"codeUri": str(tmp_path), "instanceConcurrency": 2}}  # fmt: skip
    app = both_sides(handler, config)
    tails = {}

    def call(me):
        recorder = Recorder()
        recorder.run(app, make_environ(QUERY_STRING=me, HTTP_X_FC_LOG_TYPE="Tail"))
        tails[me] = base64.b64decode(recorder.header("X-Fc-Log-Result")).decode()

    threads = [threading.Thread(target=call, args=(me,)) for me in ("alpha", "omega")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    for me, other in (("alpha", "omega"), ("omega", "alpha")):
        assert f"{me} print 49" in tails[me] and f"{me} record 49" in tails[me]
        assert other not in tails[me]


def test_records_of_fc_wsgi_itself_stay_out_of_the_tail():
    lines: list[str] = []
    logtail.install()

    def call():
        logging.getLogger("fc_wsgi.something").error("gateway detail")
        logging.getLogger("app").error("function detail")

    logtail.captured(call, lines, "rid-1")()
    text = "".join(lines)
    assert "function detail" in text and "gateway detail" not in text
    assert " rid-1 [ERROR] function detail" in text


def test_tail_result_is_padded_base64_of_the_last_bytes():
    result = logtail.tail_result(["é" * 3000])  # 6000 bytes; the cut may split a character
    data = base64.b64decode(result, validate=True)
    assert len(data) == logtail.TAIL_BYTES and result.endswith("=") == (len(data) % 3 != 0)


def test_billed_duration_is_rounded_up():
    assert logtail.billed_ms(0.0181) == 19 and logtail.billed_ms(0.019) == 19


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/statm")
def test_peak_memory_is_the_whole_process_even_when_another_thread_grew_it():
    # In a fresh interpreter, whose peak is its start-up: this one's depends on earlier tests.
    code = """if True:
        import os, threading
        from fc_wsgi.runtime import logtail
        before = logtail.peak_memory_mb()
        pages = int(open("/proc/self/statm").read().split()[1])
        resident_mb = pages * os.sysconf("SC_PAGE_SIZE") / 2**20
        size = int(before - resident_mb + 96) * 2**20  # the peak must grow by about 96 MiB
        def allocate():
            block = bytearray(size)
            block[::4096] = bytes(len(block[::4096]))  # touch every page: resident
        thread = threading.Thread(target=allocate)
        thread.start()
        thread.join()
        print(before, logtail.peak_memory_mb())
    """
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    before, after = map(float, out.stdout.split())
    assert after >= before + 64


def test_answers_reuse_a_peak_reading_for_a_tenth_of_a_second(monkeypatch):
    readings = []
    real_getrusage = logtail.resource.getrusage

    def counting_getrusage(who):
        readings.append(who)
        return real_getrusage(who)

    clock = [1000.0]
    monkeypatch.setattr(logtail.resource, "getrusage", counting_getrusage)
    monkeypatch.setattr(logtail.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(logtail, "_last_peak", (0.0, 0.0))  # read long ago
    first = logtail.recent_peak_memory_mb()
    clock[0] += logtail.PEAK_MEMORY_REUSE_SECONDS / 2
    assert logtail.recent_peak_memory_mb() == first and len(readings) == 1
    clock[0] += logtail.PEAK_MEMORY_REUSE_SECONDS
    assert logtail.recent_peak_memory_mb() >= first and len(readings) == 2
    logtail.peak_memory_mb()  # the log tail's summary and the timeout message read afresh
    assert len(readings) == 3
