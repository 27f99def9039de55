"""A loaded project as ``(name, value)`` lines, for ``fc-wsgi check s.yaml``.

The same shape as :func:`fc_wsgi.config.describe`. Environment variables are listed by name
only: their values may be secrets.
"""

from __future__ import annotations

from collections.abc import Iterator

from .router import DEFAULT_ENDPOINTS
from .spec import FunctionSpec, Project, RouteSpec


def describe_project(project: Project) -> Iterator[tuple[str, str]]:
    """What will be served, where, and what is left out and why."""
    yield "project", f"{project.name} (edition {project.edition}, profile {project.profile})"
    for function in project.functions:
        yield f"function {function.key}", _function(project, function)
        if function.environment:
            yield f"function {function.key} environment", ", ".join(function.environment)
    for domain in project.domains:
        yield f"domain {domain.name}", f"{domain.protocol}, {len(domain.routes)} routes"
        if domain.auth_config is not None:
            yield f"domain {domain.name} authConfig", str(domain.auth_config["authType"])
        for route in domain.routes:
            yield f"domain {domain.name} route {route.path}", _route(route)
    for where, reason in project.ignored:
        yield f"ignored {where}", reason


def _function(project: Project, function: FunctionSpec) -> str:
    if not function.served:
        return f"not served ({function.skipped})"
    prefix = DEFAULT_ENDPOINTS[project.profile][0]
    return f"{function.handler} in {function.code_dir}, default endpoint {prefix}{function.key}/"


def _route(route: RouteSpec) -> str:
    methods = " ".join(route.methods) if route.methods else "all methods"
    rewrite = ", rewritten" if route.rewrite else ""
    return f"{route.function} ({methods}{rewrite})"
