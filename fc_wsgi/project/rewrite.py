"""A custom-domain route's rewrite rules (fc-spec-runtime 19.3, open question 14).

FC rewrites the path after a route matched: ``equalRules`` (the whole path), then
``wildcardRules`` (``*`` is any text, ``$1``... in the replacement, ``^`` anchors at the start,
every other character is literal), then ``regexRules``; the first rule that matches wins and
the whole path becomes its replacement. Patterns are compiled once, when the router is built.
"""

from __future__ import annotations

import re

from .spec import RewriteConfig

_GROUP_REF = re.compile(r"\$(\d+)")


def compile_rule(kind: str, match: str, replacement: str) -> re.Pattern[str]:
    """The pattern of one wildcard or regex rule; ValueError names what is wrong."""
    if kind == "wildcard":
        anchored = match.startswith("^")
        pieces = (match[1:] if anchored else match).split("*")
        pattern = ("^" if anchored else "") + "(.*)".join(map(re.escape, pieces))
    else:
        pattern = match
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"not a valid regular expression ({exc})") from None
    for ref in _GROUP_REF.findall(replacement):
        if int(ref) > compiled.groups:
            raise ValueError(f"${ref} in the replacement, but the pattern has {compiled.groups}")
    return compiled


class Rewriter:
    """Applies one route's rules to a decoded path."""

    __slots__ = ("_equal", "_patterns")

    def __init__(self, config: RewriteConfig) -> None:
        self._equal: dict[str, str] = {}
        for match, replacement in config.equal:
            self._equal.setdefault(match, replacement)  # the first rule for a path wins
        self._patterns = tuple(
            (compile_rule(kind, match, replacement), replacement)
            for kind, rules in (("wildcard", config.wildcard), ("regex", config.regex))
            for match, replacement in rules
        )

    def rewrite(self, path: str) -> str | None:
        """The rewritten path (may carry ``?query``), or None when no rule matches."""
        replacement = self._equal.get(path)
        if replacement is not None:
            return replacement
        for pattern, replacement in self._patterns:
            found = pattern.search(path)
            if found is not None:
                return _expand(replacement, found)
        return None


def _expand(replacement: str, found: re.Match[str]) -> str:
    """``$1``, ``$2``... in ``replacement`` → the groups ``found`` captured."""
    return _GROUP_REF.sub(lambda ref: found.group(int(ref.group(1))) or "", replacement)
