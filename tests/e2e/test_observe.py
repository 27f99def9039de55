"""What the gateway shows about itself, on a real ``fc-wsgi serve --workers 2``.

A known mix of answers (200, 400 limits, 401 JWT, 403 method, 502, an async 202 retried twice)
and then the metrics endpoint on its own socket, polled until the workers' flushes brought the
totals in: every counter exact, summed across both workers by the multiprocess mode; the
histogram counts every request; a flood of random paths and methods leaves the label sets
bounded. The access log carries each request's id and FC error code; ``--log-format json``
ties the app's own records to the request that logged them. A project server counts each
request under the function that served it, and only the router's own answers under its name.
"""

from __future__ import annotations

import json
import random
import shutil
import string
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import requests
import yaml
from support import free_port, http_request, wait_for
from test_auth import JwksServer, rsa_jwk, token

pytest.importorskip("prometheus_client", reason="the metrics extra is not installed")

from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

SCRAPE_SECONDS = 15
ROOT = Path(__file__).resolve().parents[2]


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the endpoint: ``(name, sorted labels) → value``."""
    text = requests.get(url, timeout=5).text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def scrape_until(url: str, ready: Callable[[dict], bool], what: str) -> dict:
    """The first scrape that is ``ready``: each worker flushes its request counts about
    once a second, so the totals arrive a little after the answers."""

    def check() -> dict | None:
        samples = scrape(url)
        return samples if ready(samples) else None

    return wait_for(check, SCRAPE_SECONDS, what)


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted({"function": "orders", **labels}.items()))), 0.0)


@pytest.fixture
def jwt_server(serve):
    private, jwk = rsa_jwk("k1")
    jwks = JwksServer([jwk])
    config = {
        "authType": "jwt",
        "methods": ["GET", "POST"],
        "authConfig": json.dumps({
            "jwksUrl": jwks.url,
            "tokenLookup": "header:Authorization:Bearer ",
            "whitelist": ["/public/*"],
        }),
        "async": {"maxAsyncRetryAttempts": 3},
    }  # fmt: skip
    metrics_port = free_port()
    server = serve(
        "tests.e2e.observe_app:app", config, "--workers", "2",
        "--metrics-bind", f"127.0.0.1:{metrics_port}", "--function-label", "orders",
        "--access-log", "-",
    )  # fmt: skip
    try:
        yield server, f"http://127.0.0.1:{metrics_port}/metrics", private, jwks
    finally:
        jwks.stop()


def test_each_counter_is_exact_across_two_workers(jwt_server):
    server, metrics_url, private, jwks = jwt_server
    good = {"Authorization": "Bearer " + token(private, "k1")}
    expected = [
        *[("GET", "/public/ok", {}, 200)] * 3,
        *[("GET", "/private", good, 200)] * 2,
        *[("GET", "/public/" + "a" * 5000, {}, 400)] * 2,
        *[("GET", "/private", {}, 401)] * 3,
        ("PUT", "/public/ok", {}, 403),
        *[("GET", "/public/boom", {}, 502)] * 2,
        ("POST", "/public/job?fail=2", {"X-Fc-Invocation-Type": "Async"}, 202),
    ]
    ids = set()
    for method, path, headers, status in expected:
        # A new connection each time: the kernel spreads them over both workers.
        response = requests.request(method, server.url + path, headers=headers, timeout=5)
        assert response.status_code == status, (path, response.text)
        ids.add(response.headers["X-Fc-Request-Id"])

    samples = scrape_until(
        metrics_url,
        lambda s: (
            value(s, "fc_wsgi_async_runs_total", outcome="succeeded") == 1
            and value(s, "fc_wsgi_request_duration_seconds_count") == len(expected)
        ),
        "every request counted and the async task succeeded",
    )
    requests_total = {
        dict(labels)["status"]: (dict(labels)["method"], dict(labels)["code"], count)
        for (name, labels), count in samples.items()
        if name == "fc_wsgi_requests_total"
    }
    assert requests_total == {
        "200": ("GET", "", 5.0),
        "400": ("GET", "InvalidArgument", 2.0),
        "401": ("GET", "InvalidToken", 3.0),
        "403": ("PUT", "AccessDenied", 1.0),
        "502": ("GET", "UnhandledInvocationError", 2.0),
        "202": ("POST", "", 1.0),
    }
    assert value(samples, "fc_wsgi_request_duration_seconds_count") == len(expected)
    assert value(samples, "fc_wsgi_request_duration_seconds_bucket", le="+Inf") == len(expected)
    assert value(samples, "fc_wsgi_auth_refusals_total", code="InvalidToken") == 3
    assert value(samples, "fc_wsgi_async_accepted_total") == 1
    assert value(samples, "fc_wsgi_async_runs_total", outcome="retried") == 2
    assert value(samples, "fc_wsgi_async_runs_total", outcome="succeeded") == 1
    assert value(samples, "fc_wsgi_async_runs_total", outcome="failed") == 0
    assert value(samples, "fc_wsgi_async_start_lateness_seconds_count") == 3
    # The function's backoff is 0.5 then 1 s; lateness is what the scheduler added to that.
    assert value(samples, "fc_wsgi_async_start_lateness_seconds_sum") < 3
    assert value(samples, "fc_wsgi_async_tasks", state="Succeeded") == 1
    assert value(samples, "fc_wsgi_async_tasks", state="Enqueued") == 0
    fetches = samples[("fc_wsgi_jwks_fetches_total", (("outcome", "success"),))]
    assert fetches == jwks.fetches >= 1  # one per worker that verified a token
    # The metrics socket is apart: the function keeps /metrics.
    assert requests.get(server.url + "/public/metrics", timeout=5).text == "ok /public/metrics"

    # The access log: each line with its request id and FC error code, no query string.
    log = server.output()
    for rid in ids:
        assert f"rid={rid} " in log
    assert "code=InvalidToken" in log and "code=UnhandledInvocationError" in log
    assert "fail=2" not in log

    # A flood of random paths and methods: the label sets stay bounded, no path in a label.
    rng = random.Random(15)
    for _ in range(200):
        path = "/public/" + "".join(rng.choices(string.ascii_letters, k=12))
        method = rng.choice(["GET", "BREW", "PATCH", "X" + str(rng.randrange(10**6))])
        requests.request(method, server.url + path, timeout=5)
    total = len(expected) + 201
    samples = scrape_until(
        metrics_url,
        lambda s: value(s, "fc_wsgi_request_duration_seconds_count") == total,
        "the flood counted",
    )
    label_sets = [labels for name, labels in samples if name == "fc_wsgi_requests_total"]
    assert len(label_sets) <= 10, label_sets
    values = {v for labels in label_sets for _, v in labels}
    assert not any("/" in v or len(v) > 32 for v in values), values
    assert sum(v for (name, _), v in samples.items() if name == "fc_wsgi_requests_total") == total


def test_json_lines_carry_the_request_id_of_the_request(serve):
    server = serve("tests.e2e.observe_app:app", None, "--log-format", "json", "--access-log", "-")
    rids = []
    for path in ("/one", "/two"):
        response = requests.get(server.url + path, timeout=5)
        rids.append(response.headers["X-Fc-Request-Id"])
    deadline = time.monotonic() + 5
    while server.output().count('"gunicorn.access"') < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    records = [json.loads(line) for line in server.output().splitlines() if line.startswith("{")]
    for rid, path in zip(rids, ("/one", "/two"), strict=True):
        mine = [r for r in records if r["request_id"] == rid]
        assert {r["logger"] for r in mine} == {"observe_app", "gunicorn.access"}
        app_record = next(r for r in mine if r["logger"] == "observe_app")
        assert app_record["message"] == f"handled {path}"
        access = next(r for r in mine if r["logger"] == "gunicorn.access")
        assert (access["path"], access["status"], access["error_code"]) == (path, 200, "")
        assert access["duration_seconds"] >= 0


def test_the_plain_gunicorn_recipe(start_server, tmp_path):
    """README's recipe: the directory and bind by environment, the hooks by -c."""
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    metrics_port = free_port()
    env = {
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        "FC_WSGI_METRICS_BIND": f"127.0.0.1:{metrics_port}",
        "FC_WSGI_FUNCTION": "orders",
        "FC_WSGI_APP": "tests.e2e.observe_app:app",
    }
    argv = [sys.executable, "-m", "gunicorn", "fc_wsgi.serve:app_from_env()", "--no-control-socket",
            "-c", "python:fc_wsgi.serve", "--workers", "2", "--bind", "127.0.0.1:{port}",
            "--access-logfile", "-"]  # fmt: skip
    server = start_server(argv, env=env)
    for path in ("/a", "/b", "/boom"):
        requests.get(server.url + path, timeout=5)
    metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
    samples = scrape_until(
        metrics_url,
        lambda s: value(s, "fc_wsgi_request_duration_seconds_count") == 3,
        "the three requests counted",
    )
    assert value(samples, "fc_wsgi_requests_total", method="GET", status="200", code="") == 2
    assert value(samples, "fc_wsgi_requests_total", method="GET", status="502",
                 code="UnhandledInvocationError") == 1  # fmt: skip
    assert "code=UnhandledInvocationError" in server.output()  # the access-log format


def test_a_project_labels_each_request_with_its_function(start_server, tmp_path):
    """examples/project (hello, notes) with ``--workers 2``: each function's requests, FC
    errors, auth refusals and async run under its own key; the router's own 404s under the
    project's name, and nothing else. The copy's notes trigger sets ``disableURLInternet``
    so that AuthGate refuses notes on FC's default endpoint (its custom domain still serves)."""
    project = tmp_path / "project"
    shutil.copytree(ROOT / "examples/project", project)
    spec = yaml.safe_load((project / "s.yaml").read_text())
    notes_trigger = spec["resources"]["notes"]["props"]["triggers"][0]
    notes_trigger["triggerConfig"] = {
        "authType": "anonymous", "methods": ["GET", "POST"], "disableURLInternet": True,
    }  # fmt: skip
    (project / "s.yaml").write_text(yaml.safe_dump(spec))
    metrics_port = free_port()
    server = start_server([
        sys.executable, "-m", "fc_wsgi", "serve", str(project / "s.yaml"),
        "--bind", "127.0.0.1:{port}", "--workers", "2",
        "--metrics-bind", f"127.0.0.1:{metrics_port}",
    ])  # fmt: skip
    sent = [  # method, path, Host, extra headers, status
        *[("GET", "/hello", "www.example.com", {}, 200)] * 3,
        ("GET", "/2023-03-30/proxy/hello/", "fc.test", {}, 200),
        ("PUT", "/hello", "www.example.com", {}, 403),  # not in the trigger's methods
        *[("GET", "/notes/1", "www.example.com", {}, 200)] * 2,
        *[("GET", "/2023-03-30/proxy/notes/notes/1", "fc.test", {}, 403)] * 2,
        ("POST", "/v1/3", "www.example.com", {"X-Fc-Invocation-Type": "Async"}, 202),
        ("POST", "/notes/2", "www.example.com", {}, 404),  # no route: the router answers
        ("GET", "/2023-03-30/proxy/nope/", "fc.test", {}, 404),  # no function: the router
    ]
    for method, path, host, headers, status in sent:
        got, _, body = http_request(server.port, method, path, headers={"Host": host, **headers})
        assert got == status, (method, path, body)

    def count(samples: dict, name: str, function: str, **labels: str) -> float:
        return samples.get((name, tuple(sorted({"function": function, **labels}.items()))), 0.0)

    def durations(samples: dict) -> dict[str, float]:
        return {
            dict(labels)["function"]: n
            for (name, labels), n in samples.items()
            if name == "fc_wsgi_request_duration_seconds_count" and n
        }

    samples = scrape_until(
        f"http://127.0.0.1:{metrics_port}/metrics",
        lambda s: (
            count(s, "fc_wsgi_async_runs_total", "notes", outcome="succeeded") == 1
            and sum(durations(s).values()) == len(sent)
        ),
        "every request counted and the notes task run",
    )
    requests_total = {
        tuple(dict(labels)[k] for k in ("function", "method", "status", "code")): n
        for (name, labels), n in samples.items()
        if name == "fc_wsgi_requests_total"
    }
    project_name = "fc-wsgi-example"
    assert requests_total == {
        ("hello", "GET", "200", ""): 4,
        ("hello", "PUT", "403", "AccessDenied"): 1,
        ("notes", "GET", "200", ""): 2,
        ("notes", "GET", "403", "AccessDenied"): 2,
        ("notes", "POST", "202", ""): 1,
        (project_name, "POST", "404", "DomainRouteNotFound"): 1,
        (project_name, "GET", "404", "FunctionNotFound"): 1,
    }
    assert durations(samples) == {"hello": 5, "notes": 5, project_name: 2}
    refusals = {
        (dict(labels)["function"], dict(labels)["code"]): n
        for (name, labels), n in samples.items()
        if name == "fc_wsgi_auth_refusals_total"
    }
    assert refusals == {("notes", "AccessDenied"): 2}
    for function, accepted, runs in (("notes", 1, 1), ("hello", 0, 0), (project_name, 0, 0)):
        assert count(samples, "fc_wsgi_async_accepted_total", function) == accepted
        assert count(samples, "fc_wsgi_async_start_lateness_seconds_count", function) == runs
    runs_total = {
        (dict(labels)["function"], dict(labels)["outcome"]): n
        for (name, labels), n in samples.items()
        if name == "fc_wsgi_async_runs_total"
    }
    assert runs_total == {("notes", "succeeded"): 1}
    # The task gauge reads each function's journal under the same label.
    assert count(samples, "fc_wsgi_async_tasks", "notes", state="Succeeded") == 1
    assert count(samples, "fc_wsgi_async_tasks", "hello", state="Succeeded") == 0
