"""Fixtures for the async dispatch tests: complete PEP 3333 environs, real journals on disk."""

from __future__ import annotations

import io
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from fc_wsgi.dispatch import AsyncDispatcher, Journal


def _make_environ(body: bytes = b"", **overrides: Any) -> dict[str, Any]:
    """A complete PEP 3333 environ (QUERY_STRING included, which setup_testing_defaults omits)."""
    environ: dict[str, Any] = {
        "REQUEST_METHOD": "POST",
        "SCRIPT_NAME": "",
        "PATH_INFO": "/",
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "9000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "CONTENT_TYPE": "application/octet-stream",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    environ.update(overrides)
    return environ


def _wait_for(predicate: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    """Poll ``predicate`` until it is truthy (integration tests only: threads are involved)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


@pytest.fixture(name="make_environ")
def make_environ_fixture() -> Callable[..., dict[str, Any]]:
    return _make_environ


@pytest.fixture(name="wait_for")
def wait_for_fixture() -> Callable[..., Any]:
    return _wait_for


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
