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
