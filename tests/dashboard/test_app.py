"""The task page's guards and pages, driven in-process with werkzeug's test client.

The browser drives the same pages in tests/e2e/test_dashboard.py; here are the rules that need
no browser: loopback Host names only, the token, CSRF on every change, the security headers,
secrets masked, keyset pages, more than one function.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from werkzeug.test import Client

from fc_wsgi.config import AsyncConfig
from fc_wsgi.dashboard.app import dashboard_for, is_loopback
from fc_wsgi.dispatch import Journal, StoredRequest

T0 = 1_700_000_000.0
HOST = "127.0.0.1:9465"


def journal_with(path: Path, count: int, prefix: str = "t") -> None:
    request = StoredRequest(
        {"REQUEST_METHOD": "POST", "PATH_INFO": "/job", "QUERY_STRING": "X-Fc-Signature=s1g&a=1",
         "HTTP_AUTHORIZATION": "Bearer tok3n", "HTTP_X_FC_SECURITY_TOKEN": "st5",
         "HTTP_COOKIE": "session=c00kie", "HTTP_X_API_TOKEN": "ap1", "HTTP_X_TRACE": "visible"},
        b'{"n": 1}',
    )  # fmt: skip
    with Journal(path) as journal:
        for i in range(count):
            journal.enqueue(f"{prefix}{i:03d}", f"rid-{prefix}{i:03d}", request, due=T0 + 9e9,
                            now=T0 + i)  # fmt: skip


@pytest.fixture
def functions(tmp_path: Path) -> dict[str, AsyncConfig]:
    journal_with(tmp_path / "a.sqlite3", 120)
    journal_with(tmp_path / "b.sqlite3", 3, prefix="b")
    return {
        "orders": AsyncConfig(journal=str(tmp_path / "a.sqlite3")),
        "mail": AsyncConfig(journal=str(tmp_path / "b.sqlite3")),
        "empty": AsyncConfig(journal=str(tmp_path / "never.sqlite3")),
    }


def client(functions, token=None, host="127.0.0.1") -> Client:
    return Client(dashboard_for(functions, host, 9465, token))


def test_pages_carry_the_security_headers(functions):
    response = client(functions).get("/", headers={"Host": HOST})
    assert response.status_code == 200
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "'unsafe-inline'" not in csp
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "<script>" not in response.get_data(as_text=True)  # the script is a file
    js = client(functions).get("/static/dashboard.js", headers={"Host": HOST})
    assert js.status_code == 200 and js.mimetype == "text/javascript"


def test_keyset_pages_walk_every_task_once(functions):
    web, seen, url = client(functions), [], "/?function=orders"
    while url:
        html = web.get(url, headers={"Host": HOST}).get_data(as_text=True)
        seen += re.findall(r'data-task="([^"]+)"', html)
        found = re.search(r'id="next" href="([^"]+)"', html)
        url = found.group(1).replace("&amp;", "&") if found else ""
    assert seen == [f"t{i:03d}" for i in range(119, -1, -1)]
    merged = web.get("/", headers={"Host": HOST}).get_data(as_text=True)
    assert re.findall(r'data-task="([^"]+)"', merged)[:2] == ["t119", "t118"]
    assert "b002" in web.get("/?function=mail", headers={"Host": HOST}).get_data(as_text=True)
    assert not (Path(functions["empty"].journal)).exists()  # the page creates no journal
    assert web.get("/?function=nope", headers={"Host": HOST}).status_code == 404


def test_a_tasks_page_masks_every_credential(functions):
    html = (
        client(functions).get("/tasks/orders/t007", headers={"Host": HOST}).get_data(as_text=True)
    )
    for secret in ("tok3n", "st5", "c00kie", "ap1", "s1g"):
        assert secret not in html
    assert "visible" in html and "a=1" in html and "{&quot;n&quot;: 1}" in html


def test_changes_need_the_csrf_token_and_the_same_origin(functions):
    web = client(functions)
    page = web.get("/tasks/orders/t001", headers={"Host": HOST}).get_data(as_text=True)
    csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', page).group(1)
    stop = "/tasks/orders/t001/stop"
    assert web.post(stop, headers={"Host": HOST}, data={}).status_code == 403
    cross = {"Host": HOST, "Origin": "http://evil.test"}
    assert web.post(stop, headers=cross, data={"csrf": csrf}).status_code == 403
    assert web.get(stop, headers={"Host": HOST}).status_code == 405
    done = web.post(stop, headers={"Host": HOST, "Origin": f"http://{HOST}"}, data={"csrf": csrf})
    assert done.status_code == 303
    again = web.post(stop, headers={"Host": HOST}, data={"csrf": csrf})
    assert again.status_code == 409 and "only waiting or running" in again.get_data(as_text=True)


def test_loopback_answers_loopback_host_names_only(functions):
    web = client(functions)
    assert web.get("/", headers={"Host": "localhost:9465"}).status_code == 200
    assert web.get("/", headers={"Host": "attacker.test:9465"}).status_code == 400


def test_a_token_is_needed_off_loopback_and_checked(functions):
    with pytest.raises(ValueError, match="needs a token"):
        dashboard_for(functions, "0.0.0.0", 9465, None)
    web = client(functions, token="t0ken", host="0.0.0.0")
    assert web.get("/").status_code == 303
    assert web.get("/counts.json").status_code == 401
    assert web.get("/counts.json", headers={"Authorization": "Bearer t0ken"}).status_code == 200
    assert web.post("/login", data={"token": "nope"}).status_code == 401
    assert web.post("/login", data={"token": "t0ken"}).status_code == 303
    assert web.get("/counts.json").json["Enqueued"] == 123


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("::1", True), ("localhost", True), ("0.0.0.0", False),
     ("192.168.1.2", False), ("example.com", False)],
)  # fmt: skip
def test_is_loopback(host, loopback):
    assert is_loopback(host) is loopback
