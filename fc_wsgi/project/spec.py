"""What a loaded ``s.yaml`` says: functions, custom domains, and the stacks they need.

Plain frozen data, so that the CLI, ``fc-wsgi check`` and the router read the same thing.
Each served function carries the mapping ``make_trigger_app(None, mapping)`` takes: its HTTP
trigger's ``triggerConfig`` fields, ``profile``, and a ``function`` object with FC's own names
(fc-spec-runtime 14, 18). An :class:`Endpoint` is one stack the router needs: a function as
reached through the default endpoint (FC's forced ``Content-Disposition: attachment``) or
through a custom domain (none; the domain's ``authConfig`` when it has one, open question 15).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..common import Profile
from ..config import ConfigError

#: A rule list: ``(match, replacement)`` pairs in file order.
Rules = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class RewriteConfig:
    """A route's ``rewriteConfig``: ``equalRules``, ``wildcardRules``, ``regexRules``."""

    equal: Rules = ()
    wildcard: Rules = ()
    regex: Rules = ()

    def __bool__(self) -> bool:
        return bool(self.equal or self.wildcard or self.regex)


@dataclass(frozen=True)
class RouteSpec:
    """One entry of a domain's ``routeConfig.routes`` (FC's ``PathConfig``)."""

    path: str
    function: str  #: the target's :attr:`FunctionSpec.key`
    methods: tuple[str, ...] = ()  #: empty: every method
    qualifier: str = "LATEST"
    rewrite: RewriteConfig = RewriteConfig()
    declared_at: str = field(default="", compare=False)  #: ``s.yaml:LINE: yaml.path``


@dataclass(frozen=True)
class DomainSpec:
    """A custom domain and its routes; FC 3.0 domains may carry their own ``authConfig``."""

    name: str  #: lower case, as Host headers are compared
    protocol: str = "HTTP"
    routes: tuple[RouteSpec, ...] = ()
    auth_config: Mapping[str, Any] | None = None  #: FC 3.0 ``{authType, authInfo}``

    def trigger_auth(self) -> dict[str, Any] | None:
        """The trigger fields the domain's ``authConfig`` puts in place of the trigger's."""
        if self.auth_config is None:
            return None
        auth: dict[str, Any] = {"authType": self.auth_config["authType"]}
        info = self.auth_config.get("authInfo")
        if info is not None and auth["authType"] == "jwt":
            auth["authConfig"] = info
        return auth


@dataclass(frozen=True)
class FunctionSpec:
    """One function of the project, served or not (``skipped`` says why not)."""

    name: str  #: FC's function name
    resource: str  #: the ``resources``/``services`` key that declares it
    profile: Profile
    runtime: str
    handler: str | None
    code_dir: Path | None  #: absolute
    environment: Mapping[str, str]
    service: str | None = None  #: FC 2.0 only
    has_http_trigger: bool = False
    #: ``make_trigger_app``'s mapping; None when the function cannot be served.
    trigger: Mapping[str, Any] | None = field(default=None, repr=False)
    skipped: str | None = None

    @property
    def key(self) -> str:
        """How routes and ``--function`` name it: ``service/function`` (FC 2.0) or the name."""
        return f"{self.service}/{self.name}" if self.service is not None else self.name

    @property
    def served(self) -> bool:
        """Whether it is served: an HTTP trigger, a Python runtime and a local code folder."""
        return self.trigger is not None


@dataclass(frozen=True)
class Endpoint:
    """One trigger stack the router needs: a function through the default endpoint or a domain.

    ``domain`` is set only when that domain's ``authConfig`` replaces the trigger's auth, so
    every domain without one shares the function's custom-domain stack.
    """

    function: FunctionSpec
    default_domain: bool
    domain: DomainSpec | None = None

    @property
    def trigger(self) -> dict[str, Any]:
        """A fresh copy of the function's mapping for this stack."""
        if self.function.trigger is None:
            raise ConfigError(f"{self.function.key}: {self.function.skipped}")
        mapping = copy.deepcopy(dict(self.function.trigger))
        mapping["defaultDomain"] = self.default_domain
        auth = self.domain.trigger_auth() if self.domain is not None else None
        if auth is not None:
            mapping.pop("authConfig", None)
            mapping.update(auth)
        return mapping


@dataclass(frozen=True)
class Project:
    """A loaded ``s.yaml``."""

    file: Path
    name: str
    edition: str  #: "3.0.0" or "1.0.0"
    profile: Profile
    functions: tuple[FunctionSpec, ...]
    domains: tuple[DomainSpec, ...] = ()
    #: Resources that are no function (other components): ``(resource key, reason)``.
    ignored: tuple[tuple[str, str], ...] = ()

    @property
    def served(self) -> tuple[FunctionSpec, ...]:
        return tuple(function for function in self.functions if function.served)

    def function(self, name: str) -> FunctionSpec:
        """The function called ``name``: its key, or its plain name when that is unique."""
        found = [f for f in self.functions if name in (f.key, f.name)]
        exact = [f for f in found if f.key == name]
        if exact or len(found) == 1:
            return (exact or found)[0]
        known = ", ".join(f.key for f in self.functions) or "(none)"
        problem = "names several functions" if found else "is no function of this project"
        raise ConfigError(f"{self.file}: function {name!r} {problem} (functions: {known})")

    def only(self, names: Iterable[str]) -> Project:
        """This project with only the named functions; routes to others are left out."""
        keep = {self.function(name).key for name in names}
        domains = []
        for domain in self.domains:
            routes = tuple(route for route in domain.routes if route.function in keep)
            if routes:
                domains.append(replace(domain, routes=routes))
        functions = tuple(f for f in self.functions if f.key in keep)
        return replace(self, functions=functions, domains=tuple(domains))
