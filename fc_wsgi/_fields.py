"""How a config field is declared, parsed and described: the machinery under config.py.

Each field is declared once, as a dataclass field whose metadata carries its JSON name, its
parser (type, bounds) and a one-line doc (:func:`setting`); that one declaration drives
loading (:func:`load_section`), the error messages, ``fc-wsgi check`` (:func:`describe_fields`)
and the README's config reference (:func:`reference_fields`), as gunicorn's ``Setting`` classes
do for its options. It sits below config.py so that the sections parsed outside it (FC's JWT
``authConfig``) use the same parsers and errors without importing the config they are part of.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

T = TypeVar("T")
#: A field parser: takes the raw JSON value and its field path, returns the Python value.
Parser = Callable[[Any, str], Any]


class ConfigError(ValueError):
    """A config value is missing, unknown, of the wrong type or out of range.

    The message starts with the field path (``async.maxAsyncRetryAttempts: ...``) and never
    contains a secret.
    """


def setting(
    name: str,
    default: Any,
    parse: Parser,
    doc: str,
    *,
    shown: bool = True,
    required: bool = False,
    aliases: tuple[str, ...] = (),
    optional_section: type | None = None,
) -> Any:
    """Declare a config field: its JSON ``name``, default, parser and one-line doc.

    ``required`` fields must be in a loaded config; their default serves configs built in code.
    ``shown=False`` keeps a field (a secret, a nested object) out of ``fc-wsgi check``.
    ``aliases`` are other JSON names of the same field (FC 2.0 and 3.0 spell some fields
    differently); ``optional_section`` is the dataclass of a section whose default is None, so
    that the reference still lists its fields.
    """
    meta = {
        "json": name,
        "parse": parse,
        "doc": doc,
        "shown": shown,
        "required": required,
        "aliases": aliases,
        "section": optional_section,
    }
    if isinstance(default, (list, dict, set)):
        raise TypeError("mutable default")  # pragma: no cover - guards the declarations
    if dataclasses.is_dataclass(default):
        return dataclasses.field(default_factory=lambda: default, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def field_error(path: str, problem: str) -> ConfigError:
    """A ConfigError for the field at ``path``."""
    return ConfigError(f"{path}: {problem}")


def join(path: str, name: str) -> str:
    """The path of field ``name`` inside the object at ``path`` (``""`` is the top)."""
    return f"{path}.{name}" if path else name


def type_name(value: Any) -> str:
    """The JSON name of ``value``'s type, for messages."""
    return {dict: "object", list: "array", str: "string", bool: "boolean"}.get(
        type(value), type(value).__name__
    )


# -- parsers: each takes the raw JSON value and its path, returns the Python value ----------


def parse_bool(value: Any, path: str) -> bool:
    if not isinstance(value, bool):
        raise field_error(path, f"must be true or false, got {type_name(value)}")
    return value


def int_in(low: int, high: int) -> Parser:
    """Parser of a whole number in ``low..high``."""

    def parse(value: Any, path: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise field_error(path, f"must be an integer {low}..{high}, got {type_name(value)}")
        if not low <= value <= high:
            raise field_error(path, f"must be {low}..{high}, got {value}")
        return value

    return parse


def one_of(*choices: str) -> Parser:
    """Parser of one of ``choices`` (exact spelling)."""

    def parse(value: Any, path: str) -> str:
        if value not in choices:
            shown = repr(value) if isinstance(value, str) else type_name(value)
            raise field_error(path, f"must be one of {', '.join(choices)}; got {shown}")
        return str(value)

    return parse


def parse_text(value: Any, path: str) -> str:
    """A non-empty string."""
    if not isinstance(value, str) or not value.strip():
        raise field_error(path, "must be a non-empty string")
    return value


def text_list(value: Any, path: str) -> tuple[str, ...]:
    """An array of non-empty strings."""
    if not isinstance(value, list):
        raise field_error(path, f"must be an array of strings, got {type_name(value)}")
    return tuple(parse_text(item, f"{path}[{i}]") for i, item in enumerate(value))


def json_object(value: Any, path: str) -> dict[str, Any]:
    """An object, or the JSON text of one (FC's API types ``authConfig`` as a string)."""
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else {}
        except json.JSONDecodeError as exc:
            problem = f"is not valid JSON ({exc.msg} at position {exc.pos})"
            raise field_error(path, problem) from None
    if not isinstance(value, dict):
        raise field_error(path, f"must be an object, got {type_name(value)}")
    return value


def section(cls: type[T]) -> Parser:
    """Parser of a nested object declared as the dataclass ``cls``."""

    def parse(value: Any, path: str) -> T:
        return load_section(cls, value, path)

    return parse


# -- loading and describing a declared dataclass ----------------------------------------------


def load_section(cls: type[T], raw: Any, path: str) -> T:
    """Build ``cls`` from the JSON object ``raw``: unknown keys, missing required fields and
    bad values raise :class:`ConfigError` naming the field path; JSON null is the default."""
    if not isinstance(raw, dict):
        raise field_error(path, f"must be an object, got {type_name(raw)}")
    fields = dataclasses.fields(cls)  # type: ignore[arg-type]
    by_json = {name: f for f in fields for name in (f.metadata["json"], *f.metadata["aliases"])}
    for declared in fields:
        if declared.metadata["required"] and raw.get(declared.metadata["json"]) is None:
            raise field_error(join(path, declared.metadata["json"]), "required")
    values: dict[str, Any] = {}
    given: dict[str, str] = {}  # field name -> the JSON name it was given as
    for key, value in raw.items():
        field = by_json.get(key)
        if field is None:
            raise field_error(join(path, key), "unknown field")
        if field.name in given:
            raise field_error(join(path, key), f"give {given[field.name]} or {key}, not both")
        given[field.name] = key
        if value is None:
            continue  # JSON null: the default
        values[field.name] = field.metadata["parse"](value, join(path, key))
    return cls(**values)


def describe_fields(
    obj: Any, path: str, *, skip: frozenset[str] = frozenset(), show: Callable[[str, Any], str]
) -> Iterator[tuple[str, str]]:
    """The shown fields of a loaded section as ``(path, text)``; ``show`` renders leaf values
    that need more than ``str`` (secrets inside URLs)."""
    for field in dataclasses.fields(obj):
        value = getattr(obj, field.name)
        name = join(path, field.metadata["json"])
        if not field.metadata["shown"] or name in skip:
            continue
        if dataclasses.is_dataclass(value):
            yield from describe_fields(value, name, skip=skip, show=show)
        elif isinstance(value, Mapping):  # environment variables: names only, values may be secret
            yield name, ", ".join(value) if value else "(none)"
        elif isinstance(value, tuple):
            yield name, ", ".join(value) if value else "(none)"
        elif isinstance(value, bool):
            yield name, "true" if value else "false"
        elif value is None or value == "":
            yield name, "(none)"
        else:
            yield name, show(name, value)


def reference_fields(cls: Any, path: str) -> Iterator[tuple[str, str, str]]:
    """Every declared field of ``cls`` (nested sections flattened) as ``(path, default, doc)``."""
    for field in dataclasses.fields(cls):
        name = join(path, field.metadata["json"])
        default = (
            field.default
            if field.default_factory is dataclasses.MISSING
            else field.default_factory()
        )
        if dataclasses.is_dataclass(default):
            yield from reference_fields(type(default), name)
            continue
        if field.metadata["section"] is not None:  # an optional section: list its fields
            yield from reference_fields(field.metadata["section"], name)
            continue
        if field.metadata["required"]:
            shown = "(required)"
        elif default is None:
            shown = "(none)"
        else:
            shown = json.dumps(list(default) if isinstance(default, tuple) else default)
        yield name, shown, field.metadata["doc"]
