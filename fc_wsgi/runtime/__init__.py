"""FC's Python function runtime: run an FC 2.0 WSGI handler unchanged (fc-spec-runtime.md 14-17).

``make_trigger_app`` adds :class:`FunctionRuntime` when the config has a ``function`` section;
:func:`function_app` turns that section into the innermost app (the handler from the code root,
or the app given), and :func:`apply_process_environment` is the single-function server's one
write into ``os.environ``.

Several functions in one process (a project server) use the same pieces:

- one stack per function: ``make_trigger_app(None, {...trigger fields..., "function": {...,
  "codeUri": "/absolute/code/root"}})``; each stack merges only its own function's variables
  into the environ of its requests, so functions never see each other's;
- do not call :func:`apply_process_environment` (``os.environ`` is shared by all of them);
- a router that rewrites the path sets ``environ["fc.request_uri"]`` first; it is kept;
- under gunicorn, call ``slots.share_slots(function_name, capacity, rows)`` in the master
  before it forks (one per function, unique names) and install serve.py's ``pre_fork``,
  ``post_worker_init`` and ``child_exit`` hooks, so each function's cap spans the workers;
  without it each process caps each function at ``maxInstances`` x ``instanceConcurrency``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .context import FCContext
from .environment import apply_process_environment
from .handler import HandlerLoadError, load_handler
from .layer import FunctionHandler, FunctionRuntime
from .timeout import FunctionTimeout

if TYPE_CHECKING:
    from wsgiref.types import WSGIApplication

    from ..function_config import FunctionConfig

__all__ = [
    "FCContext",
    "FunctionHandler",
    "FunctionRuntime",
    "FunctionTimeout",
    "apply_process_environment",
    "function_app",
    "load_handler",
]


def function_app(app: WSGIApplication | None, function: FunctionConfig) -> WSGIApplication:
    """The innermost app of a function stack: ``app``, or the handler loaded from the code
    root. A handler that cannot be loaded answers FC's load error on every call (14.1)."""
    handler: Any = app
    if handler is None:
        try:
            handler = load_handler(function.handler, function.code_uri)
        except HandlerLoadError as exc:
            handler = _failing(exc)
    return FunctionHandler(handler, function.handler)


def _failing(error: HandlerLoadError) -> Any:
    def handler(environ: Any, start_response: Any) -> Any:
        raise type(error)(*error.args)  # a fresh one: tracebacks must not pile up

    return handler
