"""HTTP over raw sockets: send any bytes, read whatever comes back (or nothing)."""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field


@dataclass
class Answer:
    status: int | None  # None: the server closed without answering
    headers: dict[str, str] = field(default_factory=dict)  # lower-case names, repeats joined
    body: bytes = b""
    raw: bytes = b""
    timed_out: bool = False

    @property
    def closed_silently(self) -> bool:
        return self.status is None and not self.timed_out


def parse(raw: bytes) -> Answer:
    head, sep, rest = raw.partition(b"\r\n\r\n")
    if not sep or not head.startswith(b"HTTP/1."):
        return Answer(None, raw=raw)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name, value = name.strip().lower(), value.strip()
        headers[name] = f"{headers[name]},{value}" if name in headers else value
    length = headers.get("content-length")
    body = rest[: int(length)] if length is not None else rest
    return Answer(status, headers, body, raw)


def _complete(raw: bytes) -> bool:
    answer = parse(raw)
    if answer.status is None:
        return False
    length = answer.headers.get("content-length")
    return length is not None and len(answer.body) >= int(length)


def exchange(
    port: int,
    data: bytes | list[bytes],
    *,
    half_close: bool = True,
    timeout: float = 5.0,
    pause: float = 0.0,
) -> Answer:
    """Send ``data`` (pieces ``pause`` seconds apart), optionally half-close, read one answer.

    Returns as soon as one complete answer arrived, at EOF, or after ``timeout`` seconds
    (``timed_out``), so a server that keeps the connection alive does not stall the test.
    """
    pieces = [data] if isinstance(data, bytes) else data
    deadline = time.monotonic() + timeout
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        try:
            for i, piece in enumerate(pieces):
                if i and pause:
                    time.sleep(pause)
                sock.sendall(piece)
            if half_close:
                sock.shutdown(socket.SHUT_WR)
        except OSError:  # the server answered and closed while we were still sending
            pass
        raw = b""
        while not _complete(raw):
            left = deadline - time.monotonic()
            if left <= 0:
                answer = parse(raw)
                answer.timed_out = True
                return answer
            sock.settimeout(left)
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                continue
            except ConnectionResetError:
                break
            if not chunk:
                break
            raw += chunk
    return parse(raw)


def request_bytes(
    method: str, target: str, headers: dict[str, str] | None = None, body: bytes = b""
) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
