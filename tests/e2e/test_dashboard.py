"""The task page in headless Chromium, over the journal a real ``fc-wsgi serve`` writes.

Drives Debian's chromium with Playwright's client exactly as test_browser.py does (never a
downloaded browser): list, filter by state, open a task, retry a failed one and see it
succeed, stop a delayed one, watch the counts refresh without a reload; credentials sent with
the async requests never reach the page; a forged or cross-site POST is refused; off loopback
a token is required. The browser test saves a screenshot (the README's docs/dashboard.png
with FC_WSGI_UPDATE_DOCS=1).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from servers import ROOT, launch, stop
from support import free_port, wait_for
from test_browser import browser, sync_api  # noqa: F401  (the module's fixture)

from fc_wsgi.dispatch import Journal

pytestmark = pytest.mark.e2e
expect = sync_api.expect

SECRETS = ("Bearer dashboard-secret-jwt", "sts-secret-token", "sig-secret-value")
CONFIG = {"authType": "anonymous", "methods": ["GET", "POST"],
          "async": {"maxAsyncRetryAttempts": 0}}  # fmt: skip
#: Set to refresh the README's screenshot, docs/dashboard.png; otherwise it goes to tmp_path.
UPDATE_DOCS_ENV = "FC_WSGI_UPDATE_DOCS"


def dashboard(config_path: Path, log: Path, *extra: str, port: int | None = None):
    port = port or free_port()
    argv = [sys.executable, "-m", "fc_wsgi", "dashboard", "--config", str(config_path),
            "--bind", f"127.0.0.1:{port}", *extra]  # fmt: skip
    return launch(argv, port, log)


def accept(server, path: str, **headers: str) -> str:
    response = requests.post(server.url + path, data=b'{"order": 42}', timeout=5,
                             headers={"X-Fc-Invocation-Type": "Async", **headers})  # fmt: skip
    assert response.status_code == 202, response.text
    return response.headers["X-Fc-Request-Id"]


@pytest.fixture
def tasks(serve, tmp_path):
    """A server with one failed task (it fails while a flag file exists), one delayed task,
    and five that succeeded; the page over the same journal."""
    server = serve("tests.e2e.observe_app:app", CONFIG)
    flag = tmp_path / "failing"
    flag.write_text("on")
    failed = accept(server, f"/orders/charge?fail_while={flag}&x-fc-signature=sig-secret-value",
                    Authorization=SECRETS[0], **{"X-Fc-Security-Token": SECRETS[1]})  # fmt: skip
    delayed = accept(server, "/orders/later", **{"X-Fc-Async-Delay": "600"})
    done = [accept(server, f"/orders/{n}") for n in range(5)]
    config_path = next(tmp_path.glob("trigger-*.json"))

    with Journal(tmp_path / "async.sqlite3") as journal:
        wait_for(lambda: journal.counts()["Failed"] == 1 and journal.counts()["Succeeded"] == 5,
                 15, "the tasks ran")  # fmt: skip
    page_server = dashboard(config_path, tmp_path / "dashboard.log")
    try:
        yield page_server, server, config_path, flag, failed, delayed, done
    finally:
        stop(page_server)


def test_the_page_lists_filters_retries_and_stops(tasks, browser, tmp_path):  # noqa: F811
    page_server, server, config_path, flag, failed, delayed, done = tasks
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    try:
        page.goto(page_server.url + "/")
        rows = page.locator("#tasks tbody tr")
        assert rows.count() == 7
        assert page.locator('[data-count="Succeeded"]').inner_text() == "5"
        # Filter by state with the form.
        page.select_option('select[name="state"]', "Failed")
        page.click("form.filters button")
        page.wait_for_url(re.compile(r"state=Failed"))
        assert rows.count() == 1
        # Open the failed task: its request line and headers, secrets masked.
        page.click(f"text={failed}")
        assert page.locator("#state").inner_text() == "Failed"
        assert "POST /orders/charge?" in page.locator("#request-line").inner_text()
        assert page.locator("#body").inner_text() == '{"order": 42}'
        html = page.content()
        for secret in SECRETS:
            assert secret not in html and secret.split()[-1] not in html
        assert "******" in html
        # Retry it once it can succeed: the state changes as the server runs it again.
        flag.unlink()
        page.click("#retry")
        deadline = time.monotonic() + 15
        while page.locator("#state").inner_text() != "Succeeded":
            assert time.monotonic() < deadline, page.locator("#state").inner_text()
            time.sleep(0.3)
            page.reload()
        # Stop the delayed task from its page.
        page.goto(page_server.url + f"/tasks/default/{delayed}")
        assert page.locator("#state").inner_text() == "Enqueued"
        page.click("#stop")
        assert page.locator("#state").inner_text() == "Stopped"
        # The counts refresh by themselves: a new delayed task shows up without a reload.
        page.goto(page_server.url + "/")
        assert page.locator('[data-count="Enqueued"]').inner_text() == "0"
        accept(server, "/orders/another", **{"X-Fc-Async-Delay": "600"})
        # (Not wait_for_function: the page's CSP rightly forbids evaluating strings.)
        expect(page.locator('[data-count="Enqueued"]')).to_have_text("1", timeout=10_000)
        assert page.locator('[data-count="Succeeded"]').inner_text() == "6"
        page.reload()  # the table too, for the README's screenshot
        docs = os.environ.get(UPDATE_DOCS_ENV)
        screenshot = ROOT / "docs" / "dashboard.png" if docs else tmp_path / "dashboard.png"
        page.screenshot(path=str(screenshot), full_page=True)
        print(f"screenshot: {screenshot}")
    finally:
        context.close()
    assert errors == []  # no CSP violation, no script error


def test_forged_and_cross_site_posts_are_refused(tasks):
    page_server, _server, _config, _flag, _failed, delayed, _done = tasks
    url = f"{page_server.url}/tasks/default/{delayed}/stop"
    page = requests.get(f"{page_server.url}/tasks/default/{delayed}", timeout=5)
    assert "default-src 'none'" in page.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    assert (page.headers["X-Frame-Options"], page.headers["X-Content-Type-Options"]) == (
        "DENY", "nosniff",
    )  # fmt: skip
    csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text).group(1)
    refused = [
        requests.post(url, data={}, timeout=5),
        requests.post(url, data={"csrf": "0" * 64}, timeout=5),
        requests.post(url, data={"csrf": csrf}, headers={"Origin": "http://evil.test"}, timeout=5),
        requests.post(
            url, data={"csrf": csrf}, headers={"Sec-Fetch-Site": "cross-site"}, timeout=5
        ),  # fmt: skip
        requests.get(url, timeout=5),  # never by GET
    ]
    assert [r.status_code for r in refused] == [403, 403, 403, 403, 405]
    rebinding = requests.get(page_server.url, headers={"Host": f"evil.test:{page_server.port}"},
                             timeout=5)  # fmt: skip
    assert rebinding.status_code == 400
    still = requests.get(f"{page_server.url}/tasks/default/{delayed}", timeout=5)
    assert 'id="state" class="state state-enqueued"' in still.text
    same_site = {"Origin": page_server.url, "Sec-Fetch-Site": "same-origin"}
    allowed = requests.post(
        url, data={"csrf": csrf}, headers=same_site, allow_redirects=False, timeout=5
    )
    assert allowed.status_code == 303


def test_off_loopback_a_token_is_required(tmp_path):
    config = tmp_path / "t.json"
    config.write_text('{"authType": "anonymous", "methods": ["GET"], "async": {"journal": "'
                      f'{tmp_path / "j.sqlite3"}"}}}}')  # fmt: skip
    port = free_port()
    argv = [sys.executable, "-m", "fc_wsgi", "dashboard", "--config", str(config),
            "--bind", f"0.0.0.0:{port}"]  # fmt: skip
    refused = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert refused.returncode == 2
    assert "needs a token: give --token or $FC_WSGI_DASHBOARD_TOKEN" in refused.stderr
    server = launch([*argv, "--token", "s3cret-token"], port, tmp_path / "dash.log")
    try:
        base = f"http://127.0.0.1:{port}"
        assert requests.get(base + "/counts.json", timeout=5).status_code == 401
        first = requests.get(base + "/", allow_redirects=False, timeout=5)
        assert (first.status_code, first.headers["Location"]) == (303, "/login")
        session = requests.Session()
        wrong = session.post(base + "/login", data={"token": "guess"}, timeout=5)
        assert wrong.status_code == 401
        signed = session.post(base + "/login", data={"token": "s3cret-token"}, timeout=5)
        assert signed.status_code == 200 and "fc-wsgi tasks" in signed.text
        cookie = next(c for c in session.cookies if c.name == "fc_wsgi_dashboard")
        assert cookie.has_nonstandard_attr("HttpOnly")
        assert session.get(base + "/counts.json", timeout=5).json()["Enqueued"] == 0
        bearer = {"Authorization": "Bearer s3cret-token"}
        assert requests.get(base + "/counts.json", headers=bearer, timeout=5).status_code == 200
    finally:
        stop(server)
