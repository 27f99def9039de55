"""The verified-token cache: a bounded LRU whose entries end at the token's exp."""

from __future__ import annotations

from fc_wsgi.auth.tokens import Grant, TokenCache

NOW = 1_700_000_000.0


def test_token_cache_is_a_bounded_lru():
    def grant(expires_at: float = NOW + 60) -> Grant:
        return Grant(expires_at, 0, {}, (), (), (), ())

    cache = TokenCache(max_entries=2)
    cache.put("a", grant())
    cache.put("b", grant())
    assert cache.get("a", NOW, 0) is not None  # "a" is now the most recent
    cache.put("c", grant())
    assert cache.get("b", NOW, 0) is None
    assert cache.get("a", NOW, 0) is not None
    assert cache.get("c", NOW, 0) is not None
    assert cache.get("c", NOW, 1) is None  # another key generation: dropped
    assert len(cache) == 1
