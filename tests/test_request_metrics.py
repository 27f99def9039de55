"""RequestMetrics counts and times every answer, closes what it wraps, bounds its labels;
the counts reach prometheus_client at a flush, none lost between threads."""

from __future__ import annotations

import threading
from wsgiref.validate import validator

import pytest
from support import Recorder, hello_app, make_environ, validated

pytest.importorskip("prometheus_client", reason="the metrics extra is not installed")

from prometheus_client import CollectorRegistry  # noqa: E402

from fc_wsgi import metrics as metrics_module  # noqa: E402
from fc_wsgi.auth.gate import AuthGate  # noqa: E402
from fc_wsgi.errors import DomainRouteNotFound, InvalidToken, error_response  # noqa: E402
from fc_wsgi.metrics import Metrics  # noqa: E402
from fc_wsgi.request_metrics import FunctionLabel, RequestMetrics  # noqa: E402


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


def sample(registry: CollectorRegistry, name: str, function: str = "fn", **labels: str) -> float:
    return registry.get_sample_value(name, {"function": function, **labels}) or 0.0


def refusing_app(environ, start_response):
    return error_response(InvalidToken("no token"), environ, start_response)


def test_answers_are_counted_by_method_status_and_fc_code(registry):
    metrics = Metrics("fn", registry=registry)
    ok = validated(RequestMetrics, hello_app, function=metrics.default)
    for _ in range(3):
        assert ok.get("/a").text == "hello"
    ok.post("/b", "x")
    refused = validated(RequestMetrics, refusing_app, function=metrics.default)
    refused.get("/c", status=401)
    assert sample(registry, "fc_wsgi_request_duration_seconds_count") == 0  # until a flush
    metrics.flush()
    requests = "fc_wsgi_requests_total"
    assert sample(registry, requests, method="GET", status="200", code="") == 3
    assert sample(registry, requests, method="POST", status="200", code="") == 1
    assert sample(registry, requests, method="GET", status="401", code="InvalidToken") == 1
    assert sample(registry, "fc_wsgi_request_duration_seconds_count") == 5
    assert sample(registry, "fc_wsgi_request_duration_seconds_bucket", le="+Inf") == 5


def test_unknown_methods_share_one_label(registry):
    metrics = Metrics("fn", registry=registry)
    app = RequestMetrics(hello_app, metrics.default)
    for method in ("BREW", "X1", "X2"):  # (wsgiref's validator warns on unknown methods)
        assert Recorder().run(app, make_environ(REQUEST_METHOD=method)) == b"hello"
    metrics.flush()
    labels = {
        s.labels["method"]
        for family in registry.collect()
        for s in family.samples
        if s.name == "fc_wsgi_requests_total"
    }
    assert labels == {"OTHER"}


def test_timed_at_close_and_close_is_forwarded(registry):
    closed = []

    class Body:
        def __iter__(self):
            yield b"part"

        def close(self):
            closed.append(True)

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return Body()

    metrics = Metrics("fn", registry=registry)
    wrapped = RequestMetrics(app, metrics.default)
    body = wrapped({"REQUEST_METHOD": "GET"}, lambda status, headers, exc_info=None: None)
    assert list(body) == [b"part"]
    metrics.flush()
    assert sample(registry, "fc_wsgi_request_duration_seconds_count") == 0  # not before close
    body.close()
    assert closed == [True]
    metrics.flush()
    assert sample(registry, "fc_wsgi_request_duration_seconds_count") == 1


def test_an_exception_from_the_stack_is_counted_as_500_and_raised(registry):
    def broken(environ, start_response):
        raise RuntimeError("boom")

    metrics = Metrics("fn", registry=registry)
    with pytest.raises(RuntimeError):
        RequestMetrics(broken, metrics.default)({"REQUEST_METHOD": "GET"}, lambda *a: None)
    metrics.flush()
    assert sample(registry, "fc_wsgi_requests_total", method="GET", status="500", code="") == 1


def test_no_request_is_lost_between_eight_threads(registry):
    """gthread workers: 8 threads x 5,000 requests while the flush thread runs, then a last
    flush; the counter, the histogram's count and its buckets are exact."""
    metrics = Metrics("fn", registry=registry)
    app = RequestMetrics(hello_app, metrics.default)
    sr = lambda status, headers, exc_info=None: None  # noqa: E731

    def serve(method: str) -> None:
        environ = {"REQUEST_METHOD": method}
        for _ in range(5000):
            body = app(environ, sr)
            b"".join(body)
            body.close()

    threads = [threading.Thread(target=serve, args=(("GET", "POST")[i % 2],)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    metrics.flush()
    requests = "fc_wsgi_requests_total"
    assert sample(registry, requests, method="GET", status="200", code="") == 20000
    assert sample(registry, requests, method="POST", status="200", code="") == 20000
    assert sample(registry, "fc_wsgi_request_duration_seconds_count") == 40000
    assert sample(registry, "fc_wsgi_request_duration_seconds_bucket", le="+Inf") == 40000
    assert 0 < sample(registry, "fc_wsgi_request_duration_seconds_sum") < 40000 * 30


def test_a_project_counts_each_request_under_the_function_that_served_it(registry, monkeypatch):
    """A project server's shape: RequestMetrics around the router, FunctionLabel atop each
    function's stack. A routed request (and AuthGate's refusal of it) counts under its
    function; the router's own answer keeps the outer label."""
    metrics = Metrics("shop", registry=registry)
    monkeypatch.setattr(metrics_module, "_active", metrics)  # AuthGate's hook counts here
    stacks = {
        "/a": FunctionLabel(validator(hello_app), metrics.function("a")),
        "/b": FunctionLabel(
            AuthGate(validator(hello_app), disable_url_internet=True), metrics.function("b")
        ),
    }

    def router(environ, start_response):
        stack = stacks.get(environ["PATH_INFO"])
        if stack is None:
            error = DomainRouteNotFound("no route matches")
            return error_response(error, environ, start_response)
        return stack(environ, start_response)

    app = validated(RequestMetrics, router, function=metrics.default)
    app.get("/a")
    app.post("/a", "x")
    app.get("/b", status=403)
    app.get("/c", status=404)
    metrics.flush()
    requests = "fc_wsgi_requests_total"
    assert sample(registry, requests, "a", method="GET", status="200", code="") == 1
    assert sample(registry, requests, "a", method="POST", status="200", code="") == 1
    assert sample(registry, requests, "b", method="GET", status="403", code="AccessDenied") == 1
    assert sample(registry, requests, "shop", method="GET", status="404",
                  code="DomainRouteNotFound") == 1  # fmt: skip
    assert sample(registry, "fc_wsgi_auth_refusals_total", "b", code="AccessDenied") == 1
    assert sample(registry, "fc_wsgi_auth_refusals_total", "shop", code="AccessDenied") == 0
    counts = [
        sample(registry, "fc_wsgi_request_duration_seconds_count", name)
        for name in ("a", "b", "shop")
    ]
    assert counts == [2, 1, 1]
