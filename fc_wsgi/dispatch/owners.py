"""Lease owners that say which process holds them, so a dead owner's task runs again at once.

FC runs an accepted async request at least once (fc-spec.md section 11). A run holds a lease in
the journal; a process killed with SIGKILL cannot give it back, and waiting for the lease to
expire (30 s) is the whole of the recovery time. An owner therefore names its process as
``host:pid:start:n`` (``start`` is the process start time, field 22 of ``/proc/<pid>/stat``, in
clock ticks since boot; ``n`` makes each claim unique). On the same host, a process whose pid
is gone, or whose pid now belongs to a process that started at another time (the kernel reuses
pids), or a zombie, is dead: its leases can be taken over now. On another host nothing can be
known from here, so those leases still expire normally; so do owners in the old
``host:pid:n`` form and any owner when ``/proc`` cannot be read (not Linux).

Caveat: two containers with the same hostname and separate pid namespaces sharing one journal
file would see each other's pids; give them distinct hostnames (the default in Docker and
Kubernetes).
"""

from __future__ import annotations

import os
import socket

HOST = socket.gethostname()
#: Whether this system has Linux's ``/proc`` (without it, no owner is known dead).
HAS_PROC = os.path.isdir("/proc/self")


def process_start_ticks(pid: int) -> int | None:
    """When ``pid`` started (clock ticks since boot), or None if it is gone or a zombie.

    ``/proc/<pid>/stat`` is ``pid (comm) state ... starttime ...``; ``comm`` may hold spaces
    and parentheses, so the fields are counted after its last ``)``: state is field 3,
    starttime field 22.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None
    if fields[0] in (b"Z", b"X"):  # exited, not yet reaped
        return None
    return int(fields[19])


def owner_prefix(pid: int | None = None) -> str:
    """``host:pid:start`` of this process (or of ``pid``); claims append ``:n``."""
    pid = os.getpid() if pid is None else pid
    start = process_start_ticks(pid)
    return f"{HOST}:{pid}:{start if start is not None else '?'}"


def dead_here(owner: str | None, *, host: str = HOST) -> bool:
    """Whether ``owner`` is a process of this host that is not running any more.

    False when unsure: another host's owner, an owner without a start time, no ``/proc``.
    """
    if not owner:
        return False
    parts = owner.rsplit(":", 3)
    if len(parts) != 4 or parts[0] != host or not parts[1].isdigit() or not parts[2].isdigit():
        return False
    if not HAS_PROC:
        return False
    return process_start_ticks(int(parts[1])) != int(parts[2])
