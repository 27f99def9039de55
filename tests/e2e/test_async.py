"""Async invocation end to end: real `fc-wsgi serve --workers 2`, loopback HTTP, SQLite on disk.

The app (``async_app.py``) appends a line to a run log for every run it starts and ends, so the
tests see what ran, how often, with which attempt and in which process; the journal itself is
read with :class:`fc_wsgi.dispatch.Journal`. Crash tests SIGKILL the server or one worker and
prove that every accepted request still runs, with FC's default 30 s lease: a killed process of
this host is seen dead at the next rescan, so its tasks run again within 2 s, not a lease later.
A burst of accepts killed at a random moment proves every 202 was on disk.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from async_app import RUN_LOG_ENV, Run, read_runs
from servers import Server, launch, stop
from support import Receiver, free_port, http_request, wait_for

from fc_wsgi.dispatch import Journal, TaskRecord

pytestmark = pytest.mark.e2e

APP = "tests.e2e.async_app:app"
ASYNC = {"X-Fc-Invocation-Type": "Async"}
#: A killed worker's task runs again within this, whatever the lease (issue 14).
RERUN_SECONDS = 2.0


# -- helpers ---------------------------------------------------------------------------------


@dataclass
class Site:
    """A served trigger and its files: config, journal and run log in ``folder``."""

    folder: Path
    server: Server

    @property
    def journal(self) -> Path:
        return self.folder / "async.sqlite3"

    def runs(self, request_id: str | None = None, phase: str = "start") -> list[Run]:
        return read_runs(self.folder / "runs.log", request_id, phase)

    def task(self, request_id: str) -> TaskRecord | None:
        with Journal(self.journal) as journal:
            return journal.get(request_id)

    def logs(self) -> str:
        return self.server.output()[-3000:]

    def post(self, path: str = "/", body: bytes = b"payload", **headers: str) -> str:
        """An async POST that must be accepted; returns its request id."""
        status, answer, data = request(self, "POST", path, body, {**ASYNC, **headers})
        assert (status, data) == (202, b""), data
        return answer["X-Fc-Request-Id"]


def start_site(
    folder: Path, async_config: dict[str, Any], *, restart: int = 0, shape: tuple[str, ...] = ()
) -> Site:
    """`fc-wsgi serve --workers 2` (or ``shape``) of the test app, its journal and run log in
    ``folder``."""
    config = {"authType": "anonymous", "methods": ["GET", "POST"]}
    config["async"] = {"journal": str(folder / "async.sqlite3"), **async_config}
    config_path = folder / "trigger.json"
    config_path.write_text(json.dumps(config))
    port = free_port()
    argv = [sys.executable, "-m", "fc_wsgi", "serve", APP, "--config", str(config_path)]
    argv += ["--bind", f"127.0.0.1:{port}", *(shape or ("--workers", "2"))]
    env = {RUN_LOG_ENV: str(folder / "runs.log")}
    server = launch(argv, port, folder / f"server-{restart}.log", env)
    return Site(folder, server)


def request(
    site: Site, method: str, path: str, body: bytes | None = None, headers: dict | None = None
) -> tuple[int, dict[str, str], bytes]:
    return http_request(site.server.port, method, path, body, headers)


def state_is(site: Site, request_id: str, *states: str) -> Callable[[], TaskRecord | None]:
    def check() -> TaskRecord | None:
        task = site.task(request_id)
        return task if task is not None and task.state in states else None

    return check


def worker_pids(master: int) -> set[int]:
    pids: set[int] = set()
    for children in Path(f"/proc/{master}/task").glob("*/children"):
        pids.update(int(pid) for pid in children.read_text().split())
    return pids


def kill_all(site: Site) -> None:
    """SIGKILL the master and its workers at once, as a power cut or the OOM killer would."""
    os.killpg(site.server.process.pid, signal.SIGKILL)
    site.server.process.wait(timeout=10)


# -- servers shared by the tests that do not stop them -----------------------------------------


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    yield receiver
    receiver.close()


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Iterator[Site]:
    """FC's async defaults: 3 retries, 1 day of event age."""
    site = start_site(tmp_path_factory.mktemp("async-defaults"), {})
    yield site
    stop(site.server)


@pytest.fixture(scope="module")
def one_retry(tmp_path_factory, receiver) -> Iterator[Site]:
    destinations = {
        "onSuccess": {"destination": receiver.url("/ok")},
        "onFailure": {"destination": receiver.url("/failed")},
    }
    config = {"maxAsyncRetryAttempts": 1, "destinationConfig": destinations}
    site = start_site(tmp_path_factory.mktemp("one-retry"), config)
    yield site
    stop(site.server)


@pytest.fixture(scope="module")
def short_lived(tmp_path_factory, receiver) -> Iterator[Site]:
    destinations = {"onFailure": {"destination": receiver.url("/failed")}}
    config = {"maxAsyncEventAgeInSeconds": 1, "destinationConfig": destinations}
    site = start_site(tmp_path_factory.mktemp("short-lived"), config)
    yield site
    stop(site.server)


# -- acceptance ------------------------------------------------------------------------------


def test_accepted_with_202_then_run_with_the_same_request_id(site):
    status, headers, body = request(site, "POST", "/?first", b"hello", ASYNC)
    assert (status, body) == (202, b"")
    rid = headers["X-Fc-Request-Id"]
    assert headers["Content-Length"] == "0"
    (run,) = wait_for(lambda: site.runs(rid, "end"), 10, f"{rid} ran", site)
    assert (run.request_id, run.attempt) == (rid, 1)
    task = wait_for(state_is(site, rid, "Succeeded"), 5, f"{rid} succeeded", site)
    assert (task.attempts, task.status, task.method, task.path) == (1, 200, "POST", "/")


def test_delay_is_honoured(site):
    sent = time.time()
    rid = site.post("/?delayed", **{"x-fc-async-delay": "2"})
    accepted = time.time()
    (run,) = wait_for(lambda: site.runs(rid), 10, f"{rid} ran", site)
    assert run.at - sent >= 2.0
    assert run.at - accepted < 2.0 + 1.5


@pytest.mark.parametrize("delay", ["-1", "3601", "abc"])
def test_bad_delay_is_refused_and_nothing_is_queued(site, delay):
    headers = {**ASYNC, "x-fc-async-delay": delay}
    status, answer, body = request(site, "POST", "/?bad-delay", b"x", headers)
    assert (status, json.loads(body)["Code"]) == (400, "InvalidArgument")
    rid = answer["X-Fc-Request-Id"]
    assert site.task(rid) is None
    time.sleep(0.2)
    assert site.runs(rid) == []


def test_a_caller_chosen_task_id_is_echoed_and_cannot_be_reused(site):
    headers = {**ASYNC, "X-Fc-Async-Task-Id": "resize_42"}
    status, answer, _ = request(site, "POST", "/?task-id", b"x", headers)
    assert (status, answer["X-Fc-Async-Task-Id"]) == (202, "resize_42")
    rid = answer["X-Fc-Request-Id"]
    status, _, body = request(site, "POST", "/?task-id", b"x", headers)
    assert (status, json.loads(body)["Code"]) == (409, "ResourceAlreadyExists")
    wait_for(state_is(site, "resize_42", "Succeeded"), 10, "resize_42 ran", site)
    assert [run.request_id for run in site.runs(rid)] == [rid]


def test_a_burst_of_500_runs_each_request_exactly_once(site):
    def post_many(count: int) -> list[str]:
        return [site.post("/?burst", b"b") for _ in range(count)]

    with ThreadPoolExecutor(4) as clients:
        ids = [rid for batch in clients.map(post_many, [125] * 4) for rid in batch]
    assert len(set(ids)) == 500

    def all_finished() -> bool:
        with Journal(site.journal) as journal:
            counts = journal.counts()
        return not any(counts[s] for s in ("Enqueued", "Retrying", "Running", "Stopping"))

    wait_for(lambda: set(ids) <= {run.request_id for run in site.runs()}, 40, "all ran", site)
    wait_for(all_finished, 10, "the journal settled", site)
    started = Counter(run.request_id for run in site.runs())
    assert {rid: started[rid] for rid in ids} == dict.fromkeys(ids, 1)
    with Journal(site.journal) as journal:
        assert {journal.get(rid).state for rid in ids} == {"Succeeded"}


# -- retries, expiry, destinations -----------------------------------------------------------


def test_failing_twice_then_succeeding_runs_three_times(site):
    rid = site.post("/?fail=2")
    task = wait_for(state_is(site, rid, "Succeeded"), 15, f"{rid} succeeded", site)
    runs = site.runs(rid)
    assert [run.attempt for run in runs] == [1, 2, 3]
    assert task.attempts == 3
    # Backoff 0.5 s, then 1 s (fc-spec.md 11); a lower bound only: the machine may be busy.
    assert runs[1].at - runs[0].at >= 0.45
    assert runs[2].at - runs[1].at >= 0.95


def test_success_record_goes_to_on_success(one_retry, receiver):
    rid = one_retry.post("/?fine", b"hello")
    record = wait_for(lambda: receiver.records.get(rid), 10, f"record of {rid}", one_retry)
    assert set(record) == {
        "timestamp",
        "requestContext",
        "requestPayload",
        "responseContext",
        "responsePayload",
    }
    assert record["requestContext"] == {
        "requestId": rid,
        "functionArn": "local",
        "condition": "Success",
        "approximateInvokeCount": 1,
    }
    assert record["requestPayload"] == "hello"
    assert record["responseContext"] == {"statusCode": 200, "functionError": ""}
    assert record["responsePayload"] == f"ran {rid} attempt 1: hello"
    assert abs(record["timestamp"] / 1000 - time.time()) < 10


def test_always_failing_is_failed_after_one_retry_and_reported(one_retry, receiver):
    rid = one_retry.post("/?status=503", b"doomed")
    task = wait_for(state_is(one_retry, rid, "Failed"), 15, f"{rid} failed", one_retry)
    assert [run.attempt for run in one_retry.runs(rid)] == [1, 2]
    assert (task.attempts, task.status) == (2, 503)
    record = wait_for(lambda: receiver.records.get(rid), 10, f"record of {rid}", one_retry)
    assert record["requestContext"]["condition"] == "RetriesExhausted"
    assert record["requestContext"]["approximateInvokeCount"] == 2
    assert record["requestPayload"] == "doomed"
    assert record["responseContext"] == {
        "statusCode": 503,
        "functionError": "HandledInvocationError",
    }


def test_raising_app_is_an_unhandled_error(one_retry, receiver):
    rid = one_retry.post("/?fail=9")
    task = wait_for(state_is(one_retry, rid, "Failed"), 15, f"{rid} failed", one_retry)
    assert task.last_error == "RuntimeError: failing attempt 2 on purpose"
    record = wait_for(lambda: receiver.records.get(rid), 10, f"record of {rid}", one_retry)
    # The status is the 502 HeaderFilter answered for the raise, as a sync caller would get.
    assert record["responseContext"] == {
        "statusCode": 502,
        "functionError": "UnhandledInvocationError",
    }


def test_too_old_event_expires_without_running(short_lived, receiver):
    rid = short_lived.post("/?late", **{"x-fc-async-delay": "3"})
    task = wait_for(state_is(short_lived, rid, "Expired"), 10, f"{rid} expired", short_lived)
    assert task.attempts == 0
    assert short_lived.runs(rid) == []
    record = wait_for(lambda: receiver.records.get(rid), 10, f"record of {rid}", short_lived)
    assert record["requestContext"]["condition"] == "EventAgeExceeded"
    assert record["requestContext"]["approximateInvokeCount"] == 0


# -- stopping ----------------------------------------------------------------------------------


def test_sigterm_lets_a_running_task_finish(tmp_path):
    site = start_site(tmp_path, {})
    try:
        rid = site.post("/?sleep=2")
        wait_for(lambda: site.runs(rid), 10, f"{rid} started", site)
        os.killpg(site.server.process.pid, signal.SIGTERM)
        assert site.server.process.wait(timeout=20) == 0
    finally:
        stop(site.server)
    assert len(site.runs(rid, "end")) == 1
    with Journal(site.journal) as journal:
        assert journal.integrity_check() == []
        assert journal.get(rid).state == "Succeeded"
    assert "Traceback" not in site.server.output()


@pytest.mark.parametrize("durability", ["fsync", "process"])
def test_every_202_of_a_burst_is_in_the_journal_after_a_sigkill(tmp_path, durability):
    """16 clients against one worker of 8 threads (so accepts share commits), the whole server
    SIGKILLed at a random moment of the burst: every request answered 202 is in the journal."""
    shape = ("--workers", "1", "--threads", "8")
    site = start_site(tmp_path, {"durability": durability}, shape=shape)
    accepted: list[str] = []
    statuses: Counter[int] = Counter()
    killed = threading.Event()

    def client() -> None:
        headers = {**ASYNC, "x-fc-async-delay": "3600"}  # none runs: only the accepts count
        while not killed.is_set():
            try:
                status, answer, _ = request(site, "POST", "/", b"burst", headers)
            except (OSError, http.client.HTTPException):
                return  # the server is gone
            statuses[status] += 1
            if status == 202:
                accepted.append(answer["X-Fc-Request-Id"])

    clients = [threading.Thread(target=client) for _ in range(16)]
    try:
        for thread in clients:
            thread.start()
        wait_for(lambda: len(accepted) >= 100, 20, "100 accepts", site)
        time.sleep(random.uniform(0, 0.5))
        kill_all(site)
        killed.set()
        for thread in clients:
            thread.join(15)
    finally:
        killed.set()
        stop(site.server)
    assert set(statuses) == {202}, statuses
    with Journal(site.journal) as journal:
        missing = [rid for rid in accepted if journal.get(rid) is None]
        assert journal.integrity_check() == []
    assert not missing, f"{len(missing)} of {len(accepted)} 202s not in the journal"


# -- crashes: both scenarios are set up together, so their leases expire together --------------


@dataclass
class Crashes:
    whole: Site  # the restarted server
    whole_sleepers: list[str]  # running when the server was killed
    whole_delayed: list[str]  # waiting for their delay when it was killed
    worker: Site
    worker_task: str
    killed_pid: int
    killed_at: float  # wall clock, as the run log's times
    restarted_at: float


@pytest.fixture(scope="module")
def crashes(tmp_path_factory) -> Iterator[Crashes]:
    whole_folder = tmp_path_factory.mktemp("killed-server")
    lease: dict[str, Any] = {}  # FC's 30 s lease: recovery must not wait for it
    whole = start_site(whole_folder, lease)
    worker = start_site(tmp_path_factory.mktemp("killed-worker"), lease)
    sites = [whole, worker]
    try:
        # (a) some tasks running (asleep on attempt 1), some waiting for their delay.
        sleepers = [whole.post(f"/?sleep1=120&n={n}") for n in range(4)]
        delayed = [whole.post(f"/?n={n}", **{"x-fc-async-delay": "3"}) for n in range(6)]
        # (b) one task running in one worker.
        task = worker.post("/?sleep1=120")

        def started(site: Site, ids: list[str]) -> bool:
            return set(ids) <= {run.request_id for run in site.runs()}

        wait_for(lambda: started(whole, sleepers), 10, "the sleepers started", whole)
        (run,) = wait_for(lambda: worker.runs(task), 10, f"{task} started", worker)

        assert not set(delayed) & {started.request_id for started in whole.runs()}
        kill_all(whole)
        with Journal(whole.journal) as journal:
            states = {rid: journal.get(rid).state for rid in sleepers + delayed}
        assert states == {
            **dict.fromkeys(sleepers, "Running"),
            **dict.fromkeys(delayed, "Enqueued"),
        }
        restarted_at = time.time()
        sites[0] = whole = start_site(whole_folder, lease, restart=1)

        master = worker.server.process.pid
        assert run.pid in worker_pids(master)
        os.kill(run.pid, signal.SIGKILL)
        killed_at = time.time()
        yield Crashes(whole, sleepers, delayed, worker, task, run.pid, killed_at, restarted_at)
    finally:
        for site in sites:
            stop(site.server)


def test_killed_server_runs_every_accepted_task_after_restart(crashes):
    site = crashes.whole
    # The delayed tasks were never started: they run once their delay is over.
    for rid in crashes.whole_delayed:
        (run,) = wait_for(lambda rid=rid: site.runs(rid, "end"), 10, f"{rid} ran", site)
        assert run.attempt == 1
    # The running ones held leases of the killed processes, which are dead: they run again as
    # soon as the restarted server looks, long before their 30 s leases would have expired.
    for rid in crashes.whole_sleepers:
        wait_for(state_is(site, rid, "Succeeded"), 15, f"{rid} re-ran", site)
        assert [run.attempt for run in site.runs(rid)] == [1, 2]
        assert [run.attempt for run in site.runs(rid, "end")] == [2]
        assert site.runs(rid)[1].at - crashes.restarted_at < 15
    with Journal(site.journal) as journal:
        assert journal.integrity_check() == []


def test_killed_worker_is_replaced_and_its_task_runs_again(crashes):
    site, rid = crashes.worker, crashes.worker_task
    master = site.server.process.pid

    def replaced() -> bool:
        pids = worker_pids(master)
        return len(pids) == 2 and crashes.killed_pid not in pids

    wait_for(replaced, 20, "gunicorn replaced the killed worker", site)
    task = wait_for(state_is(site, rid, "Succeeded"), 15, f"{rid} re-ran", site)
    first, second = site.runs(rid)
    assert (first.attempt, first.pid) == (1, crashes.killed_pid)
    assert second.attempt == 2 and second.pid != crashes.killed_pid
    # The survivor saw the owner dead at its next rescan: no wait for the 30 s lease.
    assert second.at - crashes.killed_at <= RERUN_SECONDS
    assert task.attempts == 2
