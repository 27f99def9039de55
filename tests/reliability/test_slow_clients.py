"""Slow clients: under ``--threads 4`` (gthread, the recommended setting when clients reach
gunicorn directly) a client that trickles its headers or sends half a body and stops holds
one thread, and everyone else is served at once: here three slow clients (one trickling
headers, two stalled bodies) hold three of the four threads. N such clients hold N threads
(slowloris), so a server facing the internet still wants a buffering proxy in front. The sync
worker, for contrast, is held by one such client until it gives up.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import time

import pytest
from rawhttp import exchange, parse, request_bytes
from relsupport import assert_fc_error
from servers import launch, stop, with_journal
from support import free_port

pytestmark = pytest.mark.e2e

TRIGGER = {"authType": "anonymous", "methods": ["GET", "POST"]}
#: A normal request next to the slow ones must finish within this, seconds.
FAST_SECONDS = 1.0


def start(tmp_path, *options: str):
    config = tmp_path / "trigger.json"
    config.write_text(json.dumps(with_journal(TRIGGER, tmp_path)))
    port = free_port()
    argv = [sys.executable, "-m", "fc_wsgi", "serve", "tests.reliability.apps:echo",
            "--config", str(config), "--bind", f"127.0.0.1:{port}", *options]  # fmt: skip
    return launch(argv, port, tmp_path / "server.log")


def half_body(port: int, *, chunked: bool = False) -> socket.socket:
    """Headers announcing a 1000-byte body, then 10 bytes of it, then nothing."""
    sock = socket.create_connection(("127.0.0.1", port))
    framing = "Transfer-Encoding: chunked" if chunked else "Content-Length: 1000"
    head = f"POST /slow HTTP/1.1\r\nHost: x\r\n{framing}\r\n\r\n".encode()
    sock.sendall(head + (b"3e8\r\n" if chunked else b"") + b"x" * 10)
    return sock


def trickle_headers(port: int, stop_event: threading.Event) -> None:
    """One header byte every 50 ms, until told to stop."""
    data = request_bytes("GET", "/trickle", {"X-Slow": "s" * 200})
    with socket.create_connection(("127.0.0.1", port)) as sock:
        for byte in data:
            if stop_event.is_set():
                return
            sock.sendall(bytes([byte]))
            time.sleep(0.05)


def timed_get(port: int, timeout: float = 5.0) -> tuple[float, int | None]:
    began = time.monotonic()
    answer = exchange(port, request_bytes("GET", "/fast"), timeout=timeout)
    return time.monotonic() - began, answer.status


def test_slow_clients_do_not_block_others_under_gthread(tmp_path):
    server = start(tmp_path, "--threads", "4")
    stop_event = threading.Event()
    tricklers = [threading.Thread(target=trickle_headers, args=(server.port, stop_event))
                 for _ in range(1)]  # fmt: skip
    stalled = []
    try:
        for thread in tricklers:
            thread.start()
        stalled = [half_body(server.port), half_body(server.port, chunked=True)]
        time.sleep(0.3)  # the stalled bodies now hold their threads
        timings = [timed_get(server.port) for _ in range(20)]
        assert all(status == 200 for _, status in timings), timings
        assert max(elapsed for elapsed, _ in timings) < FAST_SECONDS, timings
        # The stalled clients give up (half-close): FC's 400, never a truncated body to the app.
        for sock in stalled:
            sock.shutdown(socket.SHUT_WR)
            sock.settimeout(5)
            raw = b""
            while chunk := sock.recv(65536):
                raw += chunk
            answer = parse(raw)
            payload = assert_fc_error(answer.status, answer.headers, answer.body, "InvalidArgument")
            assert "ended" in payload["Message"]
    finally:
        stop_event.set()
        for sock in stalled:
            sock.close()
        for thread in tricklers:
            thread.join(10)
        stop(server)


def test_the_sync_worker_is_held_by_one_stalled_body(tmp_path):
    """Why the sync worker needs a buffering proxy in front: one client stalls it."""
    server = start(tmp_path, "--workers", "1")  # sync worker class, one request at a time
    sock = half_body(server.port)
    try:
        time.sleep(0.3)
        elapsed, status = timed_get(server.port, timeout=FAST_SECONDS)
        assert status is None  # nothing came back while the stalled body held the worker
        sock.shutdown(socket.SHUT_WR)  # the slow client gives up: the worker is free again
        elapsed, status = timed_get(server.port)
        assert status == 200
    finally:
        sock.close()
        stop(server)
