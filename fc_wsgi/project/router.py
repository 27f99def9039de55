"""One server for a whole project: FC's default endpoint and the custom domains (section 19).

The router only picks a stack and sets what FC's gateway decides for the path; it never
changes what a stack does. Its choices:

- Default endpoint, by path, whatever the Host: FC 2.0's
  ``/2016-08-15/proxy/<service>[.<qualifier>]/<function>/<path>`` and, for FC 3.0 (one
  trigger URL per function on FC, none of them a path), ``/2023-03-30/proxy/<function>
  [.<qualifier>]/<path>``. The prefix moves to ``SCRIPT_NAME`` and ``PATH_INFO`` is the rest
  (``/`` when empty), so the function sees the path relative to its trigger while the layers
  that sign or measure the URL still see the whole one. ``fc.request_uri`` is the URI as
  received for FC 2.0 (prefix included, as handlers that strip it expect) and the part after
  the prefix for FC 3.0 (what its trigger URL carries). These stacks are FC's default domain.
- Custom domains, by ``Host`` (port dropped, case-insensitive) when the project has several;
  one domain takes every Host. Routes match as FC's do (19.2, open questions 11-12): an exact
  route is one dict lookup, then the wildcard prefixes, longest first; a route whose
  ``methods`` leave out the request's is skipped. The matched route's rewrite rules (19.3)
  set ``PATH_INFO``, ``QUERY_STRING`` (when the replacement has ``?``) and ``fc.request_uri``.
  These stacks are no default domain: nothing forces ``Content-Disposition: attachment``.
- Stacks come from ``build(Endpoint)``, once per function and kind; a domain with its own
  ``authConfig`` gets stacks of its own (open question 15).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING
from urllib.parse import quote

from ..errors import (
    DomainNameNotFound,
    DomainRouteNotFound,
    FcError,
    FunctionNotFound,
    ServiceNotFound,
    error_response,
)
from .rewrite import Rewriter
from .spec import DomainSpec, Endpoint, FunctionSpec, Project, RouteSpec

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

#: The default endpoint's path prefix per profile, and how many names follow it.
DEFAULT_ENDPOINTS = {"fc2": ("/2016-08-15/proxy/", 2), "fc3": ("/2023-03-30/proxy/", 1)}

_URI_SAFE = "/;=:@&$,+!~*'()"

Build = Callable[[Endpoint], "WSGIApplication"]


class _Route:
    __slots__ = ("app", "methods", "rewriter")

    def __init__(self, route: RouteSpec, app: WSGIApplication) -> None:
        self.app = app
        self.methods = frozenset(route.methods) if route.methods else None
        self.rewriter = Rewriter(route.rewrite) if route.rewrite else None


class _Domain:
    """One domain's routes: exact paths in a dict, wildcard prefixes longest first."""

    __slots__ = ("name", "_exact", "_wildcards")

    def __init__(self, domain: DomainSpec, routes: Iterable[tuple[RouteSpec, _Route]]) -> None:
        self.name = domain.name
        exact: dict[str, list[_Route]] = {}
        prefixes: dict[str, list[_Route]] = {}
        for spec, route in routes:
            if spec.path.endswith("*"):
                prefixes.setdefault(spec.path[:-1], []).append(route)
            else:
                exact.setdefault(spec.path, []).append(route)
        self._exact = {path: tuple(found) for path, found in exact.items()}
        self._wildcards = tuple(
            (prefix, tuple(prefixes[prefix])) for prefix in sorted(prefixes, key=len, reverse=True)
        )

    def match(self, path: str, method: str) -> _Route | None:
        routes = self._exact.get(path)
        if routes is not None:
            for route in routes:
                if route.methods is None or method in route.methods:
                    return route
        for prefix, routes in self._wildcards:
            if path.startswith(prefix):
                for route in routes:
                    if route.methods is None or method in route.methods:
                        return route
        return None


class Router:
    """A WSGI app over one stack per function: default endpoint plus custom domains."""

    def __init__(self, project: Project, build: Build) -> None:
        self.project = project
        self.profile = project.profile
        self._prefix, self._names = DEFAULT_ENDPOINTS[project.profile]
        self._build = build
        self._apps: dict[tuple[str, bool, str | None], WSGIApplication] = {}
        functions = {function.key: function for function in project.served}
        self._default = {key: self._app(f, default_domain=True) for key, f in functions.items()}
        self._unserved = {f.key: f.skipped or "" for f in project.functions if not f.served}
        self._services = {f.service for f in project.functions}
        self._domains = {
            domain.name: _Domain(
                domain,
                (
                    (route, _Route(route, self._app(functions[route.function], domain=domain)))
                    for route in domain.routes
                ),
            )
            for domain in project.domains
        }
        self._only = next(iter(self._domains.values())) if len(self._domains) == 1 else None

    def _app(
        self,
        function: FunctionSpec,
        *,
        default_domain: bool = False,
        domain: DomainSpec | None = None,
    ) -> WSGIApplication:
        """The stack for ``function`` here, built once per function, kind and domain auth."""
        own = domain if domain is not None and domain.auth_config is not None else None
        key = (function.key, default_domain, own.name if own is not None else None)
        app = self._apps.get(key)
        if app is None:
            app = self._apps[key] = self._build(Endpoint(function, default_domain, own))
        return app

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO") or "/"
        if path.startswith(self._prefix):
            return self._default_endpoint(environ, start_response, path)
        domain = self._only
        if domain is None:
            host = _host(environ)
            domain = self._domains.get(host)
            if domain is None:
                error = DomainNameNotFound(f"domain name '{host}' does not exist")
                return error_response(error, environ, start_response, self.profile)
        decoded = path if path.isascii() else _text(path)
        route = domain.match(decoded, environ.get("REQUEST_METHOD", "GET"))
        if route is None:
            message = f"no route of custom domain '{domain.name}' matches path '{decoded}'"
            return error_response(
                DomainRouteNotFound(message), environ, start_response, self.profile
            )
        rewritten = route.rewriter.rewrite(decoded) if route.rewriter is not None else None
        if rewritten is None:
            environ["fc.request_uri"] = _received_uri(environ)
        else:
            _apply_rewrite(environ, rewritten)
        return route.app(environ, start_response)

    def _default_endpoint(
        self, environ: WSGIEnvironment, start_response: StartResponse, path: str
    ) -> Iterable[bytes]:
        names = path[len(self._prefix) :].split("/", self._names)
        key = "/".join([names[0].partition(".")[0], *names[1 : self._names]])
        app = self._default.get(key) if len(names) >= self._names else None
        if app is None:
            error = self._not_found(key, names)
            return error_response(error, environ, start_response, self.profile)
        received = _received_uri(environ)
        if len(names) > self._names:
            tail = names[-1]
            mount = path[: len(path) - len(tail) - 1]
            environ["PATH_INFO"] = "/" + tail
        else:
            mount = path
            environ["PATH_INFO"] = "/"
        environ["SCRIPT_NAME"] = environ.get("SCRIPT_NAME", "") + mount
        if self.profile == "fc3":  # the trigger URL of an FC 3.0 function has no prefix
            if received.startswith(mount):
                rest = received[len(mount) :]
                received = rest if rest.startswith("/") else "/" + rest
            else:  # the client encoded the prefix differently: rebuild from the decoded path
                received = _uri(environ["PATH_INFO"], environ.get("QUERY_STRING", ""), "latin-1")
        environ["fc.request_uri"] = received
        return app(environ, start_response)

    def _not_found(self, key: str, names: list[str]) -> FcError:
        name = names[self._names - 1] if len(names) >= self._names else ""
        name = name.partition(".")[0] if self._names == 1 else name
        service = names[0].partition(".")[0]
        if self._names == 2 and service not in self._services:
            return ServiceNotFound(f"service '{service}' does not exist")
        reason = self._unserved.get(key)
        if reason:
            return FunctionNotFound(f"function '{name}' is not served here: {reason}")
        return FunctionNotFound(f"function '{name}' does not exist")


def _host(environ: WSGIEnvironment) -> str:
    """The Host without port, lower case, as custom domains are named."""
    host: str = environ.get("HTTP_HOST") or environ.get("SERVER_NAME", "")
    if ":" in host and not host.endswith("]"):  # "[::1]" alone keeps its colons
        host = host.rpartition(":")[0]
    return host.rstrip(".").lower()


def _text(wsgi_path: str) -> str:
    """PEP 3333's latin-1 path as the UTF-8 text routes are written in."""
    return wsgi_path.encode("latin-1").decode("utf-8", "replace")


def _received_uri(environ: WSGIEnvironment) -> str:
    """Path and query as the client sent them (the server's raw target when it keeps one)."""
    uri: str | None = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if uri and uri.startswith("/"):
        return uri
    path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
    return _uri(path, environ.get("QUERY_STRING", ""), "latin-1")


def _uri(path: str, query: str, encoding: str) -> str:
    """A request URI from a decoded path (WSGI's latin-1 text, or UTF-8 text) and the query."""
    encoded = quote(path, safe=_URI_SAFE, encoding=encoding) or "/"
    return f"{encoded}?{query}" if query else encoded


def _apply_rewrite(environ: WSGIEnvironment, rewritten: str) -> None:
    """The rewritten path (and query, when the replacement has one) as the function's."""
    path, has_query, query = rewritten.partition("?")
    path = path or "/"
    if has_query:
        environ["QUERY_STRING"] = query
    environ["PATH_INFO"] = path.encode("utf-8").decode("latin-1")
    environ["fc.request_uri"] = _uri(path, environ.get("QUERY_STRING", ""), "utf-8")
