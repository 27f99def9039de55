"""Lease owners: a dead process of this host is seen dead at once, a reused pid is not alive."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from fc_wsgi.dispatch import Journal, StoredRequest
from fc_wsgi.dispatch.owners import HOST, dead_here, owner_prefix, process_start_ticks

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux /proc")

T0 = 1_700_000_000.0
REQUEST = StoredRequest(environ={"REQUEST_METHOD": "POST", "PATH_INFO": "/"}, body=b"x")


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    """Another live process of this host."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield child
    child.kill()
    child.wait()


def exited_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_this_process_is_alive_under_its_own_owner() -> None:
    prefix = owner_prefix()
    host, pid, start = prefix.rsplit(":", 2)
    assert (host, int(pid), int(start)) == (HOST, os.getpid(), process_start_ticks(os.getpid()))
    assert not dead_here(f"{prefix}:1")


def test_a_live_pid_with_another_start_time_is_a_reused_pid_not_the_owner() -> None:
    start = process_start_ticks(os.getpid())
    assert start is not None
    assert dead_here(f"{HOST}:{os.getpid()}:{start - 1}:1")


def test_another_live_process_keeps_its_lease(sleeper: subprocess.Popen[bytes]) -> None:
    assert not dead_here(f"{owner_prefix(sleeper.pid)}:7")


def test_exited_and_zombie_processes_are_dead() -> None:
    assert dead_here(f"{HOST}:{exited_pid()}:12345:1")
    zombie = subprocess.Popen([sys.executable, "-c", "pass"])
    owner = owner_prefix(zombie.pid)  # read while it runs (or already a zombie: then "?")
    try:
        os.waitid(os.P_PID, zombie.pid, os.WEXITED | os.WNOWAIT)  # exited, not reaped
        assert process_start_ticks(zombie.pid) is None
        assert dead_here(f"{HOST}:{zombie.pid}:1:1")
        assert owner.endswith(":?") or dead_here(f"{owner}:1")
    finally:
        zombie.wait()


@pytest.mark.parametrize(
    "owner",
    [
        pytest.param(None, id="none"),
        pytest.param("other-host:1:1:1", id="another host"),
        pytest.param(f"{HOST}:1:1", id="old form host:pid:n"),
        pytest.param(f"{HOST}:123:?:1", id="start time unknown"),
        pytest.param("worker-1", id="free text"),
    ],
)
def test_unknown_owners_are_never_declared_dead(owner: str | None) -> None:
    assert not dead_here(owner)


def claimed(journal: Journal, task_id: str, owner: str) -> None:
    journal.enqueue(task_id, f"rid-{task_id}", REQUEST, due=T0, now=T0)
    task = journal.claim(task_id, owner, now=T0, lease_seconds=30)
    assert task is not None and task.attempts == 1


def test_a_dead_local_owners_task_is_due_now_and_reclaimed_before_its_lease_ends(
    journal_path: Path, sleeper: subprocess.Popen[bytes]
) -> None:
    with Journal(journal_path) as journal:
        claimed(journal, "dead", f"{HOST}:{exited_pid()}:1:1")
        claimed(journal, "reused", f"{HOST}:{os.getpid()}:1:2")  # our pid, not our start
        claimed(journal, "live", f"{owner_prefix(sleeper.pid)}:3")
        claimed(journal, "remote", "other-host:1:1:4")
        now = T0 + 1  # the leases run until T0 + 30
        due = journal.due_tasks(now=now, horizon_seconds=1)
        assert sorted(due) == [("dead", now), ("reused", now)]
        for task_id in ("dead", "reused"):
            task = journal.claim(task_id, owner_prefix() + ":9", now=now, lease_seconds=30)
            assert task is not None and (task.state, task.attempts) == ("Running", 2)
        # A live owner, here or elsewhere, keeps its lease until it ends.
        for task_id in ("live", "remote"):
            assert journal.claim(task_id, "me", now=now, lease_seconds=30) is None
        # The new owner (this process) is alive: nobody takes the task from it.
        assert journal.due_tasks(now=now, horizon_seconds=1) == []
        assert journal.claim("dead", "me", now=now, lease_seconds=30) is None
        # The remote lease expires as before.
        later = T0 + 30
        assert ("remote", later) in journal.due_tasks(now=later)
        task = journal.claim("remote", "me", now=later, lease_seconds=30)
        assert task is not None and task.attempts == 2


def test_a_task_whose_owners_keep_dying_fails_instead_of_looping(journal_path: Path) -> None:
    with Journal(journal_path) as journal:
        claimed(journal, "t", f"{HOST}:{exited_pid()}:1:1")
        task = journal.claim("t", "x", now=T0 + 1, lease_seconds=30, max_attempts=1)
        assert task is not None and task.state == "Failed"
        assert "died or its lease expired" in (task.last_error or "")
