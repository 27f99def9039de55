"""The SQLite journal: durability settings, leases across instances and processes, the CLI API."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from support import check_listing_filters_and_pages, check_stop_in_each_state

from fc_wsgi.dispatch import Journal, StoredRequest
from fc_wsgi.dispatch import journal as jr

T0 = 1_700_000_000.0
REQUEST = StoredRequest(
    environ={"REQUEST_METHOD": "POST", "PATH_INFO": "/jobs", "HTTP_X_A": "1"}, body=b"\x00payload"
)


def add(journal: Journal, task_id: str, *, due: float = T0, now: float = T0, **kw: object) -> None:
    journal.enqueue(task_id, f"rid-{task_id}", REQUEST, due=due, now=now, **kw)  # type: ignore[arg-type]


def test_enqueue_is_durable_wal_full_and_private(journal: Journal, journal_path: Path) -> None:
    add(journal, "t1", due=T0 + 5)
    # A second connection sees the committed row and the durability settings.
    with sqlite3.connect(journal_path) as other:
        assert other.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert other.execute("SELECT state, due FROM tasks").fetchall() == [("Enqueued", T0 + 5)]
    other.close()
    conn = journal._connection()
    assert conn.execute("PRAGMA synchronous").fetchone() == (2,)  # FULL
    assert stat.S_IMODE(os.stat(journal_path).st_mode) == 0o600
    task = journal.get("t1")
    assert task is not None and task.request == REQUEST
    assert (task.state, task.attempts, task.method, task.path) == ("Enqueued", 0, "POST", "/jobs")
    assert journal.get("rid-t1") == task  # by request id too
    assert journal.get("nope") is None


def test_duplicate_id_and_queue_bound(journal: Journal) -> None:
    add(journal, "t1")
    with pytest.raises(jr.DuplicateTask):
        add(journal, "t1")
    with pytest.raises(jr.QueueFull):
        add(journal, "t2", max_pending=1)
    add(journal, "t2", max_pending=2)
    assert journal.counts()["Enqueued"] == 2


def test_claim_only_when_due_and_once(journal: Journal) -> None:
    add(journal, "t1", due=T0 + 10)
    assert journal.claim("t1", "a", now=T0 + 9, lease_seconds=30) is None
    task = journal.claim("t1", "a", now=T0 + 10, lease_seconds=30)
    assert task is not None and task.request == REQUEST
    assert (task.state, task.attempts, task.lease_owner, task.lease_expiry) == (
        "Running",
        1,
        "a",
        T0 + 40,
    )
    assert journal.claim("t1", "b", now=T0 + 11, lease_seconds=30) is None


def test_expired_lease_is_reclaimed_by_another_instance(journal_path: Path) -> None:
    with Journal(journal_path) as first, Journal(journal_path) as second:
        add(first, "t1")
        assert first.claim("t1", "host:1:1", now=T0, lease_seconds=10) is not None
        # The first owner "dies": its lease still blocks until it expires ...
        assert second.claim("t1", "host:2:1", now=T0 + 9, lease_seconds=10) is None
        assert second.due_tasks(now=T0 + 9) == []
        assert second.due_tasks(now=T0 + 9, horizon_seconds=1) == [("t1", T0 + 10)]
        task = second.claim("t1", "host:2:1", now=T0 + 10, lease_seconds=10)
        assert task is not None and (task.attempts, task.lease_owner) == (2, "host:2:1")
        # ... and the old owner can no longer record a result.
        assert first.finish("t1", "host:1:1", state="Succeeded", now=T0 + 11) is None
        assert second.finish("t1", "host:2:1", state="Succeeded", now=T0 + 11, status=200)
        done = first.get("t1")
        assert done is not None and (done.state, done.status, done.ended) == (
            "Succeeded",
            200,
            T0 + 11,
        )


def test_heartbeat_renews_only_held_leases(journal: Journal) -> None:
    add(journal, "t1")
    journal.claim("t1", "a", now=T0, lease_seconds=10)
    assert journal.renew({"t1": "a"}, lease_expiry=T0 + 100) == 1
    assert journal.renew({"t1": "someone-else"}, lease_expiry=T0 + 200) == 0
    assert journal.claim("t1", "b", now=T0 + 50, lease_seconds=10) is None


def test_a_task_that_keeps_killing_its_worker_fails(journal: Journal) -> None:
    add(journal, "t1")
    for n in (1, 2):
        task = journal.claim("t1", f"w{n}", now=T0 + 100 * n, lease_seconds=10, max_attempts=2)
        assert task is not None and task.state == "Running" and task.attempts == n
    task = journal.claim("t1", "w3", now=T0 + 300, lease_seconds=10, max_attempts=2)
    assert task is not None and task.state == "Failed" and "lease" in (task.last_error or "")


def test_claim_expires_old_tasks_instead_of_running_them(journal: Journal) -> None:
    add(journal, "t1", due=T0 + 60)
    task = journal.claim("t1", "a", now=T0 + 60, lease_seconds=10, max_age_seconds=60)
    assert task is not None and task.state == "Expired" and task.attempts == 0
    assert journal.claim("t1", "a", now=T0 + 61, lease_seconds=10) is None


def test_retrying_then_release_then_stop(journal: Journal) -> None:
    add(journal, "t1")
    journal.claim("t1", "a", now=T0, lease_seconds=10)
    assert journal.finish("t1", "a", state="Retrying", now=T0 + 1, error="boom", due=T0 + 2)
    task = journal.get("t1")
    assert task is not None and (task.state, task.due, task.last_error) == (
        "Retrying",
        T0 + 2,
        "boom",
    )
    journal.claim("t1", "b", now=T0 + 2, lease_seconds=10)
    assert journal.release("t1", "b", now=T0 + 3)
    task = journal.get("t1")
    assert task is not None and (task.state, task.due, task.attempts) == ("Retrying", T0 + 3, 2)
    assert task.lease_owner is None
    journal.claim("t1", "c", now=T0 + 3, lease_seconds=10)
    assert journal.stop("t1", now=T0 + 4).state == "Stopping"
    assert journal.finish("t1", "c", state="Succeeded", now=T0 + 5) == "Stopped"
    add(journal, "t2")
    assert journal.stop("t2").state == "Stopped"
    assert journal.claim("t2", "a", now=T0 + 9, lease_seconds=10) is None


def test_release_of_a_first_run_is_enqueued(journal: Journal) -> None:
    add(journal, "t1")
    journal.claim("t1", "a", now=T0, lease_seconds=10)
    assert not journal.release("t1", "not-the-owner")
    assert journal.release("t1", "a", now=T0 + 1)
    task = journal.get("t1")
    assert task is not None and task.state == "Enqueued"


def test_retry_for_the_cli(journal: Journal) -> None:
    add(journal, "t1")
    journal.claim("t1", "a", now=T0, lease_seconds=10)
    with pytest.raises(jr.TaskBusy):
        journal.retry("t1")
    journal.finish("t1", "a", state="Failed", now=T0 + 1, error="boom", status=500)
    task = journal.retry("rid-t1", now=T0 + 100)  # the request id works too
    assert (task.id, task.state, task.attempts, task.enqueued, task.due) == (
        "t1",
        "Enqueued",
        0,
        T0 + 100,
        T0 + 100,
    )
    assert task.last_error is None and task.created == T0
    with pytest.raises(jr.TaskNotFound):
        journal.retry("nope")


def test_list_counts_prune_and_integrity(journal: Journal) -> None:
    for n in range(5):
        add(journal, f"t{n}", now=T0 + n)
    listed = journal.list_tasks(limit=3)
    assert [t.id for t in listed] == ["t4", "t3", "t2"]
    assert all(t.request is None for t in listed)
    assert json.dumps(listed[0].as_dict())  # JSON-ready for `tasks --json`
    journal.claim("t0", "a", now=T0, lease_seconds=10)
    journal.finish("t0", "a", state="Succeeded", now=T0 + 1)
    assert [t.id for t in journal.list_tasks(state="Succeeded")] == ["t0"]
    assert journal.prune(before=T0 + 1) == 0
    assert journal.prune(before=T0 + 2) == 1
    assert journal.counts()["Enqueued"] == 4
    assert journal.integrity_check() == []


def test_read_only_and_locked_journals_raise_journal_errors(journal_path: Path) -> None:
    with Journal(journal_path) as writable:
        add(writable, "t1")
    with Journal(f"file:{journal_path}?mode=ro") as read_only:
        assert read_only.get("t1") is not None
        with pytest.raises(jr.StoreError):
            add(read_only, "t2")
    locker = sqlite3.connect(journal_path, isolation_level=None)
    try:
        locker.execute("BEGIN IMMEDIATE")
        with Journal(journal_path, busy_timeout_seconds=0.05) as blocked:
            with pytest.raises(jr.StoreBusy):
                add(blocked, "t3")
        locker.execute("ROLLBACK")
    finally:
        locker.close()


CLAIMER = textwrap.dedent(
    """
    import sys
    from fc_wsgi.dispatch.journal import Journal
    with Journal(sys.argv[1]) as journal:
        ids = [f"t{n}" for n in range(int(sys.argv[2]))]
        won = [i for i in ids if journal.claim(i, "child", now=2e9, lease_seconds=60)]
    print(" ".join(won))
    """
)


def test_two_processes_never_claim_the_same_task(journal: Journal, journal_path: Path) -> None:
    count = 60
    for n in range(count):
        add(journal, f"t{n}")
    child = subprocess.Popen(
        [sys.executable, "-c", CLAIMER, str(journal_path), str(count)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        mine = [
            f"t{n}"
            for n in range(count)
            if journal.claim(f"t{n}", "parent", now=2e9, lease_seconds=60)
        ]
        out, _ = child.communicate(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    theirs = out.split()
    assert child.returncode == 0
    assert sorted(mine + theirs) == sorted(f"t{n}" for n in range(count))
    assert not set(mine) & set(theirs)
    owners = {t.lease_owner for t in journal.list_tasks(limit=count)}
    assert owners <= {"parent", "child"}


class _JournalOps:
    def __init__(self, journal: Journal) -> None:
        self.store = journal

    def add(self, task_id: str, now: float) -> None:
        add(self.store, task_id, now=now, due=now)

    def claim(self, task_id: str, owner: str, now: float) -> object:
        return self.store.claim(task_id, owner, now=now, lease_seconds=60)

    def finish(self, task_id: str, owner: str, state: str, now: float) -> str | None:
        due = now if state == "Retrying" else None
        return self.store.finish(task_id, owner, state=state, now=now, due=due)


def test_stop_in_each_state(journal: Journal) -> None:
    check_stop_in_each_state(_JournalOps(journal), T0)


def test_listing_filters_and_keyset_pages(journal: Journal) -> None:
    check_listing_filters_and_pages(_JournalOps(journal), T0)


def test_an_old_journal_gains_the_listing_indexes(tmp_path: Path) -> None:
    journal_path = tmp_path / "v1.sqlite3"
    with sqlite3.connect(journal_path) as old:
        old.executescript(jr._SCHEMA.split("-- Listings")[0] + "PRAGMA user_version=1;")
        old.execute("CREATE INDEX tasks_created ON tasks (created)")
    old.close()
    with Journal(journal_path) as journal:
        journal.counts()
        conn = journal._connection()
        names = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
        assert {"tasks_created_id", "tasks_state_created_id"} <= names
        assert "tasks_created" not in names
        assert conn.execute("PRAGMA user_version").fetchone() == (jr.SCHEMA_VERSION,)


LARGE_JOURNAL_TASKS = 100_000


def test_listing_a_100k_journal_uses_the_indexes(journal: Journal) -> None:
    """Every listing the CLI and the task page ask for is an index range on 100,000 tasks
    (asserted on the query plan; the timings are printed with ``-s``, not asserted)."""
    from benchmarks.task_listing import fill_journal  # the benchmark's own 100k journal

    fill_journal(journal, LARGE_JOURNAL_TASKS)
    conn = journal._connection()
    middle = (T0 + LARGE_JOURNAL_TASKS // 2, f"t{LARGE_JOURNAL_TASKS // 2:06d}")
    cases = {
        "all": (None, None, None),
        "state": ("Retrying", None, None),
        "state+since": ("Failed", T0 + 90_000, None),
        "page deep": (None, None, middle),
        "state page deep": ("Enqueued", None, middle),
    }
    for name, (state, since, after) in cases.items():
        query, args = jr._listing(state, since, after)
        plan = " ".join(row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + query, args))
        assert "USING INDEX tasks_" in plan and "TEMP B-TREE" not in plan, (name, plan)
        started = time.perf_counter()
        page = journal.list_tasks(limit=50, state=state, since=since, after=after)
        took_ms = (time.perf_counter() - started) * 1000
        assert len(page) == 50 and all(state in (None, t.state) for t in page)
        assert after is None or (page[0].created, page[0].id) < after
        print(f"list {name}: {took_ms:.2f} ms")
    started = time.perf_counter()
    counts = journal.counts()
    print(f"counts: {(time.perf_counter() - started) * 1000:.1f} ms")
    assert counts["Succeeded"] == 90_000 and counts["Retrying"] == 2_000
