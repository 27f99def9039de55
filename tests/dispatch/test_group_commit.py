"""Group commit: concurrent accepts share transactions, each caller gets its own outcome."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from fc_wsgi.dispatch import Journal, StoredRequest
from fc_wsgi.dispatch.group_commit import GroupCommit
from fc_wsgi.dispatch.tasks import DuplicateTask, QueueFull, StoreError

T0 = 1_700_000_000.0
REQUEST = StoredRequest(environ={"REQUEST_METHOD": "POST", "PATH_INFO": "/"}, body=b"x")
THREADS = 32


class SlowCommit:
    """A commit that takes as long as an fsync and refuses the items named ``bad``."""

    def __init__(self, seconds: float = 0.005) -> None:
        self.seconds = seconds
        self.batches: list[list[str]] = []

    def __call__(self, items: Sequence[str]) -> list[BaseException | None]:
        time.sleep(self.seconds)
        self.batches.append(list(items))
        return [ValueError(item) if item.startswith("bad") else None for item in items]


def submit_all(committer: GroupCommit[str], items: list[str]) -> dict[str, BaseException | None]:
    start = threading.Barrier(len(items))

    def one(item: str) -> BaseException | None:
        start.wait()
        try:
            committer.submit(item)
        except BaseException as exc:
            return exc
        return None

    with ThreadPoolExecutor(len(items)) as pool:
        return dict(zip(items, pool.map(one, items), strict=True))


def test_an_idle_submit_commits_alone_and_at_once() -> None:
    commit = SlowCommit(0)
    committer = GroupCommit(commit)
    committer.submit("a")
    committer.submit("b")
    assert commit.batches == [["a"], ["b"]]
    assert committer.stats() == (2, 2, {1: 2})


def test_concurrent_submits_share_commits_and_keep_their_own_outcome() -> None:
    commit = SlowCommit()
    committer = GroupCommit(commit)
    items = [f"ok{n}" for n in range(THREADS - 2)] + ["bad1", "bad2"]
    outcomes = submit_all(committer, items)
    assert sorted(i for b in commit.batches for i in b) == sorted(items)  # each committed once
    assert len(commit.batches) < len(items) / 2  # batched: far fewer commits than items
    assert {i: str(e) for i, e in outcomes.items() if e is not None} == {
        "bad1": "bad1",
        "bad2": "bad2",
    }
    transactions, count, sizes = committer.stats()
    assert (transactions, count) == (len(commit.batches), len(items))
    assert sum(sizes.values()) == transactions and max(sizes) >= 4


def test_a_failed_commit_fails_every_caller_of_its_batch_with_its_own_exception() -> None:
    def broken(items: Sequence[str]) -> list[BaseException | None]:
        time.sleep(0.005)
        raise OSError(5, "disk I/O error")

    outcomes = submit_all(GroupCommit(broken), [f"i{n}" for n in range(8)])
    errors = list(outcomes.values())
    assert all(isinstance(e, OSError) and e.errno == 5 for e in errors)
    assert len({id(e) for e in errors}) == len(errors)  # never one object in many threads


def test_batches_are_bounded() -> None:
    commit = SlowCommit()
    outcomes = submit_all(GroupCommit(commit, max_batch=4), [f"i{n}" for n in range(16)])
    assert not any(outcomes.values())
    assert max(len(b) for b in commit.batches) <= 4


def concurrent_enqueues(journal: Journal, ids: list[str], **kw: object) -> list[object]:
    start = threading.Barrier(len(ids))

    def one(task_id: str) -> object:
        start.wait()
        try:
            journal.enqueue(task_id, f"rid-{task_id}", REQUEST, due=T0, now=T0, **kw)  # type: ignore[arg-type]
        except StoreError as exc:
            return type(exc)
        return "ok"

    with ThreadPoolExecutor(len(ids)) as pool:
        return list(pool.map(one, ids))


def test_journal_accepts_are_batched_and_a_duplicate_refuses_only_itself(
    journal: Journal,
) -> None:
    journal.enqueue("taken", "rid-taken", REQUEST, due=T0, now=T0)
    ids = [f"t{n}" for n in range(THREADS - 2)] + ["taken", "t0"]  # two duplicates
    outcomes = concurrent_enqueues(journal, ids)
    assert outcomes.count(DuplicateTask) == 2 and outcomes.count("ok") == THREADS - 2
    assert outcomes[ids.index("taken")] is DuplicateTask
    assert journal.counts()["Enqueued"] == THREADS - 1
    transactions, accepts, _ = journal.commit_stats()
    assert accepts == THREADS + 1 and transactions < accepts


def test_journal_queue_bound_holds_inside_a_batch(journal: Journal) -> None:
    outcomes = concurrent_enqueues(journal, [f"t{n}" for n in range(20)], max_pending=10)
    assert outcomes.count("ok") == 10 and outcomes.count(QueueFull) == 10
    assert journal.counts()["Enqueued"] == 10


def test_journal_io_error_refuses_every_accept_and_stores_nothing(journal_path: Path) -> None:
    Journal(journal_path).close()  # create it
    with Journal(f"file:{journal_path}?mode=ro") as read_only:
        outcomes = concurrent_enqueues(read_only, [f"t{n}" for n in range(8)])
    assert set(outcomes) == {StoreError}
    with Journal(journal_path) as journal:
        assert sum(journal.counts().values()) == 0


@pytest.mark.parametrize(("durability", "synchronous"), [("fsync", 2), ("process", 1)])
def test_durability_sets_the_accept_commit_and_the_worker_path_never_fsyncs(
    journal_path: Path, durability: str, synchronous: int
) -> None:
    with Journal(journal_path, durability=durability) as journal:  # type: ignore[arg-type]
        journal.enqueue("t1", "r1", REQUEST, due=T0, now=T0)
        conn = journal._connection()
        assert conn.execute("PRAGMA synchronous").fetchone() == (synchronous,)
        assert journal.claim("t1", "w", now=T0, lease_seconds=30) is not None
        assert conn.execute("PRAGMA synchronous").fetchone() == (1,)  # NORMAL
        journal.enqueue("t2", "r2", REQUEST, due=T0, now=T0)
        assert conn.execute("PRAGMA synchronous").fetchone() == (synchronous,)
    with sqlite3.connect(journal_path) as other:
        assert other.execute("SELECT COUNT(*) FROM tasks").fetchone() == (2,)
    other.close()


def test_unknown_durability_is_refused(journal_path: Path) -> None:
    with pytest.raises(ValueError, match="durability"):
        Journal(journal_path, durability="disk")  # type: ignore[arg-type]
