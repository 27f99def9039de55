"""Operating the Dramatiq backend: ``fc-wsgi tasks stop`` and the metrics of ``fc-wsgi worker``.

Real ``fc-wsgi serve`` and ``fc-wsgi worker --processes 2`` on one real Redis: a stopped
waiting task never runs when its message arrives, a stopped running task ends ``Stopped``
without its retry; the worker's own metrics endpoint sums its two processes' runs, and the
server's endpoint reads the task gauge from Redis; the task page lists and stops Redis tasks.
"""

from __future__ import annotations

import json
import re
import time

import pytest

pytest.importorskip("dramatiq", reason="the dramatiq extra is not installed")
pytest.importorskip("prometheus_client", reason="the metrics extra is not installed")

import requests  # noqa: E402
from dq_site import make_site  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402
from support import free_port, wait_for  # noqa: E402
from werkzeug.test import Client  # noqa: E402

from fc_wsgi.config import load_config  # noqa: E402
from fc_wsgi.dashboard.app import dashboard_for  # noqa: E402
from fc_wsgi.dispatch import StoredRequest  # noqa: E402

pytestmark = pytest.mark.e2e


def sample(url: str, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(requests.get(url, timeout=5).text):
        for s in family.samples:
            if s.name == name and s.labels == labels:
                return s.value
    return 0.0


def test_stop_and_worker_metrics(tmp_path, redis_url):
    site = make_site(tmp_path, redis_url, {"maxAsyncRetryAttempts": 2})
    server_metrics, worker_metrics = free_port(), free_port()
    try:
        site.serve("--metrics-bind", f"127.0.0.1:{server_metrics}")
        site.worker("--metrics-bind", f"127.0.0.1:{worker_metrics}", "--function-label", "jobs",
                    processes=2)  # fmt: skip
        worker_url = f"http://127.0.0.1:{worker_metrics}/metrics"

        # A waiting task, stopped: its message arrives and runs nothing.
        waiting = site.post("/later", **{"x-fc-async-delay": "2"})
        stopped = site.cli("tasks", "stop", waiting, "--json")
        assert stopped.returncode == 0, stopped.stderr
        assert json.loads(stopped.stdout)["state"] == "Stopped"
        # A running task that will fail, stopped mid-run: Stopped, not retried.
        running = site.post("/slow?sleep=2&status=503")
        wait_for(lambda: (site.task(running) or None) and site.task(running).state == "Running",
                 15, "running", site)  # fmt: skip
        assert json.loads(site.cli("tasks", "stop", running, "--json").stdout)["state"] == (
            "Stopping"
        )
        wait_for(lambda: site.task(running).state == "Stopped", 15, "stopped after its run", site)
        # A task that fails once, then succeeds.
        flaky = site.post("/flaky?fail=1")
        wait_for(lambda: site.task(flaky).state == "Succeeded", 20, "flaky succeeded", site)
        time.sleep(2.5)  # the stopped task's delayed message has been delivered by now
        assert site.runs(waiting) == []
        assert [r.attempt for r in site.runs(running)] == [1]
        again = site.cli("tasks", "stop", flaky)
        assert again.returncode == 2 and "only waiting or running tasks" in again.stderr

        runs = "fc_wsgi_async_runs_total"
        assert sample(worker_url, runs, function="jobs", outcome="succeeded") == 1
        assert sample(worker_url, runs, function="jobs", outcome="retried") == 1
        assert sample(worker_url, runs, function="jobs", outcome="stopped") == 1
        lateness = "fc_wsgi_async_start_lateness_seconds_count"
        assert sample(worker_url, lateness, function="jobs") == 3  # running 1, flaky 2
        server_url = f"http://127.0.0.1:{server_metrics}/metrics"
        assert sample(server_url, "fc_wsgi_async_accepted_total", function="default") == 3
        tasks = "fc_wsgi_async_tasks"
        assert sample(server_url, tasks, function="default", state="Stopped") == 2
        assert sample(server_url, tasks, function="default", state="Succeeded") == 1
        listed = site.cli("tasks", "list", "--state", "Stopped")
        assert listed.stdout.splitlines()[-1] == "3 tasks in all: Succeeded 1, Stopped 2"
    finally:
        site.stop_all()


def test_the_task_page_reads_and_stops_redis_tasks(tmp_path, redis_url):
    site = make_site(tmp_path, redis_url)
    with site.backend() as backend:
        request = StoredRequest({"REQUEST_METHOD": "POST", "PATH_INFO": "/later",
                                 "HTTP_AUTHORIZATION": "Bearer r3dis-secret"}, b"{}")  # fmt: skip
        for i in range(3):
            backend.enqueue(f"t{i}", f"rid-{i}", request, due=time.time() + 600)
    web = Client(dashboard_for({"default": load_config(site.config).async_}, "127.0.0.1", 9465,
                               None))  # fmt: skip
    host = {"Host": "127.0.0.1:9465"}
    listing = web.get("/?state=Enqueued", headers=host).get_data(as_text=True)
    assert re.findall(r'data-task="([^"]+)"', listing) == ["t2", "t1", "t0"]
    page = web.get("/tasks/default/t1", headers=host).get_data(as_text=True)
    assert "r3dis-secret" not in page and "/later" in page
    csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', page).group(1)
    assert web.post("/tasks/default/t1/stop", headers=host, data={"csrf": csrf}).status_code == 303
    assert site.task("t1").state == "Stopped"
    assert web.get("/counts.json", headers=host).json["Stopped"] == 1
