"""Durable async invocation (fc-spec.md section 11): journal, scheduler, runner, destinations."""

from .backend import TaskBackend, TaskStore
from .dispatcher import AsyncDispatcher, drain_all, start_all
from .journal import Journal
from .tasks import StoredRequest, TaskRecord

__all__ = [
    "AsyncDispatcher",
    "Journal",
    "StoredRequest",
    "TaskBackend",
    "TaskRecord",
    "TaskStore",
    "drain_all",
    "start_all",
]
