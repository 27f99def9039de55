"""Remote JWK Sets (``jwksUrl``, our extension): fetched lazily, cached, refreshed with care.

Keys for FC's JWT triggers are inline (FC's ``jwks``) or in a file, parsed at config load by
:mod:`fc_wsgi.jwkset`; or published by an identity provider at a URL, handled here. A remote
set parses leniently: a provider may publish keys we cannot use, so those are skipped with a
log line. Remote keys are fetched lazily on first use (the app starts even when the provider is
down), cached for ``jwksCacheSeconds``, and fetched again at most once per
``jwksRefreshCooldownSeconds`` when an unknown ``kid`` appears, so random ``kid`` values cannot
turn into a fetch storm. A failed refresh keeps the last good keys.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable

from .. import metrics
from ..common import Clock, redact_url
from ..errors import FcError
from ..jwkset import KeySet, VerifyKey, parse_jwks

log = logging.getLogger(__name__)

#: A fetched JWKS document larger than this (bytes) is refused.
MAX_JWKS_BYTES = 1024 * 1024

FetchJwks = Callable[[str, float], bytes]


class KeysUnavailable(FcError):
    """No JWKS could be fetched yet: the gateway cannot verify anything (500, not 401)."""

    status = "500 Internal Server Error"
    code = "InternalServerError"


def fetch_jwks_url(url: str, timeout: float) -> bytes:
    """GET ``url`` with ``timeout`` seconds per socket operation; bodies are size-bounded."""
    request = urllib.request.Request(
        url, headers={"Accept": "application/json", "User-Agent": "fc-wsgi"}
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:  # http(s): checked at load
        body: bytes = response.read(MAX_JWKS_BYTES + 1)
    if len(body) > MAX_JWKS_BYTES:
        raise ValueError(f"JWKS document larger than {MAX_JWKS_BYTES} bytes")
    return body


class RemoteKeySet:
    """Keys from a JWKS URL: fetched lazily, cached, refreshed under a cooldown.

    Thread-safe for gthread workers: one thread fetches while the others keep serving the
    last good keys (only the very first fetch makes other threads wait).
    """

    def __init__(
        self,
        url: str,
        *,
        algorithms: Iterable[str],
        fetch: FetchJwks | None = None,
        cache_seconds: float = 300,
        cooldown_seconds: float = 30,
        timeout_seconds: float = 5,
        clock: Clock = time.monotonic,
        label: str = "authConfig.jwksUrl",
    ) -> None:
        self.url = url
        self._algorithms = frozenset(algorithms)
        self._fetch = fetch or fetch_jwks_url
        self._cache_seconds = cache_seconds
        self._cooldown_seconds = cooldown_seconds
        self._timeout_seconds = timeout_seconds
        self._clock = clock
        self._label = label
        self._safe_url = redact_url(url)  # for logs: no password, no query
        self._lock = threading.Lock()
        self._keys: KeySet | None = None
        self._digest = b""
        self._stale_at = float("-inf")
        self._next_attempt_at = float("-inf")
        self.generation = 0

    def get(self, kid: str | None) -> VerifyKey | None:
        """The key for ``kid``; an unknown ``kid`` triggers one refresh per cooldown."""
        now = self._clock()
        keys = self._keys
        if keys is None or now >= self._stale_at:
            keys = self._refresh(now)
        key = keys.get(kid) if keys is not None else None
        if key is None and keys is not None:
            keys = self._refresh(now)
            key = keys.get(kid) if keys is not None else None
        if keys is None:
            raise KeysUnavailable("JWT keys are unavailable: the JWKS URL could not be fetched")
        return key

    def current_generation(self) -> int:
        """The keys' generation; also schedules the periodic refresh for hot cached tokens."""
        now = self._clock()
        if self._keys is None or now >= self._stale_at:
            self._refresh(now)
        return self.generation

    def refresh(self) -> bool:
        """Fetch now, ignoring the cache and the cooldown (e.g. at startup); True on success."""
        with self._lock:
            return self._fetch_locked(self._clock())

    def _refresh(self, now: float) -> KeySet | None:
        if now < self._next_attempt_at:
            return self._keys  # cooling down: serve what we have
        # Only the first fetch blocks other threads; later ones serve the last good keys.
        if not self._lock.acquire(blocking=self._keys is None):
            return self._keys
        try:
            if now >= self._next_attempt_at:  # another thread may have just fetched
                self._fetch_locked(now)
        finally:
            self._lock.release()
        return self._keys

    def _fetch_locked(self, now: float) -> bool:
        self._next_attempt_at = now + self._cooldown_seconds
        try:
            body = self._fetch(self.url, self._timeout_seconds)
            digest = hashlib.sha256(body).digest()
            if digest != self._digest:
                keys = parse_jwks(body, self._label, algorithms=self._algorithms, strict=False)
                self._keys, self._digest = keys, digest
                self.generation += 1
        except Exception as exc:  # any failure keeps the last good keys
            metrics.count_jwks_fetch(ok=False)
            if self._keys is None:
                log.error("JWKS fetch from %s failed: %s", self._safe_url, _reason(exc))
            else:
                log.warning(
                    "JWKS refresh from %s failed: %s; keeping the %d last good keys",
                    self._safe_url, _reason(exc), len(self._keys),
                )  # fmt: skip
            return False
        metrics.count_jwks_fetch(ok=True)
        self._stale_at = now + self._cache_seconds
        return True


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"
