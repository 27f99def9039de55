"""Fixtures that run real servers: `fc-wsgi serve` (gunicorn) and plain gunicorn."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator

import pytest
from servers import Server, launch, stop, with_journal
from support import free_port


@pytest.fixture
def start_server(tmp_path) -> Iterator:
    """``start_server(argv, config=None, env=None)`` → a ready :class:`Server`."""
    started: list[Server] = []

    def start(
        argv: list[str],
        config: dict | None = None,
        env: dict | None = None,
        port: int | None = None,
    ) -> Server:
        port = port or free_port()
        argv = [a.replace("{port}", str(port)) for a in argv]
        if config is not None:
            path = tmp_path / f"trigger-{len(started)}.json"
            path.write_text(json.dumps(with_journal(config, tmp_path)))
            argv = [a.replace("{config}", str(path)) for a in argv]
        server = launch(argv, port, tmp_path / f"server-{len(started)}.log", env)
        started.append(server)
        return server

    yield start
    for server in started:
        stop(server)


@pytest.fixture
def serve(start_server):
    """``serve("module:app", config, *extra_args)`` → `fc-wsgi serve` on a free port."""

    def run(app: str, config: dict | None = None, *extra: str) -> Server:
        argv = [sys.executable, "-m", "fc_wsgi", "serve", app, "--bind", "127.0.0.1:{port}"]
        if config is not None:
            argv += ["--config", "{config}"]
        return start_server([*argv, *extra], config)

    return run
