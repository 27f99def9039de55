"""fc-wsgi check and the command line's error handling (serve is covered in tests/e2e)."""

from __future__ import annotations

import json
import subprocess
import sys

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
    [["serve", "examples.nowhere:app"], ["serve", "examples.hello:handler", "--bind", "nope"]],
)
def test_serve_refuses_bad_input_before_starting(argv, capsys):
    assert main(argv) == 2
    assert "Traceback" not in capsys.readouterr().err
