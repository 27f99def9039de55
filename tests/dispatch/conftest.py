"""Fixtures for the async dispatch tests: complete PEP 3333 environs, real journals on disk."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from support import make_environ, wait_for

from fc_wsgi.dispatch import AsyncDispatcher, Journal


def _make_environ(body: bytes = b"", **overrides: Any) -> dict[str, Any]:
    """support.make_environ as an async POST arrives: a body type and length, always."""
    defaults = {
        "REQUEST_METHOD": "POST",
        "SERVER_PORT": "9000",
        "CONTENT_TYPE": "application/octet-stream",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
    }
    return make_environ(body=body, **{**defaults, **overrides})


@pytest.fixture(name="make_environ")
def make_environ_fixture() -> Callable[..., dict[str, Any]]:
    return _make_environ


@pytest.fixture(name="wait_for")
def wait_for_fixture() -> Callable[..., Any]:
    return wait_for


@pytest.fixture
def journal_path(tmp_path: Path) -> Path:
    return tmp_path / "journal" / "async.sqlite3"


@pytest.fixture
def journal(journal_path: Path) -> Iterator[Journal]:
    with Journal(journal_path) as journal:
        yield journal


@pytest.fixture
def make_dispatcher(journal_path: Path) -> Iterator[Callable[..., AsyncDispatcher]]:
    """Build dispatchers on the test's journal with fast test timings; all closed afterwards."""
    made: list[AsyncDispatcher] = []

    def make(app: Any, **options: Any) -> AsyncDispatcher:
        options.setdefault("journal", journal_path)
        options.setdefault("rescan_interval_seconds", 0.05)
        options.setdefault("retry_base_seconds", 0.01)
        options.setdefault("workers", 2)
        dispatcher = AsyncDispatcher(app, **options)
        made.append(dispatcher)
        return dispatcher

    yield make
    for dispatcher in made:
        dispatcher.close(timeout=5)
