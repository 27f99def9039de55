"""``load_project``: an ``s.yaml`` of either edition → a :class:`~.spec.Project`.

The edition picks the reader (``edition: 3.0.0`` → ``resources``/``fc3``, ``edition: 1.0.0``
→ ``services``/``fc``, open question 16); this module then merges the declarations of each
custom domain (several functions may add routes to one domain), and checks every route's
target: a function of the project (else an error), served (else the route is listed as
ignored, as the function is).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..common import Profile
from ..config import ConfigError
from .fc2 import read_services
from .fc3 import read_resources
from .props import DomainDecl, Reading
from .source import read_yaml
from .spec import DomainSpec, FunctionSpec, Project, RouteSpec
from .variables import Resolver

#: edition → (top-level section, profile).
EDITIONS: dict[str, tuple[str, Profile]] = {
    "3.0.0": ("resources", "fc3"),
    "1.0.0": ("services", "fc2"),
}


def load_project(
    path: str | os.PathLike[str],
    *,
    env: Mapping[str, str] | None = None,
    config: Mapping[str, Any] | None = None,
    outputs: Mapping[str, Any] | None = None,
) -> Project:
    """Read and check ``path``; every mistake is a ConfigError naming its YAML path and line.

    ``env`` replaces ``os.environ`` for ``${env(...)}``; ``config`` holds the values of
    ``${config('Name')}`` (``AccountID`` also fills each function's ``accountId``);
    ``outputs`` the deploy outputs ``${resource.output.*}`` read, by resource name.
    """
    source = read_yaml(Path(path))
    edition = str(source.data.get("edition", ""))
    if edition not in EDITIONS:
        raise source.error(("edition",), f"must be 3.0.0 or 1.0.0, got {edition or 'nothing'!r}")
    section, profile = EDITIONS[edition]
    resolver = Resolver(
        source,
        section=section,
        env=os.environ if env is None else env,
        config=config or {},
        outputs=outputs or {},
    )
    root = resolver.root()
    entries = root.mapping(section)
    if entries is None:
        raise source.error((section,), f"required for edition {edition}")
    read = read_resources if profile == "fc3" else read_services
    reading = read(entries, config or {})
    functions = _unique(reading.functions)
    domains = tuple(_domain(decls, functions, reading) for decls in _by_name(reading.domains))
    name = root.text("name") or source.folder.name
    return Project(
        file=source.file,
        name=name,
        edition=edition,
        profile=profile,
        functions=tuple(functions.values()),
        domains=domains,
        ignored=tuple(reading.ignored),
    )


def _unique(functions: list[FunctionSpec]) -> dict[str, FunctionSpec]:
    by_key: dict[str, FunctionSpec] = {}
    for function in functions:
        first = by_key.setdefault(function.key, function)
        if first is not function:
            raise ConfigError(
                f"function {function.key!r} is declared twice "
                f"({first.resource}, {function.resource})"
            )
    return by_key


def _by_name(decls: list[DomainDecl]) -> list[list[DomainDecl]]:
    groups: dict[str, list[DomainDecl]] = {}
    for decl in decls:
        groups.setdefault(decl.name, []).append(decl)
    return list(groups.values())


def _domain(
    decls: list[DomainDecl], functions: Mapping[str, FunctionSpec], reading: Reading
) -> DomainSpec:
    """One domain from all its declarations: routes in file order, one ``authConfig``."""
    first = decls[0]
    auth = first.auth_config
    for decl in decls[1:]:
        if decl.auth_config is not None and auth is not None and decl.auth_config != auth:
            raise decl.node.error(f"authConfig differs from the one of {first.node.location()}")
        auth = auth or decl.auth_config
    routes: dict[tuple[str, frozenset[str]], RouteSpec] = {}
    for route in (route for decl in decls for route in decl.routes):
        target = functions.get(route.function)
        if target is None:
            known = ", ".join(functions) or "(none)"
            raise ConfigError(
                f"{route.declared_at}: routes to {route.function!r}, which is no function "
                f"of this project (functions: {known})"
            )
        if not target.served:
            reading.ignored.append((route.declared_at, f"route to {target.key}: {target.skipped}"))
            continue
        key = (route.path, frozenset(route.methods))
        earlier = routes.setdefault(key, route)
        if earlier is not route:
            raise ConfigError(
                f"{route.declared_at}: path {route.path} with these methods is already routed "
                f"({earlier.declared_at})"
            )
    return DomainSpec(
        name=first.name, protocol=first.protocol, routes=tuple(routes.values()), auth_config=auth
    )
