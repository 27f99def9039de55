"""CORS as a browser sees it: headless Chromium runs ``examples/browser/`` against `fc-wsgi serve`.

The page is served from one loopback origin by ``python -m http.server`` and calls a trigger on
another port with ``fetch()``, exactly as a user runs the example (examples/browser/README.md).
Only a browser decides what a page may read, so this is where FC's CORS defaults
(fc-spec.md sections 10 and 13.12) meet the Fetch standard: preflights, credentials, exposed
headers and error answers (401 from JWT auth, 502 from a failing function).

Needs Debian's ``chromium`` at /usr/bin/chromium and Playwright's Python client; Playwright's own
browser downloads are not used.
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from servers import ROOT, Server, launch, stop
from support import free_port

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed (pip install playwright)"
)
CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip("Chromium is not installed (apt-get install -y chromium)", allow_module_level=True)

pytestmark = pytest.mark.e2e

EXAMPLE = ROOT / "examples" / "browser"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: How long the page may take to run all its calls, in milliseconds.
PAGE_TIMEOUT_MS = 15_000
ALL_CALLS = {
    "simple-get",
    "post-json",
    "custom-header",
    "credentials",
    "jwt-401",
    "jwt-401-preflight",
    "function-502",
}


@pytest.fixture(scope="module")
def page_server(tmp_path_factory) -> Iterator[Server]:
    """The example page, served as its README says, on a free port of 127.0.0.1."""
    folder = tmp_path_factory.mktemp("page")
    port = free_port()
    argv = [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"]
    server = launch([*argv, "--directory", str(EXAMPLE)], port, folder / "http-server.log")
    yield server
    stop(server)


@pytest.fixture(scope="module")
def browser() -> Iterator:
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def example_config(name: str, page_origin: str) -> dict:
    """An example trigger config; the strict one lists the test's page origin, not port 8000."""
    config = json.loads((EXAMPLE / name).read_text())
    if config["cors"]["mode"] == "strict":
        config["cors"]["allowOrigins"] = [page_origin]
    return config


def run_page(browser, page_url: str, screenshot: Path, basetemp: Path) -> dict:
    """Open the page, wait for its results, keep a screenshot (also under basetemp)."""
    context = browser.new_context(viewport={"width": 1100, "height": 760})
    page = context.new_page()
    console: list[str] = []
    page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
    try:
        page.goto(page_url)
        page.wait_for_function("window.corsResults !== undefined", timeout=PAGE_TIMEOUT_MS)
        results = page.evaluate("window.corsResults")
        page.screenshot(path=str(screenshot), full_page=True)
    finally:
        context.close()
    shutil.copyfile(screenshot, basetemp / screenshot.name)
    print(f"screenshot: {screenshot} (copy: {basetemp / screenshot.name})")
    results["console"] = console
    return results


@pytest.mark.parametrize("config_name", ["trigger-fc.json", "trigger-strict.json"])
def test_page_reads_every_answer(
    config_name, page_server, browser, serve, tmp_path, tmp_path_factory
):
    page_origin = page_server.url
    trigger = serve("examples.hello:handler", example_config(config_name, page_origin))
    shot = tmp_path / f"browser-{Path(config_name).stem}.png"
    results = run_page(
        browser,
        f"{page_origin}/index.html?trigger={trigger.url}",
        shot,
        tmp_path_factory.getbasetemp(),
    )
    calls = results["calls"]
    assert results["origin"] == page_origin
    assert set(calls) == ALL_CALLS
    blocked = {name: call["error"] for name, call in calls.items() if not call["read"]}
    assert not blocked, (blocked, results["console"])

    get = calls["simple-get"]
    assert get["status"] == 200
    assert get["body"]["method"] == "GET"
    assert get["body"]["query"] == "name=browser"
    # x-fc-request-id is readable only because FC lists it in Access-Control-Expose-Headers.
    assert get["requestId"] and get["requestId"] == get["body"]["requestId"]
    assert get["errorType"] is None

    post = calls["post-json"]  # preflighted: Content-Type: application/json
    assert (post["status"], post["body"]["method"]) == (200, "POST")
    assert post["body"]["bodyBytes"] == len(json.dumps({"hello": "fc"}, separators=(",", ":")))

    assert calls["custom-header"]["status"] == 200  # preflighted: X-Custom
    assert calls["credentials"]["status"] == 200  # echoed origin + Allow-Credentials: true

    denied = calls["jwt-401"]  # no token: AuthGate's 401, still readable by the page
    assert denied["status"] == 401
    assert denied["body"]["Code"] == "InvalidToken"
    assert denied["requestId"] and denied["requestId"] == denied["body"]["RequestId"]
    assert denied["errorType"] == "FcCommonError"

    # Authorization makes it preflighted: the preflight passes without a token, the call gets 401.
    bad_token = calls["jwt-401-preflight"]
    assert (bad_token["status"], bad_token["body"]["Code"]) == (401, "InvalidToken")
    assert bad_token["requestId"]

    failed = calls["function-502"]  # the function raised: FC's 502, still readable
    assert failed["status"] == 502
    assert failed["requestId"]
    assert failed["errorType"] == "UnhandledInvocationError"
    assert failed["body"] == {
        "errorMessage": "the function failed on purpose",
        "errorType": "RuntimeError",
    }


def test_strict_mode_blocks_an_unlisted_origin(
    page_server, browser, serve, tmp_path, tmp_path_factory
):
    """Same page, same port, host ``localhost``: another origin, not listed, so blocked."""
    trigger = serve(
        "examples.hello:handler", example_config("trigger-strict.json", page_server.url)
    )
    other_origin = f"http://localhost:{page_server.port}"
    results = run_page(
        browser,
        f"{other_origin}/index.html?trigger={trigger.url}",
        tmp_path / "browser-strict-blocked.png",
        tmp_path_factory.getbasetemp(),
    )
    assert results["origin"] == other_origin
    calls = results["calls"]
    assert set(calls) == ALL_CALLS
    # The browser rejects fetch() with a TypeError and hides the status, errors included.
    for name, call in calls.items():
        assert not call["read"], (name, call)
        assert call["error"].startswith("TypeError"), (name, call)
