"""Reading ``s.yaml``: PyYAML's safe loader, and the line of every key for error messages.

Serverless Devs files are YAML written by hand, so a mistake must be found by its line
(``s.yaml:14: resources.api.props.triggers[0].triggerConfig.methods: ...``). PyYAML's
``SafeLoader`` builds only plain data (never ``yaml.load``'s arbitrary objects); the node tree
it composes on the way carries the marks, which are kept here per YAML path.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeAlias

import yaml

from .._fields import ConfigError, type_name

#: Where a value sits in the document: keys and list indexes from the top.
YamlPath: TypeAlias = "tuple[str | int, ...]"


def dotted(path: YamlPath) -> str:
    """``("resources", "api", "triggers", 0)`` → ``resources.api.triggers[0]``."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else part
    return text or "(top)"


@dataclass(frozen=True)
class YamlSource:
    """One parsed ``s.yaml``: its plain data and the line of each key."""

    file: Path
    data: dict[str, Any]
    lines: Mapping[YamlPath, int] = field(repr=False)

    @property
    def folder(self) -> Path:
        """The project folder: relative paths in the file (``code: ./code``) start here."""
        return self.file.resolve().parent

    def line(self, path: YamlPath) -> int | None:
        """The line of ``path``, or of its nearest ancestor that has one."""
        while path:
            line = self.lines.get(path)
            if line is not None:
                return line
            path = path[:-1]
        return None

    def locate(self, path: YamlPath, *, origin: YamlPath | None = None) -> str:
        """``s.yaml:LINE: a.b[0].c``; ``origin`` is where the value was written, if elsewhere."""
        line = self.line(path if origin is None else origin)
        where = f"{self.file}:{line}" if line else str(self.file)
        return f"{where}: {dotted(path)}"

    def error(self, path: YamlPath, problem: str, *, origin: YamlPath | None = None) -> ConfigError:
        """``s.yaml:LINE: a.b[0].c: problem``."""
        return ConfigError(f"{self.locate(path, origin=origin)}: {problem}")


def read_yaml(file: Path) -> YamlSource:
    """Parse ``file`` with the safe loader; a top level that is no mapping is an error."""
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{file}: not UTF-8 text") from None
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{file}:{mark.line + 1}" if mark is not None else str(file)
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{where}: not valid YAML ({problem})") from None
    finally:
        loader.dispose()
    if node is None or not isinstance(data, dict):
        raise ConfigError(f"{file}: must hold a YAML mapping, got {type_name(data)}")
    lines: dict[YamlPath, int] = {}
    _note_lines(node, (), lines, set())
    return YamlSource(file, data, lines)


def _note_lines(
    node: yaml.Node, path: YamlPath, lines: dict[YamlPath, int], active: set[int]
) -> None:
    # Runs after construction, so merge keys (<<) are already flattened into node.value; an
    # alias that contains itself is walked once (``active`` holds the nodes above this one).
    if id(node) in active:
        return
    active.add(id(node))
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = (*path, str(key_node.value))
            lines.setdefault(key, key_node.start_mark.line + 1)
            _note_lines(value_node, key, lines, active)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines.setdefault((*path, index), item.start_mark.line + 1)
            _note_lines(item, (*path, index), lines, active)
    active.discard(id(node))
