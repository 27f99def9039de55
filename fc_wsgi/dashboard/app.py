"""``fc-wsgi dashboard``: the async tasks in a browser, over the store ``fc-wsgi tasks`` reads.

What Flower is to Celery: a table of tasks (filters by state and function, keyset pages that
stay one index seek deep into 100,000 tasks), a task's request and record, counts per state
refreshed by a small script, and FC's operator actions (retry, StopAsyncTask) as buttons. Every
call goes through the backend-neutral :class:`~fc_wsgi.dispatch.backend.TaskStore`, so SQLite
journals and Redis records look alike.

It can stop and re-run work, so it is guarded like an admin page:
- loopback by default; any other bind needs a token (``--token``, compared in constant time),
  given once on a sign-in form and kept in an HttpOnly, SameSite=Strict cookie;
- on loopback, requests must name a loopback ``Host`` (a DNS-rebinding page cannot reach it);
- every change is a POST carrying a CSRF token (an HMAC of the session under a per-process
  secret) from a same-origin page (``Origin`` and ``Sec-Fetch-Site`` checked when sent);
- every answer forbids framing and sniffing, and its Content-Security-Policy allows only this
  origin's script and style files: no inline script, no CDN.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import logging
import os
import secrets
from collections.abc import Iterable, Mapping
from importlib import resources
from typing import TYPE_CHECKING

from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from ..dispatch.backend import TaskStore, open_backend
from ..dispatch.tasks import STATES, StoreError, TaskBusy, TaskFinished, TaskNotFound, TaskRecord
from . import pages

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIEnvironment

    from ..config import AsyncConfig

log = logging.getLogger(__name__)

#: Tasks per page.
PAGE_SIZE = 50
#: The cookie holding the session (the token) after signing in.
SESSION_COOKIE = "fc_wsgi_dashboard"

_SECURITY_HEADERS = (
    (
        "Content-Security-Policy",
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    ),
    ("X-Frame-Options", "DENY"),
    ("X-Content-Type-Options", "nosniff"),
    # same-origin, not no-referrer: under no-referrer a form POST carries "Origin: null".
    ("Referrer-Policy", "same-origin"),
    ("Cache-Control", "no-store"),
)
_STATIC = {"dashboard.js": "text/javascript", "dashboard.css": "text/css"}


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a bind address) only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class Dashboard:
    """The task page as a WSGI app over one task store per function (``{name: AsyncConfig}``).

    ``token``: required from every client when given. ``allowed_hosts``: the ``Host`` values
    accepted (empty: any), set to the loopback names of the bind by :func:`dashboard_for`.
    """

    def __init__(
        self,
        functions: Mapping[str, AsyncConfig],
        *,
        token: str | None = None,
        allowed_hosts: Iterable[str] = (),
        page_size: int = PAGE_SIZE,
    ) -> None:
        if not functions:
            raise ValueError("the dashboard needs at least one function's config")
        self._functions = dict(functions)
        self._stores: dict[str, TaskStore] = {}
        self._token = token or None
        self._allowed_hosts = frozenset(allowed_hosts)
        self._page_size = page_size
        self._secret = secrets.token_bytes(32)  # per process: the CSRF tokens' key
        self._static = {
            name: (resources.files(__package__).joinpath("static", name).read_bytes(), kind)
            for name, kind in _STATIC.items()
        }
        self._urls = Map(
            [
                Rule("/", endpoint="list", methods=["GET"]),
                Rule("/counts.json", endpoint="counts", methods=["GET"]),
                Rule("/login", endpoint="login", methods=["GET", "POST"]),
                Rule("/static/<name>", endpoint="static", methods=["GET"]),
                Rule("/favicon.ico", endpoint="favicon", methods=["GET"]),
                Rule("/tasks/<function>/<task_id>", endpoint="detail", methods=["GET"]),
                Rule("/tasks/<function>/<task_id>/retry", endpoint="retry", methods=["POST"]),
                Rule("/tasks/<function>/<task_id>/stop", endpoint="stop", methods=["POST"]),
            ]  # fmt: skip
        )

    def close(self) -> None:
        for store in self._stores.values():
            store.close()

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request = Request(environ)
        response = self._respond(request)
        response.headers.extend(_SECURITY_HEADERS)
        return response(environ, start_response)

    def _respond(self, request: Request) -> Response:
        if self._allowed_hosts and request.host not in self._allowed_hosts:
            return _page("Refused", pages.message("Refused", "Unknown Host."), 400)
        try:
            endpoint, args = self._urls.bind_to_environ(request.environ).match()
        except MethodNotAllowed as exc:
            return _page("Refused", pages.message("Refused", "Method not allowed."), exc.code)
        except HTTPException:
            return _page("Not found", pages.message("Not found", "No such page."), 404)
        if endpoint == "static":
            return self._static_file(args["name"])
        if endpoint == "favicon":  # browsers ask for it; an empty answer, not a 404
            return Response(status=204)
        if endpoint == "login":
            return self._login(request)
        if not self._signed_in(request):
            if endpoint == "list":
                return Response(status=303, headers={"Location": "/login"})
            return _page("Sign in", pages.login_form("Sign in first."), 401)
        if request.method == "POST" and not self._same_origin_post(request):
            log.warning("dashboard: refused a cross-site or token-less POST to %s", request.path)
            return _page("Refused", pages.message("Refused", "Cross-site request."), 403)
        try:
            handler = getattr(self, f"_{endpoint}")
            response: Response = handler(request, **args)
            return response
        except NotFound:
            return _page("Not found", pages.message("Not found", "No such task."), 404)
        except StoreError as exc:
            log.error("dashboard: task store: %s", exc)
            return _page("Unavailable", pages.message("Task store unavailable", str(exc)), 503)

    # -- pages --------------------------------------------------------------------------

    def _list(self, request: Request) -> Response:
        function = self._function_arg(request.args.get("function"))
        state = request.args.get("state") or None
        after = _parse_cursor(request.args.get("after", ""))
        names = [function] if function else list(self._functions)
        found: list[tuple[str, TaskRecord]] = []
        for name in names:
            store = self._store(name)
            if store is not None:
                page = store.list_tasks(limit=self._page_size + 1, state=state, after=after)
                found.extend((name, task) for task in page)
        found.sort(key=lambda item: (item[1].created, item[1].id), reverse=True)
        shown = found[: self._page_size]
        next_after = None
        if len(found) > self._page_size:
            last = shown[-1][1]
            next_after = f"{last.created!r}:{last.id}"
        main = pages.task_list(
            shown, functions=list(self._functions), function=function, state=state,
            next_after=next_after, paged=after is not None,
        )  # fmt: skip
        return _page("Tasks", pages.layout("Tasks", main, self._counts_of(names), function))

    def _counts(self, request: Request) -> Response:
        function = self._function_arg(request.args.get("function"))
        counts = self._counts_of([function] if function else list(self._functions))
        return Response(json.dumps(counts), mimetype="application/json")

    def _detail(self, request: Request, function: str, task_id: str, *, note: str = "",
                status: int = 200) -> Response:  # fmt: skip
        task = self._task(function, task_id)
        csrf = self._csrf(request)
        main = pages.task_detail(function, task, csrf=csrf, destination=self._destination(
            function, task.state))  # fmt: skip
        if note:
            main = pages.message("Not done", note) + main
        counts = self._counts_of([function])
        return _page(task.request_id, pages.layout(task.request_id, main, counts, function), status)

    def _retry(self, request: Request, function: str, task_id: str) -> Response:
        return self._act(request, function, task_id, "retry")

    def _stop(self, request: Request, function: str, task_id: str) -> Response:
        return self._act(request, function, task_id, "stop")

    def _act(self, request: Request, function: str, task_id: str, action: str) -> Response:
        store = self._store(self._function_arg(function) or "")
        if store is None:
            raise NotFound()
        try:
            task: TaskRecord = getattr(store, action)(task_id)
        except TaskNotFound:
            raise NotFound() from None
        except (TaskBusy, TaskFinished) as exc:
            return self._detail(request, function, task_id, note=str(exc), status=409)
        log.info("dashboard: %s of async task %s (%s)", action, task.id, task.state)
        location = f"/tasks/{function}/{task.id}"
        return Response(status=303, headers={"Location": location})

    def _login(self, request: Request) -> Response:
        if request.method == "GET":
            return _page("Sign in", pages.layout("Sign in", pages.login_form(), {}, None))
        if not self._same_origin_post(request, csrf=False):
            return _page("Refused", pages.message("Refused", "Cross-site request."), 403)
        given = request.form.get("token", "")
        if not self._token_matches(given):
            form = pages.login_form("Wrong token.")
            return _page("Sign in", pages.layout("Sign in", form, {}, None), 401)
        response = Response(status=303, headers={"Location": "/"})
        response.set_cookie(SESSION_COOKIE, given, httponly=True, samesite="Strict", path="/",
                            secure=request.scheme == "https")  # fmt: skip
        return response

    def _static_file(self, name: str) -> Response:
        found = self._static.get(name)
        if found is None:
            return _page("Not found", pages.message("Not found", "No such file."), 404)
        return Response(found[0], mimetype=found[1])

    # -- the stores -----------------------------------------------------------------------

    def _function_arg(self, name: str | None) -> str | None:
        if not name:
            return None
        if name not in self._functions:
            raise NotFound()
        return name

    def _store(self, function: str) -> TaskStore | None:
        """The function's store, opened once; None while its journal does not exist yet (the
        page never creates one)."""
        store = self._stores.get(function)
        if store is not None:
            return store
        config = self._functions.get(function)
        if config is None:
            return None
        if config.backend == "sqlite" and not os.path.exists(config.journal):
            return None
        store = self._stores[function] = open_backend(config)
        return store

    def _task(self, function: str, task_id: str) -> TaskRecord:
        store = self._store(self._function_arg(function) or "")
        task = None if store is None else store.get(task_id)
        if task is None:
            raise NotFound()
        return task

    def _counts_of(self, functions: Iterable[str]) -> dict[str, int]:
        totals = dict.fromkeys(STATES, 0)
        for name in functions:
            store = self._store(name)
            for state, count in ({} if store is None else store.counts()).items():
                totals[state] = totals.get(state, 0) + count
        return totals

    def _destination(self, function: str, state: str) -> str:
        """What the task's state sends where: the store keeps no delivery outcome."""
        targets = self._functions[function].destination_config
        by_state = {
            "Succeeded": targets.on_success,
            "Failed": targets.on_failure,
            "Expired": targets.on_failure,
        }
        if state not in by_state:
            return "none (sent only after success, failure or expiry)"
        chosen = by_state[state]
        if chosen is None:
            return "none configured"
        return f"{chosen.destination} (best effort; the server log says how it went)"

    # -- guards ---------------------------------------------------------------------------

    def _session(self, request: Request) -> str:
        header = request.headers.get("Authorization", "")
        if header.startswith("Bearer "):
            return header[7:]
        return request.cookies.get(SESSION_COOKIE, "")

    def _token_matches(self, given: str) -> bool:
        token = self._token
        return token is None or hmac.compare_digest(given.encode(), token.encode())

    def _signed_in(self, request: Request) -> bool:
        return self._token_matches(self._session(request))

    def _csrf(self, request: Request) -> str:
        session = self._session(request).encode()
        return hmac.new(self._secret, b"csrf:" + session, hashlib.sha256).hexdigest()

    def _same_origin_post(self, request: Request, *, csrf: bool = True) -> bool:
        """A POST from one of our own pages: same origin when the browser says, and the
        form's CSRF token."""
        origin = request.headers.get("Origin")
        if origin is not None and origin != f"{request.scheme}://{request.host}":
            return False
        if request.headers.get("Sec-Fetch-Site", "same-origin") != "same-origin":
            return False
        if not csrf:
            return True
        return hmac.compare_digest(request.form.get("csrf", "").encode(),
                                   self._csrf(request).encode())  # fmt: skip


def _page(title: str, body: str, status: int = 200) -> Response:
    if not body.startswith("<!doctype"):
        body = pages.layout(title, body, {}, None)
    return Response(body, status=status, mimetype="text/html")


def _parse_cursor(text: str) -> tuple[float, str] | None:
    created, sep, task_id = text.partition(":")
    try:
        return (float(created), task_id) if sep and task_id else None
    except ValueError:
        return None


def dashboard_for(
    functions: Mapping[str, AsyncConfig], host: str, port: int, token: str | None
) -> Dashboard:
    """The dashboard for a bind: a non-loopback ``host`` needs a token; a loopback one
    accepts only loopback ``Host`` names (no DNS rebinding)."""
    loopback = is_loopback(host)
    if not loopback and not token:
        raise ValueError(f"binding {host} (not loopback) needs a token")
    hosts: set[str] = set()
    if loopback:
        names = {f"[{host}]" if ":" in host else host, "localhost", "127.0.0.1", "[::1]"}
        hosts = {f"{name}:{port}" for name in names} | ({"localhost"} if port == 80 else set())
    return Dashboard(functions, token=token, allowed_hosts=hosts)


__all__ = ["PAGE_SIZE", "Dashboard", "dashboard_for", "is_loopback"]
