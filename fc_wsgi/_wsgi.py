"""Small PEP 3333 helpers shared by the middlewares."""

from __future__ import annotations

from collections.abc import Iterable


def environ_key(header: str) -> str:
    """``x-fc-foo`` → ``HTTP_X_FC_FOO``, as servers name request headers in the environ."""
    return "HTTP_" + header.upper().replace("-", "_")


def close_iterable(body: Iterable[bytes]) -> None:
    """Call the app iterable's ``close()``, which PEP 3333 says must always be called."""
    close = getattr(body, "close", None)
    if close is not None:
        close()


def discard(data: bytes) -> None:
    """``write()`` for an app whose answer was replaced by an error: its bytes go nowhere."""
