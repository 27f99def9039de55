"""Durable async invocation (fc-spec.md section 11): journal, scheduler, runner, destinations."""

from .backend import TaskBackend, TaskStore
from .dispatcher import AsyncDispatcher, drain_all, start_all
from .journal import Journal, TaskRecord

__all__ = [
    "AsyncDispatcher",
    "Journal",
    "TaskBackend",
    "TaskRecord",
    "TaskStore",
    "drain_all",
    "start_all",
]
