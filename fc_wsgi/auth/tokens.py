"""The verified-token cache of the JWT layer: a hot token costs a dict lookup.

Verified tokens are kept by their exact text in a bounded LRU (fc-spec.md 9 leaves caching to
us). An entry never outlives the token's ``exp`` (a token inside the leeway is verified again)
nor a change of the JWKS (its generation), and carries everything the token gives a request,
computed once: its claims and the pass-through values ready to set.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: Verified tokens kept in the cache; tokens over MAX_CACHED_TOKEN_BYTES are never cached.
TOKEN_CACHE_ENTRIES = 4096
MAX_CACHED_TOKEN_BYTES = 4096


@dataclass(frozen=True)
class Grant:
    """What a verified token gives a request, computed once per token."""

    expires_at: float
    generation: int
    claims: Mapping[str, Any]
    headers: tuple[str | None, ...]  # one per header pass, None: claim absent
    cookies: tuple[str, ...]  # "name=value" cookie pairs
    queries: tuple[str, ...]  # "name=value" query pairs
    forms: tuple[bytes, ...]  # b"name=value" form pairs


class TokenCache:
    """Verified tokens by their exact text: a bounded LRU whose entries end at the token's exp."""

    def __init__(self, max_entries: int = TOKEN_CACHE_ENTRIES) -> None:
        self._max = max_entries
        self._entries: OrderedDict[str, Grant] = OrderedDict()
        self._lock = threading.Lock()  # gthread workers share one verifier

    def get(self, token: str, now: float, generation: int) -> Grant | None:
        with self._lock:
            grant = self._entries.get(token)
            if grant is None:
                return None
            if now >= grant.expires_at or grant.generation != generation:
                del self._entries[token]
                return None
            self._entries.move_to_end(token)
            return grant

    def put(self, token: str, grant: Grant) -> None:
        if len(token) > MAX_CACHED_TOKEN_BYTES:
            return
        with self._lock:
            self._entries[token] = grant
            self._entries.move_to_end(token)
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)
