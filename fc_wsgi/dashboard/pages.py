"""The task page's HTML: small templates filled with :func:`html.escape`d values, nothing else.

Every value that came from a request or a store (paths, errors, headers, bodies) goes through
:func:`_e`; credentials never reach the page at all: headers and query parameters named like
one (:func:`fc_wsgi.common.is_secret_name`) are masked before rendering. No inline script and
no inline style, so the Content-Security-Policy can forbid both.
"""

from __future__ import annotations

import html
import time
from collections.abc import Iterable, Mapping, Sequence
from urllib.parse import parse_qsl, urlencode

from ..common import MASK, is_secret_name
from ..dispatch.tasks import FINISHED_STATES, PENDING_STATES, RUNNING, STATES, TaskRecord

#: Bytes of a stored body shown on a task's page.
BODY_PREVIEW_BYTES = 2048
#: What StopAsyncTask accepts: waiting tasks, and a running one (then Stopping).
STOPPABLE_STATES = (*PENDING_STATES, RUNNING)

_LAYOUT = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · fc-wsgi tasks</title>
<link rel="stylesheet" href="/static/dashboard.css">
<script src="/static/dashboard.js" defer></script>
</head><body>
<header><a class="home" href="/">fc-wsgi tasks</a>{counts}</header>
<main>{main}</main>
</body></html>
"""


def _e(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def when(stamp: float | None) -> str:
    """A wall-clock time as UTC, to the second."""
    if stamp is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(stamp)) + "Z"


def layout(title: str, main: str, counts: Mapping[str, int], function: str | None) -> str:
    return _LAYOUT.format(title=_e(title), main=main, counts=counts_bar(counts, function))


def counts_bar(counts: Mapping[str, int], function: str | None) -> str:
    """Tasks per state, each a link to the list filtered by it; refreshed by the script."""
    query = {"function": function} if function else {}
    cells = "".join(
        f'<a class="count state-{_e(state.lower())}"'
        f' href="/?{_e(urlencode({**query, "state": state}))}">'
        f'{_e(state)} <b data-count="{_e(state)}">{counts.get(state, 0)}</b></a>'
        for state in STATES
    )
    source = "/counts.json" + (f"?{_e(urlencode(query))}" if query else "")
    return f'<nav id="counts" data-source="{source}">{cells}</nav>'


def task_list(
    tasks: Sequence[tuple[str, TaskRecord]],
    *,
    functions: Sequence[str],
    function: str | None,
    state: str | None,
    next_after: str | None,
    paged: bool,
) -> str:
    """The filter form, the table of tasks, and the keyset page links."""
    function_options = _options(["", *functions], function or "", all_label="all functions")
    state_options = _options(["", *STATES], state or "", all_label="all states")
    form = (
        '<form class="filters" method="get" action="/">'
        f'<label>Function <select name="function">{function_options}</select></label>'
        f'<label>State <select name="state">{state_options}</select></label>'
        '<button type="submit">Filter</button></form>'
    )
    rows = "".join(_row(name, task) for name, task in tasks)
    if not rows:
        rows = '<tr><td colspan="8" class="empty">No tasks.</td></tr>'
    table = (
        '<table id="tasks"><thead><tr><th>Request id</th><th>Function</th><th>State</th>'
        "<th>Attempts</th><th>Created</th><th>Updated</th><th>Request</th><th>Last error</th>"
        f"</tr></thead><tbody>{rows}</tbody></table>"
    )
    query = {k: v for k, v in (("function", function), ("state", state)) if v}
    links = []
    if paged:
        links.append(f'<a href="/?{_e(urlencode(query))}">« newest</a>')
    if next_after:
        links.append(
            f'<a id="next" href="/?{_e(urlencode({**query, "after": next_after}))}">older »</a>'
        )
    return form + table + f'<p class="pages">{" ".join(links)}</p>'


def _row(function: str, task: TaskRecord) -> str:
    href = f"/tasks/{_e(function)}/{_e(task.id)}"
    return (
        f'<tr data-task="{_e(task.id)}"><td><a href="{href}">{_e(task.request_id)}</a></td>'
        f"<td>{_e(function)}</td>"
        f'<td><span class="state state-{_e(task.state.lower())}">{_e(task.state)}</span></td>'
        f"<td>{task.attempts}</td><td>{when(task.created)}</td><td>{when(task.updated)}</td>"
        f"<td>{_e(task.method)} {_e(task.path)}</td>"
        f'<td class="error">{_e((task.last_error or "")[:160])}</td></tr>'
    )


def _options(values: Iterable[str], chosen: str, *, all_label: str) -> str:
    return "".join(
        f'<option value="{_e(v)}"{" selected" if v == chosen else ""}>{_e(v or all_label)}</option>'
        for v in values
    )


def task_detail(function: str, task: TaskRecord, *, csrf: str, destination: str) -> str:
    """One task: its record, its request (secrets masked, body previewed), and the buttons."""
    request = task.request
    environ = dict(request.environ) if request is not None else {}
    query = _masked_query(environ.get("QUERY_STRING", ""))
    line = f"{task.method} {task.path}{'?' + query if query else ''}"
    facts = [
        ("Function", function),
        ("Task id", task.id),
        ("Request id", task.request_id),
        ("State", task.state),
        ("Attempts", task.attempts),
        ("Created", when(task.created)),
        ("Enqueued", when(task.enqueued)),
        ("Due", when(task.due)),
        ("Started", when(task.started)),
        ("Ended", when(task.ended)),
        ("Updated", when(task.updated)),
        ("Last status", task.status if task.status is not None else "-"),
        ("Last error", task.last_error or "-"),
        ("Lease", f"{task.lease_owner} until {when(task.lease_expiry)}" if task.lease_owner
         else "-"),
        ("Destination", destination),
    ]  # fmt: skip
    rows = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in facts)
    headers = "".join(
        f"<tr><th>{_e(name)}</th><td>{_e(value)}</td></tr>" for name, value in _headers(environ)
    )
    body = request.body if request is not None else b""
    actions = _actions(function, task, csrf)
    return (
        f"<h1>Task <code>{_e(task.request_id)}</code> "
        f'<span id="state" class="state state-{_e(task.state.lower())}">{_e(task.state)}</span>'
        f"</h1>{actions}"
        f'<table class="facts">{rows}</table>'
        f'<h2>Request</h2><pre id="request-line">{_e(line)}</pre>'
        f'<table class="headers">{headers}</table>'
        f'<h2>Body ({len(body)} bytes)</h2><pre id="body">{_e(_preview(body))}</pre>'
    )


def _actions(function: str, task: TaskRecord, csrf: str) -> str:
    """Retry (a finished task) and stop (a waiting or running one): POST forms with the token."""
    base = f"/tasks/{_e(function)}/{_e(task.id)}"
    hidden = f'<input type="hidden" name="csrf" value="{_e(csrf)}">'
    buttons = []
    if task.state in FINISHED_STATES:
        buttons.append(
            f'<form method="post" action="{base}/retry">{hidden}'
            '<button id="retry" type="submit">Retry</button></form>'
        )
    if task.state in STOPPABLE_STATES:
        buttons.append(
            f'<form method="post" action="{base}/stop">{hidden}'
            '<button id="stop" type="submit" class="danger">Stop</button></form>'
        )
    return f'<div class="actions">{"".join(buttons)}</div>'


def _headers(environ: Mapping[str, str]) -> list[tuple[str, str]]:
    """The stored request's headers by their HTTP names, credentials masked."""
    found = []
    for key in sorted(environ):
        if key.startswith("HTTP_"):
            name = key[5:].replace("_", "-").title()
        elif key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            name = key.replace("_", "-").title()
        else:
            continue
        found.append((name, MASK if is_secret_name(name) else environ[key]))
    return found


def _masked_query(query: str) -> str:
    pairs = parse_qsl(query, keep_blank_values=True)
    return urlencode([(k, MASK if is_secret_name(k) else v) for k, v in pairs])


def _preview(body: bytes) -> str:
    head = body[:BODY_PREVIEW_BYTES]
    more = f"\n… {len(body) - len(head)} more bytes" if len(body) > len(head) else ""
    try:
        return head.decode("utf-8") + more
    except UnicodeDecodeError:
        return head.hex(" ", 1) + more


def message(title: str, text: str) -> str:
    return f'<h1>{_e(title)}</h1><p class="message" id="message">{_e(text)}</p>'


def login_form(error: str = "") -> str:
    problem = f'<p class="message">{_e(error)}</p>' if error else ""
    return (
        f"<h1>Sign in</h1>{problem}"
        '<form method="post" action="/login">'
        '<label>Dashboard token <input type="password" name="token" autocomplete="off"></label>'
        '<button type="submit">Sign in</button></form>'
    )
