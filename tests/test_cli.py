"""fc-wsgi check and the command line's error handling (serve is covered in tests/e2e)."""

from __future__ import annotations

import datetime
import json
import subprocess
import sys
import time

import pytest

from fc_wsgi.cli import main


def test_check_prints_the_effective_settings(capsys):
    assert main(["check", "examples/trigger.json"]) == 0
    out = dict(line.split(": ", 1) for line in capsys.readouterr().out.splitlines())
    assert out["authType"] == "anonymous"
    assert out["methods"] == "GET, POST, PUT, DELETE, HEAD, PATCH"
    assert out["limits.maxHeaderBytes"] == "8192"
    assert out["limits.maxBodyBytes"] == "33554432"
    assert out["cors.mode"] == "fc"
    assert out["preflight"] == "answered by fc-wsgi"


def test_check_of_a_bad_config_exits_2_with_one_line(tmp_path, capsys):
    path = tmp_path / "t.json"
    path.write_text(
        json.dumps(
            {"authType": "anonymous", "methods": ["GET"], "async": {"maxAsyncRetryAttempts": 12}}
        )
    )
    assert main(["check", str(path)]) == 2
    err = capsys.readouterr().err
    assert err == "fc-wsgi: error: async.maxAsyncRetryAttempts: must be 0..8, got 12\n"


def test_usage_errors_exit_2_with_one_line():
    result = subprocess.run(
        [sys.executable, "-m", "fc_wsgi", "serve", "x:y", "--workers", "0"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "--workers" in result.stderr


@pytest.mark.parametrize(
    "argv",
    [
        ["serve", "examples.nowhere:app"],
        ["serve", "examples.hello:handler", "--bind", "nope"],
        ["serve"],  # no app and no function section to load one from
    ],
)
def test_serve_refuses_bad_input_before_starting(argv, capsys):
    assert main(argv) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_sign_prints_headers_that_verify(capsys):
    from support import make_environ

    from fc_wsgi.auth.signature import SignatureVerifier
    from fc_wsgi.config import AccessKey

    argv = ["sign", "POST", "http://h.example/p?b=2&a=1", "--access-key-id", "AK",
            "--access-key-secret", "sec-0123456789", "-H", "Content-Type: text/plain",
            "-H", "X-Fc-Trace-Id: t1"]  # fmt: skip
    assert main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    headers = dict(line.split(": ", 1) for line in lines)
    assert headers["Authorization"].startswith("FC AK:")
    environ = make_environ(
        REQUEST_METHOD="POST", PATH_INFO="/p", QUERY_STRING="b=2&a=1",
        CONTENT_TYPE="text/plain", HTTP_DATE=headers["Date"],
        HTTP_X_FC_TRACE_ID="t1", HTTP_AUTHORIZATION=headers["Authorization"],
    )  # fmt: skip
    assert SignatureVerifier([AccessKey("AK", "sec-0123456789")]).verify(environ) == "AK"


def test_sign_takes_the_secret_from_the_environment(monkeypatch, capsys):
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "from-env-secret")
    assert main(["sign", "GET", "http://h/", "--access-key-id", "AK", "--expires", "30"]) == 0
    assert "x-fc-signature=" in capsys.readouterr().out
    monkeypatch.delenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET")
    assert main(["sign", "GET", "http://h/", "--access-key-id", "AK"]) == 2
    assert main(["sign", "GET", "http://h/", "--access-key-id", "AK", "--access-key-secret",
                 "s", "-H", "no colon"]) == 2  # fmt: skip


def test_tasks_list_show_and_retry(tmp_path, capsys):
    from fc_wsgi.dispatch import Journal, StoredRequest

    journal_path = tmp_path / "async.sqlite3"
    config = tmp_path / "t.json"
    config.write_text(json.dumps({"authType": "anonymous", "methods": ["POST"],
                                  "async": {"journal": str(journal_path)}}))  # fmt: skip
    with Journal(journal_path) as journal:
        request = StoredRequest({"REQUEST_METHOD": "POST", "PATH_INFO": "/job"}, b"{}")
        journal.enqueue("1-abc", "1-abc", request, due=0.0, now=0.0, max_pending=10)
    assert main(["tasks", "list", "--config", str(config)]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["ID", "STATE", "ATTEMPTS", "CREATED", "UPDATED", "LAST", "ERROR"]
    assert table[1].split()[:3] == ["1-abc", "Enqueued", "0"]
    assert main(["tasks", "show", "1-abc", "--config", str(config), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert (shown["id"], shown["state"], shown["path"]) == ("1-abc", "Enqueued", "/job")
    with Journal(journal_path) as journal:
        assert journal.claim("1-abc", "test-owner", now=1.0, lease_seconds=60.0)
        journal.finish("1-abc", "test-owner", state="Failed", error="boom", status=500, now=2.0)
    assert main(["tasks", "retry", "1-abc", "--config", str(config)]) == 0
    assert capsys.readouterr().out.splitlines()[1].split()[:3] == ["1-abc", "Enqueued", "0"]
    assert main(["tasks", "show", "nope", "--config", str(config)]) == 2
    assert "no async task 'nope'" in capsys.readouterr().err


def test_tasks_without_a_journal_creates_none(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["tasks", "list"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["ID", "STATE", "ATTEMPTS", "CREATED", "UPDATED", "LAST", "ERROR"]
    assert out[1:] == ["0 tasks in all: none"]
    assert not (tmp_path / ".fc-wsgi").exists()


def test_check_of_a_jwt_trigger_shows_its_auth_config_without_key_material(capsys):
    assert main(["check", "examples/trigger-jwt.json"]) == 0
    out = capsys.readouterr().out
    assert "authConfig.tokenLookup: header:Authorization:Bearer, cookie:token" in out
    assert "authConfig.claimPassBy: header:uid:x-uid" in out
    assert "ZmMtd3NnaS1kZW1v" not in out  # the demo key's "k"


def test_check_shows_the_function_settings_and_the_concurrency_warning(tmp_path, capsys):
    path = tmp_path / "trigger.json"
    function = {"name": "f", "codeUri": "code", "instanceConcurrency": 3, "maxInstances": 2}
    path.write_text(json.dumps({"authType": "anonymous", "methods": ["GET"], "function": function}))
    assert main(["check", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    out = dict(line.split(": ", 1) for line in lines)
    assert out["function.functionName"] == "f"
    assert out["function.codeUri"] == str(tmp_path / "code")
    assert out["function cap"] == "2 x 3 concurrent invocations"
    assert out["warning"].startswith("instanceConcurrency > 1")  # open question 5


def test_check_of_a_project_lists_functions_domains_and_routes(capsys):
    assert main(["check", "examples/project/s.yaml"]) == 0
    out = dict(line.split(": ", 1) for line in capsys.readouterr().out.splitlines())
    assert out["project"] == "fc-wsgi-example (edition 3.0.0, profile fc3)"
    assert "index.handler in" in out["function hello"]
    assert out["function notes environment"] == "NOTES_TITLE, NOTES_LIMIT"  # names, no values
    assert out["domain www.example.com route /v1/*"] == "notes (all methods, rewritten)"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        pytest.param(["serve", "examples/project/s.yaml", "--config", "x.json"],
                     "--config: a project's triggers come from its s.yaml", id="config + s.yaml"),
        pytest.param(["serve", "examples/project/s.yaml", "--function", "nope"],
                     "nope", id="unknown function"),
        pytest.param(["serve", "examples.hello:handler", "--function", "hello"],
                     "--function: picks functions of an s.yaml project", id="--function alone"),
        pytest.param(["tasks", "list", "--config", "examples/project/s.yaml"],
                     "--function: which function's tasks? one of hello, notes", id="which journal"),
        pytest.param(["check", "missing/s.yaml"], "missing/s.yaml", id="no such s.yaml"),
    ],
)  # fmt: skip
def test_project_command_lines_refused_with_exit_2(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_tasks_of_a_project_function_read_its_own_journal(tmp_path, capsys):
    import shutil

    shutil.copytree("examples/project", tmp_path / "project")
    config = str(tmp_path / "project/s.yaml")
    assert main(["tasks", "list", "--config", config, "--function", "notes"]) == 0
    assert capsys.readouterr().out.splitlines()[0].startswith("ID")  # empty, nothing created
    assert not (tmp_path / "project/.fc-wsgi").exists()


def test_tasks_stop_and_list_filters(tmp_path, capsys):
    from fc_wsgi.dispatch import Journal, StoredRequest

    journal_path = tmp_path / "async.sqlite3"
    config = tmp_path / "t.json"
    config.write_text(json.dumps({"authType": "anonymous", "methods": ["POST"],
                                  "async": {"journal": str(journal_path)}}))  # fmt: skip
    request = StoredRequest({"REQUEST_METHOD": "POST", "PATH_INFO": "/job"}, b"{}")
    now = time.time()
    with Journal(journal_path) as journal:
        journal.enqueue("old", "1-old", request, due=now, now=now - 7200)
        for name in ("a", "b"):
            journal.enqueue(name, f"1-{name}", request, due=now + 60, now=now)
        assert journal.claim("b", "w", now=now + 60, lease_seconds=60)
    cli = ["--config", str(config)]
    assert main(["tasks", "stop", "1-a", "--json", *cli]) == 0
    stopped = json.loads(capsys.readouterr().out)
    assert (stopped["id"], stopped["state"]) == ("a", "Stopped")
    assert main(["tasks", "stop", "b", *cli]) == 0
    assert capsys.readouterr().out.splitlines()[1].split()[:2] == ["b", "Stopping"]
    assert main(["tasks", "stop", "a", *cli]) == 2  # finished: FC's StopAsyncTask refuses
    assert "task 'a' is Stopped; only waiting or running tasks can be stopped" in (
        capsys.readouterr().err
    )
    assert main(["tasks", "list", *cli]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in out[1:-1]] == ["b", "a", "old"]
    assert out[-1] == "3 tasks in all: Enqueued 1, Stopping 1, Stopped 1"
    assert main(["tasks", "list", "--state", "Stopped", "--json", *cli]) == 0
    assert [json.loads(line)["id"] for line in capsys.readouterr().out.splitlines()] == ["a"]
    assert main(["tasks", "list", "--since", "1h", "--json", *cli]) == 0
    assert [json.loads(line)["id"] for line in capsys.readouterr().out.splitlines()] == ["b", "a"]
    iso = datetime.datetime.fromtimestamp(now - 3 * 3600).isoformat(timespec="seconds")
    assert main(["tasks", "list", "--since", iso, "--json", *cli]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 3
    for bad in (["--since", "yesterday"], ["--state", "Done"]):
        with pytest.raises(SystemExit) as exited:
            main(["tasks", "list", *bad, *cli])
        assert exited.value.code == 2


def test_observe_options_are_checked_before_anything_starts(capsys, monkeypatch):
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    app = "examples.hello:handler"
    assert main(["serve", app, "--metrics-bind", "9464"]) == 2
    assert "--metrics-bind: expected HOST:PORT, got '9464'" in capsys.readouterr().err
    assert main(["serve", app, "--dev", "--metrics-bind", "127.0.0.1:9464"]) == 2
    assert "not --dev" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["serve", app, "--log-format", "xml"])
    assert main(["dashboard", "--config", "examples/trigger.json", "--bind", "10.1.2.3:9465"]) == 2
    assert "not loopback) needs a token" in capsys.readouterr().err
