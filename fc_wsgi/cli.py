"""The ``fc-wsgi`` command line: parse argv, load the config, hand over; exit 2 on bad input."""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, NoReturn

from .config import AsyncConfig, ConfigError, TriggerConfig, describe, load_config
from .dispatch.tasks import STATES
from .factory import (
    DEFAULT_TRIGGER,
    load_app,
    make_project_app,
    make_trigger_app,
    project_triggers,
)
from .logs import LOG_FORMAT_ENV, LOG_FORMATS
from .metrics import DEFAULT_FUNCTION, FUNCTION_ENV, METRICS_EXTRA
from .project import Project, describe_project, load_project
from .runtime.layer import CONCURRENCY_WARNING

#: Exit status for usage and config errors (as argparse uses).
EXIT_USAGE = 2
_FUNCTION_HELP = "with an s.yaml: serve only this function (repeatable; service/function for fc2)"
#: Where `fc-wsgi dashboard` finds its token when --token is not given.
DASHBOARD_TOKEN_ENV = "FC_WSGI_DASHBOARD_TOKEN"
#: Where `fc-wsgi sign` finds the secret when --access-key-secret is not given.
SECRET_ENV = "ALIBABA_CLOUD_ACCESS_KEY_SECRET"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def main(argv: Sequence[str] | None = None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except ConfigError as exc:
        print(f"fc-wsgi: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # `fc-wsgi tasks list | head`: the reader left, that is fine
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _build_parser() -> _Parser:
    parser = _Parser(prog="fc-wsgi", description="FC HTTP-trigger behaviour for any WSGI app.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    serve = commands.add_parser("serve", help="serve MODULE:APP (or an s.yaml) under gunicorn")
    serve.add_argument(
        "app",
        nargs="?",
        metavar="MODULE:APP|s.yaml",
        help="the app (optional with a config's function.handler), or a Serverless Devs s.yaml",
    )
    serve.add_argument("--config", metavar="FILE", help="trigger config (JSON)")
    serve.add_argument(
        "--function", action="append", default=[], metavar="NAME", help=_FUNCTION_HELP
    )
    serve.add_argument("--bind", default="127.0.0.1:9000", metavar="HOST:PORT")
    serve.add_argument("--workers", type=_positive, default=1, metavar="N")
    serve.add_argument(
        "--threads", type=_positive, metavar="N", help="default 1; function: concurrency + spare"
    )
    serve.add_argument("--dev", action="store_true", help="werkzeug's reloading dev server")
    serve.add_argument(
        "--access-log", metavar="FILE", help="access lines with request id and FC code ('-')"
    )
    _observe_options(serve)
    serve.set_defaults(run=_serve)

    check = commands.add_parser("check", help="validate a config, print the effective settings")
    check.add_argument("file", metavar="FILE", help="trigger config (JSON) or s.yaml")
    check.set_defaults(run=_check)

    sign = commands.add_parser("sign", help="print the headers (or URL) of a signed request")
    sign.add_argument("method", metavar="METHOD")
    sign.add_argument("url", metavar="URL")
    sign.add_argument("--access-key-id", required=True, metavar="ID")
    sign.add_argument(
        "--access-key-secret",
        metavar="SECRET",
        help=f"default: ${SECRET_ENV} (keeps the secret out of the shell history)",
    )
    sign.add_argument("--security-token", default="", metavar="TOKEN", help="STS token")
    sign.add_argument("--scheme", choices=("fc", "acs3"), default="fc")
    sign.add_argument("-H", "--header", action="append", default=[], metavar="'Name: value'")
    sign.add_argument("--data", default="", metavar="BODY", help="the body (signed by acs3)")
    sign.add_argument("--expires", type=_positive, metavar="SECONDS", help="print a signed URL")
    sign.set_defaults(run=_sign)

    tasks = commands.add_parser("tasks", help="async tasks in the journal (or Redis)")
    tasks.add_argument("action", choices=("list", "show", "retry", "stop"))
    tasks.add_argument("task_id", nargs="?", metavar="ID", help="request id (show, retry, stop)")
    tasks.add_argument(
        "--config", metavar="FILE", help="trigger config naming the journal, or an s.yaml"
    )
    tasks.add_argument("--function", metavar="NAME", help="s.yaml: the function's journal")
    tasks.add_argument("--json", action="store_true", help="one JSON object per line")
    tasks.add_argument("--limit", type=_positive, default=100, metavar="N")
    tasks.add_argument("--state", choices=STATES, help="list: only tasks in this FC state")
    tasks.add_argument(
        "--since", type=_since, metavar="WHEN", help="list: created since 30m, 2h, 1d or ISO time"
    )
    tasks.set_defaults(run=_tasks)

    dashboard = commands.add_parser("dashboard", help="the async tasks in a browser")
    dashboard.add_argument(
        "--config", action="append", required=True, metavar="[NAME=]FILE",
        help="trigger config naming the task store; repeat for more functions",
    )  # fmt: skip
    dashboard.add_argument("--bind", default="127.0.0.1:9465", metavar="HOST:PORT")
    dashboard.add_argument(
        "--token", metavar="TOKEN", help=f"required off loopback (default: ${DASHBOARD_TOKEN_ENV})"
    )
    dashboard.set_defaults(run=_dashboard)

    worker = commands.add_parser("worker", help="run async tasks of the dramatiq backend")
    worker.add_argument(
        "app", nargs="?", metavar="MODULE:APP", help="optional with a config's function.handler"
    )
    worker.add_argument("--config", required=True, metavar="FILE", help="trigger config (JSON)")
    worker.add_argument("--processes", type=_positive, default=1, metavar="N")
    worker.add_argument(
        "--threads", type=_positive, metavar="N", help="per process; default: async.workers"
    )
    _observe_options(worker)
    worker.set_defaults(run=_worker)
    return parser


def _observe_options(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--metrics-bind", metavar="HOST:PORT", help="serve Prometheus metrics there (own socket)"
    )
    command.add_argument(
        "--function-label",
        metavar="NAME",
        help="the metrics' function label (default: the function's name, else 'default'; "
        "for an s.yaml, the label of the router's own answers, default the project's name)",
    )
    command.add_argument("--log-format", choices=LOG_FORMATS, help="text (default) or json")


def _observing(args: argparse.Namespace) -> str | None:
    """Pass the observe options to the processes about to start (by environment, as plain
    gunicorn gets them); prepare the metrics directory. Returns the directory to remove
    at exit, if made here."""
    if args.log_format:
        os.environ[LOG_FORMAT_ENV] = args.log_format
    if args.function_label:
        os.environ[FUNCTION_ENV] = args.function_label
    if not args.metrics_bind:
        return None
    from .metrics_server import METRICS_BIND_ENV, parse_bind, prepare_directory

    try:
        parse_bind(args.metrics_bind)
    except ValueError as exc:
        raise ConfigError(f"--metrics-bind: {exc}") from None
    # Found, not imported: prometheus_client picks its multiprocess mode when first imported,
    # which must happen after PROMETHEUS_MULTIPROC_DIR is set below.
    if importlib.util.find_spec("prometheus_client") is None:
        raise ConfigError(f"--metrics-bind: needs {METRICS_EXTRA}")
    os.environ[METRICS_BIND_ENV] = args.metrics_bind
    directory, made = prepare_directory()
    return directory if made else None


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text!r}")
    return int(text)


def _load(path: str | None) -> TriggerConfig:
    return DEFAULT_TRIGGER if path is None else load_config(path)


def _serve(args: argparse.Namespace) -> int:
    if _is_project(args.app):
        return _serve_project(args)
    if args.function:
        raise ConfigError("--function: picks functions of an s.yaml project")
    config = _load(args.config)
    if args.app is not None:
        load_app(args.app)  # fail here, with exit 2, rather than in every worker
    elif config.function is None:
        raise ConfigError("MODULE:APP: give the app, or a --config with a function section")
    host, port = _bind(args.bind)
    if args.dev:
        if args.metrics_bind:
            raise ConfigError("--metrics-bind: serve under gunicorn, not --dev")
        from werkzeug.serving import run_simple

        if config.function is not None:
            from .runtime import apply_process_environment

            apply_process_environment(config.function, config.profile)
        run_simple(host, port, make_trigger_app(args.app, config), use_reloader=True, threaded=True)
        return 0
    from .serve import TriggerServer, gunicorn_options

    options = gunicorn_options(config, **_server_options(args))
    return _run_gunicorn(args, lambda: TriggerServer(args.app, config, options))


def _server_options(args: argparse.Namespace) -> dict[str, Any]:
    return {"bind": args.bind, "workers": args.workers, "threads": args.threads,
            "accesslog": args.access_log}  # fmt: skip


def _run_gunicorn(args: argparse.Namespace, server: Callable[[], Any]) -> int:
    """Run a gunicorn application with the observe options passed on, cleaning up after."""
    made = _observing(args)
    try:
        server().run()
    finally:
        if made:
            from .metrics_server import remove_directory

            remove_directory(made)
    return 0


def _serve_project(args: argparse.Namespace) -> int:
    """``fc-wsgi serve s.yaml``: every function (or ``--function`` ones) behind one router."""
    if args.config is not None:
        raise ConfigError("--config: a project's triggers come from its s.yaml")
    project = _project(args.app, args.function)
    triggers = list(project_triggers(project).values())  # bad settings: exit 2 here
    host, port = _bind(args.bind)
    if args.dev:
        if args.metrics_bind:
            raise ConfigError("--metrics-bind: serve under gunicorn, not --dev")
        from werkzeug.serving import run_simple

        # The reloader restarts on a change of s.yaml or of any file in a code folder.
        watched = [str(project.file)] + [
            str(path)
            for function in project.served
            if function.code_dir is not None
            for path in function.code_dir.rglob("*")
            if path.is_file() and "__pycache__" not in path.parts
        ]
        app = make_project_app(project)
        run_simple(host, port, app, use_reloader=True, threaded=True, extra_files=watched,
                   reloader_type="stat")  # fmt: skip
        return 0
    from .serve import ProjectServer, project_options

    options = project_options(triggers, **_server_options(args))
    return _run_gunicorn(args, lambda: ProjectServer(project, triggers, options))


def _is_project(path: str | None) -> bool:
    return path is not None and path.endswith((".yaml", ".yml"))


def _project(path: str, functions: Sequence[str] = ()) -> Project:
    project = load_project(path)
    if functions:
        project = project.only(functions)
    if not project.served:
        raise ConfigError(f"{path}: no function to serve (an HTTP trigger and a Python runtime)")
    return project


def _bind(bind: str) -> tuple[str, int]:
    host, _, port = bind.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"--bind: expected HOST:PORT, got {bind!r}")
    return host, int(port)


def _worker(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    if config.async_.backend != "dramatiq":
        raise ConfigError(
            "async.backend: fc-wsgi worker runs the dramatiq backend's tasks; "
            "with sqlite, fc-wsgi serve runs them"
        )
    try:
        from .worker import run_worker
    except ImportError as exc:
        raise ConfigError(f"fc-wsgi worker needs pip install 'fc-wsgi[dramatiq]' ({exc})") from None
    if args.app is None and config.function is None:
        raise ConfigError("MODULE:APP: give the app, or a --config with a function section")
    made = _observing(args)
    try:
        return run_worker(
            args.app, config, args.processes, args.threads or config.async_.workers,
            metrics_bind=args.metrics_bind,
        )  # fmt: skip
    finally:
        if made:
            from .metrics_server import remove_directory

            remove_directory(made)


def _dashboard(args: argparse.Namespace) -> int:
    from werkzeug.serving import make_server

    from .dashboard.app import dashboard_for

    functions: dict[str, AsyncConfig] = {}
    for given in args.config:
        name, sep, path = given.rpartition("=")
        if _is_project(path):  # every function of the project, by its key
            project_stores = project_triggers(_project(path)).items()
            functions.update((key, trigger.async_) for key, trigger in project_stores)
            continue
        if not sep:
            many = len(args.config) > 1
            name = os.path.splitext(os.path.basename(path))[0] if many else DEFAULT_FUNCTION
        functions[name] = load_config(path).async_
    host, _, port = args.bind.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"--bind: expected HOST:PORT, got {args.bind!r}")
    try:
        token = args.token or os.environ.get(DASHBOARD_TOKEN_ENV)
        app = dashboard_for(functions, host.strip("[]"), int(port), token)
    except ValueError as exc:
        raise ConfigError(f"--bind: {exc}: give --token or ${DASHBOARD_TOKEN_ENV}") from None
    server = make_server(host.strip("[]"), int(port), app, threaded=True)
    print(f"fc-wsgi dashboard on http://{args.bind}/ ({', '.join(functions)})", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        app.close()
    return 0


def _check(args: argparse.Namespace) -> int:
    if _is_project(args.file):
        project = _project(args.file)
        project_triggers(project)  # every function's trigger and function settings, checked
        for name, value in describe_project(project):
            print(f"{name}: {value}")
        return 0
    config = load_config(args.file)
    for name, value in describe(config):
        print(f"{name}: {value}")
    if config.function is not None:
        function = config.function
        instances = function.max_instances or "the workers"
        print(f"function cap: {instances} x {function.instance_concurrency} concurrent invocations")
        if function.instance_concurrency > 1:
            print(f"warning: {CONCURRENCY_WARNING}")
    return 0


def _sign(args: argparse.Namespace) -> int:
    from .auth.signing import sign_headers, sign_url

    secret = args.access_key_secret or os.environ.get(SECRET_ENV, "")
    if not secret:
        raise ConfigError(f"--access-key-secret: give it, or set ${SECRET_ENV}")
    headers = []
    for line in args.header:
        name, sep, value = line.partition(":")
        if not sep or not name.strip():
            raise ConfigError(f"-H: expected 'Name: value', got {line!r}")
        headers.append((name.strip(), value.strip()))
    keys = {"access_key_id": args.access_key_id, "access_key_secret": secret}
    if args.expires is not None:
        if args.scheme != "fc":
            raise ConfigError("--expires: signed URLs use the fc scheme")
        expires = int(time.time()) + args.expires
        print(sign_url(args.method, args.url, expires=expires, headers=headers,
                       security_token=args.security_token, **keys))  # fmt: skip
        return 0
    signed = sign_headers(
        args.method, args.url, headers=headers, body=args.data.encode(), scheme=args.scheme,
        security_token=args.security_token, **keys,
    )  # fmt: skip
    for name, value in signed:
        print(f"{name}: {value}")
    return 0


def _tasks(args: argparse.Namespace) -> int:
    if args.action != "list" and not args.task_id:
        raise ConfigError(f"tasks {args.action}: give the task's request id")
    async_ = _async_config(args.config, args.function)
    path = async_.journal
    counts: dict[str, int] = {}
    if async_.backend != "sqlite" or os.path.exists(path):
        records, counts = _task_records(async_, args)
    elif args.action == "list":  # no async request yet: say so, create nothing
        records = []
    else:
        raise ConfigError(f"no async task {args.task_id!r}: no journal at {path}")
    if args.json:
        for record in records:
            print(json.dumps(record.as_dict()))
    elif args.action == "show":
        for key, value in records[0].as_dict().items():
            print(f"{key}: {_shown(key, value)}")
    else:
        _print_table(records)
        if args.action == "list":
            _print_counts(counts)
    return 0


def _async_config(path: str | None, function: str | None) -> AsyncConfig:
    """The async settings of a trigger config, or of one function of an s.yaml project."""
    if path is None or not _is_project(path):
        if function is not None:
            raise ConfigError("--function: picks a function of an s.yaml project")
        return _load(path).async_
    project = _project(path)
    keys = [f.key for f in project.served]
    if function is None and len(keys) != 1:
        raise ConfigError(f"--function: which function's tasks? one of {', '.join(keys)}")
    only = project.only([function]) if function is not None else project
    return next(iter(project_triggers(only).values())).async_


def _task_records(
    config: AsyncConfig, args: argparse.Namespace
) -> tuple[list[Any], dict[str, int]]:
    """The records the action shows and, for a table of tasks, the counts per state."""
    from .dispatch.backend import describe_backend, open_backend
    from .dispatch.tasks import StoreError

    with open_backend(config) as store:
        try:
            if args.action == "list":
                records = store.list_tasks(limit=args.limit, state=args.state, since=args.since)
                return records, {} if args.json else store.counts()
            if args.action in ("retry", "stop"):
                return [getattr(store, args.action)(args.task_id)], {}
            record = store.get(args.task_id)
        except StoreError as exc:
            raise ConfigError(f"tasks {args.action}: {exc}") from None
    if record is None:
        raise ConfigError(f"no async task {args.task_id!r} in {describe_backend(config)}")
    return [record], {}


def _since(text: str) -> float:
    """``--since``: a duration back from now (``90s``, ``30m``, ``2h``, ``1d``) or an ISO 8601
    time (local time unless it names its zone), as wall-clock seconds."""
    unit = _SINCE_UNITS.get(text[-1:])
    if unit is not None and text[:-1].isdigit():
        return time.time() - int(text[:-1]) * unit
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected 30m, 2h, 1d or an ISO time such as 2026-01-31T12:00, got {text!r}"
        ) from None


_SINCE_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _print_counts(counts: dict[str, int]) -> None:
    shown = [f"{state} {n}" for state, n in counts.items() if n]
    print(f"{sum(counts.values())} tasks in all: " + (", ".join(shown) or "none"))


_COLUMNS = ("ID", "STATE", "ATTEMPTS", "CREATED", "UPDATED", "LAST ERROR")


def _print_table(records: Sequence[Any]) -> None:
    rows = [_COLUMNS] + [
        (r.id, r.state, str(r.attempts), _when(r.created), _when(r.updated), r.last_error or "")
        for r in records
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(_COLUMNS) - 1)]
    for row in rows:
        cells = (cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=True))
        print("  ".join(cells), row[-1])


def _when(stamp: float | None) -> str:
    if stamp is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stamp))


def _shown(key: str, value: Any) -> str:
    if isinstance(value, float) and key in _TIME_FIELDS:
        return _when(value)
    return "-" if value is None else str(value)


_TIME_FIELDS = frozenset({"created", "enqueued", "updated", "due", "started", "ended",
                          "lease_expiry"})  # fmt: skip
