"""Durable async invocation (fc-spec.md section 11): journal, scheduler, runner, destinations."""

from .dispatcher import AsyncDispatcher, drain_all, start_all
from .journal import Journal, TaskRecord

__all__ = ["AsyncDispatcher", "Journal", "TaskRecord", "drain_all", "start_all"]
