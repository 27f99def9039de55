"""Values of ``s.yaml`` with their ``${...}`` placeholders resolved (fc-spec-runtime 18.4).

Resolution is lazy: the loader walks the document through :class:`Node` views and only the
values it reads are resolved. Real templates carry placeholders we never need (``role:
acs:ram::${config('AccountID')}:role/...``), and those must not fail a local run. A
placeholder that is the whole value keeps the referenced type (``service: ${vars.service}``
is an object); inside a longer string each value is written as text (strings as they are,
anything else as JSON). ``${x.output.*}`` and ``${config(...)}`` resolve only from the values
given to the resolver; an unset environment variable without a default is an error.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from .._fields import ConfigError, type_name
from .expressions import Call, Expr, ExpressionError, Literal, Ref, parse_template
from .source import YamlPath, YamlSource, dotted

_FUNCTIONS = ("env", "path", "file", "json", "config")

#: Builds the error for one placeholder from a problem text.
_Fail = Callable[[str], ConfigError]


class Resolver:
    """Evaluates placeholders against one document, the environment and configured values."""

    def __init__(
        self,
        source: YamlSource,
        *,
        section: str,
        env: Mapping[str, str],
        config: Mapping[str, Any],
        outputs: Mapping[str, Any],
    ) -> None:
        self.source = source
        self._section = section  # "resources" (3.0.0) or "services" (1.0.0)
        self._env, self._config, self._outputs = env, config, outputs
        self._active: set[YamlPath] = set()  # placeholders being resolved: a cycle guard

    def root(self) -> Node:
        return Node(self, self.source.data, (), (), literal=False)

    def settle(self, raw: Any, where: YamlPath, origin: YamlPath, *, literal: bool) -> Node:
        """A node for ``raw`` found at ``where``, its own placeholders resolved."""
        if literal or not isinstance(raw, str) or "${" not in raw:
            return Node(self, raw, where, origin, literal=literal)
        if origin in self._active:
            raise self.source.error(where, f"{raw!r}: circular reference", origin=origin)
        self._active.add(origin)
        try:
            try:
                parts = parse_template(raw)
            except ExpressionError as exc:
                raise self.source.error(where, str(exc), origin=origin) from None
            if len(parts) == 1 and not isinstance(parts[0], str):
                return self._evaluate(parts[0], where, origin)
            text = "".join(
                part
                if isinstance(part, str)
                else _as_text(self._evaluate(part, where, origin).plain())
                for part in parts
            )
            return Node(self, text, where, origin, literal=True)
        finally:
            self._active.discard(origin)

    def _evaluate(self, expr: Expr, where: YamlPath, origin: YamlPath) -> Node:
        if isinstance(expr, Literal):
            return Node(self, expr.value, where, origin, literal=True)
        if isinstance(expr, Ref):
            target = self._follow(expr, where, origin)
            return Node(self, target.value, where, target.origin, literal=target.literal)
        value = self._call(expr, where, origin)
        return Node(self, value, where, origin, literal=True)

    def _follow(self, ref: Ref, where: YamlPath, origin: YamlPath) -> Node:
        names = ref.names
        fail = self._failure(where, origin, f"${{{ref.text}}}")
        root, rest = names[0], names[1:]
        if root == "env":
            if len(rest) != 1:
                raise fail("env.NAME takes one name")
            return Node(
                self, self._env_value(str(rest[0]), None, fail), where, origin, literal=True
            )
        if root == "this":
            if len(where) < 2 or where[0] != self._section:
                raise fail(f"'this' is only known inside {self._section}")
            if rest == ("name",):
                return Node(self, where[1], where, origin, literal=True)
            start: YamlPath = where[:2]
        elif root == "vars":
            start = ("vars",)
        elif root in ("resources", "services"):
            if not rest:
                raise fail(f"{root} needs a name")
            start, rest = (self._section, rest[0]), rest[1:]
        elif isinstance(root, str) and root in self.source.data.get(self._section, {}):
            start = (self._section, root)
        else:
            raise fail(f"unknown variable {root!r}")
        if start[0] == self._section and rest[:1] == ("output",):
            return self._output(start[1], rest[1:], where, origin, fail)
        node: Node | None = self.root()
        walked: YamlPath = ()
        for name in (*start, *rest):
            walked = (*walked, name)
            node = node.get(name) if node is not None else None
            if node is None:
                raise fail(f"{dotted(walked)} is not defined")
        assert node is not None
        return node

    def _output(
        self, resource: Any, rest: YamlPath, where: YamlPath, origin: YamlPath, fail: _Fail
    ) -> Node:
        value: Any = self._outputs.get(resource)
        if value is None:
            raise fail(f"the deploy output of {resource!r} is not configured")
        for name in rest:
            try:
                value = value[name]
            except (KeyError, IndexError, TypeError):
                raise fail(f"the deploy output of {resource!r} has no {name!r}") from None
        return Node(self, value, where, origin, literal=True)

    def _call(self, call: Call, where: YamlPath, origin: YamlPath) -> Any:
        fail = self._failure(where, origin, f"${{{call.text}}}")
        if call.name not in _FUNCTIONS:
            raise fail(f"unknown function {call.name!r} (known: {', '.join(_FUNCTIONS)})")
        args = [self._evaluate(arg, where, origin).plain() for arg in call.args]
        wanted = 2 if call.name == "env" else 1
        if not 1 <= len(args) <= wanted:
            raise fail(f"{call.name}() takes {'1 or 2 arguments' if wanted == 2 else '1 argument'}")
        first = args[0]
        if not isinstance(first, str):
            raise fail(f"{call.name}() needs text, got {type_name(first)}")
        if call.name == "env":
            return self._env_value(first, args[1] if len(args) == 2 else None, fail)
        if call.name == "config":
            if first not in self._config:
                raise fail(f"config value {first!r} is not configured")
            return self._config[first]
        if call.name == "json":
            try:
                return json.loads(first)
            except ValueError as exc:
                raise fail(f"not valid JSON ({exc})") from None
        path = self.source.folder / first
        if call.name == "path":
            return str(path.resolve())
        try:
            return path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise fail(f"cannot read {path} ({getattr(exc, 'strerror', None) or exc})") from None

    def _env_value(self, name: str, default: Any, fail: _Fail) -> Any:
        value = self._env.get(name)
        if value is not None:
            return value
        if default is None:
            raise fail(f"environment variable {name} is not set")
        return default

    def _failure(self, where: YamlPath, origin: YamlPath, placeholder: str) -> _Fail:
        def fail(problem: str) -> ConfigError:
            return self.source.error(where, f"{placeholder}: {problem}", origin=origin)

        return fail


class Node:
    """A value of the document as the loader sees it: placeholders followed, place kept.

    ``where`` is the path the loader walked (named in messages), ``origin`` where the value
    is written (its line); they differ below a reference such as ``service: ${vars.service}``.
    ``literal`` values came from outside the file (env, files) and are never evaluated.
    """

    __slots__ = ("_resolver", "value", "where", "origin", "literal")

    def __init__(
        self, resolver: Resolver, value: Any, where: YamlPath, origin: YamlPath, *, literal: bool
    ) -> None:
        self._resolver = resolver
        self.value, self.where, self.origin, self.literal = value, where, origin, literal

    @property
    def source(self) -> YamlSource:
        return self._resolver.source

    def error(self, problem: str) -> ConfigError:
        return self._resolver.source.error(self.where, problem, origin=self.origin)

    def location(self) -> str:
        """``s.yaml:LINE: yaml.path``, for listings."""
        return self._resolver.source.locate(self.where, origin=self.origin)

    def get(self, key: str | int) -> Node | None:
        """The child at ``key``, or None when absent or null."""
        value = self.value
        if isinstance(value, dict):
            raw = value.get(key)
        elif isinstance(value, list) and str(key).isdigit() and int(key) < len(value):
            key = int(key)  # ``vars.list.0`` as well as ``vars.list[0]``
            raw = value[key]
        else:
            return None
        if raw is None:
            return None
        child = self._resolver.settle(
            raw, (*self.where, key), (*self.origin, key), literal=self.literal
        )
        return None if child.value is None else child

    def require(self, key: str) -> Node:
        child = self.get(key)
        if child is None:
            raise self._resolver.source.error((*self.where, key), "required", origin=self.origin)
        return child

    def text(self, key: str, default: str | None = None) -> str | None:
        """A non-empty string (numbers are written as text, as YAML users expect)."""
        child = self.get(key)
        if child is None:
            return default
        value = child.value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        if not isinstance(value, str) or not value.strip():
            raise child.error(f"must be a non-empty string, got {_shown(value)}")
        return value

    def required_text(self, key: str) -> str:
        value = self.text(key)
        if value is None:
            raise self._resolver.source.error((*self.where, key), "required", origin=self.origin)
        return value

    def integer(self, key: str, default: int, low: int, high: int) -> int:
        child = self.get(key)
        if child is None:
            return default
        value = child.value
        if isinstance(value, bool) or not isinstance(value, int):
            raise child.error(f"must be an integer {low}..{high}, got {_shown(value)}")
        if not low <= value <= high:
            raise child.error(f"must be {low}..{high}, got {value}")
        return value

    def mapping(self, key: str) -> Node | None:
        child = self.get(key)
        if child is not None and not isinstance(child.value, dict):
            raise child.error(f"must be an object, got {type_name(child.value)}")
        return child

    def items(self) -> Iterator[tuple[str, Node]]:
        """The children of an object, in file order (null values left out)."""
        for key in list(self.value):
            child = self.get(key)
            if child is not None:
                yield str(key), child

    def elements(self, key: str) -> list[Node]:
        """The items of the array at ``key`` (absent: none)."""
        child = self.get(key)
        if child is None:
            return []
        if not isinstance(child.value, list):
            raise child.error(f"must be an array, got {type_name(child.value)}")
        return [item for index in range(len(child.value)) if (item := child.get(index))]

    def plain(self) -> Any:
        """The value with every placeholder below it resolved: plain data."""
        value = self.value
        if self.literal:
            return value
        if isinstance(value, dict):
            return {key: child.plain() for key, child in self.items()}
        if isinstance(value, list):
            return [child.plain() if child else None for child in map(self.get, range(len(value)))]
        return value


def _as_text(value: Any) -> str:
    """A value placed inside a longer string: text as it is, anything else as JSON."""
    return value if isinstance(value, str) else json.dumps(value)


def _shown(value: Any) -> str:
    return repr(value) if isinstance(value, str) else type_name(value)
