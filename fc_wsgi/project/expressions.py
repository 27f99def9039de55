"""Serverless Devs' ``${...}`` placeholders ("magic variables"), parsed (fc-spec-runtime 18.4).

Only parsing lives here; ``variables.py`` gives the parsed expressions their values. The
grammar covers both editions: references (``vars.a.b``, ``env.X``, ``resources.r.props.p``,
``svc.props.p``, ``this.props.p``, ``list[0]``) and calls with quoted, bare or nested
arguments (``env('X', 'd')``, fc2's ``env(X)`` and ``file(./a.json)``,
``env('V', path('../'))``). A bare argument is a reference only when it starts with one of
the reference roots and has a dot (``env('X', vars.x)``); otherwise it is literal text, as
Serverless Devs 2.x reads ``${env(NAME)}``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TypeAlias


class ExpressionError(ValueError):
    """A placeholder that cannot be parsed; the message quotes it."""


@dataclass(frozen=True)
class Ref:
    """A dotted reference such as ``vars.service.name``."""

    names: tuple[str | int, ...]
    text: str


@dataclass(frozen=True)
class Call:
    """A function call such as ``env('X', 'default')``."""

    name: str
    args: tuple[Expr, ...]
    text: str


@dataclass(frozen=True)
class Literal:
    """A quoted or bare argument, taken as text."""

    value: str


Expr: TypeAlias = "Ref | Call | Literal"

#: The roots a bare call argument may reference (``env('X', vars.x)``).
REFERENCE_ROOTS = frozenset({"vars", "env", "resources", "services", "this"})

_IDENT = re.compile(r"[A-Za-z_]\w*")
_NAME = re.compile(r"[\w-]+(?:\.[\w-]+|\[\d+\])*")
_PART = re.compile(r"[\w-]+|\[(\d+)\]")
_SPACE = re.compile(r"\s*")


def parse_template(text: str) -> list[str | Expr]:
    """Split ``text`` into literal strings and parsed placeholders, in order."""
    parts: list[str | Expr] = []
    start = 0
    while (opening := text.find("${", start)) >= 0:
        if opening > start:
            parts.append(text[start:opening])
        closing = _closing_brace(text, opening + 2)
        parts.append(_Parser(text[opening + 2 : closing]).parse())
        start = closing + 1
    if start < len(text):
        parts.append(text[start:])
    return parts


def _closing_brace(text: str, start: int) -> int:
    quote = ""
    for index in range(start, len(text)):
        char = text[index]
        if quote:
            if char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif char == "}":
            return index
    raise ExpressionError(f"{text[start - 2 :]!r}: no closing }}")


class _Parser:
    """Recursive descent over one placeholder's text (without ``${`` and ``}``)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def parse(self) -> Expr:
        expr = self._expr(top=True)
        self._skip_space()
        if self.pos != len(self.text):
            raise ExpressionError(f"'${{{self.text}}}': cannot parse")
        return expr

    def _skip_space(self) -> None:
        self.pos = _SPACE.match(self.text, self.pos).end()  # type: ignore[union-attr]

    def _expr(self, *, top: bool) -> Expr:
        self._skip_space()
        start = self.pos
        if self.text[start : start + 1] in ("'", '"'):
            return Literal(self._quoted())
        match = _NAME.match(self.text, start)
        if match is not None:
            self.pos = match.end()
            self._skip_space()
            following = self.text[self.pos : self.pos + 1]
            name = match.group()
            if following == "(" and _IDENT.fullmatch(name):
                return self._call(name, start)
            names = _names(name)
            if top and following == "":
                return Ref(names, name)
            nested = "." in name or "[" in name
            if not top and following in (",", ")") and nested and names[0] in REFERENCE_ROOTS:
                return Ref(names, name)
            self.pos = start
        if top:
            raise ExpressionError(f"'${{{self.text}}}': not a reference or a function call")
        return Literal(self._bare())

    def _call(self, name: str, start: int) -> Call:
        self.pos += 1  # the "("
        args: list[Expr] = []
        self._skip_space()
        if self.text[self.pos : self.pos + 1] == ")":
            self.pos += 1
            return Call(name, (), self.text[start : self.pos])
        while True:
            args.append(self._expr(top=False))
            self._skip_space()
            char = self.text[self.pos : self.pos + 1]
            self.pos += 1
            if char == ")":
                return Call(name, tuple(args), self.text[start : self.pos])
            if char != ",":
                raise ExpressionError(f"'${{{self.text}}}': expected , or ) in {name}(...)")

    def _quoted(self) -> str:
        quote = self.text[self.pos]
        end = self.text.find(quote, self.pos + 1)
        if end < 0:
            raise ExpressionError(f"'${{{self.text}}}': unterminated string")
        value = self.text[self.pos + 1 : end]
        self.pos = end + 1
        return value

    def _bare(self) -> str:
        end = self.pos
        while end < len(self.text) and self.text[end] not in ",)'\"(":
            end += 1
        value = self.text[self.pos : end].strip()
        if not value:
            raise ExpressionError(f"'${{{self.text}}}': empty argument")
        self.pos = end
        return value


def _names(dotted: str) -> tuple[str | int, ...]:
    return tuple(
        int(m.group(1)) if m.group(1) is not None else m.group() for m in _PART.finditer(dotted)
    )
