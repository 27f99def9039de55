"""The ``fc-wsgi`` command line: parse argv, load the config, hand over; exit 2 on bad input."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import NoReturn

from .config import ConfigError, TriggerConfig, describe, load_config
from .factory import DEFAULT_TRIGGER, load_app, make_trigger_app

#: Exit status for usage and config errors (as argparse uses).
EXIT_USAGE = 2


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


def _build_parser() -> _Parser:
    parser = _Parser(prog="fc-wsgi", description="FC HTTP-trigger behaviour for any WSGI app.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    serve = commands.add_parser("serve", help="serve MODULE:APP under gunicorn")
    serve.add_argument("app", metavar="MODULE:APP")
    serve.add_argument("--config", metavar="FILE", help="trigger config (JSON)")
    serve.add_argument("--bind", default="127.0.0.1:9000", metavar="HOST:PORT")
    serve.add_argument("--workers", type=_positive, default=1, metavar="N")
    serve.add_argument("--threads", type=_positive, default=1, metavar="N")
    serve.add_argument("--dev", action="store_true", help="werkzeug's reloading dev server")
    serve.set_defaults(run=_serve)

    check = commands.add_parser("check", help="validate a config, print the effective settings")
    check.add_argument("file", metavar="FILE")
    check.set_defaults(run=_check)
    return parser


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text!r}")
    return int(text)


def _load(path: str | None) -> TriggerConfig:
    return DEFAULT_TRIGGER if path is None else load_config(path)


def _serve(args: argparse.Namespace) -> int:
    config = _load(args.config)
    load_app(args.app)  # fail here, with exit 2, rather than in every worker
    host, _, port = args.bind.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"--bind: expected HOST:PORT, got {args.bind!r}")
    if args.dev:
        from werkzeug.serving import run_simple

        run_simple(
            host, int(port), make_trigger_app(args.app, config), use_reloader=True, threaded=True
        )
        return 0
    from .serve import TriggerServer, gunicorn_options

    options = gunicorn_options(config, bind=args.bind, workers=args.workers, threads=args.threads)
    TriggerServer(args.app, config, options).run()
    return 0


def _check(args: argparse.Namespace) -> int:
    config = load_config(args.file)
    for name, value in describe(config):
        print(f"{name}: {value}")
    preflight = (
        "passed to the app"
        if config.cors.mode == "fc" and "OPTIONS" in config.methods
        else "answered by fc-wsgi"
        if config.cors.mode != "off"
        else "passed to the app (CORS off)"
    )
    print(f"preflight: {preflight}")
    return 0
