"""metrics.py: off means nothing imported and no layer; on, the hooks count what they see."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from fc_wsgi import metrics


def test_off_nothing_is_imported_and_no_layer_is_added():
    script = textwrap.dedent(
        """
        import sys
        from fc_wsgi import make_trigger_app
        from fc_wsgi.cors import CorsDefaults
        app = make_trigger_app(lambda e, s: [], {"authType": "anonymous", "methods": ["GET"]})
        print(type(app).__name__, "prometheus_client" in sys.modules)
        """
    )
    env = {"PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env)
    assert out.stdout.split() == ["CorsDefaults", "False"], out.stderr


def test_on_the_stack_is_measured_and_the_hooks_count(tmp_path, monkeypatch):
    pytest.importorskip("prometheus_client", reason="the metrics extra is not installed")
    script = textwrap.dedent(
        """
        from fc_wsgi import make_trigger_app, metrics
        app = make_trigger_app(lambda e, s: [], {"authType": "anonymous", "methods": ["GET"]})
        metrics.count_auth_refusal("InvalidToken")
        metrics.count_jwks_fetch(ok=False)
        metrics.count_async_run("Retrying")
        metrics.count_async_run(None)
        metrics.count_async_run("Failed", timed_out=True)  # the function's timeout
        metrics.observe_start_lateness(-1.0)  # early by clock skew: counted as 0
        from prometheus_client import CollectorRegistry
        from prometheus_client.multiprocess import MultiProcessCollector
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        get = registry.get_sample_value
        print(type(app).__name__,
              get("fc_wsgi_auth_refusals_total", {"function": "shop", "code": "InvalidToken"}),
              get("fc_wsgi_jwks_fetches_total", {"outcome": "failure"}),
              get("fc_wsgi_async_runs_total", {"function": "shop", "outcome": "retried"}),
              get("fc_wsgi_async_runs_total", {"function": "shop", "outcome": "lost"}),
              get("fc_wsgi_async_runs_total", {"function": "shop", "outcome": "timeout"}),
              get("fc_wsgi_async_start_lateness_seconds_bucket",
                  {"function": "shop", "le": "0.01"}))
        """
    )
    env = {"PATH": "/usr/bin:/bin", "PROMETHEUS_MULTIPROC_DIR": str(tmp_path),
           "FC_WSGI_FUNCTION": "shop"}  # fmt: skip
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env)
    expected = ["RequestMetrics", "1.0", "1.0", "1.0", "1.0", "1.0", "1.0"]
    assert out.stdout.split() == expected, out.stderr


def test_hooks_cost_nothing_when_off():
    assert metrics.active() is None
    metrics.count_auth_refusal("InvalidToken")  # no error, nothing recorded
    metrics.count_async_accepted()


def test_a_flush_writes_the_histogram_as_observe_would():
    """The flush adds to a histogram child through its private ``_sum`` and ``_buckets``
    (prometheus_client has no public "add n observations"): if a release renames them or
    changes how buckets are stored, this fails, and the pin in pyproject's extra must hold."""
    prometheus_client = pytest.importorskip("prometheus_client")
    flushed_registry = prometheus_client.CollectorRegistry()
    flushed = metrics.Metrics("fn", registry=flushed_registry)
    child = flushed.default.duration
    assert isinstance(child._sum, prometheus_client.values.ValueClass), "Histogram._sum is gone"
    assert len(child._buckets) == len(metrics.DURATION_BUCKETS_SECONDS) + 1, "_buckets changed"
    observed_registry = prometheus_client.CollectorRegistry()
    observed = prometheus_client.Histogram(
        "fc_wsgi_request_duration_seconds", "", ["function"],
        buckets=metrics.DURATION_BUCKETS_SECONDS, registry=observed_registry,
    ).labels("fn")  # fmt: skip
    seconds = [0.0, 0.0005, 0.0007, 0.001, 0.003, 0.5, 0.75, 29.9, 30.0, 31.0, 1e6]
    for s in seconds:
        flushed.default.request_tally.add(("GET", "200", ""), s)
        observed.observe(s)
    flushed.flush()

    def samples(registry):
        return {
            (s.name, s.labels.get("le")): s.value
            for family in registry.collect()
            if family.name == "fc_wsgi_request_duration_seconds"
            for s in family.samples
            if not s.name.endswith("_created")
        }

    assert samples(flushed_registry) == samples(observed_registry)
    assert samples(observed_registry)[("fc_wsgi_request_duration_seconds_count", None)] == 11


def test_requests_reach_the_files_at_a_flush_and_at_exit(tmp_path):
    """Multiprocess mode, as served: the counts appear in the files summed by the endpoint
    after a flush, and what a process counted last is written at its exit."""
    pytest.importorskip("prometheus_client", reason="the metrics extra is not installed")
    script = textwrap.dedent(
        """
        import sys
        from fc_wsgi import make_trigger_app, metrics
        from prometheus_client import CollectorRegistry
        from prometheus_client.multiprocess import MultiProcessCollector

        def hello(environ, start_response):
            start_response("200 OK", [])
            return [b"hello"]

        app = make_trigger_app(hello, {"authType": "anonymous", "methods": ["GET"]})

        def get(name, **labels):
            registry = CollectorRegistry()
            MultiProcessCollector(registry)
            return registry.get_sample_value(name, {"function": "shop", **labels}) or 0.0

        def serve(n, method="GET"):
            for _ in range(n):
                body = app({"REQUEST_METHOD": method, "PATH_INFO": "/"}, lambda *a: None)
                body.close()

        serve(int(sys.argv[1]))
        serve(1, method="PUT")
        before = get("fc_wsgi_request_duration_seconds_count")
        metrics.flush()
        print(before, get("fc_wsgi_requests_total", method="GET", status="200", code=""),
              get("fc_wsgi_requests_total", method="PUT", status="403", code="AccessDenied"),
              get("fc_wsgi_request_duration_seconds_count"),
              get("fc_wsgi_request_duration_seconds_bucket", le="+Inf"))
        serve(int(sys.argv[2]))  # left for atexit
        """
    )
    env = {"PATH": "/usr/bin:/bin", "PROMETHEUS_MULTIPROC_DIR": str(tmp_path),
           "FC_WSGI_FUNCTION": "shop"}  # fmt: skip
    run = [sys.executable, "-c", script]
    out = subprocess.run([*run, "7", "5"], capture_output=True, text=True, env=env)
    assert out.stdout.split() == ["0.0", "7.0", "1.0", "8.0", "8.0"], out.stderr
    out = subprocess.run([*run, "0", "0"], capture_output=True, text=True, env=env)
    expected = ["13.0", "12.0", "2.0", "14.0", "14.0"]  # 13: 8 flushed + 5 at exit
    assert out.stdout.split() == expected, out.stderr


def test_each_function_label_has_its_own_children_and_tally(monkeypatch):
    """A project server: one :class:`FunctionMetrics` per label, cached; the hooks count in
    the one the environ (requests) or the label (async runs) names, else the default."""
    prometheus_client = pytest.importorskip("prometheus_client")
    registry = prometheus_client.CollectorRegistry()
    measured = metrics.Metrics("shop", registry=registry)
    a, b = measured.function("a"), measured.function("b")
    assert measured.function("a") is a and measured.function("shop") is measured.default
    assert a.request_tally is not b.request_tally
    monkeypatch.setattr(metrics, "_active", measured)

    metrics.count_auth_refusal("InvalidToken", {metrics.FUNCTION_KEY: a})
    metrics.count_auth_refusal("InvalidToken", {})  # no function named: the default
    metrics.count_auth_refusal("AccessDenied")
    metrics.count_async_accepted("a")
    metrics.count_async_accepted()
    metrics.count_async_run("Succeeded", function="b")
    metrics.count_async_run("Failed", timed_out=True, function="b")
    metrics.observe_start_lateness(0.2, "b")
    a.request_tally.add(("GET", "200", ""), 0.001)
    for _ in range(2):
        b.request_tally.add(("POST", "202", ""), 0.001)
    measured.flush()

    def get(name: str, function: str, **labels: str) -> float:
        return registry.get_sample_value(name, {"function": function, **labels}) or 0.0

    refusals = "fc_wsgi_auth_refusals_total"
    assert get(refusals, "a", code="InvalidToken") == 1
    assert get(refusals, "shop", code="InvalidToken") == 1
    assert get(refusals, "shop", code="AccessDenied") == 1
    assert get("fc_wsgi_async_accepted_total", "a") == 1
    assert get("fc_wsgi_async_accepted_total", "shop") == 1
    assert get("fc_wsgi_async_runs_total", "b", outcome="succeeded") == 1
    assert get("fc_wsgi_async_runs_total", "b", outcome="timeout") == 1
    assert get("fc_wsgi_async_start_lateness_seconds_count", "b") == 1
    assert get("fc_wsgi_async_start_lateness_seconds_count", "shop") == 0
    requests = "fc_wsgi_requests_total"
    assert get(requests, "a", method="GET", status="200", code="") == 1
    assert get(requests, "b", method="POST", status="202", code="") == 2
    assert get("fc_wsgi_request_duration_seconds_count", "a") == 1
    assert get("fc_wsgi_request_duration_seconds_count", "b") == 2
    assert get("fc_wsgi_request_duration_seconds_count", "shop") == 0
