"""Rewrite rules: the examples of FC's rewrite documentation (fc-spec-runtime 19.3)."""

from __future__ import annotations

import pytest

from fc_wsgi.project.rewrite import Rewriter, compile_rule
from fc_wsgi.project.spec import RewriteConfig


@pytest.mark.parametrize(
    ("config", "path", "expected"),
    [
        pytest.param(RewriteConfig(equal=(("/old", "/new"),)), "/old", "/new", id="equal"),
        pytest.param(RewriteConfig(equal=(("/old", "/new"),)), "/test/old", None,
                     id="equal: whole path only"),
        pytest.param(RewriteConfig(wildcard=(("/old", "/new"),)), "/test/old", "/new",
                     id="wildcard unanchored: anywhere, whole path replaced"),
        pytest.param(RewriteConfig(wildcard=(("^/old", "/new"),)), "/test/old", None,
                     id="wildcard ^: at the start only"),
        pytest.param(RewriteConfig(wildcard=(("/api/*", "/$1"),)), "/api/getFunctionName",
                     "/getFunctionName", id="wildcard $1"),
        pytest.param(
            RewriteConfig(wildcard=(("/ServiceName/*/FunctionName/*/Qualifier/*", "/$1.$3/$2"),)),
            "/ServiceName/svc-a/FunctionName/func-a/Qualifier/1", "/svc-a.1/func-a",
            id="wildcard, three groups",
        ),
        pytest.param(RewriteConfig(wildcard=(("/f..c", "/x"),)), "/f..c", "/x",
                     id="wildcard: dots are literal"),
        pytest.param(RewriteConfig(wildcard=(("/f..c", "/x"),)), "/fabc", None,
                     id="wildcard: dots match only dots"),
        pytest.param(RewriteConfig(regex=(("^/old/[a-z]+/", "/new"),)), "/old/ab/", "/new",
                     id="regex"),
        pytest.param(RewriteConfig(regex=(("^/api/.+?/(.*)", "/api/v2/$1"),)), "/api/v1/test",
                     "/api/v2/test", id="regex group"),
        pytest.param(
            RewriteConfig(
                equal=(("/a", "/from-equal"),),
                wildcard=(("^/a*", "/from-wildcard"),),
                regex=(("^/a", "/from-regex"),),
            ),
            "/a", "/from-equal", id="equal first",
        ),
        pytest.param(
            RewriteConfig(wildcard=(("^/a*", "/from-wildcard"),), regex=(("^/a", "/from-regex"),)),
            "/ab", "/from-wildcard", id="wildcard before regex",
        ),
        pytest.param(
            RewriteConfig(regex=(("^/a", "/first"), ("^/a", "/second"))), "/a", "/first",
            id="first rule wins",
        ),
        pytest.param(RewriteConfig(equal=(("/a", "/b?x=1"),)), "/a", "/b?x=1",
                     id="replacement with a query"),
    ],
)  # fmt: skip
def test_rewrite(config: RewriteConfig, path: str, expected: str | None) -> None:
    assert Rewriter(config).rewrite(path) == expected


@pytest.mark.parametrize(
    ("kind", "match", "replacement", "problem"),
    [
        ("regex", "(", "/x", "not a valid regular expression"),
        ("regex", "^/(a)", "/$2", "$2 in the replacement, but the pattern has 1"),
        ("wildcard", "/a/*", "/$1/$2", "$2 in the replacement, but the pattern has 1"),
    ],
)
def test_bad_rules_are_refused(kind: str, match: str, replacement: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem.replace("$", r"\$")):
        compile_rule(kind, match, replacement)
