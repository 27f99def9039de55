"""``python -m benchmarks``: what fc-wsgi costs under real gunicorn + wrk, next to the bare app.

DESIGN.md's performance budget compares stacks "on the same machine in the same run", and the
machines we have are shared and noisy. So every server runs at once, the benchmarks take turns
over several rounds (a slow minute hurts all of them, not one), and the table shows medians;
the paired ratio is the median of the per-round ratios to its baseline, shown next to the ratio
of the medians (far apart: a noisy run). Every table is measured under one sync worker, where
the app is cheapest and fc-wsgi's share the largest, and under gthread. A baseline is the bare app
served the *same* request (a 800-byte bearer token costs gunicorn's parser as much under the
bare app as under ours), so a ratio measures fc-wsgi, not the request. Server CPU time per
request (read from /proc for the server's process group) is shown too: it is less disturbed
than req/s by what else the machine runs.

A number is only worth printing if the stack did its job: wrk's Lua ``response()`` hook counts
every status (``report.lua``), and a run whose answers were not all the expected status (202
for async, 200 for a request that really authenticated) is refused, not reported. ``--tamper``
breaks the signature and the token to show that refusal.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import platform
import re
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from benchmarks.apps import FUNCTION_SECTION

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
#: Seconds a server gets to answer its first request after it is started.
READY_SECONDS = 30
#: Seconds the async stack gets to run the tasks a wrk run left in its journal.
DRAIN_SECONDS = 300
ACCESS_KEY_ID = "bench-key"
METHODS = ["GET", "POST"]
WRK_HINT = (
    "wrk not found: install it with `apt-get install wrk` (Debian/Ubuntu), "
    "`brew install wrk` (macOS), or build https://github.com/wg/wrk"
)
FLASK_HINT = "the Flask stacks need flask and flask-cors: .venv/bin/pip install flask flask-cors"
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


class BenchError(Exception):
    """A run that cannot be reported: a server that did not start, a wrong answer."""


@dataclass(frozen=True)
class App:
    """One gunicorn server: an app, wrapped by make_trigger_app when it has a trigger config."""

    name: str
    ref: str
    config: dict[str, Any] | None = None
    #: Prometheus metrics on (README "Observe"): a multiprocess directory and an endpoint.
    metrics: bool = False
    #: The checkout whose fc_wsgi the server imports (``--compare-tree``: an older one).
    root: Path = ROOT


@dataclass(frozen=True)
class Bench:
    """One row: a request (Lua script) sent to a server, and the status every answer needs."""

    name: str
    server: str
    script: str
    status: int = 200
    baseline: str | None = None
    note: str = ""
    headers: str = ""  # FCBENCH_HEADERS: extra request headers, "Name: value" per line


@dataclass
class Credentials:
    """An AccessKey pair and an RS256 key, minted for this run only."""

    secret: str
    token: str
    jwk: dict[str, Any]
    tamper: bool = False

    def env_for(self, script: str, port: int) -> dict[str, str]:
        if script == "signed.lua":
            return self.signature_env(port)
        if script == "acs3.lua":
            return self.acs3_env(port)
        if script == "jwt.lua":
            return self.token_env()
        return {}

    def signature_env(self, port: int) -> dict[str, str]:
        """FC's legacy signature over Date, made now so it is valid for the next 15 minutes."""
        headers = self._signed(port, "fc")
        return {"FCBENCH_DATE": headers["Date"], "FCBENCH_AUTHORIZATION": headers["Authorization"]}

    def acs3_env(self, port: int) -> dict[str, str]:
        """ACS3-HMAC-SHA256 over host and x-acs-date, made now (valid for 15 minutes)."""
        headers = self._signed(port, "acs3")
        return {
            "FCBENCH_HOST": headers["host"],
            "FCBENCH_ACS_DATE": headers["x-acs-date"],
            "FCBENCH_ACS_CONTENT_SHA256": headers["x-acs-content-sha256"],
            "FCBENCH_AUTHORIZATION": headers["Authorization"],
        }

    def _signed(self, port: int, scheme: Literal["fc", "acs3"]) -> dict[str, str]:
        from fc_wsgi.auth.signing import sign_headers

        headers = dict(
            sign_headers(
                "GET",
                f"http://127.0.0.1:{port}/",
                access_key_id=ACCESS_KEY_ID,
                access_key_secret=self.secret,
                scheme=scheme,
            )
        )
        if self.tamper:  # same length, one character of the signature changed
            authorization = headers["Authorization"]
            last = "a" if authorization[-2] not in "aA" else "b"
            headers["Authorization"] = authorization[:-2] + last + authorization[-1]
        return headers

    def token_env(self) -> dict[str, str]:
        token = self.token
        if self.tamper:  # a well-formed token whose signature does not match
            head, body, sig = token.split(".")
            token = f"{head}.{body}.{'A' if sig[0] != 'A' else 'B'}{sig[1:]}"
        return {"FCBENCH_TOKEN": token}


def mint_credentials(tamper: bool = False) -> Credentials:
    """A fresh AccessKey secret and an RS256 key pair with a token valid for six hours."""
    import secrets

    import jwt
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    jwk.update(kid="bench", alg="RS256", use="sig")
    now = int(time.time())
    claims = {"sub": "bench-user", "iat": now, "exp": now + 6 * 3600}
    token = jwt.encode(claims, key, algorithm="RS256", headers={"kid": "bench"})
    return Credentials(secrets.token_urlsafe(24), token, jwk, tamper)


def build_apps(creds: Credentials) -> list[App]:
    bare = "benchmarks.apps:bare"
    auth_config = {
        "jwks": {"keys": [creds.jwk]},
        "tokenLookup": "header:Authorization:Bearer",
        "claimPassBy": "header:sub:X-Jwt-Sub",
        "algorithms": ["RS256"],
    }
    keys = [{"id": ACCESS_KEY_ID, "secret": creds.secret}]
    return [
        App("bare", bare),
        App("fc headers", "benchmarks.apps:fc_headers"),
        App("anonymous", bare, {"authType": "anonymous", "methods": METHODS}),
        App(
            "anonymous+function",
            bare,
            {"authType": "anonymous", "methods": METHODS, "function": FUNCTION_SECTION},
        ),
        App("anonymous metrics", bare, {"authType": "anonymous", "methods": METHODS}, True),
        App(
            "anonymous delayed",
            bare,
            {"authType": "anonymous", "methods": METHODS, "async": {"maxQueuedTasks": 10**9}},
        ),
        App(
            "anonymous process",
            bare,
            {"authType": "anonymous", "methods": METHODS, "async": {"durability": "process"}},
        ),
        App("function", bare, {"authType": "function", "methods": METHODS, "accessKeys": keys}),
        App("jwt", bare, {"authType": "jwt", "methods": METHODS, "authConfig": auth_config}),
        App("flask", "benchmarks.apps:flask_bare()"),
        App("flask peer", "benchmarks.apps:flask_peer()"),
    ]


#: Every row of the main table; a ratio is taken against the row named as baseline.
BENCHES = [
    Bench("bare (get.lua)", "bare", "get.lua", note="the WSGI function alone"),
    Bench("bare (cors.lua)", "bare", "cors.lua"),
    Bench(
        "FC's headers only",
        "fc headers",
        "cors.lua",
        200,
        "bare (cors.lua)",
        note="the floor: the bare app answering FC's five headers itself",
    ),
    Bench("anonymous+CORS", "anonymous", "cors.lua", 200, "bare (cors.lua)", note="full"),
    Bench(
        "anonymous+function",
        "anonymous+function",
        "cors.lua",
        200,
        "bare (cors.lua)",
        note="+ FunctionRuntime",
    ),  # fmt: skip
    Bench(
        "anonymous+metrics",
        "anonymous metrics",
        "cors.lua",
        200,
        "bare (cors.lua)",
        note="Prometheus, multiprocess",
    ),  # fmt: skip
    Bench("bare (post.lua)", "bare", "post.lua", note="1 KiB body"),
    Bench("anonymous POST", "anonymous", "post.lua", 200, "bare (post.lua)"),
    Bench("bare (signed.lua)", "bare", "signed.lua"),
    Bench("signature", "function", "signed.lua", 200, "bare (signed.lua)", note="FC ak:sig"),
    Bench("bare (acs3.lua)", "bare", "acs3.lua"),
    Bench("acs3", "function", "acs3.lua", 200, "bare (acs3.lua)", note="ACS3-HMAC-SHA256"),
    Bench("bare (jwt.lua)", "bare", "jwt.lua"),
    Bench("jwt", "jwt", "jwt.lua", 200, "bare (jwt.lua)", note="token cache hit"),
    Bench("bare (async.lua)", "bare", "async.lua", note="no dispatcher: runs it, 200"),
    Bench("anonymous hello", "anonymous", "hello.lua", 200, note="async.lua's request, sync"),
    Bench("async accept", "anonymous", "async.lua", 202, "anonymous hello", "durability fsync"),
    Bench(
        "async accept process",
        "anonymous process",
        "async.lua",
        202,
        "anonymous hello",
        "durability process",
    ),  # fmt: skip
    Bench(
        "async accept only",
        "anonymous delayed",
        "async.lua",
        202,
        "anonymous hello",
        "fsync; delayed 3600 s: no task runs",
        headers="x-fc-async-delay: 3600",
    ),  # fmt: skip
    Bench("flask", "flask", "jwt.lua", 200, "bare (jwt.lua)", note="token ignored"),
    Bench("flask peer", "flask peer", "jwt.lua", 200, "flask", note="flask-cors + PyJWT"),
]


# -- servers ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Shape:
    """How gunicorn runs: worker processes, and threads per worker (gthread unless sync)."""

    workers: int = 1
    threads: int = 1
    gthread: bool = True

    def __str__(self) -> str:
        kind = f"gthread x{self.threads}" if self.gthread else "sync"
        return f"{self.workers} worker{'s' if self.workers > 1 else ''}, {kind}"


@dataclass
class Server:
    app: App
    process: subprocess.Popen[bytes]
    port: int
    log: Path
    journal: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def log_tail(self, lines: int = 15) -> str:
        """The end of the server's output, ready to append to a message (empty: nothing)."""
        text = self.log.read_text(errors="replace").splitlines()
        tail = "\n".join(text[-lines:])
        return f"\nserver log:\n{tail}" if tail else ""

    def cpu_seconds(self) -> float | None:
        """User + system CPU of every live process in the server's group (Linux /proc)."""
        pgid = self.process.pid
        ticks = 0
        try:
            pids = [p for p in os.listdir("/proc") if p.isdigit()]
        except OSError:
            return None
        for pid in pids:
            try:
                with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as file:
                    fields = file.read().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if int(fields[2]) == pgid:  # fields[2] is pgrp; 11 and 12 are utime and stime
                ticks += int(fields[11]) + int(fields[12])
        return ticks / _CLOCK_TICKS


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(app: App, shape: Shape, folder: Path, creds: Credentials) -> Server:
    """Plain gunicorn on a free loopback port, in its own session, with FC's limit options."""
    port = free_port()
    slug = app.name.replace(" ", "-")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    ref = app.ref
    journal = None
    if app.config is not None:
        journal = folder / f"{slug}.sqlite3"
        path = folder / f"{slug}.json"
        async_ = {**app.config.get("async", {}), "journal": str(journal)}
        path.write_text(json.dumps({**app.config, "async": async_}))
        env.update(FC_WSGI_APP=ref, FC_WSGI_CONFIG=str(path))
        ref = "benchmarks.apps:trigger_from_env_logging_commits()"
    if app.metrics:
        metrics_dir = folder / f"{slug}-metrics"
        shutil.rmtree(metrics_dir, ignore_errors=True)
        metrics_dir.mkdir()
        env.update(PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
                   FC_WSGI_METRICS_BIND=f"127.0.0.1:{free_port()}")  # fmt: skip
    if app.name == "flask peer":
        jwk_path = folder / "public.jwk"
        jwk_path.write_text(json.dumps(creds.jwk))
        env["FCBENCH_JWT_PUBLIC_JWK"] = str(jwk_path)
    argv = [
        sys.executable, "-m", "gunicorn",
        "--no-control-socket",
        "-c", "python:fc_wsgi.serve",  # post_worker_init/worker_exit: the async scheduler
        "--bind", f"127.0.0.1:{port}",
        "--workers", str(shape.workers),
        "--limit-request-line", "8190",
        "--limit-request-field_size", "17408",
        "--limit-request-fields", "1000",
        "--log-level", "warning",
    ]  # fmt: skip
    if shape.gthread:
        argv += ["--worker-class", "gthread", "--threads", str(shape.threads)]
    argv.append(ref)
    log = folder / f"{slug}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            argv,
            cwd=app.root,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    server = Server(app, process, port, log, journal)
    try:
        wait_ready(server)
    except BaseException:
        stop_server(server)
        raise
    return server


def wait_ready(server: Server) -> None:
    """Until a worker answers: gunicorn's master listens before its workers have booted."""
    deadline = time.monotonic() + READY_SECONDS
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise BenchError(f"{server.app.name}: server exited early{server.log_tail()}")
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
        try:
            connection.request("GET", "/")
            connection.getresponse().read()  # any status: 401 from an auth stack is fine
            return
        except OSError:
            time.sleep(0.05)
        finally:
            connection.close()
    raise BenchError(f"{server.app.name}: not ready in {READY_SECONDS} s{server.log_tail()}")


def stop_server(server: Server) -> None:
    """SIGTERM the server's process group (master and workers), SIGKILL it if it lingers."""
    if server.process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.process.pid, signal.SIGTERM)
    try:
        server.process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.process.pid, signal.SIGKILL)
        server.process.wait()


@contextlib.contextmanager
def running(
    apps: Sequence[App], shape: Shape, folder: Path, creds: Credentials
) -> Iterator[dict[str, Server]]:
    servers: dict[str, Server] = {}
    try:
        for app in apps:
            servers[app.name] = start_server(app, shape, folder, creds)
        yield servers
    finally:
        for server in servers.values():
            stop_server(server)


# -- wrk --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    cpu_us: float | None  # server CPU per request


@dataclass(frozen=True)
class Load:
    """What wrk runs: seconds, connections, threads."""

    seconds: float
    connections: int
    threads: int = 1


def run_wrk(bench: Bench, server: Server, load: Load, creds: Credentials) -> Sample:
    """One wrk run; raises :class:`BenchError` unless every answer had the expected status."""
    env = dict(os.environ)
    env.update(creds.env_for(bench.script, server.port))  # a Date signed now: valid 15 min
    env["FCBENCH_HEADERS"] = bench.headers
    argv = [
        "wrk",
        "-t", str(load.threads),
        "-c", str(load.connections),
        "-d", f"{load.seconds:g}s",
        "-s", str(HERE / bench.script),
        server.url,
    ]  # fmt: skip
    cpu_before = server.cpu_seconds()
    done = subprocess.run(
        argv, env=env, capture_output=True, text=True, timeout=load.seconds + 60, check=False
    )
    cpu_after = server.cpu_seconds()
    line = next((x for x in done.stdout.splitlines() if x.startswith("FCBENCH ")), None)
    if done.returncode != 0 or line is None:
        output = f"{done.stdout}{done.stderr}{server.log_tail()}"
        raise BenchError(f"{bench.name}: wrk failed ({done.returncode}):\n{output}")
    report = json.loads(line[len("FCBENCH ") :])
    statuses = {int(k): v for k, v in report["statuses"].items()}
    errors = {k: v for k, v in report["errors"].items() if v}
    requests = report["requests"]
    wrong = {s: n for s, n in statuses.items() if s != bench.status}
    if wrong or errors or requests == 0 or sum(statuses.values()) != requests:
        raise Refused(
            f"{bench.name}: expected every answer to be {bench.status}, got statuses "
            f"{statuses} over {requests} requests, socket/status errors {errors or 'none'}"
            f"{server.log_tail()}"
        )
    cpu_us = None
    if cpu_before is not None and cpu_after is not None:
        cpu_us = (cpu_after - cpu_before) / requests * 1e6
    return Sample(
        rps=requests / (report["duration_us"] / 1e6),
        p50_ms=report["p50_us"] / 1000,
        p99_ms=report["p99_us"] / 1000,
        requests=requests,
        cpu_us=cpu_us,
    )


def drain_journal(server: Server) -> None:
    """Wait until the server has run the async tasks it accepted and that are due, so that they
    do not eat the CPU of the next run (delayed ones stay: they would run after the benchmark)."""
    if server.journal is None or not server.journal.exists():
        return
    from fc_wsgi.dispatch.tasks import ACTIVE_STATES, PENDING_STATES

    states = (*PENDING_STATES, *ACTIVE_STATES)
    query = (
        f"SELECT COUNT(*) FROM tasks WHERE state IN ({','.join('?' * len(states))})"
        " AND (due <= ? OR lease_owner IS NOT NULL)"
    )
    deadline = time.monotonic() + DRAIN_SECONDS
    uri = f"file:{server.journal}?mode=ro"
    while time.monotonic() < deadline:
        try:
            with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=5)) as conn:
                (left,) = conn.execute(query, (*states, time.time() + 60)).fetchone()
        except sqlite3.OperationalError:
            left = -1  # busy, or no table yet: ask again
        if left == 0:
            return
        time.sleep(0.2)
    raise BenchError(f"{server.app.name}: async journal not drained in {DRAIN_SECONDS} s")


class Refused(BenchError):
    """A run whose answers were not all the expected status: its benchmark is not reported."""


def measure(
    benches: Sequence[Bench],
    servers: dict[str, Server],
    rounds: int,
    load: Load,
    warmup: Load,
    creds: Credentials,
    progress: Callable[[str], None],
    refused: dict[str, str],
) -> dict[str, list[Sample]]:
    """Warm every benchmark up, then run them in turn, ``rounds`` times. A refused benchmark
    goes into ``refused`` (name: why) and is neither run again nor returned."""

    def one(bench: Bench, spec: Load) -> None:
        if bench.name in refused:
            return
        server = servers[bench.server]
        try:
            sample = run_wrk(bench, server, spec, creds)
        except Refused as exc:
            refused[bench.name] = str(exc)
            progress(f"REFUSED {exc}")
            return
        finally:
            drain_journal(server)
        if spec is load:
            samples[bench.name].append(sample)

    samples: dict[str, list[Sample]] = {bench.name: [] for bench in benches}
    for bench in benches:
        progress(f"warm-up {bench.name}")
        one(bench, warmup)
    for r in range(rounds):
        # Reversed every other round: a baseline and its stack stay neighbours, each going
        # first half the time.
        for bench in benches[::-1] if r % 2 else benches:
            progress(f"round {r + 1}/{rounds}: {bench.name}")
            one(bench, load)
    return {name: got for name, got in samples.items() if name not in refused}


# -- the report -------------------------------------------------------------------------------


def median_rps(samples: list[Sample]) -> float:
    return statistics.median(s.rps for s in samples)


def median_cpu(samples: list[Sample]) -> float | None:
    cpu = [s.cpu_us for s in samples if s.cpu_us is not None]
    return statistics.median(cpu) if cpu else None


def median_ratio(samples: list[Sample], base: list[Sample]) -> float:
    """Paired: the median of the per-round ratios (the two runs of a round are close in time)."""
    return statistics.median(s.rps / b.rps for s, b in zip(samples, base, strict=True))


def ratio_of_medians(samples: list[Sample], base: list[Sample]) -> float:
    """Unpaired: median req/s over the baseline's median req/s."""
    return median_rps(samples) / median_rps(base)


def spread(samples: list[Sample]) -> float:
    """Half the min-max range of req/s, in % of the median."""
    rates = [s.rps for s in samples]
    return (max(rates) - min(rates)) / 2 / statistics.median(rates) * 100


def table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    fmt = "  ".join(
        f"{{:{'<' if i in (0, len(header) - 1) else '>'}{w}}}" for i, w in enumerate(widths)
    )
    lines = [fmt.format(*header), fmt.format(*("-" * w for w in widths))]
    lines += [fmt.format(*row) for row in rows]
    return "\n".join(line.rstrip() for line in lines)


def main_table(benches: Sequence[Bench], samples: dict[str, list[Sample]]) -> str:
    rows = []
    for bench in benches:
        if bench.name not in samples:
            rows.append([bench.name, bench.script, "REFUSED", *[""] * 8, "not reported: see below"])
            continue
        got = samples[bench.name]
        cpu = median_cpu(got)
        ratio = unpaired = extra = ""
        if bench.baseline in samples:
            base = samples[bench.baseline]
            ratio = f"{median_ratio(got, base):.2f}x"
            unpaired = f"{ratio_of_medians(got, base):.2f}x"
            base_cpu = median_cpu(base)
            if cpu is not None and base_cpu is not None:
                extra = f"{cpu - base_cpu:+.0f}"
        note = f"vs {bench.baseline}" if bench.baseline else ""
        note = "; ".join(x for x in (note, bench.note) if x)
        rows.append(
            [
                bench.name,
                bench.script,
                str(bench.status),
                f"{median_rps(got):,.0f}",
                f"±{spread(got):.0f}%",
                f"{statistics.median(s.p50_ms for s in got):.2f}",
                f"{statistics.median(s.p99_ms for s in got):.2f}",
                "" if cpu is None else f"{cpu:.0f}",
                extra,
                ratio,
                unpaired,
                note,
            ]
        )
    header = [
        "benchmark", "script", "status", "req/s", "spread", "p50 ms", "p99 ms",
        "cpu µs/req", "+cpu µs", "paired", "of medians", "baseline; note",
    ]  # fmt: skip
    return table(rows, header)


#: Issue 17's served targets, paired ratio to the bare app under the same request.
TARGETS = {
    "anonymous+CORS": 0.93,
    "anonymous POST": 0.92,
    "jwt": 0.90,
    "signature": 0.88,
    "acs3": 0.85,
    "anonymous+function": 0.85,  # issue 12
    "anonymous+metrics": 0.85,  # issue 15
}


def targets(benches: Sequence[Bench], samples: dict[str, list[Sample]]) -> list[str]:
    """The served targets, checked on this run's paired ratios."""

    def verdict(ok: bool) -> str:
        return "ok  " if ok else "MISS"

    lines = []
    for bench in benches:
        target = TARGETS.get(bench.name)
        if target is None or bench.baseline is None:
            continue
        if {bench.name, bench.baseline} <= samples.keys():
            got = median_ratio(samples[bench.name], samples[bench.baseline])
            lines.append(f"{verdict(got >= target)} {bench.name} >= {target:.2f}x bare: {got:.2f}x")
    for name, what in (
        ("async accept only", "accepting alone (tasks delayed)"),
        ("async accept", "while the server also runs every task (fsync)"),
        ("async accept process", "while the server also runs every task (process)"),
    ):
        if {name, "anonymous hello"} <= samples.keys():
            accepts = median_ratio(samples[name], samples["anonymous hello"])
            lines.append(
                f"{verdict(accepts >= 0.5)} async accepts/s >= 0.5x the same server's sync "
                f"hello, {what}: {accepts:.2f}x"
            )
    if {"jwt", "flask", "flask peer"} <= samples.keys():
        ours, peer = median_rps(samples["jwt"]), median_rps(samples["flask peer"])
        peer_ratio = median_ratio(samples["flask peer"], samples["flask"])
        lines.append(
            f"{verdict(ours > peer)} fc-wsgi JWT stack faster than the Flask peer: "
            f"{ours:,.0f} vs {peer:,.0f} req/s (the peer is {peer_ratio:.2f}x bare Flask)"
        )
    return lines


def sweep_table(shapes: list[Shape], results: dict[Shape, dict[str, list[Sample]]]) -> str:
    first = median_rps(results[shapes[0]]["bare (cors.lua)"])
    rows = []
    for shape in shapes:
        got = results[shape]
        bare = median_rps(got["bare (cors.lua)"])
        rows.append(
            [
                str(shape),
                f"{bare:,.0f}",
                f"{bare / first:.2f}x",
                f"{median_rps(got['anonymous+CORS']):,.0f}",
                f"{median_ratio(got['anonymous+CORS'], got['bare (cors.lua)']):.2f}x",
                f"{median_rps(got['async accept']):,.0f}",
                f"{statistics.median(s.p99_ms for s in got['async accept']):.1f}",
            ]
        )
    header = [
        "gunicorn", "bare req/s", "growth", "anon+CORS req/s", "ratio",
        "async accepts/s", "async p99 ms",
    ]  # fmt: skip
    return table(rows, header)


def batch_sizes(log: Path) -> str:
    """The group commit's batch sizes over the run, from the lines each worker logs at exit
    (``batch sizes 1+:N 2+:N ...``: transactions of 1, 2-3, 4-7, ... accepts), and how often
    a write waited for another worker process's lock."""
    pattern = re.compile(
        r"group commit: (\d+) accepts in \d+ transactions; batch sizes ([^;]*);"
        r" (\d+) write transactions waited for another process's lock, (\d+) ms"
    )
    transactions: dict[int, int] = {}
    accepts = waits = waited_ms = 0
    for line in log.read_text(errors="replace").splitlines():
        match = pattern.search(line)
        if match is None:
            continue
        accepts += int(match.group(1))
        waits += int(match.group(3))
        waited_ms += int(match.group(4))
        for part in match.group(2).split():
            size, count = part.split("+:")
            transactions[int(size)] = transactions.get(int(size), 0) + int(count)
    total = sum(transactions.values())
    if not total:
        return "no group commit logged"
    buckets = ", ".join(
        f"{size}-{2 * size - 1}: {count}" if size > 1 else f"1: {count}"
        for size, count in sorted(transactions.items())
    )
    return (
        f"{accepts:,} accepts in {total:,} transactions ({accepts / total:.1f} each); {buckets};"
        f" {waits:,} writes waited for another process's lock, {waited_ms / 1000:.1f} s in all"
    )


def machine_line() -> str:
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"{platform.python_implementation()} {platform.python_version()}, "
        f"{os.cpu_count()} CPUs, load average {load}"
    )


# -- command line -----------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="fc-wsgi stacks under gunicorn + wrk, interleaved rounds, medians.",
    )
    parser.add_argument("--quick", action="store_true", help="short runs: 3 s x 2 rounds")
    parser.add_argument("--sweep", action="store_true", help="scaling over workers and threads")
    parser.add_argument("--rounds", type=int, help="rounds of every benchmark (default 5)")
    parser.add_argument("--duration", type=float, help="seconds per wrk run (default 10)")
    parser.add_argument("--warmup", type=float, help="seconds of warm-up per benchmark (3)")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections (16)")
    parser.add_argument("--wrk-threads", type=int, default=1, help="wrk threads (1)")
    parser.add_argument("--workers", type=int, default=1, help="gunicorn workers (1)")
    parser.add_argument("--threads", type=int, default=2, help="gthread threads per worker (2)")
    parser.add_argument(
        "--workers-kind",
        choices=("sync", "gthread", "both"),
        default="both",
        help="gunicorn worker class: sync, gthread, or one table each (default both)",
    )
    parser.add_argument("--only", help="comma-separated benchmark names (baselines are added)")
    parser.add_argument("--no-flask", action="store_true", help="leave the Flask stacks out")
    parser.add_argument(
        "--compare-tree",
        type=Path,
        help="also serve every fc-wsgi stack from this checkout (e.g. `git worktree add` of an "
        "older commit), in the same interleaved rounds: before/after on one noisy machine",
    )
    parser.add_argument(
        "--tamper", action="store_true", help="send a wrong signature and token: must be refused"
    )
    args = parser.parse_args(argv)
    args.rounds = args.rounds or (2 if args.quick else 5)
    args.duration = args.duration or (3.0 if args.quick else 10.0)
    args.warmup = args.warmup or (1.0 if args.quick else 3.0)
    return args


def select(benches: Sequence[Bench], only: str | None, no_flask: bool) -> list[Bench]:
    chosen = [b for b in benches if not (no_flask and b.server.startswith("flask"))]
    if only:
        by_name = {b.name: b for b in chosen}
        wanted = {name.strip() for name in only.split(",")}
        unknown = wanted - by_name.keys()
        if unknown:
            raise BenchError(f"unknown benchmarks {sorted(unknown)}; known: {list(by_name)}")
        for name in list(wanted):
            base = by_name[name].baseline
            while base is not None:
                wanted.add(base)
                base = by_name[base].baseline
        chosen = [b for b in chosen if b.name in wanted]
    return chosen


def with_compared(benches: list[Bench], apps: dict[str, App], tree: Path) -> list[Bench]:
    """Each fc-wsgi row followed by the same stack served from ``tree``, same baseline."""
    if not (tree / "fc_wsgi").is_dir() or not (tree / "benchmarks" / "apps.py").is_file():
        raise BenchError(f"--compare-tree {tree}: not an fc-wsgi checkout")
    out = []
    for bench in benches:
        out.append(bench)
        app = apps[bench.server]
        if app.config is None or bench.baseline is None:
            continue
        name = f"{app.name} @{tree.name}"
        apps.setdefault(name, replace(app, name=name, root=tree))
        out.append(replace(bench, name=f"{bench.name} @{tree.name}", server=name))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if shutil.which("wrk") is None:
        print(WRK_HINT, file=sys.stderr)
        return 1
    # Ctrl-C raises KeyboardInterrupt; make SIGTERM/SIGHUP unwind the same way, so that the
    # finally blocks stop every server we started.
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, lambda n, _frame: sys.exit(128 + n))
    try:
        return _run(args)
    except BenchError as exc:
        print(f"\nbenchmark refused: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted; servers stopped", file=sys.stderr)
        return 130


def _progress(text: str) -> None:
    print(f"  {text}", file=sys.stderr, flush=True)


def _run(args: argparse.Namespace) -> int:
    creds = mint_credentials(tamper=args.tamper)
    apps = {app.name: app for app in build_apps(creds)}
    if args.sweep:
        benches = select(BENCHES, "anonymous+CORS,async accept", True)
    else:
        benches = select(BENCHES, args.only, args.no_flask)
    if args.compare_tree is not None and not args.sweep:
        benches = with_compared(benches, apps, args.compare_tree.resolve())
    needed = [apps[name] for name in dict.fromkeys(b.server for b in benches)]
    if any(app.name.startswith("flask") for app in needed):
        try:
            import flask  # noqa: F401
            import flask_cors  # noqa: F401
        except ImportError:
            raise BenchError(f"{FLASK_HINT} (or pass --no-flask)") from None
    load = Load(args.duration, args.connections, args.wrk_threads)
    warmup = Load(args.warmup, args.connections, args.wrk_threads)
    print(f"# {machine_line()}", flush=True)
    refused: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="fc-wsgi-bench-") as tmp:
        folder = Path(tmp)
        if args.sweep:
            shapes = [Shape(w, 1, gthread=False) for w in (1, 2, 4)]
            shapes += [Shape(1, t) for t in (1, 2, 4, 8)]
            results: dict[Shape, dict[str, list[Sample]]] = {}
            for shape in shapes:
                _progress(f"gunicorn {shape}")
                with running(needed, shape, folder, creds) as servers:
                    results[shape] = measure(
                        benches, servers, args.rounds, load, warmup, creds, _progress, refused
                    )
                if refused:
                    break
        else:
            kinds = ["sync", "gthread"] if args.workers_kind == "both" else [args.workers_kind]
            shapes = [
                Shape(args.workers, 1 if kind == "sync" else args.threads, kind == "gthread")
                for kind in kinds
            ]
            results = {}
            commits: dict[Shape, dict[str, str]] = {}
            for shape in shapes:
                _progress(f"gunicorn {shape}")
                with running(needed, shape, folder, creds) as servers:
                    results[shape] = measure(
                        benches, servers, args.rounds, load, warmup, creds, _progress, refused
                    )
                commits[shape] = {
                    name: batch_sizes(server.log)
                    for name, server in servers.items()
                    if any(b.server == name and b.status == 202 for b in benches)
                }
                if refused:
                    break
    wrk = f"wrk -t{load.threads} -c{load.connections} -d{load.seconds:g}s"
    if args.sweep and not refused:
        print(
            f"# {wrk}; {args.rounds} rounds, medians; requests with Origin; async: async.lua, "
            "each committed (fsync) to the on-disk journal before its 202"
        )
        print(sweep_table(shapes, results))
    elif not args.sweep:
        for shape, samples in results.items():
            print(f"# gunicorn {shape}; {wrk}; {args.rounds} interleaved rounds, medians")
            print(main_table(benches, samples))
            for name, sizes in commits.get(shape, {}).items():
                print(f"# group commit batch sizes, {name}: {sizes}")
            lines = targets(benches, samples)
            if lines:
                print()
                print("\n".join(lines))
            print()
    print(f"# after: {machine_line()}")
    for why in refused.values():
        print(f"REFUSED {why}", file=sys.stderr)
    return 1 if refused else 0
